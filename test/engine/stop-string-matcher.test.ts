// Tests of the stop-string automaton against a reference twin: the plain scan of the stop list that the
// stop checker used before (indexOf per stop string from where a match could end in the new text, and
// startsWith per tail for the hold-back). Random stop lists over a small alphabet (so that matches overlap,
// nest and straddle increments) must give the same earliest match and the same hold-back after every
// increment; and the automaton's work per step does not grow with the number of stop strings.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { IncrementalDetokenizer } from '../../src/engine/detokenizer.js';
import { StopChecker } from '../../src/engine/stop-checker.js';
import { StopStringMatcher, StopStringsError } from '../../src/engine/stop-string-matcher.js';
import { loadTokenizer } from '../../src/tokenizer/tokenizer.js';
import { fixtureDir } from '../helpers/golden.js';

/** mulberry32: a small seeded generator, so that every run tests the same cases. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** Built with join, so that the string is flat (as a parsed request's are), not a rope of appends. */
function randomString(next: () => number, alphabet: string, length: number): string {
  const chars: string[] = [];
  for (let i = 0; i < length; i++) chars.push(alphabet[Math.floor(next() * alphabet.length)]!);
  return chars.join('');
}

/** The reference twin: the earliest match ending after `previousLength`, first in list order on ties. */
function referenceMatch(
  text: string,
  previousLength: number,
  stops: readonly string[],
): { start: number; stopIndex: number } | null {
  let best: { start: number; stopIndex: number } | null = null;
  stops.forEach((stop, stopIndex) => {
    const start = text.indexOf(stop, Math.max(previousLength - stop.length + 1, 0));
    if (start !== -1 && (best === null || start < best.start)) best = { start, stopIndex };
  });
  return best;
}

/** The reference twin of the hold-back: the longest tail that is a proper prefix of a stop string. */
function referenceHoldBack(text: string, stops: readonly string[]): number {
  const maxStop = Math.max(0, ...stops.map((s) => s.length));
  for (let length = Math.min(maxStop - 1, text.length); length > 0; length--) {
    const tail = text.slice(text.length - length);
    if (stops.some((s) => s.length > length && s.startsWith(tail))) return length;
  }
  return 0;
}

describe('stop-string automaton', () => {
  it('gives the same earliest match and hold-back as the list scan, increment by increment', () => {
    const next = rng(20261207);
    // 'é' and an astral character (two code units) make sure matching is by code unit, as indexOf.
    const alphabets = ['ab', 'abc', 'abcé😀'];
    let numMatches = 0;
    for (let c = 0; c < 400; c++) {
      const alphabet = alphabets[c % alphabets.length]!;
      const numStops = 1 + Math.floor(next() * 8);
      const stops = Array.from({ length: numStops }, () =>
        randomString(next, alphabet, 1 + Math.floor(next() * 6)),
      );
      if (next() < 0.3) stops.push(stops[0]!); // a duplicate: the first index must win
      const matcher = new StopStringMatcher(stops);
      let text = '';
      for (let step = 0; step < 30; step++) {
        const delta = randomString(next, alphabet, Math.floor(next() * 4));
        const previousLength = text.length;
        text += delta;
        const got = matcher.feed(delta);
        const want = delta.length > 0 ? referenceMatch(text, previousLength, stops) : null;
        assert.deepEqual(got, want, `stops ${JSON.stringify(stops)}, text ${JSON.stringify(text)}`);
        if (got !== null) numMatches++;
        assert.equal(
          matcher.holdBackLength,
          referenceHoldBack(text, stops),
          `hold-back: stops ${JSON.stringify(stops)}, text ${JSON.stringify(text)}`,
        );
      }
    }
    assert.ok(numMatches > 1000, `the cases exercise matching (${numMatches} matches)`);
  });

  it('refuses entries that are not non-empty strings', () => {
    assert.throws(() => new StopStringMatcher(['ok', '']), StopStringsError);
    assert.throws(() => new StopStringMatcher(['ok', null as unknown as string]), /stop\[1\].*null/);
    assert.throws(() => new StopStringMatcher([7 as unknown as string]), StopStringsError);
  });
});

describe('finding 3: stop strings cost a step the same however many there are', () => {
  const tokenizer = loadTokenizer(fixtureDir('v2-lite-tiny'));
  const next = rng(3);
  const manyStops = Array.from({ length: 20_000 }, () => randomString(next, 'abcdefgh ', 600));
  const TEXT = 'abc defg habc fed cba gh a b c d e f g h '.repeat(40);

  it('finding 3: 20,000 stop strings of 600 chars: same output, at most 2 trie moves per code unit', () => {
    const ids = tokenizer.encode(TEXT, { addSpecialTokens: false });
    const make = (stop: string[]) =>
      new StopChecker(
        new IncrementalDetokenizer(tokenizer, { skipSpecialTokens: true }),
        {
          maxTokens: null,
          minTokens: 0,
          stop,
          stopTokenIds: Array.from({ length: 20_000 }, (_, i) => 100_000 + i),
          includeStopStrInOutput: false,
          ignoreEos: false,
        },
        { eosTokenIds: [501] },
      );
    const many = make(manyStops);
    const none = make([]);
    let streamedMany = '';
    let streamedNone = '';
    for (const id of ids) {
      const movesBefore = many.numStopStringMoves;
      const lengthBefore = many.outputText.length;
      assert.equal(many.appendToken(id), none.appendToken(id));
      const added = many.outputText.length - lengthBefore;
      // A step's matching work: one move per new code unit plus the failure links it follows.
      assert.ok(many.numStopStringMoves - movesBefore >= added);
      // Failure links followed never exceed the code units fed so far (each shortens the match by at
      // least one, each code unit lengthens it by at most one), whatever the number of stop strings.
      assert.ok(
        many.numStopStringMoves <= 2 * many.outputText.length,
        `${many.numStopStringMoves} moves for ${many.outputText.length} code units`,
      );
      streamedMany += many.takeStreamDelta();
      streamedNone += none.takeStreamDelta();
      assert.ok(streamedNone.startsWith(streamedMany), 'the held-back stream is a prefix of the plain one');
    }
    assert.equal(many.outputText, none.outputText);
    assert.equal(many.outputText, TEXT);
    assert.ok(streamedMany.length < TEXT.length, 'some text is held back: it could start a stop string');
  });
});
