// A register-only loop of the int8 dot step that the GEMM's inner loop is made of, for the benchmark's
// peak: the relaxed i8×i7 dot widened and added as gemm-i8.ts's dot7 does (16 multiply-adds; relaxed
// build only), or i32x4.dot_i16x8_s plus its add (8 multiply-adds). Eight independent
// accumulators hide the latency; nothing touches memory inside the loop.

/**
 * Runs `iters` iterations of 8 dot steps (`relaxed` = 1: the relaxed step, relaxed build only; 0: the
 * int16 step); returns a value that depends on all of them (so none is dropped).
 */
export function i8_dot_peak(iters: i32, seed: i32, relaxed: i32): i32 {
  const a = i8x16.splat(<i8>seed);
  const b = i8x16.splat(<i8>(seed & 63));
  const ones = i16x8.splat(1);
  let c0 = i32x4.splat(seed);
  let c1 = c0;
  let c2 = c0;
  let c3 = c0;
  let c4 = c0;
  let c5 = c0;
  let c6 = c0;
  let c7 = c0;
  for (let i = 0; i < iters; i++) {
    if (ASC_FEATURE_RELAXED_SIMD && relaxed) {
      c0 = i32x4.add(c0, i32x4.dot_i16x8_s(i16x8.relaxed_dot_i8x16_i7x16_s(a, b), ones));
      c1 = i32x4.add(c1, i32x4.dot_i16x8_s(i16x8.relaxed_dot_i8x16_i7x16_s(a, b), ones));
      c2 = i32x4.add(c2, i32x4.dot_i16x8_s(i16x8.relaxed_dot_i8x16_i7x16_s(a, b), ones));
      c3 = i32x4.add(c3, i32x4.dot_i16x8_s(i16x8.relaxed_dot_i8x16_i7x16_s(a, b), ones));
      c4 = i32x4.add(c4, i32x4.dot_i16x8_s(i16x8.relaxed_dot_i8x16_i7x16_s(a, b), ones));
      c5 = i32x4.add(c5, i32x4.dot_i16x8_s(i16x8.relaxed_dot_i8x16_i7x16_s(a, b), ones));
      c6 = i32x4.add(c6, i32x4.dot_i16x8_s(i16x8.relaxed_dot_i8x16_i7x16_s(a, b), ones));
      c7 = i32x4.add(c7, i32x4.dot_i16x8_s(i16x8.relaxed_dot_i8x16_i7x16_s(a, b), ones));
    } else {
      c0 = i32x4.add(c0, i32x4.dot_i16x8_s(a, b));
      c1 = i32x4.add(c1, i32x4.dot_i16x8_s(a, b));
      c2 = i32x4.add(c2, i32x4.dot_i16x8_s(a, b));
      c3 = i32x4.add(c3, i32x4.dot_i16x8_s(a, b));
      c4 = i32x4.add(c4, i32x4.dot_i16x8_s(a, b));
      c5 = i32x4.add(c5, i32x4.dot_i16x8_s(a, b));
      c6 = i32x4.add(c6, i32x4.dot_i16x8_s(a, b));
      c7 = i32x4.add(c7, i32x4.dot_i16x8_s(a, b));
    }
  }
  const s = i32x4.add(
    i32x4.add(i32x4.add(c0, c1), i32x4.add(c2, c3)),
    i32x4.add(i32x4.add(c4, c5), i32x4.add(c6, c7)),
  );
  return i32x4.extract_lane(s, 0) ^ i32x4.extract_lane(s, 3);
}
