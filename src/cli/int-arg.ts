// The commander parser of an integer flag with a lower bound, shared by the CLI's commands.

import { InvalidArgumentError } from 'commander';

/** Parses `--flag N`: an integer >= `min` (an empty value is refused, not read as 0). */
export function intArg(flag: string, min: number) {
  return (v: string): number => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isInteger(n) || n < min) {
      throw new InvalidArgumentError(`${flag} takes an integer >= ${min}, got "${v}"`);
    }
    return n;
  };
}
