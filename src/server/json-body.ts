// Request bodies: JSON only, nested at most MAX_JSON_DEPTH deep. The depth is checked on the raw text
// before parsing, so that no later walk of the value (validation, a chat template, request logging) can
// overflow the stack on a body such as `[[[[...]]]]` a million levels deep.

import { BadRequestError } from './errors.js';

/** Deepest nesting of arrays and objects a request body may have (real requests use fewer than 10). */
export const MAX_JSON_DEPTH = 64;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACE = 0x7d;
const CLOSE_BRACKET = 0x5d;

/** The deepest nesting of `text` read as JSON (brackets inside strings ignored). */
export function jsonDepth(text: string): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) {
      inString = true;
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (++depth > deepest) deepest = depth;
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
      depth--;
    }
  }
  return deepest;
}

/** Parses a request body; undefined for an empty one. Throws BadRequestError naming what is wrong. */
export function parseJsonBody(text: string): unknown {
  if (text.trim() === '') return undefined;
  const depth = jsonDepth(text);
  if (depth > MAX_JSON_DEPTH) {
    throw new BadRequestError(
      `the request body is nested ${depth} levels deep; at most ${MAX_JSON_DEPTH} are allowed`,
    );
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new BadRequestError(`the request body is not valid JSON: ${(e as Error).message}`);
  }
}
