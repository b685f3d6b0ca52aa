// Slurm's compressed host lists (`SLURM_NODELIST=gpu[01-03,7],login1`): expanded in order, as `scontrol show
// hostnames` does. Items are separated by commas outside brackets; each bracket holds comma-separated
// numbers and `lo-hi` ranges, zero-padded to the width of `lo`; several brackets in one item multiply out
// (`r[1-2]n[1-2]` is r1n1, r1n2, r2n1, r2n2).

/** A host list that does not follow Slurm's syntax, or is too long: says where and what is allowed. */
export class HostListError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HostListError';
  }
}

/** Most hosts a list may expand to (a bound on work and memory for a hostile or mistyped list). */
export const MAX_HOSTS = 65_536;

/** Splits at the commas that are not inside brackets. */
function splitItems(list: string): string[] {
  const items: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < list.length; i++) {
    const c = list[i];
    if (c === '[') depth++;
    else if (c === ']') depth--;
    if (depth < 0 || depth > 1) throw new HostListError(`unbalanced "[" / "]" at character ${i + 1}`);
    if (c === ',' && depth === 0) {
      items.push(list.slice(start, i));
      start = i + 1;
    }
  }
  if (depth !== 0) throw new HostListError('a "[" is never closed');
  items.push(list.slice(start));
  return items;
}

/** The numbers of one bracket's body (`01-03,7`), as strings padded like Slurm does. */
function expandRanges(body: string, item: string): string[] {
  const out: string[] = [];
  for (const part of body.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m)
      throw new HostListError(`"[${body}]" in "${item}": expected numbers and lo-hi ranges, got "${part}"`);
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (hi < lo) throw new HostListError(`"[${body}]" in "${item}": range ${part} runs backwards`);
    if (out.length + (hi - lo + 1) > MAX_HOSTS) {
      throw new HostListError(`"${item}" expands to more than ${MAX_HOSTS} hosts`);
    }
    const width = m[1]!.length;
    for (let n = lo; n <= hi; n++) out.push(String(n).padStart(width, '0'));
  }
  return out;
}

/** One item (`gpu[01-02]-ib`) expanded: fixed text and brackets multiplied out left to right. */
function expandItem(item: string): string[] {
  if (item === '') throw new HostListError('an empty host name (two commas in a row, or a comma at an end)');
  let hosts = [''];
  const re = /([^[\]]*)(?:\[([^\]]*)\])?/g;
  let m: RegExpExecArray | null = re.exec(item);
  while (m !== null && m[0] !== '') {
    const text = m[1]!;
    const numbers = m[2] === undefined ? [''] : expandRanges(m[2], item);
    if (hosts.length * numbers.length > MAX_HOSTS) {
      throw new HostListError(`"${item}" expands to more than ${MAX_HOSTS} hosts`);
    }
    hosts = hosts.flatMap((h) => numbers.map((n) => h + text + n));
    m = re.exec(item);
  }
  if (!/^[A-Za-z0-9._-]+$/.test(hosts[0]!)) {
    throw new HostListError(`"${item}" is not a host name (letters, digits, ".", "_" and "-")`);
  }
  return hosts;
}

/** Expands a Slurm host list; throws HostListError for a malformed or over-long one. */
export function expandHostList(list: string): string[] {
  const hosts: string[] = [];
  for (const item of splitItems(list.trim())) {
    const expanded = expandItem(item);
    if (hosts.length + expanded.length > MAX_HOSTS) {
      throw new HostListError(`the list expands to more than ${MAX_HOSTS} hosts`);
    }
    hosts.push(...expanded);
  }
  return hosts;
}
