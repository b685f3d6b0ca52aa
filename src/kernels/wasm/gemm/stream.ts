// A streaming read of a memory range, for measuring the machine's read bandwidth in the benchmark
// beside the GEMV (which should run close to it).

/** Sum of the f32 values in [p, p + bytes) (`bytes` a multiple of 64), read once, front to back. */
export function streamSum(p: usize, bytes: usize): f32 {
  let a = f32x4.splat(0);
  let b = a;
  let c = a;
  let d = a;
  const end = p + bytes;
  for (; p < end; p += 64) {
    a = f32x4.add(a, v128.load(p));
    b = f32x4.add(b, v128.load(p, 16));
    c = f32x4.add(c, v128.load(p, 32));
    d = f32x4.add(d, v128.load(p, 48));
  }
  const s = f32x4.add(f32x4.add(a, b), f32x4.add(c, d));
  return (
    f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 1) + f32x4.extract_lane(s, 2) + f32x4.extract_lane(s, 3)
  );
}
