// Quantization kernels: bitsandbytes block-wise 8-bit (code-book) and 4-bit (NF4/FP4), ONNX affine int8/uint8,
// ggml Q8_0/Q4_0, and the 8-bit / 32-bit Adam state updates. Pointers are byte addresses; sizes are elements.
// Non-finite input is detected by the absmax/params kernels (they return the first bad block, or -1) and the JS
// side throws before any code is written, so the code-search kernels never see NaN.
//
// Code search ("nearest code, ties to the lower index") uses thresholds t_j between consecutive distinct code
// values: x goes above t_j iff x > t_j in f32 (t_j is the exact midpoint rounded so that this test is exact).
// The search kernels look the answer up in a bucket table keyed by the float bits of x: key = |x| bits >> sh
// (sh = 23 - m: sign, exponent and m mantissa bits), keys <= k0 merged into bucket 0 (which holds no threshold).
// Every bucket holds at most one threshold b, and inside a bucket b shares all bits above the low sh with x, so
// "x > b" is a compare of the low sh bits (order reversed for negative x: the table stores them xor lowmask).
// Entry (u32): low sh bits of |b| (all ones when the bucket has no threshold) | (hi - lo) << 22 | lo << 24 (sh <= 20).
// Positive x use entries [0, nk), negative x [nk, 2 nk). The top bucket (|x| = 1) also holds |x| up to 1 + 2^-22,
// which is as far as x * f32(1 / absmax) can overshoot, so the SIMD path needs no clamp.

// @ts-ignore: decorator
@inline const ABSMAX_FLOOR: f32 = 1e-38;

// ---------------------------------------------------------------------------------------------------------
// absmax per block (integer max over |x| bits: NaN sorts above Inf, so the result tells NaN and Inf apart)

/** max |x| over n floats, as the bits of |x| (0x7f800000 = Inf, above = NaN). */
// @ts-ignore: decorator
@inline function absmax_bits(p: usize, n: i32): u32 {
  const mask = i32x4.splat(0x7fffffff);
  let a0 = i32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
  let i = 0;
  for (; i + 16 <= n; i += 16) {
    const o = p + (<usize>i << 2);
    a0 = i32x4.max_s(a0, v128.and(v128.load(o), mask));
    a1 = i32x4.max_s(a1, v128.and(v128.load(o, 16), mask));
    a2 = i32x4.max_s(a2, v128.and(v128.load(o, 32), mask));
    a3 = i32x4.max_s(a3, v128.and(v128.load(o, 48), mask));
  }
  for (; i + 4 <= n; i += 4) a0 = i32x4.max_s(a0, v128.and(v128.load(p + (<usize>i << 2)), mask));
  a0 = i32x4.max_s(i32x4.max_s(a0, a1), i32x4.max_s(a2, a3));
  a0 = i32x4.max_s(a0, i32x4.shuffle(a0, a0, 2, 3, 0, 1));
  a0 = i32x4.max_s(a0, i32x4.shuffle(a0, a0, 1, 0, 3, 2));
  let m = i32x4.extract_lane(a0, 0);
  for (; i < n; i++) m = max<i32>(m, load<i32>(p + (<usize>i << 2)) & 0x7fffffff);
  return <u32>m;
}

/** absmax[b] = max |x| over block b (the last block may be partial) and inv[b] = f32(1 / max(absmax, 1e-38)).
 * Returns the first block holding NaN or ±Infinity, or -1. */
export function quant_absmax_f32(x: usize, n: i32, bs: i32, absmax: usize, inv: usize): i32 {
  let bad = -1;
  const nb = (n + bs - 1) / bs;
  for (let b = 0; b < nb; b++) {
    const s = b * bs;
    const m = absmax_bits(x + (<usize>s << 2), min(bs, n - s));
    const a = reinterpret<f32>(m);
    store<f32>(absmax + (<usize>b << 2), a);
    store<f32>(inv + (<usize>b << 2), <f32>1 / max<f32>(a, ABSMAX_FLOOR));
    if (bad < 0 && m >= 0x7f800000) bad = b;
  }
  return bad;
}

// ---------------------------------------------------------------------------------------------------------
// code search through the bucket table

// @ts-ignore: decorator
@inline function lut_one(v: f32, lut: usize, sh: u32, k0: u32, nk: u32): u32 {
  const bits = reinterpret<u32>(v);
  const neg = bits >>> 31, low: u32 = (1 << sh) - 1;
  let key = (bits & 0x7fffffff) >>> sh;
  key = key > k0 ? key - k0 : 0;
  const e = load<u32>(lut + (<usize>(key + neg * nk) << 2));
  const lx = (bits & low) ^ (neg ? low : 0);
  return (e >>> 24) + (lx > (e & low) ? (e >>> 22) & 3 : 0);
}

/** The four 32-bit words at the addresses in a's lanes (no gather in WASM: a read a lane). */
// @ts-ignore: decorator
@inline function gather_x4(a: v128): v128 {
  const a01 = i64x2.extract_lane(a, 0), a23 = i64x2.extract_lane(a, 1);
  let e = v128.load32_zero(<usize><u32>a01);
  e = v128.load32_lane(<usize><u32>(a01 >>> 32), e, 1);
  e = v128.load32_lane(<usize><u32>a23, e, 2);
  return v128.load32_lane(<usize><u32>(a23 >>> 32), e, 3);
}

/** Code indices (i32 lanes) of four scaled values (|v| <= 1 + 2^-22). Address = ((max(|v|, k0 << sh) >> sh) - k0) * 4
 * + lut (+ nk * 4 for negatives); four scalar table reads; then the low-bit threshold compare. */
// @ts-ignore: decorator
@inline function lut_x4(v: v128, sh: i32, vmin: v128, vbase: v128, vnk4: v128, vlow: v128): v128 {
  const neg = i32x4.shr_s(v, 31);
  const mag = v128.and(v, i32x4.splat(0x7fffffff));
  const off = v128.and(i32x4.shr_u(i32x4.max_u(mag, vmin), sh - 2), i32x4.splat(~3));
  const e = gather_x4(i32x4.add(off, i32x4.add(vbase, v128.and(neg, vnk4))));
  const up = i32x4.gt_s(v128.and(v128.xor(v, neg), vlow), v128.and(e, vlow));
  return i32x4.add(i32x4.shr_u(e, 24), v128.and(up, v128.and(i32x4.shr_u(e, 22), i32x4.splat(3))));
}

// @ts-ignore: decorator
@inline function scale_clamp_x4(p: usize, vinv: v128): v128 {
  return f32x4.pmin(f32x4.splat(1), f32x4.pmax(f32x4.splat(-1), f32x4.mul(v128.load(p), vinv)));
}

// @ts-ignore: decorator
@inline function scale_clamp(x: f32, inv: f32): f32 {
  const v = x * inv;
  return v > 1 ? 1 : v < -1 ? -1 : v;
}

/** 16 codes (bytes) of x[0..16) scaled by vinv. */
// @ts-ignore: decorator
@inline function lut_x16(p: usize, vinv: v128, sh: i32, vmin: v128, vbase: v128, vnk4: v128, vlow: v128): v128 {
  const q0 = lut_x4(f32x4.mul(v128.load(p), vinv), sh, vmin, vbase, vnk4, vlow);
  const q1 = lut_x4(f32x4.mul(v128.load(p, 16), vinv), sh, vmin, vbase, vnk4, vlow);
  const q2 = lut_x4(f32x4.mul(v128.load(p, 32), vinv), sh, vmin, vbase, vnk4, vlow);
  const q3 = lut_x4(f32x4.mul(v128.load(p, 48), vinv), sh, vmin, vbase, vnk4, vlow);
  return i8x16.narrow_i16x8_u(i16x8.narrow_i32x4_u(q0, q1), i16x8.narrow_i32x4_u(q2, q3));
}

/** Block-wise 8-bit quantization with the bucket table: codes[i] = nearest code of clamp(x[i] * inv[i >> lbs], -1, 1).
 * Block size 2^lbs >= 16 (lbs = 31: one block); inv from quant_absmax_f32. One pass, 16 elements a step,
 * scalar twin for the tail. */
export function quant_blockwise_lut_f32(x: usize, n: i32, lbs: i32, inv: usize, lut: usize, sh: i32, k0: i32, nk: i32, codes: usize): void {
  const vmin = i32x4.splat(k0 << sh), vbase = i32x4.splat(<i32>lut - (k0 << 2)), vnk4 = i32x4.splat(nk << 2), vlow = i32x4.splat((1 << sh) - 1);
  let i = 0;
  for (; i + 16 <= n; i += 16)
    v128.store(codes + <usize>i, lut_x16(x + (<usize>i << 2), v128.load32_splat(inv + (<usize>(i >> lbs) << 2)), sh, vmin, vbase, vnk4, vlow));
  for (; i < n; i++)
    store<u8>(codes + <usize>i, lut_one(scale_clamp(load<f32>(x + (<usize>i << 2)), load<f32>(inv + (<usize>(i >> lbs) << 2))), lut, sh, k0, nk));
}

/** Generic twin for any sorted code (no usable bucket table): branch-free binary search over 255 thresholds
 * (padded with +Inf), rank -> code index through ranks (256 bytes). */
export function quant_blockwise_search_f32(x: usize, n: i32, lbs: i32, inv: usize, thr: usize, ranks: usize, codes: usize): void {
  for (let i = 0; i < n; i++) {
    const v = scale_clamp(load<f32>(x + (<usize>i << 2)), load<f32>(inv + (<usize>(i >> lbs) << 2)));
    let r: u32 = 0;
    for (let step: u32 = 128; step >= 1; step >>= 1) if (v > load<f32>(thr + (<usize>(r + step - 1) << 2))) r += step;
    store<u8>(codes + <usize>i, load<u8>(ranks + <usize>r));
  }
}

/** Stochastic rounding against nu distinct sorted code values vals (f32) with their code indices ranks (u8):
 * v between vals[j] < v < vals[j+1] rounds up with probability (v - vals[j]) / (vals[j+1] - vals[j]) (f32),
 * i.e. up iff rand[i] < p. Exact code values and values outside [vals[0], vals[nu-1]] are deterministic. */
export function quant_blockwise_stochastic_f32(x: usize, n: i32, lbs: i32, inv: usize, vals: usize, ranks: usize, nu: i32, rand: usize, codes: usize): void {
  for (let i = 0; i < n; i++) {
    const v = scale_clamp(load<f32>(x + (<usize>i << 2)), load<f32>(inv + (<usize>(i >> lbs) << 2)));
    let lo = 0, hi = nu; // largest j with vals[j] <= v is lo - 1
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (load<f32>(vals + (<usize>mid << 2)) <= v) lo = mid + 1;
      else hi = mid;
    }
    const j = lo - 1;
    let r: i32;
    if (j < 0) r = 0;
    else if (j >= nu - 1) r = nu - 1;
    else {
      const a = load<f32>(vals + (<usize>j << 2));
      if (a == v) r = j;
      else {
        const c = load<f32>(vals + (<usize>(j + 1) << 2));
        const p: f32 = (v - a) / (c - a);
        r = load<f32>(rand + (<usize>i << 2)) < p ? j + 1 : j;
      }
    }
    store<u8>(codes + <usize>i, load<u8>(ranks + <usize>r));
  }
}

/** out[i] = code[codes[i]] * absmax[i >> lbs] (f32): scalar table reads, eight codes from two 32-bit loads
 * (a 256-entry f32 table has no SIMD lookup: swizzle reaches 16 bytes; this measured fastest, see RESULTS). */
export function dequant_blockwise_u8(codes: usize, n: i32, lbs: i32, absmax: usize, code: usize, out: usize): void {
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const a = load<f32>(absmax + (<usize>(i >> lbs) << 2));
    const lo = load<u32>(codes + <usize>i), hi = load<u32>(codes + <usize>i, 4);
    const o = out + (<usize>i << 2);
    store<f32>(o, load<f32>(code + (<usize>(lo & 0xff) << 2)) * a);
    store<f32>(o, load<f32>(code + (<usize>((lo >> 8) & 0xff) << 2)) * a, 4);
    store<f32>(o, load<f32>(code + (<usize>((lo >> 16) & 0xff) << 2)) * a, 8);
    store<f32>(o, load<f32>(code + (<usize>(lo >> 24) << 2)) * a, 12);
    store<f32>(o, load<f32>(code + (<usize>(hi & 0xff) << 2)) * a, 16);
    store<f32>(o, load<f32>(code + (<usize>((hi >> 8) & 0xff) << 2)) * a, 20);
    store<f32>(o, load<f32>(code + (<usize>((hi >> 16) & 0xff) << 2)) * a, 24);
    store<f32>(o, load<f32>(code + (<usize>(hi >> 24) << 2)) * a, 28);
  }
  for (; i < n; i++)
    store<f32>(out + (<usize>i << 2), load<f32>(code + (<usize>load<u8>(codes + <usize>i) << 2)) * load<f32>(absmax + (<usize>(i >> lbs) << 2)));
}

// ---------------------------------------------------------------------------------------------------------
// 4-bit (NF4 / FP4): the bucket table gives the rank among the sorted distinct code values, perm (16 bytes)
// maps rank -> code index (FP4 is stored in bit-pattern order); element 2j goes to the high nibble of byte j
// (bitsandbytes order); an odd length pads the last low nibble with the code of 0.

/** Block-wise 4-bit quantization (inv from quant_absmax_f32, block size 2^lbs >= 16). */
export function quant_4bit_f32(x: usize, n: i32, lbs: i32, inv: usize, lut: usize, sh: i32, k0: i32, nk: i32, perm: usize, zeroCode: u32, packed: usize): void {
  const vmin = i32x4.splat(k0 << sh), vbase = i32x4.splat(<i32>lut - (k0 << 2)), vnk4 = i32x4.splat(nk << 2), vlow = i32x4.splat((1 << sh) - 1);
  const vperm = v128.load(perm);
  let i = 0;
  for (; i + 16 <= n; i += 16) {
    const r = lut_x16(x + (<usize>i << 2), v128.load32_splat(inv + (<usize>(i >> lbs) << 2)), sh, vmin, vbase, vnk4, vlow);
    const q = i8x16.swizzle(vperm, r);
    // u16 lane k = q[2k] | q[2k+1] << 8  ->  (q[2k] << 4) | q[2k+1]
    const w = v128.or(v128.and(i16x8.shl(q, 4), i16x8.splat(0xf0)), i16x8.shr_u(q, 8));
    v128.store64_lane(packed + <usize>(i >> 1), i8x16.narrow_i16x8_u(w, w), 0);
  }
  for (; i < n; i += 2) {
    const hiC = load<u8>(perm + <usize>lut_one(scale_clamp(load<f32>(x + (<usize>i << 2)), load<f32>(inv + (<usize>(i >> lbs) << 2))), lut, sh, k0, nk));
    const loC = i + 1 < n ? load<u8>(perm + <usize>lut_one(scale_clamp(load<f32>(x + (<usize>(i + 1) << 2)), load<f32>(inv + (<usize>((i + 1) >> lbs) << 2))), lut, sh, k0, nk)) : zeroCode;
    store<u8>(packed + <usize>(i >> 1), (hiC << 4) | loC);
  }
}

/** out[i] = code[nibble i] * absmax[i >> lbs]; nibble 2j is the high half of byte j. code: 16 f32. The 16-entry
 * table lookup runs as four byte-plane swizzles. */
export function dequant_4bit(packed: usize, n: i32, lbs: i32, absmax: usize, code: usize, out: usize): void {
  // byte planes of the code table: plane k holds byte k of each f32
  const t0 = v128.load(code), t1 = v128.load(code, 16), t2 = v128.load(code, 32), t3 = v128.load(code, 48);
  const u0 = i8x16.shuffle(t0, t1, 0, 4, 8, 12, 16, 20, 24, 28, 1, 5, 9, 13, 17, 21, 25, 29);
  const u1 = i8x16.shuffle(t2, t3, 0, 4, 8, 12, 16, 20, 24, 28, 1, 5, 9, 13, 17, 21, 25, 29);
  const u2 = i8x16.shuffle(t0, t1, 2, 6, 10, 14, 18, 22, 26, 30, 3, 7, 11, 15, 19, 23, 27, 31);
  const u3 = i8x16.shuffle(t2, t3, 2, 6, 10, 14, 18, 22, 26, 30, 3, 7, 11, 15, 19, 23, 27, 31);
  const P0 = i8x16.shuffle(u0, u1, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
  const P1 = i8x16.shuffle(u0, u1, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
  const P2 = i8x16.shuffle(u2, u3, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
  const P3 = i8x16.shuffle(u2, u3, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
  let i = 0;
  for (; i + 32 <= n; i += 32) {
    const va = v128.load32_splat(absmax + (<usize>(i >> lbs) << 2));
    const p = v128.load(packed + <usize>(i >> 1));
    const hiN = i8x16.shr_u(p, 4), loN = v128.and(p, i8x16.splat(15));
    const ia = i8x16.shuffle(hiN, loN, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const ib = i8x16.shuffle(hiN, loN, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    dequant16(ia, P0, P1, P2, P3, va, out + (<usize>i << 2));
    dequant16(ib, P0, P1, P2, P3, va, out + (<usize>(i + 16) << 2));
  }
  for (; i < n; i++) {
    const byte = load<u8>(packed + <usize>(i >> 1));
    const nib = (i & 1) ? byte & 15 : byte >> 4;
    store<f32>(out + (<usize>i << 2), load<f32>(code + (<usize>nib << 2)) * load<f32>(absmax + (<usize>(i >> lbs) << 2)));
  }
}

// @ts-ignore: decorator
@inline function dequant16(idx: v128, P0: v128, P1: v128, P2: v128, P3: v128, va: v128, o: usize): void {
  const b0 = i8x16.swizzle(P0, idx), b1 = i8x16.swizzle(P1, idx), b2 = i8x16.swizzle(P2, idx), b3 = i8x16.swizzle(P3, idx);
  const l01 = i8x16.shuffle(b0, b1, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const h01 = i8x16.shuffle(b0, b1, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  const l23 = i8x16.shuffle(b2, b3, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const h23 = i8x16.shuffle(b2, b3, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  v128.store(o, f32x4.mul(i16x8.shuffle(l01, l23, 0, 8, 1, 9, 2, 10, 3, 11), va));
  v128.store(o, f32x4.mul(i16x8.shuffle(l01, l23, 4, 12, 5, 13, 6, 14, 7, 15), va), 16);
  v128.store(o, f32x4.mul(i16x8.shuffle(h01, h23, 0, 8, 1, 9, 2, 10, 3, 11), va), 32);
  v128.store(o, f32x4.mul(i16x8.shuffle(h01, h23, 4, 12, 5, 13, 6, 14, 7, 15), va), 48);
}

// ---------------------------------------------------------------------------------------------------------
// Affine (ONNX QuantizeLinear / DequantizeLinear) over contiguous groups of g elements (last may be partial).

/** scale and zero point of one group (see quant_affine_f32); NaN scale when the group holds NaN or ±Infinity. */
/** absmax / 127 of len f32 at p (1 where the absmax is 0); NaN if one is NaN or infinite. */
// @ts-ignore: decorator
@inline function absmax_scale(p: usize, len: i32): f32 {
  const m = absmax_bits(p, len);
  if (m >= 0x7f800000) return NaN;
  const sc: f32 = reinterpret<f32>(m) / 127;
  return sc == 0 ? 1 : sc;
}

// @ts-ignore: decorator
@inline function affine_params(p: usize, len: i32, signed: i32, out: usize): void {
  let sc: f32, z: i32 = 0;
  if (signed) sc = absmax_scale(p, len);
  else {
    let vmn = f32x4.splat(0), vmx = vmn, nan = i32x4.splat(0);
    let i = 0;
    for (; i + 4 <= len; i += 4) {
      const v = v128.load(p + (<usize>i << 2));
      vmn = f32x4.pmin(vmn, v);
      vmx = f32x4.pmax(vmx, v);
      nan = v128.or(nan, f32x4.ne(v, v));
    }
    vmn = f32x4.pmin(vmn, i32x4.shuffle(vmn, vmn, 2, 3, 0, 1));
    vmn = f32x4.pmin(vmn, i32x4.shuffle(vmn, vmn, 1, 0, 3, 2));
    vmx = f32x4.pmax(vmx, i32x4.shuffle(vmx, vmx, 2, 3, 0, 1));
    vmx = f32x4.pmax(vmx, i32x4.shuffle(vmx, vmx, 1, 0, 3, 2));
    let mn = f32x4.extract_lane(vmn, 0), mx = f32x4.extract_lane(vmx, 0);
    let isnan = v128.any_true(nan);
    for (; i < len; i++) {
      const v = load<f32>(p + (<usize>i << 2));
      if (v != v) isnan = true;
      mn = min<f32>(mn, v);
      mx = max<f32>(mx, v);
    }
    const range: f32 = mx - mn;
    if (isnan || !(range < Infinity)) sc = NaN;
    else {
      sc = range / 255;
      if (sc > 0) z = <i32>min<f32>(255, max<f32>(0, nearest<f32>(-mn / sc)));
    }
  }
  if (sc == 0) sc = 1;
  store<f32>(out, sc);
  store<i32>(out, z, 4);
}

/**
 * ONNX QuantizeLinear over contiguous groups of g elements (last may be partial): q = saturate(rint(x / scale)
 * + zp), x / scale in f32, rint half to even (as MLAS: clamp to [qmin - zp, qmax - zp] first, then round with
 * the 1.5 * 2^23 magic number, exact below 2^22). int8 when signed, else uint8.
 * compute = 1: per group, first derive scale/zp (written to scale[k], zp[k]) while the group is in cache:
 * signed -> symmetric, scale = absmax / 127, zp = 0 ("absmax int8"); unsigned -> ONNX DynamicQuantizeLinear,
 * scale = (max(0, max x) - min(0, min x)) / 255, zp = saturate(rint(-min(0, min x) / scale)). A scale of 0
 * (all-zero group) becomes 1. Returns the first group holding NaN or ±Infinity (nothing written from it on),
 * or -1. compute = 0: scale/zp are given (and x is finite).
 */
export function quant_affine_f32(x: usize, n: i32, g: i32, signed: i32, compute: i32, scale: usize, zp: usize, q: usize, tmp: usize): i32 {
  const qmin: f32 = signed ? -128 : 0, qmax: f32 = signed ? 127 : 255;
  const magic = f32x4.splat(12582912); // 1.5 * 2^23
  const ng = (n + g - 1) / g;
  if (compute && signed && (g & 15) == 0) return quant_absmax_i8(x, n, g, scale, zp, q);
  if (compute && n > 0) affine_params(x, min(g, n), signed, tmp);
  for (let k = 0; k < ng; k++) {
    const s = k * g, len = min(g, n - s), p = x + (<usize>s << 2), o = q + <usize>s;
    if (compute) {
      const sc0 = load<f32>(tmp);
      if (sc0 != sc0) return k;
      store<f32>(scale + (<usize>k << 2), sc0);
      store<i32>(zp + (<usize>k << 2), load<i32>(tmp, 4));
      // the next group's parameters before this group's codes: their divisions overlap instead of holding them up
      if (k + 1 < ng) affine_params(p + (<usize>g << 2), min(g, n - s - g), signed, tmp);
    }
    const sc = load<f32>(scale + (<usize>k << 2)), zi = load<i32>(zp + (<usize>k << 2)), z = <f32>zi;
    const vs = f32x4.splat(sc), lo = f32x4.splat(qmin - z), hi = f32x4.splat(qmax - z), vz = i32x4.splat(zi);
    let i = 0;
    for (; i + 16 <= len; i += 16) {
      const a = p + (<usize>i << 2);
      const c0 = i32x4.add(i32x4.sub(f32x4.add(f32x4.pmin(hi, f32x4.pmax(lo, f32x4.div(v128.load(a), vs))), magic), magic), vz);
      const c1 = i32x4.add(i32x4.sub(f32x4.add(f32x4.pmin(hi, f32x4.pmax(lo, f32x4.div(v128.load(a, 16), vs))), magic), magic), vz);
      const c2 = i32x4.add(i32x4.sub(f32x4.add(f32x4.pmin(hi, f32x4.pmax(lo, f32x4.div(v128.load(a, 32), vs))), magic), magic), vz);
      const c3 = i32x4.add(i32x4.sub(f32x4.add(f32x4.pmin(hi, f32x4.pmax(lo, f32x4.div(v128.load(a, 48), vs))), magic), magic), vz);
      const w0 = i16x8.narrow_i32x4_s(c0, c1), w1 = i16x8.narrow_i32x4_s(c2, c3);
      v128.store(o + <usize>i, signed ? i8x16.narrow_i16x8_s(w0, w1) : i8x16.narrow_i16x8_u(w0, w1));
    }
    for (; i < len; i++) {
      let v = nearest<f32>(load<f32>(p + (<usize>i << 2)) / sc) + z;
      v = v > qmax ? qmax : v < qmin ? qmin : v;
      store<i8>(o + <usize>i, <i8><i32>v);
    }
  }
  return -1;
}

/** quant_affine_f32 for signed groups with computed parameters and g a multiple of 16 ("absmax int8"): the
 * absmax pass inlined, no per-group calls, each group's scale taken before the previous group's codes (its
 * division then overlaps theirs instead of holding them up). Same results. */
function quant_absmax_i8(x: usize, n: i32, g: i32, scale: usize, zp: usize, q: usize): i32 {
  const magic = f32x4.splat(12582912), lo = f32x4.splat(-128), hi = f32x4.splat(127);
  const ng = (n + g - 1) / g;
  let next = absmax_scale(x, min(g, n));
  for (let k = 0; k < ng; k++) {
    const s = k * g, len = min(g, n - s), p = x + (<usize>s << 2), o = q + <usize>s;
    const sc = next;
    if (sc != sc) return k;
    if (k + 1 < ng) next = absmax_scale(p + (<usize>g << 2), min(g, n - s - g));
    store<f32>(scale + (<usize>k << 2), sc);
    store<i32>(zp + (<usize>k << 2), 0);
    const vs = f32x4.splat(sc);
    let i = 0;
    for (; i + 16 <= len; i += 16) {
      const a = p + (<usize>i << 2);
      const c0 = i32x4.sub(f32x4.add(f32x4.pmin(hi, f32x4.pmax(lo, f32x4.div(v128.load(a), vs))), magic), magic);
      const c1 = i32x4.sub(f32x4.add(f32x4.pmin(hi, f32x4.pmax(lo, f32x4.div(v128.load(a, 16), vs))), magic), magic);
      const c2 = i32x4.sub(f32x4.add(f32x4.pmin(hi, f32x4.pmax(lo, f32x4.div(v128.load(a, 32), vs))), magic), magic);
      const c3 = i32x4.sub(f32x4.add(f32x4.pmin(hi, f32x4.pmax(lo, f32x4.div(v128.load(a, 48), vs))), magic), magic);
      v128.store(o + <usize>i, i8x16.narrow_i16x8_s(i16x8.narrow_i32x4_s(c0, c1), i16x8.narrow_i32x4_s(c2, c3)));
    }
    for (; i < len; i++) {
      let v = nearest<f32>(load<f32>(p + (<usize>i << 2)) / sc);
      v = v > 127 ? 127 : v < -128 ? -128 : v;
      store<i8>(o + <usize>i, <i8><i32>v);
    }
  }
  return -1;
}

/** out = (q - zp) * scale in f32 (ONNX DequantizeLinear). */
export function dequant_affine(q: usize, n: i32, g: i32, scale: usize, zp: usize, signed: i32, out: usize): void {
  const ng = (n + g - 1) / g;
  for (let k = 0; k < ng; k++) {
    const s = k * g, len = min(g, n - s), c = q + <usize>s, o = out + (<usize>s << 2);
    const sc = load<f32>(scale + (<usize>k << 2)), z = load<i32>(zp + (<usize>k << 2));
    const vs = f32x4.splat(sc), vz = i32x4.splat(z);
    let i = 0;
    for (; i + 16 <= len; i += 16) {
      const b = v128.load(c + <usize>i);
      const w0 = signed ? i16x8.extend_low_i8x16_s(b) : i16x8.extend_low_i8x16_u(b);
      const w1 = signed ? i16x8.extend_high_i8x16_s(b) : i16x8.extend_high_i8x16_u(b);
      const oo = o + (<usize>i << 2);
      v128.store(oo, f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(i32x4.extend_low_i16x8_s(w0), vz)), vs));
      v128.store(oo, f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(i32x4.extend_high_i16x8_s(w0), vz)), vs), 16);
      v128.store(oo, f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(i32x4.extend_low_i16x8_s(w1), vz)), vs), 32);
      v128.store(oo, f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(i32x4.extend_high_i16x8_s(w1), vz)), vs), 48);
    }
    for (; i < len; i++) {
      const v: i32 = signed ? <i32>load<i8>(c + <usize>i) : <i32>load<u8>(c + <usize>i);
      store<f32>(o + (<usize>i << 2), <f32>(v - z) * sc);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// ggml Q8_0 / Q4_0: blocks of 32, an fp16 scale d (little-endian) then the quants; byte-exact with
// ggml-quants.c quantize_row_q8_0_ref / quantize_row_q4_0_ref.

/** fp32 -> fp16 bits, round to nearest even (ggml_compute_fp32_to_fp16, the FP16 library's bit trick). */
export function f32_to_f16(f: f32): u32 {
  const scaleToInf = reinterpret<f32>(0x77800000); // 2^112
  const scaleToZero = reinterpret<f32>(0x08800000); // 2^-110
  let base: f32 = (abs<f32>(f) * scaleToInf) * scaleToZero;
  const w = reinterpret<u32>(f);
  const shl1w = w + w;
  const sign = w & 0x80000000;
  let bias = shl1w & 0xff000000;
  if (bias < 0x71000000) bias = 0x71000000;
  base = reinterpret<f32>((bias >> 1) + 0x07800000) + base;
  const bits = reinterpret<u32>(base);
  const expBits = (bits >> 13) & 0x00007c00;
  const mantBits = bits & 0x00000fff;
  return (sign >> 16) | (shl1w > 0xff000000 ? 0x7e00 : expBits + mantBits);
}

/** fp16 bits -> fp32 (exact). */
export function f16_to_f32(h: u32): f32 {
  const sign = (h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e == 0) {
    const v = <f32>m * reinterpret<f32>(0x33800000); // m * 2^-24, exact
    return sign ? -v : v;
  }
  if (e == 31) return reinterpret<f32>(sign | 0x7f800000 | (m << 13));
  return reinterpret<f32>(sign | ((e + 112) << 23) | (m << 13));
}

/** roundf: half away from zero. */
// @ts-ignore: decorator
@inline function roundf(v: f32): f32 {
  const t = trunc<f32>(v);
  return abs<f32>(v - t) >= 0.5 ? t + copysign<f32>(1, v) : t;
}

/** nb blocks of 32 floats -> 34 bytes each. Returns the first block with NaN/Inf (nothing written from it on), or -1. */
export function quant_q8_0_f32(x: usize, nb: i32, out: usize): i32 {
  for (let b = 0; b < nb; b++) {
    const p = x + (<usize>b << 7), o = out + <usize>b * 34;
    const m = absmax_bits(p, 32);
    if (m >= 0x7f800000) return b;
    const d: f32 = reinterpret<f32>(m) / 127;
    const id: f32 = d != 0 ? 1 / d : 0;
    store<u16>(o, <u16>f32_to_f16(d));
    // a subnormal d makes id = Inf: x * id is then ±Inf or NaN, which x86 ggml turns into 0 (cvttss2si -> INT_MIN, low byte 0)
    for (let j = 0; j < 32; j++) {
      const v = load<f32>(p + (<usize>j << 2)) * id;
      store<i8>(o + 2 + <usize>j, abs<f32>(v) < Infinity ? <i8><i32>roundf(v) : 0);
    }
  }
  return -1;
}

export function dequant_q8_0(bytes: usize, nb: i32, out: usize): void {
  for (let b = 0; b < nb; b++) {
    const o = out + (<usize>b << 7), src = bytes + <usize>b * 34;
    const d = f16_to_f32(<u32>load<u16>(src));
    for (let j = 0; j < 32; j++) store<f32>(o + (<usize>j << 2), <f32>load<i8>(src + 2 + <usize>j) * d);
  }
}

/** nb blocks of 32 floats -> 18 bytes each (d = signed max / -8; q = min(15, trunc(x / d + 8.5)); byte j holds
 * element j in the low nibble and element j + 16 in the high). Returns the first non-finite block, or -1. */
export function quant_q4_0_f32(x: usize, nb: i32, out: usize): i32 {
  for (let b = 0; b < nb; b++) {
    const p = x + (<usize>b << 7), o = out + <usize>b * 18;
    let amax: f32 = 0, mx: f32 = 0, bad = false;
    for (let j = 0; j < 32; j++) {
      const v = load<f32>(p + (<usize>j << 2));
      if (!(abs<f32>(v) < Infinity)) bad = true;
      if (amax < abs<f32>(v)) { amax = abs<f32>(v); mx = v; }
    }
    if (bad) return b;
    const d: f32 = mx / -8;
    const id: f32 = d != 0 ? 1 / d : 0;
    store<u16>(o, <u16>f32_to_f16(d));
    for (let j = 0; j < 16; j++) {
      const x0 = load<f32>(p + (<usize>j << 2)) * id, x1 = load<f32>(p + (<usize>(j + 16) << 2)) * id;
      const t0: f32 = x0 + 8.5, t1: f32 = x1 + 8.5; // non-finite (id = Inf for a subnormal d) -> 0, as x86 ggml
      const q0 = abs<f32>(t0) < Infinity ? min<i32>(15, <i32><i8><i32>t0) : 0;
      const q1 = abs<f32>(t1) < Infinity ? min<i32>(15, <i32><i8><i32>t1) : 0;
      store<u8>(o + 2 + <usize>j, <u8>(q0 | (q1 << 4)));
    }
  }
  return -1;
}

export function dequant_q4_0(bytes: usize, nb: i32, out: usize): void {
  for (let b = 0; b < nb; b++) {
    const o = out + (<usize>b << 7), src = bytes + <usize>b * 18;
    const d = f16_to_f32(<u32>load<u16>(src));
    for (let j = 0; j < 16; j++) {
      const q = <i32>load<u8>(src + 2 + <usize>j);
      store<f32>(o + (<usize>j << 2), <f32>((q & 15) - 8) * d);
      store<f32>(o + (<usize>(j + 16) << 2), <f32>((q >> 4) - 8) * d);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Adam with 8-bit block-wise states (bitsandbytes kOptimizerStatic8bit2StateBlockwise, f32 arithmetic in its
// order) and with f32 states. A NaN/±Inf gradient leaves its parameter unchanged; in the 8-bit kernel its
// moments become 0 (as bitsandbytes), in the f32 kernel they are left as they were.

/** One step over n elements in blocks of bs. c1/c2: u8 codes of m (signed code1) and v (unsigned code2);
 * a1/a2: per-block absmax (read, then overwritten with the new ones); s1/s2: f32 scratch of bs elements;
 * lut1/lut2: bucket tables of code1/code2; sh1/k01/nk1 and sh2/k02/nk2: the shift, k0 and nk of each table. */
export function adam8bit_blockwise_f32(
  p: usize, g: usize, c1: usize, c2: usize, a1: usize, a2: usize, n: i32, bs: i32,
  code1: usize, lut1: usize, sh1: i32, k01: i32, nk1: i32,
  code2: usize, lut2: usize, sh2: i32, k02: i32, nk2: i32,
  s1: usize, s2: usize,
  b1: f32, omb1: f32, b2: f32, omb2: f32, epsc2: f32, stepSize: f32, decay: f32,
): void {
  const nb = (n + bs - 1) / bs;
  const vb1 = f32x4.splat(b1), vomb1 = f32x4.splat(omb1), vb2 = f32x4.splat(b2), vomb2 = f32x4.splat(omb2);
  const veps = f32x4.splat(epsc2), vstep = f32x4.splat(stepSize), vdecay = f32x4.splat(decay), inf = f32x4.splat(Infinity);
  const vmin1 = i32x4.splat(k01 << sh1), vbase1 = i32x4.splat(<i32>lut1 - (k01 << 2)), vnk1 = i32x4.splat(nk1 << 2), vlow1 = i32x4.splat((1 << sh1) - 1);
  const vmin2 = i32x4.splat(k02 << sh2), vbase2 = i32x4.splat(<i32>lut2 - (k02 << 2)), vnk2 = i32x4.splat(nk2 << 2), vlow2 = i32x4.splat((1 << sh2) - 1);
  for (let b = 0; b < nb; b++) {
    const s = b * bs, len = min(bs, n - s);
    const am1 = load<f32>(a1 + (<usize>b << 2)), am2 = load<f32>(a2 + (<usize>b << 2));
    const vam1 = f32x4.splat(am1), vam2 = f32x4.splat(am2);
    // pass 1: moments from their codes, the update, the new moments' absmax; four lanes, then the scalar twin
    let w1 = f32x4.splat(0), w2 = w1;
    let j = 0;
    for (; j + 4 <= len; j += 4) {
      const i = s + j, pp = p + (<usize>i << 2);
      const gv = v128.load(g + (<usize>i << 2));
      const fin = f32x4.lt(f32x4.abs(gv), inf);
      let v2 = f32x4.mul(code_x4(code2, c2 + <usize>i), vam2);
      v2 = f32x4.add(f32x4.mul(v2, vb2), f32x4.mul(f32x4.mul(vomb2, gv), gv));
      let v1 = f32x4.mul(code_x4(code1, c1 + <usize>i), vam1);
      v1 = f32x4.add(f32x4.mul(v1, vb1), f32x4.mul(vomb1, gv));
      const old = v128.load(pp);
      let pv = f32x4.add(old, f32x4.mul(vstep, f32x4.div(v1, f32x4.add(f32x4.sqrt(v2), veps))));
      if (decay != 1) pv = f32x4.mul(pv, vdecay);
      v128.store(pp, v128.bitselect(pv, old, fin));
      v1 = v128.and(v1, fin);
      v2 = v128.and(v2, fin);
      v128.store(s1 + (<usize>j << 2), v1);
      v128.store(s2 + (<usize>j << 2), v2);
      w1 = f32x4.max(w1, f32x4.abs(v1));
      w2 = f32x4.max(w2, f32x4.abs(v2));
    }
    let m1 = max<f32>(max<f32>(f32x4.extract_lane(w1, 0), f32x4.extract_lane(w1, 1)), max<f32>(f32x4.extract_lane(w1, 2), f32x4.extract_lane(w1, 3)));
    let m2 = max<f32>(max<f32>(f32x4.extract_lane(w2, 0), f32x4.extract_lane(w2, 1)), max<f32>(f32x4.extract_lane(w2, 2), f32x4.extract_lane(w2, 3)));
    for (; j < len; j++) {
      const i = s + j;
      const gv = load<f32>(g + (<usize>i << 2));
      let v1: f32 = 0, v2: f32 = 0;
      if (abs<f32>(gv) < Infinity) {
        v2 = load<f32>(code2 + (<usize>load<u8>(c2 + <usize>i) << 2)) * am2;
        v2 = v2 * b2 + omb2 * gv * gv;
        v1 = load<f32>(code1 + (<usize>load<u8>(c1 + <usize>i) << 2)) * am1;
        v1 = v1 * b1 + omb1 * gv;
        const pp = p + (<usize>i << 2);
        let pv = load<f32>(pp) + stepSize * (v1 / (sqrt<f32>(v2) + epsc2));
        if (decay != 1) pv = pv * decay;
        store<f32>(pp, pv);
      }
      store<f32>(s1 + (<usize>j << 2), v1);
      store<f32>(s2 + (<usize>j << 2), v2);
      m1 = max<f32>(m1, abs<f32>(v1));
      m2 = max<f32>(m2, abs<f32>(v2));
    }
    store<f32>(a1 + (<usize>b << 2), m1);
    store<f32>(a2 + (<usize>b << 2), m2);
    // pass 2: the moments' new codes
    const d1 = max<f32>(m1, ABSMAX_FLOOR), d2 = max<f32>(m2, ABSMAX_FLOOR);
    const vd1 = f32x4.splat(d1), vd2 = f32x4.splat(d2), one = i32x4.splat(1);
    j = 0;
    for (; j + 4 <= len; j += 4) {
      const i = s + j;
      const v1 = v128.load(s1 + (<usize>j << 2)), v2 = v128.load(s2 + (<usize>j << 2));
      let q1 = lut_x4(clamp1_x4(f32x4.div(v1, vd1)), sh1, vmin1, vbase1, vnk1, vlow1);
      // keep the sign of m (see the scalar twin): one step up where v1 > 0, down otherwise
      const cv = code_idx_x4(code1, q1);
      const flip = v128.and(f32x4.eq(v1, v1), i32x4.lt_s(v128.xor(cv, v1), i32x4.splat(0)));
      q1 = i32x4.add(q1, v128.and(flip, i32x4.sub(i32x4.shl(v128.and(f32x4.gt(v1, f32x4.splat(0)), one), 1), one)));
      const q2 = lut_x4(clamp1_x4(f32x4.div(v2, vd2)), sh2, vmin2, vbase2, vnk2, vlow2);
      v128.store32_lane(c1 + <usize>i, i8x16.shuffle(q1, q1, 0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), 0); // low bytes: <u8> wraps, as the scalar
      v128.store32_lane(c2 + <usize>i, i8x16.shuffle(q2, q2, 0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), 0);
    }
    for (; j < len; j++) {
      const i = s + j;
      const v1 = load<f32>(s1 + (<usize>j << 2)), v2 = load<f32>(s2 + (<usize>j << 2));
      let q1 = lut_one(clamp1(v1 / d1), lut1, sh1, k01, nk1);
      // keep the sign of m through quantization (bitsandbytes); a NaN moment (its sign bit is arbitrary) keeps code 0
      const cv = load<f32>(code1 + (<usize>q1 << 2));
      if (v1 == v1 && (reinterpret<u32>(cv) >>> 31) != (reinterpret<u32>(v1) >>> 31)) q1 = v1 > 0 ? q1 + 1 : q1 - 1;
      store<u8>(c1 + <usize>i, <u8>q1);
      store<u8>(c2 + <usize>i, <u8>lut_one(clamp1(v2 / d2), lut2, sh2, k02, nk2));
    }
  }
}

/** code[c[0..4)] as four f32 lanes (the bytes at c index the 256-entry table). */
// @ts-ignore: decorator
@inline function code_x4(code: usize, c: usize): v128 {
  return code_idx_x4(code, i32x4.extend_low_i16x8_u(i16x8.extend_low_i8x16_u(v128.load32_zero(c))));
}

/** code[q] for four i32 indices q. */
// @ts-ignore: decorator
@inline function code_idx_x4(code: usize, q: v128): v128 {
  return gather_x4(i32x4.add(i32x4.shl(q, 2), i32x4.splat(<i32>code)));
}

/** clamp1 in lanes: above 1 -> 1, NaN and below -1 -> -1. */
// @ts-ignore: decorator
@inline function clamp1_x4(v: v128): v128 {
  return v128.bitselect(f32x4.splat(1), v128.bitselect(v, f32x4.splat(-1), f32x4.ge(v, f32x4.splat(-1))), f32x4.gt(v, f32x4.splat(1)));
}

// @ts-ignore: decorator
@inline function clamp1(v: f32): f32 {
  return v > 1 ? 1 : v >= -1 ? v : -1; // NaN (an overflowed moment) -> -1: code index 0, as the reference; never a lookup past the table
}

/** Adam with f32 states m, v (bitsandbytes kOptimizer32bit2State order). */
export function adam32_f32(p: usize, g: usize, m: usize, v: usize, n: i32,
  b1: f32, omb1: f32, b2: f32, omb2: f32, epsc2: f32, stepSize: f32, decay: f32): void {
  for (let i = 0; i < n; i++) {
    const o = <usize>i << 2;
    const gv = load<f32>(g + o);
    if (!(abs<f32>(gv) < Infinity)) continue;
    const s1 = load<f32>(m + o) * b1 + omb1 * gv;
    const s2 = load<f32>(v + o) * b2 + omb2 * (gv * gv);
    store<f32>(m + o, s1);
    store<f32>(v + o, s2);
    let pv = load<f32>(p + o) + stepSize * (s1 / (sqrt<f32>(s2) + epsc2));
    if (decay != 1) pv = pv * decay;
    store<f32>(p + o, pv);
  }
}
