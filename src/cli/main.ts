// The `duet` command line: subcommands share the engine flags (vLLM's names; `--flag_name` spellings
// are accepted too). Errors are printed as one clear line and exit with status 1.

import { Command, CommanderError } from 'commander';
import { duetVersion } from '../util/version.js';
import { benchCommand } from './bench.js';
import { normaliseFlagSpelling } from './engine-args.js';
import { envCommand } from './env.js';
import { evalCommand } from './eval.js';
import { generateCommand } from './generate.js';
import { serveCommand } from './serve.js';

export function buildProgram(): Command {
  const program = new Command('duet')
    .description('Duet: an LLM serving engine for Node.js (DeepSeek MLA / MoE), modelled on vLLM')
    .version(duetVersion()) // Duet's own package.json, not the project it runs in
    .showHelpAfterError('(run with --help for usage)');
  program.addCommand(generateCommand());
  program.addCommand(serveCommand());
  program.addCommand(benchCommand());
  program.addCommand(evalCommand());
  program.addCommand(envCommand());
  for (const c of program.commands) c.exitOverride();
  program.exitOverride();
  return program;
}

export async function main(argv: readonly string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(normaliseFlagSpelling(argv), { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) {
      process.exitCode = e.exitCode;
      return;
    }
    const err = e as Error;
    process.stderr.write(`error: ${err.message}\n`);
    if (process.env.DUET_DEBUG === '1' && err.stack) process.stderr.write(`${err.stack}\n`);
    process.exitCode = 1;
  }
}
