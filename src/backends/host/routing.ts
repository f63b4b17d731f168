// Routing kernels written once over typed arrays, for backends whose storage is host memory (reference; wasm takes
// the losses and the bias update): expert-choice selection on top of the backend's own scoring and top-k kernels.
import type { ExpertChoiceParams, RoutingKernels } from "../api/routing.ts";

type Extras = Pick<RoutingKernels, "routeExpertChoice" | "routeLosses" | "updateBias">;

export function hostRouting(k: Pick<RoutingKernels, "routeScores" | "topk">): Extras {
  return {
    routeExpertChoice(logits, p: ExpertChoiceParams, experts, weights, pre, pSum, lse, stats) {
      const { rows: T, experts: E, capacity, bias } = p;
      const scores = new Float32Array(T * E);
      k.routeScores(logits, T, E, p.scoring, p.scale, scores, pSum, lse);
      // Each expert ranks the tokens by (score + bias): a top-k over the transposed [E, T] matrix.
      const byExpert = new Float32Array(E * T);
      for (let t = 0; t < T; t++) for (let e = 0; e < E; e++) byExpert[e * T + t] = scores[t * E + e]! + (bias ? bias[e]! : 0);
      const values = new Float32Array(E * capacity), indices = new Int32Array(E * capacity);
      if (capacity > 0) k.topk(byExpert, values, indices, E, T, capacity, true);
      experts.fill(-1);
      weights.fill(0);
      for (let e = 0; e < E; e++) {
        pre[e] = pre[e]! + capacity;
        for (let j = 0; j < capacity; j++) {
          const t = indices[e * capacity + j]!;
          experts[t * E + e] = e;
          weights[t * E + e] = scores[t * E + e]!;
        }
      }
      let dropped = 0; // tokens no expert picked
      for (let t = 0; t < T; t++) {
        let sum = 0, n = 0;
        for (let e = 0; e < E; e++) if (experts[t * E + e]! >= 0) { sum += weights[t * E + e]!; n++; }
        if (n === 0) dropped++;
        const c = p.normalize && sum > 0 ? p.routeScale / sum : p.routeScale;
        for (let e = 0; e < E; e++) weights[t * E + e] = weights[t * E + e]! * c;
      }
      stats[0] = dropped;
    },

    routeLosses(pre, pSum, lse, T, E, fDen, coef, stats) {
      let aux = 0, z = 0;
      for (let e = 0; e < E; e++) {
        const f = pre[e]! / fDen;
        aux += f * (pSum[e]! / T);
        coef[e] = (E * f) / T;
      }
      for (let t = 0; t < T; t++) z += lse[t]! * lse[t]!;
      stats[1] = aux * E;
      stats[2] = z / T;
    },

    updateBias(bias, counts, rate) {
      let sum = 0;
      for (let e = 0; e < counts.length; e++) sum += counts[e]!;
      const mean = sum / counts.length;
      for (let e = 0; e < bias.length; e++) bias[e] = bias[e]! + rate * Math.sign(mean - counts[e]!);
    },
  };
}
