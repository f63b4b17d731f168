// Softmax family: argument checks and dispatch. Semantics and error bounds are in each function's TSDoc.
// Every op takes host typed arrays (result: host arrays) or DeviceArrays (result: DeviceArrays on their backend).
import type { CEHead, Precision } from "../backends/api/softmax.ts";
import type { DeviceArray } from "../device.ts";
import { NumedgeError, checkBool, checkEnum, readOptions, rowsOf, scaleOf, type FloatArray } from "../errors.ts";
import { OpCall, checkIndices, floatArg, noOverlapArg, outLikeArg, typedArg, valueOf } from "./call.ts";

/** A float array argument: Float32Array, Float64Array, or an f32/f64 DeviceArray. */
type Floats = FloatArray | DeviceArray;

export interface SoftmaxOptions<T extends Floats = Floats> {
  /** Length of the last axis; rows = x.length / cols. */
  cols: number;
  /** Divide logits by this first (> 0). Default 1. */
  temperature?: number;
  /** "threepass" (max, exp+sum, scale), "twopass" (Dukhan & Ablavatski), or "auto" (the backend's faster, measured). */
  algorithm?: "auto" | "twopass" | "threepass";
  /** Write here instead of a new array (same type and length as x; may be x itself for in-place). */
  out?: T;
}

// auto is the backend's choice. wasm: three-pass at every row length. Two-pass saves the max pass over memory but evaluates exp twice
// (on rows whose max lies in [-18, 60] it sums exp(x) directly, elsewhere it carries Dukhan & Ablavatski's
// (m, 2^n) pairs); in WASM SIMD (128-bit, no FMA) the kernels are compute-bound at every size we measured,
// rows in cache or not, and out of place the three-pass kernel fuses its max pass into the exp pass anyway.
// bench/softmax.bench.ts (bench/RESULTS.md): two-pass is 1.6-1.9x slower than three-pass on
// [1,1024], [1,65536], [1,1048576], [512,1024], [4096,64], [64,32000] under Bun; no crossover, so auto maps
// straight to "threepass" (revisit if a runtime with FMA or wider SIMD changes that). cuda: a row of up to 16384
// f32 columns is read once into registers either way; longer rows are memory-bound, so two-pass (one read fewer).

/** Checks shared by the row ops; `o` is read once (a snapshot) and any key outside `known` is an error. */
function prepare<K extends string>(x: unknown, o: unknown, known: readonly K[]) {
  const oo = readOptions(o, known, "cols") as { [P in K | "cols" | "out"]?: unknown };
  const c = new OpCall();
  const xa = floatArg(c, "x", x);
  const rows = rowsOf("x", xa, oo.cols);
  const out = outLikeArg(c, xa, oo.out);
  noOverlapArg(out, xa, true);
  return { c, x: xa.k, rows, cols: oo.cols as number, out, oo };
}

/**
 * Softmax along the last axis: y_i = exp(x_i / T) / sum_j exp(x_j / T), computed as exp((x_i - max) / T).
 * Error (Float32Array, both algorithms, any T): relative <= 1e-6 for outputs >= 1e-30 against the f64
 * reference (observed max 4.1e-7: x - max is formed exactly or not at all, exp is 2.3 ulp, sums fold into
 * f64); outputs below 1e-30 may be flushed to exactly 0, never made denormal; -Infinity gives 0. Float64Array:
 * relative <= 1e-12. A row holding NaN or +Infinity, or only -Infinity, comes out all NaN (as PyTorch);
 * other rows are unaffected.
 * @example const p = softmax(new Float32Array([-2, 0, 0.5]), { cols: 3 }) // [.0486, .3592, .5922]
 */
export function softmax<T extends Floats>(x: T, o: SoftmaxOptions<T>): T {
  const { c, x: xk, rows, cols, out, oo } = prepare(x, o, ["cols", "temperature", "algorithm", "out"]);
  const scale = scaleOf(oo.temperature);
  const algorithm = checkEnum("algorithm", oo.algorithm ?? "auto", ["auto", "twopass", "threepass"] as const);
  c.be.softmax(xk as FloatArray, out.k as FloatArray, rows, cols, scale, algorithm);
  c.wrote(out);
  return valueOf(out);
}

/**
 * log-softmax along the last axis: (x_i - max) / T - log sum_j exp((x_j - max) / T).
 * Error (f32) vs the exact value: <= 2^-24 |y| + 4e-7 (the rounding of y, and the log-sum's); f64: 1e-12 * max(1, |y|). -Infinity
 * inputs give -Infinity. Same NaN row rule as softmax.
 * @example const lp = logSoftmax(x, { cols: 3 }) // [-3.0239, -1.0239, -0.5239] for [-2, 0, 0.5]
 */
export function logSoftmax<T extends Floats>(x: T, o: Omit<SoftmaxOptions<T>, "algorithm">): T {
  const { c, x: xk, rows, cols, out, oo } = prepare(x, o, ["cols", "temperature", "out"]);
  c.be.logSoftmax(xk as FloatArray, out.k as FloatArray, rows, cols, scaleOf(oo.temperature));
  c.wrote(out);
  return valueOf(out);
}

/**
 * StableMax (Prieto et al. 2025): s(x) = x + 1 for x >= 0, 1 / (1 - x) for x < 0; y_i = s(x_i) / sum_j s(x_j).
 * Error (f32): relative <= 3e-7 for outputs >= 1e-30 (s is 1 ulp, the sum is f64, the division f64 then
 * rounded; observed 2.3e-7); f64: 1e-12. Huge inputs cannot overflow the sum (two f32 maxima give 1/2 each).
 * A row with NaN or +Infinity, or only -Infinity, comes out NaN.
 * @example const p = stablemax(new Float32Array([-2, 0, 0.5]), { cols: 3 }) // [.1176, .3529, .5294]
 */
export function stablemax<T extends Floats>(x: T, o: { cols: number; out?: T }): T {
  const { c, x: xk, rows, cols, out } = prepare(x, o, ["cols", "out"]);
  c.be.stablemax(xk as FloatArray, out.k as FloatArray, rows, cols);
  c.wrote(out);
  return valueOf(out);
}

/**
 * log StableMax: log s(x_i) - log sum_j s(x_j), with log s(x) = log1p(x) (x >= 0), -log1p(-x) (x < 0).
 * Error (f32): absolute <= 1.2e-7 * max(1, |y|) (computed in f64, rounded once); f64: 1e-12.
 * @example const lp = logStablemax(x, { cols: 113 })
 */
export function logStablemax<T extends Floats>(x: T, o: { cols: number; out?: T }): T {
  const { c, x: xk, rows, cols, out } = prepare(x, o, ["cols", "out"]);
  c.be.logStablemax(xk as FloatArray, out.k as FloatArray, rows, cols);
  c.wrote(out);
  return valueOf(out);
}

export interface CrossEntropyOptions {
  cols: number;
  /** "softmax" (default) or "stablemax". */
  head?: CEHead;
  /** Arithmetic of the loss head: "f32" (default for Float32Array, rounds like f32 hardware) or "f64". */
  precision?: Precision;
  /** Also return dL/dz (default true). */
  grad?: boolean;
  /** Write dL/dz here (same type and length as logits, not overlapping them; an alloc() array is zero-copy). */
  gradOut?: Floats;
}

export interface CrossEntropyResult<T extends FloatArray> {
  /** Mean loss over rows. */
  loss: number;
  /** dL/dlogits, already divided by rows (PyTorch's log_softmax backward); same type as the logits. */
  grad?: T;
  /** Share of rows whose top probability is exactly 1 in the head's precision (Softmax Collapse). */
  scFraction: number;
  /** Share of rows whose loss is exactly 0. */
  zeroLossFraction: number;
}

/** crossEntropy on DeviceArrays: the scalars stay on the device until read. */
export interface CrossEntropyDeviceResult {
  /** f64 [mean loss, scFraction, zeroLossFraction]. */
  stats: DeviceArray<"f64">;
  /** dL/dlogits on the logits' backend (same dtype as the logits). */
  grad?: DeviceArray;
}

/**
 * Mean cross-entropy of logits [rows, cols] against int32 labels, its gradient, and collapse statistics.
 * In "f32" precision a row collapses once every other class's exp(z_k - max) is below half an ulp of 1, so
 * its loss and its correct-class gradient are exactly 0: learning on that row stops (Softmax Collapse).
 * Error vs the f64 reference, with u = 2^-24 in precision "f32" (true f32 arithmetic) and 2^-53 in "f64", and n = 16 +
 * cols/4 for the f32 softmax head, 16 + cols otherwise (a row's sum errs by up to n u, relative): |loss error| <=
 * u (16 max(1, loss) + n); each gradient element g, p = rows |g|: |error| <= u ((n + 2 |ln p|) |g| + n / rows on the
 * label's), plus an f32 ulp where precision "f64" rounds the gradient to f32 logits; values under the smallest normal
 * may flush to 0. A row with NaN/+Infinity (or only -Infinity) gives
 * loss NaN and a NaN gradient row; an -Infinity correct-class logit gives loss +Infinity.
 * With DeviceArrays (logits and labels, and gradOut if given) the result is { stats, grad } on their backend.
 * @example const { loss, grad, scFraction } = crossEntropy(logits, labels, { cols: 113, precision: "f32" })
 */
export function crossEntropy<T extends FloatArray>(logits: T, labels: Int32Array, o: CrossEntropyOptions): CrossEntropyResult<T>;
export function crossEntropy(logits: DeviceArray, labels: DeviceArray, o: CrossEntropyOptions): CrossEntropyDeviceResult;
export function crossEntropy(logits: Floats, labels: Int32Array | DeviceArray, o: CrossEntropyOptions): CrossEntropyResult<FloatArray> | CrossEntropyDeviceResult {
  const oo = readOptions(o, ["cols", "head", "precision", "grad", "gradOut"], "cols");
  const c = new OpCall();
  const z = floatArg(c, "logits", logits);
  const rows = rowsOf("logits", z, oo.cols);
  const cols = oo.cols as number;
  const lab0 = typedArg(c, "labels", labels, "i32");
  if (lab0.length !== rows) throw new NumedgeError("shape", `labels.length ${lab0.length} must equal rows ${rows}`);
  const lab = checkIndices(lab0, cols, (i, l) => `labels[${i}] = ${l} is outside [0, ${cols - 1}]`);
  const head = checkEnum("head", oo.head ?? "softmax", ["softmax", "stablemax"] as const);
  const precision = checkEnum("precision", oo.precision ?? (z.dtype === "f64" ? "f64" : "f32"), ["f32", "f64"] as const);
  const wantGrad = checkBool("grad", oo.grad, true);
  const gradOut = oo.gradOut === undefined ? undefined : outLikeArg(c, z, oo.gradOut, "gradOut");
  if (gradOut) {
    noOverlapArg(gradOut, z);
    noOverlapArg(gradOut, lab);
  }
  if (gradOut && !wantGrad) throw new NumedgeError("range", "gradOut was given with grad: false");
  // f64 logits computed in f32: round them first, as an f32 model would have produced them.
  const roundFirst = z.dtype === "f64" && precision === "f32";
  if (roundFirst && c.device) throw new NumedgeError("unsupported", "f64 DeviceArray logits with precision \"f32\": make the logits f32 (precision f32 rounds them like an f32 model)");
  const zk: FloatArray = roundFirst ? Float32Array.from(z.k as Float64Array) : z.k as FloatArray;
  // the kernel's gradient has the kernel input's type; gradOut is used directly when that is its type too
  const g = !wantGrad ? null : gradOut && !roundFirst ? gradOut : c.out("grad", roundFirst ? "f32" : z.dtype, z.length);
  const stats = c.out("stats", "f64", 3);
  c.be.crossEntropy(zk, lab.k as Int32Array, g ? g.k as FloatArray : null, stats.k as Float64Array, rows, cols, head, precision);
  c.wrote(g, stats);
  if (c.device) return g ? { stats: stats.da as DeviceArray<"f64">, grad: g.da! } : { stats: stats.da as DeviceArray<"f64"> };
  const st = stats.k as Float64Array;
  const res: CrossEntropyResult<FloatArray> = { loss: st[0]!, scFraction: st[1]!, zeroLossFraction: st[2]! };
  if (g) {
    // f64 logits rounded to f32: the gradient comes back as f64, into gradOut when given
    let grad = g.k as FloatArray;
    if (roundFirst) grad = gradOut ? ((gradOut.k as Float64Array).set(grad), gradOut.k as FloatArray) : Float64Array.from(grad);
    res.grad = grad;
  }
  return res;
}
