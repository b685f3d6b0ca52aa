// Operator kernels (everything but GEMM): flat functions over byte offsets into the shared memory,
// output first. See src/kernels/kernels.ts for the contract and src/platforms/cpu/wasm-ops.ts for the binding.

export { argmax } from './argmax';
export {
  mha_attention,
  mla_attention,
  mla_attention_batch,
  mla_attention_scratch_bytes,
} from './mla-attention';
export { rms_norm } from './rms-norm';
export { rope } from './rope';
export { silu_and_mul } from './silu-and-mul';
export { softmax } from './softmax';
export { top_k } from './top-k';
