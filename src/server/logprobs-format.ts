// Turns the engine's log-probs (token ids, numbers) into the API's shapes: OpenAI's legacy completions
// form {tokens, token_logprobs, top_logprobs, text_offset}, chat's {token, logprob, bytes, top_logprobs}
// and vLLM's prompt_logprobs. Token strings are each id decoded alone (as vLLM), or "token_id:<id>" when
// asked with return_tokens_as_token_ids.

import type { TokenLogprobs } from '../sampling/logprobs.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import type {
  ChatTokenLogprob,
  ChatTopLogprob,
  CompletionLogprobs,
  PromptLogprobs,
} from './openai/responses.js';

/** The smallest log-prob reported; -Infinity has no JSON form (vLLM clamps the same way). */
export const MIN_LOGPROB = -9999;

/** Maps a token id to the string shown for it in log-probs. */
export type TokenText = (tokenId: number) => string;

/** The token strings of `tokenizer`: each id decoded alone, or "token_id:<id>". */
export function tokenTextOf(tokenizer: Tokenizer, returnTokensAsTokenIds: boolean): TokenText {
  if (returnTokensAsTokenIds) return (id) => `token_id:${id}`;
  return (id) => (tokenizer.hasTokenId(id) ? tokenizer.decode([id]) : `token_id:${id}`);
}

function clamp(logprob: number): number {
  return Number.isNaN(logprob) ? MIN_LOGPROB : Math.max(logprob, MIN_LOGPROB);
}

/** One position of legacy completions log-probs: the token, and its log-prob entry (null: none). */
export interface PositionEntry {
  readonly tokenId: number;
  readonly logprobs: TokenLogprobs | null;
}

/**
 * Builds completions log-probs for consecutive positions. `textOffset` is the offset of the first token
 * in the choice's text (it continues across streamed chunks). Each top_logprobs dict holds the top-k and
 * the chosen token.
 */
export function completionLogprobs(
  positions: readonly PositionEntry[],
  tokenText: TokenText,
  textOffset: number,
): CompletionLogprobs {
  const out: CompletionLogprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
  let offset = textOffset;
  for (const p of positions) {
    const token = tokenText(p.tokenId);
    out.tokens.push(token);
    out.text_offset.push(offset);
    offset += token.length;
    if (p.logprobs === null) {
      out.token_logprobs.push(null);
      out.top_logprobs.push(null);
      continue;
    }
    const lp = p.logprobs;
    out.token_logprobs.push(clamp(lp.logprob));
    const top: Record<string, number> = {};
    lp.topTokenIds.forEach((id, i) => {
      top[tokenText(id)] = clamp(lp.topLogprobs[i]!);
    });
    const chosen = tokenText(lp.tokenId);
    if (!(chosen in top)) top[chosen] = clamp(lp.logprob);
    out.top_logprobs.push(top);
  }
  return out;
}

/** The offset just past the last token of `lp` (where the next chunk's text_offset starts). */
export function endOffset(lp: CompletionLogprobs, start: number): number {
  const n = lp.tokens.length;
  return n === 0 ? start : lp.text_offset[n - 1]! + lp.tokens[n - 1]!.length;
}

function chatEntry(token: string, logprob: number): ChatTopLogprob {
  return { token, logprob: clamp(logprob), bytes: [...Buffer.from(token, 'utf8')] };
}

/** Chat log-probs of generated tokens, with the `numTop` most likely candidates at each. */
export function chatLogprobs(
  logprobs: readonly TokenLogprobs[],
  tokenText: TokenText,
  numTop: number,
): ChatTokenLogprob[] {
  return logprobs.map((lp) => ({
    ...chatEntry(tokenText(lp.tokenId), lp.logprob),
    top_logprobs: lp.topTokenIds
      .slice(0, numTop)
      .map((id, i) => chatEntry(tokenText(id), lp.topLogprobs[i]!)),
  }));
}

/** vLLM's prompt_logprobs: per position, the prompt token's entry and the top-k, keyed by token id. */
export function promptLogprobsOut(
  promptLogprobs: readonly (TokenLogprobs | null)[],
  tokenText: TokenText,
): PromptLogprobs {
  return promptLogprobs.map((lp) => {
    if (lp === null) return null;
    const entry: Record<string, { logprob: number; rank: number; decoded_token: string }> = {};
    lp.topTokenIds.forEach((id, i) => {
      entry[String(id)] = { logprob: clamp(lp.topLogprobs[i]!), rank: i + 1, decoded_token: tokenText(id) };
    });
    if (!(String(lp.tokenId) in entry)) {
      entry[String(lp.tokenId)] = {
        logprob: clamp(lp.logprob),
        rank: lp.rank,
        decoded_token: tokenText(lp.tokenId),
      };
    }
    return entry;
  });
}
