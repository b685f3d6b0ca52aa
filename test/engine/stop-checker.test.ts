// Tests of the stop checker: stop strings split across tokens (cut before, or after with
// include_stop_str_in_output), the earliest of several, stop_token_ids and EOS (text left out), ignore_eos,
// min_tokens, max_tokens and the context cap, and the streaming hold-back of possible stop-string starts.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { IncrementalDetokenizer } from '../../src/engine/detokenizer.js';
import {
  checkTokenStop,
  type FinishState,
  StopChecker,
  StopCheckerFinishedError,
  type StopLimits,
  type StopParams,
} from '../../src/engine/stop-checker.js';
import { loadTokenizer } from '../../src/tokenizer/tokenizer.js';

const tokenizer = loadTokenizer(
  fileURLToPath(new URL('../../../test/fixtures/v2-lite-tiny/', import.meta.url)),
);
const EOS = 501;
const TEXT = 'The quick brown fox jumps over the lazy dog.';
const ids = (text: string): number[] => tokenizer.encode(text, { addSpecialTokens: false });

const baseParams: StopParams = {
  maxTokens: null,
  minTokens: 0,
  stop: [],
  stopTokenIds: [],
  includeStopStrInOutput: false,
  ignoreEos: false,
};

function makeChecker(
  params: Partial<StopParams>,
  limits: Partial<StopLimits> = {},
  skipSpecialTokens = true,
): StopChecker {
  return new StopChecker(
    new IncrementalDetokenizer(tokenizer, { skipSpecialTokens }),
    { ...baseParams, ...params },
    { eosTokenIds: [EOS], ...limits },
  );
}

/** Feeds ids until the checker finishes; returns the finish state and how many ids were consumed. */
function run(
  checker: StopChecker,
  tokenIds: readonly number[],
): { finish: FinishState | null; numFed: number } {
  for (let i = 0; i < tokenIds.length; i++) {
    const finish = checker.appendToken(tokenIds[i]!);
    if (finish !== null) return { finish, numFed: i + 1 };
  }
  return { finish: null, numFed: tokenIds.length };
}

describe('stop strings', () => {
  it('finds a stop string split across several tokens and cuts the text before it', () => {
    // 'fox jumps' spans the tokens 'Ġf', 'o', 'x', 'Ġ', 'j', 'um', 'ps'.
    const checker = makeChecker({ stop: ['fox jumps'] });
    const { finish, numFed } = run(checker, ids(TEXT));
    assert.deepEqual(finish, { finishReason: 'stop', stopReason: 'fox jumps' });
    assert.equal(checker.outputText, 'The quick brown ');
    assert.equal(numFed, ids('The quick brown fox jumps').length);
    assert.throws(() => checker.appendToken(72), StopCheckerFinishedError);
  });

  it('keeps the stop string with include_stop_str_in_output, and cuts what follows it in the token', () => {
    // 'ow' ends inside the token 'row' of 'brown'.
    const excluded = makeChecker({ stop: ['ow'] });
    run(excluded, ids(TEXT));
    assert.equal(excluded.outputText, 'The quick br');
    const included = makeChecker({ stop: ['ow'], includeStopStrInOutput: true });
    assert.deepEqual(run(included, ids(TEXT)).finish, { finishReason: 'stop', stopReason: 'ow' });
    assert.equal(included.outputText, 'The quick brow');
  });

  it('picks the earliest match when one delta completes several stop strings', () => {
    // The bytes of 'é' come out as one delta after 'ab': 'bé' (index 1) ends there as well as 'é' (index 2).
    const checker = makeChecker({ stop: ['é', 'bé'] });
    assert.deepEqual(run(checker, ids('abé and more')).finish, { finishReason: 'stop', stopReason: 'bé' });
    assert.equal(checker.outputText, 'a');
  });

  it('holds back streamed text that could start a stop string, and releases it when it cannot', () => {
    const checker = makeChecker({ stop: ['lazy dog', 'lazy cat'] });
    const streamed: string[] = [];
    for (const id of ids(TEXT)) {
      const finish = checker.appendToken(id);
      streamed.push(checker.takeStreamDelta());
      const sent = streamed.join('');
      assert.ok(checker.outputText.startsWith(sent), 'streamed text is a prefix of the output');
      assert.ok(
        !/ l$| la$| laz$| lazy$| lazy $| lazy d$| lazy do$/.test(sent),
        `stream leaked ${JSON.stringify(sent)}`,
      );
      if (finish !== null) break;
    }
    assert.equal(streamed.join(''), 'The quick brown fox jumps over the ');
    assert.equal(checker.outputText, 'The quick brown fox jumps over the ');

    const released = makeChecker({ stop: ['lazy cat'] });
    const sent: string[] = [];
    for (const id of ids('the lazy d')) {
      released.appendToken(id);
      sent.push(released.takeStreamDelta());
    }
    assert.equal(sent.join(''), 'the lazy d', "'lazy d' cannot start 'lazy cat': all of it is streamed");
  });

  it('streams everything without hold-back when the stop string is included in the output', () => {
    const checker = makeChecker({ stop: ['dog'], includeStopStrInOutput: true });
    let sent = '';
    for (const id of ids('the lazy do')) {
      checker.appendToken(id);
      sent += checker.takeStreamDelta();
    }
    assert.equal(sent, 'the lazy do');
  });

  it('ignores stop strings that end within the first min_tokens tokens', () => {
    // 'quick' ends with token 4 ('ic', 'k' → token 4 is 'k'); min_tokens 5 lets it pass, 'lazy' then stops.
    const tokens = ids(TEXT);
    assert.equal(tokenizer.decode(tokens.slice(0, 4)), 'The quick');
    const checker = makeChecker({ stop: ['quick', 'lazy'], minTokens: 5 });
    assert.deepEqual(run(checker, tokens).finish, { finishReason: 'stop', stopReason: 'lazy' });
    assert.equal(checker.outputText, 'The quick brown fox jumps over the ');
    const early = makeChecker({ stop: ['quick', 'lazy'], minTokens: 4 });
    assert.equal(
      run(early, tokens).finish?.stopReason,
      'lazy',
      'min_tokens 4: the 4th token is still inside',
    );
    const late = makeChecker({ stop: ['quick', 'lazy'], minTokens: 3 });
    assert.equal(run(late, tokens).finish?.stopReason, 'quick');
  });
});

describe('stop tokens, EOS and length', () => {
  const hello = ids('Hello, world!');

  it('stops on EOS with stop_reason null and leaves its text out', () => {
    const checker = makeChecker({}, {}, false);
    const { finish, numFed } = run(checker, [...hello, EOS, 72]);
    assert.deepEqual(finish, { finishReason: 'stop', stopReason: null });
    assert.equal(numFed, hello.length + 1);
    assert.equal(checker.outputText, 'Hello, world!');
  });

  it('keeps generating past EOS with ignore_eos', () => {
    const checker = makeChecker({ ignoreEos: true, maxTokens: hello.length + 2 }, {}, false);
    assert.deepEqual(run(checker, [...hello, EOS, 72]).finish, { finishReason: 'length', stopReason: null });
    assert.equal(checker.outputText, 'Hello, world!<｜end▁of▁sentence｜>H');
  });

  it('stops on stop_token_ids with the id as stop_reason; its text only with include_stop_str_in_output', () => {
    const stopId = ids('!')[0]!;
    const checker = makeChecker({ stopTokenIds: [stopId] });
    assert.deepEqual(run(checker, hello).finish, { finishReason: 'stop', stopReason: stopId });
    assert.equal(checker.outputText, 'Hello, world');
    const included = makeChecker({ stopTokenIds: [stopId], includeStopStrInOutput: true });
    run(included, hello);
    assert.equal(included.outputText, 'Hello, world!');
  });

  it('does not stop on EOS or stop tokens before min_tokens', () => {
    const checker = makeChecker({ minTokens: 3, stopTokenIds: [72] });
    assert.equal(checker.appendToken(EOS), null);
    assert.equal(checker.appendToken(72), null);
    assert.deepEqual(checker.appendToken(EOS), { finishReason: 'stop', stopReason: null });
  });

  it("finishes with 'length' at max_tokens and at the context length", () => {
    const checker = makeChecker({ maxTokens: 3 });
    assert.deepEqual(run(checker, hello), {
      finish: { finishReason: 'length', stopReason: null },
      numFed: 3,
    });
    assert.equal(checker.outputText, 'Hello,');
    assert.equal(checker.numOutputTokens, 3);
    const capped = makeChecker({}, { maxModelLen: 10, numPromptTokens: 8 });
    assert.equal(run(capped, hello).numFed, 2);
  });

  it('checkTokenStop: a stop token wins over length on the same token, as vLLM', () => {
    const params = { ...baseParams, maxTokens: 5, stopTokenIds: [9] };
    assert.deepEqual(checkTokenStop(9, 5, params, { eosTokenIds: [EOS] }), {
      finishReason: 'stop',
      stopReason: 9,
    });
    assert.deepEqual(checkTokenStop(EOS, 5, params, { eosTokenIds: [EOS] }), {
      finishReason: 'stop',
      stopReason: null,
    });
    assert.deepEqual(checkTokenStop(8, 5, params, { eosTokenIds: [EOS] }), {
      finishReason: 'length',
      stopReason: null,
    });
    assert.equal(checkTokenStop(8, 4, params, { eosTokenIds: [EOS] }), null);
  });
});
