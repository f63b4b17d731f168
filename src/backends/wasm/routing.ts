// Routing kernels on WASM SIMD (asm/topk.ts). Marshalling only: arrays in WASM memory are used in place.
import type { RoutingKernels, Scoring } from "../api/routing.ts";
import { hostRouting } from "../host/routing.ts";
import { asm, call } from "./runtime.ts";

const MODE: Record<Scoring, number> = { softmax: 0, sigmoid: 1, stablemax: 2, activation: 3 };

const kernels: Omit<RoutingKernels, "routeExpertChoice" | "routeLosses" | "updateBias"> = {
  topk(x, values, indices, rows, cols, k, sorted) {
    const keys = asm.topk_scratch_keys!(cols, k);
    call(
      (f) => [f.input(x), f.output(values), f.output(indices), keys ? f.scratch(keys * 8) : 0] as const,
      ([px, pv, pi, pb]) => asm.topk_f32!(px, pv, pi, rows, cols, k, sorted ? 1 : 0, pb),
    );
  },

  routeScores(logits, rows, E, scoring, scale, scores, pSum, lse) {
    call(
      (f) => [f.input(logits), scores ? f.output(scores) : 0, f.inout(pSum), f.output(lse), f.scratch(asm.route_scores_scratch!(E))] as const,
      ([pz, ps, pp, pl, pw]) => asm.route_scores_f32!(pz, rows, E, MODE[scoring], scale, ps, pp, pl, pw),
    );
  },

  routeTokens(logits, o, experts, weights, preCounts, pSum, lse, counts, offsets, order, stats) {
    const work = Math.max(asm.route_tokens_scratch!(o.experts, o.k, o.groups, o.topkGroups), 4 * o.experts);
    stats[0] = call(
      (f) => [f.input(logits), o.bias ? f.input(o.bias) : 0, f.output(experts), f.output(weights), f.inout(preCounts),
        f.inout(pSum), f.output(lse), f.output(counts), f.output(offsets), f.output(order), f.scratch(work)] as const,
      ([pz, pb, pe, pw, pc, pp, pl, pn, po, pr, pk]) =>
        asm.route_tokens_f32!(pz, o.rows, o.experts, o.k, MODE[o.scoring], o.scale, pb, o.groups, o.topkGroups,
          o.normalize ? 1 : 0, o.routeScale, pe, pw, pc, pp, pl, o.capacity, pn, po, pr, pk),
    );
  },

  routeDispatch(experts, weights, n, E, capacity, counts, offsets, order, stats) {
    const dropped = call(
      (f) => [f.inout(experts), f.inout(weights), f.output(counts), f.output(offsets), f.output(order), f.scratch(4 * E)] as const,
      ([pe, pw, pc, po, pr, pk]) => asm.route_dispatch!(pe, pw, n, E, capacity, pc, po, pr, pk),
    );
    if (stats) stats[0] = dropped;
  },

  routeGrad(logits, rows, E, scoring, scale, coef, lse, auxGrad, zGrad) {
    call(
      (f) => [f.input(logits), f.input(coef), f.input(lse), auxGrad ? f.output(auxGrad) : 0, zGrad ? f.output(zGrad) : 0,
        f.scratch(asm.route_grad_scratch!(E))] as const,
      ([pz, pc, pl, pa, pg, pw]) => asm.route_grad_f32!(pz, rows, E, MODE[scoring], scale, pc, pl, pa, pg, pw),
    );
  },

  combine(expertOut, order, weights, slots, kept, hidden, out) {
    call(
      (f) => [f.input(expertOut), f.input(order), f.input(weights), f.output(out)] as const,
      ([pe, po, pw, pt]) => asm.combine_f32!(pe, po, pw, slots, kept, hidden, pt, out.length),
    );
  },
};

export const routingWasm: RoutingKernels = { ...kernels, ...hostRouting(kernels) };
