// Softmax family: argument checks and dispatch. Semantics and error bounds are in each function's TSDoc.
import { getBackend } from "../backends/index.ts";
import type { CEHead, Precision } from "../backends/api/softmax.ts";
import {
  NumedgeError, checkBool, checkEnum, checkFloatArray, checkOptions, noOverlap, outLike, rowsOf, scaleOf, show, type FloatArray,
} from "../errors.ts";

export interface SoftmaxOptions<T extends FloatArray = FloatArray> {
  /** Length of the last axis; rows = x.length / cols. */
  cols: number;
  /** Divide logits by this first (> 0). Default 1. */
  temperature?: number;
  /** "threepass" (max, exp+sum, scale), "twopass" (Dukhan & Ablavatski), or "auto" (the faster, measured). */
  algorithm?: "auto" | "twopass" | "threepass";
  /** Write here instead of a new array (same type and length as x; may be x itself for in-place). */
  out?: T;
}

// auto = three-pass at every row length. Two-pass saves the max pass over memory but evaluates exp twice
// (on rows whose max lies in [-18, 60] it sums exp(x) directly, elsewhere it carries Dukhan & Ablavatski's
// (m, 2^n) pairs); in WASM SIMD (128-bit, no FMA) the kernels are compute-bound at every size we measured,
// rows in cache or not, and out of place the three-pass kernel fuses its max pass into the exp pass anyway.
// bench/softmax.bench.ts (bench/RESULTS.md): two-pass is 1.6-1.9x slower than three-pass on
// [1,1024], [1,65536], [1,1048576], [512,1024], [4096,64], [64,32000] under Bun; no crossover, so auto maps
// straight to "threepass" (revisit if a runtime with FMA or wider SIMD changes that).

function prepare<T extends FloatArray>(x: T, o: { cols: number; out?: T }) {
  checkFloatArray("x", x);
  checkOptions(o, "cols");
  const rows = rowsOf("x", x, o.cols);
  const out = outLike(x, o.out);
  noOverlap("out", out, "x", x, true);
  return { rows, cols: o.cols, out };
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
export function softmax<T extends FloatArray>(x: T, o: SoftmaxOptions<T>): T {
  const { rows, cols, out } = prepare(x, o);
  const scale = scaleOf(o.temperature);
  const alg = checkEnum("algorithm", o.algorithm ?? "auto", ["auto", "twopass", "threepass"] as const);
  const algorithm = alg === "auto" ? "threepass" : alg;
  getBackend().softmax(x, out, rows, cols, scale, algorithm);
  return out;
}

/**
 * log-softmax along the last axis: (x_i - max) / T - log sum_j exp((x_j - max) / T).
 * Error (f32): absolute <= 4e-7 * max(1, |y|) (observed 2.1e-7); f64: 1e-12 * max(1, |y|). -Infinity
 * inputs give -Infinity. Same NaN row rule as softmax.
 * @example const lp = logSoftmax(x, { cols: 3 }) // [-3.0239, -1.0239, -0.5239] for [-2, 0, 0.5]
 */
export function logSoftmax<T extends FloatArray>(x: T, o: Omit<SoftmaxOptions<T>, "algorithm">): T {
  const { rows, cols, out } = prepare(x, o);
  getBackend().logSoftmax(x, out, rows, cols, scaleOf(o.temperature));
  return out;
}

/**
 * StableMax (Prieto et al. 2025): s(x) = x + 1 for x >= 0, 1 / (1 - x) for x < 0; y_i = s(x_i) / sum_j s(x_j).
 * Error (f32): relative <= 3e-7 for outputs >= 1e-30 (s is 1 ulp, the sum is f64, the division f64 then
 * rounded; observed 2.3e-7); f64: 1e-12. Huge inputs cannot overflow the sum (two f32 maxima give 1/2 each).
 * A row with NaN or +Infinity, or only -Infinity, comes out NaN.
 * @example const p = stablemax(new Float32Array([-2, 0, 0.5]), { cols: 3 }) // [.1176, .3529, .5294]
 */
export function stablemax<T extends FloatArray>(x: T, o: { cols: number; out?: T }): T {
  const { rows, cols, out } = prepare(x, o);
  getBackend().stablemax(x, out, rows, cols);
  return out;
}

/**
 * log StableMax: log s(x_i) - log sum_j s(x_j), with log s(x) = log1p(x) (x >= 0), -log1p(-x) (x < 0).
 * Error (f32): absolute <= 1.2e-7 * max(1, |y|) (computed in f64, rounded once); f64: 1e-12.
 * @example const lp = logStablemax(x, { cols: 113 })
 */
export function logStablemax<T extends FloatArray>(x: T, o: { cols: number; out?: T }): T {
  const { rows, cols, out } = prepare(x, o);
  getBackend().logStablemax(x, out, rows, cols);
  return out;
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
  gradOut?: FloatArray;
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

/**
 * Mean cross-entropy of logits [rows, cols] against int32 labels, its gradient, and collapse statistics.
 * In "f32" precision a row collapses once every other class's exp(z_k - max) is below half an ulp of 1, so
 * its loss and its correct-class gradient are exactly 0: learning on that row stops (Softmax Collapse).
 * Error vs the f64 reference: precision "f32" (true f32 arithmetic, so error grows with cols like any f32
 * sum): |loss error| <= 1e-6 * max(1, loss), |gradient error| <= 4e-6 / rows for cols <= 4099; "f64":
 * 1e-12 (gradients of f32 logits are rounded to f32). A row with NaN/+Infinity (or only -Infinity) gives
 * loss NaN and a NaN gradient row; an -Infinity correct-class logit gives loss +Infinity.
 * @example const { loss, grad, scFraction } = crossEntropy(logits, labels, { cols: 113, precision: "f32" })
 */
export function crossEntropy<T extends FloatArray>(logits: T, labels: Int32Array, o: CrossEntropyOptions): CrossEntropyResult<T> {
  checkFloatArray("logits", logits);
  checkOptions(o, "cols");
  const rows = rowsOf("logits", logits, o.cols);
  const cols = o.cols;
  if (!(labels instanceof Int32Array)) throw new NumedgeError("dtype", `labels must be an Int32Array, got ${show(labels)}`);
  if (labels.length !== rows) throw new NumedgeError("shape", `labels.length ${labels.length} must equal rows ${rows}`);
  for (let i = 0; i < rows; i++) {
    const l = labels[i]!;
    if (l < 0 || l >= cols) throw new NumedgeError("range", `labels[${i}] = ${l} is outside [0, ${cols - 1}]`);
  }
  const head = checkEnum("head", o.head ?? "softmax", ["softmax", "stablemax"] as const);
  const precision = checkEnum("precision", o.precision ?? (logits instanceof Float64Array ? "f64" : "f32"), ["f32", "f64"] as const);
  const wantGrad = checkBool("grad", o.grad, true);
  const gradOut = o.gradOut === undefined ? undefined : outLike(logits, o.gradOut, "gradOut");
  if (gradOut) {
    noOverlap("gradOut", gradOut, "logits", logits);
    noOverlap("gradOut", gradOut, "labels", labels);
  }
  if (gradOut && !wantGrad) throw new NumedgeError("range", "gradOut was given with grad: false");
  // f64 logits computed in f32: round them first, as an f32 model would have produced them.
  const z: FloatArray = logits instanceof Float64Array && precision === "f32" ? Float32Array.from(logits) : logits;
  const g = !wantGrad ? null : gradOut && z === logits ? gradOut : new (z.constructor as new (n: number) => FloatArray)(z.length);
  const s = getBackend().crossEntropy(z, labels, g, rows, cols, head, precision);
  const res: CrossEntropyResult<T> = { loss: s.lossSum / rows, scFraction: s.scRows / rows, zeroLossFraction: s.zeroLossRows / rows };
  if (g && gradOut && g !== gradOut) gradOut.set(g);
  if (g) res.grad = (gradOut ?? (g.constructor === logits.constructor ? g : Float64Array.from(g))) as T;
  return res;
}
