// Top-k selection and mixture-of-experts routing kernels over row-major f32 [rows, cols].
// Ranking rule (all kernels): larger first; NaN above everything; equal values (NaN with NaN, -0 with +0)
// lower index first. Each candidate is a 64-bit key: high half = the value as an order-preserving int
// (NaN -> max, -0 -> +0), low half = ~index (a lower index gives a larger key), so keys are distinct and one
// signed i64 compare implements the whole rule. Selection is exact: no arithmetic touches the values.
import { exp_f32, exp_f32x4, hmax_f32x4, hsum_f64x2, promote_add, rowmax_f32 } from "./exp";
import { softmax_f32_threepass, stablemax_f32 } from "./softmax";

// @ts-ignore: decorator
@inline function fkey(v: f32): i64 {
  if (v != v) return 0x7FFFFFFF;
  const b = reinterpret<i32>(v);
  const o = b ^ ((b >> 31) & 0x7FFFFFFF);
  return <i64>(o == -1 ? 0 : o);
}

// @ts-ignore: decorator
@inline function key_of(v: f32, i: i32): i64 {
  return (fkey(v) << 32) | <i64>(<u32>~i);
}

// @ts-ignore: decorator
@inline function idx_of(key: i64): i32 {
  return ~<i32>key;
}

// @ts-ignore: decorator
@inline function ld64(p: usize, i: i32): i64 {
  return load<i64>(p + (<usize>i << 3));
}

// @ts-ignore: decorator
@inline function st64(p: usize, i: i32, v: i64): void {
  store<i64>(p + (<usize>i << 3), v);
}

// @ts-ignore: decorator
@inline function ldf(p: usize, i: i32): f32 {
  return load<f32>(p + (<usize>i << 2));
}

/** Insertion sort of n keys, descending. */
function isort_desc(p: usize, n: i32): void {
  for (let i = 1; i < n; i++) {
    const v = ld64(p, i);
    let j = i;
    for (; j > 0 && ld64(p, j - 1) < v; j--) st64(p, j, ld64(p, j - 1));
    st64(p, j, v);
  }
}

// Pivots are the median of three pseudo-random positions (xorshift32), so no input structure (interleaved NaNs,
// runs of ties, sorted rows) can make partitions lopsided on purpose; after more rounds than a balanced run
// needs, the remaining range is heap-sorted, so selection is expected linear and never worse than n log n.
let rng: u32 = 0x9E3779B9;
/** Keys visited by partitions and heapsorts since the last read: tests check selection stays linear. */
let work: f64 = 0;

/** Keys visited by selection since the last call (and reset it). */
export function topk_work(): f64 {
  const w = work;
  work = 0;
  return w;
}

// @ts-ignore: decorator
@inline function rand_in(lo: i32, hi: i32): i32 {
  rng ^= rng << 13;
  rng ^= rng >> 17;
  rng ^= rng << 5;
  return lo + <i32>(rng % <u32>(hi - lo + 1));
}

/**
 * Partition of [lo, hi] around the median of three random keys, without a branch on the keys (Lomuto's scheme
 * with an unconditional swap: a branch per key mispredicts on half of them). The pivot ends at its final place m;
 * returns (m + 1, m - 1) packed as (i, j): [lo..j] > piv > [i..hi].
 */
// @ts-ignore: decorator
@inline function partition(p: usize, lo: i32, hi: i32): i64 {
  const ia = rand_in(lo, hi), ib = rand_in(lo, hi), ic = rand_in(lo, hi);
  const a = ld64(p, ia), b = ld64(p, ib), c = ld64(p, ic);
  const im = a > b ? (b > c ? ib : a > c ? ic : ia) : (a > c ? ia : b > c ? ic : ib);
  const piv = ld64(p, im);
  work += <f64>(hi - lo + 1);
  st64(p, im, ld64(p, hi)); // the pivot waits at hi
  let i = lo;
  for (let j = lo; j < hi; j++) {
    const v = ld64(p, j);
    st64(p, j, ld64(p, i));
    st64(p, i, v);
    i += <i32>(v > piv); // [lo, i) > piv >= [i, j]
  }
  st64(p, hi, ld64(p, i));
  st64(p, i, piv);
  return (<i64>(i + 1) << 32) | <i64>(<u32>(i - 1));
}

/** Sift key i down a min-heap of n keys at p. */
function sift_min(p: usize, n: i32, i: i32): void {
  const v = ld64(p, i);
  for (;;) {
    let c = 2 * i + 1;
    if (c >= n) break;
    if (c + 1 < n && ld64(p, c + 1) < ld64(p, c)) c++;
    if (ld64(p, c) >= v) break;
    st64(p, i, ld64(p, c));
    i = c;
  }
  st64(p, i, v);
}

/** Heapsort of [lo, hi], descending: the guaranteed n log n fallback. */
function heapsort_desc(p: usize, lo: i32, hi: i32): void {
  const b = p + (<usize>lo << 3), n = hi - lo + 1;
  work += <f64>n * <f64>(33 - clz(n)) * 2;
  for (let i = (n >> 1) - 1; i >= 0; i--) sift_min(b, n, i);
  for (let end = n - 1; end > 0; end--) {
    const t = ld64(b, 0);
    st64(b, 0, ld64(b, end));
    st64(b, end, t);
    sift_min(b, end, 0);
  }
}

/** Rounds a selection or sort may take before falling back to heapsort: about 2 log2(n) + 8. */
// @ts-ignore: decorator
@inline function round_limit(n: i32): i32 {
  return 2 * (32 - clz(n)) + 8;
}

/** Partial quickselect (keys distinct): afterwards [0, k) hold the k largest, position k-1 the k-th largest. */
function select_desc(p: usize, n: i32, k: i32): void {
  let lo = 0, hi = n - 1, rounds = round_limit(n);
  const t = k - 1;
  while (hi - lo > 16) {
    if (rounds-- == 0) {
      heapsort_desc(p, lo, hi);
      return;
    }
    const ij = partition(p, lo, hi);
    const i = <i32>(ij >> 32), j = <i32>ij;
    if (t <= j) hi = j;
    else if (t >= i) lo = i;
    else return;
  }
  isort_desc(p + (<usize>lo << 3), hi - lo + 1);
}

/** Quicksort, descending (keys distinct), insertion sort below 17, heapsort past the round limit. */
function sort_desc(p: usize, lo: i32, hi: i32, rounds: i32 = -1): void {
  if (rounds < 0) rounds = round_limit(hi - lo + 1);
  while (hi - lo > 16) {
    if (rounds-- == 0) {
      heapsort_desc(p, lo, hi);
      return;
    }
    const ij = partition(p, lo, hi);
    const i = <i32>(ij >> 32), j = <i32>ij;
    if (j - lo < hi - i) { sort_desc(p, lo, j, rounds); lo = i; }
    else { sort_desc(p, i, hi, rounds); hi = j; }
  }
  isort_desc(p + (<usize>lo << 3), hi - lo + 1);
}

/** SIMD mask of lanes that could beat threshold t: v > t, or v is NaN. */
// @ts-ignore: decorator
@inline function maybe(v: v128, t: v128): v128 {
  return v128.or(f32x4.gt(v, t), f32x4.ne(v, v));
}

// Static scratch lives in the one shared memory: each instance (a pool thread) has its own pointers to it, and
// thread_scratch() moves a worker's to bytes of its own.
const SMALL = 33 * 8 + 8;
/** Keys buffer for k <= 32, plus slot 32 where ranks past k land (static: kernels never allocate). */
let small = memory.data(SMALL, 16);

/** Candidate keys of the bounded scan (static: kernels never allocate). */
const CAND = 512;
let cand = memory.data(CAND * 8 + 32, 16);
let lanes = memory.data(128, 16);
/** Candidate indices of topk_bounded's pass 2 (CAND, and one vector's store past them). */
let cidx = memory.data(CAND * 4 + 16, 16);
/** Row m packs the 4-byte lanes set in the 4-bit mask m to the front (i8x16.swizzle; 128 = zero byte). */
const PACK = memory.data<u8>([
  128, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128,
  0, 1, 2, 3, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128,
  4, 5, 6, 7, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128,
  0, 1, 2, 3, 4, 5, 6, 7, 128, 128, 128, 128, 128, 128, 128, 128,
  8, 9, 10, 11, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128,
  0, 1, 2, 3, 8, 9, 10, 11, 128, 128, 128, 128, 128, 128, 128, 128,
  4, 5, 6, 7, 8, 9, 10, 11, 128, 128, 128, 128, 128, 128, 128, 128,
  0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 128, 128, 128, 128,
  12, 13, 14, 15, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128,
  0, 1, 2, 3, 12, 13, 14, 15, 128, 128, 128, 128, 128, 128, 128, 128,
  4, 5, 6, 7, 12, 13, 14, 15, 128, 128, 128, 128, 128, 128, 128, 128,
  0, 1, 2, 3, 4, 5, 6, 7, 12, 13, 14, 15, 128, 128, 128, 128,
  8, 9, 10, 11, 12, 13, 14, 15, 128, 128, 128, 128, 128, 128, 128, 128,
  0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 15, 128, 128, 128, 128,
  4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 128, 128, 128, 128,
  0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
], 16);

/**
 * Pass 2 of the bounded scans: appends to buf (capacity cap keys, holding cnt already) the keys of x[start..n)
 * not below the bound tf (NaN included: "not below" is false only for v < tf), 16 lanes per test. When buf
 * fills up, a quickselect keeps the best k and the bound rises to the k-th value. Returns the count.
 */
function collect(x: usize, n: i32, start: i32, k: i32, tf: f32, buf: usize, cap: i32, cnt: i32): i32 {
  let tv = f32x4.splat(tf);
  let i = start;
  for (; i + 16 <= n; i += 16) {
    const o = x + (<usize>i << 2);
    const m0 = f32x4.lt(v128.load(o), tv), m1 = f32x4.lt(v128.load(o, 16), tv);
    const m2 = f32x4.lt(v128.load(o, 32), tv), m3 = f32x4.lt(v128.load(o, 48), tv);
    if (i32x4.all_true(v128.and(v128.and(m0, m1), v128.and(m2, m3)))) continue;
    if (cnt > cap - 16) {
      select_desc(buf, cnt, k);
      cnt = k;
      const kth = ldf(x, idx_of(ld64(buf, k - 1)));
      if (kth > tf) tf = kth; // the bound only rises (a NaN k-th leaves it: still a valid bound)
      tv = f32x4.splat(tf);
      i -= 16; // re-test this block against the raised bound
      continue;
    }
    let bits = ~(i32x4.bitmask(m0) | (i32x4.bitmask(m1) << 4) | (i32x4.bitmask(m2) << 8) | (i32x4.bitmask(m3) << 12)) & 0xFFFF;
    while (bits) {
      const j = i + ctz(bits);
      bits &= bits - 1;
      st64(buf, cnt++, key_of(ldf(x, j), j));
    }
  }
  for (; i < n; i++) {
    const v = ldf(x, i);
    if (v < tf) continue;
    if (cnt == cap) {
      select_desc(buf, cnt, k);
      cnt = k;
      const kth = ldf(x, idx_of(ld64(buf, k - 1)));
      if (kth > tf) tf = kth;
      if (v < tf) continue;
    }
    st64(buf, cnt++, key_of(v, i));
  }
  return cnt;
}

/** Appends to cidx at cnt the lanes of iv (indices) not flagged in `below`, packed: no branch per lane. */
// @ts-ignore: decorator
@inline function pack4(below: v128, iv: v128, cnt: i32): i32 {
  const m = ~i32x4.bitmask(below) & 15;
  v128.store(cidx + (<usize>cnt << 2), i8x16.swizzle(iv, v128.load(PACK + (<usize>m << 4))));
  return cnt + popcnt(m);
}

/**
 * topk_bounded's pass 2 when it fits: the indices of x[0..n) not below tf (NaN included) into cidx, 16 lanes per
 * test and packed by swizzles (a branch per lane mispredicts on every random row). -1 if more than CAND would be
 * kept: the caller then collects keys with collect(), which raises the bound as its buffer fills.
 */
function collect_idx(x: usize, n: i32, tf: f32): i32 {
  const tv = f32x4.splat(tf), four = i32x4.splat(4), sixteen = i32x4.splat(16);
  let iv = i32x4(0, 1, 2, 3);
  let cnt = 0, i = 0;
  for (; i + 16 <= n; i += 16, iv = i32x4.add(iv, sixteen)) {
    const o = x + (<usize>i << 2);
    const m0 = f32x4.lt(v128.load(o), tv), m1 = f32x4.lt(v128.load(o, 16), tv);
    const m2 = f32x4.lt(v128.load(o, 32), tv), m3 = f32x4.lt(v128.load(o, 48), tv);
    if (cnt > CAND - 16) return -1;
    const iv1 = i32x4.add(iv, four), iv2 = i32x4.add(iv1, four);
    cnt = pack4(m0, iv, cnt);
    cnt = pack4(m1, iv1, cnt);
    cnt = pack4(m2, iv2, cnt);
    cnt = pack4(m3, i32x4.add(iv2, four), cnt);
  }
  for (; i < n; i++) {
    if (ldf(x, i) < tf) continue;
    if (cnt == CAND) return -1;
    store<i32>(cidx + (<usize>cnt << 2), i);
    cnt++;
  }
  return cnt;
}

/** cand[0..cnt) = the keys of the elements of x indexed by cidx[0..cnt), four at a time (key_of in lanes). */
function keys_of_idx(x: usize, cnt: i32): void {
  for (let j = 0; j < cnt; j += 4) {
    const iv = v128.load(cidx + (<usize>j << 2));
    let v = v128.load32_lane(x + (<usize>i32x4.extract_lane(iv, 0) << 2), iv, 0);
    v = v128.load32_lane(x + (<usize>i32x4.extract_lane(iv, 1) << 2), v, 1);
    v = v128.load32_lane(x + (<usize>i32x4.extract_lane(iv, 2) << 2), v, 2);
    v = v128.load32_lane(x + (<usize>i32x4.extract_lane(iv, 3) << 2), v, 3);
    // fkey per lane: the order-preserving int, -0 as +0, NaN as the largest
    let o = v128.xor(v, v128.and(i32x4.shr_s(v, 31), i32x4.splat(0x7FFFFFFF)));
    o = v128.andnot(o, i32x4.eq(o, i32x4.splat(-1)));
    o = v128.bitselect(i32x4.splat(0x7FFFFFFF), o, f32x4.ne(v, v));
    const ni = v128.not(iv), q = cand + (<usize>j << 3);
    v128.store(q, i32x4.shuffle(ni, o, 0, 4, 1, 5)); // little-endian i64: low half ~index, high half fkey
    v128.store(q, i32x4.shuffle(ni, o, 2, 6, 3, 7), 16);
  }
}

/**
 * Lower bound of the k-th largest for k > 32: lane-wise maxima over L = 4*nv >= k lanes (nv a power of two >= 16,
 * accumulators in buf), then the k-th largest of them by quickselect. NaN (not applicable) for rows shorter
 * than 16 L or L > cap.
 */
function big_bound(x: usize, n: i32, k: i32, buf: usize, cap: i32): f32 {
  let nv = 16;
  while ((nv << 2) < k) nv <<= 1;
  // About L ln(L / (L - k)) candidates pass the bound: 2k at L = 1.25k, but at L = k every element above the least
  // lane maximum (a fifth of a row of 32 per lane), refilling the buffer many times. Below 1.25k, L doubles where
  // the row allows (1.4k candidates); above, the larger quickselect of lane maxima costs more than it saves.
  if (4 * (nv << 2) < 5 * k && n >= 16 * (nv << 3)) nv <<= 1;
  const L = nv << 2;
  if (n < 16 * L || L > cap) return NaN;
  for (let v = 0; v < nv; v++) v128.store(buf + (<usize>v << 4), f32x4.splat(-Infinity));
  for (let i = 0; i + L <= n; i += L) {
    const o = x + (<usize>i << 2);
    for (let v = 0; v < nv; v++) {
      const q = <usize>v << 4;
      v128.store(buf + q, f32x4.pmax(v128.load(buf + q), v128.load(o + q)));
    }
  }
  // floats -> keys in place, from the top down (key j at 8j only overwrites floats 2j, 2j+1 >= j, done already)
  for (let j = L - 1; j >= 0; j--) st64(buf, j, key_of(ldf(buf, j), j));
  select_desc(buf, L, k);
  const o = <i32>(ld64(buf, k - 1) >> 32); // the order-preserving int back to the float (never NaN: pmax skips it)
  return reinterpret<f32>(o >= 0 ? o : o ^ 0x7FFFFFFF);
}

/**
 * The k-th largest of the 4*nv floats in `lanes` (no NaN). nv <= 4: branch-free SIMD counting, the largest
 * value with at least k values >= it; nv = 8: partial insertion sort.
 */
function kth_lane(nv: i32, k: i32): f32 {
  if (nv <= 4) {
    let best = f32x4.splat(-Infinity);
    const vk = i32x4.splat(k);
    for (let t = 0; t < nv; t++) {
      const vt = v128.load(lanes + (<usize>t << 4));
      let c = i32x4.splat(0);
      for (let u = 0; u < nv; u++) {
        const vu = v128.load(lanes + (<usize>u << 4));
        c = i32x4.sub(c, f32x4.ge(vu, vt));
        c = i32x4.sub(c, f32x4.ge(i32x4.shuffle(vu, vu, 1, 2, 3, 0), vt));
        c = i32x4.sub(c, f32x4.ge(i32x4.shuffle(vu, vu, 2, 3, 0, 1), vt));
        c = i32x4.sub(c, f32x4.ge(i32x4.shuffle(vu, vu, 3, 0, 1, 2), vt));
      }
      best = f32x4.pmax(best, v128.bitselect(vt, f32x4.splat(-Infinity), i32x4.ge_s(c, vk)));
    }
    best = f32x4.pmax(best, i32x4.shuffle(best, best, 2, 3, 0, 1));
    best = f32x4.pmax(best, i32x4.shuffle(best, best, 1, 0, 3, 2));
    return f32x4.extract_lane(best, 0);
  }
  const blk = nv << 2;
  for (let i = 1; i < k; i++) {
    const v = ldf(lanes, i);
    let j = i;
    for (; j > 0 && ldf(lanes, j - 1) < v; j--) store<f32>(lanes + (<usize>j << 2), ldf(lanes, j - 1));
    store<f32>(lanes + (<usize>j << 2), v);
  }
  for (let i = k; i < blk; i++) {
    const v = ldf(lanes, i);
    if (!(v > ldf(lanes, k - 1))) continue;
    let j = k - 1;
    for (; j > 0 && ldf(lanes, j - 1) < v; j--) store<f32>(lanes + (<usize>j << 2), ldf(lanes, j - 1));
    store<f32>(lanes + (<usize>j << 2), v);
  }
  return ldf(lanes, k - 1);
}

/**
 * Two SIMD passes for k <= 32: pass 1 takes lane-wise maxima over L = 8 or 16 (k <= 8) or 32
 * disjoint lanes; the k-th largest of them bounds the k-th largest element from below (k distinct elements reach it).
 * Pass 2 packs the indices of elements not below the bound without a branch (collect_idx), then makes their
 * keys; past CAND candidates (ties, constant rows) it collects keys instead, and a quickselect keeps the best k
 * and raises the bound to the k-th value whenever `cand` fills. Finally the best k are selected and, if sorted,
 * sorted. Returns the key buffer.
 */
function topk_bounded(x: usize, n: i32, k: i32, sorted: bool): usize {
  const nv = k <= 8 ? (n < 64 ? 2 : 4) : 8;
  const blk = nv << 2;
  // pmax (one x86 maxps; wasm max/min lower to several instructions) skips NaN: lane maxima are maxima of
  // the non-NaN elements. Still a valid bound: the top k are NaNs and then non-NaN elements >= the k-th lane
  // maximum, so pass 2 keeps every lane that is not below the bound (NaN included).
  let a0 = f32x4.splat(-Infinity), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
  for (let i = 0; i + blk <= n; i += blk) {
    const o = x + (<usize>i << 2);
    a0 = f32x4.pmax(a0, v128.load(o));
    a1 = f32x4.pmax(a1, v128.load(o, 16));
    if (nv > 2) {
      a2 = f32x4.pmax(a2, v128.load(o, 32));
      a3 = f32x4.pmax(a3, v128.load(o, 48));
    }
    if (nv > 4) {
      a4 = f32x4.pmax(a4, v128.load(o, 64));
      a5 = f32x4.pmax(a5, v128.load(o, 80));
      a6 = f32x4.pmax(a6, v128.load(o, 96));
      a7 = f32x4.pmax(a7, v128.load(o, 112));
    }
  }
  v128.store(lanes, a0);
  v128.store(lanes, a1, 16);
  if (nv > 2) {
    v128.store(lanes, a2, 32);
    v128.store(lanes, a3, 48);
  }
  if (nv > 4) {
    v128.store(lanes, a4, 64);
    v128.store(lanes, a5, 80);
    v128.store(lanes, a6, 96);
    v128.store(lanes, a7, 112);
  }
  // The k-th largest lane maximum: k lanes (distinct elements) are >= it, so it bounds the k-th largest.
  let tf = kth_lane(nv, k);
  let cnt = collect_idx(x, n, tf);
  if (cnt < 0) cnt = collect(x, n, 0, k, tf, cand, CAND, 0);
  else {
    v128.store(cidx + (<usize>cnt << 2), i32x4.splat(0)); // lanes past cnt read x[0], not a stale index
    keys_of_idx(x, cnt);
  }
  if (cnt <= 24) {
    // Few candidates: branch-free rank counting (keys are distinct) places the best k in rank order.
    st64(cand, cnt, i64.MIN_VALUE); // pad to a whole pair
    for (let a = 0; a < cnt; a++) {
      const ka = ld64(cand, a), va = i64x2.splat(ka);
      let r = i64x2.splat(0);
      for (let b = 0; b < cnt; b += 2) r = i64x2.sub(r, i64x2.gt_s(v128.load(cand + (<usize>b << 3)), va));
      const rank = <i32>(i64x2.extract_lane(r, 0) + i64x2.extract_lane(r, 1));
      st64(small, select<i32>(rank, 32, rank < k), ka); // branch-free: ranks past k go to the spare slot
    }
    return small;
  }
  select_desc(cand, cnt, k);
  if (sorted) sort_desc(cand, 0, k - 1);
  return cand;
}

/**
 * Top k of one row x[0..n) into buf (keys, descending rank, [0, k)). k <= 32: sorted buffer of k keys with a
 * SIMD threshold scan (16 lanes per test); a lane enters only if its key beats the k-th key. k > 32: candidates
 * above the threshold are appended to buf (capacity cap >= 2k keys) and quickselected back to k when full.
 * Returns buf (small or big).
 */
function topk_row(x: usize, n: i32, k: i32, sorted: bool, big: usize, cap: i32): usize {
  if (k <= 32) {
    const buf = small;
    if (n >= max(2 * k + 8, k <= 8 ? (n < 64 ? 8 : 16) : 32)) {
      const c = topk_bounded(x, n, k, sorted);
      if (c) return c;
    }
    for (let i = 0; i < k; i++) st64(buf, i, key_of(ldf(x, i), i));
    isort_desc(buf, k);
    let tk = ld64(buf, k - 1);
    let tf = ldf(x, idx_of(tk));
    let tv = f32x4.splat(tf);
    let i = k;
    while (i < n) {
      if (i + 16 <= n) {
        const o = x + (<usize>i << 2);
        const m = v128.or(v128.or(maybe(v128.load(o), tv), maybe(v128.load(o, 16), tv)),
          v128.or(maybe(v128.load(o, 32), tv), maybe(v128.load(o, 48), tv)));
        if (!v128.any_true(m)) { i += 16; continue; }
      }
      const end = min(i + 16, n);
      for (; i < end; i++) {
        const v = ldf(x, i);
        if (!(v > tf) && v == v) continue;
        const key = key_of(v, i);
        if (key <= tk) continue;
        let j = k - 1;
        for (; j > 0 && ld64(buf, j - 1) < key; j--) st64(buf, j, ld64(buf, j - 1));
        st64(buf, j, key);
        tk = ld64(buf, k - 1);
        tf = ldf(x, idx_of(tk));
      }
      tv = f32x4.splat(tf);
    }
    return buf;
  }
  const buf = big;
  let cnt = 0;
  const lb = big_bound(x, n, k, buf, cap);
  if (lb == lb) cnt = collect(x, n, 0, k, lb, buf, cap, 0);
  else {
    // short rows: the first cap elements give the first bound
    cnt = min(n, cap);
    for (let i = 0; i < cnt; i++) st64(buf, i, key_of(ldf(x, i), i));
    if (n > cnt) {
      select_desc(buf, cnt, k);
      cnt = collect(x, n, cap, k, ldf(x, idx_of(ld64(buf, k - 1))), buf, cap, k);
    }
  }
  if (cnt > k) select_desc(buf, cnt, k);
  if (sorted) sort_desc(buf, 0, k - 1);
  return buf;
}

/** Writes the k selected of x (keys in buf) as indices (and values if vals != 0): rank order or index order. */
function emit(x: usize, buf: usize, k: i32, sorted: bool, idx: usize, vals: usize): void {
  if (!sorted) {
    // ascending index = descending ~index: sort the low halves as unsigned keys.
    for (let j = 0; j < k; j++) st64(buf, j, <i64>(<u32>ld64(buf, j)));
    sort_desc(buf, 0, k - 1);
  }
  for (let j = 0; j < k; j++) {
    const i = idx_of(ld64(buf, j));
    store<i32>(idx + (<usize>j << 2), i);
    if (vals) store<f32>(vals + (<usize>j << 2), ldf(x, i));
  }
}

/** Key-buffer capacity the JS side must reserve (8 bytes each) for topk with k > 32 on rows of n. */
export function topk_scratch_keys(n: i32, k: i32): i32 {
  return k <= 32 ? 0 : min(n, max(4 * k, 1024));
}

let lanebuf = memory.data(64, 16);
let colbuf = memory.data(64, 16);

/**
 * Short rows (cols <= 32, k <= 4), four rows at a time, one row per lane: columns (gathered by 4x4 transposes)
 * enter a sorted register list of k (value, index) slots. A column beats slot j when strictly greater (so
 * ties keep the earlier, lower index; -0 equals +0); it lands at the first slot it beats and the slots below
 * shift down. Slots not yet filled are always beaten. Float compares cannot rank NaN: returns false (nothing
 * written) if a NaN is met, and the caller redoes these rows one by one.
 */
function topk_rows4(x: usize, vals: usize, idx: usize, r0: i32, cols: i32, k: i32, sorted: bool): bool {
  const st = <usize>cols << 2;
  const p0 = x + <usize>r0 * st, p1 = p0 + st, p2 = p1 + st, p3 = p2 + st;
  const ones = i32x4.splat(-1);
  let b0 = f32x4.splat(0), b1 = b0, b2 = b0, b3 = b0;
  let i0 = i32x4.splat(0), i1 = i0, i2 = i0, i3 = i0;
  let nan = i32x4.splat(0);
  let c = 0;
  while (c < cols) {
    let nb = 1;
    if (c + 4 <= cols) {
      const o = <usize>c << 2;
      const q0 = v128.load(p0 + o), q1 = v128.load(p1 + o), q2 = v128.load(p2 + o), q3 = v128.load(p3 + o);
      const t0 = i32x4.shuffle(q0, q1, 0, 4, 1, 5), t1 = i32x4.shuffle(q0, q1, 2, 6, 3, 7);
      const t2 = i32x4.shuffle(q2, q3, 0, 4, 1, 5), t3 = i32x4.shuffle(q2, q3, 2, 6, 3, 7);
      v128.store(colbuf, i32x4.shuffle(t0, t2, 0, 1, 4, 5));
      v128.store(colbuf, i32x4.shuffle(t0, t2, 2, 3, 6, 7), 16);
      v128.store(colbuf, i32x4.shuffle(t1, t3, 0, 1, 4, 5), 32);
      v128.store(colbuf, i32x4.shuffle(t1, t3, 2, 3, 6, 7), 48);
      nb = 4;
    } else {
      const o = <usize>c << 2;
      let v = v128.load32_lane(p0 + o, f32x4.splat(0), 0);
      v = v128.load32_lane(p1 + o, v, 1);
      v = v128.load32_lane(p2 + o, v, 2);
      v128.store(colbuf, v128.load32_lane(p3 + o, v, 3));
    }
    for (let u = 0; u < nb; u++, c++) {
      const v = v128.load(colbuf + (<usize>u << 4)), jv = i32x4.splat(c);
      nan = v128.or(nan, f32x4.ne(v, v));
      const m0 = c > 0 ? f32x4.gt(v, b0) : ones;
      if (k > 1) {
        const m1 = c > 1 ? f32x4.gt(v, b1) : ones;
        if (k > 2) {
          const m2 = c > 2 ? f32x4.gt(v, b2) : ones;
          if (k > 3) {
            const m3 = c > 3 ? f32x4.gt(v, b3) : ones;
            b3 = v128.bitselect(v128.bitselect(b2, v, m2), b3, m3);
            i3 = v128.bitselect(v128.bitselect(i2, jv, m2), i3, m3);
          }
          b2 = v128.bitselect(v128.bitselect(b1, v, m1), b2, m2);
          i2 = v128.bitselect(v128.bitselect(i1, jv, m1), i2, m2);
        }
        b1 = v128.bitselect(v128.bitselect(b0, v, m0), b1, m1);
        i1 = v128.bitselect(v128.bitselect(i0, jv, m0), i1, m1);
      }
      b0 = v128.bitselect(v, b0, m0);
      i0 = v128.bitselect(jv, i0, m0);
    }
  }
  if (v128.any_true(nan)) return false;
  // Rows r0..r0+3 are contiguous in the output ([rows, k]).
  const o = idx + ((<usize>r0 * <usize>k) << 2), ov = vals + ((<usize>r0 * <usize>k) << 2);
  if (k == 1) {
    v128.store(o, i0);
    if (vals) v128.store(ov, b0);
    return true;
  }
  if (k == 2) {
    if (!sorted) { // index order: swap the lanes whose slot 1 has the lower index
      const sw = i32x4.gt_s(i0, i1);
      const a = v128.bitselect(i1, i0, sw), b = v128.bitselect(i0, i1, sw);
      i0 = a; i1 = b;
      const fa = v128.bitselect(b1, b0, sw), fb = v128.bitselect(b0, b1, sw);
      b0 = fa; b1 = fb;
    }
    v128.store(o, i32x4.shuffle(i0, i1, 0, 4, 1, 5));
    v128.store(o, i32x4.shuffle(i0, i1, 2, 6, 3, 7), 16);
    if (vals) {
      v128.store(ov, i32x4.shuffle(b0, b1, 0, 4, 1, 5));
      v128.store(ov, i32x4.shuffle(b0, b1, 2, 6, 3, 7), 16);
    }
    return true;
  }
  v128.store(lanebuf, i0);
  v128.store(lanebuf, i1, 16);
  v128.store(lanebuf, i2, 32);
  v128.store(lanebuf, i3, 48);
  for (let l = 0; l < 4; l++) {
    const ol = o + ((<usize>(l * k)) << 2), olv = ov + ((<usize>(l * k)) << 2), xr = p0 + <usize>l * st;
    for (let j = 0; j < k; j++) store<i32>(ol + (<usize>j << 2), load<i32>(lanebuf + (<usize>(j * 4 + l) << 2)));
    if (!sorted) {
      for (let a = 1; a < k; a++) {
        const v = load<i32>(ol + (<usize>a << 2));
        let j = a;
        for (; j > 0 && load<i32>(ol + (<usize>(j - 1) << 2)) > v; j--) store<i32>(ol + (<usize>j << 2), load<i32>(ol + (<usize>(j - 1) << 2)));
        store<i32>(ol + (<usize>j << 2), v);
      }
    }
    if (vals) for (let j = 0; j < k; j++) store<f32>(olv + (<usize>j << 2), ldf(xr, load<i32>(ol + (<usize>j << 2))));
  }
  return true;
}

/** Top-k of rows (values optional: vals = 0). */
function topk_rows(x: usize, vals: usize, idx: usize, rows: i32, cols: i32, k: i32, sorted: bool, big: usize): void {
  const cap = topk_scratch_keys(cols, k);
  let r = 0;
  if (k <= 4 && cols <= 32) {
    for (; r + 4 <= rows; r += 4) {
      if (topk_rows4(x, vals, idx, r, cols, k, sorted)) continue;
      for (let q = r; q < r + 4; q++) { // a NaN among these rows: one at a time
        const xr = x + (<usize>q * <usize>cols << 2), o = <usize>q * <usize>k << 2;
        emit(xr, topk_row(xr, cols, k, sorted, big, cap), k, sorted, idx + o, vals ? vals + o : 0);
      }
    }
  }
  for (; r < rows; r++) {
    const xr = x + (<usize>r * <usize>cols << 2), o = <usize>r * <usize>k << 2;
    const buf = topk_row(xr, cols, k, sorted, big, cap);
    emit(xr, buf, k, sorted, idx + o, vals ? vals + o : 0);
  }
}

/** Top-k of each row: values/indices [rows, k]; sorted = rank order, else index order. Exact. */
export function topk_f32(x: usize, vals: usize, idx: usize, rows: i32, cols: i32, k: i32, sorted: i32, big: usize): void {
  topk_rows(x, vals, idx, rows, cols, k, sorted != 0, big);
}

// ---- Router. Scoring modes: 0 softmax(z*scale), 1 sigmoid(z*scale), 2 stablemax(z*scale),
// 3 softmax(sigmoid(z)*scale) ("activation"). scale = 1/temperature. Routing probability p = s, except for
// sigmoid where p = s / sum(s) (DeepSeek-V3's normalized affinities).

/**
 * sigmoid via t = e/(1+e), e = exp(-|u|) (never overflows): t for u < 0, 1 - t for u >= 0. 1/(1+e) would round 1 + e
 * to an ulp of 2 and leave saturated scores 2 ulps below 1 (expert choice then ranked them out of order); 1 - t errs
 * by (2 + 2 e_exp) t + 1/2 ulps (e_exp: exp_f32's error in ulps), so a saturated score is rounded once, as the
 * reference's. NaN stays NaN.
 */
// @ts-ignore: decorator
@inline function sigmoid_f32x4(u: v128): v128 {
  const e = exp_f32x4(f32x4.neg(f32x4.abs(u)));
  const t = f32x4.div(e, f32x4.add(f32x4.splat(1), e));
  return v128.bitselect(f32x4.sub(f32x4.splat(1), t), t, f32x4.ge(u, f32x4.splat(0)));
}

// @ts-ignore: decorator
@inline function sigmoid_f32(u: f32): f32 {
  const e = exp_f32(-Mathf.abs(u)), t = e / (1 + e);
  return u >= 0 ? 1 - t : t;
}

/** logsumexp of one raw row, f64 (f32 exp lanes folded into f64 every 64). NaN/+Inf/all -Inf row: its max. */
function lse_row(z: usize, n: i32): f64 {
  const m = rowmax_f32(z, n);
  if (!(m > -Infinity && m < Infinity)) return <f64>m;
  const vm = f32x4.splat(m);
  let acc = f64x2.splat(0);
  let i = 0;
  while (i + 4 <= n) {
    let a = f32x4.splat(0);
    const end = min(i + 64, n & ~3);
    for (; i < end; i += 4) a = f32x4.add(a, exp_f32x4(f32x4.sub(v128.load(z + (<usize>i << 2)), vm)));
    acc = promote_add(acc, a);
  }
  let s = hsum_f64x2(acc);
  for (; i < n; i++) s += <f64>exp_f32(ldf(z, i) - m);
  return <f64>m + Math.log(s);
}

/** s = scores of one row (tmp: n f32 scratch). Returns the sum p normalizes by (sigmoid) or 1. */
function score_row(z: usize, s: usize, tmp: usize, n: i32, mode: i32, scale: f32): f64 {
  if (mode == 0) {
    softmax_f32_threepass(z, s, 1, n, scale);
    return 1;
  }
  const vs = f32x4.splat(scale);
  if (mode == 1) {
    let acc = f64x2.splat(0);
    let i = 0;
    for (; i + 4 <= n; i += 4) {
      const o = <usize>i << 2;
      const v = sigmoid_f32x4(f32x4.mul(v128.load(z + o), vs));
      v128.store(s + o, v);
      acc = promote_add(acc, v);
    }
    let S = hsum_f64x2(acc);
    for (; i < n; i++) {
      const v = sigmoid_f32(ldf(z, i) * scale);
      store<f32>(s + (<usize>i << 2), v);
      S += <f64>v;
    }
    return S;
  }
  if (mode == 2) {
    if (scale == 1) stablemax_f32(z, s, 1, n);
    else {
      let i = 0;
      for (; i + 4 <= n; i += 4) v128.store(tmp + (<usize>i << 2), f32x4.mul(v128.load(z + (<usize>i << 2)), vs));
      for (; i < n; i++) store<f32>(tmp + (<usize>i << 2), ldf(z, i) * scale);
      stablemax_f32(tmp, s, 1, n);
    }
    return 1;
  }
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(tmp + (<usize>i << 2), f32x4.mul(sigmoid_f32x4(v128.load(z + (<usize>i << 2))), vs));
  for (; i < n; i++) store<f32>(tmp + (<usize>i << 2), sigmoid_f32(ldf(z, i)) * scale);
  softmax_f32_threepass(tmp, s, 1, n, 1);
  return 1;
}

/** pSum[e] += s[e] * inv in f64. */
function psum_add(pSum: usize, s: usize, n: i32, inv: f64): void {
  const vi = f64x2.splat(inv);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const v = v128.load(s + (<usize>i << 2));
    const o = pSum + (<usize>i << 3);
    v128.store(o, f64x2.add(v128.load(o), f64x2.mul(f64x2.promote_low_f32x4(v), vi)));
    v128.store(o, f64x2.add(v128.load(o, 16), f64x2.mul(f64x2.promote_low_f32x4(i32x4.shuffle(v, v, 2, 3, 0, 1)), vi)), 16);
  }
  for (; i < n; i++) {
    const o = pSum + (<usize>i << 3);
    store<f64>(o, load<f64>(o) + <f64>ldf(s, i) * inv);
  }
}

/**
 * One token's scoring for the router: s = scores, pSum += routing probabilities (f64), returns logsumexp(z).
 * Softmax at any temperature is fused (max; exp, store and f64-folded sum; scale and accumulate), the other
 * scorings go through score_row then a pSum pass. `exact`: the sum in f64 from the first term, so tokens whose logits
 * are the same values in another order get the same scores (expert choice ranks tokens by them, ties to the lower
 * token; f32 partial sums round by where each value sits); else 16 terms a lane in f32 first (token choice ranks
 * the logits themselves, and runs ~10% faster so).
 */
function route_row(z: usize, s: usize, tmp: usize, n: i32, mode: i32, scale: f32, pSum: usize, exact: bool): f64 {
  if (mode != 0) {
    const S = score_row(z, s, tmp, n, mode, scale);
    psum_add(pSum, s, n, mode == 1 ? 1.0 / S : 1.0);
    return lse_row(z, n);
  }
  const m = rowmax_f32(z, n);
  if (!(m > -Infinity && m < Infinity)) { // the softmax row rule: NaN row, NaN probabilities
    for (let i = 0; i < n; i++) store<f32>(s + (<usize>i << 2), NaN);
    psum_add(pSum, s, n, 1.0);
    return <f64>m;
  }
  const vm = f32x4.splat(m), vs = f32x4.splat(scale);
  let acc = f64x2.splat(0);
  let i = 0;
  const block = exact ? 4 : 64;
  while (i + 4 <= n) {
    let a = f32x4.splat(0);
    const end = min(i + block, n & ~3);
    for (; i < end; i += 4) {
      const o = <usize>i << 2;
      const e = exp_f32x4(f32x4.mul(f32x4.sub(v128.load(z + o), vm), vs));
      v128.store(s + o, e);
      a = f32x4.add(a, e);
    }
    acc = promote_add(acc, a);
  }
  let sum = hsum_f64x2(acc);
  for (; i < n; i++) {
    const e = exp_f32((ldf(z, i) - m) * scale);
    store<f32>(s + (<usize>i << 2), e);
    sum += <f64>e;
  }
  const inv = <f32>(1.0 / sum), vi = f32x4.splat(inv);
  i = 0;
  for (; i + 4 <= n; i += 4) {
    const v = f32x4.mul(v128.load(s + (<usize>i << 2)), vi);
    v128.store(s + (<usize>i << 2), v);
    const o = pSum + (<usize>i << 3);
    v128.store(o, f64x2.add(v128.load(o), f64x2.promote_low_f32x4(v)));
    v128.store(o, f64x2.add(v128.load(o, 16), f64x2.promote_low_f32x4(i32x4.shuffle(v, v, 2, 3, 0, 1))), 16);
  }
  for (; i < n; i++) {
    const v = ldf(s, i) * inv;
    store<f32>(s + (<usize>i << 2), v);
    const o = pSum + (<usize>i << 3);
    store<f64>(o, load<f64>(o) + <f64>v);
  }
  return scale == 1 ? <f64>m + Math.log(sum) : lse_row(z, n);
}

// @ts-ignore: decorator
@inline function pad16(nbytes: i32): i32 {
  return (nbytes + 15) & ~15;
}

// ---- Short softmax routers (E <= 32, T = 1, plain selection): four tokens per vector, one token per lane.
let s4 = memory.data(32 * 16, 16); // scores, [E][4]: column e of tokens r0..r0+3
let pacc = memory.data(32 * 16, 16); // per-lane f32 sums of p, folded into pSum every 16 groups

/** Fold pacc (per-lane partial sums) into pSum (f64) and clear it. */
function fold_pacc(pSum: usize, E: i32): void {
  for (let e = 0; e < E; e++) {
    const v = v128.load(pacc + (<usize>e << 4));
    const o = pSum + (<usize>e << 3);
    store<f64>(o, load<f64>(o) + ((<f64>f32x4.extract_lane(v, 0) + <f64>f32x4.extract_lane(v, 1)) +
      (<f64>f32x4.extract_lane(v, 2) + <f64>f32x4.extract_lane(v, 3))));
    v128.store(pacc + (<usize>e << 4), f32x4.splat(0));
  }
}

/**
 * softmax of tokens r0..r0+3 (E <= 32, temperature 1) into s4, their probabilities added to pacc, their
 * logsumexp stored to lse. Same row rule as softmax: a token with NaN, +Inf or only -Inf gets NaN scores.
 */
function softmax4(z: usize, r0: i32, E: i32, lse: usize): void {
  const st = <usize>E << 2;
  const p0 = z + <usize>r0 * st, p1 = p0 + st, p2 = p1 + st, p3 = p2 + st;
  let mx = f32x4.splat(-Infinity), nan = i32x4.splat(0);
  let c = 0;
  for (; c + 4 <= E; c += 4) { // four experts of four tokens: a 4x4 transpose
    const o = <usize>c << 2, so = s4 + (<usize>c << 4);
    const q0 = v128.load(p0 + o), q1 = v128.load(p1 + o), q2 = v128.load(p2 + o), q3 = v128.load(p3 + o);
    const t0 = i32x4.shuffle(q0, q1, 0, 4, 1, 5), t1 = i32x4.shuffle(q0, q1, 2, 6, 3, 7);
    const t2 = i32x4.shuffle(q2, q3, 0, 4, 1, 5), t3 = i32x4.shuffle(q2, q3, 2, 6, 3, 7);
    const v0 = i32x4.shuffle(t0, t2, 0, 1, 4, 5), v1 = i32x4.shuffle(t0, t2, 2, 3, 6, 7);
    const v2 = i32x4.shuffle(t1, t3, 0, 1, 4, 5), v3 = i32x4.shuffle(t1, t3, 2, 3, 6, 7);
    v128.store(so, v0);
    v128.store(so, v1, 16);
    v128.store(so, v2, 32);
    v128.store(so, v3, 48);
    mx = f32x4.pmax(mx, f32x4.pmax(f32x4.pmax(v0, v1), f32x4.pmax(v2, v3)));
    nan = v128.or(nan, v128.or(v128.or(f32x4.ne(v0, v0), f32x4.ne(v1, v1)), v128.or(f32x4.ne(v2, v2), f32x4.ne(v3, v3))));
  }
  for (; c < E; c++) {
    const o = <usize>c << 2;
    let v = v128.load32_lane(p0 + o, f32x4.splat(0), 0);
    v = v128.load32_lane(p1 + o, v, 1);
    v = v128.load32_lane(p2 + o, v, 2);
    v = v128.load32_lane(p3 + o, v, 3);
    v128.store(s4 + (<usize>c << 4), v);
    mx = f32x4.pmax(mx, v);
    nan = v128.or(nan, f32x4.ne(v, v));
  }
  const bad = v128.or(nan, v128.or(f32x4.eq(mx, f32x4.splat(Infinity)), f32x4.eq(mx, f32x4.splat(-Infinity))));
  let lo = f64x2.splat(0), hi = lo;
  for (let c = 0; c < E; c++) {
    const e = exp_f32x4(f32x4.sub(v128.load(s4 + (<usize>c << 4)), mx));
    v128.store(s4 + (<usize>c << 4), e);
    lo = f64x2.add(lo, f64x2.promote_low_f32x4(e));
    hi = f64x2.add(hi, f64x2.promote_low_f32x4(i32x4.shuffle(e, e, 2, 3, 0, 1)));
  }
  const inv = i32x4.shuffle(f32x4.demote_f64x2_zero(f64x2.div(f64x2.splat(1), lo)),
    f32x4.demote_f64x2_zero(f64x2.div(f64x2.splat(1), hi)), 0, 1, 4, 5);
  const qnan = f32x4.splat(NaN);
  for (let c = 0; c < E; c++) {
    const p = v128.bitselect(qnan, f32x4.mul(v128.load(s4 + (<usize>c << 4)), inv), bad);
    v128.store(s4 + (<usize>c << 4), p);
    v128.store(pacc + (<usize>c << 4), f32x4.add(v128.load(pacc + (<usize>c << 4)), p));
  }
  // logsumexp per token: max + log(sum), or the max itself (NaN if the token holds a NaN) for a bad token
  store<f64>(lse + (<usize>r0 << 3), f32x4.extract_lane(bad, 0) ? (i32x4.extract_lane(nan, 0) ? NaN : <f64>f32x4.extract_lane(mx, 0)) : <f64>f32x4.extract_lane(mx, 0) + Math.log(f64x2.extract_lane(lo, 0)));
  store<f64>(lse + (<usize>(r0 + 1) << 3), i32x4.extract_lane(bad, 1) ? (i32x4.extract_lane(nan, 1) ? NaN : <f64>f32x4.extract_lane(mx, 1)) : <f64>f32x4.extract_lane(mx, 1) + Math.log(f64x2.extract_lane(lo, 1)));
  store<f64>(lse + (<usize>(r0 + 2) << 3), i32x4.extract_lane(bad, 2) ? (i32x4.extract_lane(nan, 2) ? NaN : <f64>f32x4.extract_lane(mx, 2)) : <f64>f32x4.extract_lane(mx, 2) + Math.log(f64x2.extract_lane(hi, 0)));
  store<f64>(lse + (<usize>(r0 + 3) << 3), i32x4.extract_lane(bad, 3) ? (i32x4.extract_lane(nan, 3) ? NaN : <f64>f32x4.extract_lane(mx, 3)) : <f64>f32x4.extract_lane(mx, 3) + Math.log(f64x2.extract_lane(hi, 1)));
}

/** Bytes of scratch route_scores_f32 needs. */
export function route_scores_scratch(E: i32): i32 {
  return 2 * pad16(E << 2);
}

/** Bytes of scratch route_grad_f32 needs. */
export function route_grad_scratch(E: i32): i32 {
  return 3 * pad16(E << 2);
}

/** Bytes of scratch route_tokens_f32 needs. */
export function route_tokens_scratch(E: i32, k: i32, groups: i32, topkGroups: i32): i32 {
  const keys = max(topk_scratch_keys(E, k), topk_scratch_keys(groups, topkGroups));
  return 2 * pad16(E << 2) + 2 * pad16(groups << 2) + (keys << 3) + 16;
}

/**
 * Token-choice routing of rows tokens (see src/backends/api/routing.ts routeTokens): scores, selection of the
 * top k of z (no bias, no groups: the scores are monotone in z) or of s + bias with the DeepSeek-V3 group
 * limit (group score = sum of its top-2 with a bias, its max without; the best topkGroups groups stay eligible), weights from s (f64 sum for
 * normalize), preCounts, pSum (f64), lse (f64); the dispatch steps (route_dispatch_*) follow. bias = 0: none.
 */
/** Token-choice scoring and selection for `rows` tokens, adding into pre (counts) and pSum (the dispatch steps
 *  then place them): pool threads run chunks of rows, each with its own pre, pSum and work. */
/**
 * The sum of the two largest of n >= 2 floats (NaN if one is NaN): a group's score for DeepSeek-V3's group-limited
 * routing. Values only, so ties need no rule; the same f32 addition as adding the top-2's values.
 */
function top2_sum(p: usize, n: i32): f32 {
  let a = f32x4.splat(-Infinity), b = a, nan = i32x4.splat(0); // per lane: the largest and the second largest
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const v = v128.load(p + (<usize>i << 2));
    nan = v128.or(nan, f32x4.ne(v, v));
    b = f32x4.pmax(b, f32x4.pmin(a, v));
    a = f32x4.pmax(a, v);
  }
  if (v128.any_true(nan)) return NaN;
  // the top two of the lanes' eight, without a branch: the largest lane maximum; the second is the largest of
  // the other lanes' maxima and every lane's second, or the largest again where two lanes reach it
  let t1 = hmax_f32x4(a);
  const top = f32x4.eq(a, f32x4.splat(t1));
  let t2 = select<f32>(t1, hmax_f32x4(f32x4.pmax(b, v128.bitselect(f32x4.splat(-Infinity), a, top))), popcnt(i32x4.bitmask(top)) > 1);
  for (; i < n; i++) {
    const v = ldf(p, i);
    if (v != v) return NaN;
    if (v > t1) { t2 = t1; t1 = v; } else if (v > t2) t2 = v;
  }
  return t1 + t2;
}

export function route_select_f32(z: usize, rows: i32, E: i32, k: i32, mode: i32, scale: f32, bias: usize,
  groups: i32, topkGroups: i32, normalize: i32, rscale: f32, experts: usize, weights: usize, pre: usize,
  pSum: usize, lse: usize, work: usize): void {
  const s = work, sel = s + <usize>pad16(E << 2), gsc = sel + <usize>pad16(E << 2);
  const gidx = gsc + <usize>pad16(groups << 2), big = gidx + <usize>pad16(groups << 2);
  const keys = topk_scratch_keys(E, k), gs = E / groups;
  const plain = !bias && groups == 1;
  // Plain selection ranks the logits: short rows go four at a time through the compare-exchange kernel first.
  const batched = plain && k <= 4 && E <= 32;
  if (batched) topk_rows(z, 0, experts, rows, E, k, true, big);
  let r0 = 0;
  if (batched && mode == 0 && scale == 1) {
    for (let e = 0; e < E; e++) v128.store(pacc + (<usize>e << 4), f32x4.splat(0));
    for (; r0 + 4 <= rows; r0 += 4) {
      softmax4(z, r0, E, lse);
      for (let l = 0; l < 4; l++) {
        const er = experts + (<usize>(r0 + l) * <usize>k << 2), wr = weights + (<usize>(r0 + l) * <usize>k << 2);
        let sum: f64 = 0;
        for (let j = 0; j < k; j++) sum += <f64>load<f32>(s4 + (<usize>(load<i32>(er + (<usize>j << 2)) * 4 + l) << 2));
        const c: f64 = normalize && sum > 0 ? <f64>rscale / sum : <f64>rscale;
        for (let j = 0; j < k; j++) {
          const e = load<i32>(er + (<usize>j << 2));
          store<f32>(wr + (<usize>j << 2), <f32>(<f64>load<f32>(s4 + (<usize>(e * 4 + l) << 2)) * c));
          const pc = pre + (<usize>e << 2);
          store<i32>(pc, load<i32>(pc) + 1);
        }
      }
      if ((r0 & 63) == 60) fold_pacc(pSum, E);
    }
    fold_pacc(pSum, E);
  }
  for (let r = r0; r < rows; r++) {
    const zr = z + (<usize>r * <usize>E << 2);
    store<f64>(lse + (<usize>r << 3), route_row(zr, s, sel, E, mode, scale, pSum, false));
    let src = zr;
    if (bias || groups > 1) {
      src = sel;
      if (bias) {
        let i = 0;
        for (; i + 4 <= E; i += 4) {
          const o = <usize>i << 2;
          v128.store(sel + o, f32x4.add(v128.load(s + o), v128.load(bias + o)));
        }
        for (; i < E; i++) store<f32>(sel + (<usize>i << 2), ldf(s, i) + ldf(bias, i));
      } else memory.copy(sel, s, <usize>E << 2);
      if (groups > 1) {
        const two = bias ? min(2, gs) : 1; // DeepSeek-V3 model.py: top-2 sum with the bias, max without
        for (let g = 0; g < groups; g++) {
          const gp = sel + (<usize>(g * gs) << 2);
          store<f32>(gsc + (<usize>g << 2), two == 2 ? top2_sum(gp, gs) : rowmax_f32(gp, gs));
        }
        emit(gsc, topk_row(gsc, groups, topkGroups, false, big, topk_scratch_keys(groups, topkGroups)), topkGroups, false, gidx, 0);
        let next = 0;
        for (let g = 0; g < groups; g++) {
          if (next < topkGroups && load<i32>(gidx + (<usize>next << 2)) == g) { next++; continue; }
          const gp = sel + (<usize>(g * gs) << 2);
          for (let i = 0; i < gs; i++) store<f32>(gp + (<usize>i << 2), -Infinity);
        }
      }
    }
    const er = experts + (<usize>r * <usize>k << 2), wr = weights + (<usize>r * <usize>k << 2);
    if (!batched) emit(src, topk_row(src, E, k, true, big, keys), k, true, er, 0);
    let sum: f64 = 0;
    for (let j = 0; j < k; j++) sum += <f64>ldf(s, load<i32>(er + (<usize>j << 2)));
    const c: f64 = normalize && sum > 0 ? <f64>rscale / sum : <f64>rscale;
    for (let j = 0; j < k; j++) {
      const e = load<i32>(er + (<usize>j << 2));
      store<f32>(wr + (<usize>j << 2), <f32>(<f64>ldf(s, e) * c));
      const pc = pre + (<usize>e << 2);
      store<i32>(pc, load<i32>(pc) + 1);
    }
  }
}

/** Scoring only: scores (or nothing if 0) [rows, E], pSum, lse. work: route_scores_scratch(E) bytes. */
export function route_scores_f32(z: usize, rows: i32, E: i32, mode: i32, scale: f32, scores: usize, pSum: usize,
  lse: usize, work: usize): void {
  const tmp = work + <usize>pad16(E << 2);
  for (let r = 0; r < rows; r++) {
    const zr = z + (<usize>r * <usize>E << 2);
    const s = scores ? scores + (<usize>r * <usize>E << 2) : work;
    store<f64>(lse + (<usize>r << 3), route_row(zr, s, tmp, E, mode, scale, pSum, true));
  }
}

// ---- Dispatch (routeDispatch in the API) in three steps, so pool threads can run chunks of the assignments:
// count per chunk, plan on the caller (capacity drops go to the first `cap` of each expert in assignment order),
// then place per chunk. The result is exact, so it is the same for any chunking.

/** Dispatch step 1, a chunk of n assignments: hist[e] = its assignments to expert e, hist[E] = those with none. */
export function route_dispatch_count(experts: usize, n: i32, E: i32, hist: usize): void {
  memory.fill(hist, 0, <usize>(E + 1) << 2);
  let kept = 0;
  for (let a = 0; a < n; a++) {
    if ((a & 3) == 0 && a + 4 <= n && !v128.any_true(i32x4.ge_s(v128.load(experts + (<usize>a << 2)), i32x4.splat(0)))) {
      a += 3; // four with none (most of expert choice's slots)
      continue;
    }
    const e = load<i32>(experts + (<usize>a << 2));
    if (e < 0) continue;
    const p = hist + (<usize>e << 2);
    store<i32>(p, load<i32>(p) + 1);
    kept++;
  }
  store<i32>(hist + (<usize>E << 2), n - kept);
}

/**
 * Dispatch step 2, on the caller: from the nch chunks' hist (chunk c's at slots + c * stride bytes, stride >= 8E + 8)
 * counts (at most cap per expert, cap -1: no limit) and offsets, and each chunk's slot becomes [0, E) its next order
 * position per expert, [E] its next position among the unplaced (none or dropped), [E + 1, 2E + 1) how many of its
 * assignments to each expert it keeps. Returns the dropped count.
 */
export function route_dispatch_plan(slots: usize, nch: i32, stride: i32, E: i32, cap: i32, counts: usize, offsets: usize): i32 {
  let dropped = 0;
  for (let e = 0; e < E; e++) {
    let total = 0;
    for (let c = 0; c < nch; c++) total += load<i32>(slots + <usize>c * <usize>stride + (<usize>e << 2));
    const kept = cap < 0 ? total : min(total, cap);
    store<i32>(counts + (<usize>e << 2), kept);
    dropped += total - kept;
  }
  let acc = 0;
  for (let e = 0; e < E; e++) {
    store<i32>(offsets + (<usize>e << 2), acc);
    acc += load<i32>(counts + (<usize>e << 2));
  }
  store<i32>(offsets + (<usize>E << 2), acc);
  for (let e = 0; e < E; e++) {
    const base = load<i32>(offsets + (<usize>e << 2));
    let run = 0;
    for (let c = 0; c < nch; c++) {
      const sl = slots + <usize>c * <usize>stride, pe = sl + (<usize>e << 2), h = load<i32>(pe);
      const before = cap < 0 ? run : min(run, cap), after = cap < 0 ? run + h : min(run + h, cap);
      store<i32>(pe, base + before);
      store<i32>(sl + (<usize>(E + 1 + e) << 2), after - before);
      store<i32>(sl + (<usize>E << 2), load<i32>(sl + (<usize>E << 2)) + h - (after - before));
      run += h;
    }
  }
  for (let c = 0; c < nch; c++) {
    const pt = slots + <usize>c * <usize>stride + (<usize>E << 2), n = load<i32>(pt);
    store<i32>(pt, acc);
    acc += n;
  }
  return dropped;
}

/**
 * Dispatch step 3, assignments [a0, a1) with their chunk's slot from route_dispatch_plan: order positions; an
 * assignment past its expert's capacity is dropped (experts -1, weights 0) and goes with the unplaced, in order.
 * Without a capacity nothing is dropped (weights may be 0).
 */
export function route_dispatch_place(experts: usize, weights: usize, a0: i32, a1: i32, E: i32, order: usize, slot: usize): void {
  let tail = load<i32>(slot + (<usize>E << 2));
  for (let a = a0; a < a1; a++) {
    const pa = <usize>a << 2;
    if (((a - a0) & 3) == 0 && a + 4 <= a1 && !v128.any_true(i32x4.ge_s(v128.load(experts + pa), i32x4.splat(0)))) {
      v128.store(order + (<usize>tail << 2), i32x4.add(i32x4.splat(a), v128(0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0)));
      tail += 4;
      a += 3;
      continue;
    }
    const e = load<i32>(experts + pa);
    if (e >= 0) {
      const pk = slot + (<usize>(E + 1 + e) << 2), keep = load<i32>(pk);
      if (keep > 0) {
        store<i32>(pk, keep - 1);
        const pc = slot + (<usize>e << 2), c = load<i32>(pc);
        store<i32>(order + (<usize>c << 2), a);
        store<i32>(pc, c + 1);
        continue;
      }
      store<i32>(experts + pa, -1);
      store<f32>(weights + pa, 0);
    }
    store<i32>(order + (<usize>(tail++) << 2), a);
  }
}

// ---- Expert choice (routeExpertChoice in the API) over the pool: the scores go straight into weights
// (route_scores_f32), then rows (per token chunk), select (per expert), weights (per token chunk).

/** Expert choice, a chunk of tokens: sel[e*T + t] = s[t*E + e] + bias[e] (each expert's row to rank; bias 0: none;
 *  sel 0: none wanted), experts[t*E + e] = -1. */
export function route_ec_rows_f32(s: usize, rows: i32, E: i32, bias: usize, sel: usize, T: i32, experts: usize): void {
  memory.fill(experts, 0xFF, <usize>rows * <usize>E << 2);
  if (!sel) return;
  const st = <usize>E << 2, rowT = <usize>T << 2;
  let r = 0;
  for (; r + 4 <= rows; r += 4) { // 4x4 blocks: four tokens of four experts, transposed in registers
    const p0 = s + <usize>r * st, p1 = p0 + st, p2 = p1 + st, p3 = p2 + st, o = sel + (<usize>r << 2);
    let e = 0;
    for (; e + 4 <= E; e += 4) {
      const q = <usize>e << 2;
      const q0 = v128.load(p0 + q), q1 = v128.load(p1 + q), q2 = v128.load(p2 + q), q3 = v128.load(p3 + q);
      const t0 = i32x4.shuffle(q0, q1, 0, 4, 1, 5), t1 = i32x4.shuffle(q0, q1, 2, 6, 3, 7);
      const t2 = i32x4.shuffle(q2, q3, 0, 4, 1, 5), t3 = i32x4.shuffle(q2, q3, 2, 6, 3, 7);
      let c0 = i32x4.shuffle(t0, t2, 0, 1, 4, 5), c1 = i32x4.shuffle(t0, t2, 2, 3, 6, 7);
      let c2 = i32x4.shuffle(t1, t3, 0, 1, 4, 5), c3 = i32x4.shuffle(t1, t3, 2, 3, 6, 7);
      if (bias) {
        c0 = f32x4.add(c0, f32x4.splat(ldf(bias, e)));
        c1 = f32x4.add(c1, f32x4.splat(ldf(bias, e + 1)));
        c2 = f32x4.add(c2, f32x4.splat(ldf(bias, e + 2)));
        c3 = f32x4.add(c3, f32x4.splat(ldf(bias, e + 3)));
      }
      const oe = o + <usize>e * rowT;
      v128.store(oe, c0);
      v128.store(oe + rowT, c1);
      v128.store(oe + 2 * rowT, c2);
      v128.store(oe + 3 * rowT, c3);
    }
    for (; e < E; e++) {
      const b: f32 = bias ? ldf(bias, e) : 0, oe = o + <usize>e * rowT;
      for (let l = 0; l < 4; l++) store<f32>(oe + (<usize>l << 2), ldf(s + <usize>(r + l) * st, e) + b);
    }
  }
  for (; r < rows; r++)
    for (let e = 0; e < E; e++) store<f32>(sel + <usize>e * rowT + (<usize>r << 2), ldf(s + <usize>r * st, e) + (bias ? ldf(bias, e) : 0));
}

/** Expert choice, experts [e0, e1): each takes the top k tokens of its row of sel ([E, T]): experts[t*E + e] = e.
 *  big: topk_scratch_keys(T, k) keys. */
export function route_ec_select_f32(sel: usize, T: i32, E: i32, k: i32, experts: usize, big: usize, e0: i32, e1: i32): void {
  const cap = topk_scratch_keys(T, k);
  for (let e = e0; e < e1; e++) {
    const buf = topk_row(sel + (<usize>e * <usize>T << 2), T, k, false, big, cap); // the set: its order is not needed
    for (let j = 0; j < k; j++) store<i32>(experts + ((<usize>idx_of(ld64(buf, j)) * <usize>E + <usize>e) << 2), e);
  }
}

/**
 * Expert choice, a chunk of tokens: each token's weights (its scores on entry) where an expert took it, 0 elsewhere,
 * times rscale / their f64 sum (normalize, sum > 0) or rscale. rscale is f64 as the API's scale. *none = tokens
 * no expert took.
 */
export function route_ec_weights_f32(experts: usize, weights: usize, rows: i32, E: i32, normalize: i32, rscale: f64, none: usize): void {
  let n = 0;
  const zero = i32x4.splat(0);
  for (let r = 0; r < rows; r++) {
    const er = experts + (<usize>r * <usize>E << 2), wr = weights + (<usize>r * <usize>E << 2);
    let sum: f64 = 0, taken = 0, e = 0;
    for (; e < E; e++) {
      if ((e & 3) == 0 && e + 4 <= E && !v128.any_true(i32x4.ge_s(v128.load(er + (<usize>e << 2)), zero))) {
        e += 3; // four experts that did not take it
        continue;
      }
      if (load<i32>(er + (<usize>e << 2)) >= 0) { sum += <f64>ldf(wr, e); taken++; }
    }
    if (taken == 0) n++;
    const c: f64 = normalize && sum > 0 ? rscale / sum : rscale, vc = f64x2.splat(c);
    for (e = 0; e + 4 <= E; e += 4) { // f32(f64(w) * c), as the scalar tail
      const o = <usize>e << 2, w = v128.and(v128.load(wr + o), i32x4.ge_s(v128.load(er + o), zero));
      const lo = f32x4.demote_f64x2_zero(f64x2.mul(f64x2.promote_low_f32x4(w), vc));
      const hi = f32x4.demote_f64x2_zero(f64x2.mul(f64x2.promote_low_f32x4(i32x4.shuffle(w, w, 2, 3, 0, 1)), vc));
      v128.store(wr + o, i32x4.shuffle(lo, hi, 0, 1, 4, 5));
    }
    for (; e < E; e++) {
      const w: f32 = load<i32>(er + (<usize>e << 2)) >= 0 ? ldf(wr, e) : 0;
      store<f32>(wr + (<usize>e << 2), <f32>(<f64>w * c));
    }
  }
  store<i32>(none, n);
}

/**
 * Gradients (routeGrad in the API): auxGrad = d/dz sum_e coef_e p_e per row, zGrad = 2 lse softmax(z) / rows.
 * Either output may be 0. work: route_grad_scratch(E) bytes. Error: 1e-6 relative to max |grad| of the row.
 */
/** Rows of a batch of `total` rows (a pool thread runs some of them): z-loss gradients are divided by total. */
export function route_grad_f32(z: usize, rows: i32, E: i32, mode: i32, scale: f32, coef: usize, lse: usize,
  auxGrad: usize, zGrad: usize, work: usize, total: i32): void {
  const s = work, tmp = s + <usize>pad16(E << 2), q = tmp + <usize>pad16(E << 2);
  const invRows: f64 = 1.0 / <f64>total;
  for (let r = 0; r < rows; r++) {
    const zr = z + (<usize>r * <usize>E << 2), ro = <usize>r * <usize>E << 2;
    if (zGrad) {
      softmax_f32_threepass(zr, q, 1, E, 1);
      const c = <f32>(2 * load<f64>(lse + (<usize>r << 3)) * invRows);
      const vc = f32x4.splat(c);
      let i = 0;
      for (; i + 4 <= E; i += 4) v128.store(zGrad + ro + (<usize>i << 2), f32x4.mul(v128.load(q + (<usize>i << 2)), vc));
      for (; i < E; i++) store<f32>(zGrad + ro + (<usize>i << 2), ldf(q, i) * c);
    }
    if (!auxGrad) continue;
    const S = score_row(zr, s, tmp, E, mode, scale);
    const inv: f64 = mode == 1 ? 1.0 / S : 1.0;
    let gp: f64 = 0;
    for (let e = 0; e < E; e++) gp += load<f64>(coef + (<usize>e << 3)) * <f64>ldf(s, e) * inv;
    for (let e = 0; e < E; e++) {
      const sv = <f64>ldf(s, e), d = load<f64>(coef + (<usize>e << 3)) - gp;
      let g: f64;
      if (mode == 0) g = sv * d;
      else if (mode == 1) g = sv * (1 - sv) * d * inv;
      else if (mode == 2) g = sv * d / (1 + Math.abs(<f64>ldf(zr, e) * <f64>scale));
      else {
        const sg = <f64>sigmoid_f32(ldf(zr, e));
        g = sv * d * sg * (1 - sg);
      }
      store<f32>(auxGrad + ro + (<usize>e << 2), <f32>(g * <f64>scale));
    }
  }
}

/** out[tokens*hidden] = sum over p < kept of weights[a] * eo[p] into row a / slots, a = order[p]. */
/** Columns [c0, c1) of the MoE combine (pool threads split columns: a token's sums keep their slot order). */
export function combine_f32(eo: usize, order: usize, weights: usize, slots: i32, kept: i32, hidden: i32, out: usize, outLen: i32,
  c0: i32, c1: i32): void {
  const hb = <usize>hidden << 2, rows = outLen / hidden;
  for (let r = 0; r < rows; r++) memory.fill(out + <usize>r * hb + (<usize>c0 << 2), 0, <usize>(c1 - c0) << 2);
  for (let p = 0; p < kept; p++) {
    const a = load<i32>(order + (<usize>p << 2));
    const w = load<f32>(weights + (<usize>a << 2));
    const dst = out + <usize>(a / slots) * hb, src = eo + <usize>p * hb;
    const vw = f32x4.splat(w);
    let i = c0;
    for (; i + 4 <= c1; i += 4) {
      const o = <usize>i << 2;
      v128.store(dst + o, f32x4.add(v128.load(dst + o), f32x4.mul(v128.load(src + o), vw)));
    }
    for (; i < c1; i++) {
      const o = <usize>i << 2;
      store<f32>(dst + o, load<f32>(dst + o) + load<f32>(src + o) * w);
    }
  }
}

/** Bytes of thread_scratch()'s region (16-aligned). */
const THREAD_SCRATCH: i32 = SMALL + CAND * 8 + 32 + 128 + CAND * 4 + 16 + 64 + 64 + 512 + 512;
export function thread_scratch_bytes(): i32 {
  return THREAD_SCRATCH;
}

/** Point this instance's static scratch at `p` (THREAD_SCRATCH bytes, 16-aligned): a pool worker's own. */
export function thread_scratch(p: usize): void {
  small = p; p += SMALL;
  cand = p; p += CAND * 8 + 32;
  lanes = p; p += 128;
  cidx = p; p += CAND * 4 + 16;
  lanebuf = p; p += 64;
  colbuf = p; p += 64;
  s4 = p; p += 512;
  pacc = p;
}
