// A register-only loop of the int8 dot step that the GEMM's inner loop is made of, for the benchmark's
// peak: the relaxed i8×i7 dot widened and added as gemm-i8.ts's dot7 does (16 multiply-adds; relaxed
// build only), or i32x4.dot_i16x8_s plus its add (8 multiply-adds). The 8 dot steps of an iteration
// take 8 distinct operand pairs (4 fixed vectors × 2 that change every iteration), so that the compiler
// can neither merge them nor hoist them out of the loop; nothing touches memory inside the loop.

/**
 * Runs `iters` iterations of 8 dot steps (`relaxed` = 1: the relaxed step, relaxed build only; 0: the
 * int16 step); returns a value that depends on all of them (so none is dropped).
 */
export function i8_dot_peak(iters: i32, seed: i32, relaxed: i32): i32 {
  const a0 = i8x16.splat(<i8>seed);
  const a1 = i8x16.splat(<i8>(seed + 1));
  const a2 = i8x16.splat(<i8>(seed + 2));
  const a3 = i8x16.splat(<i8>(seed + 3));
  // The changing operands stay in [0, 127] (xor with a value whose top bit is clear).
  let b0 = i8x16.splat(<i8>(seed & 63));
  let b1 = i8x16.splat(<i8>((seed + 5) & 63));
  const flip = i8x16.splat(0x15);
  const ones = i16x8.splat(1);
  let c0 = i32x4.splat(seed);
  let c1 = c0;
  let c2 = c0;
  let c3 = c0;
  if (ASC_FEATURE_RELAXED_SIMD && relaxed) {
    for (let i = 0; i < iters; i++) {
      c0 = i32x4.add(c0, i32x4.dot_i16x8_s(i16x8.relaxed_dot_i8x16_i7x16_s(a0, b0), ones));
      c1 = i32x4.add(c1, i32x4.dot_i16x8_s(i16x8.relaxed_dot_i8x16_i7x16_s(a1, b0), ones));
      c2 = i32x4.add(c2, i32x4.dot_i16x8_s(i16x8.relaxed_dot_i8x16_i7x16_s(a2, b0), ones));
      c3 = i32x4.add(c3, i32x4.dot_i16x8_s(i16x8.relaxed_dot_i8x16_i7x16_s(a3, b0), ones));
      c0 = i32x4.add(c0, i32x4.dot_i16x8_s(i16x8.relaxed_dot_i8x16_i7x16_s(a0, b1), ones));
      c1 = i32x4.add(c1, i32x4.dot_i16x8_s(i16x8.relaxed_dot_i8x16_i7x16_s(a1, b1), ones));
      c2 = i32x4.add(c2, i32x4.dot_i16x8_s(i16x8.relaxed_dot_i8x16_i7x16_s(a2, b1), ones));
      c3 = i32x4.add(c3, i32x4.dot_i16x8_s(i16x8.relaxed_dot_i8x16_i7x16_s(a3, b1), ones));
      b0 = v128.xor(b0, flip);
      b1 = v128.xor(b1, flip);
    }
  } else {
    for (let i = 0; i < iters; i++) {
      c0 = i32x4.add(c0, i32x4.dot_i16x8_s(a0, b0));
      c1 = i32x4.add(c1, i32x4.dot_i16x8_s(a1, b0));
      c2 = i32x4.add(c2, i32x4.dot_i16x8_s(a2, b0));
      c3 = i32x4.add(c3, i32x4.dot_i16x8_s(a3, b0));
      c0 = i32x4.add(c0, i32x4.dot_i16x8_s(a0, b1));
      c1 = i32x4.add(c1, i32x4.dot_i16x8_s(a1, b1));
      c2 = i32x4.add(c2, i32x4.dot_i16x8_s(a2, b1));
      c3 = i32x4.add(c3, i32x4.dot_i16x8_s(a3, b1));
      b0 = v128.xor(b0, flip);
      b1 = v128.xor(b1, flip);
    }
  }
  const s = i32x4.add(i32x4.add(c0, c1), i32x4.add(c2, c3));
  return i32x4.extract_lane(s, 0) ^ i32x4.extract_lane(s, 3);
}
