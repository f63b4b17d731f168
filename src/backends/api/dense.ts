import type { FloatArray } from "../../errors.ts";

/** AdamW scalars, precomputed in f64 by src/ops exactly as PyTorch's _single_tensor_adamw does in Python. */
export interface AdamWScalars {
  /** 1 - lr * weightDecay (1 means no decay multiply). */
  decay: number;
  /** lerp weight 1 - beta1. */
  lerpW: number;
  beta2: number;
  /** 1 - beta2. */
  oneMinusBeta2: number;
  /** sqrt(1 - beta2^step). */
  bc2sqrt: number;
  eps: number;
  /** -(lr / (1 - beta1^step)). */
  negStep: number;
}

/**
 * Dense kernels (GEMM, ReLU, 2-hot embedding gather, AdamW). Arguments are already checked by src/ops: every
 * float array has the same type, lengths match the shapes, indices are in range, outputs do not overlap inputs
 * (except where in place is allowed: relu's y may be x, reluBackward's dx may be dy).
 */
export interface DenseKernels {
  /** c[m,n] = (accumulate ? c : 0) + op(a) @ op(b); a stored [k,m] when transA, b stored [n,k] when transB. */
  gemm(a: FloatArray, b: FloatArray, c: FloatArray, m: number, k: number, n: number,
    transA: boolean, transB: boolean, accumulate: boolean): void;
  relu(x: FloatArray, y: FloatArray): void;
  reluBackward(dy: FloatArray, x: FloatArray, dx: FloatArray): void;
  /** out[r, :] = sum_j w[idx[r*per + j], :], rows = idx.length / per. */
  embeddingSum(w: FloatArray, idx: Int32Array, out: FloatArray, cols: number, per: number): void;
  /** dw[idx[r*per + j], :] += dout[r, :] (in place on dw). */
  embeddingSumBackward(dout: FloatArray, idx: Int32Array, dw: FloatArray, cols: number, per: number): void;
  /** In place on w, m, v. */
  adamw(w: FloatArray, g: FloatArray, m: FloatArray, v: FloatArray, s: AdamWScalars): void;
  /**
   * ⊥Grad in place on g: proj = (w·g)/(w·w + 1e-30), g = (g - proj w) * ‖g‖/(‖g - proj w‖ + 1e-30), every sum
   * and the update in f64, stored in g's type (wasm and reference sum in index order; cuda in parallel blocks, so
   * its f64 sums may differ in the last bits).
   */
  orthogonalize(w: FloatArray, g: FloatArray): void;
  /** dst[at] = max(dst[at], max over i in [from, from + n) of src[i] (|src[i]| when abs)) in f64; NaN sticks. */
  maxInto(dst: Float64Array, at: number, src: FloatArray, from: number, n: number, abs: boolean): void;
}
