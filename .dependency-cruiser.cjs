// Duet's layering, checked by `npm run lint` (dependency-cruiser over src/). Dependencies point one way:
//
//   cli → server → engine → core / executor / sampling → dbo → models → layers → loader → platforms → kernels
//
// with the shared foundations (distributed, tokenizer, config, util) below whoever uses them, and bench
// (the `duet bench serve` client) beside the server: it speaks HTTP to a server, so it imports no engine.
// Each folder lists what it may import (besides itself); an import of anything else is an error named
// `layering-<folder>`. Cycles between files (type-only imports included) are the error `no-cycle`.
// docs/architecture.md draws the same map; change both together.

/** Foundations any folder may use. */
const BASE = ['util', 'config'];

/** For each folder under src/: the other folders it may import. */
const MAY_IMPORT = {
  util: [],
  config: ['util'],
  tokenizer: [...BASE],
  kernels: [...BASE],
  distributed: [...BASE],
  platforms: ['kernels', 'distributed', ...BASE],
  loader: ['kernels', ...BASE],
  layers: ['loader', 'platforms', 'kernels', 'distributed', ...BASE],
  models: ['layers', 'loader', 'platforms', 'kernels', 'distributed', 'tokenizer', ...BASE],
  dbo: ['models', 'layers', 'loader', 'platforms', 'kernels', 'distributed', ...BASE],
  // The scheduling core is pure bookkeeping: no tensors, no threads (see also `core-is-pure`).
  core: [...BASE],
  // Sampling works on logits; it knows nothing of the engine, the scheduler or the ranks.
  sampling: ['kernels', ...BASE],
  // The executor runs a scheduler output (core's contract) on the ranks.
  executor: [
    'core',
    'dbo',
    'models',
    'layers',
    'loader',
    'platforms',
    'kernels',
    'distributed',
    'tokenizer',
    ...BASE,
  ],
  engine: [
    'core',
    'executor',
    'sampling',
    'dbo',
    'models',
    'layers',
    'loader',
    'platforms',
    'kernels',
    'distributed',
    'tokenizer',
    ...BASE,
  ],
  server: [
    'engine',
    'core',
    'executor',
    'sampling',
    'dbo',
    'models',
    'layers',
    'loader',
    'platforms',
    'kernels',
    'distributed',
    'tokenizer',
    ...BASE,
  ],
  // The benchmark client: the tokenizer (to size prompts) and a seeded random stream, nothing that serves.
  bench: ['tokenizer', 'sampling/sampling-rng.ts', ...BASE],
};

const FOLDERS = Object.keys(MAY_IMPORT);

/** `^src/(a|b|c)(/|$)`: a path under any of the given folders (or files, for `dir/file.ts` entries). */
const under = (names) => `^src/(${names.map((n) => n.replace(/[.]/g, '\\.')).join('|')})(/|$)`;

const layering = FOLDERS.map((folder) => ({
  name: `layering-${folder}`,
  comment: `src/${folder} may import only ${MAY_IMPORT[folder].join(', ') || 'nothing else in src'} (see .dependency-cruiser.cjs)`,
  severity: 'error',
  from: { path: under([folder]) },
  to: { path: '^src/', pathNot: under([folder, ...MAY_IMPORT[folder]]) },
}));

module.exports = {
  forbidden: [
    ...layering,
    {
      name: 'layering-unplaced-folder',
      comment:
        'every folder under src/ has a place in MAY_IMPORT (.dependency-cruiser.cjs); cli and index.ts may import all',
      severity: 'error',
      from: { path: '^src/[^/]+/', pathNot: under([...FOLDERS, 'cli']) },
      to: { path: '^src/' },
    },
    {
      name: 'no-cycle',
      comment: 'no import cycles between files (type-only imports count): a cycle is a layering knot',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'core-is-pure',
      comment: 'the scheduling core uses no Node built-ins: plain data in and out, tested without a model',
      severity: 'error',
      from: { path: '^src/core/' },
      to: { dependencyTypes: ['core'] },
    },
  ],
  options: {
    tsConfig: { fileName: 'tsconfig.json' },
    // Type-only imports are dependencies too: a type from an upper layer couples the layers.
    tsPreCompilationDeps: true,
    // The AssemblyScript kernel sources are another language, compiled apart.
    exclude: { path: '^src/kernels/wasm/' },
    doNotFollow: { path: 'node_modules' },
  },
};
