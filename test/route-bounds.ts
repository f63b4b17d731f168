// route's documented error bounds (its TSDoc, docs/numerics.md) for each element of a result, from the f64
// reference's own scores. u = 2^-24; values under the smallest normal may flush to 0.
import { route, type RouteOptions, type RouteResult } from "numedge";
import { dsOf, lseRow, sOf, scoreRow, sigmoid, softmaxRow } from "../src/backends/reference/routing.ts";
import { underReference } from "./parity.ts";

const U = 2 ** -24, FTZ = 2 ** -126;
/** |ln v| where v > 0, else 0 (a zero score gives a zero weight or gradient on every backend). */
const lnAbs = (v: number) => (v > 0 ? Math.abs(Math.log(v)) : 0);

export interface RouteBounds {
  /** [T*slots] per weight w with score s (unnormalized): u (16 + 3 |ln s|) |w|. */
  weights: Float64Array;
  /** 1e-6 |auxLoss| + 1e-12 (an auxLoss of 0). */
  auxLoss: number;
  /** 1e-6 (zLoss + 2 sqrt(zLoss)): each token's logsumexp carries an absolute error. */
  zLoss: number;
  /** [T*E] u A ((16 + 3 |ln s|) |coef_e - sum coef p| + 16 max coef), A the scoring's d score / d logit factor. */
  auxGrad: Float64Array;
  /** [T*E] u (2 q / T) ((17 + 2 |ln q|) |lse| + 16), q = softmax(logits). */
  zGrad: Float64Array;
}

/** The bounds for route(z, o) whose reference result is `want`. */
export function routeBounds(z: Float32Array, o: RouteOptions, want: RouteResult): RouteBounds {
  const E = o.experts, T = z.length / E, slots = want.slots, scale = 1 / (o.temperature ?? 1), scoring = o.scoring ?? "softmax";
  // d auxLoss / d p[t, e] = coef_e = E f_e / T, f_e from the selections before capacity drops
  const pre = o.expertChoice ? new Int32Array(E).fill(want.capacity) : underReference(() => route(z, { ...o, capacityFactor: undefined, grad: false })).counts;
  const fDen = o.auxConvention === "normalized" ? T * o.k : T;
  const coef = Array.from(pre, (c) => (E * c) / fDen / T), K = coef.reduce((m, c) => Math.max(m, c), 0);
  const weights = new Float64Array(T * slots), auxGrad = new Float64Array(T * E), zGrad = new Float64Array(T * E);
  for (let t = 0; t < T; t++) {
    const row = Array.from(z.subarray(t * E, (t + 1) * E));
    const { s, p } = scoreRow(row, scoring, scale), q = softmaxRow(row), lse = lseRow(row);
    for (let j = 0; j < slots; j++) {
      const e = want.experts[t * slots + j]!;
      weights[t * slots + j] = U * (16 + (e >= 0 ? 3 * lnAbs(s[e]!) : 0)) * Math.abs(want.weights[t * slots + j]!) + FTZ;
    }
    let B = 0, S = 0, St = 0;
    for (let e = 0; e < E; e++) { B += coef[e]! * p[e]!; S += s[e]!; St += sOf(row[e]! * scale); }
    for (let e = 0; e < E; e++) {
      // A: the size of d score / d logit in each scoring's gradient (sigmoid's s, not s (1 - s): 1 - s cancels in f32)
      const A = scoring === "softmax" ? scale * p[e]! : scoring === "activation" ? scale * p[e]! * sigmoid(row[e]!)
        : scoring === "sigmoid" ? (scale * s[e]!) / S : (scale * dsOf(row[e]! * scale)) / St;
      const L = scoring === "stablemax" ? 0 : 3 * lnAbs(s[e]!);
      auxGrad[t * E + e] = U * A * ((16 + L) * Math.abs(coef[e]! - B) + 16 * K) + FTZ;
      zGrad[t * E + e] = U * ((2 * q[e]!) / T) * ((17 + 2 * lnAbs(q[e]!)) * Math.abs(lse) + 16) + FTZ;
    }
  }
  return { weights, auxLoss: 1e-6 * Math.abs(want.auxLoss) + 1e-12, zLoss: 1e-6 * (want.zLoss + 2 * Math.sqrt(want.zLoss)), auxGrad, zGrad };
}
