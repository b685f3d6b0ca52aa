// Int8 (W8A8) kernels: per-token activation quantization, the int8 GEMM/GEMV over packed int8 weights,
// and a register-only peak of the int8 dot for the benchmark. See gemm-i8.ts for the layouts.
export { gemm_i8 } from './gemm-i8';
export { i8_dot_peak } from './peak';
export { quant_dynamic, quant_static } from './quantize';
