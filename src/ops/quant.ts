// Quantization family: argument checks, code tables, dispatch. Semantics follow bitsandbytes (block-wise
// 8-bit and NF4/FP4), ONNX QuantizeLinear/DequantizeLinear (affine int8/uint8) and ggml (Q8_0, Q4_0).
// Rules shared by every function here:
// - Input must be finite: NaN or ±Infinity anywhere throws NumedgeError("nonfinite") naming the first bad index
//   (an absmax or a scale cannot be formed from it). Inputs are never written. A call that throws leaves
//   caller-given `out` arrays untouched, except alloc()'d ones (written in place: they may hold partial absmax,
//   scales or codes). Outputs must not overlap the input or each other.
// - Float64Array input is rounded to float32 first (the formats are float32-based).
// Every op takes host typed arrays (result: host arrays; a non-finite input throws) or DeviceArrays (result:
// DeviceArrays on their backend, with `bad`, an i32[1] DeviceArray holding the first non-finite block or -1, so
// nothing waits for the host). Code tables (`code`) are parameters and stay host Float32Arrays either way.
import type { DeviceArray } from "../device.ts";
import { NumedgeError, checkBool, checkEnum, checkInt, readOptions, readRecord, rowsOf, show } from "../errors.ts";
import { OpCall, elementAt, noOverlapArg, outArg, typedArg, valueOf, type Arg } from "./call.ts";
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
export interface BlockwiseQuantized<U = Uint8Array, F = Float32Array> {
  /** Code index per element. */
  codes: U;
  /** max |x| per block (last block partial); 0 for an all-zero block. */
  absmax: F;
  /** The 256 code values. */
  code: Float32Array;
  blockSize: number;
  /** Number of elements. */
  length: number;
}

/** What a quantizer returns on DeviceArrays: its arrays there, and `bad` (i32[1]): the first block holding
 *  NaN/±Infinity (whose outputs are then unspecified), or -1. */
export interface DeviceBad {
  bad: DeviceArray;
}
export type BlockwiseQuantizedDevice = BlockwiseQuantized<DeviceArray, DeviceArray> & DeviceBad;

export interface QuantizeBlockwiseOptions<U = Uint8Array, F = Float32Array> {
  /** Power of two in [32, 4096], or "tensor" (one absmax for all of x). Default 4096 (bitsandbytes). */
  blockSize?: number | "tensor";
  /** Code table: a name or 256 sorted float32 values. Default "dynamic". */
  code?: CodeName | Float32Array;
  /** "nearest" (default) or "stochastic" (unbiased between the two neighbouring codes). */
  rounding?: "nearest" | "stochastic";
  /** Seed of the counter-based generator for stochastic rounding (default 0): same seed, same codes. */
  seed?: number;
  /** Write codes / absmax here instead of new arrays (alloc()'d arrays are used zero-copy). */
  out?: { codes?: U; absmax?: F };
}

/** The `out` option's arrays, read once (unknown keys are errors). */
function outOpts<K extends string>(out: unknown, known: readonly K[]): { [P in K]?: unknown } {
  if (out === undefined) return {};
  if (out === null || typeof out !== "object") throw new NumedgeError("dtype", `out must be an object of output arrays, got ${show(out)}`);
  return readOptions(out, known, "", "dtype");
}

/** Every output must be disjoint from the input and from the other outputs (plain or alloc()'d alike). */
function disjoint(x: Arg, outs: Arg[]): void {
  for (let i = 0; i < outs.length; i++) {
    noOverlapArg(outs[i]!, x);
    for (let j = 0; j < i; j++) noOverlapArg(outs[i]!, outs[j]!);
  }
}

/** The input as f32: [the argument, the f32 array the kernels read (f64 input rounded first)]. */
function input(c: OpCall, arg: string, x: unknown): [Arg, Arg] {
  const a = c.arg(arg, x);
  if (!a || (a.dtype !== "f32" && a.dtype !== "f64")) throw new NumedgeError("dtype", `${arg} must be a Float32Array or Float64Array, got ${show(x)}`);
  if (a.length === 0) throw new NumedgeError("shape", `${arg} is empty (length 0)`);
  if (a.dtype === "f32") return [a, a];
  const f = c.out(arg, "f32", a.length);
  c.be.toF32(a.k as Float64Array, f.k as Float32Array);
  return [a, f];
}

function checkBlockSize(arg: string, v: unknown, length = 0): number {
  if (v === length && length > 0) return length; // a per-tensor result: one block
  const b = checkInt(arg, v, 32, 4096);
  if ((b & (b - 1)) !== 0) throw new NumedgeError("range", `${arg} must be a power of two in [32, 4096], got ${b}`);
  return b;
}

/**
 * After a quantizer: on host arrays, a bad block becomes NumedgeError("nonfinite") naming the first bad
 * element of x (of block `per` elements); on DeviceArrays `bad` goes back with the result.
 */
function reportBad(c: OpCall, arg: string, xf: Arg, bad: Arg, per: number): void {
  if (c.device) return;
  const b = (bad.k as Int32Array)[0]!;
  if (b < 0) return;
  const x = xf.k as Float32Array, from = b * per, to = Math.min(x.length, from + per);
  for (let i = from; i < to; i++)
    if (!Number.isFinite(x[i]!)) throw new NumedgeError("nonfinite", `${arg}[${i}] = ${x[i]}: quantization needs finite input (no absmax or scale exists for it)`);
  throw new NumedgeError("nonfinite", `${arg} has a non-finite value in [${from}, ${to})`);
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

const F32 = (a: Arg) => a.k as Float32Array, U8 = (a: Arg) => a.k as Uint8Array, I32 = (a: Arg) => a.k as Int32Array;

/**
 * Block-wise 8-bit quantization (bitsandbytes quantize_blockwise): per block of `blockSize` elements (the last
 * may be partial) absmax = max |x|; each x becomes the index of the code value nearest to
 * clamp(x * f32(1 / max(absmax, 1e-38)), -1, 1), ties to the lower index. An all-zero block gets absmax 0 and
 * dequantizes to exactly 0. Stochastic rounding picks the upper neighbour with probability (v - lo) / (hi - lo),
 * draws from hash01(seed, i).
 * Error bound: |x - dequantize(x)| <= absmax_block * (codeHalfGap(code) + 2^-21) — 0.00703 * absmax for the
 * dynamic code (the 2^-21 covers the float32 scale and products); on randn the mean absolute error is < 0.011 and the mean relative error < 0.018 at every block size.
 * A block whose absmax is below the 1e-38 floor (subnormal values only) is scaled by the floor, so it comes back
 * shrunk toward 0 (by absmax / 1e-38): there the bound is |x - dequantize(x)| <= |x|.
 * NaN or ±Infinity in x throws NumedgeError("nonfinite") naming the index (DeviceArrays: reported in `bad`).
 * @example const q = quantizeBlockwise(w, { blockSize: 256 }); const w2 = dequantizeBlockwise(q)
 */
export function quantizeBlockwise(x: Float32Array | Float64Array, o?: QuantizeBlockwiseOptions): BlockwiseQuantized;
export function quantizeBlockwise(x: DeviceArray, o?: QuantizeBlockwiseOptions<DeviceArray, DeviceArray>): BlockwiseQuantizedDevice;
export function quantizeBlockwise(x: Float32Array | Float64Array | DeviceArray, o: QuantizeBlockwiseOptions<unknown, unknown> = {}): BlockwiseQuantized<unknown, unknown> {
  const o1 = readOptions(o, ["blockSize", "code", "rounding", "seed", "out"], "", "dtype");
  const c = new OpCall();
  const [xa, xf] = input(c, "x", x);
  const blockSize = o1.blockSize === "tensor" ? xf.length : checkBlockSize("blockSize", o1.blockSize ?? 4096);
  const code = resolveCode("code", o1.code ?? "dynamic", 256);
  const rounding = checkEnum("rounding", o1.rounding ?? "nearest", ["nearest", "stochastic"] as const);
  const seed = o1.seed === undefined ? 0 : checkInt("seed", o1.seed, -(2 ** 31), 2 ** 32 - 1);
  const n = xf.length;
  const oo = outOpts(o1.out, ["codes", "absmax"]);
  const codes = outArg(c, "out.codes", oo.codes, "u8", n), absmax = outArg(c, "out.absmax", oo.absmax, "f32", Math.ceil(n / blockSize));
  disjoint(xa, [codes, absmax]);
  const rand = rounding === "stochastic" ? c.out("rand", "f32", n) : null;
  if (rand) c.be.uniforms(F32(rand), seed);
  const bad = c.out("bad", "i32", 1);
  c.be.quantizeBlockwise(F32(xf), blockSize, code, U8(codes), F32(absmax), rand ? F32(rand) : null, I32(bad));
  c.wrote(codes, absmax, bad);
  c.drop(rand, xf === xa ? null : xf);
  reportBad(c, "x", xf, bad, blockSize);
  return { codes: valueOf(codes), absmax: valueOf(absmax), code: code.slice(), blockSize, length: n, ...(c.device ? { bad: bad.da } : {}) };
}

function checkLength(arg: string, v: unknown): number {
  return checkInt(arg, v, 1, 2 ** 31 - 1);
}

function checkAbsmax(c: OpCall, arg: string, a: unknown, n: number, bs: number): Arg {
  const A = typedArg(c, arg, a, "f32");
  const nb = Math.ceil(n / bs);
  if (A.length !== nb) throw new NumedgeError("shape", `${arg}.length ${A.length} must equal ceil(length / blockSize) = ${nb}`);
  return A;
}

const Q_EXPECTED = "q must be the object a quantize function returned";

/**
 * Inverse of quantizeBlockwise: out[i] = code[codes[i]] * absmax[i / blockSize] (float32).
 * @example const w2 = dequantizeBlockwise(quantizeBlockwise(w))
 */
export function dequantizeBlockwise(q: BlockwiseQuantized, out?: Float32Array): Float32Array;
export function dequantizeBlockwise(q: BlockwiseQuantized<DeviceArray, DeviceArray>, out?: DeviceArray): DeviceArray;
export function dequantizeBlockwise(q0: BlockwiseQuantized<unknown, unknown>, out?: unknown): unknown {
  const q = readRecord(q0, ["length", "blockSize", "codes", "absmax", "code"], Q_EXPECTED);
  const c = new OpCall();
  const n = checkLength("q.length", q.length);
  const bs = checkBlockSize("q.blockSize", q.blockSize, n);
  const codes = typedArg(c, "q.codes", q.codes, "u8");
  if (codes.length !== n) throw new NumedgeError("shape", `q.codes.length ${codes.length} must equal q.length ${n}`);
  const absmax = checkAbsmax(c, "q.absmax", q.absmax, n, bs);
  const code = resolveCode("q.code", q.code, 256);
  const o = outArg(c, "out", out, "f32", n);
  noOverlapArg(o, codes);
  noOverlapArg(o, absmax);
  c.be.dequantizeBlockwise(U8(codes), bs, code, F32(absmax), F32(o));
  c.wrote(o);
  return valueOf(o);
}

// ---------------------------------------------------------------------------------------------------------
// 4-bit

/** Double-quantized absmax (bitsandbytes compress_statistics): absmax - offset quantized block-wise (256, dynamic). */
export interface NestedAbsmax<U = Uint8Array, F = Float32Array, O = number> extends BlockwiseQuantized<U, F> {
  /** mean of the original absmax (float32); an f32[1] DeviceArray on DeviceArrays. */
  offset: O;
}

export interface Quantized4bit<U = Uint8Array, F = Float32Array, O = number> {
  /** Two codes a byte: element 2j in the high nibble of byte j (bitsandbytes order); odd length pads with the code of 0. */
  packed: U;
  absmax: F | NestedAbsmax<U, F, O>;
  type: "nf4" | "fp4";
  /** The 16 code values (NF4 or FP4). */
  code: Float32Array;
  blockSize: number;
  length: number;
}
export type Quantized4bitDevice = Quantized4bit<DeviceArray, DeviceArray, DeviceArray> & DeviceBad;

export interface Quantize4bitOptions<U = Uint8Array, F = Float32Array> {
  type?: "nf4" | "fp4";
  blockSize?: number | "tensor";
  doubleQuant?: boolean;
  out?: { packed?: U; absmax?: F };
}

/**
 * Block-wise 4-bit quantization (bitsandbytes quantize_4bit): NF4 or FP4 code, absmax per block, nearest code
 * (ties to the lower index), packed two per byte with element 2j in the high nibble. `doubleQuant` stores absmax
 * as 8-bit: offset = mean(absmax), absmax - offset quantized block-wise with the dynamic code, block 256.
 * Error bound: |x - x'| <= absmax * (halfGap + 2^-21) (halfGap 0.1519 NF4, 0.1667 FP4), plus |absmax - absmax'|
 * with doubleQuant, where |absmax - absmax'| <= (0.00703 + 2^-21) * max |absmax - offset| over its 256-block. On randn at block 64 the mean
 * absolute / relative errors are NF4 0.0728 / 0.203, FP4 0.0965 / 0.260 (bitsandbytes' figures). A block whose
 * absmax is below 1e-38 is scaled by that floor, as in quantizeBlockwise: |x - x'| <= |x| there.
 * @example const q = quantize4bit(w, { type: "nf4", blockSize: 64, doubleQuant: true }); const w2 = dequantize4bit(q)
 */
export function quantize4bit(x: Float32Array | Float64Array, o?: Quantize4bitOptions): Quantized4bit;
export function quantize4bit(x: DeviceArray, o?: Quantize4bitOptions<DeviceArray, DeviceArray>): Quantized4bitDevice;
export function quantize4bit(x: Float32Array | Float64Array | DeviceArray, o: Quantize4bitOptions<unknown, unknown> = {}): Quantized4bit<unknown, unknown, unknown> {
  const o1 = readOptions(o, ["type", "blockSize", "doubleQuant", "out"], "", "dtype");
  const c = new OpCall();
  const [xa, xf] = input(c, "x", x);
  const type = checkEnum("type", o1.type ?? "nf4", ["nf4", "fp4"] as const);
  const blockSize = o1.blockSize === "tensor" ? xf.length : checkBlockSize("blockSize", o1.blockSize ?? 64);
  const doubleQuant = checkBool("doubleQuant", o1.doubleQuant, false);
  const table = type === "nf4" ? NF4_TABLE : FP4_TABLE;
  const n = xf.length;
  const oo = outOpts(o1.out, ["packed", "absmax"]);
  const packed = outArg(c, "out.packed", oo.packed, "u8", Math.ceil(n / 2)), absmax = outArg(c, "out.absmax", oo.absmax, "f32", Math.ceil(n / blockSize));
  disjoint(xa, [packed, absmax]);
  const bad = c.out("bad", "i32", 1);
  c.be.quantize4bit(F32(xf), blockSize, table, U8(packed), F32(absmax), I32(bad));
  c.wrote(packed, absmax, bad);
  if (xf !== xa) c.drop(xf);
  reportBad(c, "x", xf, bad, blockSize);
  let am: unknown = valueOf(absmax);
  if (doubleQuant) {
    // offset = mean(absmax); absmax - offset quantized block-wise (dynamic code, block 256)
    const offset = c.out("offset", "f32", 1), centered = c.out("centered", "f32", absmax.length);
    c.be.absmaxCenter(F32(absmax), F32(centered), F32(offset));
    c.wrote(offset);
    const nested = quantizeBlockwise(valueOf<Float32Array>(centered), { blockSize: 256, code: "dynamic" });
    c.drop(centered);
    am = { ...nested, offset: c.device ? offset.da : F32(offset)[0]! };
  }
  return { packed: valueOf(packed), absmax: am, type, code: table.slice(), blockSize, length: n, ...(c.device ? { bad: bad.da } : {}) } as Quantized4bit<unknown, unknown, unknown>;
}

/**
 * The absmax values a 4-bit result stands for (undoing double quantization: code[c] * absmax2 + offset in f32).
 * @example const am = absmaxOf(quantize4bit(w, { doubleQuant: true })) // Float32Array, one per block of 64
 */
export function absmaxOf(q: Quantized4bit): Float32Array;
export function absmaxOf(q: Quantized4bit<DeviceArray, DeviceArray, DeviceArray>): DeviceArray;
export function absmaxOf(q: Quantized4bit<unknown, unknown, unknown>): unknown {
  return absmaxFrom(readRecord(q, ["absmax"], Q_EXPECTED).absmax);
}

/** The absmax a 4-bit result's `absmax` field stands for: the array itself, or the undone double quantization. */
function absmaxFrom(a0: unknown): unknown {
  if (a0 === null || typeof a0 !== "object" || !("offset" in a0)) return a0; // not double-quantized: the array itself
  const a = readRecord(a0, ["length", "blockSize", "codes", "absmax", "code", "offset"], "q.absmax must be an absmax array or a double-quantized absmax");
  const c = new OpCall();
  let off: Arg | null = null;
  if (typeof a.offset !== "number") {
    off = typedArg(c, "q.absmax.offset", a.offset, "f32");
    if (off.length !== 1) throw new NumedgeError("shape", `q.absmax.offset must hold one value, got ${off.length}`);
  } else if (!Number.isFinite(a.offset)) throw new NumedgeError("range", `q.absmax.offset must be a finite number, got ${show(a.offset)}`);
  const d = dequantizeBlockwise(a as never) as Float32Array | DeviceArray;
  const D = c.arg("absmax", d)!;
  let made: Arg | null = null;
  if (!off) {
    off = made = c.out("offset", "f32", 1);
    if (made.da) made.da.write(Float32Array.of(a.offset as number)); // where the data lives
    else F32(made)[0] = a.offset as number;
  }
  c.be.absmaxUncenter(F32(D), F32(off));
  c.wrote(D);
  c.drop(made);
  return d;
}

/**
 * Inverse of quantize4bit: out[i] = code[nibble i] * absmax[i / blockSize].
 * @example const w2 = dequantize4bit(quantize4bit(w))
 */
export function dequantize4bit(q: Quantized4bit, out?: Float32Array): Float32Array;
export function dequantize4bit(q: Quantized4bit<DeviceArray, DeviceArray, DeviceArray>, out?: DeviceArray): DeviceArray;
export function dequantize4bit(q0: Quantized4bit<unknown, unknown, unknown>, out?: unknown): unknown {
  const q = readRecord(q0, ["length", "blockSize", "type", "packed", "absmax"], Q_EXPECTED);
  const c = new OpCall();
  const n = checkLength("q.length", q.length);
  const bs = checkBlockSize("q.blockSize", q.blockSize, n);
  const type = checkEnum("q.type", q.type, ["nf4", "fp4"] as const);
  const packed = typedArg(c, "q.packed", q.packed, "u8");
  if (packed.length !== Math.ceil(n / 2)) throw new NumedgeError("shape", `q.packed.length ${packed.length} must equal ceil(q.length / 2) = ${Math.ceil(n / 2)}`);
  const am = absmaxFrom(q.absmax), nested = am !== q.absmax;
  const absmax = checkAbsmax(c, "q.absmax", am, n, bs);
  const o = outArg(c, "out", out, "f32", n);
  noOverlapArg(o, packed);
  noOverlapArg(o, absmax);
  c.be.dequantize4bit(U8(packed), bs, type === "nf4" ? NF4_TABLE : FP4_TABLE, F32(absmax), F32(o));
  c.wrote(o);
  if (nested) c.drop(absmax);
  return valueOf(o);
}

// ---------------------------------------------------------------------------------------------------------
// Affine (ONNX)

export interface AffineOptions<Q = Int8Array | Uint8Array, F = Float32Array, I = Int32Array> {
  bits: 8;
  /** true (default): int8, symmetric, scale = absmax / 127, zero point 0 ("absmax int8").
   *  false: uint8, ONNX DynamicQuantizeLinear: scale = (max(0, max x) - min(0, min x)) / 255, zp = saturate(rint(-min(0, min x) / scale)). */
  signed?: boolean;
  /** One scale for the whole tensor (default), one per row of `cols`, or one per block of `blockSize` (last may be partial). */
  axis?: "tensor" | "row" | "block";
  cols?: number;
  blockSize?: number;
  /** Use these scales (one per group, finite, > 0) instead of computing them: plain ONNX QuantizeLinear. */
  scale?: F;
  /** With `scale`: zero points (one per group, in the type's range). Default 0. */
  zeroPoint?: I;
  /** Write codes (Int8Array when signed, else Uint8Array) and the scales / zero points (computed, or copies of the
   * given `scale` / `zeroPoint`) here instead of new arrays (alloc()'d arrays are used zero-copy). */
  out?: { q?: Q; scale?: F; zeroPoint?: I };
}

export interface AffineQuantized<Q = Int8Array | Uint8Array, F = Float32Array, I = Int32Array> {
  q: Q;
  scale: F;
  zeroPoint: I;
  /** Elements per scale (the last group may be shorter). */
  group: number;
  length: number;
}
export type AffineQuantizedDevice = AffineQuantized<DeviceArray, DeviceArray, DeviceArray> & DeviceBad;

/**
 * Affine 8-bit quantization, ONNX QuantizeLinear: q = saturate(rint(x / scale) + zeroPoint), x / scale in
 * float32, rint rounding half to even; int8 when signed, uint8 otherwise. A group whose scale would be 0
 * (all zeros) gets scale 1.
 * Error bound: |x - dequantizeAffine(q)| <= scale / 2 (1 + 2^-22) for x inside the group's range.
 * @example const { q, scale } = quantizeAffine(w, { bits: 8, axis: "row", cols: 768 })
 */
export function quantizeAffine(x: Float32Array | Float64Array, o: AffineOptions): AffineQuantized;
export function quantizeAffine(x: DeviceArray, o: AffineOptions<DeviceArray, DeviceArray, DeviceArray>): AffineQuantizedDevice;
export function quantizeAffine(x: Float32Array | Float64Array | DeviceArray, o: AffineOptions<unknown, unknown, unknown>): AffineQuantized<unknown, unknown, unknown> {
  const o1 = readOptions(o, ["bits", "signed", "axis", "cols", "blockSize", "scale", "zeroPoint", "out"], "bits: 8", "dtype");
  const c = new OpCall();
  const [xa, xf] = input(c, "x", x);
  if (o1.bits !== 8) throw new NumedgeError("unsupported", `bits must be 8, got ${show(o1.bits)}`);
  const signed = checkBool("signed", o1.signed, true);
  const axis = checkEnum("axis", o1.axis ?? "tensor", ["tensor", "row", "block"] as const);
  const n = xf.length;
  const group = axis === "tensor" ? n : axis === "row" ? (rowsOf("x", xf, o1.cols), o1.cols as number) : checkInt("blockSize", o1.blockSize, 1);
  const ng = Math.ceil(n / group), kg = kernelGroup(group, n);
  const oo = outOpts(o1.out, ["q", "scale", "zeroPoint"]);
  const q = outArg(c, "out.q", oo.q, signed ? "i8" : "u8", n);
  // out.scale / out.zeroPoint receive the given scale and zero points, or the computed ones
  const scale = outArg(c, "out.scale", oo.scale, "f32", ng), zeroPoint = outArg(c, "out.zeroPoint", oo.zeroPoint, "i32", ng);
  disjoint(xa, [q, scale, zeroPoint]);
  const be = c.be, bad = c.out("bad", "i32", 1);
  if (o1.scale !== undefined) {
    const S = typedArg(c, "scale", o1.scale, "f32");
    if (S.length !== ng) throw new NumedgeError("shape", `scale.length ${S.length} must equal the group count ${ng}`);
    for (let i = 0; i < ng; i++) {
      const s = elementAt(S, i);
      if (!(s > 0 && s < Infinity)) throw new NumedgeError("range", `scale[${i}] = ${s} must be finite and > 0`);
    }
    const [lo, hi] = signed ? [-128, 127] : [0, 255];
    let Z: Arg | null = null;
    if (o1.zeroPoint !== undefined) {
      Z = typedArg(c, "zeroPoint", o1.zeroPoint, "i32");
      if (Z.length !== ng) throw new NumedgeError("shape", `zeroPoint.length ${Z.length} must equal the group count ${ng}`);
      for (let i = 0; i < ng; i++) {
        const z = elementAt(Z, i);
        if (z < lo || z > hi) throw new NumedgeError("range", `zeroPoint[${i}] = ${z} is outside [${lo}, ${hi}]`);
      }
    }
    const zp = Z ?? c.out("zeros", "i32", ng, true);
    be.quantizeAffine(F32(xf), kg, false, F32(S), I32(zp), q.k as Int8Array, I32(bad));
    reportBad(c, "x", xf, bad, group); // before out.scale / out.zeroPoint are written
    c.copy(S, scale);
    c.copy(zp, zeroPoint);
    if (!Z) c.drop(zp);
  } else {
    if (o1.zeroPoint !== undefined) throw new NumedgeError("shape", "zeroPoint needs scale (computed scales come with their own zero points)");
    be.quantizeAffine(F32(xf), kg, true, F32(scale), I32(zeroPoint), q.k as Int8Array, I32(bad));
    reportBad(c, "x", xf, bad, group);
  }
  c.wrote(q, scale, zeroPoint, bad);
  if (xf !== xa) c.drop(xf);
  return { q: valueOf(q), scale: valueOf(scale), zeroPoint: valueOf(zeroPoint), group, length: n, ...(c.device ? { bad: bad.da } : {}) };
}

/**
 * The group size the backends get: a group longer than the array is the array (the same groups), so sizes past
 * 2^31 - 1 never reach a kernel's int argument (cuda wrapped them negative: garbage) or a per-group buffer (wasm
 * tried to reserve 4 bytes an element of the group).
 */
const kernelGroup = (group: number, n: number) => Math.min(group, Math.max(n, 1));

/**
 * ONNX DequantizeLinear: out = (q - zeroPoint) * scale in float32.
 * @example const w2 = dequantizeAffine(quantizeAffine(w, { bits: 8 }))
 */
export function dequantizeAffine(q: AffineQuantized, out?: Float32Array): Float32Array;
export function dequantizeAffine(q: AffineQuantized<DeviceArray, DeviceArray, DeviceArray>, out?: DeviceArray): DeviceArray;
export function dequantizeAffine(q0: AffineQuantized<unknown, unknown, unknown>, out?: unknown): unknown {
  const q = readRecord(q0, ["length", "q", "group", "scale", "zeroPoint"], Q_EXPECTED);
  const c = new OpCall();
  const n = checkLength("q.length", q.length);
  const Q = c.arg("q.q", q.q);
  if (!Q || (Q.dtype !== "i8" && Q.dtype !== "u8")) throw new NumedgeError("dtype", `q.q must be an Int8Array or Uint8Array, got ${show(q.q)}`);
  if (Q.length !== n) throw new NumedgeError("shape", `q.q.length ${Q.length} must equal q.length ${n}`);
  const group = checkInt("q.group", q.group, 1);
  const ng = Math.ceil(n / group);
  const S = c.arg("q.scale", q.scale), Z = c.arg("q.zeroPoint", q.zeroPoint);
  if (!S || S.dtype !== "f32" || S.length !== ng) throw new NumedgeError("shape", `q.scale must be a Float32Array of ${ng} scales, got ${show(q.scale)}`);
  if (!Z || Z.dtype !== "i32" || Z.length !== ng) throw new NumedgeError("shape", `q.zeroPoint must be an Int32Array of ${ng} values, got ${show(q.zeroPoint)}`);
  const [lo, hi] = Q.dtype === "i8" ? [-128, 127] : [0, 255];
  for (let i = 0; i < ng; i++) {
    const z = elementAt(Z, i);
    if (z < lo || z > hi) throw new NumedgeError("range", `q.zeroPoint[${i}] = ${z} is outside [${lo}, ${hi}]`);
  }
  const o = outArg(c, "out", out, "f32", n);
  for (const a of [Q, S, Z]) noOverlapArg(o, a);
  c.be.dequantizeAffine(Q.k as Int8Array, kernelGroup(group, n), F32(S), I32(Z), F32(o));
  c.wrote(o);
  return valueOf(o);
}

// ---------------------------------------------------------------------------------------------------------
// ggml

function ggmlInput(c: OpCall, x: unknown): [Arg, Arg] {
  const [a, f] = input(c, "x", x);
  if (f.length % 32 !== 0) throw new NumedgeError("shape", `x.length ${f.length} must be a multiple of 32 (ggml block size)`);
  return [a, f];
}

function ggmlBytes(c: OpCall, bytes: unknown, length: unknown, per: number): [Arg, number] {
  const b = c.arg("bytes", bytes);
  if (!b || b.dtype !== "u8") throw new NumedgeError("dtype", `bytes must be a Uint8Array, got ${show(bytes)}`);
  const n = checkLength("length", length);
  if (n % 32 !== 0) throw new NumedgeError("shape", `length ${n} must be a multiple of 32`);
  if (b.length !== (n / 32) * per) throw new NumedgeError("shape", `bytes.length ${b.length} must be ${(n / 32) * per} (${per} bytes per block of 32)`);
  return [b, n];
}

/** quantizeQ8_0 / quantizeQ4_0: bytes per block of 32, the kernel. */
function ggmlQuantize(x: unknown, per: number, kernel: "quantizeQ8_0" | "quantizeQ4_0"): unknown {
  const c = new OpCall();
  const [xa, xf] = ggmlInput(c, x);
  const out = c.out("out", "u8", (xf.length / 32) * per), bad = c.out("bad", "i32", 1);
  c.be[kernel](F32(xf), U8(out), I32(bad));
  c.wrote(out, bad);
  if (xf !== xa) c.drop(xf);
  reportBad(c, "x", xf, bad, 32);
  return c.device ? { bytes: out.da, bad: bad.da } : out.k;
}

function ggmlDequantize(bytes: unknown, length: unknown, per: number, kernel: "dequantizeQ8_0" | "dequantizeQ4_0"): unknown {
  const c = new OpCall();
  const [b, n] = ggmlBytes(c, bytes, length, per);
  const out = c.out("out", "f32", n);
  c.be[kernel](U8(b), F32(out));
  c.wrote(out);
  return valueOf(out);
}

/**
 * ggml Q8_0, byte-exact with quantize_row_q8_0_ref: per 32 values d = amax / 127, stored as fp16 (round to
 * nearest even, little-endian), then 32 int8 q = roundf(x / d) (half away from zero). 34 bytes per block.
 * Error bound: |x - x'| <= d / 2 + |d - fp16(d)| * 127 <= amax * (1/254 + 2^-11).
 * On DeviceArrays: { bytes, bad } on their backend.
 * @example const bytes = quantizeQ8_0(w); const w2 = dequantizeQ8_0(bytes, w.length)
 */
export function quantizeQ8_0(x: Float32Array | Float64Array): Uint8Array;
export function quantizeQ8_0(x: DeviceArray): { bytes: DeviceArray } & DeviceBad;
export function quantizeQ8_0(x: Float32Array | Float64Array | DeviceArray): unknown {
  return ggmlQuantize(x, 34, "quantizeQ8_0");
}

/** ggml dequantize_row_q8_0: x = q * fp16(d). @example dequantizeQ8_0(bytes, 64) */
export function dequantizeQ8_0(bytes: Uint8Array, length: number): Float32Array;
export function dequantizeQ8_0(bytes: DeviceArray, length: number): DeviceArray;
export function dequantizeQ8_0(bytes: Uint8Array | DeviceArray, length: number): unknown {
  return ggmlDequantize(bytes, length, 34, "dequantizeQ8_0");
}

/**
 * ggml Q4_0, byte-exact with quantize_row_q4_0_ref: per 32 values d = m / -8 where m is the value of largest
 * magnitude (first one on ties), fp16 d, q = min(15, trunc(x / d + 8.5)); byte j holds element j in the low
 * nibble and element j + 16 in the high nibble. 18 bytes per block.
 * Error bound: |x - x'| <= |d| / 2 + 8 |d - fp16(d)| (|d| = amax / 8), except the clipped top level (q = 16 -> 15).
 * On DeviceArrays: { bytes, bad } on their backend.
 * @example const bytes = quantizeQ4_0(w); const w2 = dequantizeQ4_0(bytes, w.length)
 */
export function quantizeQ4_0(x: Float32Array | Float64Array): Uint8Array;
export function quantizeQ4_0(x: DeviceArray): { bytes: DeviceArray } & DeviceBad;
export function quantizeQ4_0(x: Float32Array | Float64Array | DeviceArray): unknown {
  return ggmlQuantize(x, 18, "quantizeQ4_0");
}

/** ggml dequantize_row_q4_0: x = (nibble - 8) * fp16(d). @example dequantizeQ4_0(bytes, 64) */
export function dequantizeQ4_0(bytes: Uint8Array, length: number): Float32Array;
export function dequantizeQ4_0(bytes: DeviceArray, length: number): DeviceArray;
export function dequantizeQ4_0(bytes: Uint8Array | DeviceArray, length: number): unknown {
  return ggmlDequantize(bytes, length, 18, "dequantizeQ4_0");
}

/** Largest |x - nearest code| over x in [-1, 1] for a code table: the per-absmax error bound of block-wise quantization. @example codeHalfGap(NF4) // 0.1519 */
export function codeHalfGap(code: Float32Array): number {
  return maxHalfGap(resolveCode("code", code, code.length === 16 ? 16 : 256));
}
