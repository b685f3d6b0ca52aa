// GEMM kernels: the packed-weight GEMM/GEMV driver, activation packing, and a streaming read for the
// bandwidth benchmark. Everything takes byte offsets into the module's shared memory.
export { gemm, gemm_heads, gemmPackX } from './gemm';
export { streamSum } from './stream';
