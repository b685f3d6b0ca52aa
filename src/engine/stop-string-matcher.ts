// One request's stop strings as an Aho-Corasick automaton, built once when the request is added and fed
// only the newly decoded text, so a step costs time proportional to the new text, not to the number or
// length of the stop strings. It answers the two questions the stop checker asks:
// - which stop string occurrence, ending in the text just fed, starts earliest (ties: the earliest in the
//   request's list, as a scan of the list in order finds it);
// - how long the longest tail of the text is that is a proper prefix of some stop string (the text that
//   streaming must hold back).
// Strings are compared in UTF-16 code units, as String.prototype.indexOf does.
//
// Layout: the trie's nodes are numbered breadth first, so the children of a node are consecutive and
// sorted by their code unit; each node keeps its failure link (the longest proper suffix of its string
// that is also a trie node), the stop string that is the longest suffix of its string (its own, else
// its failure link's) and the depth of the longest suffix that still has children (the hold-back).

/** A stop-string list the matcher cannot be built from (the engine refuses the request). */
export class StopStringsError extends Error {
  override readonly name = 'StopStringsError';
}

/** The earliest stop-string match that ends in the text just fed. */
export interface StopStringMatch {
  /** Index in the text of the match's first code unit. */
  readonly start: number;
  /** Index of the stop string in the request's list. */
  readonly stopIndex: number;
}

export class StopStringMatcher {
  /** [numNodes + 1] children of node v are the nodes childStart[v] .. childStart[v + 1] - 1. */
  private readonly childStart: Int32Array;
  /** [numNodes] the code unit on the edge into each node (0 for the root). */
  private readonly edge: Uint16Array;
  /** [numNodes] failure link. */
  private readonly fail: Int32Array;
  /** [numNodes] the list index of the longest stop string that is a suffix of the node's string, or -1. */
  private readonly bestStop: Int32Array;
  /** [numNodes] length of the longest suffix of the node's string that some longer stop string extends. */
  private readonly holdLength: Int32Array;
  private readonly stopLengths: Int32Array;
  private state = 0;
  private fed = 0;
  private moves = 0;

  /** Builds the automaton; throws StopStringsError unless every entry is a non-empty string. */
  constructor(stops: readonly string[]) {
    if (!Array.isArray(stops)) throw new StopStringsError('stop must be a list of strings');
    const numStops = stops.length;
    this.stopLengths = new Int32Array(numStops);
    let totalLength = 0;
    for (let i = 0; i < numStops; i++) {
      const s = stops[i];
      if (typeof s !== 'string' || s.length === 0) {
        throw new StopStringsError(`stop[${i}] must be a non-empty string, got ${describe(s)}`);
      }
      this.stopLengths[i] = s.length;
      totalLength += s.length;
    }
    // Sorted order groups the strings that share a prefix; equal strings keep the earliest index first.
    const order = Array.from({ length: numStops }, (_, i) => i);
    order.sort((a, b) => (stops[a]! < stops[b]! ? -1 : stops[a]! > stops[b]! ? 1 : a - b));

    const { numNodes, childStart, edge, bestStop, holdLength } = buildTrie(stops, order, totalLength);
    this.childStart = childStart;
    this.edge = edge;
    const fail = new Int32Array(numNodes);

    // Failure links, best stops and hold-back lengths, breadth first (a node's links point shallower).
    for (let v = 0; v < numNodes; v++) {
      for (let child = childStart[v]!; child < childStart[v + 1]!; child++) {
        let f = fail[v]!;
        let target = 0;
        if (v !== 0) {
          for (;;) {
            const next = this.childOf(f, edge[child]!);
            if (next !== -1) {
              target = next;
              break;
            }
            if (f === 0) break;
            f = fail[f]!;
          }
        }
        fail[child] = target;
        if (bestStop[child] === -1) bestStop[child] = bestStop[target]!;
      }
      // With children, a node's string is a proper prefix of a stop string: hold back its depth.
      const hasChildren = childStart[v + 1]! > childStart[v]!;
      if (!hasChildren) holdLength[v] = v === 0 ? 0 : holdLength[fail[v]!]!;
    }
    this.fail = fail;
    this.bestStop = bestStop;
    this.holdLength = holdLength;
  }

  /**
   * Trie moves made while feeding: one per code unit plus one per failure link followed, so at most twice
   * the code units fed (a failure link shortens the match by at least one, each code unit lengthens it
   * by at most one).
   */
  get numMoves(): number {
    return this.moves;
  }

  /** Number of trie nodes (memory is about 18 bytes per node). */
  get numNodes(): number {
    return this.edge.length;
  }

  /**
   * Feeds `text`, the code units that follow everything fed before; returns the earliest-starting stop
   * string occurrence that ends within it (null when none does).
   */
  feed(text: string): StopStringMatch | null {
    let best: StopStringMatch | null = null;
    let state = this.state;
    for (let p = 0; p < text.length; p++) {
      const c = text.charCodeAt(p);
      for (;;) {
        this.moves++;
        const next = this.childOf(state, c);
        if (next !== -1) {
          state = next;
          break;
        }
        if (state === 0) break;
        state = this.fail[state]!;
      }
      const stopIndex = this.bestStop[state]!;
      if (stopIndex !== -1) {
        const start = this.fed + p + 1 - this.stopLengths[stopIndex]!;
        if (best === null || start < best.start || (start === best.start && stopIndex < best.stopIndex)) {
          best = { start, stopIndex };
        }
      }
    }
    this.state = state;
    this.fed += text.length;
    return best;
  }

  /** Length of the longest tail of the text fed so far that is a proper prefix of some stop string. */
  get holdBackLength(): number {
    return this.holdLength[this.state]!;
  }

  /** The child of `v` along code unit `c` (binary search over its sorted children), or -1. */
  private childOf(v: number, c: number): number {
    let lo = this.childStart[v]!;
    let hi = this.childStart[v + 1]! - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const e = this.edge[mid]!;
      if (e === c) return mid;
      if (e < c) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }
}

/** The trie, numbered breadth first; holdLength holds each node's depth, bestStop its own stop or -1. */
interface Trie {
  readonly numNodes: number;
  readonly childStart: Int32Array;
  readonly edge: Uint16Array;
  readonly bestStop: Int32Array;
  readonly holdLength: Int32Array;
}

/**
 * Builds the trie of `stops` (taken in the sorted `order`) in two passes that read memory in order: first
 * depth first, one string after another (each adds the nodes past its common prefix with the previous
 * string), then renumbered breadth first by a stable counting sort on depth, which keeps each node's
 * children together and sorted.
 */
function buildTrie(stops: readonly string[], order: readonly number[], totalLength: number): Trie {
  const maxNodes = totalLength + 1;
  const dfsParent = new Int32Array(maxNodes);
  const dfsEdge = new Uint16Array(maxNodes);
  const dfsDepth = new Int32Array(maxNodes);
  const dfsStop = new Int32Array(maxNodes).fill(-1);
  let maxLength = 0;
  for (const s of stops) maxLength = Math.max(maxLength, s.length);
  /** path[d]: the node of the current string's prefix of length d. */
  const path = new Int32Array(maxLength + 1);
  let numNodes = 1;
  let previous = '';
  for (const index of order) {
    const s = stops[index]!;
    let common = 0;
    const limit = Math.min(s.length, previous.length);
    while (common < limit && s.charCodeAt(common) === previous.charCodeAt(common)) common++;
    for (let d = common; d < s.length; d++) {
      const node = numNodes++;
      dfsParent[node] = path[d]!;
      dfsEdge[node] = s.charCodeAt(d);
      dfsDepth[node] = d + 1;
      path[d + 1] = node;
    }
    // Equal strings come in index order: the first keeps the node.
    const end = path[s.length]!;
    if (dfsStop[end] === -1) dfsStop[end] = index;
    previous = s;
  }

  const numAtDepth = new Int32Array(maxLength + 2);
  for (let v = 0; v < numNodes; v++) numAtDepth[dfsDepth[v]! + 1]!++;
  for (let d = 1; d < numAtDepth.length; d++) numAtDepth[d]! += numAtDepth[d - 1]!;
  const bfsId = new Int32Array(numNodes);
  for (let v = 0; v < numNodes; v++) bfsId[v] = numAtDepth[dfsDepth[v]!]!++;

  const edge = new Uint16Array(numNodes);
  const bestStop = new Int32Array(numNodes);
  const holdLength = new Int32Array(numNodes);
  const numChildren = new Int32Array(numNodes);
  for (let v = 0; v < numNodes; v++) {
    const id = bfsId[v]!;
    edge[id] = dfsEdge[v]!;
    bestStop[id] = dfsStop[v]!;
    holdLength[id] = dfsDepth[v]!;
    if (v !== 0) numChildren[bfsId[dfsParent[v]!]!]!++;
  }
  const childStart = new Int32Array(numNodes + 1);
  childStart[0] = 1;
  for (let v = 0; v < numNodes; v++) childStart[v + 1] = childStart[v]! + numChildren[v]!;
  return { numNodes, childStart, edge, bestStop, holdLength };
}

function describe(value: unknown): string {
  if (typeof value === 'string') return 'an empty string';
  return value === null ? 'null' : typeof value;
}
