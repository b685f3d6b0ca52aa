// The worker threads never keep Node alive: after dispose() the process exits at once, and a process
// that forgets dispose() exits too (the workers are unref'd). Each case runs in a child process.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';

const kernelsUrl = new URL('../../../src/platforms/cpu/wasm-kernels.js', import.meta.url).href;

function runChild(body: string): { status: number | null; stdout: string; stderr: string; ms: number } {
  const script = `
    const { createWasmKernels } = await import(${JSON.stringify(kernelsUrl)});
    const kernels = await createWasmKernels({ numThreads: 2, minSecondsPerThread: 0 });
    const w = kernels.prepareLinear({ dtype: 'f32', data: new Float32Array(64 * 32).fill(1) }, 64, 32, 'f32');
    const out = new Float32Array(2 * 64);
    kernels.linear(out, new Float32Array(2 * 32).fill(1), w, 2);
    if (out[0] !== 32) throw new Error('bad result ' + out[0]);
    ${body}
    console.log('done');
  `;
  const t0 = Date.now();
  const res = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    encoding: 'utf8',
    timeout: 30_000,
  });
  return { status: res.status, stdout: res.stdout, stderr: res.stderr, ms: Date.now() - t0 };
}

describe('wasm kernels dispose', () => {
  it('lets the process exit after dispose()', () => {
    const r = runChild(
      'await kernels.dispose(); assert: { try { kernels.linear(out, out, w, 1); } catch (e) { console.log(e.name); } }',
    );
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /WasmKernelsError\ndone/);
  });

  it('lets the process exit when dispose() is forgotten', () => {
    const r = runChild('');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /done/);
    assert.ok(r.ms < 20_000, `took ${r.ms} ms`);
  });
});
