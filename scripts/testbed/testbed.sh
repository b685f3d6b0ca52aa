#!/usr/bin/env bash
# A testbed of N "hosts" on one machine: each host is a network namespace with one interface (eth0)
# joined by a veth pair to a bridge that lives in its own "switch" namespace, so no test traffic touches
# the machine's own network. Links are shaped with tc (token bucket on both directions; delay with netem
# where the kernel has it). Addresses come from 198.18.0.0/15, the range reserved for benchmarks.
#
# Usage:
#   testbed.sh up    --name NAME --hosts N [--bandwidth RATE] [--delay TIME]
#   testbed.sh down  --name NAME
#   testbed.sh run   --hosts N [--bandwidth RATE] [--delay TIME] [--name NAME] -- COMMAND [ARG...]
#   testbed.sh clean              (removes testbeds whose creating process is gone)
#   testbed.sh check              (exit 0 when this machine can host a testbed)
#
# RATE and TIME use tc's units (1gbit, 100mbit; 100us, 1ms). `run` creates the testbed, runs COMMAND in
# every host at once — with {i} (host index), {n} (hosts), {addr} (its address) and {addrs} (all
# addresses, comma-separated) replaced in the arguments, and DUET_TESTBED_HOST, DUET_TESTBED_ADDRS in the
# environment — waits for all, tears everything down (also on failure or Ctrl-C) and exits with the
# first non-zero status. Namespaces are named duet-tb-NAME-h<i> and duet-tb-NAME-sw; a NAME that starts
# with "<pid>-" is cleaned by `clean` once that process is gone. Needs root and iproute2.

set -euo pipefail

PREFIX=duet-tb
SUBNET=198.18.0

die() {
  echo "testbed: $*" >&2
  exit 2
}

usage() {
  sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'
  exit "${1:-0}"
}

# Bytes per second of a tc rate such as 1gbit, 250mbit, 10kbit, 1000000bit or 1mbps.
rate_bytes() {
  local r=${1,,} num unit
  num=${r%%[a-z]*}
  unit=${r#"$num"}
  [[ $num =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "bad rate '$1' (use tc units such as 1gbit, 100mbit)"
  case $unit in
  bit | '') awk -v n="$num" 'BEGIN { printf "%d", n / 8 }' ;;
  kbit) awk -v n="$num" 'BEGIN { printf "%d", n * 1000 / 8 }' ;;
  mbit) awk -v n="$num" 'BEGIN { printf "%d", n * 1000000 / 8 }' ;;
  gbit) awk -v n="$num" 'BEGIN { printf "%d", n * 1000000000 / 8 }' ;;
  bps) awk -v n="$num" 'BEGIN { printf "%d", n }' ;;
  kbps) awk -v n="$num" 'BEGIN { printf "%d", n * 1000 }' ;;
  mbps) awk -v n="$num" 'BEGIN { printf "%d", n * 1000000 }' ;;
  gbps) awk -v n="$num" 'BEGIN { printf "%d", n * 1000000000 }' ;;
  *) die "bad rate unit in '$1' (use bit, kbit, mbit, gbit, bps, kbps, mbps, gbps)" ;;
  esac
}

host_ns() { echo "$PREFIX-$1-h$2"; }
switch_ns() { echo "$PREFIX-$1-sw"; }

namespaces_of() {
  ip netns list | awk '{print $1}' | grep -E "^$PREFIX-$1-(h[0-9]+|sw)\$" || true
}

check() {
  [[ $(id -u) == 0 ]] || die "needs root (network namespaces, veth, tc)"
  command -v ip >/dev/null || die "needs the ip command (apt-get install -y iproute2)"
  command -v tc >/dev/null || die "needs the tc command (apt-get install -y iproute2)"
  ip netns list >/dev/null 2>&1 || die "'ip netns' does not work here"
}

# The smallest token bucket: a segmentation-offload packet (up to 64 KB of payload plus headers) must fit
# whole. With a 64 KB bucket tbf cut every such packet into MTU-size ones in software, and below ~800 mbit/s
# (where 1 ms of traffic is under 64 KB) the communication threads spent ~70 ms of kernel CPU per 512-token
# request on it, 12x the ~6 ms at 800 mbit/s: an artefact of the emulated link that real NICs do not have.
MIN_BURST=131072

# Shapes egress of $dev inside $ns: token bucket at $rate, netem delay first when asked and available.
shape() {
  local ns=$1 dev=$2 rate=$3 delay=$4 bytes burst
  [[ -n $rate ]] || rate=""
  if [[ -n $delay ]] && ip netns exec "$ns" tc qdisc add dev "$dev" root handle 1: netem delay "$delay" 2>/dev/null; then
    if [[ -n $rate ]]; then
      bytes=$(rate_bytes "$rate")
      burst=$((bytes / 1000 > MIN_BURST ? bytes / 1000 : MIN_BURST))
      ip netns exec "$ns" tc qdisc add dev "$dev" parent 1:1 handle 10: tbf rate "$rate" burst "$burst" latency 50ms
    fi
    return 0
  fi
  if [[ -n $delay ]]; then
    echo "testbed: warning: delay $delay not applied on $ns/$dev: this kernel has no netem qdisc" >&2
  fi
  if [[ -n $rate ]]; then
    bytes=$(rate_bytes "$rate")
    # A bucket of 1 ms of traffic, at least MIN_BURST.
    burst=$((bytes / 1000 > MIN_BURST ? bytes / 1000 : MIN_BURST))
    ip netns exec "$ns" tc qdisc add dev "$dev" root tbf rate "$rate" burst "$burst" latency 50ms
  fi
}

up() {
  local name=$1 hosts=$2 rate=$3 delay=$4 sw h i
  check
  [[ $name =~ ^[A-Za-z0-9_-]+$ ]] || die "bad name '$name' (letters, digits, - and _)"
  [[ $hosts =~ ^[0-9]+$ ]] && ((hosts >= 1 && hosts <= 200)) || die "--hosts must be 1..200, got '$hosts'"
  [[ -z $(namespaces_of "$name") ]] || die "testbed '$name' already exists (testbed.sh down --name $name)"
  [[ -z $rate ]] || rate_bytes "$rate" >/dev/null
  sw=$(switch_ns "$name")
  ip netns add "$sw"
  ip -n "$sw" link set lo up
  ip -n "$sw" link add br0 type bridge
  ip -n "$sw" link set br0 up
  for ((i = 0; i < hosts; i++)); do
    h=$(host_ns "$name" "$i")
    ip netns add "$h"
    ip -n "$h" link set lo up
    ip link add eth0 netns "$h" type veth peer name "p$i" netns "$sw"
    ip -n "$sw" link set "p$i" master br0
    ip -n "$sw" link set "p$i" up
    ip -n "$h" addr add "$SUBNET.$((i + 1))/24" dev eth0
    ip -n "$h" link set eth0 up
    # Host egress carries the one-way delay; both directions carry the rate limit.
    shape "$h" eth0 "$rate" "$delay"
    shape "$sw" "p$i" "$rate" ""
  done
}

down() {
  local name=$1 ns pids
  for ns in $(namespaces_of "$name"); do
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    [[ -z $pids ]] || kill -9 $pids 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
}

clean() {
  local ns name pid
  for ns in $(ip netns list | awk '{print $1}' | grep -E "^$PREFIX-[0-9]+-" || true); do
    name=${ns#"$PREFIX-"}
    name=${name%-h[0-9]*}
    name=${name%-sw}
    pid=${name%%-*}
    if ! kill -0 "$pid" 2>/dev/null; then down "$name"; fi
  done
}

# Set by run; global because the EXIT trap runs after run's locals are gone.
TB_NAME=""
TB_CHILDREN=()

teardown() {
  trap - EXIT INT TERM
  local pid
  for pid in "${TB_CHILDREN[@]}"; do kill "$pid" 2>/dev/null || true; done
  [[ -z $TB_NAME ]] || down "$TB_NAME"
}

run() {
  local name=$1 hosts=$2 rate=$3 delay=$4
  shift 4
  (($# > 0)) || die "run needs a command after --"
  local addrs="" i addr arg pid
  for ((i = 0; i < hosts; i++)); do addrs+="${addrs:+,}$SUBNET.$((i + 1))"; done
  TB_NAME=$name
  trap teardown EXIT
  trap 'exit 130' INT TERM
  up "$name" "$hosts" "$rate" "$delay"
  for ((i = 0; i < hosts; i++)); do
    addr="$SUBNET.$((i + 1))"
    local -a argv=()
    for arg in "$@"; do
      arg=${arg//\{i\}/$i}
      arg=${arg//\{n\}/$hosts}
      arg=${arg//\{addrs\}/$addrs}
      arg=${arg//\{addr\}/$addr}
      argv+=("$arg")
    done
    DUET_TESTBED_HOST=$i DUET_TESTBED_ADDRS=$addrs ip netns exec "$(host_ns "$name" "$i")" "${argv[@]}" &
    TB_CHILDREN+=($!)
  done
  local status=0 s
  for pid in "${TB_CHILDREN[@]}"; do
    s=0
    wait "$pid" || s=$?
    ((status != 0)) || status=$s
  done
  return "$status"
}

main() {
  local cmd=${1:-}
  [[ -n $cmd ]] || usage 2
  shift
  local name="" hosts=2 rate="" delay=""
  while (($# > 0)); do
    case $1 in
    --name) name=$2; shift 2 ;;
    --hosts) hosts=$2; shift 2 ;;
    --bandwidth) rate=$2; shift 2 ;;
    --delay) delay=$2; shift 2 ;;
    --) shift; break ;;
    -h | --help) usage 0 ;;
    *) die "unknown option '$1' (see testbed.sh --help)" ;;
    esac
  done
  case $cmd in
  up)
    [[ -n $name ]] || die "up needs --name"
    # A testbed that fails half-way is removed again.
    (up "$name" "$hosts" "$rate" "$delay") || {
      s=$?
      down "$name"
      exit "$s"
    }
    ;;
  down) [[ -n $name ]] || die "down needs --name"; down "$name" ;;
  run) run "${name:-$$-run}" "$hosts" "$rate" "$delay" "$@" ;;
  clean) clean ;;
  check) check ;;
  -h | --help | help) usage 0 ;;
  *) die "unknown command '$cmd' (up, down, run, clean, check)" ;;
  esac
}

main "$@"
