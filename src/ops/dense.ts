// Dense family: GEMM, ReLU, 2-hot embedding gather, AdamW. Argument checks and dispatch; semantics and error
// bounds in each function's TSDoc. Every op accepts Float32Array (f32 kernels, WASM SIMD) or Float64Array
// (f64 kernels, for finite-difference tests); all float arguments of one call must have the same type.
// Every op takes host typed arrays (result: host arrays) or DeviceArrays (result: DeviceArrays on their backend).
import type { DeviceArray } from "../device.ts";
import { NumedgeError, checkBool, checkInt, readOptions, show, type FloatArray } from "../errors.ts";
import { checkAdamWHyper } from "./adamw-hyper.ts";
import { OpCall, argsOverlap, checkIndices, floatArg, noOverlapArg, outLikeArg, typeName, valueOf, type Arg } from "./call.ts";

type Floats = FloatArray | DeviceArray;

function sameType(c: OpCall, arg: string, x: Arg, v: unknown, ref = "the first array"): Arg {
  const a = floatArg(c, arg, v);
  if (a.dtype !== x.dtype)
    throw new NumedgeError("dtype", `${arg} must be a ${typeName(x.dtype)} like ${ref}, got ${typeName(a.dtype)}`);
  return a;
}

function checkLen(arg: string, v: { length: number }, n: number, shape: string): void {
  if (v.length !== n) throw new NumedgeError("shape", `${arg}.length ${v.length} must equal ${shape} = ${n}`);
}

function checkIdx(c: OpCall, idx: unknown, per: number, rowsW: number): [Arg, number] {
  const a = c.arg("idx", idx);
  if (!a || a.dtype !== "i32") throw new NumedgeError("dtype", `idx must be an Int32Array, got ${show(idx)}`);
  if (a.length === 0) throw new NumedgeError("shape", "idx is empty (length 0)");
  if (a.length % per !== 0) throw new NumedgeError("shape", `idx.length ${a.length} is not a multiple of per ${per}`);
  return [checkIndices(a, rowsW, (i, v) => `idx[${i}] = ${v} is outside [0, ${rowsW - 1}] (w has ${rowsW} rows)`), a.length / per];
}

const F = (a: Arg) => a.k as FloatArray;

export interface MatmulOptions<T extends Floats = Floats> {
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
 * Error (f32): per element |out - exact| <= (k + 1) * 2^-23 * (|out0| + sum_p |a_ip| |b_pj|) + k * 2^-150 (out0 = 0
 * without accumulate; the last term: products under the smallest normal); f64 inputs: the same with 2^-52 and
 * 2^-1075. Exact where every partial sum is an integer the type holds (not under cuda's opt-in TF32). Sums run in f32
 * in an order that depends on the kernel's blocking, so results can differ from another library's in the last bits.
 * NaN/Inf propagate as IEEE arithmetic says.
 * @example const y = matmul(x, w, { m: rows, k: 200, n: 113 }) // x [rows,200] @ w [200,113]
 */
export function matmul<T extends Floats>(a: T, b: T, o: MatmulOptions<T>): T {
  const oo = readOptions(o, ["m", "k", "n", "transA", "transB", "accumulate", "out"], "m, k, n");
  const c = new OpCall();
  const A = floatArg(c, "a", a);
  const B = sameType(c, "b", A, b, "a");
  const m = checkInt("m", oo.m, 1), k = checkInt("k", oo.k, 1), n = checkInt("n", oo.n, 1);
  const transA = checkBool("transA", oo.transA, false), transB = checkBool("transB", oo.transB, false);
  const accumulate = checkBool("accumulate", oo.accumulate, false);
  checkLen("a", A, m * k, transA ? `k * m (a is [k,m] with transA)` : `m * k`);
  checkLen("b", B, k * n, transB ? `n * k (b is [n,k] with transB)` : `k * n`);
  if (accumulate && oo.out === undefined) throw new NumedgeError("shape", "accumulate: true needs out (the array to add into)");
  const out = oo.out === undefined ? c.out("out", A.dtype, m * n) : sameType(c, "out", A, oo.out, "a");
  checkLen("out", out, m * n, "m * n");
  noOverlapArg(out, A);
  noOverlapArg(out, B);
  c.be.gemm(F(A), F(B), F(out), m, k, n, transA, transB, accumulate);
  c.wrote(out);
  return valueOf(out);
}

/**
 * ReLU: y = max(x, 0), elementwise (NaN stays NaN, -0 gives 0). Exact. `out` may be x itself (in place).
 * @example const h = relu(z); relu(z, { out: z }) // in place
 */
export function relu<T extends Floats>(x: T, o?: { out?: T }): T {
  const oo = readOptions(o, ["out"]);
  const c = new OpCall();
  const X = floatArg(c, "x", x);
  const out = outLikeArg(c, X, oo.out);
  noOverlapArg(out, X, true);
  c.be.relu(F(X), F(out));
  c.wrote(out);
  return valueOf(out);
}

/**
 * ReLU backward: dx = dy where x > 0, else 0 (a select, so dy = ±Inf/NaN where x <= 0 gives 0; x = NaN gives 0).
 * x is the ReLU's input (its output works too: both are > 0 at the same places). Exact. `out` may be dy (in place).
 * @example const dz = reluBackward(dh, z)
 */
export function reluBackward<T extends Floats>(dy: T, x: T, o?: { out?: T }): T {
  const oo = readOptions(o, ["out"]);
  const c = new OpCall();
  const DY = floatArg(c, "dy", dy);
  const X = sameType(c, "x", DY, x, "dy");
  checkLen("x", X, DY.length, "dy.length");
  const out = outLikeArg(c, DY, oo.out);
  noOverlapArg(out, DY, true);
  noOverlapArg(out, X);
  c.be.reluBackward(F(DY), F(X), F(out));
  c.wrote(out);
  return valueOf(out);
}

export interface EmbeddingSumOptions<T extends Floats = Floats> {
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
export function embeddingSum<T extends Floats>(w: T, idx: Int32Array | DeviceArray, o: EmbeddingSumOptions<T>): T {
  const oo = readOptions(o, ["cols", "per", "out"], "cols, per");
  const c = new OpCall();
  const W = floatArg(c, "w", w);
  const cols = checkInt("cols", oo.cols, 1), per = checkInt("per", oo.per, 1);
  if (W.length % cols !== 0) throw new NumedgeError("shape", `w.length ${W.length} is not a multiple of cols ${cols}`);
  const [I, rows] = checkIdx(c, idx, per, W.length / cols);
  const out = oo.out === undefined ? c.out("out", W.dtype, rows * cols) : sameType(c, "out", W, oo.out, "w");
  checkLen("out", out, rows * cols, "rows * cols");
  noOverlapArg(out, W);
  noOverlapArg(out, I);
  c.be.embeddingSum(F(W), I.k as Int32Array, F(out), cols, per);
  c.wrote(out);
  return valueOf(out);
}

/**
 * Backward of embeddingSum, IN PLACE on dw: dw[idx[r*per + j], :] += dout[r, :] for every r, j (rows in order, so
 * the result is deterministic; repeated indices accumulate). dw must be zeroed by the caller for a fresh gradient.
 * Error (f32): one f32 rounding per addition, <= (count - 1) * 2^-24 * sum |terms| for a row hit count times.
 * @example dW1.fill(0); embeddingSumBackward(dh1, idx, dW1, { cols: 200, per: 2 })
 */
export function embeddingSumBackward<T extends Floats>(dout: T, idx: Int32Array | DeviceArray, dw: T, o: { cols: number; per: number }): void {
  const oo = readOptions(o, ["cols", "per"], "cols, per");
  const c = new OpCall();
  const DO = floatArg(c, "dout", dout);
  const DW = sameType(c, "dw", DO, dw, "dout");
  const cols = checkInt("cols", oo.cols, 1), per = checkInt("per", oo.per, 1);
  if (DW.length % cols !== 0) throw new NumedgeError("shape", `dw.length ${DW.length} is not a multiple of cols ${cols}`);
  const [I, rows] = checkIdx(c, idx, per, DW.length / cols);
  checkLen("dout", DO, rows * cols, "(idx.length / per) * cols");
  noOverlapArg(DW, DO);
  noOverlapArg(DW, I);
  c.be.embeddingSumBackward(F(DO), I.k as Int32Array, F(DW), cols, per);
  c.wrote(DW);
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
export function adamwStep<T extends Floats>(w: T, g: T, m: T, v: T, o: AdamWStepOptions): void {
  const c = new OpCall();
  const W = floatArg(c, "w", w);
  const arrs = [W, sameType(c, "g", W, g, "w"), sameType(c, "m", W, m, "w"), sameType(c, "v", W, v, "w")];
  for (const a of arrs.slice(1)) checkLen(a.name, a, W.length, "w.length");
  for (let i = 0; i < 4; i++)
    for (let j = i + 1; j < 4; j++)
      if (argsOverlap(arrs[i]!, arrs[j]!)) throw new NumedgeError("shape", `${arrs[i]!.name} overlaps ${arrs[j]!.name}; they must be separate arrays`);
  const oo = readOptions(o, ["lr", "beta1", "beta2", "eps", "weightDecay", "step"], "lr, beta1, beta2, eps, weightDecay, step");
  const { lr, beta1, beta2, eps, weightDecay: wd } = checkAdamWHyper(oo);
  const step = checkInt("step", oo.step, 1);
  const bc1 = 1 - beta1 ** step, bc2 = 1 - beta2 ** step;
  c.wrote(W, arrs[2], arrs[3]);
  c.be.adamw(F(W), F(arrs[1]!), F(arrs[2]!), F(arrs[3]!), {
    decay: wd === 0 ? 1 : 1 - lr * wd,
    lerpW: 1 - beta1,
    beta2,
    oneMinusBeta2: 1 - beta2,
    bc2sqrt: Math.sqrt(bc2),
    eps,
    negStep: -(lr / bc1),
  });
}

/**
 * ⊥Grad on one tensor, IN PLACE on g, exactly as the authors' OrthoGrad: proj = (w·g)/(w·w + 1e-30),
 * g⊥ = g - proj·w, then g⊥ *= ‖g‖/(‖g⊥‖ + 1e-30). Dot products and the update in f64 (sequential sums; on wasm,
 * once w and g hold 256 KiB, sums of fixed chunks added in order: the same bits on any thread count), stored in g's
 * type. Runs where the arrays live (host arrays or DeviceArrays).
 * @example orthogonalize(w, g) // now dot(w, g) ≈ 0 and ‖g‖ unchanged
 */
export function orthogonalize<T extends Floats>(w: T, g: T): void {
  const c = new OpCall();
  const W = floatArg(c, "w", w);
  const G = sameType(c, "g", W, g, "w");
  if (W.length !== G.length) throw new NumedgeError("shape", `w.length ${W.length} must equal g.length ${G.length}`);
  noOverlapArg(G, W);
  c.be.orthogonalize(F(W), F(G));
  c.wrote(G);
}
