// A commander argument parser for flags that take a JSON object (--hf-overrides, --additional-config,
// --extra-body): anything else is refused naming the flag and showing an example.

import { InvalidArgumentError } from 'commander';

/** Parses `flag`'s value as a JSON object; `example` shows a valid one in the error. */
export function jsonObjectArg(flag: string, example: string) {
  return (v: string): Record<string, unknown> => {
    let parsed: unknown;
    try {
      parsed = JSON.parse(v);
    } catch (e) {
      throw new InvalidArgumentError(`${flag} takes a JSON object, got "${v}" (${(e as Error).message})`);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new InvalidArgumentError(`${flag} takes a JSON object such as '${example}', got "${v}"`);
    }
    return parsed as Record<string, unknown>;
  };
}
