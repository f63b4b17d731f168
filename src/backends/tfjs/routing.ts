// Routing family on tfjs.
// - topk: tf.topk (ties: lower index first, as ours). tfjs has no NaN rule, so NaN is ranked as +Infinity
//   (tf.where(isNaN)), which is exact unless a row holds both NaN and +Infinity (NaN must win regardless of
//   index there): such calls, found by a host scan, run on the fallback. Values are read back from x at the
//   chosen indices (so NaN payloads and -0 come back as stored); sorted = false reorders each row's k
//   indices ascending on the host. tfjs-cpu orders by b - a, which is NaN for two equal infinities, so it
//   breaks ties between +Infinity (or -Infinity) entries arbitrarily, NaN-as-Infinity included: on that
//   engine, calls holding any non-finite value run on the fallback.
// - combine: gather the kept expert rows, scale by their weights, and add them into token rows in passes
//   (pass j = each token's j-th contribution in dispatch order, one gather / add / tensorScatterUpdate), so
//   repeated tokens are summed in the reference's order (in f32: within 1 ulp per slot of its f64 sum).
// - routeScores / routeGrad: the scoring functions (softmax, sigmoid, stablemax, activation = softmax of
//   sigmoid(z) / T), logsumexp and the aux / z-loss gradients as row-wise tensor math in f32 (the reference is
//   f64: within the route tests' tolerances times the tfjs factor); pSum is accumulated on the host in f64
//   from the f32 probabilities, as the wasm kernel does.
// - routeTokens / routeDispatch run on the fallback (wasm): token-choice selection (biased selection with
//   unbiased weights, group-limited top-k over group scores) fused with dispatch (capacity drops in token
//   order, a stable counting sort) is per-token bookkeeping with no tfjs primitive, and at MoE router sizes
//   (tokens x experts) far below any size where a device copy pays (GPU_THRESHOLDS).
import type { Tensor } from "@tensorflow/tfjs-core";
import type { RoutingKernels, Scoring } from "../api/routing.ts";
import { compute, occurrencePasses, sOf, type Tf, type TfCtx } from "./common.ts";

const softmaxRows = (tf: Tf, u: Tensor) => {
  const e = tf.exp(tf.sub(u, tf.max(u, 1, true))); // a row with NaN/+Inf, or only -Inf, comes out NaN
  return tf.div(e, tf.sum(e, 1, true));
};

/** Scores s (weights come from these) and routing probabilities p (s normalized per token), [rows, E]. */
function scoreT(tf: Tf, z: Tensor, scoring: Scoring, scale: number): { s: Tensor; p: Tensor; u: Tensor } {
  const u = scale === 1 ? z : tf.mul(z, scale);
  switch (scoring) {
    case "softmax": { const s = softmaxRows(tf, u); return { s, p: s, u }; }
    case "activation": { const s = softmaxRows(tf, tf.mul(tf.sigmoid(z), scale)); return { s, p: s, u }; }
    case "stablemax": {
      const t = sOf(tf, u);
      const S = tf.sum(t, 1, true);
      const ok = tf.logicalAnd(tf.greater(S, 0), tf.less(S, Infinity));
      const s = tf.add(tf.div(t, S), tf.where(ok, tf.zerosLike(S), tf.fill(S.shape, NaN)));
      return { s, p: s, u };
    }
    case "sigmoid": {
      const s = tf.sigmoid(u);
      return { s, p: tf.div(s, tf.sum(s, 1, true)), u };
    }
  }
}

/** logsumexp per row; a row whose max is not finite gives that max (NaN, +Inf or -Inf) like the reference. */
function lseT(tf: Tf, z: Tensor): Tensor {
  const m = tf.max(z, 1, true);
  const l = tf.add(m, tf.log(tf.sum(tf.exp(tf.sub(z, m)), 1, true)));
  return tf.where(tf.isFinite(m), l, m);
}

export function routingTfjs(ctx: TfCtx): Partial<RoutingKernels> {
  const fb = ctx.fallback;
  return {
    routeScores(logits, rows, E, scoring, scale, scores, pSum, lse) {
      const out = compute(ctx, (tf) => {
        const z = tf.tensor2d(logits, [rows, E]);
        const { s, p } = scoreT(tf, z, scoring, scale);
        return scores && p !== s ? [lseT(tf, z), p, s] : [lseT(tf, z), p];
      });
      lse.set(out[0] as Float32Array);
      const p = out[1] as Float32Array;
      for (let r = 0, o = 0; r < rows; r++, o += E) for (let e = 0; e < E; e++) pSum[e]! += p[o + e]!;
      if (scores) scores.set((out[2] ?? out[1]) as Float32Array);
    },
    routeGrad(logits, rows, E, scoring, scale, coef, lse, auxGrad, zGrad) {
      if (!auxGrad && !zGrad) return;
      const out = compute(ctx, (tf) => {
        const z = tf.tensor2d(logits, [rows, E]);
        const res: Tensor[] = [];
        if (zGrad) res.push(tf.div(tf.mul(tf.mul(tf.tensor2d(Float32Array.from(lse), [rows, 1]), 2), softmaxRows(tf, z)), rows));
        if (auxGrad) {
          const { s, p, u } = scoreT(tf, z, scoring, scale);
          const c = tf.tensor2d(Float32Array.from(coef), [1, E]);
          const d = tf.sub(c, tf.sum(tf.mul(p, c), 1, true)); // coef_e - <coef, p>
          let g: Tensor;
          if (scoring === "softmax") g = tf.mul(tf.mul(p, d), scale);
          else if (scoring === "activation") {
            const sg = tf.sigmoid(z);
            g = tf.mul(tf.mul(tf.mul(tf.mul(p, d), scale), sg), tf.sub(1, sg));
          } else if (scoring === "sigmoid") g = tf.div(tf.mul(tf.mul(tf.mul(s, tf.sub(1, s)), d), scale), tf.sum(s, 1, true));
          else {
            const ds = tf.where(tf.greaterEqual(u, 0), tf.onesLike(u), tf.reciprocal(tf.square(tf.sub(1, u))));
            g = tf.div(tf.mul(tf.mul(ds, d), scale), tf.sum(sOf(tf, u), 1, true));
          }
          res.push(g);
        }
        return res;
      });
      let i = 0;
      if (zGrad) zGrad.set(out[i++] as Float32Array);
      if (auxGrad) auxGrad.set(out[i] as Float32Array);
    },
    combine(expertOut, order, weights, slots, kept, hidden, out) {
      if (kept === 0) return;
      const tokens = out.length / hidden;
      const passes = occurrencePasses(kept, (p) => Math.floor(order[p]! / slots))
        .map((ps) => ({ toks: ps.map((p) => Math.floor(order[p]! / slots)), ps, ws: ps.map((p) => weights[order[p]!]!) }));
      const [o] = compute(ctx, (tf) => {
        let O = tf.zeros([tokens, hidden]);
        const EO = tf.tensor2d(expertOut.subarray(0, kept * hidden), [kept, hidden]);
        for (const { toks, ps, ws } of passes) {
          const at = tf.tensor1d(Int32Array.from(toks), "int32");
          const rows = tf.mul(tf.gather(EO, tf.tensor1d(Int32Array.from(ps), "int32")), tf.tensor2d(Float32Array.from(ws), [ws.length, 1]));
          O = tf.tensorScatterUpdate(O, tf.reshape(at, [toks.length, 1]), tf.add(tf.gather(O, at), rows));
        }
        return [O];
      });
      out.set(o!);
    },
    topk(x, values, indices, rows, cols, k, sorted) {
      if (k === 0 || rows === 0) return;
      let hasNaN = false;
      const infBug = ctx.engine.candidate === "tfjs-cpu";
      for (let r = 0, o = 0; r < rows; r++, o += cols) {
        let nan = false, inf = false, ninf = false;
        for (let i = o; i < o + cols; i++) {
          const v = x[i]!;
          if (v !== v) nan = true;
          else if (v === Infinity) inf = true;
          else if (v === -Infinity) ninf = true;
        }
        if ((nan && inf) || (infBug && (nan || inf || ninf))) return fb.topk(x, values, indices, rows, cols, k, sorted);
        hasNaN ||= nan;
      }
      const [ix] = compute(ctx, (tf) => {
        let t = tf.tensor2d(x, [rows, cols]);
        if (hasNaN) t = tf.where(tf.isNaN(t), tf.fill([rows, cols], Infinity), t);
        return [tf.topk(t, k, true).indices];
      });
      const got = ix as Int32Array;
      for (let r = 0, o = 0; r < rows; r++, o += k) {
        const row = got.subarray(o, o + k);
        if (!sorted) row.sort();
        for (let j = 0; j < k; j++) {
          indices[o + j] = row[j]!;
          values[o + j] = x[r * cols + row[j]!]!;
        }
      }
    },
  };
}
