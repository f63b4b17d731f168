// Softmax family on tfjs primitives (f32). Float64Array inputs and precision "f64" go to the fallback
// (wasm f64 twins): tfjs has no float64.
//
// Semantics kept identical to the wasm kernels:
// - softmax/logSoftmax compute (x - max) * scale like the reference; a row with NaN or +Inf, or only -Inf,
//   comes out all NaN. tfjs gets this by itself: max propagates NaN, and x - max is NaN for the +Inf entry
//   (+Inf - +Inf) or every entry of an all -Inf row, so the row sum is NaN.
// - stablemax/logStablemax: a row with +Inf has S = +Inf and would give zeros plus one NaN in tfjs; it is
//   masked to NaN explicitly (rule: S must be finite and > 0).
// - crossEntropy "f32": the wasm kernel's f32 op order (loss = -((z_y - max) - log S), grad = exp(z - max -
//   log S) * f32(1/rows), correct class (p - 1) * f32(1/rows)); Softmax Collapse counted where the f32 row
//   sum S == 1 exactly, zero loss where the f32 loss == 0; row losses summed in f64 on the host like wasm.
//   Where tfjs differs: its row sums (tfjs-cpu accumulates in f64 then rounds; tfjs-wasm in sequential f32)
//   are not the wasm kernel's 4-lane f32 sums, so S, and with it scFraction, can differ on rows within an
//   ulp of collapsing; exp is libm's (not flushed below -87.3, so outputs < 1e-38 are denormals, not 0).
import type { Tensor } from "@tensorflow/tfjs-core";
import type { CESums, SoftmaxKernels } from "../api/softmax.ts";
import { compute, isF64, type TfCtx } from "./common.ts";

type Tf = ReturnType<TfCtx["use"]>;

/** s(x) = x + 1 (x >= 0), 1 / (1 - x) (x < 0). */
const sOf = (tf: Tf, x: Tensor) => tf.where(tf.greaterEqual(x, 0), tf.add(x, 1), tf.reciprocal(tf.sub(1, x)));
/** log s(x) = log1p(x) (x >= 0), -log1p(-x) (x < 0). */
const logSOf = (tf: Tf, x: Tensor) => tf.where(tf.greaterEqual(x, 0), tf.log1p(x), tf.neg(tf.log1p(tf.neg(x))));
/** [rows, 1]: 0 where S is finite and > 0, NaN elsewhere; added to a row it poisons exactly the bad rows. */
const nanUnless = (tf: Tf, S: Tensor) =>
  tf.where(tf.logicalAnd(tf.greater(S, 0), tf.less(S, Infinity)), tf.zerosLike(S), tf.fill(S.shape, NaN));

/** Flat indices r * cols + labels[r] (computed on the host: O(rows)). */
function labelIndex(labels: Int32Array, cols: number): Int32Array {
  const idx = new Int32Array(labels.length);
  for (let r = 0; r < labels.length; r++) idx[r] = r * cols + labels[r]!;
  return idx;
}

export function softmaxTfjs(ctx: TfCtx): SoftmaxKernels {
  const fb = ctx.fallback;
  return {
    softmax(x, y, rows, cols, scale, algorithm) {
      if (isF64(x)) return fb.softmax(x, y, rows, cols, scale, algorithm);
      const [o] = compute(ctx, (tf) => {
        const t = tf.tensor2d(x as Float32Array, [rows, cols]);
        let d = tf.sub(t, tf.max(t, 1, true));
        if (scale !== 1) d = tf.mul(d, scale);
        const e = tf.exp(d);
        return [tf.div(e, tf.sum(e, 1, true))];
      });
      y.set(o!);
    },
    logSoftmax(x, y, rows, cols, scale) {
      if (isF64(x)) return fb.logSoftmax(x, y, rows, cols, scale);
      const [o] = compute(ctx, (tf) => {
        const t = tf.tensor2d(x as Float32Array, [rows, cols]);
        let d = tf.sub(t, tf.max(t, 1, true));
        if (scale !== 1) d = tf.mul(d, scale);
        return [tf.sub(d, tf.log(tf.sum(tf.exp(d), 1, true)))];
      });
      y.set(o!);
    },
    stablemax(x, y, rows, cols) {
      if (isF64(x)) return fb.stablemax(x, y, rows, cols);
      const [o] = compute(ctx, (tf) => {
        const s = sOf(tf, tf.tensor2d(x as Float32Array, [rows, cols]));
        const S = tf.sum(s, 1, true);
        return [tf.add(tf.div(s, S), nanUnless(tf, S))];
      });
      y.set(o!);
    },
    logStablemax(x, y, rows, cols) {
      if (isF64(x)) return fb.logStablemax(x, y, rows, cols);
      const [o] = compute(ctx, (tf) => {
        const t = tf.tensor2d(x as Float32Array, [rows, cols]);
        const S = tf.sum(sOf(tf, t), 1, true);
        return [tf.add(tf.sub(logSOf(tf, t), tf.log(S)), nanUnless(tf, S))];
      });
      y.set(o!);
    },
    crossEntropy(z, labels, grad, rows, cols, head, precision): CESums {
      if (isF64(z) || precision === "f64") return fb.crossEntropy(z, labels, grad, rows, cols, head, precision);
      const invN = Math.fround(1 / rows);
      const idx = labelIndex(labels, cols);
      const out = compute(ctx, (tf) => {
        const t = tf.tensor2d(z as Float32Array, [rows, cols]);
        const at = tf.tensor1d(idx, "int32");
        const hot = tf.oneHot(tf.tensor1d(labels, "int32"), cols);
        const pick = (v: Tensor) => tf.gather(tf.reshape(v, [rows * cols]), at);
        if (head === "softmax") {
          const m = tf.max(t, 1, true);
          const d = tf.sub(t, m);
          const S = tf.sum(tf.exp(d), 1, true);
          const ls = tf.log(S);
          const loss = tf.neg(tf.sub(pick(d), tf.reshape(ls, [rows])));
          const res: Tensor[] = [loss, tf.reshape(S, [rows])];
          if (grad) res.push(tf.mul(tf.sub(tf.exp(tf.sub(d, ls)), hot), invN));
          return res;
        }
        // StableMax head, the wasm kernel's f32 order: l = -log(s_y / S), collapse when S == s(max z).
        const s = sOf(tf, t);
        const S = tf.sum(s, 1, true);
        const m = tf.max(t, 1, true);
        const bad = tf.reshape(tf.add(nanUnless(tf, S), tf.where(tf.less(m, Infinity), tf.zerosLike(m), tf.fill(m.shape, NaN))), [rows]);
        const sy = pick(s);
        const S1 = tf.reshape(S, [rows]);
        const loss = tf.add(tf.neg(tf.log(tf.div(sy, S1))), bad);
        const collapsed = tf.cast(tf.equal(S1, tf.reshape(sOf(tf, m), [rows])), "float32");
        const res: Tensor[] = [loss, tf.add(collapsed, bad)];
        if (grad) {
          const dv = tf.where(tf.greaterEqual(t, 0), tf.onesLike(t), tf.reciprocal(tf.square(tf.sub(1, t))));
          const base = tf.mul(dv, tf.reciprocal(S));
          const corr = tf.where(tf.cast(hot, "bool"), tf.div(dv, tf.reshape(sy, [rows, 1])), tf.zerosLike(t));
          res.push(tf.add(tf.mul(tf.sub(base, corr), invN), tf.reshape(bad, [rows, 1])));
        }
        return res;
      });
      const loss = out[0] as Float32Array, stat = out[1] as Float32Array;
      let lossSum = 0, scRows = 0, zeroLossRows = 0;
      for (let r = 0; r < rows; r++) {
        const l = loss[r]!;
        lossSum += l;
        if (l === 0) zeroLossRows++;
        if (stat[r] === 1) scRows++; // softmax head: f32 S == 1; stablemax: the S == s(max) flag
      }
      if (grad) grad.set(out[2] as Float32Array);
      return { lossSum, scRows, zeroLossRows };
    },
  };
}
