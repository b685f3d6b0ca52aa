// The addon in a worker thread that ends: `duet serve` runs the engine, and so the addon, on a worker
// thread, which ends at shutdown or is terminated when the engine dies. Such a worker holding prepared
// weights used to take the whole process down: a segmentation fault in libgomp's pool threads after the
// worker was gone, or an abort from a Node-API error thrown while the worker was being terminated in the
// middle of a native call. A child process runs the workers, so a crash fails this test, not the runner.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { skipReason } from './onednn-available.js';

const ADDON = new URL('../dist/addon.js', import.meta.url).href;

/** A script that starts `rounds` workers using the addon and terminates each, idle or mid-call. */
function script(busy: boolean, rounds: number): string {
  const worker = `
    const { loadAddon } = await import(${JSON.stringify(ADDON)});
    const c = new (loadAddon().addon.Context)(2);
    const m = 64, d = 2048;
    const x = new Float32Array(m * d).fill(1), o = new Float32Array(m * d), w = new Float32Array(d).fill(1);
    const weight = c.prepare(2, new Int8Array(256 * 2048).fill(1), 256, 2048);
    (await import('node:worker_threads')).parentPort.postMessage('ready');
    ${busy ? 'for (;;) c.rmsNorm(o, x, w, m, d, 1e-6);' : ''}
  `;
  return `
    import { Worker } from 'node:worker_threads';
    for (let i = 0; i < ${rounds}; i++) {
      const w = new Worker(${JSON.stringify(worker)}, { eval: true });
      await new Promise((r) => w.once('message', r));
      await new Promise((r) => setTimeout(r, (i * 7) % 20));
      await w.terminate();
    }
    console.log('survived');
  `;
}

function run(busy: boolean, rounds: number) {
  return spawnSync(process.execPath, ['--input-type=module', '-e', script(busy, rounds)], {
    encoding: 'utf8',
    timeout: 120_000,
  });
}

describe('the addon on a worker thread that ends', { skip: skipReason() }, () => {
  it('a worker holding weights, terminated while idle: the process lives on', () => {
    const r = run(false, 3);
    assert.equal(r.signal, null, `killed by ${r.signal}: ${r.stderr}`);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /survived/);
  });

  it('workers terminated in the middle of native calls: the process lives on', () => {
    // Each of 20 workers is terminated at another moment of its loop of native calls.
    const r = run(true, 20);
    assert.equal(r.signal, null, `killed by ${r.signal}: ${r.stderr}`);
    assert.equal(r.status, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /terminate called/);
    assert.match(r.stdout, /survived/);
  });
});
