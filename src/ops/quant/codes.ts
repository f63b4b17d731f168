// Code tables (bitsandbytes values, built with float32 arithmetic exactly as torch does it) and the
// "nearest code, ties to the lower index" rule turned into thresholds that a kernel can test in f32.

const f = Math.fround;

/** torch.linspace(start, end, steps) for float32 on CPU (serial kernel: start + step*i below halfway, end - step*(steps-1-i) above). */
function linspace32(start: number, end: number, steps: number): number[] {
  const s = f(start), e = f(end);
  if (steps === 1) return [s];
  const step = f(f(e - s) / (steps - 1));
  const half = Math.floor(steps / 2);
  const out: number[] = [];
  for (let i = 0; i < steps; i++) out.push(i < half ? f(s + f(step * i)) : f(e - f(step * (steps - i - 1))));
  return out;
}

// 10 ** (-6 + i) as CPython computes it (correctly rounded), then cast to float32 by torch's scalar multiply.
const DECADES = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1];

/** bitsandbytes create_dynamic_map(signed, max_exponent_bits = 7, total_bits = 8), value for value. */
function buildDynamic(signed: boolean): Float32Array {
  const data: number[] = [];
  for (let i = 0; i < 7; i++) {
    const items = signed ? 2 ** i + 1 : 2 ** (i + 1) + 1;
    const b = linspace32(0.1, 1, items);
    const means = b.slice(0, -1).map((v, k) => f(f(v + b[k + 1]!) / 2));
    const sc = f(DECADES[i]!);
    for (const m of means) data.push(f(sc * m));
    if (signed) for (const m of means) data.push(f(-sc * m));
  }
  data.push(0, 1);
  if (data.length !== 256) throw new Error(`dynamic map has ${data.length} values`);
  return Float32Array.from(data.sort((a, b) => a - b));
}

/** bitsandbytes create_linear_map(signed, total_bits = 8, add_zero = True). */
function buildLinear(signed: boolean): Float32Array {
  if (!signed) return Float32Array.from(linspace32(0, 1, 256));
  const v = linspace32(-1, 1, 255);
  return Float32Array.from([...v.slice(0, 127), 0, ...v.slice(127)]);
}

export const DYNAMIC_SIGNED = buildDynamic(true);
export const DYNAMIC_UNSIGNED = buildDynamic(false);
export const LINEAR_SIGNED = buildLinear(true);
export const LINEAR_UNSIGNED = buildLinear(false);

/** bitsandbytes NF4 (QLoRA) values, index order = 4-bit code. */
export const NF4_TABLE = Float32Array.from([
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
  -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
  0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
  0.7229568362236023, 1.0,
]);

/** bitsandbytes FP4 (e2m1, bias 3, sign in bit 3) in bit-pattern order, divided by 12 in float32. */
export const FP4_TABLE = Float32Array.from([0, 0.0625, 8, 12, 4, 6, 2, 3, -0, -0.0625, -8, -12, -4, -6, -2, -3].map((v) => f(v / 12)));

// ---- thresholds ----
const fb = new Float32Array(1), ub = new Uint32Array(fb.buffer);
const bitsOf = (v: number) => ((fb[0] = v), ub[0]!);
const fromBits = (b: number) => ((ub[0] = b >>> 0), fb[0]!);

/** The next float32 below v (v finite). */
export function prevF32(v: number): number {
  if (v === 0) return -fromBits(1);
  const b = bitsOf(v);
  return v > 0 ? fromBits(b - 1) : fromBits(b + 1);
}

/** Largest float32 <= m. */
function roundDownF32(m: number): number {
  const r = f(m);
  return r > m ? prevF32(r) : r;
}

/** A code table digested for search kernels. */
export interface PreparedCode {
  /** Distinct values, ascending (f32). */
  vals: Float32Array;
  /** Code index of each distinct value (the lowest index holding it). */
  ranks: Uint8Array;
  /** thr[j]: x (f32) takes vals[j + 1] over vals[j] iff x > thr[j]. Length vals.length - 1. */
  thr: Float32Array;
  /** Index of the code nearest to 0 (padding nibble of odd-length 4-bit data). */
  zeroCode: number;
}

/**
 * Nearest code with ties to the lower index, as thresholds: between neighbours a < b (distinct values), x goes
 * to b iff x > (a + b) / 2 exactly, or iff x >= (a + b) / 2 when b's index is lower than a's (possible for
 * FP4's bit-pattern order). Either test becomes one f32 comparison `x > thr`.
 */
export function prepareCode(code: Float32Array): PreparedCode {
  const order = Array.from(code.keys()).sort((i, j) => code[i]! - code[j]! || i - j);
  const vals: number[] = [], ranks: number[] = [];
  for (const i of order) {
    if (vals.length && vals[vals.length - 1] === code[i]) continue; // equal value (incl. -0 == 0): keep lower index
    vals.push(code[i]!);
    ranks.push(i);
  }
  const thr = new Float32Array(vals.length - 1);
  for (let j = 0; j + 1 < vals.length; j++) {
    const m = (vals[j]! + vals[j + 1]!) / 2; // exact in f64 for float32 neighbours of similar scale
    const tieUp = ranks[j + 1]! < ranks[j]!;
    thr[j] = tieUp && f(m) === m ? prevF32(m) : roundDownF32(m);
  }
  let zeroCode = 0, best = Infinity;
  for (let i = 0; i < code.length; i++) if (Math.abs(code[i]!) < best) { best = Math.abs(code[i]!); zeroCode = i; }
  return { vals: Float32Array.from(vals), ranks: Uint8Array.from(ranks), thr, zeroCode };
}

/** Bucket table of the lookup kernels (layout in asm/quant.ts): null when no bucket width works. */
export interface CodeLut {
  table: Uint32Array;
  sh: number;
  k0: number;
  nk: number;
}

/**
 * Bucket table for the code search kernels. `byRank`: entries hold the rank among the sorted distinct values
 * (4-bit: a swizzle maps rank -> code index); else the code index itself (8-bit sorted codes).
 * Tries 2^m buckets per octave, m = 3..10, and keeps the first m with at most one threshold per bucket,
 * none in the merged bucket 0, and hi - lo in [0, 3].
 */
export function buildLut(p: PreparedCode, byRank = false): CodeLut | null {
  const thr = p.thr;
  const below = (x: number) => { // #{j : x > thr[j]}
    let lo = 0, hi = thr.length;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (x > thr[mid]!) lo = mid + 1; else hi = mid; }
    return lo;
  };
  const idx = (r: number) => (byRank ? r : p.ranks[r]!);
  const ONE = 0x3f800000;
  for (let m = 3; m <= 10; m++) { // sh = 23 - m <= 20 leaves bits 22.. for delta and lo
    const sh = 23 - m, low = (1 << sh) - 1;
    let minKey = ONE >>> sh;
    for (const t of thr) minKey = Math.min(minKey, (bitsOf(Math.abs(t)) & 0x7fffffff) >>> sh);
    const k0 = Math.max(0, minKey - 1);
    const nk = (ONE >>> sh) - k0 + 1;
    if (nk * 8 > 1 << 18) continue;
    const table = new Uint32Array(2 * nk);
    let ok = true;
    for (let sign = 0; sign < 2 && ok; sign++) {
      for (let key = 0; key < nk; key++) {
        const magLo = key === 0 ? 0 : (key + k0) << sh;
        const magHi = Math.min(((key + k0 + 1) << sh) - 1, ONE);
        const xmin = sign ? -fromBits(magHi) : fromBits(magLo);
        const xmax = sign ? -fromBits(magLo) : fromBits(magHi);
        const rLo = below(xmin), rHi = below(xmax);
        const lo = idx(rLo), delta = idx(rHi) - lo;
        if (rHi - rLo > 1 || (key === 0 && rHi > rLo) || delta < 0 || delta > 3) { ok = false; break; }
        let lb = low;
        if (rHi > rLo) {
          lb = (bitsOf(thr[rLo]!) & 0x7fffffff) & low;
          if (sign) lb ^= low;
        }
        table[sign * nk + key] = (lb | (delta << 22) | (lo << 24)) >>> 0;
      }
    }
    if (ok) return { table, sh, k0, nk };
  }
  return null;
}

/** Largest |x - nearest code| over x in [-1, 1], as a fraction of absmax: the 8/4-bit error bound. */
export function maxHalfGap(code: Float32Array): number {
  const v = Array.from(code).sort((a, b) => a - b);
  let g = Math.max(v[0]! + 1, 1 - v[v.length - 1]!);
  for (let i = 0; i + 1 < v.length; i++) g = Math.max(g, (v[i + 1]! - v[i]!) / 2);
  return g;
}
