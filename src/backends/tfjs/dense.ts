// Dense family on tfjs primitives (f32; Float64Array calls go to the fallback, tfjs has no float64).
// - gemm: tf.matMul on explicitly transposed operands; accumulate adds c afterwards (one extra f32 rounding
//   that the wasm kernel, which starts its sums from c, does not have: within the GEMM error bound).
// - relu / reluBackward: where() compositions with the reference's exact rules (NaN kept, -0 -> +0,
//   dx = dy only where x > 0).
// - embeddingSum: one gather and a sum over each row's per entries (per = 2: one rounding of the exact sum, as
//   the reference; per > 2 in the engine's order, within the summation bound).
// - embeddingSumBackward: bit-identical to the reference's row-order f32 additions: each touched row's dout
//   rows are gathered into [touched, most hits, cols] once and added slice by slice (a plain scatter-add would
//   sum repeated indices in an unspecified order), then scattered back; planned once per index tensor.
// - adamw: PyTorch's op order, one tfjs op per reference rounding, so it is bit-exact (f32 +, -, *, /, sqrt
//   are correctly rounded on every tfjs engine).
import type { Tensor } from "@tensorflow/tfjs-core";
import type { DenseKernels } from "../api/dense.ts";
import { computeInto, hostF64, isF64, tin, type TfCtx } from "./common.ts";
import { isTfBuf } from "./storage.ts";

const f32 = Math.fround;

/** embeddingSumBackward's plan: touched vocabulary rows, and for each its dout rows padded to `most` with `rows` (a zero row). */
interface ScatterPlan { touched: Int32Array; hits: Int32Array; most: number }

function scatterPlan(ix: ArrayLike<number>, per: number, rows: number): ScatterPlan {
  const byRow = new Map<number, number[]>();
  for (let i = 0; i < ix.length; i++) {
    const v = ix[i]!;
    let l = byRow.get(v);
    if (!l) byRow.set(v, (l = []));
    l.push(Math.floor(i / per));
  }
  const touched = Int32Array.from([...byRow.keys()].sort((a, b) => a - b));
  let most = 0;
  for (const l of byRow.values()) most = Math.max(most, l.length);
  const hits = new Int32Array(touched.length * most).fill(rows);
  touched.forEach((v, t) => hits.set(byRow.get(v)!, t * most));
  return { touched, hits, most };
}

/** Plans per resident index tensor: constant index data (a data set) is planned once. */
const plans = new WeakMap<object, ScatterPlan>();

export function denseTfjs(ctx: TfCtx): Partial<DenseKernels> {
  return {
    gemm(a, b, c, m, k, n, transA, transB, accumulate) {
      if (isF64(a, b, c) || m * n === 0 || k === 0) return ctx.fb("gemm")(a, b, c, m, k, n, transA, transB, accumulate);
      computeInto(ctx, [c], (tf) => {
        // transposed explicitly: tfjs-wasm's matMul is up to 10x slower with its transpose flags
        const A = transA ? tf.transpose(tin(tf, a, [k, m])) : tin(tf, a, [m, k]);
        const B = transB ? tf.transpose(tin(tf, b, [n, k])) : tin(tf, b, [k, n]);
        const C = tf.matMul(A, B);
        return [accumulate ? tf.add(tin(tf, c, [m, n]), C) : C];
      });
    },
    relu(x, y) {
      if (isF64(x)) return ctx.fb("relu")(x, y);
      computeInto(ctx, [y], (tf) => {
        const t = tin(tf, x, [x.length]);
        return [tf.where(tf.less(t, 0), tf.zerosLike(t), tf.add(t, 0))];
      });
    },
    reluBackward(dy, x, dx) {
      if (isF64(dy, x)) return ctx.fb("reluBackward")(dy, x, dx);
      computeInto(ctx, [dx], (tf) => {
        const t = tin(tf, x, [x.length]), g = tin(tf, dy, [dy.length]);
        return [tf.where(tf.greater(t, 0), g, tf.zerosLike(g))];
      });
    },
    embeddingSum(w, idx, out, cols, per) {
      if (isF64(w)) return ctx.fb("embeddingSum")(w, idx, out, cols, per);
      const rows = idx.length / per;
      // One gather of every index, then the per rows of each output summed: for per = 2 one rounding of the exact
      // sum like the reference; per > 2 sums in the engine's order, within the summation bound.
      computeInto(ctx, [out], (tf) => {
        const g = tf.gather(tin(tf, w, [w.length / cols, cols]), tin(tf, idx, [rows * per], "int32"));
        return [per === 1 ? g : tf.sum(tf.reshape(g, [rows, per, cols]), 1)];
      });
    },
    embeddingSumBackward(dout, idx, dw, cols, per) {
      if (isF64(dout, dw)) return ctx.fb("embeddingSumBackward")(dout, idx, dw, cols, per);
      const rows = idx.length / per;
      // Each touched vocabulary row v gets its dout rows added in row order (the reference's f32 additions,
      // bit for bit): they are gathered into [touched, most hits, cols] (padded with -0, which adds exactly
      // nothing), added slice by slice onto dw[touched], and scattered back once. The plan comes from the
      // indices on the host (read once per resident index tensor).
      const key = isTfBuf(idx) ? idx.t! : null;
      let plan = key ? plans.get(key) : undefined;
      if (!plan) {
        const ix = isTfBuf(idx) ? idx.t!.dataSync() as Int32Array : idx;
        plan = scatterPlan(ix, per, rows);
        if (key) plans.set(key, plan);
      }
      const { touched, hits, most } = plan;
      if (touched.length === 0) return;
      computeInto(ctx, [dw], (tf) => {
        const W = tin(tf, dw, [dw.length / cols, cols]), nt = touched.length;
        const D = tf.concat([tin(tf, dout, [rows, cols]), tf.fill([1, cols], -0)]);
        const G = tf.reshape(tf.gather(D, tf.tensor1d(hits, "int32")), [nt, most, cols]);
        const at = tf.tensor2d(touched, [nt, 1], "int32");
        let acc = tf.gatherND(W, at);
        for (let j = 0; j < most; j++) acc = tf.add(acc, tf.reshape(tf.slice(G, [0, j, 0], [nt, 1, cols]), [nt, cols]));
        return [tf.tensorScatterUpdate(W, at, acc)];
      });
    },
    adamw(w, g, m, v, s) {
      if (isF64(w, g, m, v)) return ctx.fb("adamw")(w, g, m, v, s);
      const lw = f32(s.lerpW), lwc = f32(1 - lw), small = s.lerpW < 0.5, n = w.length;
      computeInto(ctx, [w, m, v], (tf) => {
        const sc = (x: number) => tf.scalar(f32(x));
        let W: Tensor = tin(tf, w, [n]);
        const G = tin(tf, g, [n]), M0 = tin(tf, m, [n]), V0 = tin(tf, v, [n]);
        if (s.decay !== 1) W = tf.mul(W, sc(s.decay));
        const d = tf.sub(G, M0);
        const M = small ? tf.add(M0, tf.mul(sc(lw), d)) : tf.sub(G, tf.mul(d, sc(lwc)));
        const V = tf.add(tf.mul(V0, sc(s.beta2)), tf.mul(tf.mul(sc(s.oneMinusBeta2), G), G));
        const den = tf.add(tf.div(tf.sqrt(V), sc(s.bc2sqrt)), sc(s.eps));
        return [tf.add(W, tf.div(tf.mul(sc(s.negStep), M), den)), M, V];
      });
    },
    // ⊥Grad with the dot products in the engine's arithmetic (f32 sums; tfjs-cpu accumulates in f64), on device.
    orthogonalize(w, g) {
      if (isF64(w, g)) return ctx.fb("orthogonalize")(w, g);
      const n = w.length;
      computeInto(ctx, [g], (tf) => {
        const W = tin(tf, w, [n]), G = tin(tf, g, [n]);
        const dot = (a: Tensor, b: Tensor) => tf.sum(tf.mul(a, b));
        const proj = tf.div(dot(W, G), tf.add(dot(W, W), 1e-30));
        const R = tf.sub(G, tf.mul(proj, W));
        return [tf.mul(R, tf.div(tf.sqrt(dot(G, G)), tf.add(tf.sqrt(dot(R, R)), 1e-30)))];
      });
    },
    // The maximum is taken on device; the one value (and a NaN flag) comes back to the f64 destination on the host.
    maxInto(dst, at, src, from, n, abs) {
      if (isF64(src)) return ctx.fb("maxInto")(dst, at, src, from, n, abs);
      const d = hostF64(dst);
      if (n === 0 || d[at] !== d[at]) return;
      const [mx, nan] = computeInto(ctx, [null, null], (tf) => {
        let t = tf.slice(tin(tf, src, [src.length]), from, n);
        if (abs) t = tf.abs(t);
        return [tf.max(t), tf.cast(tf.any(tf.isNaN(t)), "int32")];
      });
      const v = nan![0] ? NaN : mx![0]!;
      if (v > d[at]! || v !== v) d[at] = v;
    },
  };
}
