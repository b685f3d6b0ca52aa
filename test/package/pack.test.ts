// The package as a new user gets it: `npm pack`, installed from the tarball into an empty project (offline,
// from npm's cache: no network), then every TypeScript snippet of README.md and docs/*.md that imports
// `duet` is type-checked against the installed package's declarations and run with Node. The only edits to
// a snippet are its placeholders: the model path (the tiny fixture, with a chat template added), the
// context length (the fixture's is 256) and the server URL (a server this test starts on a free port).
// Also: the installed `duet --version` prints the package's version inside another project.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { engineConfigFromLLMOptions } from '../../src/engine/llm.js';
import { type DuetServer, startServer } from '../../src/server/server.js';
import { fixtureDir } from '../helpers/golden.js';
import { describeProcess, type ProcessResult, runProcess } from '../helpers/run-process.js';

const ROOT = join(fixtureDir('v2-tiny'), '..', '..', '..');
const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  version: string;
  dependencies: Record<string, string>;
  bin: Record<string, string>;
};

/**
 * A platform plugin written with the contract's types (not plain-JS compatible, unlike the docs'
 * snippets): a Platform of its own whose kernels delegate to the CPU platform's, a Communicator-typed
 * helper, and the plugin object with an explicit PlatformPlugin annotation.
 */
const TYPED_PLUGIN_SOURCE = `import {
  type Communicator,
  CpuPlatform,
  type KernelOptions,
  type Kernels,
  PLATFORM_CONTRACT_VERSION,
  type Platform,
  type PlatformNotice,
  type PlatformPlugin,
  type PlatformProbe,
} from 'duet';

/** The world size a communicator reports (a plugin's own collectives would implement Communicator). */
export function worldSizeOf(comm: Communicator): number {
  return comm.worldSize;
}

class TypedPlatform implements Platform {
  readonly name = 'typedcpu';
  private readonly cpu = new CpuPlatform();
  readonly deviceName = this.cpu.deviceName;
  prepareThread(): void {
    this.cpu.prepareThread();
  }
  totalMemoryBytes(): number {
    return this.cpu.totalMemoryBytes();
  }
  availableMemoryBytes(): number {
    return this.cpu.availableMemoryBytes();
  }
  async createKernels(opts?: KernelOptions): Promise<Kernels> {
    const kernels: Kernels = await this.cpu.createKernels(opts);
    return kernels;
  }
  checkConfig(settings: Readonly<Record<string, unknown>>): PlatformNotice[] {
    return this.cpu.checkConfig(settings);
  }
}

export const platformPlugin: PlatformPlugin = {
  name: 'typedcpu',
  contractVersion: PLATFORM_CONTRACT_VERSION,
  async probe(): Promise<PlatformProbe> {
    return { available: true, reason: 'delegates to the CPU kernels' };
  },
  async create(): Promise<Platform> {
    return new TypedPlatform();
  },
};
`;

interface Snippet {
  readonly doc: string;
  readonly code: string;
}

/** The ```ts blocks of README.md and docs/*.md that import the package. */
function documentedSnippets(): Snippet[] {
  const docs = ['README.md', ...readdirSync(join(ROOT, 'docs')).map((f) => join('docs', f))].filter((f) =>
    f.endsWith('.md'),
  );
  const snippets: Snippet[] = [];
  for (const doc of docs) {
    const text = readFileSync(join(ROOT, doc), 'utf8');
    for (const m of text.matchAll(/```ts\n([\s\S]*?)```/g)) {
      if (/from 'duet[/']/.test(m[1]!)) snippets.push({ doc, code: m[1]! });
    }
  }
  return snippets;
}

function run(cmd: string, args: string[], cwd: string, timeoutMs: number): Promise<ProcessResult> {
  return runProcess(cmd, args, { cwd, timeoutMs });
}

/**
 * An empty project depending on the tarball, with a lockfile holding the repository's locked versions of
 * the package's runtime dependencies (no dev dependency), so `npm ci --offline` installs from the cache.
 */
function writeConsumerProject(dir: string, tarball: string): void {
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, { dev?: boolean; devOptional?: boolean }>;
  };
  const spec = `file:${tarball}`;
  const packages: Record<string, unknown> = {
    '': { name: 'consumer', version: '9.9.9', dependencies: { duet: spec } },
    'node_modules/duet': {
      version: PKG.version,
      resolved: spec,
      dependencies: PKG.dependencies,
      bin: PKG.bin,
    },
  };
  for (const [path, entry] of Object.entries(lock.packages)) {
    if (path !== '' && !entry.dev && !entry.devOptional) packages[path] = entry;
  }
  const manifest = { name: 'consumer', version: '9.9.9', private: true, type: 'module' };
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ ...manifest, dependencies: { duet: spec } }));
  writeFileSync(
    join(dir, 'package-lock.json'),
    JSON.stringify({ name: 'consumer', version: '9.9.9', lockfileVersion: 3, requires: true, packages }),
  );
}

/** The tiny fixture model plus a chat template (the README's snippet calls `llm.chat`). */
function modelWithChatTemplate(dir: string): string {
  const model = join(dir, 'model');
  mkdirSync(model);
  const src = fixtureDir('v2-tiny');
  for (const f of [
    'config.json',
    'generation_config.json',
    'model.safetensors',
    'tokenizer.json',
    'tokenizer_config.json',
  ]) {
    copyFileSync(join(src, f), join(model, f));
  }
  writeFileSync(join(model, 'chat_template.jinja'), '{% for m in messages %}{{ m.content }}\n{% endfor %}');
  return model;
}

describe('the packed package', () => {
  const dir = mkdtempSync(join(tmpdir(), 'duet-pack-'));
  const project = join(dir, 'project');
  let server: DuetServer | undefined;
  let model = '';

  before(async () => {
    mkdirSync(project);
    const pack = await run('npm', ['pack', '--json', '--pack-destination', dir], ROOT, 120_000);
    assert.equal(pack.status, 0, describeProcess(pack));
    const tarball = (JSON.parse(pack.stdout) as { filename: string }[])[0]!.filename;
    copyFileSync(join(dir, tarball), join(project, tarball));
    writeConsumerProject(project, tarball);
    // --offline: only npm's cache (filled by the repository's own `npm ci`), never the network.
    const install = await run(
      'npm',
      ['ci', '--offline', '--no-audit', '--no-fund', '--ignore-scripts'],
      project,
      180_000,
    );
    assert.equal(install.status, 0, describeProcess(install));
    model = modelWithChatTemplate(dir);
    server = await startServer({ engineConfig: engineConfigFromLLMOptions({ model }), port: 0 });
  });

  after(async () => {
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const snippets = documentedSnippets();

  test('the docs show the package entry points, never a path inside dist/', () => {
    for (const doc of ['README.md', 'docs/serve.md', 'docs/bench.md']) {
      assert.ok(
        snippets.some((s) => s.doc === doc),
        `${doc} has a snippet importing duet`,
      );
    }
    for (const s of snippets)
      assert.doesNotMatch(s.code, /from 'duet\/dist/, `${s.doc} imports through exports`);
  });

  /** The snippet with its placeholders filled in. */
  function filled(s: Snippet): string {
    return s.code
      .replaceAll("'path/to/model'", JSON.stringify(model))
      .replaceAll('maxModelLen: 4096', 'maxModelLen: 256')
      .replaceAll("'http://127.0.0.1:8000'", JSON.stringify(server!.url));
  }

  test("every snippet type-checks against the installed package's declarations", async () => {
    snippets.forEach((s, i) => {
      writeFileSync(join(project, `snippet-${i}.ts`), filled(s));
    });
    writeFileSync(
      join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          noEmit: true,
          skipLibCheck: true,
          types: ['node'],
          typeRoots: [join(ROOT, 'node_modules', '@types')],
        },
        include: ['snippet-*.ts'],
      }),
    );
    const tsc = await run(
      process.execPath,
      [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', '.'],
      project,
      120_000,
    );
    assert.equal(tsc.status, 0, describeProcess(tsc));
  });

  snippets.forEach((s, i) => {
    test(`${s.doc} snippet ${i} runs against the installed package`, async () => {
      const file = join(project, `run-${i}.mjs`);
      writeFileSync(file, filled(s));
      const r = await run(process.execPath, [file], project, 120_000);
      assert.equal(r.status, 0, describeProcess(r));
      const lines = r.stdout.trim().split('\n');
      if (s.code.includes('startServer')) assert.match(lines[0] ?? '', /^http:\/\/127\.0\.0\.1:\d+$/);
      if (s.code.includes('runServeBenchmark')) {
        // The snippet prints the mean TTFT in ms: a real run of its 8 requests against the test's server.
        const ttft = Number(lines.at(-1));
        assert.ok(Number.isFinite(ttft) && ttft > 0, `mean TTFT printed: ${lines.at(-1)}`);
      }
    });
  });

  test('a typed platform plugin compiles against the installed package and is discovered there', async () => {
    // A plugin package inside the consumer project, written in TypeScript against duet's declarations.
    const plugin = join(project, 'node_modules', 'typed-plugin');
    mkdirSync(join(plugin, 'src'), { recursive: true });
    writeFileSync(
      join(plugin, 'package.json'),
      JSON.stringify({
        name: 'typed-plugin',
        type: 'module',
        duet: { contractVersion: 1, platforms: [{ name: 'typedcpu', entry: './dist/index.js' }] },
      }),
    );
    writeFileSync(join(plugin, 'src', 'index.ts'), TYPED_PLUGIN_SOURCE);
    writeFileSync(
      join(plugin, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          noUncheckedIndexedAccess: true,
          declaration: true,
          outDir: 'dist',
          types: ['node'],
          typeRoots: [join(ROOT, 'node_modules', '@types')],
        },
        include: ['src'],
      }),
    );
    const tsc = await run(
      process.execPath,
      [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', '.'],
      plugin,
      120_000,
    );
    assert.equal(tsc.status, 0, describeProcess(tsc));
    const env = spawnSync(join(project, 'node_modules', '.bin', 'duet'), ['env', '--json'], {
      cwd: project,
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(env.status, 0, describeProcess(env));
    const report = JSON.parse(env.stdout) as {
      platforms: { name: string; usable: boolean; reason: string }[];
    };
    assert.deepEqual(
      report.platforms.find((p) => p.name === 'typedcpu'),
      {
        name: 'typedcpu',
        source: 'typed-plugin',
        usable: true,
        reason: 'delegates to the CPU kernels',
        priority: 10,
      },
    );
  });

  test("the installed duet --version prints the package's version inside another project", () => {
    const r = spawnSync(join(project, 'node_modules', '.bin', 'duet'), ['--version'], {
      cwd: project,
      encoding: 'utf8',
      timeout: 60_000,
      env: { ...process.env, npm_package_version: '9.9.9' },
    });
    assert.equal(r.status, 0, describeProcess(r));
    assert.equal(r.stdout.trim(), PKG.version);
  });
});
