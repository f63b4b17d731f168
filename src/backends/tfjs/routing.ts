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
// - routeScores / routeTokens / routeGrad / routeDispatch run on the fallback (wasm): the router is
//   one fused pass of per-token bookkeeping (group-limited selection, biased selection with unbiased
//   weights, capacity drops in token order, a stable counting sort) that has no tfjs primitive, and at MoE
//   router sizes (tokens x experts) it is far below any size where a device copy pays (GPU_THRESHOLDS).
import type { RoutingKernels } from "../api/routing.ts";
import { compute, type TfCtx } from "./common.ts";

export function routingTfjs(ctx: TfCtx): Partial<RoutingKernels> {
  const fb = ctx.fallback;
  return {
    combine(expertOut, order, weights, slots, kept, hidden, out) {
      if (kept === 0) return;
      const tokens = out.length / hidden;
      const seen = new Int32Array(tokens);
      const passes: Array<{ toks: number[]; ps: number[]; ws: number[] }> = [];
      for (let p = 0; p < kept; p++) {
        const a = order[p]!, t = Math.floor(a / slots), j = seen[t]!++;
        const q = (passes[j] ??= { toks: [], ps: [], ws: [] });
        q.toks.push(t);
        q.ps.push(p);
        q.ws.push(weights[a]!);
      }
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
