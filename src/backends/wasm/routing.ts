// Routing kernels on WASM SIMD (asm/topk.ts). Marshalling only: arrays in WASM memory are used in place.
import { SCORING_MODE, type RoutingKernels } from "../api/routing.ts";
import { hostRouting } from "../host/routing.ts";
import { CHUNK_SLOT, COUNT, END, START, THREAD, UNIT, chunkOf, fixedChunk, par, threads } from "./pool.ts";
import { asm, call, view, type Frame } from "./runtime.ts";

/**
 * Reserves the scoring's scratch; the returned function runs route_scores_f32 in fixed chunks of rows (a function of
 * the size only), each summing into its own pSum slot, added into pSum in chunk order: the same bits on any pool.
 */
function scoring(f: Frame, rows: number, E: number) {
  const w = asm.route_scores_scratch!(E), rb = 4 * E, chunk = fixedChunk(rows, rb), nch = Math.max(1, Math.ceil(rows / chunk));
  const pw = f.scratch(w * threads()), slots = nch > 1 ? f.scratch(8 * E * nch) : 0;
  return (pz: number, mode: number, scale: number, ps: number, pp: number, pl: number) => {
    par("route_scores_f32", rows, chunk, [[pz, UNIT, rb], [rows, COUNT, 1], E, mode, scale, [ps, UNIT, ps ? rb : 0],
      slots ? [slots, CHUNK_SLOT, 8 * E] : pp, [pl, UNIT, 8], [pw, THREAD, w]]);
    if (slots) asm.add_slots_f64!(pp, slots, E, nch); // the chunks' sums in chunk order: the same bits on any pool
  };
}

/**
 * Reserves the dispatch's scratch for n assignments; the returned function runs it (route_dispatch_*): counts per
 * chunk, the plan on this thread, placement per chunk, and returns the dropped count. Chunks are at least 8E
 * assignments so the plan (E per chunk) stays small; the result is exact, so any chunking gives the same bits.
 */
function dispatch(f: Frame, n: number, E: number) {
  const stride = 8 * E + 8, chunk = Math.max(chunkOf(n, 12), 8 * E), nch = Math.max(1, Math.ceil(n / chunk));
  const slots = f.staging(stride * nch); // written by route_dispatch_count
  return (pe: number, pw: number, cap: number, pc: number, po: number, pr: number): number => {
    par("route_dispatch_count", n, chunk, [[pe, UNIT, 4], [n, COUNT, 1], E, [slots, CHUNK_SLOT, stride]]);
    const dropped = asm.route_dispatch_plan!(slots, nch, stride, E, cap, pc, po);
    par("route_dispatch_place", n, chunk, [pe, pw, [0, START, 0], [0, END, 0], E, pr, [slots, CHUNK_SLOT, stride]]);
    return dropped;
  };
}

const kernels: Omit<RoutingKernels, "routeLosses" | "updateBias"> = {
  topk(x, values, indices, rows, cols, k, sorted) {
    // rows over the pool, four at a time (the short-row kernel's group), each thread with its own key buffer
    const keys = asm.topk_scratch_keys!(cols, k), chunk = Math.ceil(chunkOf(rows, 4 * cols) / 4) * 4;
    call(
      (f) => [f.input(x), f.output(values), f.output(indices), keys ? f.scratch(keys * 8 * threads()) : 0] as const,
      ([px, pv, pi, pb]) => par("topk_f32", rows, chunk, [[px, UNIT, 4 * cols], [pv, UNIT, 4 * k], [pi, UNIT, 4 * k], [rows, COUNT, 1],
        cols, k, sorted ? 1 : 0, [pb, THREAD, keys * 8]]),
    );
  },

  routeScores(logits, rows, E, mode, scale, scores, pSum, lse) {
    call(
      (f) => [f.input(logits), scores ? f.output(scores) : 0, f.inout(pSum), f.output(lse), scoring(f, rows, E)] as const,
      ([pz, ps, pp, pl, score]) => score(pz, SCORING_MODE[mode], scale, ps, pp, pl),
    );
  },

  routeTokens(logits, o, experts, weights, preCounts, pSum, lse, counts, offsets, order, stats) {
    // scoring and selection in fixed chunks of rows (four-token groups), each with its own counts and pSum slot,
    // added in chunk order; then the dispatch
    const E = o.experts, k = o.k, rows = o.rows, rb = 4 * E;
    const work = asm.route_tokens_scratch!(E, k, o.groups, o.topkGroups);
    const chunk = fixedChunk(rows, rb, 4), nch = Math.max(1, Math.ceil(rows / chunk));
    stats[0] = call(
      (f) => [f.input(logits), o.bias ? f.input(o.bias) : 0, f.output(experts), f.output(weights), f.inout(preCounts),
        f.inout(pSum), f.output(lse), f.output(counts), f.output(offsets), f.output(order), f.scratch(work * threads()),
        nch > 1 ? f.scratch(12 * E * nch) : 0, dispatch(f, rows * k, E)] as const,
      ([pz, pb, pe, pw, pc, pp, pl, pn, po, pr, pk, slots, place]) => {
        const ps = slots + 8 * E * nch; // counts slots after the pSum slots
        par("route_select_f32", rows, chunk, [[pz, UNIT, rb], [rows, COUNT, 1], E, k, SCORING_MODE[o.scoring], o.scale, pb, o.groups, o.topkGroups,
          o.normalize ? 1 : 0, o.routeScale, [pe, UNIT, 4 * k], [pw, UNIT, 4 * k], slots ? [ps, CHUNK_SLOT, 4 * E] : pc,
          slots ? [slots, CHUNK_SLOT, 8 * E] : pp, [pl, UNIT, 8], [pk, THREAD, work]]);
        if (slots) {
          asm.add_slots_f64!(pp, slots, E, nch);
          asm.add_slots_i32!(pc, ps, E, nch);
        }
        return place(pe, pw, o.capacity, pn, po, pr);
      },
    );
  },

  routeExpertChoice(logits, p, experts, weights, pre, pSum, lse, stats) {
    // scores straight into weights; each expert's row of scores + bias ([E, T] in scratch) ranked on its own
    // thread; the per-token passes in token chunks (tokens no expert took counted per chunk)
    const { rows: T, experts: E, capacity: k } = p, rb = 4 * E, keys = asm.topk_scratch_keys!(T, k);
    const tChunk = chunkOf(T, 3 * rb), tn = Math.max(1, Math.ceil(T / tChunk));
    stats[0] = call(
      (f) => [f.input(logits), p.bias ? f.input(p.bias) : 0, f.output(experts), f.output(weights), f.inout(pSum), f.output(lse),
        scoring(f, T, E), k > 0 ? f.staging(T * rb) : 0, f.scratch(keys * 8 * threads()), f.staging(4 * tn)] as const,
      ([pz, pb, pe, pw, pp, pl, score, sel, pk, none]) => {
        score(pz, SCORING_MODE[p.scoring], p.scale, pw, pp, pl);
        par("route_ec_rows_f32", T, tChunk, [[pw, UNIT, rb], [T, COUNT, 1], E, pb, [sel, UNIT, sel ? 4 : 0], T, [pe, UNIT, rb]]);
        if (k > 0) par("route_ec_select_f32", E, chunkOf(E, 4 * T, 16), [sel, T, E, k, pe, [pk, THREAD, keys * 8], [0, START, 0], [0, END, 0]]);
        par("route_ec_weights_f32", T, tChunk, [[pe, UNIT, rb], [pw, UNIT, rb], [T, COUNT, 1], E, p.normalize ? 1 : 0, p.routeScale, [none, CHUNK_SLOT, 4]]);
        return view(Int32Array, none, tn).reduce((a, b) => a + b, 0);
      },
    );
    for (let e = 0; e < E; e++) pre[e] = pre[e]! + k;
  },

  routeDispatch(experts, weights, n, E, capacity, counts, offsets, order, stats) {
    // dropless (expert choice): experts and weights stay as they are, so neither is copied back
    const drops = capacity >= 0;
    const dropped = call(
      (f) => [drops ? f.inout(experts) : f.input(experts), drops ? f.inout(weights) : 0, f.output(counts), f.output(offsets),
        f.output(order), dispatch(f, n, E)] as const,
      ([pe, pw, pc, po, pr, place]) => place(pe, pw, capacity, pc, po, pr),
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

const { routeLosses, updateBias } = hostRouting(kernels);
export const routingWasm: RoutingKernels = { ...kernels, routeLosses, updateBias };
