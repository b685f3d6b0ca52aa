// AssemblyScript entry of Duet's CPU kernels: one module with every kernel, instantiated once per shared
// memory (and per worker thread). Arguments are byte offsets into that memory, output first.
// The GEMM family lives in gemm/, the other operators in ops/.
export * from './gemm/index';
export * from './int8/index';
export * from './ops/index';
