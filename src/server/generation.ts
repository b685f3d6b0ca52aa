// Runs the choices of one API request on the engine: every (prompt, n) pair is its own engine request,
// submitted at once so the engine batches them; their outputs come back merged in arrival order, each
// observed by the metrics as it arrives. Leaving early (client gone, an error) aborts whatever is still
// running, so its KV blocks return at once.

import type { OutputSink } from '../engine/async/async-engine.js';
import type { EngineOutput } from '../engine/async/protocol.js';
import type { EncodedPrompt } from '../engine/prompt.js';
import type { TokenLogprobs } from '../sampling/logprobs.js';
import type { SamplingParams } from '../sampling/sampling-params.js';
import { AsyncQueue } from '../util/async-queue.js';
import { InternalServerError, ServiceUnavailableError } from './errors.js';
import type { ServingContext } from './serving-context.js';

/** Seconds on the HTTP thread's monotonic clock (metrics time base). */
export function nowSeconds(): number {
  return performance.now() / 1000;
}

/** One choice to generate: its index in the response, its prompt and its parameters (n = 1). */
export interface ChoiceRequest {
  readonly index: number;
  readonly promptIndex: number;
  readonly prompt: EncodedPrompt;
  readonly params: SamplingParams;
}

export interface ChoiceOutput {
  readonly index: number;
  readonly output: EngineOutput;
}

/**
 * Submits every choice and returns their outputs as they arrive, merged in arrival order. The iterable
 * throws the first failure (a rejected input, a dead engine) after aborting the other choices, and a
 * consumer that stops early aborts what still runs. `arrival` (seconds, nowSeconds) starts the latency
 * metrics; aborting `signal` cancels every choice. Each output goes straight from the engine client into
 * the merged queue, with no stream per choice in between: this is the path of every streamed token.
 */
export function runChoices(
  ctx: ServingContext,
  requestId: string,
  choices: readonly ChoiceRequest[],
  arrival: number,
  signal: AbortSignal,
): AsyncIterable<ChoiceOutput> {
  const health = ctx.engine.health();
  if (!health.alive) throw new ServiceUnavailableError(`the engine is dead: ${health.reason}`);
  const ids = choices.map((c) => `${requestId}-${c.index}`);
  const finished = new Set<string>();
  const queue = new AsyncQueue<ChoiceOutput>(() => ctx.engine.abort(ids.filter((id) => !finished.has(id))));
  let remaining = choices.length;
  choices.forEach((c, k) => {
    const id = ids[k]!;
    const recorder = ctx.metrics.trackRequest(arrival);
    const sink: OutputSink = {
      push: (output) => {
        recorder.onOutput(output, nowSeconds());
        queue.push({ index: c.index, output });
        if (output.finished) {
          finished.add(id);
          if (--remaining === 0) queue.end();
        }
      },
      fail: (e) => {
        finished.add(id);
        queue.fail(e);
      },
    };
    ctx.engine.submit(c.prompt.tokenIds, c.params, id, sink, signal);
  });
  return queue;
}

/** Everything one choice produced, gathered for a non-streaming reply. */
export class ChoiceResult {
  readonly tokenIds: number[] = [];
  text = '';
  readonly logprobs: TokenLogprobs[] = [];
  promptLogprobs: readonly (TokenLogprobs | null)[] | null = null;
  finishReason: string | null = null;
  stopReason: string | number | null = null;
  numPromptTokens = 0;

  add(o: EngineOutput): void {
    this.tokenIds.push(...o.newTokenIds);
    this.text += o.textDelta;
    if (o.newLogprobs) this.logprobs.push(...o.newLogprobs);
    if (o.promptLogprobs) this.promptLogprobs = o.promptLogprobs;
    this.numPromptTokens = o.numPromptTokens;
    if (o.finished) {
      if (o.finishReason === 'error') {
        throw new InternalServerError(`generation failed: ${o.error ?? 'unknown engine error'}`);
      }
      this.finishReason = o.finishReason;
      this.stopReason = o.stopReason;
      if (o.final) this.text = o.final.outputText;
    }
  }
}

/** Runs every choice to the end and returns the results by choice index. */
export async function collectChoices(
  events: AsyncIterable<ChoiceOutput>,
  numChoices: number,
): Promise<ChoiceResult[]> {
  const results = Array.from({ length: numChoices }, () => new ChoiceResult());
  for await (const { index, output } of events) results[index]!.add(output);
  return results;
}
