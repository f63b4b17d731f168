// Dense family: GEMM, ReLU, 2-hot embedding gather, AdamW. Argument checks and dispatch; semantics and error
// bounds in each function's TSDoc. Every op accepts Float32Array (f32 kernels, WASM SIMD) or Float64Array
// (f64 kernels, for finite-difference tests); all float arguments of one call must have the same type.
import { getBackend } from "../backends/index.ts";
import {
  NumedgeError, checkBool, checkFloatArray, checkInt, checkNumber, checkOptions, noOverlap, outLike, overlaps, show, type FloatArray,
} from "../errors.ts";
import { checkAdamWHyper } from "./adamw-hyper.ts";

function sameType(arg: string, x: FloatArray, v: unknown, ref = "the first array"): asserts v is FloatArray {
  checkFloatArray(arg, v);
  if (v.constructor !== x.constructor)
    throw new NumedgeError("dtype", `${arg} must be a ${x.constructor.name} like ${ref}, got ${v.constructor.name}`);
}

function checkLen(arg: string, v: { length: number }, n: number, shape: string): void {
  if (v.length !== n) throw new NumedgeError("shape", `${arg}.length ${v.length} must equal ${shape} = ${n}`);
}

function checkIdx(idx: unknown, per: number, rowsW: number): number {
  if (!(idx instanceof Int32Array)) throw new NumedgeError("dtype", `idx must be an Int32Array, got ${show(idx)}`);
  if (idx.length === 0) throw new NumedgeError("shape", "idx is empty (length 0)");
  if (idx.length % per !== 0) throw new NumedgeError("shape", `idx.length ${idx.length} is not a multiple of per ${per}`);
  for (let i = 0; i < idx.length; i++) {
    const v = idx[i]!;
    if (v < 0 || v >= rowsW) throw new NumedgeError("range", `idx[${i}] = ${v} is outside [0, ${rowsW - 1}] (w has ${rowsW} rows)`);
  }
  return idx.length / per;
}

export interface MatmulOptions<T extends FloatArray = FloatArray> {
  /** Rows of op(a) and of the result. */
  m: number;
  /** Inner dimension. */
  k: number;
  /** Columns of op(b) and of the result. */
  n: number;
  /** a is stored [k, m] (use its transpose). Default false. */
  transA?: boolean;
  /** b is stored [n, k] (use its transpose). Default false. */
  transB?: boolean;
  /** Add into `out` instead of overwriting it (requires `out`). Default false. */
  accumulate?: boolean;
  /** Result array [m, n] (same type as a; must not overlap a or b). Default: a new array. */
  out?: T;
}

/**
 * Matrix product, row-major: out[m,n] = (accumulate ? out : 0) + op(a) @ op(b), where op(a) is [m,k] (a is stored
 * [k,m] when transA) and op(b) is [k,n] (b is stored [n,k] when transB). The dense layer's forward is
 * matmul(x, w) and its backward dW = matmul(x, dy, { transA: true }), dX = matmul(dy, w, { transB: true }).
 * Error (f32): per element |out - exact| <= (k + 1) * 2^-23 * (|out0| + sum_p |a_ip| |b_pj|) (out0 = 0 without
 * accumulate); f64 inputs: the same with 2^-52. Sums run in f32 in an order that depends on the kernel's blocking,
 * so results can differ from another library's in the last bits. NaN/Inf propagate as IEEE arithmetic says.
 * @example const y = matmul(x, w, { m: rows, k: 200, n: 113 }) // x [rows,200] @ w [200,113]
 */
export function matmul<T extends FloatArray>(a: T, b: T, o: MatmulOptions<T>): T {
  checkFloatArray("a", a);
  sameType("b", a, b, "a");
  checkOptions(o, "m, k, n");
  const m = checkInt("m", o.m, 1), k = checkInt("k", o.k, 1), n = checkInt("n", o.n, 1);
  const transA = checkBool("transA", o.transA, false), transB = checkBool("transB", o.transB, false);
  const accumulate = checkBool("accumulate", o.accumulate, false);
  checkLen("a", a, m * k, transA ? `k * m (a is [k,m] with transA)` : `m * k`);
  checkLen("b", b, k * n, transB ? `n * k (b is [n,k] with transB)` : `k * n`);
  if (accumulate && o.out === undefined) throw new NumedgeError("shape", "accumulate: true needs out (the array to add into)");
  const out = o.out === undefined ? (new (a.constructor as new (n: number) => T)(m * n)) : o.out;
  sameType("out", a, out, "a");
  checkLen("out", out, m * n, "m * n");
  noOverlap("out", out, "a", a);
  noOverlap("out", out, "b", b);
  getBackend().gemm(a, b, out, m, k, n, transA, transB, accumulate);
  return out;
}

/**
 * ReLU: y = max(x, 0), elementwise (NaN stays NaN, -0 gives 0). Exact. `out` may be x itself (in place).
 * @example const h = relu(z); relu(z, { out: z }) // in place
 */
export function relu<T extends FloatArray>(x: T, o?: { out?: T }): T {
  checkFloatArray("x", x);
  if (o !== undefined) checkOptions(o, "");
  const out = outLike(x, o?.out);
  noOverlap("out", out, "x", x, true);
  getBackend().relu(x, out);
  return out;
}

/**
 * ReLU backward: dx = dy where x > 0, else 0 (a select, so dy = ±Inf/NaN where x <= 0 gives 0; x = NaN gives 0).
 * x is the ReLU's input (its output works too: both are > 0 at the same places). Exact. `out` may be dy (in place).
 * @example const dz = reluBackward(dh, z)
 */
export function reluBackward<T extends FloatArray>(dy: T, x: T, o?: { out?: T }): T {
  checkFloatArray("dy", dy);
  sameType("x", dy, x, "dy");
  checkLen("x", x, dy.length, "dy.length");
  if (o !== undefined) checkOptions(o, "");
  const out = outLike(dy, o?.out);
  noOverlap("out", out, "dy", dy, true);
  noOverlap("out", out, "x", x);
  getBackend().reluBackward(dy, x, out);
  return out;
}

export interface EmbeddingSumOptions<T extends FloatArray = FloatArray> {
  /** Row length of w (and of the output). */
  cols: number;
  /** Indices per output row (2 for a 2-hot input). */
  per: number;
  /** Result [idx.length / per, cols], same type as w, not overlapping w. Default: a new array. */
  out?: T;
}

/**
 * Sum of gathered rows: w is [V, cols]; rows = idx.length / per; out[r, :] = sum_j w[idx[r*per + j], :].
 * This is a dense layer whose input is `per`-hot (one-hot blocks concatenated), without the multiply:
 * for the grokking MLP, h1 = embeddingSum(W1, [a, p + b, ...], { cols: hidden, per: 2 }) with W1 [2p, hidden].
 * Error (f32): the per values are summed left to right in f32, <= (per - 1) * 2^-24 * sum_j |w| (exact for per = 2
 * up to one rounding). Indices must be in [0, V).
 * @example const h1 = embeddingSum(w1, idx, { cols: 200, per: 2 })
 */
export function embeddingSum<T extends FloatArray>(w: T, idx: Int32Array, o: EmbeddingSumOptions<T>): T {
  checkFloatArray("w", w);
  checkOptions(o, "cols, per");
  const cols = checkInt("cols", o.cols, 1), per = checkInt("per", o.per, 1);
  if (w.length % cols !== 0) throw new NumedgeError("shape", `w.length ${w.length} is not a multiple of cols ${cols}`);
  const rows = checkIdx(idx, per, w.length / cols);
  const out = o.out === undefined ? (new (w.constructor as new (n: number) => T)(rows * cols)) : o.out;
  sameType("out", w, out, "w");
  checkLen("out", out, rows * cols, "rows * cols");
  noOverlap("out", out, "w", w);
  noOverlap("out", out, "idx", idx);
  getBackend().embeddingSum(w, idx, out, cols, per);
  return out;
}

/**
 * Backward of embeddingSum, IN PLACE on dw: dw[idx[r*per + j], :] += dout[r, :] for every r, j (rows in order, so
 * the result is deterministic; repeated indices accumulate). dw must be zeroed by the caller for a fresh gradient.
 * Error (f32): one f32 rounding per addition, <= (count - 1) * 2^-24 * sum |terms| for a row hit count times.
 * @example dW1.fill(0); embeddingSumBackward(dh1, idx, dW1, { cols: 200, per: 2 })
 */
export function embeddingSumBackward<T extends FloatArray>(dout: T, idx: Int32Array, dw: T, o: { cols: number; per: number }): void {
  checkFloatArray("dout", dout);
  sameType("dw", dout, dw, "dout");
  checkOptions(o, "cols, per");
  const cols = checkInt("cols", o.cols, 1), per = checkInt("per", o.per, 1);
  if (dw.length % cols !== 0) throw new NumedgeError("shape", `dw.length ${dw.length} is not a multiple of cols ${cols}`);
  const rows = checkIdx(idx, per, dw.length / cols);
  checkLen("dout", dout, rows * cols, "(idx.length / per) * cols");
  noOverlap("dw", dw, "dout", dout);
  getBackend().embeddingSumBackward(dout, idx, dw, cols, per);
}

export interface AdamWStepOptions {
  /** Learning rate (>= 0). */
  lr: number;
  /** In [0, 1). */
  beta1: number;
  /** In [0, 1). */
  beta2: number;
  /** > 0 (1e-25 is fine in f32: it is a normal number). */
  eps: number;
  /** Decoupled weight decay (>= 0). */
  weightDecay: number;
  /** 1 for the first step (bias correction uses it). Integer >= 1. */
  step: number;
}

/**
 * One AdamW step, IN PLACE on w, m (first moment) and v (second moment); g is read only. PyTorch's
 * torch.optim.AdamW (_single_tensor_adamw, foreach=False) op for op:
 *   w *= 1 - lr*wd;  m = lerp(m, g, 1 - b1);  v = v*b2 + (1 - b2)*g*g;
 *   denom = sqrt(v) / sqrt(1 - b2^step) + eps;  w += (-lr / (1 - b1^step)) * m / denom
 * Scalars are computed in f64 (as Python does) then rounded to f32 for f32 arrays; all elementwise math is f32 for
 * f32 arrays. Error: bit-identical to that op order in f32 (the reference backend checks it); versus PyTorch on an
 * FMA CPU, m may differ by 1 ulp (its vectorised lerp fuses the multiply-add; WASM SIMD has no FMA).
 * Zero state (m = v = 0) with step 1 starts a fresh optimizer.
 * @example adamwStep(w, g, m, v, { lr: 1e-2, beta1: 0.9, beta2: 0.99, eps: 1e-25, weightDecay: 0, step: t })
 */
export function adamwStep<T extends FloatArray>(w: T, g: T, m: T, v: T, o: AdamWStepOptions): void {
  checkFloatArray("w", w);
  sameType("g", w, g, "w");
  sameType("m", w, m, "w");
  sameType("v", w, v, "w");
  checkLen("g", g, w.length, "w.length");
  checkLen("m", m, w.length, "w.length");
  checkLen("v", v, w.length, "w.length");
  const arrs: [string, FloatArray][] = [["w", w], ["g", g], ["m", m], ["v", v]];
  for (let i = 0; i < 4; i++)
    for (let j = i + 1; j < 4; j++)
      if (overlaps(arrs[i]![1], arrs[j]![1])) throw new NumedgeError("shape", `${arrs[i]![0]} overlaps ${arrs[j]![0]}; they must be separate arrays`);
  checkOptions(o, "lr, beta1, beta2, eps, weightDecay, step");
  const { lr, beta1, beta2, eps, weightDecay: wd } = checkAdamWHyper(o);
  const step = checkInt("step", o.step, 1);
  const bc1 = 1 - beta1 ** step, bc2 = 1 - beta2 ** step;
  getBackend().adamw(w, g, m, v, {
    decay: wd === 0 ? 1 : 1 - lr * wd,
    lerpW: 1 - beta1,
    beta2,
    oneMinusBeta2: 1 - beta2,
    bc2sqrt: Math.sqrt(bc2),
    eps,
    negStep: -(lr / bc1),
  });
}
