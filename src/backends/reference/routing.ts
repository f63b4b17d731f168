// The oracle for top-k and routing: plain TypeScript, f64 arithmetic, full sorts. Slow and obviously correct.
import { hostRouting } from "../host/routing.ts";
import type { RoutingKernels, Scoring } from "../api/routing.ts";

/** a ranks before b (values va, vb at indices ia < ib or not): larger first, NaN above all, ties by index. */
function before(va: number, ia: number, vb: number, ib: number): boolean {
  const na = Number.isNaN(va), nb = Number.isNaN(vb);
  if (na !== nb) return na;
  if (!na && va !== vb) return va > vb;
  return ia < ib;
}

/** Indices of the top k of v[0..n) in rank order; `skip[i]` excludes i from the candidates. */
function topIdx(v: ArrayLike<number>, n: number, k: number, skip?: boolean[]): number[] {
  const idx: number[] = [];
  for (let i = 0; i < n; i++) if (!skip?.[i]) idx.push(i);
  idx.sort((a, b) => (before(v[a]!, a, v[b]!, b) ? -1 : 1));
  return idx.slice(0, k);
}

export const sigmoid = (u: number) => 1 / (1 + Math.exp(-u));

export function softmaxRow(u: number[]): number[] {
  let m = -Infinity;
  for (const v of u) m = Number.isNaN(v) || Number.isNaN(m) ? NaN : Math.max(m, v);
  if (!(m > -Infinity && m < Infinity)) return u.map(() => NaN);
  const e = u.map((v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

export const sOf = (v: number) => (v >= 0 ? v + 1 : 1 / (1 - v));
export const dsOf = (v: number) => (v >= 0 ? 1 : 1 / ((1 - v) * (1 - v)));

/** Scores s (what weights are taken from) and routing probabilities p (s normalized per token). */
export function scoreRow(z: number[], scoring: Scoring, scale: number): { s: number[]; p: number[] } {
  const u = z.map((v) => v * scale);
  switch (scoring) {
    case "softmax": { const s = softmaxRow(u); return { s, p: s }; }
    case "activation": { const s = softmaxRow(z.map((v) => sigmoid(v) * scale)); return { s, p: s }; }
    case "stablemax": {
      const t = u.map(sOf);
      const S = t.reduce((a, b) => a + b, 0);
      const s = S > 0 && S < Infinity ? t.map((v) => v / S) : t.map(() => NaN);
      return { s, p: s };
    }
    case "sigmoid": {
      const s = u.map(sigmoid);
      const S = s.reduce((a, b) => a + b, 0);
      return { s, p: s.map((v) => v / S) };
    }
  }
}

export function lseRow(z: number[]): number {
  let m = -Infinity;
  for (const v of z) m = Number.isNaN(v) || Number.isNaN(m) ? NaN : Math.max(m, v);
  if (!(m > -Infinity && m < Infinity)) return m;
  let s = 0;
  for (const v of z) s += Math.exp(v - m);
  return m + Math.log(s);
}

const rowOf = (x: ArrayLike<number>, r: number, n: number) => Array.from({ length: n }, (_, i) => x[r * n + i]!);

const kernels: Omit<RoutingKernels, "routeExpertChoice" | "routeLosses" | "updateBias"> = {
  topk(x, values, indices, rows, cols, k, sorted) {
    for (let r = 0; r < rows; r++) {
      const row = rowOf(x, r, cols);
      const idx = topIdx(row, cols, k);
      if (!sorted) idx.sort((a, b) => a - b);
      for (let j = 0; j < k; j++) {
        indices[r * k + j] = idx[j]!;
        values[r * k + j] = row[idx[j]!]!;
      }
    }
  },

  routeScores(logits, rows, E, scoring, scale, scores, pSum, lse) {
    for (let r = 0; r < rows; r++) {
      const z = rowOf(logits, r, E);
      const { s, p } = scoreRow(z, scoring, scale);
      for (let e = 0; e < E; e++) {
        if (scores) scores[r * E + e] = s[e]!;
        pSum[e] += p[e]!;
      }
      lse[r] = lseRow(z);
    }
  },

  routeTokens(logits, o, experts, weights, preCounts, pSum, lse, counts, offsets, order, stats) {
    const { rows, experts: E, k, groups, topkGroups } = o;
    const gs = E / groups;
    for (let r = 0; r < rows; r++) {
      const z = rowOf(logits, r, E);
      const { s, p } = scoreRow(z, o.scoring, o.scale);
      for (let e = 0; e < E; e++) pSum[e] += p[e]!;
      lse[r] = lseRow(z);
      // Scores are monotone in the logits, so without bias or groups the logits rank the experts directly.
      const plain = !o.bias && groups === 1;
      const sel = plain ? z : s.map((v, e) => v + (o.bias ? o.bias[e]! : 0));
      let skip: boolean[] | undefined;
      if (groups > 1) {
        const gScore = Array.from({ length: groups }, (_, g) => {
          const top = topIdx(sel.slice(g * gs, (g + 1) * gs), gs, o.bias ? Math.min(2, gs) : 1); // V3: top-2 sum with bias, else max
          return top.reduce((a, i) => a + sel[g * gs + i]!, 0);
        });
        const keep = new Set(topIdx(gScore, groups, topkGroups));
        skip = Array.from({ length: E }, (_, e) => !keep.has(Math.floor(e / gs)));
      }
      const idx = topIdx(sel, E, k, skip);
      let sum = 0;
      for (const i of idx) sum += s[i]!;
      for (let j = 0; j < k; j++) {
        const e = idx[j]!;
        let w = s[e]!;
        if (o.normalize && sum > 0) w /= sum;
        experts[r * k + j] = e;
        weights[r * k + j] = w * o.routeScale;
        preCounts[e]!++;
      }
    }
    kernels.routeDispatch(experts, weights, rows * k, E, o.capacity, counts, offsets, order, stats);
  },

  routeDispatch(experts, weights, n, E, capacity, counts, offsets, order, stats) {
    counts.fill(0);
    let dropped = 0;
    for (let a = 0; a < n; a++) {
      const e = experts[a]!;
      if (e < 0) continue;
      if (capacity >= 0 && counts[e]! >= capacity) {
        experts[a] = -1;
        weights[a] = 0;
        dropped++;
      } else counts[e]!++;
    }
    offsets[0] = 0;
    for (let e = 0; e < E; e++) offsets[e + 1] = offsets[e]! + counts[e]!;
    const list: number[] = [];
    for (let e = 0; e < E; e++) for (let a = 0; a < n; a++) if (experts[a] === e) list.push(a);
    for (let a = 0; a < n; a++) if (experts[a]! < 0) list.push(a); // dropped and unused, in index order
    order.set(list);
    if (stats) stats[0] = dropped;
  },

  routeGrad(logits, rows, E, scoring, scale, coef, lse, auxGrad, zGrad) {
    for (let r = 0; r < rows; r++) {
      const z = rowOf(logits, r, E);
      if (zGrad) {
        const q = softmaxRow(z);
        for (let e = 0; e < E; e++) zGrad[r * E + e] = (2 * lse[r]! * q[e]!) / rows;
      }
      if (!auxGrad) continue;
      const { s, p } = scoreRow(z, scoring, scale);
      let gp = 0;
      for (let e = 0; e < E; e++) gp += coef[e]! * p[e]!;
      const S = s.reduce((a, b) => a + b, 0);
      const T = z.reduce((a, x) => a + sOf(x * scale), 0);
      for (let e = 0; e < E; e++) {
        const d = coef[e]! - gp, v = z[e]! * scale;
        let g: number;
        if (scoring === "softmax") g = scale * p[e]! * d;
        else if (scoring === "activation") { const sg = sigmoid(z[e]!); g = scale * p[e]! * d * sg * (1 - sg); }
        else if (scoring === "sigmoid") g = (scale * s[e]! * (1 - s[e]!) * d) / S;
        else g = (scale * dsOf(v) * d) / T;
        auxGrad[r * E + e] = g;
      }
    }
  },

  combine(expertOut, order, weights, slots, kept, hidden, out) {
    const acc = new Float64Array(out.length);
    for (let p = 0; p < kept; p++) {
      const a = order[p]!, t = Math.floor(a / slots), w = weights[a]!;
      for (let h = 0; h < hidden; h++) acc[t * hidden + h] += w * expertOut[p * hidden + h]!;
    }
    out.set(acc);
  },
};

export const routingReference: RoutingKernels = { ...kernels, ...hostRouting(kernels) };
