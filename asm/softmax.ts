// Softmax family kernels over row-major [rows, cols] arrays. Pointers are byte addresses in linear memory.
// Row rule (all kernels): a row holding NaN or +Infinity, or made only of -Infinity, comes out all NaN,
// as in PyTorch; other rows are never touched by it. `scale` is 1/temperature.
import { exp_f32, exp_f32x4, poly_f32, poly_f32x4, promote_add, hsum_f64x2, rowmax_f32, LOG2E } from "./exp";

// @ts-ignore: decorator
@inline function fill_nan(y: usize, n: i32): void {
  for (let i = 0; i < n; i++) store<f32>(y + (<usize>i << 2), NaN);
}

// @ts-ignore: decorator
@inline function bad_max(m: f32): bool {
  return !(m > -Infinity && m < Infinity); // NaN, +Inf, or all -Inf
}

/** y = exp((x - mx) * scale) for one row, returning sum(y) in f64: f32 lanes fold into f64 every 64 elements. */
function expstore_f32(x: usize, y: usize, n: i32, mx: f32, scale: f32): f64 {
  const vm = f32x4.splat(mx), vs = f32x4.splat(scale);
  let acc = f64x2.splat(0);
  let i = 0;
  for (; i + 64 <= n; i += 64) {
    let a0 = f32x4.splat(0), a1 = a0;
    for (let j = i; j < i + 64; j += 8) {
      const o = <usize>j << 2;
      const e0 = exp_f32x4(f32x4.mul(f32x4.sub(v128.load(x + o), vm), vs));
      const e1 = exp_f32x4(f32x4.mul(f32x4.sub(v128.load(x + o, 16), vm), vs));
      v128.store(y + o, e0);
      v128.store(y + o, e1, 16);
      a0 = f32x4.add(a0, e0);
      a1 = f32x4.add(a1, e1);
    }
    acc = promote_add(acc, f32x4.add(a0, a1));
  }
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    const e = exp_f32x4(f32x4.mul(f32x4.sub(v128.load(x + o), vm), vs));
    v128.store(y + o, e);
    acc = promote_add(acc, e);
  }
  let s = hsum_f64x2(acc);
  for (; i < n; i++) {
    const o = <usize>i << 2;
    const e = exp_f32((load<f32>(x + o) - mx) * scale);
    store<f32>(y + o, e);
    s += <f64>e;
  }
  return s;
}

/** sum exp((x - mx) * scale) in f64 without storing (f32 lanes folded into f64 every 64 elements). */
function expsum_f32(x: usize, n: i32, mx: f32, scale: f32): f64 {
  const vm = f32x4.splat(mx), vs = f32x4.splat(scale);
  let acc = f64x2.splat(0);
  let i = 0;
  while (i + 4 <= n) {
    let a = f32x4.splat(0);
    const end = min(i + 64, n & ~3);
    for (; i < end; i += 4) a = f32x4.add(a, exp_f32x4(f32x4.mul(f32x4.sub(v128.load(x + (<usize>i << 2)), vm), vs)));
    acc = promote_add(acc, a);
  }
  let s = hsum_f64x2(acc);
  for (; i < n; i++) s += <f64>exp_f32((load<f32>(x + (<usize>i << 2)) - mx) * scale);
  return s;
}

/** y *= c over n f32. */
function scale_f32(y: usize, n: i32, c: f32): void {
  const vc = f32x4.splat(c);
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(y + (<usize>i << 2), f32x4.mul(v128.load(y + (<usize>i << 2)), vc));
  for (; i < n; i++) store<f32>(y + (<usize>i << 2), load<f32>(y + (<usize>i << 2)) * c);
}

/** Three passes per row: max; exp and sum (f64-folded); scale by 1/sum. Error <= 1e-6 relative (typ. 3 ulp). */
export function softmax_f32_threepass(x: usize, y: usize, rows: i32, cols: i32, scale: f32): void {
  const stride = <usize>cols << 2;
  for (let r = 0; r < rows; r++) {
    const xr = x + <usize>r * stride, yr = y + <usize>r * stride;
    const mx = rowmax_f32(xr, cols);
    if (bad_max(mx)) { fill_nan(yr, cols); continue; }
    const s = expstore_f32(xr, yr, cols, mx, scale);
    scale_f32(yr, cols, <f32>(1.0 / s));
  }
}

/** log-softmax: y = (x - max) * scale - log(sum exp). Absolute error <= 2 ulp(|y|) + 1e-7. */
export function logsoftmax_f32(x: usize, y: usize, rows: i32, cols: i32, scale: f32): void {
  const stride = <usize>cols << 2;
  for (let r = 0; r < rows; r++) {
    const xr = x + <usize>r * stride, yr = y + <usize>r * stride;
    const mx = rowmax_f32(xr, cols);
    if (bad_max(mx)) { fill_nan(yr, cols); continue; }
    const lse = <f32>Math.log(expsum_f32(xr, cols, mx, scale)); // no store: y may be x (in place)
    const vm = f32x4.splat(mx), vs = f32x4.splat(scale), vl = f32x4.splat(lse);
    let i = 0;
    for (; i + 4 <= cols; i += 4) {
      const o = <usize>i << 2;
      v128.store(yr + o, f32x4.sub(f32x4.mul(f32x4.sub(v128.load(xr + o), vm), vs), vl));
    }
    for (; i < cols; i++) {
      const o = <usize>i << 2;
      store<f32>(yr + o, (load<f32>(xr + o) - mx) * scale - lse);
    }
  }
}

// ---- Two-pass (Dukhan & Ablavatski): exp(z) kept as m * 2^n, m = exp(t) in [0.7, 1.42], so no max pass. ----
// Range reduction runs in f64 so that z = n ln2 + t stays exact for large |z| (f32 Cody-Waite loses bits past
// |z| ~ 350); t is clamped to [-1, 1] so that even |z| ~ 1e30 gives a finite m (ties then still cancel exactly).

const LN2_F64: f64 = 0.6931471805599453;

/** m (exp of the reduced argument) and n (the power of two) for four z; n = -Inf for z = -Inf. */
// @ts-ignore: decorator
@inline function extexp_f32x4(z: v128, nOut: usize): v128 {
  const zl = f64x2.promote_low_f32x4(z), zh = f64x2.promote_low_f32x4(i32x4.shuffle(z, z, 2, 3, 0, 1));
  const nl = f64x2.nearest(f64x2.mul(zl, f64x2.splat(<f64>LOG2E)));
  const nh = f64x2.nearest(f64x2.mul(zh, f64x2.splat(<f64>LOG2E)));
  const tl = f64x2.sub(zl, f64x2.mul(nl, f64x2.splat(LN2_F64)));
  const th = f64x2.sub(zh, f64x2.mul(nh, f64x2.splat(LN2_F64)));
  let t = i32x4.shuffle(f32x4.demote_f64x2_zero(tl), f32x4.demote_f64x2_zero(th), 0, 1, 4, 5);
  t = f32x4.pmin(f32x4.splat(1), f32x4.pmax(f32x4.splat(-1), t)); // pmin/pmax: NaN t (z = -Inf) -> -1
  v128.store(nOut, i32x4.shuffle(f32x4.demote_f64x2_zero(nl), f32x4.demote_f64x2_zero(nh), 0, 1, 4, 5));
  return f32x4.add(f32x4.mul(t, poly_f32x4(t)), f32x4.splat(1));
}

// @ts-ignore: decorator
@inline function extexp_f32(z: f32, nOut: usize): f32 {
  const n = nearest<f64>(<f64>z * <f64>LOG2E);
  let t = <f32>(<f64>z - n * LN2_F64);
  t = t > 1 ? 1 : t >= -1 ? t : -1;
  store<f32>(nOut, <f32>n);
  return t * poly_f32(t) + 1;
}

/** 2^k for k <= 0 integer-valued f32 lanes; exactly 0 for k < -126 (and -Inf, NaN). */
// @ts-ignore: decorator
@inline function exp2i_f32x4(k: v128): v128 {
  const kk = f32x4.pmax(f32x4.splat(-127), k); // NaN -> -127
  return i32x4.shl(i32x4.trunc_sat_f32x4_s(f32x4.add(kk, f32x4.splat(127))), 23);
}

// @ts-ignore: decorator
@inline function exp2i_f32(k: f32): f32 {
  return k >= -126 ? reinterpret<f32>(<i32>(k + 127) << 23) : 0;
}

// @ts-ignore: decorator
@inline function exp2i_f64(k: f64): f64 {
  return k >= -1022 ? reinterpret<f64>(<i64>(k + 1023) << 52) : 0;
}

// Scratch for the lane exponents of one vector (linear memory offset 0 would be the data segment; use a global).
const nbuf = memory.data(16, 16);

/** Two passes per row: (m, n) accumulation with f64 folding every 32 elements; then y = m 2^(n-N) / M. */
export function softmax_f32_twopass(x: usize, y: usize, rows: i32, cols: i32, scale: f32): void {
  const stride = <usize>cols << 2;
  const vs = f32x4.splat(scale);
  for (let r = 0; r < rows; r++) {
    const xr = x + <usize>r * stride, yr = y + <usize>r * stride;
    let M: f64 = 0, N: f64 = -Infinity;
    let raw = f32x4.splat(-Infinity);
    let i = 0;
    while (i + 4 <= cols) {
      let am = f32x4.splat(0), an = f32x4.splat(-Infinity);
      const end = min(i + 32, cols & ~3);
      for (; i < end; i += 4) {
        const v = v128.load(xr + (<usize>i << 2));
        raw = f32x4.max(raw, v);
        const m = extexp_f32x4(f32x4.mul(v, vs), nbuf);
        const n = v128.load(nbuf);
        const nn = f32x4.max(an, n);
        am = f32x4.add(f32x4.mul(am, exp2i_f32x4(f32x4.sub(an, nn))), f32x4.mul(m, exp2i_f32x4(f32x4.sub(n, nn))));
        an = nn;
      }
      for (let l = 0; l < 4; l++) {
        const ln: f64 = <f64>f32x4.extract_lane(an, 0), lm: f64 = <f64>f32x4.extract_lane(am, 0);
        const NN = max(N, ln);
        M = M * exp2i_f64(N - NN) + lm * exp2i_f64(ln - NN);
        N = NN;
        am = i32x4.shuffle(am, am, 1, 2, 3, 0);
        an = i32x4.shuffle(an, an, 1, 2, 3, 0);
      }
    }
    let rmax = max(max(f32x4.extract_lane(raw, 0), f32x4.extract_lane(raw, 1)), max(f32x4.extract_lane(raw, 2), f32x4.extract_lane(raw, 3)));
    for (; i < cols; i++) {
      const v = load<f32>(xr + (<usize>i << 2));
      rmax = max(rmax, v);
      const m = extexp_f32(v * scale, nbuf);
      const ln: f64 = <f64>load<f32>(nbuf);
      const NN = max(N, ln);
      M = M * exp2i_f64(N - NN) + <f64>m * exp2i_f64(ln - NN);
      N = NN;
    }
    if (bad_max(rmax)) { fill_nan(yr, cols); continue; }
    const inv = f32x4.splat(<f32>(1.0 / M)), vN = f32x4.splat(<f32>N);
    i = 0;
    for (; i + 4 <= cols; i += 4) {
      const o = <usize>i << 2;
      const m = extexp_f32x4(f32x4.mul(v128.load(xr + o), vs), nbuf);
      const p = exp2i_f32x4(f32x4.sub(v128.load(nbuf), vN));
      v128.store(yr + o, f32x4.mul(f32x4.mul(m, p), inv));
    }
    const invs = <f32>(1.0 / M), Ns = <f32>N;
    for (; i < cols; i++) {
      const o = <usize>i << 2;
      const m = extexp_f32(load<f32>(xr + o) * scale, nbuf);
      store<f32>(yr + o, m * exp2i_f32(load<f32>(nbuf) - Ns) * invs);
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

/** y = s(x) / sum s(x), sum in f64 (f32 lanes folded every 64). Error <= 2 ulp. */
export function stablemax_f32(x: usize, y: usize, rows: i32, cols: i32): void {
  const stride = <usize>cols << 2;
  for (let r = 0; r < rows; r++) {
    const xr = x + <usize>r * stride, yr = y + <usize>r * stride;
    let acc = f64x2.splat(0);
    let i = 0;
    while (i + 4 <= cols) {
      let a = f32x4.splat(0);
      const end = min(i + 64, cols & ~3);
      for (; i < end; i += 4) {
        const s = s_f32x4(v128.load(xr + (<usize>i << 2)));
        v128.store(yr + (<usize>i << 2), s);
        a = f32x4.add(a, s);
      }
      acc = promote_add(acc, a);
    }
    let sum = hsum_f64x2(acc);
    for (; i < cols; i++) {
      const s = s_f32(load<f32>(xr + (<usize>i << 2)));
      store<f32>(yr + (<usize>i << 2), s);
      sum += <f64>s;
    }
    // +Inf gives sum Inf -> Inf/Inf = NaN; all -Inf gives 0/0 = NaN; NaN propagates: the row rule holds as is.
    if (!(sum > 0 && sum < Infinity)) { fill_nan(yr, cols); continue; }
    scale_f32(yr, cols, <f32>(1.0 / sum));
  }
}

/** y = log s(x) - log sum s(x), logs in f64. Absolute error <= 1 ulp(|y|). */
export function logstablemax_f32(x: usize, y: usize, rows: i32, cols: i32): void {
  const stride = <usize>cols << 2;
  for (let r = 0; r < rows; r++) {
    const xr = x + <usize>r * stride, yr = y + <usize>r * stride;
    let sum: f64 = 0;
    for (let i = 0; i < cols; i++) {
      const v = <f64>load<f32>(xr + (<usize>i << 2));
      sum += v >= 0 ? v + 1 : 1 / (1 - v);
    }
    if (!(sum > 0 && sum < Infinity)) { fill_nan(yr, cols); continue; }
    const ls = Math.log(sum);
    for (let i = 0; i < cols; i++) {
      const v = <f64>load<f32>(xr + (<usize>i << 2));
      store<f32>(yr + (<usize>i << 2), <f32>((v >= 0 ? Math.log1p(v) : -Math.log1p(-v)) - ls));
    }
  }
}
