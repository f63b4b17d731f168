// Quantization family: argument checks, code tables, dispatch. Semantics follow bitsandbytes (block-wise
// 8-bit and NF4/FP4), ONNX QuantizeLinear/DequantizeLinear (affine int8/uint8) and ggml (Q8_0, Q4_0).
// Rules shared by every function here:
// - Input must be finite: NaN or ±Infinity anywhere throws NumedgeError("nonfinite") naming the first bad index
//   (an absmax or a scale cannot be formed from it). Inputs are never written. A call that throws leaves
//   caller-given `out` arrays untouched, except alloc()'d ones (written in place: they may hold partial absmax,
//   scales or codes). Outputs must not overlap the input or each other.
// - Float64Array input is rounded to float32 first (the formats are float32-based).
import { getBackend } from "../backends/index.ts";
import { NumedgeError, checkBool, checkEnum, checkInt, checkObject, checkOptions, noOverlap, rowsOf, show } from "../errors.ts";
import { hash01 } from "../report/rng.ts";
import {
  DYNAMIC_SIGNED, DYNAMIC_UNSIGNED, FP4_TABLE, LINEAR_SIGNED, LINEAR_UNSIGNED, NF4_TABLE, maxHalfGap,
} from "./quant/codes.ts";

export { Adam8bit, type Adam8bitOptions } from "../optim/adam8bit.ts";


/**
 * bitsandbytes' dynamic 8-bit code (create_dynamic_map): 256 sorted values in [-1, 1]. Signed: 127 negatives
 * (min -0.99296875), one 0, 128 positives up to 1.0; unsigned: 0, 254 positive values, 1.0. Built with float32
 * arithmetic exactly as torch does, so it matches bitsandbytes value for value. Returns a fresh copy.
 * @example const code = dynamicMap(); code[0] // -0.99296875
 */
export function dynamicMap(signed = true): Float32Array {
  return (signed ? DYNAMIC_SIGNED : DYNAMIC_UNSIGNED).slice();
}

/** bitsandbytes create_linear_map: signed = linspace(-1, 1, 255) with a second 0 inserted (256 values); unsigned = linspace(0, 1, 256). @example linearMap()[255] // 1 */
export function linearMap(signed = true): Float32Array {
  return (signed ? LINEAR_SIGNED : LINEAR_UNSIGNED).slice();
}

/** NF4 (QLoRA normal-float 4-bit) code values, index = 4-bit code (bitsandbytes' table). @example NF4[15] // 1 */
export const NF4: Float32Array = NF4_TABLE.slice();
/** FP4 (e2m1) code values in bit-pattern order, sign in bit 3, scaled so max is 1 (bitsandbytes). @example FP4[3] // 1 */
export const FP4: Float32Array = FP4_TABLE.slice();

export type CodeName = "dynamic" | "dynamic-unsigned" | "linear" | "linear-unsigned";
const NAMED: Record<CodeName, Float32Array> = {
  dynamic: DYNAMIC_SIGNED, "dynamic-unsigned": DYNAMIC_UNSIGNED, linear: LINEAR_SIGNED, "linear-unsigned": LINEAR_UNSIGNED,
};

/** Result of quantizeBlockwise; everything dequantizeBlockwise needs. */
export interface BlockwiseQuantized {
  /** Code index per element. */
  codes: Uint8Array;
  /** max |x| per block (last block partial); 0 for an all-zero block. */
  absmax: Float32Array;
  /** The 256 code values. */
  code: Float32Array;
  blockSize: number;
  /** Number of elements. */
  length: number;
}

export interface QuantizeBlockwiseOptions {
  /** Power of two in [32, 4096], or "tensor" (one absmax for all of x). Default 4096 (bitsandbytes). */
  blockSize?: number | "tensor";
  /** Code table: a name or 256 sorted float32 values. Default "dynamic". */
  code?: CodeName | Float32Array;
  /** "nearest" (default) or "stochastic" (unbiased between the two neighbouring codes). */
  rounding?: "nearest" | "stochastic";
  /** Seed of the counter-based generator for stochastic rounding (default 0): same seed, same codes. */
  seed?: number;
  /** Write codes / absmax here instead of new arrays (alloc()'d arrays are used zero-copy). */
  out?: { codes?: Uint8Array; absmax?: Float32Array };
}

function outArray<T extends Uint8Array | Int8Array | Float32Array | Int32Array>(arg: string, given: unknown, ctor: new (n: number) => T, n: number): T {
  if (given === undefined) return new ctor(n);
  if (!(given instanceof ctor)) throw new NumedgeError("dtype", `${arg} must be a ${ctor.name}, got ${show(given)}`);
  if ((given as T).length !== n) throw new NumedgeError("shape", `${arg}.length ${(given as T).length} must be ${n}`);
  return given as T;
}

function outOpts(o: { out?: unknown }): Record<string, unknown> {
  if (o.out === undefined) return {};
  if (o.out === null || typeof o.out !== "object") throw new NumedgeError("dtype", `out must be an object of output arrays, got ${show(o.out)}`);
  return o.out as Record<string, unknown>;
}

/** Every output must be disjoint from the input and from the other outputs (plain or alloc()'d alike). */
function disjoint(x: ArrayBufferView, outs: Array<[string, ArrayBufferView]>): void {
  for (let i = 0; i < outs.length; i++) {
    noOverlap(outs[i]![0], outs[i]![1], "x", x);
    for (let j = 0; j < i; j++) noOverlap(outs[i]![0], outs[i]![1], outs[j]![0], outs[j]![1]);
  }
}

function toF32(arg: string, x: unknown): Float32Array {
  if (x instanceof Float32Array) {
    if (x.length === 0) throw new NumedgeError("shape", `${arg} is empty (length 0)`);
    return x;
  }
  if (x instanceof Float64Array) return toF32(arg, Float32Array.from(x));
  throw new NumedgeError("dtype", `${arg} must be a Float32Array or Float64Array, got ${show(x)}`);
}

function checkBlockSize(arg: string, v: unknown, length = 0): number {
  if (v === length && length > 0) return length; // a per-tensor result: one block
  const b = checkInt(arg, v, 32, 4096);
  if ((b & (b - 1)) !== 0) throw new NumedgeError("range", `${arg} must be a power of two in [32, 4096], got ${b}`);
  return b;
}

/** The first NaN/±Infinity in x, as an error (called when a kernel reports a bad block/group). */
function nonfinite(arg: string, x: Float32Array, from: number, to: number): NumedgeError {
  for (let i = from; i < to; i++) {
    if (!Number.isFinite(x[i]!)) return new NumedgeError("nonfinite", `${arg}[${i}] = ${x[i]}: quantization needs finite input (no absmax or scale exists for it)`);
  }
  return new NumedgeError("nonfinite", `${arg} has a non-finite value in [${from}, ${to})`);
}

function resolveCode(arg: string, c: unknown, size: number): Float32Array {
  if (typeof c === "string") return NAMED[checkEnum(arg, c, Object.keys(NAMED) as CodeName[])];
  if (!(c instanceof Float32Array)) throw new NumedgeError("dtype", `${arg} must be a code name or a Float32Array(${size}), got ${show(c)}`);
  if (c.length !== size) throw new NumedgeError("shape", `${arg}.length must be ${size}, got ${c.length}`);
  for (let i = 0; i < size; i++) {
    if (!Number.isFinite(c[i]!) || Math.abs(c[i]!) > 1) throw new NumedgeError("range", `${arg}[${i}] = ${c[i]} must be finite and in [-1, 1]`);
    if (size === 256 && i > 0 && c[i]! < c[i - 1]!) throw new NumedgeError("range", `${arg} must be sorted ascending: ${arg}[${i}] = ${c[i]} < ${arg}[${i - 1}] = ${c[i - 1]}`);
  }
  return c;
}

/** u_i in [0, 1) with 24 bits, exact in float32: the stochastic-rounding draws of (seed, i). */
function uniforms(seed: number, n: number): Float32Array {
  const u = new Float32Array(n);
  for (let i = 0; i < n; i++) u[i] = Math.floor(hash01(seed, i) * 16777216) / 16777216;
  return u;
}

/**
 * Block-wise 8-bit quantization (bitsandbytes quantize_blockwise): per block of `blockSize` elements (the last
 * may be partial) absmax = max |x|; each x becomes the index of the code value nearest to
 * clamp(x * f32(1 / max(absmax, 1e-38)), -1, 1), ties to the lower index. An all-zero block gets absmax 0 and
 * dequantizes to exactly 0. Stochastic rounding picks the upper neighbour with probability (v - lo) / (hi - lo),
 * draws from hash01(seed, i).
 * Error bound: |x - dequantize(x)| <= absmax_block * (codeHalfGap(code) + 2^-21) — 0.00703 * absmax for the
 * dynamic code (the 2^-21 covers the float32 scale and products); on randn the mean absolute error is < 0.011 and the mean relative error < 0.018 at every block size.
 * NaN or ±Infinity in x throws NumedgeError("nonfinite") naming the index.
 * @example const q = quantizeBlockwise(w, { blockSize: 256 }); const w2 = dequantizeBlockwise(q)
 */
export function quantizeBlockwise(x: Float32Array | Float64Array, o: QuantizeBlockwiseOptions = {}): BlockwiseQuantized {
  const xf = toF32("x", x);
  checkOptions(o, "", "dtype");
  const blockSize = o.blockSize === "tensor" ? xf.length : checkBlockSize("blockSize", o.blockSize ?? 4096);
  const code = resolveCode("code", o.code ?? "dynamic", 256);
  const rounding = checkEnum("rounding", o.rounding ?? "nearest", ["nearest", "stochastic"] as const);
  const seed = o.seed === undefined ? 0 : checkInt("seed", o.seed, -(2 ** 31), 2 ** 32 - 1);
  const n = xf.length;
  const oo = outOpts(o);
  const codes = outArray("out.codes", oo.codes, Uint8Array, n), absmax = outArray("out.absmax", oo.absmax, Float32Array, Math.ceil(n / blockSize));
  disjoint(x, [["out.codes", codes], ["out.absmax", absmax]]);
  const rand = rounding === "stochastic" ? uniforms(seed, n) : null;
  const bad = getBackend().quantizeBlockwise(xf, blockSize, code, codes, absmax, rand);
  if (bad >= 0) throw nonfinite("x", xf, bad * blockSize, Math.min(n, (bad + 1) * blockSize));
  return { codes, absmax, code: code.slice(), blockSize, length: n };
}

function checkLength(arg: string, v: unknown): number {
  return checkInt(arg, v, 1, 2 ** 31 - 1);
}

function checkAbsmax(arg: string, a: unknown, n: number, bs: number): Float32Array {
  if (!(a instanceof Float32Array)) throw new NumedgeError("dtype", `${arg} must be a Float32Array, got ${show(a)}`);
  const nb = Math.ceil(n / bs);
  if (a.length !== nb) throw new NumedgeError("shape", `${arg}.length ${a.length} must equal ceil(length / blockSize) = ${nb}`);
  return a;
}

function checkQ(q: unknown): asserts q is Record<string, unknown> {
  checkObject(q, "q must be the object a quantize function returned", "dtype");
}

/**
 * Inverse of quantizeBlockwise: out[i] = code[codes[i]] * absmax[i / blockSize] (float32).
 * @example const w2 = dequantizeBlockwise(quantizeBlockwise(w))
 */
export function dequantizeBlockwise(q: BlockwiseQuantized, out?: Float32Array): Float32Array {
  checkQ(q);
  const n = checkLength("q.length", q.length);
  const bs = checkBlockSize("q.blockSize", q.blockSize, n);
  if (!(q.codes instanceof Uint8Array)) throw new NumedgeError("dtype", `q.codes must be a Uint8Array, got ${show(q.codes)}`);
  if (q.codes.length !== n) throw new NumedgeError("shape", `q.codes.length ${q.codes.length} must equal q.length ${n}`);
  const absmax = checkAbsmax("q.absmax", q.absmax, n, bs);
  const code = resolveCode("q.code", q.code, 256);
  const o = outArray("out", out, Float32Array, n);
  getBackend().dequantizeBlockwise(q.codes, bs, code, absmax, o);
  return o;
}

// ---------------------------------------------------------------------------------------------------------
// 4-bit

/** Double-quantized absmax (bitsandbytes compress_statistics): absmax - offset quantized block-wise (256, dynamic). */
export interface NestedAbsmax extends BlockwiseQuantized {
  /** mean of the original absmax (float32). */
  offset: number;
}

export interface Quantized4bit {
  /** Two codes a byte: element 2j in the high nibble of byte j (bitsandbytes order); odd length pads with the code of 0. */
  packed: Uint8Array;
  absmax: Float32Array | NestedAbsmax;
  type: "nf4" | "fp4";
  /** The 16 code values (NF4 or FP4). */
  code: Float32Array;
  blockSize: number;
  length: number;
}

/**
 * Block-wise 4-bit quantization (bitsandbytes quantize_4bit): NF4 or FP4 code, absmax per block, nearest code
 * (ties to the lower index), packed two per byte with element 2j in the high nibble. `doubleQuant` stores absmax
 * as 8-bit: offset = mean(absmax), absmax - offset quantized block-wise with the dynamic code, block 256.
 * Error bound: |x - x'| <= absmax * (halfGap + 2^-21) (halfGap 0.1519 NF4, 0.1667 FP4), plus |absmax - absmax'|
 * with doubleQuant, where |absmax - absmax'| <= (0.00703 + 2^-21) * max |absmax - offset| over its 256-block. On randn at block 64 the mean
 * absolute / relative errors are NF4 0.0728 / 0.203, FP4 0.0965 / 0.260 (bitsandbytes' figures).
 * @example const q = quantize4bit(w, { type: "nf4", blockSize: 64, doubleQuant: true }); const w2 = dequantize4bit(q)
 */
export function quantize4bit(x: Float32Array | Float64Array, o: { type?: "nf4" | "fp4"; blockSize?: number | "tensor"; doubleQuant?: boolean; out?: { packed?: Uint8Array; absmax?: Float32Array } } = {}): Quantized4bit {
  const xf = toF32("x", x);
  checkOptions(o, "", "dtype");
  const type = checkEnum("type", o.type ?? "nf4", ["nf4", "fp4"] as const);
  const blockSize = o.blockSize === "tensor" ? xf.length : checkBlockSize("blockSize", o.blockSize ?? 64);
  const doubleQuant = checkBool("doubleQuant", o.doubleQuant, false);
  const table = type === "nf4" ? NF4_TABLE : FP4_TABLE;
  const n = xf.length;
  const oo = outOpts(o);
  const packed = outArray("out.packed", oo.packed, Uint8Array, Math.ceil(n / 2)), absmax = outArray("out.absmax", oo.absmax, Float32Array, Math.ceil(n / blockSize));
  disjoint(x, [["out.packed", packed], ["out.absmax", absmax]]);
  const bad = getBackend().quantize4bit(xf, blockSize, table, packed, absmax);
  if (bad >= 0) throw nonfinite("x", xf, bad * blockSize, Math.min(n, (bad + 1) * blockSize));
  let am: Float32Array | NestedAbsmax = absmax;
  if (doubleQuant) {
    let s = 0;
    for (const a of absmax) s += a;
    const offset = Math.fround(s / absmax.length);
    const centered = absmax.map((a) => a - offset);
    am = { ...quantizeBlockwise(centered, { blockSize: 256, code: "dynamic" }), offset };
  }
  return { packed, absmax: am, type, code: table.slice(), blockSize, length: n };
}

/**
 * The absmax values a 4-bit result stands for (undoing double quantization: code[c] * absmax2 + offset in f32).
 * @example const am = absmaxOf(quantize4bit(w, { doubleQuant: true })) // Float32Array, one per block of 64
 */
export function absmaxOf(q: Quantized4bit): Float32Array {
  const a = q.absmax;
  if (a instanceof Float32Array) return a;
  checkQ(a);
  if (typeof a.offset !== "number" || !Number.isFinite(a.offset)) throw new NumedgeError("range", `q.absmax.offset must be a finite number, got ${show(a.offset)}`);
  const d = dequantizeBlockwise(a);
  for (let i = 0; i < d.length; i++) d[i] = d[i]! + a.offset;
  return d;
}

/**
 * Inverse of quantize4bit: out[i] = code[nibble i] * absmax[i / blockSize].
 * @example const w2 = dequantize4bit(quantize4bit(w))
 */
export function dequantize4bit(q: Quantized4bit, out?: Float32Array): Float32Array {
  checkQ(q);
  const n = checkLength("q.length", q.length);
  const bs = checkBlockSize("q.blockSize", q.blockSize, n);
  const type = checkEnum("q.type", q.type, ["nf4", "fp4"] as const);
  if (!(q.packed instanceof Uint8Array)) throw new NumedgeError("dtype", `q.packed must be a Uint8Array, got ${show(q.packed)}`);
  if (q.packed.length !== Math.ceil(n / 2)) throw new NumedgeError("shape", `q.packed.length ${q.packed.length} must equal ceil(q.length / 2) = ${Math.ceil(n / 2)}`);
  const absmax = checkAbsmax("q.absmax", absmaxOf(q), n, bs);
  const o = outArray("out", out, Float32Array, n);
  getBackend().dequantize4bit(q.packed, bs, type === "nf4" ? NF4_TABLE : FP4_TABLE, absmax, o);
  return o;
}

// ---------------------------------------------------------------------------------------------------------
// Affine (ONNX)

export interface AffineOptions {
  bits: 8;
  /** true (default): int8, symmetric, scale = absmax / 127, zero point 0 ("absmax int8").
   *  false: uint8, ONNX DynamicQuantizeLinear: scale = (max(0, max x) - min(0, min x)) / 255, zp = saturate(rint(-min(0, min x) / scale)). */
  signed?: boolean;
  /** One scale for the whole tensor (default), one per row of `cols`, or one per block of `blockSize` (last may be partial). */
  axis?: "tensor" | "row" | "block";
  cols?: number;
  blockSize?: number;
  /** Use these scales (one per group, finite, > 0) instead of computing them: plain ONNX QuantizeLinear. */
  scale?: Float32Array;
  /** With `scale`: zero points (one per group, in the type's range). Default 0. */
  zeroPoint?: Int32Array;
  /** Write codes (Int8Array when signed, else Uint8Array) and the scales / zero points (computed, or copies of the
   * given `scale` / `zeroPoint`) here instead of new arrays (alloc()'d arrays are used zero-copy). */
  out?: { q?: Int8Array | Uint8Array; scale?: Float32Array; zeroPoint?: Int32Array };
}

export interface AffineQuantized {
  q: Int8Array | Uint8Array;
  scale: Float32Array;
  zeroPoint: Int32Array;
  /** Elements per scale (the last group may be shorter). */
  group: number;
  length: number;
}

/**
 * Affine 8-bit quantization, ONNX QuantizeLinear: q = saturate(rint(x / scale) + zeroPoint), x / scale in
 * float32, rint rounding half to even; int8 when signed, uint8 otherwise. A group whose scale would be 0
 * (all zeros) gets scale 1.
 * Error bound: |x - dequantizeAffine(q)| <= scale / 2 (1 + 2^-22) for x inside the group's range.
 * @example const { q, scale } = quantizeAffine(w, { bits: 8, axis: "row", cols: 768 })
 */
export function quantizeAffine(x: Float32Array | Float64Array, o: AffineOptions): AffineQuantized {
  const xf = toF32("x", x);
  checkOptions(o, "bits: 8", "dtype");
  if (o.bits !== 8) throw new NumedgeError("unsupported", `bits must be 8, got ${show(o.bits)}`);
  const signed = checkBool("signed", o.signed, true);
  const axis = checkEnum("axis", o.axis ?? "tensor", ["tensor", "row", "block"] as const);
  const n = xf.length;
  const group = axis === "tensor" ? n : axis === "row" ? (rowsOf("x", xf, o.cols), o.cols!) : checkInt("blockSize", o.blockSize, 1);
  const ng = Math.ceil(n / group);
  const oo = outOpts(o);
  const q = signed ? outArray("out.q", oo.q, Int8Array, n) : outArray("out.q", oo.q, Uint8Array, n);
  // out.scale / out.zeroPoint receive the given scale and zero points, or the computed ones
  const scale = outArray("out.scale", oo.scale, Float32Array, ng), zeroPoint = outArray("out.zeroPoint", oo.zeroPoint, Int32Array, ng);
  disjoint(x, [["out.q", q], ["out.scale", scale], ["out.zeroPoint", zeroPoint]]);
  const be = getBackend();
  if (o.scale !== undefined) {
    if (!(o.scale instanceof Float32Array)) throw new NumedgeError("dtype", `scale must be a Float32Array, got ${show(o.scale)}`);
    if (o.scale.length !== ng) throw new NumedgeError("shape", `scale.length ${o.scale.length} must equal the group count ${ng}`);
    o.scale.forEach((s, i) => { if (!(s > 0 && s < Infinity)) throw new NumedgeError("range", `scale[${i}] = ${s} must be finite and > 0`); });
    const [lo, hi] = signed ? [-128, 127] : [0, 255];
    if (o.zeroPoint !== undefined) {
      if (!(o.zeroPoint instanceof Int32Array)) throw new NumedgeError("dtype", `zeroPoint must be an Int32Array, got ${show(o.zeroPoint)}`);
      if (o.zeroPoint.length !== ng) throw new NumedgeError("shape", `zeroPoint.length ${o.zeroPoint.length} must equal the group count ${ng}`);
      o.zeroPoint.forEach((z, i) => { if (z < lo || z > hi) throw new NumedgeError("range", `zeroPoint[${i}] = ${z} is outside [${lo}, ${hi}]`); });
    }
    for (let i = 0; i < n; i++) if (!Number.isFinite(xf[i]!)) throw nonfinite("x", xf, i, i + 1);
    scale.set(o.scale);
    if (o.zeroPoint !== undefined) zeroPoint.set(o.zeroPoint);
    else zeroPoint.fill(0);
    be.quantizeAffine(xf, group, false, scale, zeroPoint, q);
  } else {
    if (o.zeroPoint !== undefined) throw new NumedgeError("shape", "zeroPoint needs scale (computed scales come with their own zero points)");
    const bad = be.quantizeAffine(xf, group, true, scale, zeroPoint, q);
    if (bad >= 0) throw nonfinite("x", xf, bad * group, Math.min(n, (bad + 1) * group));
  }
  return { q, scale, zeroPoint, group, length: n };
}

/**
 * ONNX DequantizeLinear: out = (q - zeroPoint) * scale in float32.
 * @example const w2 = dequantizeAffine(quantizeAffine(w, { bits: 8 }))
 */
export function dequantizeAffine(q: AffineQuantized, out?: Float32Array): Float32Array {
  checkQ(q);
  const n = checkLength("q.length", q.length);
  if (!(q.q instanceof Int8Array) && !(q.q instanceof Uint8Array)) throw new NumedgeError("dtype", `q.q must be an Int8Array or Uint8Array, got ${show(q.q)}`);
  if (q.q.length !== n) throw new NumedgeError("shape", `q.q.length ${q.q.length} must equal q.length ${n}`);
  const group = checkInt("q.group", q.group, 1);
  const ng = Math.ceil(n / group);
  if (!(q.scale instanceof Float32Array) || q.scale.length !== ng) throw new NumedgeError("shape", `q.scale must be a Float32Array of ${ng} scales, got ${show(q.scale)}`);
  if (!(q.zeroPoint instanceof Int32Array) || q.zeroPoint.length !== ng) throw new NumedgeError("shape", `q.zeroPoint must be an Int32Array of ${ng} values, got ${show(q.zeroPoint)}`);
  const o = outArray("out", out, Float32Array, n);
  getBackend().dequantizeAffine(q.q, group, q.scale, q.zeroPoint, o);
  return o;
}

// ---------------------------------------------------------------------------------------------------------
// ggml

function ggmlInput(x: unknown): Float32Array {
  const xf = toF32("x", x);
  if (xf.length % 32 !== 0) throw new NumedgeError("shape", `x.length ${xf.length} must be a multiple of 32 (ggml block size)`);
  return xf;
}

function ggmlBytes(bytes: unknown, length: unknown, per: number): number {
  if (!(bytes instanceof Uint8Array)) throw new NumedgeError("dtype", `bytes must be a Uint8Array, got ${show(bytes)}`);
  const n = checkLength("length", length);
  if (n % 32 !== 0) throw new NumedgeError("shape", `length ${n} must be a multiple of 32`);
  if (bytes.length !== (n / 32) * per) throw new NumedgeError("shape", `bytes.length ${bytes.length} must be ${(n / 32) * per} (${per} bytes per block of 32)`);
  return n;
}

/**
 * ggml Q8_0, byte-exact with quantize_row_q8_0_ref: per 32 values d = amax / 127, stored as fp16 (round to
 * nearest even, little-endian), then 32 int8 q = roundf(x / d) (half away from zero). 34 bytes per block.
 * Error bound: |x - x'| <= d / 2 + |d - fp16(d)| * 127 <= amax * (1/254 + 2^-11).
 * @example const bytes = quantizeQ8_0(w); const w2 = dequantizeQ8_0(bytes, w.length)
 */
export function quantizeQ8_0(x: Float32Array | Float64Array): Uint8Array {
  const xf = ggmlInput(x);
  const out = new Uint8Array((xf.length / 32) * 34);
  const bad = getBackend().quantizeQ8_0(xf, out);
  if (bad >= 0) throw nonfinite("x", xf, bad * 32, bad * 32 + 32);
  return out;
}

/** ggml dequantize_row_q8_0: x = q * fp16(d). @example dequantizeQ8_0(bytes, 64) */
export function dequantizeQ8_0(bytes: Uint8Array, length: number): Float32Array {
  const n = ggmlBytes(bytes, length, 34);
  const out = new Float32Array(n);
  getBackend().dequantizeQ8_0(bytes, out);
  return out;
}

/**
 * ggml Q4_0, byte-exact with quantize_row_q4_0_ref: per 32 values d = m / -8 where m is the value of largest
 * magnitude (first one on ties), fp16 d, q = min(15, trunc(x / d + 8.5)); byte j holds element j in the low
 * nibble and element j + 16 in the high nibble. 18 bytes per block.
 * Error bound: |x - x'| <= |d| / 2 + 8 |d - fp16(d)| (|d| = amax / 8), except the clipped top level (q = 16 -> 15).
 * @example const bytes = quantizeQ4_0(w); const w2 = dequantizeQ4_0(bytes, w.length)
 */
export function quantizeQ4_0(x: Float32Array | Float64Array): Uint8Array {
  const xf = ggmlInput(x);
  const out = new Uint8Array((xf.length / 32) * 18);
  const bad = getBackend().quantizeQ4_0(xf, out);
  if (bad >= 0) throw nonfinite("x", xf, bad * 32, bad * 32 + 32);
  return out;
}

/** ggml dequantize_row_q4_0: x = (nibble - 8) * fp16(d). @example dequantizeQ4_0(bytes, 64) */
export function dequantizeQ4_0(bytes: Uint8Array, length: number): Float32Array {
  const n = ggmlBytes(bytes, length, 18);
  const out = new Float32Array(n);
  getBackend().dequantizeQ4_0(bytes, out);
  return out;
}

/** Largest |x - nearest code| over x in [-1, 1] for a code table: the per-absmax error bound of block-wise quantization. @example codeHalfGap(NF4) // 0.1519 */
export function codeHalfGap(code: Float32Array): number {
  return maxHalfGap(resolveCode("code", code, code.length === 16 ? 16 : 256));
}
