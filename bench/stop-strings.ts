// Stop-string cost per request: the time to build a request's stop-string automaton (once, when it is
// added) and the time per generated token of its stop checking (every step), for a few stop lists up to
// 20,000 strings of 600 characters (issue 10, finding 3), beside a request without stop strings.
//
//   node dist/bench/stop-strings.js

import { fileURLToPath } from 'node:url';
import { IncrementalDetokenizer } from '../src/engine/detokenizer.js';
import { StopChecker } from '../src/engine/stop-checker.js';
import { loadTokenizer } from '../src/tokenizer/tokenizer.js';

const tokenizer = loadTokenizer(fileURLToPath(new URL('../../test/fixtures/v2-lite-tiny/', import.meta.url)));
const ids = tokenizer.encode('abc defg habc fed cba gh a b c d e f g h '.repeat(20), {
  addSpecialTokens: false,
});

let seed = 3;
/** mulberry32, so that every run measures the same strings. */
function next(): number {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
}
const randomStop = (length: number) =>
  Array.from({ length }, () => 'abcdefgh '[Math.floor(next() * 9)]!).join('');

for (const [count, length] of [
  [0, 0],
  [16, 64],
  [1000, 100],
  [20_000, 600],
] as const) {
  const stop = Array.from({ length: count }, () => randomStop(length));
  const t0 = performance.now();
  const checker = new StopChecker(
    new IncrementalDetokenizer(tokenizer, { skipSpecialTokens: true }),
    {
      maxTokens: null,
      minTokens: 0,
      stop,
      stopTokenIds: [],
      includeStopStrInOutput: false,
      ignoreEos: false,
    },
    { eosTokenIds: [] },
  );
  const t1 = performance.now();
  for (const id of ids) {
    checker.appendToken(id);
    checker.takeStreamDelta();
  }
  const t2 = performance.now();
  console.log(
    `${`${count} stop strings of ${length} chars`.padEnd(34)} build ${(t1 - t0).toFixed(1).padStart(8)} ms` +
      `   ${(((t2 - t1) / ids.length) * 1000).toFixed(1).padStart(7)} µs per token (${ids.length} tokens)`,
  );
}
