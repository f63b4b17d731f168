// Dense family on tfjs primitives (f32; Float64Array calls go to the fallback, tfjs has no float64).
// - gemm: tf.matMul with the transpose flags; accumulate adds c afterwards (one extra f32 rounding that the
//   wasm kernel, which starts its sums from c, does not have: within the GEMM error bound).
// - relu / reluBackward: where() compositions with the reference's exact rules (NaN kept, -0 -> +0,
//   dx = dy only where x > 0).
// - embeddingSum: one gather per slot and a chain of adds (per = 2: one rounding of the exact sum, as the
//   reference; per > 2 rounds after each add, within the summation bound).
// - embeddingSumBackward: bit-identical to the reference's row-order f32 additions. A plain scatter-add would
//   sum repeated indices in an unspecified order, so occurrences are split on the host into passes (pass j
//   holds the j-th occurrence of each vocabulary row, in row order) and each pass is one gather / add /
//   tensorScatterUpdate: every touched row gets exactly old + dout, in the reference's order.
// - adamw: PyTorch's op order, one tfjs op per reference rounding, so it is bit-exact (f32 +, -, *, /, sqrt
//   are correctly rounded on every tfjs engine).
import type { Tensor } from "@tensorflow/tfjs-core";
import type { DenseKernels } from "../api/dense.ts";
import { compute, isF64, occurrencePasses, type TfCtx } from "./common.ts";

const f32 = Math.fround;

export function denseTfjs(ctx: TfCtx): Partial<DenseKernels> {
  const fb = ctx.fallback;
  return {
    gemm(a, b, c, m, k, n, transA, transB, accumulate) {
      if (isF64(a, b, c) || m * n === 0 || k === 0) return fb.gemm(a, b, c, m, k, n, transA, transB, accumulate);
      const [o] = compute(ctx, (tf) => {
        const A = tf.tensor2d(a as Float32Array, transA ? [k, m] : [m, k]);
        const B = tf.tensor2d(b as Float32Array, transB ? [n, k] : [k, n]);
        const C = tf.matMul(A, B, transA, transB);
        return [accumulate ? tf.add(tf.tensor2d(c as Float32Array, [m, n]), C) : C];
      });
      c.set(o!);
    },
    relu(x, y) {
      if (isF64(x)) return fb.relu(x, y);
      const [o] = compute(ctx, (tf) => {
        const t = tf.tensor1d(x as Float32Array);
        return [tf.where(tf.less(t, 0), tf.zerosLike(t), tf.add(t, 0))];
      });
      y.set(o!);
    },
    reluBackward(dy, x, dx) {
      if (isF64(dy, x)) return fb.reluBackward(dy, x, dx);
      const [o] = compute(ctx, (tf) => {
        const t = tf.tensor1d(x as Float32Array), g = tf.tensor1d(dy as Float32Array);
        return [tf.where(tf.greater(t, 0), g, tf.zerosLike(g))];
      });
      dx.set(o!);
    },
    embeddingSum(w, idx, out, cols, per) {
      if (isF64(w)) return fb.embeddingSum(w, idx, out, cols, per);
      const rows = idx.length / per;
      // One gather per slot j (its indices split out on the host), then a chain of adds: for per = 2 that is
      // one rounding of the exact sum like the reference, and it avoids the transpose a sum over axis 1 costs.
      const slot = (j: number) => {
        const a = new Int32Array(rows);
        for (let r = 0; r < rows; r++) a[r] = idx[r * per + j]!;
        return a;
      };
      const [o] = compute(ctx, (tf) => {
        const W = tf.tensor2d(w as Float32Array, [w.length / cols, cols]);
        let acc = tf.gather(W, tf.tensor1d(slot(0), "int32"));
        for (let j = 1; j < per; j++) acc = tf.add(acc, tf.gather(W, tf.tensor1d(slot(j), "int32")));
        return [acc];
      });
      out.set(o!);
    },
    embeddingSumBackward(dout, idx, dw, cols, per) {
      if (isF64(dout, dw)) return fb.embeddingSumBackward(dout, idx, dw, cols, per);
      // passes[j] = [vocabulary rows, dout rows] of the j-th occurrence of each vocabulary row, in order.
      const passes = occurrencePasses(idx.length, (i) => idx[i]!).map((is) => [is.map((i) => idx[i]!), is.map((i) => Math.floor(i / per))]);
      if (passes.length === 0) return;
      const [o] = compute(ctx, (tf) => {
        let W: Tensor = tf.tensor2d(dw as Float32Array, [dw.length / cols, cols]);
        const D = tf.tensor2d(dout as Float32Array, [dout.length / cols, cols]);
        for (const [vs, rs] of passes) {
          const at = tf.tensor1d(Int32Array.from(vs), "int32");
          const upd = tf.add(tf.gather(W, at), tf.gather(D, tf.tensor1d(Int32Array.from(rs), "int32")));
          W = tf.tensorScatterUpdate(W, tf.reshape(at, [vs.length, 1]), upd);
        }
        return [W];
      });
      dw.set(o!);
    },
    adamw(w, g, m, v, s) {
      if (isF64(w, g, m, v)) return fb.adamw(w, g, m, v, s);
      const lw = f32(s.lerpW), lwc = f32(1 - lw), small = s.lerpW < 0.5;
      const out = compute(ctx, (tf) => {
        const sc = (x: number) => tf.scalar(f32(x));
        let W: Tensor = tf.tensor1d(w as Float32Array);
        const G = tf.tensor1d(g as Float32Array), M0 = tf.tensor1d(m as Float32Array), V0 = tf.tensor1d(v as Float32Array);
        if (s.decay !== 1) W = tf.mul(W, sc(s.decay));
        const d = tf.sub(G, M0);
        const M = small ? tf.add(M0, tf.mul(sc(lw), d)) : tf.sub(G, tf.mul(d, sc(lwc)));
        const V = tf.add(tf.mul(V0, sc(s.beta2)), tf.mul(tf.mul(sc(s.oneMinusBeta2), G), G));
        const den = tf.add(tf.div(tf.sqrt(V), sc(s.bc2sqrt)), sc(s.eps));
        return [tf.add(W, tf.div(tf.mul(sc(s.negStep), M), den)), M, V];
      });
      w.set(out[0]!);
      m.set(out[1]!);
      v.set(out[2]!);
    },
  };
}
