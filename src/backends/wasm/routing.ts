// Routing kernels on WASM SIMD (asm/topk.ts). Marshalling only: arrays in WASM memory are used in place.
import { SCORING_MODE, type RoutingKernels } from "../api/routing.ts";
import { hostRouting } from "../host/routing.ts";
import { CHUNK_SLOT, COUNT, END, START, THREAD, UNIT, chunkOf, fixedChunk, par, threads } from "./pool.ts";
import { asm, call, view } from "./runtime.ts";

/** dst[e] += each chunk's slot[e], in chunk order (the pool's partial sums of a reduction over rows). */
function addSlots(ctor: typeof Float64Array | typeof Int32Array, dst: number, slots: number, E: number, nch: number): void {
  const c0 = ctor as typeof Float64Array, d = view(c0, dst, E), part = view(c0, slots, E * nch);
  for (let c = 0; c < nch; c++) for (let e = 0; e < E; e++) d[e] = d[e]! + part[c * E + e]!;
}

const kernels: Omit<RoutingKernels, "routeExpertChoice" | "routeLosses" | "updateBias"> = {
  topk(x, values, indices, rows, cols, k, sorted) {
    // rows over the pool, four at a time (the short-row kernel's group), each thread with its own key buffer
    const keys = asm.topk_scratch_keys!(cols, k), chunk = Math.ceil(chunkOf(rows, 4 * cols) / 4) * 4;
    call(
      (f) => [f.input(x), f.output(values), f.output(indices), keys ? f.scratch(keys * 8 * threads()) : 0] as const,
      ([px, pv, pi, pb]) => par("topk_f32", rows, chunk, [[px, UNIT, 4 * cols], [pv, UNIT, 4 * k], [pi, UNIT, 4 * k], [rows, COUNT, 1],
        cols, k, sorted ? 1 : 0, [pb, THREAD, keys * 8]]),
    );
  },

  routeScores(logits, rows, E, scoring, scale, scores, pSum, lse) {
    // fixed chunks of rows (a function of the size only), each summing into its own pSum slot; the slots are added
    // into pSum in chunk order, so any thread count gives the same bits
    const w = asm.route_scores_scratch!(E), rb = 4 * E;
    const chunk = fixedChunk(rows, rb), nch = Math.max(1, Math.ceil(rows / chunk));
    call(
      (f) => [f.input(logits), scores ? f.output(scores) : 0, f.inout(pSum), f.output(lse), f.scratch(w * threads()),
        nch > 1 ? f.scratch(8 * E * nch) : 0] as const,
      ([pz, ps, pp, pl, pw, slots]) => {
        par("route_scores_f32", rows, chunk, [[pz, UNIT, rb], [rows, COUNT, 1], E, SCORING_MODE[scoring], scale, [ps, UNIT, ps ? rb : 0],
          slots ? [slots, CHUNK_SLOT, 8 * E] : pp, [pl, UNIT, 8], [pw, THREAD, w]]);
        if (slots) addSlots(Float64Array, pp, slots, E, nch);
      },
    );
  },

  routeTokens(logits, o, experts, weights, preCounts, pSum, lse, counts, offsets, order, stats) {
    // scoring and selection in fixed chunks of rows (four-token groups), each with its own counts and pSum slot,
    // added in chunk order; then the dispatch on this thread
    const E = o.experts, k = o.k, rows = o.rows, rb = 4 * E;
    const work = Math.max(asm.route_tokens_scratch!(E, k, o.groups, o.topkGroups), 4 * E);
    const chunk = fixedChunk(rows, rb, 4), nch = Math.max(1, Math.ceil(rows / chunk));
    stats[0] = call(
      (f) => [f.input(logits), o.bias ? f.input(o.bias) : 0, f.output(experts), f.output(weights), f.inout(preCounts),
        f.inout(pSum), f.output(lse), f.output(counts), f.output(offsets), f.output(order), f.scratch(work * threads()),
        nch > 1 ? f.scratch(12 * E * nch) : 0] as const,
      ([pz, pb, pe, pw, pc, pp, pl, pn, po, pr, pk, slots]) => {
        const ps = slots + 8 * E * nch; // counts slots after the pSum slots
        par("route_select_f32", rows, chunk, [[pz, UNIT, rb], [rows, COUNT, 1], E, k, SCORING_MODE[o.scoring], o.scale, pb, o.groups, o.topkGroups,
          o.normalize ? 1 : 0, o.routeScale, [pe, UNIT, 4 * k], [pw, UNIT, 4 * k], slots ? [ps, CHUNK_SLOT, 4 * E] : pc,
          slots ? [slots, CHUNK_SLOT, 8 * E] : pp, [pl, UNIT, 8], [pk, THREAD, work]]);
        if (slots) {
          addSlots(Float64Array, pp, slots, E, nch);
          addSlots(Int32Array, pc, ps, E, nch);
        }
        return asm.route_dispatch!(pe, pw, rows * k, E, o.capacity, pn, po, pr, pk);
      },
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
    const w = asm.route_grad_scratch!(E), rb = 4 * E;
    call(
      (f) => [f.input(logits), f.input(coef), f.input(lse), auxGrad ? f.output(auxGrad) : 0, zGrad ? f.output(zGrad) : 0,
        f.scratch(w * threads())] as const,
      ([pz, pc, pl, pa, pg, pw]) => par("route_grad_f32", rows, chunkOf(rows, 3 * rb), [[pz, UNIT, rb], [rows, COUNT, 1], E, SCORING_MODE[scoring],
        scale, pc, [pl, UNIT, 8], [pa, UNIT, pa ? rb : 0], [pg, UNIT, pg ? rb : 0], [pw, THREAD, w], rows]),
    );
  },

  combine(expertOut, order, weights, slots, kept, hidden, out) {
    // columns over the pool (tokens scatter into shared rows of out), a multiple of 16
    const chunk = Math.ceil(chunkOf(hidden, 8 * kept + 4 * out.length / Math.max(hidden, 1)) / 16) * 16;
    call(
      (f) => [f.input(expertOut), f.input(order), f.input(weights), f.output(out)] as const,
      ([pe, po, pw, pt]) => par("combine_f32", hidden, chunk, [pe, po, pw, slots, kept, hidden, pt, out.length, [0, START, 0], [0, END, 0]]),
    );
  },
};

export const routingWasm: RoutingKernels = { ...kernels, ...hostRouting(kernels) };
