// Element-wise float32 sums used by the reductions. Every rank sums in the same order (rank order for
// the shared-memory and small-message paths), so all ranks end with bitwise-identical results.

/** out[i] = a[i] + b[i].  out, a, b: [n] (out may alias a or b). */
export function sum2(out: Float32Array, a: Float32Array, b: Float32Array): void {
  const n = out.length;
  for (let i = 0; i < n; i++) out[i] = a[i]! + b[i]!;
}

/** acc[i] += x[i].  acc, x: [n]. */
export function addInto(acc: Float32Array, x: Float32Array): void {
  const n = acc.length;
  for (let i = 0; i < n; i++) acc[i] = acc[i]! + x[i]!;
}

/** out = srcs[0] + srcs[1] + ... in that order.  out: [n], srcs: k arrays of [n] (k >= 1). */
export function sumInOrder(out: Float32Array, srcs: readonly Float32Array[]): void {
  if (srcs.length === 1) {
    out.set(srcs[0]!);
    return;
  }
  sum2(out, srcs[0]!, srcs[1]!);
  for (let k = 2; k < srcs.length; k++) addInto(out, srcs[k]!);
}
