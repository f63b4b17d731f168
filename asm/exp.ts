// exp for x <= 0 in f32: XNNPACK's rr2-p5 (range reduction x = n ln2 + t with ln2 split hi/lo, magic-bias
// rounding, degree-5 minimax polynomial), flushed to exactly 0 below -87.34 so no denormal is ever produced.
// Max error 2.3 ulp on [-87.34, 0]. The scalar twin runs the same f32 operations in the same order, so a
// SIMD lane and a tail element give bit-identical results. Wasm SIMD has no fused multiply-add: mul then add.

// @ts-ignore: decorator
@inline export const LOG2E: f32 = reinterpret<f32>(0x3FB8AA3B);
// @ts-ignore: decorator
@inline export const MAGIC: f32 = reinterpret<f32>(0x4B40007F); // 1.5*2^23 + 127: rounds and pre-biases n
// @ts-ignore: decorator
@inline const MLN2HI: f32 = reinterpret<f32>(0xBF317200);
// @ts-ignore: decorator
@inline const MLN2LO: f32 = reinterpret<f32>(0xB5BFBE8E);
// @ts-ignore: decorator
@inline const C5: f32 = reinterpret<f32>(0x3C07CFCE);
// @ts-ignore: decorator
@inline const C4: f32 = reinterpret<f32>(0x3D2B9D0D);
// @ts-ignore: decorator
@inline const C3: f32 = reinterpret<f32>(0x3E2AAD40);
// @ts-ignore: decorator
@inline const C2: f32 = reinterpret<f32>(0x3EFFFEE3);
// @ts-ignore: decorator
@inline const C1: f32 = reinterpret<f32>(0x3F7FFFFB);
// @ts-ignore: decorator
@inline export const CUTOFF: f32 = reinterpret<f32>(0xC2AEAC4F); // -87.33654

/** The polynomial part: exp(t) - 1 ≈ t * p(t) for |t| <= ln2/2. */
// @ts-ignore: decorator
@inline export function poly_f32x4(t: v128): v128 {
  let p = f32x4.add(f32x4.mul(f32x4.splat(C5), t), f32x4.splat(C4));
  p = f32x4.add(f32x4.mul(p, t), f32x4.splat(C3));
  p = f32x4.add(f32x4.mul(p, t), f32x4.splat(C2));
  return f32x4.add(f32x4.mul(p, t), f32x4.splat(C1));
}

// @ts-ignore: decorator
@inline export function poly_f32(t: f32): f32 {
  let p = C5 * t + C4;
  p = p * t + C3;
  p = p * t + C2;
  return p * t + C1;
}

/** exp(x) for x <= 0, four lanes; 0 below -87.34 (and for -Infinity); NaN stays NaN. */
// @ts-ignore: decorator
@inline export function exp_f32x4(x: v128): v128 {
  let n = f32x4.add(f32x4.mul(x, f32x4.splat(LOG2E)), f32x4.splat(MAGIC));
  const s = i32x4.shl(n, 23);
  n = f32x4.sub(n, f32x4.splat(MAGIC));
  let t = f32x4.add(f32x4.mul(n, f32x4.splat(MLN2HI)), x);
  t = f32x4.add(f32x4.mul(n, f32x4.splat(MLN2LO)), t);
  const p = poly_f32x4(t);
  t = f32x4.mul(t, s);
  const f = f32x4.add(f32x4.mul(t, p), s);
  return v128.andnot(f, f32x4.lt(x, f32x4.splat(CUTOFF)));
}

/** Scalar twin of exp_f32x4, bit-identical per element. */
// @ts-ignore: decorator
@inline export function exp_f32(x: f32): f32 {
  let n = x * LOG2E + MAGIC;
  const s = reinterpret<f32>(reinterpret<i32>(n) << 23);
  n -= MAGIC;
  let t = n * MLN2HI + x;
  t = n * MLN2LO + t;
  const p = poly_f32(t);
  t *= s;
  const f = t * p + s;
  return x < CUTOFF ? 0 : f;
}

/** acc (f64x2) + the four f32 lanes of v, promoted: folds an f32 partial sum into f64. */
// @ts-ignore: decorator
@inline export function promote_add(acc: v128, v: v128): v128 {
  return f64x2.add(f64x2.add(acc, f64x2.promote_low_f32x4(v)), f64x2.promote_low_f32x4(i32x4.shuffle(v, v, 2, 3, 0, 1)));
}

/** The f64 sum of the two lanes of an f64x2. */
// @ts-ignore: decorator
@inline export function hsum_f64x2(v: v128): f64 {
  return f64x2.extract_lane(v, 0) + f64x2.extract_lane(v, 1);
}

/** Largest element of n f32 at p; NaN if any is NaN (wasm max propagates NaN). */
export function rowmax_f32(p: usize, n: i32): f32 {
  let m0 = f32x4.splat(-Infinity), m1 = m0;
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    m0 = f32x4.max(m0, v128.load(p + (<usize>i << 2)));
    m1 = f32x4.max(m1, v128.load(p + (<usize>i << 2), 16));
  }
  for (; i + 4 <= n; i += 4) m0 = f32x4.max(m0, v128.load(p + (<usize>i << 2)));
  m0 = f32x4.max(m0, m1);
  let m = max(max(f32x4.extract_lane(m0, 0), f32x4.extract_lane(m0, 1)), max(f32x4.extract_lane(m0, 2), f32x4.extract_lane(m0, 3)));
  for (; i < n; i++) m = max(m, load<f32>(p + (<usize>i << 2)));
  return m;
}
