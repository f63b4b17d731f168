// Softmax family on tfjs primitives (f32). Float64Array inputs and precision "f64" go to the fallback
// (wasm f64 twins): tfjs has no float64.
//
// Semantics kept identical to the wasm kernels:
// - softmax/logSoftmax compute (x - max) * scale like the reference; a row with NaN or +Inf, or only -Inf,
//   comes out all NaN. tfjs gets this by itself: max propagates NaN, and x - max is NaN for the +Inf entry
//   (+Inf - +Inf) or every entry of an all -Inf row, so the row sum is NaN.
// - stablemax/logStablemax: a row with +Inf has S = +Inf and would give zeros plus one NaN in tfjs; it is
//   masked to NaN explicitly. A finite row whose f32 sum overflows (entries near 3.4e38) is redone scaled by
//   2^-64, since the wasm kernels sum in f64; logStablemax takes log(s / S) where that ratio is normal.
// - Row sums of long rows are two-level on engines that sum in sequential f32 (rowSum).
// - crossEntropy "f32": the wasm kernel's f32 op order (loss = -((z_y - max) - log S), grad = exp(z - max -
//   log S) * f32(1/rows), correct class (p - 1) * f32(1/rows)); Softmax Collapse counted where the f32 row
//   sum S == 1 exactly, zero loss where the f32 loss == 0; row losses summed in f64 on the host like wasm.
//   S is the count of maxima plus the sum of the other terms, rounded once, so collapse (S == 1) is decided
//   like the reference (f32 of the exact sum) and not by an f32 running sum absorbing the small terms; it can
//   differ only on rows whose other terms sum to within f32 summation error of 2^-24. exp is libm's (not
//   flushed below -87.3, so outputs < 1e-38 are denormals, not 0).
import type { Tensor } from "@tensorflow/tfjs-core";
import type { SoftmaxKernels } from "../api/softmax.ts";
import { computeInto, hostF64, isF64, sOf, tin, type Tf, type TfCtx } from "./common.ts";

/** log s(x) = log1p(x) (x >= 0), -log1p(-x) (x < 0). */
const logSOf = (tf: Tf, x: Tensor) => tf.where(tf.greaterEqual(x, 0), tf.log1p(x), tf.neg(tf.log1p(tf.neg(x))));
/** [rows, 1]: 0 where S is finite and > 0, NaN elsewhere; added to a row it poisons exactly the bad rows. */
const nanUnless = (tf: Tf, S: Tensor) =>
  tf.where(tf.logicalAnd(tf.greater(S, 0), tf.less(S, Infinity)), tf.zerosLike(S), tf.fill(S.shape, NaN));

/**
 * Row sums [rows, 1]. tfjs-cpu accumulates in f64; tfjs-wasm (and TensorFlow) in sequential f32, whose error
 * grows like cols ulps on same-sign terms, so long rows are summed in two levels (blocks of ~sqrt(cols)):
 * error ~2 sqrt(cols) ulps.
 */
function rowSum(ctx: TfCtx, tf: Tf, v: Tensor, rows: number, cols: number): Tensor {
  if (cols <= 64 || ctx.engine.candidate === "tfjs-cpu") return tf.sum(v, 1, true);
  const b = Math.ceil(Math.sqrt(cols)), nb = Math.ceil(cols / b);
  const p = nb * b === cols ? v : tf.pad(v, [[0, 0], [0, nb * b - cols]]);
  return tf.reshape(tf.sum(tf.sum(tf.reshape(p, [rows, nb, b]), 2), 1), [rows, 1]);
}

/** StableMax parts with the f64 kernels' range: where the f32 row sum S overflows, s and S are scaled by 2^-64. */
function stableParts(ctx: TfCtx, tf: Tf, t: Tensor, rows: number, cols: number) {
  const s = sOf(tf, t);
  const S = rowSum(ctx, tf, s, rows, cols);
  const s2 = tf.mul(s, 2 ** -64);
  const S2 = rowSum(ctx, tf, s2, rows, cols);
  const big = tf.isInf(S);
  const ratio = tf.where(tf.broadcastTo(big, [rows, cols]), tf.div(s2, S2), tf.div(s, S));
  const logS = tf.where(big, tf.add(tf.log(S2), 64 * Math.LN2), tf.log(S));
  // bad row (NaN out): S == 0 (only -Infinity), or S2 not finite (+Infinity or NaN in the row)
  const bad = tf.where(tf.logicalAnd(tf.greater(S, 0), tf.isFinite(S2)), tf.zerosLike(S), tf.fill([rows, 1], NaN));
  return { ratio, logS, bad };
}

/**
 * (x - max) * scale in f32. When that overflows (x - max beyond -3.4e38, possible only with scale < 1), it is
 * x * scale - max * scale instead, which stays finite (the wasm kernels do this step in f64).
 */
function scaled(tf: Tf, t: Tensor, m: Tensor, scale: number): Tensor {
  const d = tf.sub(t, m);
  if (scale === 1) return d;
  const a = tf.mul(d, scale);
  if (scale >= 1) return a;
  return tf.where(tf.logicalAnd(tf.isInf(a), tf.isFinite(t)), tf.sub(tf.mul(t, scale), tf.mul(m, scale)), a);
}

export function softmaxTfjs(ctx: TfCtx): SoftmaxKernels {
  return {
    softmax(x, y, rows, cols, scale, algorithm) {
      if (isF64(x)) return ctx.fb("softmax")(x, y, rows, cols, scale, algorithm);
      computeInto(ctx, [y], (tf) => {
        const t = tin(tf, x, [rows, cols]);
        const e = tf.exp(scaled(tf, t, tf.max(t, 1, true), scale));
        return [tf.div(e, rowSum(ctx, tf, e, rows, cols))];
      });
    },
    logSoftmax(x, y, rows, cols, scale) {
      if (isF64(x)) return ctx.fb("logSoftmax")(x, y, rows, cols, scale);
      computeInto(ctx, [y], (tf) => {
        const t = tin(tf, x, [rows, cols]);
        const m = tf.max(t, 1, true);
        const d = scaled(tf, t, m, scale);
        return [tf.sub(d, tf.log(rowSum(ctx, tf, tf.exp(d), rows, cols)))];
      });
    },
    stablemax(x, y, rows, cols) {
      if (isF64(x)) return ctx.fb("stablemax")(x, y, rows, cols);
      computeInto(ctx, [y], (tf) => {
        const { ratio, bad } = stableParts(ctx, tf, tin(tf, x, [rows, cols]), rows, cols);
        return [tf.add(ratio, bad)];
      });
    },
    logStablemax(x, y, rows, cols) {
      if (isF64(x)) return ctx.fb("logStablemax")(x, y, rows, cols);
      computeInto(ctx, [y], (tf) => {
        const t = tin(tf, x, [rows, cols]);
        const { ratio, logS, bad } = stableParts(ctx, tf, t, rows, cols);
        // log(s / S) keeps the absolute error near 1 ulp of 1 where log s - log S would cancel (a dominant
        // entry of a huge row: both ~69); where s / S underflows, |y| > 69 and the difference is accurate.
        const y = tf.where(tf.greater(ratio, 1e-30), tf.log(ratio), tf.sub(logSOf(tf, t), logS));
        return [tf.add(y, bad)];
      });
    },
    crossEntropy(z, labels, grad, stats, rows, cols, head, precision) {
      if (isF64(z) || precision === "f64") return ctx.fb("crossEntropy")(z, labels, grad, stats, rows, cols, head, precision);
      const invN = Math.fround(1 / rows);
      // per-row losses and collapse flags come back to the host (2 * rows floats) to be summed in f64 like wasm
      const out = computeInto(ctx, [null, null, grad], (tf) => {
        const t = tin(tf, z, [rows, cols]);
        const lab = tin(tf, labels, [rows], "int32");
        const at = tf.add(tf.mul(tf.range(0, rows, 1, "int32"), tf.scalar(cols, "int32")), lab); // r * cols + labels[r]
        // one-hot as a comparison (tf.oneHot refuses depth 1)
        const isY = tf.equal(tf.reshape(tf.range(0, cols, 1, "int32"), [1, cols]), tf.reshape(lab, [rows, 1]));
        const hot = tf.cast(isY, "float32");
        const pick = (v: Tensor) => tf.gather(tf.reshape(v, [rows * cols]), at);
        if (head === "softmax") {
          const m = tf.max(t, 1, true);
          const d = tf.sub(t, m);
          // S = (number of maxima) + (sum of the other terms), rounded once: a plain f32 sum would absorb
          // each term below half an ulp of 1 and call rows collapsed that are not (the reference rounds the
          // exact S to f32 once).
          const isMax = tf.equal(d, 0);
          const rest = rowSum(ctx, tf, tf.where(isMax, tf.zerosLike(d), tf.exp(d)), rows, cols);
          const S = tf.add(tf.sum(tf.cast(isMax, "float32"), 1, true), rest);
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
          const corr = tf.where(isY, tf.div(dv, tf.reshape(sy, [rows, 1])), tf.zerosLike(t));
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
      hostF64(stats).set([lossSum / rows, scRows / rows, zeroLossRows / rows]);
    },
  };
}
