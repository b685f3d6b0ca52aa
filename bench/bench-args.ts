// Flag parsing for the benchmark scripts: node's parseArgs, plus `--help` and clear answers to bad flags.
// A benchmark's usage is the comment block that opens its own file (what it measures and its flags), so
// `--help` prints that, and an unknown or malformed flag prints the error and the usage and exits with 2
// instead of a stack trace.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type ParseArgsConfig, parseArgs } from 'node:util';

/** The `//` comment lines that open the file at `moduleUrl`, without the slashes. */
export function leadingComment(moduleUrl: string): string {
  const lines: string[] = [];
  for (const line of readFileSync(fileURLToPath(moduleUrl), 'utf8').split('\n')) {
    if (!line.startsWith('//')) break;
    lines.push(line.replace(/^\/\/ ?/, ''));
  }
  return lines.join('\n');
}

/**
 * `parseArgs(config)` for the benchmark at `moduleUrl` (its `import.meta.url`): `--help` (or `-h`) prints
 * the file's opening comment and exits with 0; a flag parseArgs refuses prints `NAME: why` and that
 * comment on stderr and exits with 2.
 */
export function parseBenchArgs<T extends ParseArgsConfig>(
  moduleUrl: string,
  config: T,
): ReturnType<typeof parseArgs<T>> {
  const args = config.args ?? process.argv.slice(2);
  if (args.includes('--help') || args.includes('-h')) {
    console.log(leadingComment(moduleUrl));
    process.exit(0);
  }
  try {
    return parseArgs(config);
  } catch (e) {
    return refuseBenchFlag(moduleUrl, (e as Error).message);
  }
}

/**
 * A flag value the benchmark at `moduleUrl` cannot take (found after parsing: a range, a choice, a JSON
 * shape): prints `NAME: message` and the usage on stderr and exits with 2, as for a flag parseArgs refuses.
 */
export function refuseBenchFlag(moduleUrl: string, message: string): never {
  const name = fileURLToPath(moduleUrl).replace(/^.*\//, '');
  console.error(`${name}: ${message}\n\n${leadingComment(moduleUrl)}`);
  process.exit(2);
}
