// exp for x <= 0 in f32: XNNPACK's rr2-p5 (range reduction x = n ln2 + t with ln2 split hi/lo, magic-bias
// rounding, degree-5 minimax polynomial), flushed to exactly 0 below -87.34 so no denormal is ever produced.
// Max error 2.3 ulp on [-87.34, 0]. The scalar twin runs the same f32 operations in the same order, so a
// SIMD lane and a tail element give bit-identical results. Wasm SIMD has no fused multiply-add: mul then add.

// @ts-ignore: decorator
@inline export const LOG2E: f32 = reinterpret<f32>(0x3FB8AA3B);
// @ts-ignore: decorator
@inline export const MAGIC: f32 = reinterpret<f32>(0x4B40007F); // 1.5*2^23 + 127: rounds and pre-biases n
// @ts-ignore: decorator
@inline export const MLN2HI: f32 = reinterpret<f32>(0xBF317200);
// @ts-ignore: decorator
@inline export const MLN2LO: f32 = reinterpret<f32>(0xB5BFBE8E);
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

/** Largest / smallest lane (no NaN can be in a pmax/pmin accumulator). */
// @ts-ignore: decorator
@inline export function hmax_f32x4(a: v128): f32 {
  a = f32x4.pmax(a, i32x4.shuffle(a, a, 2, 3, 0, 1));
  a = f32x4.pmax(a, i32x4.shuffle(a, a, 1, 0, 3, 2));
  return f32x4.extract_lane(a, 0);
}
// @ts-ignore: decorator
@inline export function hmin_f32x4(a: v128): f32 {
  a = f32x4.pmin(a, i32x4.shuffle(a, a, 2, 3, 0, 1));
  a = f32x4.pmin(a, i32x4.shuffle(a, a, 1, 0, 3, 2));
  return f32x4.extract_lane(a, 0);
}

/** The f64 sum of the two lanes of an f64x2. */
// @ts-ignore: decorator
@inline export function hsum_f64x2(v: v128): f64 {
  return f64x2.extract_lane(v, 0) + f64x2.extract_lane(v, 1);
}

/**
 * Largest element of n f32 at p; NaN if any is NaN. pmax (one instruction; f32x4.max costs ~7 on x86 for
 * its NaN rule) over four accumulators, with NaN tracked separately by x != x.
 */
export function rowmax_f32(p: usize, n: i32): f32 {
  let m0 = f32x4.splat(-Infinity), m1 = m0, m2 = m0, m3 = m0;
  let nan = i32x4.splat(0);
  let i = 0;
  for (; i + 16 <= n; i += 16) {
    const o = <usize>i << 2;
    const v0 = v128.load(p + o), v1 = v128.load(p + o, 16), v2 = v128.load(p + o, 32), v3 = v128.load(p + o, 48);
    m0 = f32x4.pmax(m0, v0);
    m1 = f32x4.pmax(m1, v1);
    m2 = f32x4.pmax(m2, v2);
    m3 = f32x4.pmax(m3, v3);
    nan = v128.or(nan, v128.or(v128.or(f32x4.ne(v0, v0), f32x4.ne(v1, v1)), v128.or(f32x4.ne(v2, v2), f32x4.ne(v3, v3))));
  }
  for (; i + 4 <= n; i += 4) {
    const v = v128.load(p + (<usize>i << 2));
    m0 = f32x4.pmax(m0, v);
    nan = v128.or(nan, f32x4.ne(v, v));
  }
  m0 = f32x4.pmax(f32x4.pmax(m0, m1), f32x4.pmax(m2, m3));
  let m = max(max(f32x4.extract_lane(m0, 0), f32x4.extract_lane(m0, 1)), max(f32x4.extract_lane(m0, 2), f32x4.extract_lane(m0, 3)));
  if (v128.any_true(nan)) m = NaN;
  for (; i < n; i++) m = max(m, load<f32>(p + (<usize>i << 2))); // f32.max propagates NaN
  return m;
}

// ---- Accurate-argument variants for the softmax family ----
// exp(x - mx) needs x - mx to within ~1e-8 absolute for a 1e-6 relative result at x - mx ~ -69, but f32 rounds
// x - mx to 0.5 ulp (up to 2e-6 there). expsub_* recovers the rounding error with TwoSum and feeds it into
// the reduced argument; expscaled_* does the whole reduction (x - mx) * scale in f64 (any temperature).

/** exp(d + c) for d <= 0 and a small correction c (|c| <= ulp(d)), absorbed after range reduction. */
// @ts-ignore: decorator
@inline export function expc_f32x4(d: v128, c: v128): v128 {
  let n = f32x4.add(f32x4.mul(d, f32x4.splat(LOG2E)), f32x4.splat(MAGIC));
  const s = i32x4.shl(n, 23);
  n = f32x4.sub(n, f32x4.splat(MAGIC));
  let t = f32x4.add(f32x4.mul(n, f32x4.splat(MLN2HI)), d);
  t = f32x4.add(f32x4.mul(n, f32x4.splat(MLN2LO)), t);
  t = f32x4.add(t, c);
  const p = poly_f32x4(t);
  t = f32x4.mul(t, s);
  const f = f32x4.add(f32x4.mul(t, p), s);
  return v128.andnot(f, f32x4.lt(d, f32x4.splat(CUTOFF)));
}

// @ts-ignore: decorator
@inline export function expc_f32(d: f32, c: f32): f32 {
  let n = d * LOG2E + MAGIC;
  const s = reinterpret<f32>(reinterpret<i32>(n) << 23);
  n -= MAGIC;
  let t = n * MLN2HI + d;
  t = n * MLN2LO + t;
  t = t + c;
  const p = poly_f32(t);
  t *= s;
  const f = t * p + s;
  return d < CUTOFF ? 0 : f;
}

/** exp(x - mx) with x - mx exact (TwoSum: d + err), nmx = splat(-mx). 0 below -87.34, and for -Infinity. */
// @ts-ignore: decorator
@inline export function expsub_f32x4(x: v128, nmx: v128): v128 {
  const d = f32x4.add(x, nmx);
  const bb = f32x4.sub(d, x);
  const err = f32x4.add(f32x4.sub(x, f32x4.sub(d, bb)), f32x4.sub(nmx, bb));
  return expc_f32x4(d, err);
}

// @ts-ignore: decorator
@inline export function expsub_f32(x: f32, nmx: f32): f32 {
  const d = x + nmx;
  const bb = d - x;
  const err = (x - (d - bb)) + (nmx - bb);
  return expc_f32(d, err);
}

// @ts-ignore: decorator
@inline export const MAGIC64: f64 = 6755399441055744.0; // 1.5 * 2^52: rounds to an integer held in the low word
// @ts-ignore: decorator
@inline export const LOG2E64: f64 = 1.4426950408889634;
// @ts-ignore: decorator
@inline export const LN2_64: f64 = 0.6931471805599453;
// @ts-ignore: decorator
@inline export const CUTOFF64: f64 = <f64>CUTOFF;

/** exp(z) for z = (x - mx) * sc with the reduction z = n ln2 + t done in f64 (mx, sc: f64x2 splats). */
// @ts-ignore: decorator
@inline export function expscaled_f32x4(x: v128, mx: v128, sc: v128): v128 {
  const zl = f64x2.mul(f64x2.sub(f64x2.promote_low_f32x4(x), mx), sc);
  const zh = f64x2.mul(f64x2.sub(f64x2.promote_low_f32x4(i32x4.shuffle(x, x, 2, 3, 0, 1)), mx), sc);
  const bl = f64x2.add(f64x2.mul(zl, f64x2.splat(LOG2E64)), f64x2.splat(MAGIC64));
  const bh = f64x2.add(f64x2.mul(zh, f64x2.splat(LOG2E64)), f64x2.splat(MAGIC64));
  const tl = f64x2.sub(zl, f64x2.mul(f64x2.sub(bl, f64x2.splat(MAGIC64)), f64x2.splat(LN2_64)));
  const th = f64x2.sub(zh, f64x2.mul(f64x2.sub(bh, f64x2.splat(MAGIC64)), f64x2.splat(LN2_64)));
  let t = i32x4.shuffle(f32x4.demote_f64x2_zero(tl), f32x4.demote_f64x2_zero(th), 0, 1, 4, 5);
  const s = i32x4.shl(i32x4.add(i32x4.shuffle(bl, bh, 0, 2, 4, 6), i32x4.splat(127)), 23);
  const p = poly_f32x4(t);
  t = f32x4.mul(t, s);
  const f = f32x4.add(f32x4.mul(t, p), s);
  const lo = f64x2.lt(zl, f64x2.splat(CUTOFF64)), hi = f64x2.lt(zh, f64x2.splat(CUTOFF64));
  return v128.andnot(f, i32x4.shuffle(lo, hi, 0, 2, 4, 6));
}

// @ts-ignore: decorator
@inline export function expscaled_f32(x: f32, mx: f64, sc: f64): f32 {
  const z = (<f64>x - mx) * sc;
  const b = z * LOG2E64 + MAGIC64;
  let t = <f32>(z - (b - MAGIC64) * LN2_64);
  const s = reinterpret<f32>((<i32>reinterpret<i64>(b) + 127) << 23);
  const p = poly_f32(t);
  t *= s;
  const f = t * p + s;
  return z < CUTOFF64 ? 0 : f;
}

// ---- row-rule helpers shared by the softmax-family kernels ----

/** Store NaN in the n elements of type T (f32 or f64) at y: a row the row rule turns into NaN. */
// @ts-ignore: decorator
@inline export function fill_nan<T>(y: usize, n: i32): void {
  let i = 0;
  if (sizeof<T>() == 4) {
    const v = f32x4.splat(NaN);
    for (; i + 4 <= n; i += 4) v128.store(y + (<usize>i << 2), v);
  }
  for (; i < n; i++) store<T>(y + <usize>i * sizeof<T>(), <T>NaN);
}

/** The row rule on a row's max: true when it is NaN, +Infinity, or -Infinity (a row of only -Infinity). */
// @ts-ignore: decorator
@inline export function bad_max<T>(m: T): bool {
  return !(m > <T>-Infinity && m < <T>Infinity);
}
