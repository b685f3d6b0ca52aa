// Int8 (W8A8) kernels: per-token and per-token-group activation quantization, the int8 GEMM/GEMV over
// packed int8 weights (gemm-i8-group.ts: with group scales), and a register-only peak of the int8 dot for
// the benchmark. See gemm-i8.ts for the layouts.
export { gemm_i8 } from './gemm-i8';
export { gemm_i8_group } from './gemm-i8-group';
export { i8_dot_peak } from './peak';
export { quant_dynamic, quant_dynamic_group, quant_static } from './quantize';
