// The count of bytes the CPU kernels copy in and out of WebAssembly memory, shared by the kernel set
// (wasm-kernels.ts) and the threaded kernels it drives (attention-kernels.ts, int8-linear.ts).

/** Bytes the kernels copied between callers' arrays and the arenas (zero for arrays that live there). */
export interface CopyStats {
  bytesIn: number;
  bytesOut: number;
}
