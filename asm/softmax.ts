// Softmax family kernels over row-major [rows, cols] f32 arrays. Pointers are byte addresses in linear memory.
// Row rule (all kernels): a row holding NaN or +Infinity, or made only of -Infinity, comes out all NaN,
// as in PyTorch; other rows are never touched by it. `scale` is 1/temperature (f64, not rounded to f32).
// Every kernel may run in place (y == x).
import {
  bad_max, fill_nan, exp_f32, exp_f32x4, expsub_f32, expsub_f32x4, expscaled_f32, expscaled_f32x4, poly_f32, poly_f32x4, promote_add, hsum_f64x2, hmax_f32x4, hmin_f32x4,
  LOG2E, MAGIC, MLN2HI, MLN2LO, LOG2E64, LN2_64, MAGIC64,
} from "./exp";

// ---- exp of (x - mx) * scale, one row, optionally stored, summed in f64 ----
// Decided per row from its max mx and min mn (scale == 1 unless said):
//   mode 4/5 (mx in [-18, 60]): no subtraction at all: exp(x) itself, and the normalization divides by
//     sum exp(x) instead of sum exp(x - mx). Nothing overflows (exp(60) * 16 terms per f32 partial sum), and
//     every output >= 1e-30 has x >= mx - 69 >= -87.1, above the flush point. Mode 4 when mn >= -87 (no
//     flush mask needed), mode 5 (masked) otherwise, e.g. -Infinity entries.
//   Otherwise x - mx in f32 with its rounding error recovered exactly and fed into the reduced argument:
//   mode 1 (mx <= 0, so |x| >= |mx|) and mode 2 (mn >= -mx, so |x| <= mx): Fast2Sum, 2 ops, no mask
//     (mn - mx >= -87); mode 0 (anything else): TwoSum, 5 ops, masked.
// Any other scale: the reduction (x - mx) * scale in f64 (expscaled). f32 partial sums (two accumulators of
// 8 vectors) fold into f64 every 64 elements. Scalar tails use TwoSum + mask: the recovered error is exact
// in every mode and the mask only zeroes what would flush, so every element gets the same bits wherever it sits.

/** exp(d + c) (c absorbed after the reduction when hasC) for d in [-87, 88]: no flush mask. */
// @ts-ignore: decorator
@inline function exp_nomask_f32x4(d: v128, c: v128, hasC: bool): v128 {
  let n = f32x4.add(f32x4.mul(d, f32x4.splat(LOG2E)), f32x4.splat(MAGIC));
  const s = i32x4.shl(n, 23);
  n = f32x4.sub(n, f32x4.splat(MAGIC));
  let t = f32x4.add(f32x4.mul(n, f32x4.splat(MLN2HI)), d);
  t = f32x4.add(f32x4.mul(n, f32x4.splat(MLN2LO)), t);
  if (hasC) t = f32x4.add(t, c);
  const p = poly_f32x4(t);
  t = f32x4.mul(t, s);
  return f32x4.add(f32x4.mul(t, p), s);
}

/** exp(x - mx), or exp(x) in modes 4/5, for one vector by mode (see above). */
// @ts-ignore: decorator
@inline function expmode_f32x4(x: v128, nmx: v128, mode: i32): v128 {
  if (mode == 0) return expsub_f32x4(x, nmx);
  if (mode == 4 || mode == 6) return exp_nomask_f32x4(x, x, false);
  if (mode == 5) return exp_f32x4(x);
  const d = f32x4.add(x, nmx);
  const err = mode == 1 ? f32x4.sub(nmx, f32x4.sub(d, x)) : f32x4.sub(x, f32x4.sub(d, nmx));
  return exp_nomask_f32x4(d, err, true);
}

// @ts-ignore: decorator
@inline function exprow(x: usize, y: usize, n: i32, mx: f32, scale: f64, doStore: bool, mode: i32): f64 {
  const nmx = f32x4.splat(-mx), mx64 = f64x2.splat(<f64>mx), sc64 = f64x2.splat(scale);
  let acc = f64x2.splat(0);
  let hi = f32x4.splat(-Infinity), lo = f32x4.splat(Infinity); // mode 6: the row's max and min on the way
  let i = 0;
  for (; i + 64 <= n; i += 64) {
    let a0 = f32x4.splat(0), a1 = a0;
    for (let j = i; j < i + 64; j += 8) {
      const o = <usize>j << 2;
      const v0 = v128.load(x + o), v1 = v128.load(x + o, 16);
      if (mode == 6) {
        hi = f32x4.pmax(hi, f32x4.pmax(v0, v1));
        lo = f32x4.pmin(lo, f32x4.pmin(v0, v1));
      }
      const e0 = mode == 3 ? expscaled_f32x4(v0, mx64, sc64) : expmode_f32x4(v0, nmx, mode);
      const e1 = mode == 3 ? expscaled_f32x4(v1, mx64, sc64) : expmode_f32x4(v1, nmx, mode);
      if (doStore) {
        v128.store(y + o, e0);
        v128.store(y + o, e1, 16);
      }
      a0 = f32x4.add(a0, e0);
      a1 = f32x4.add(a1, e1);
    }
    acc = promote_add(acc, f32x4.add(a0, a1));
  }
  if (i + 4 <= n) {
    let a = f32x4.splat(0);
    for (; i + 4 <= n; i += 4) {
      const o = <usize>i << 2;
      const v = v128.load(x + o);
      if (mode == 6) {
        hi = f32x4.pmax(hi, v);
        lo = f32x4.pmin(lo, v);
      }
      const e = mode == 3 ? expscaled_f32x4(v, mx64, sc64) : expmode_f32x4(v, nmx, mode);
      if (doStore) v128.store(y + o, e);
      a = f32x4.add(a, e);
    }
    acc = promote_add(acc, a);
  }
  let s = hsum_f64x2(acc);
  let m: f32 = 0, q: f32 = 0;
  if (mode == 6) {
    m = hmax_f32x4(hi);
    q = hmin_f32x4(lo);
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    const v = load<f32>(x + o);
    if (mode == 6) {
      m = v > m ? v : m;
      q = v < q ? v : q;
    }
    const e = mode == 3 ? expscaled_f32(v, <f64>mx, scale) : mode >= 4 ? exp_f32(v) : expsub_f32(v, -mx);
    if (doStore) store<f32>(y + o, e);
    s += <f64>e;
  }
  if (mode == 6) {
    rowMax = m;
    rowMin = q;
  }
  return s;
}

/** The exp mode of a row (see above; 3 = f64 reduction for scale != 1) from its max and min. */
// @ts-ignore: decorator
@inline function mode_of(mx: f32, mn: f32, scale: f64): i32 {
  if (scale != 1) return 3;
  if (mx <= 60 && mx >= -18) return mn >= -87 ? 4 : 5;
  if (!(mn - mx >= -87)) return 0; // -Inf entries, or values that flush: masked TwoSum
  return mx <= 0 ? 1 : mn >= -mx ? 2 : 0;
}

// One function per (mode, store) so each loop is compiled (and register-allocated) on its own.
function expstore_m0(x: usize, y: usize, n: i32, mx: f32): f64 { return exprow(x, y, n, mx, 1, true, 0); }
function expstore_m1(x: usize, y: usize, n: i32, mx: f32): f64 { return exprow(x, y, n, mx, 1, true, 1); }
function expstore_m2(x: usize, y: usize, n: i32, mx: f32): f64 { return exprow(x, y, n, mx, 1, true, 2); }
function expstore_m3(x: usize, y: usize, n: i32, mx: f32, scale: f64): f64 { return exprow(x, y, n, mx, scale, true, 3); }
function expstore_m4(x: usize, y: usize, n: i32, mx: f32): f64 { return exprow(x, y, n, mx, 1, true, 4); }
function expstore_m5(x: usize, y: usize, n: i32, mx: f32): f64 { return exprow(x, y, n, mx, 1, true, 5); }
/** Mode 4 before the max is known, tracking max and min (rowMax, rowMin) for the caller to validate. */
function expstore_m6(x: usize, y: usize, n: i32): f64 { return exprow(x, y, n, 0, 1, true, 6); }
function expsum_m0(x: usize, n: i32, mx: f32): f64 { return exprow(x, 0, n, mx, 1, false, 0); }
function expsum_m1(x: usize, n: i32, mx: f32): f64 { return exprow(x, 0, n, mx, 1, false, 1); }
function expsum_m2(x: usize, n: i32, mx: f32): f64 { return exprow(x, 0, n, mx, 1, false, 2); }
function expsum_m3(x: usize, n: i32, mx: f32, scale: f64): f64 { return exprow(x, 0, n, mx, scale, false, 3); }
function expsum_m4(x: usize, n: i32, mx: f32): f64 { return exprow(x, 0, n, mx, 1, false, 4); }
function expsum_m5(x: usize, n: i32, mx: f32): f64 { return exprow(x, 0, n, mx, 1, false, 5); }
function expsum_m6(x: usize, n: i32): f64 { return exprow(x, 0, n, 0, 1, false, 6); }

/** y = exp(x) * c (mode 4: the caller has checked -87 <= x <= 60): the same bits as mode 4 then scale_f32. */
function expscale_m4(x: usize, y: usize, n: i32, c: f32): void {
  const vc = f32x4.splat(c);
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const o = <usize>i << 2;
    const e0 = exp_nomask_f32x4(v128.load(x + o), vc, false), e1 = exp_nomask_f32x4(v128.load(x + o, 16), vc, false);
    v128.store(y + o, f32x4.mul(e0, vc));
    v128.store(y + o, f32x4.mul(e1, vc), 16);
  }
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    v128.store(y + o, f32x4.mul(exp_nomask_f32x4(v128.load(x + o), vc, false), vc));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(y + o, exp_f32(load<f32>(x + o)) * c);
  }
}

/**
 * y = exp((x - mx) * scale) * K for one row, K = 1, or e^-mx in modes 4/5; returns the f64 sum of y
 * (NaN if the row holds NaN). The caller only ever divides y by this sum, so K cancels.
 */
function expstore_f32(x: usize, y: usize, n: i32, mx: f32, mn: f32, scale: f64): f64 {
  const mode = mode_of(mx, mn, scale);
  if (mode == 4) return expstore_m4(x, y, n, mx);
  if (mode == 2) return expstore_m2(x, y, n, mx);
  if (mode == 5) return expstore_m5(x, y, n, mx);
  if (mode == 1) return expstore_m1(x, y, n, mx);
  if (mode == 0) return expstore_m0(x, y, n, mx);
  return expstore_m3(x, y, n, mx, scale);
}

/** log sum exp((x - mx) * scale) for one row, nothing stored; NaN if the row holds NaN. */
function lse_f32(x: usize, n: i32, mx: f32, mn: f32, scale: f64): f64 {
  const mode = mode_of(mx, mn, scale);
  if (mode == 4) return Math.log(expsum_m4(x, n, mx)) - <f64>mx;
  if (mode == 5) return Math.log(expsum_m5(x, n, mx)) - <f64>mx;
  if (mode == 2) return Math.log(expsum_m2(x, n, mx));
  if (mode == 1) return Math.log(expsum_m1(x, n, mx));
  if (mode == 0) return Math.log(expsum_m0(x, n, mx));
  return Math.log(expsum_m3(x, n, mx, scale));
}

// Row max and min ignoring NaN (pmax/pmin: one instruction each, where max/min cost ~7 for NaN rules).
// NaN still reaches the row rule: exp(NaN - mx) is NaN, so the row's sum is NaN.
let rowMin: f32 = 0, rowMax: f32 = 0;

/** max of a row, NaN ignored; its min (NaN ignored) is left in rowMin. -Infinity for an all-NaN row. */
function rowmaxmin_f32(p: usize, n: i32): f32 {
  let a0 = f32x4.splat(-Infinity), a1 = a0, a2 = a0, a3 = a0;
  let b0 = f32x4.splat(Infinity), b1 = b0, b2 = b0, b3 = b0;
  let i = 0;
  for (; i + 16 <= n; i += 16) {
    const o = <usize>i << 2;
    const v0 = v128.load(p + o), v1 = v128.load(p + o, 16), v2 = v128.load(p + o, 32), v3 = v128.load(p + o, 48);
    a0 = f32x4.pmax(a0, v0); a1 = f32x4.pmax(a1, v1); a2 = f32x4.pmax(a2, v2); a3 = f32x4.pmax(a3, v3);
    b0 = f32x4.pmin(b0, v0); b1 = f32x4.pmin(b1, v1); b2 = f32x4.pmin(b2, v2); b3 = f32x4.pmin(b3, v3);
  }
  for (; i + 4 <= n; i += 4) {
    const v = v128.load(p + (<usize>i << 2));
    a0 = f32x4.pmax(a0, v);
    b0 = f32x4.pmin(b0, v);
  }
  a0 = f32x4.pmax(f32x4.pmax(a0, a1), f32x4.pmax(a2, a3));
  b0 = f32x4.pmin(f32x4.pmin(b0, b1), f32x4.pmin(b2, b3));
  a0 = f32x4.pmax(a0, i32x4.shuffle(a0, a0, 2, 3, 0, 1));
  b0 = f32x4.pmin(b0, i32x4.shuffle(b0, b0, 2, 3, 0, 1));
  a0 = f32x4.pmax(a0, i32x4.shuffle(a0, a0, 1, 0, 3, 2));
  b0 = f32x4.pmin(b0, i32x4.shuffle(b0, b0, 1, 0, 3, 2));
  let m = f32x4.extract_lane(a0, 0), q = f32x4.extract_lane(b0, 0);
  for (; i < n; i++) {
    const v = load<f32>(p + (<usize>i << 2));
    m = v > m ? v : m;
    q = v < q ? v : q;
  }
  rowMin = q;
  return m;
}

/**
 * y *= c over n f32, from the end backwards: the exp pass just wrote y front to back, so the end of a long
 * row is what is still in cache.
 */
function scale_f32(y: usize, n: i32, c: f32): void {
  const vc = f32x4.splat(c);
  let i = n;
  for (; i & 3; ) {
    i--;
    store<f32>(y + (<usize>i << 2), load<f32>(y + (<usize>i << 2)) * c);
  }
  if (i & 4) {
    i -= 4;
    v128.store(y + (<usize>i << 2), f32x4.mul(v128.load(y + (<usize>i << 2)), vc));
  }
  while (i > 0) {
    i -= 8;
    const o = <usize>i << 2;
    v128.store(y + o, f32x4.mul(v128.load(y + o, 16), vc), 16);
    v128.store(y + o, f32x4.mul(v128.load(y + o), vc));
  }
}

// @ts-ignore: decorator
@inline function threepass_row(xr: usize, yr: usize, cols: i32, mx: f32, mn: f32, scale: f64): void {
  const s = expstore_f32(xr, yr, cols, mx, mn, scale);
  if (!(s > 0)) { fill_nan<f32>(yr, cols); return; } // NaN in the row (the max term alone is >= e^-18)
  scale_f32(yr, cols, <f32>(1.0 / s));
}

/**
 * Three passes per row: max (and min); exp and sum (f64-folded); scale by 1/sum. The exp formula is chosen
 * per row (exprow's modes); out of place the max pass is usually fused into the exp pass (see below).
 * Error: relative <= 1e-6 for outputs >= 1e-30 (observed 4.1e-7: exp 2.3 ulp, exact x - max or none at all,
 * f32 partial sums of <= 16 terms, two roundings in the scale); outputs whose (x - max) * scale is below
 * -87.34 are flushed to 0 (rows with max in [-18, 60] may flush below x = -87.34, where every true output
 * is below 1e-30).
 */
export function softmax_f32_threepass(x: usize, y: usize, rows: i32, cols: i32, scale: f64): void {
  const stride = <usize>cols << 2;
  // Out of place, the max pass can be fused away: exp(x) is stored (mode 4) while max and min are tracked,
  // and kept if the row then qualifies for mode 4 (max in [-18, 60], min >= -87); otherwise the row is redone
  // from x, and later rows of this call skip the guess. Same operations, same order: the same bits as mode 4.
  let guess = scale == 1 && x != y;
  for (let r = 0; r < rows; r++) {
    const xr = x + <usize>r * stride, yr = y + <usize>r * stride;
    if (guess) {
      const s = expstore_m6(xr, yr, cols);
      if (rowMax <= 60 && rowMax >= -18 && rowMin >= -87) {
        if (!(s > 0)) fill_nan<f32>(yr, cols); // NaN in the row
        else scale_f32(yr, cols, <f32>(1.0 / s));
        continue;
      }
      guess = false;
    }
    const mx = rowmaxmin_f32(xr, cols);
    if (bad_max<f32>(mx)) { fill_nan<f32>(yr, cols); continue; }
    threepass_row(xr, yr, cols, mx, rowMin, scale);
  }
}

/**
 * log-softmax: y = (x - max) * scale - log(sum exp), the subtraction and scaling in f64 then rounded once.
 * Absolute error <= 0.5 ulp(|y|) + 2e-7 (the error of log sum).
 */
export function logsoftmax_f32(x: usize, y: usize, rows: i32, cols: i32, scale: f64): void {
  const stride = <usize>cols << 2;
  const sc = f64x2.splat(scale);
  for (let r = 0; r < rows; r++) {
    const xr = x + <usize>r * stride, yr = y + <usize>r * stride;
    const mx = rowmaxmin_f32(xr, cols);
    if (bad_max<f32>(mx)) { fill_nan<f32>(yr, cols); continue; }
    const lse = lse_f32(xr, cols, mx, rowMin, scale); // no store: y may be x (in place)
    if (isNaN(lse)) { fill_nan<f32>(yr, cols); continue; } // NaN in the row
    const vm = f64x2.splat(<f64>mx), vl = f64x2.splat(lse);
    let i = 0;
    for (; i + 4 <= cols; i += 4) {
      const o = <usize>i << 2;
      const v = v128.load(xr + o);
      const lo = f64x2.sub(f64x2.mul(f64x2.sub(f64x2.promote_low_f32x4(v), vm), sc), vl);
      const hi = f64x2.sub(f64x2.mul(f64x2.sub(f64x2.promote_low_f32x4(i32x4.shuffle(v, v, 2, 3, 0, 1)), vm), sc), vl);
      v128.store(yr + o, i32x4.shuffle(f32x4.demote_f64x2_zero(lo), f32x4.demote_f64x2_zero(hi), 0, 1, 4, 5));
    }
    for (; i < cols; i++) {
      const o = <usize>i << 2;
      store<f32>(yr + o, <f32>((<f64>load<f32>(xr + o) - <f64>mx) * scale - lse));
    }
  }
}

// ---- Two-pass (Dukhan & Ablavatski): exp(z) kept as m * 2^n, m = exp(t) in [0.7, 1.42], so no max pass. ----
// z = x * scale and its reduction z = n ln2 + t run in f64 (exact n for |z| < 2^22, t to 1e-16); n is read as
// an int32 from the low word of z log2e + 1.5 * 2^52. Per lane (m, n) pairs fold into an f64 (M, N) every 32
// elements. z below -2^24 (and -Infinity) is clamped there: its 2^(n - N) is 0 anyway. A row whose
// |max z| exceeds 2^22 (n no longer exact relative to its neighbours) is done three-pass instead.

// @ts-ignore: decorator
@inline const ZCLAMP: f64 = -16777216;
// @ts-ignore: decorator
@inline const ZLIMIT: f64 = 4194304;
// @ts-ignore: decorator
@inline const NMIN: i32 = -0x40000000;

/** 2^k for int32 lanes k <= 0; exactly 0 for k < -126. */
// @ts-ignore: decorator
@inline function pow2_i32x4(k: v128): v128 {
  return i32x4.shl(i32x4.max_s(i32x4.add(k, i32x4.splat(127)), i32x4.splat(0)), 23);
}

// @ts-ignore: decorator
@inline function pow2_f32(k: i32): f32 {
  return reinterpret<f32>(max(k + 127, 0) << 23);
}

// @ts-ignore: decorator
@inline function pow2_f64(k: i32): f64 {
  return k >= -1022 ? reinterpret<f64>(<i64>(k + 1023) << 52) : 0;
}

/** The f64 reduction of four z = x * sc (clamped below): biased n words in bl/bh, t returned as f32x4. */
// @ts-ignore: decorator
@inline function zl_of(v: v128, sc: v128): v128 {
  return f64x2.pmax(f64x2.splat(ZCLAMP), f64x2.mul(f64x2.promote_low_f32x4(v), sc));
}
// @ts-ignore: decorator
@inline function zh_of(v: v128, sc: v128): v128 {
  return f64x2.pmax(f64x2.splat(ZCLAMP), f64x2.mul(f64x2.promote_low_f32x4(i32x4.shuffle(v, v, 2, 3, 0, 1)), sc));
}
// @ts-ignore: decorator
@inline function b_of(z: v128): v128 {
  return f64x2.add(f64x2.mul(z, f64x2.splat(LOG2E64)), f64x2.splat(MAGIC64));
}
// @ts-ignore: decorator
@inline function m_of(zl: v128, zh: v128, bl: v128, bh: v128): v128 {
  const tl = f64x2.sub(zl, f64x2.mul(f64x2.sub(bl, f64x2.splat(MAGIC64)), f64x2.splat(LN2_64)));
  const th = f64x2.sub(zh, f64x2.mul(f64x2.sub(bh, f64x2.splat(MAGIC64)), f64x2.splat(LN2_64)));
  const t = i32x4.shuffle(f32x4.demote_f64x2_zero(tl), f32x4.demote_f64x2_zero(th), 0, 1, 4, 5);
  return f32x4.add(f32x4.mul(t, poly_f32x4(t)), f32x4.splat(1));
}

// Scalar twins (same operations, so tails match lanes bit for bit).
// @ts-ignore: decorator
@inline function z_of(v: f32, sc: f64): f64 {
  const z = <f64>v * sc;
  return z > ZCLAMP ? z : ZCLAMP;
}
// @ts-ignore: decorator
@inline function m_of_s(z: f64, b: f64): f32 {
  const t = <f32>(z - (b - MAGIC64) * LN2_64);
  return t * poly_f32(t) + 1;
}

/**
 * Two passes per row, no max pass. Where the row allows it (scale 1, max in [-18, 60], min >= -87, found
 * during pass 1) nothing can overflow or underflow, so pass 1 sums exp(x) directly and pass 2 writes
 * exp(x) / sum (the same bits as three-pass). Otherwise, and for every later row of the call once one row
 * did not qualify, Dukhan & Ablavatski: (m, n) accumulation, then y = m 2^(n - N) / M.
 * Same error bound as three-pass. Works in place (pass 1 only reads).
 */
export function softmax_f32_twopass(x: usize, y: usize, rows: i32, cols: i32, scale: f64): void {
  const stride = <usize>cols << 2;
  const sc = f64x2.splat(scale);
  let guess = scale == 1;
  for (let r = 0; r < rows; r++) {
    const xr = x + <usize>r * stride, yr = y + <usize>r * stride;
    if (guess) {
      const s = expsum_m6(xr, cols);
      if (rowMax <= 60 && rowMax >= -18 && rowMin >= -87) {
        if (!(s > 0)) fill_nan<f32>(yr, cols); // NaN in the row
        else expscale_m4(xr, yr, cols, <f32>(1.0 / s));
        continue;
      }
      guess = false;
    }
    let M: f64 = 0;
    let N: i32 = NMIN;
    let raw = f32x4.splat(-Infinity), nan = i32x4.splat(0);
    let i = 0;
    while (i + 4 <= cols) {
      let am = f32x4.splat(0), an = i32x4.splat(NMIN);
      const end = min(i + 32, cols & ~3);
      for (; i < end; i += 4) {
        const v = v128.load(xr + (<usize>i << 2));
        raw = f32x4.pmax(raw, v);
        nan = v128.or(nan, f32x4.ne(v, v));
        const zl = zl_of(v, sc), zh = zh_of(v, sc);
        const bl = b_of(zl), bh = b_of(zh);
        const m = m_of(zl, zh, bl, bh);
        const n = i32x4.shuffle(bl, bh, 0, 2, 4, 6);
        const nn = i32x4.max_s(an, n);
        am = f32x4.add(f32x4.mul(am, pow2_i32x4(i32x4.sub(an, nn))), f32x4.mul(m, pow2_i32x4(i32x4.sub(n, nn))));
        an = nn;
      }
      for (let l = 0; l < 4; l++) {
        const ln = i32x4.extract_lane(an, 0), lm = <f64>f32x4.extract_lane(am, 0);
        const NN = max(N, ln);
        M = M * pow2_f64(N - NN) + lm * pow2_f64(ln - NN);
        N = NN;
        am = i32x4.shuffle(am, am, 1, 2, 3, 0);
        an = i32x4.shuffle(an, an, 1, 2, 3, 0);
      }
    }
    let rmax = max(max(f32x4.extract_lane(raw, 0), f32x4.extract_lane(raw, 1)), max(f32x4.extract_lane(raw, 2), f32x4.extract_lane(raw, 3)));
    if (v128.any_true(nan)) rmax = NaN;
    for (; i < cols; i++) {
      const v = load<f32>(xr + (<usize>i << 2));
      rmax = max(rmax, v);
      const z = z_of(v, scale);
      const b = z * LOG2E64 + MAGIC64;
      const ln = <i32>reinterpret<i64>(b);
      const NN = max(N, ln);
      M = M * pow2_f64(N - NN) + <f64>m_of_s(z, b) * pow2_f64(ln - NN);
      N = NN;
    }
    if (bad_max<f32>(rmax)) { fill_nan<f32>(yr, cols); continue; }
    const zmax = <f64>rmax * scale;
    if (!(zmax <= ZLIMIT && zmax >= -ZLIMIT)) {
      const mx = rowmaxmin_f32(xr, cols);
      threepass_row(xr, yr, cols, mx, rowMin, scale);
      continue;
    }
    const invs = <f32>(1.0 / M);
    const inv = f32x4.splat(invs), vN = i32x4.splat(N);
    i = 0;
    for (; i + 4 <= cols; i += 4) {
      const o = <usize>i << 2;
      const v = v128.load(xr + o);
      const zl = zl_of(v, sc), zh = zh_of(v, sc);
      const bl = b_of(zl), bh = b_of(zh);
      const m = m_of(zl, zh, bl, bh);
      const p = pow2_i32x4(i32x4.sub(i32x4.shuffle(bl, bh, 0, 2, 4, 6), vN));
      v128.store(yr + o, f32x4.mul(f32x4.mul(m, p), inv));
    }
    for (; i < cols; i++) {
      const o = <usize>i << 2;
      const z = z_of(load<f32>(xr + o), scale);
      const b = z * LOG2E64 + MAGIC64;
      store<f32>(yr + o, m_of_s(z, b) * pow2_f32(<i32>reinterpret<i64>(b) - N) * invs);
    }
  }
}

// ---- StableMax: s(x) = x + 1 (x >= 0), 1 / (1 - x) (x < 0); out = s / sum s. ----

// @ts-ignore: decorator
@inline function s_f32x4(v: v128): v128 {
  const one = f32x4.splat(1);
  return v128.bitselect(f32x4.add(v, one), f32x4.div(one, f32x4.sub(one, v)), f32x4.ge(v, f32x4.splat(0)));
}

// @ts-ignore: decorator
@inline function s_f32(v: f32): f32 {
  return v >= 0 ? v + 1 : 1 / (1 - v);
}

/**
 * y = s(x) / sum s(x); the sum in f64 (so huge x cannot overflow it), the division in f64.
 * Error: relative <= 3 ulp (s is 1 ulp, the division 1 ulp).
 */
export function stablemax_f32(x: usize, y: usize, rows: i32, cols: i32): void {
  const stride = <usize>cols << 2;
  for (let r = 0; r < rows; r++) {
    const xr = x + <usize>r * stride, yr = y + <usize>r * stride;
    let acc = f64x2.splat(0);
    let i = 0;
    for (; i + 4 <= cols; i += 4) {
      const s = s_f32x4(v128.load(xr + (<usize>i << 2)));
      v128.store(yr + (<usize>i << 2), s);
      acc = promote_add(acc, s);
    }
    let sum = hsum_f64x2(acc);
    for (; i < cols; i++) {
      const s = s_f32(load<f32>(xr + (<usize>i << 2)));
      store<f32>(yr + (<usize>i << 2), s);
      sum += <f64>s;
    }
    // +Inf gives sum Inf; all -Inf gives sum 0; NaN propagates: the row rule.
    if (!(sum > 0 && sum < Infinity)) { fill_nan<f32>(yr, cols); continue; }
    const inv = f64x2.splat(1.0 / sum), invs = 1.0 / sum;
    i = 0;
    for (; i + 4 <= cols; i += 4) {
      const o = <usize>i << 2;
      const s = v128.load(yr + o);
      const lo = f64x2.mul(f64x2.promote_low_f32x4(s), inv);
      const hi = f64x2.mul(f64x2.promote_low_f32x4(i32x4.shuffle(s, s, 2, 3, 0, 1)), inv);
      v128.store(yr + o, i32x4.shuffle(f32x4.demote_f64x2_zero(lo), f32x4.demote_f64x2_zero(hi), 0, 1, 4, 5));
    }
    for (; i < cols; i++) {
      const o = <usize>i << 2;
      store<f32>(yr + o, <f32>(<f64>load<f32>(yr + o) * invs));
    }
  }
}

/** y = log s(x) - log sum s(x), in f64 then rounded. Absolute error <= 1 ulp(|y|) + 1e-15. */
export function logstablemax_f32(x: usize, y: usize, rows: i32, cols: i32): void {
  const stride = <usize>cols << 2;
  for (let r = 0; r < rows; r++) {
    const xr = x + <usize>r * stride, yr = y + <usize>r * stride;
    let sum: f64 = 0;
    for (let i = 0; i < cols; i++) {
      const v = <f64>load<f32>(xr + (<usize>i << 2));
      sum += v >= 0 ? v + 1 : 1 / (1 - v);
    }
    if (!(sum > 0 && sum < Infinity)) { fill_nan<f32>(yr, cols); continue; }
    const ls = Math.log(sum);
    for (let i = 0; i < cols; i++) {
      const v = <f64>load<f32>(xr + (<usize>i << 2));
      store<f32>(yr + (<usize>i << 2), <f32>((v >= 0 ? Math.log1p(v) : -Math.log1p(-v)) - ls));
    }
  }
}
