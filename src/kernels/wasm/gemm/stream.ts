// A streaming read of a memory range, for measuring the machine's read bandwidth in the benchmark
// beside the GEMV (which should run close to it). The range is read as 4 interleaved sequential
// streams (its 4 quarters at once), as the GEMV reads 4 weight panels at once: a core keeps more
// misses in flight over several streams than over one.

/** Sum of the f32 values in [p, p + bytes) (`bytes` a multiple of 256), read once. */
export function streamSum(p: usize, bytes: usize): f32 {
  const q = bytes >> 2;
  let a = f32x4.splat(0);
  let b = a;
  let c = a;
  let d = a;
  const end = p + q;
  for (; p < end; p += 32) {
    a = f32x4.add(a, v128.load(p));
    b = f32x4.add(b, v128.load(p + q));
    c = f32x4.add(c, v128.load(p + 2 * q));
    d = f32x4.add(d, v128.load(p + 3 * q));
    a = f32x4.add(a, v128.load(p, 16));
    b = f32x4.add(b, v128.load(p + q, 16));
    c = f32x4.add(c, v128.load(p + 2 * q, 16));
    d = f32x4.add(d, v128.load(p + 3 * q, 16));
  }
  const s = f32x4.add(f32x4.add(a, b), f32x4.add(c, d));
  return (
    f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 1) + f32x4.extract_lane(s, 2) + f32x4.extract_lane(s, 3)
  );
}
