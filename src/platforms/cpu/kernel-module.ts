// Loading the compiled AssemblyScript kernel module (dist/kernels/kernels[.relaxed].wasm) and binding it
// to a shared memory. The module is compiled once per process and instantiated once per memory and per
// thread; every instance of one memory shares that memory's bytes.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The GEMM exports of the kernel module (addresses are byte offsets into the instance's memory). */
export interface GemmExports {
  /** See src/kernels/wasm/gemm/gemm.ts. */
  gemm(
    out: number,
    xp: number,
    w: number,
    m: number,
    n: number,
    k: number,
    bf16: number,
    p0: number,
    p1: number,
    r0: number,
    r1: number,
    kc: number,
    buf: number,
  ): void;
  gemmPackX(xp: number, x: number, m: number, k: number, ldx: number): void;
  streamSum(p: number, bytes: number): number;
  /** Per-head GEMMs over a stack of packed weights; see src/kernels/wasm/gemm/gemm.ts. */
  gemm_heads(...args: number[]): void;
  /** A row range of batched MLA attention; see src/kernels/wasm/ops/mla-attention.ts. */
  mla_attention_batch(...args: number[]): void;
  mla_attention_scratch_bytes(numTokens: number, numHeads: number): number;
  /** A row range of multi-head (non-absorbed) attention; see src/kernels/wasm/ops/mla-attention.ts. */
  mha_attention(...args: number[]): void;
}

/** Bytes at the bottom of every memory left to the module's static data (nothing is allocated there). */
export const STATIC_RESERVE_BYTES = 64 * 1024;

/** Size of a WebAssembly page. */
export const WASM_PAGE_BYTES = 65536;

/** Where the build puts the kernel modules, relative to this file once compiled (dist/src/platforms/cpu). */
const KERNEL_DIR_URL = new URL('../../../kernels/', import.meta.url);

/** The kernel module file is missing: the AssemblyScript build has not run. */
export class KernelModuleMissingError extends Error {
  constructor(path: string, cause: unknown) {
    super(`kernel module ${path} could not be read (run \`npm run build:kernels\` first): ${String(cause)}`);
    this.name = 'KernelModuleMissingError';
  }
}

/**
 * Compiles the kernel module: the relaxed-SIMD variant when `relaxed`, else the plain SIMD one.
 * `enableWasmFeatures()` must have run before (for the relaxed variant).
 */
export function compileKernelModule(relaxed: boolean): WebAssembly.Module {
  const url = new URL(relaxed ? 'kernels.relaxed.wasm' : 'kernels.wasm', KERNEL_DIR_URL);
  const path = fileURLToPath(url);
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new KernelModuleMissingError(path, e);
  }
  return new WebAssembly.Module(bytes);
}

/** Instantiates the kernel module on a shared memory. */
export function instantiateKernels(
  module: WebAssembly.Module,
  memory: WebAssembly.Memory,
): WebAssembly.Instance {
  return new WebAssembly.Instance(module, { env: { memory, abort: abortFromWasm } });
}

/** The module's view of its GEMM exports. */
export function gemmExports(instance: WebAssembly.Instance): GemmExports {
  return instance.exports as unknown as GemmExports;
}

/** AssemblyScript's abort import (unreachable with --noAssert, kept for a module built without it). */
function abortFromWasm(_msg: number, _file: number, line: number, column: number): never {
  throw new Error(`kernel module aborted at line ${line}:${column}`);
}
