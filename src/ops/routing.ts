// Top-k and mixture-of-experts routing: argument checks, shapes, and dispatch to the backend kernels.
// Ranking rule everywhere (topk, route selection, group selection, expert choice): larger first; NaN ranks
// above everything (above +Infinity); equal values (NaN with NaN, -0 with +0) go lower index first (tf.topk).
// Every op takes host typed arrays (result: host arrays) or DeviceArrays (result: DeviceArrays on their backend).
import type { Scoring } from "../backends/api/routing.ts";
import type { DeviceArray } from "../device.ts";
import { F32_MAX, NumedgeError, checkBool, checkEnum, checkInt, checkNumber, readOptions, readRecord, rowsOf, scaleOf, show } from "../errors.ts";
import { OpCall, checkIndices, elementAt, noOverlapArg, outArg, typedArg, valueOf, type Arg } from "./call.ts";

export type { Scoring } from "../backends/api/routing.ts";

export interface TopkOptions {
  /** Length of the last axis; rows = x.length / cols. */
  cols: number;
  /** How many per row, 0 <= k <= cols. */
  k: number;
  /** true (default): descending rank; false: the same set in ascending index order. */
  sorted?: boolean;
  /**
   * Write here instead of new arrays ([rows*k] each). Arrays from alloc() are written in place with no copy,
   * which (with an alloc'd x) makes a call allocation-free. Must not overlap x.
   */
  out?: { values: Float32Array; indices: Int32Array };
}

export interface TopkResult {
  /** [rows*k] the selected values (bit-exact copies of x, NaN payload and -0 kept). */
  values: Float32Array;
  /** [rows*k] their column indices. */
  indices: Int32Array;
}

/**
 * The k largest entries of each row of x [rows, cols] (tf.topk / torch.topk semantics): ties give the lower
 * index first; NaN ranks above +Infinity (NaNs among themselves by index); -0 and +0 are equal; k = 0 gives
 * empty results; k < 0 or k > cols is a range error. Exact: values are copies of x, no rounding.
 * Kernel (wasm): a lower bound on the k-th value from lane maxima, one pass keeping what is not below it, then an
 * exact rank (k <= 32) or a quickselect (k > 32); rows of up to 32 with k <= 4 go four at a time.
 * @example const { values, indices } = topk(logits, { cols: 32000, k: 50 })
 * @example topk(x, { cols: 256, k: 8, out: { values: alloc(rows * 8), indices: alloc(rows * 8, "i32") } }) // no allocation
 */
export function topk(x: Float32Array, o: TopkOptions): TopkResult;
export function topk(x: DeviceArray, o: Omit<TopkOptions, "out"> & { out?: { values: DeviceArray; indices: DeviceArray } }): { values: DeviceArray; indices: DeviceArray };
export function topk(x: Float32Array | DeviceArray, o: TopkOptions | { cols: number; k: number; sorted?: boolean; out?: unknown }): TopkResult | { values: DeviceArray; indices: DeviceArray } {
  const oo = readOptions(o, ["cols", "k", "sorted", "out"], "cols, k");
  const c = new OpCall();
  const X = typedArg(c, "x", x, "f32");
  if (X.length === 0) throw new NumedgeError("shape", `x is empty (length 0${!X.da && X.k.buffer.byteLength === 0 ? "; if it came from alloc(), WASM memory grew and detached it" : ""})`);
  const cols = checkInt("cols", oo.cols, 1);
  const rows = rowsOf("x", X, cols);
  const k = checkInt("k", oo.k, 0, cols);
  const sorted = checkBool("sorted", oo.sorted, true);
  let values: Arg, indices: Arg;
  if (oo.out === undefined) {
    values = c.out("values", "f32", rows * k);
    indices = c.out("indices", "i32", rows * k);
  } else {
    if (oo.out === null || typeof oo.out !== "object") throw new NumedgeError("dtype", "out must be { values, indices }");
    const out = readOptions(oo.out, ["values", "indices"], "values, indices", "dtype");
    values = typedArg(c, "out.values", out.values, "f32");
    indices = typedArg(c, "out.indices", out.indices, "i32");
    for (const a of [values, indices]) {
      if (a.length !== rows * k) throw new NumedgeError("shape", `${a.name}.length ${a.length} must be rows * k = ${rows * k}`);
      noOverlapArg(a, X);
    }
    noOverlapArg(values, indices);
  }
  if (k > 0 && rows > 0) c.be.topk(X.k as Float32Array, values.k as Float32Array, indices.k as Int32Array, rows, cols, k, sorted);
  c.wrote(values, indices);
  return { values: valueOf<Float32Array>(values), indices: valueOf<Int32Array>(indices) };
}

export interface RouteOptions {
  /** Number of experts E; logits are [T, E]. */
  experts: number;
  /** Experts per token, 1 <= k <= E (token choice); with expertChoice the default capacity is k*T/E. */
  k: number;
  /**
   * Router scores: "softmax" (Mixtral, Switch, GShard; default) softmax(z/T); "sigmoid" (DeepSeek-V3) sigmoid(z/T);
   * "stablemax" s(z/T)/sum; "activation" softmax(sigmoid(z)/T).
   */
  scoring?: Scoring;
  /** Temperature T > 0 (default 1). */
  temperature?: number;
  /** [E] added to the scores for selection only (DeepSeek-V3 aux-loss-free balancing); weights stay unbiased. */
  bias?: Float32Array;
  /** Group-limited routing (DeepSeek-V3): E split in `groups` contiguous groups (must divide E)... */
  groups?: number;
  /**
   * ...of which the `topkGroups` best are eligible (default groups). Group score as DeepSeek-V3
   * inference/model.py: the sum of the group's top-2 biased scores when `bias` is given, else its max score.
   */
  topkGroups?: number;
  /**
   * Expert-choice routing (Zhou et al. 2022): each expert takes its top min(T, ceil(capacityFactor*T/E)) tokens
   * by score + bias (ties: lower token first). Results then have E slots per token, slot e = expert e.
   */
  expertChoice?: boolean;
  /** Divide each token's selected weights by their sum (Mixtral, DeepSeek-V3; a zero sum leaves them 0). Default false. */
  normalize?: boolean;
  /** Multiply the weights (DeepSeek-V3 route_scale, e.g. 2.5). Default 1. */
  scale?: number;
  /**
   * Token choice: capacity = ceil(cf*T*k/E) assignments per expert, overflow dropped in token order
   * (assignment index t*k + slot); undefined = dropless. Expert choice: capacity = ceil(cf*T/E), default cf = k.
   */
  capacityFactor?: number;
  /**
   * auxLoss = E * sum_e f_e * P_e. "mixtral" (default; HF transformers load_balancing_loss_func, and Switch for
   * k = 1): f_e = count_e / T, so uniform routing gives k. "normalized": f_e = count_e / (T*k), uniform gives 1.
   */
  auxConvention?: "mixtral" | "normalized";
  /** Also return auxGrad and zGrad, the gradients of auxLoss and zLoss w.r.t. the logits. */
  grad?: boolean;
}

/** route() on DeviceArrays: every array on the logits' backend, the scalars in `stats`. */
export interface RouteDeviceResult {
  slots: number;
  experts: DeviceArray;
  weights: DeviceArray;
  counts: DeviceArray;
  offsets: DeviceArray;
  order: DeviceArray;
  capacity: number;
  /** f64 [dropped, auxLoss, zLoss]. */
  stats: DeviceArray;
  auxGrad?: DeviceArray;
  zGrad?: DeviceArray;
}

export interface RouteResult {
  /** Slots per token: k (token choice) or E (expert choice: slot e is expert e). */
  slots: number;
  /** [T*slots] expert of each (token, slot), -1 if dropped/unused. Token choice: slots in descending rank. */
  experts: Int32Array;
  /** [T*slots] combine weight of each (token, slot), 0 if dropped/unused. */
  weights: Float32Array;
  /** [E] kept assignments per expert. */
  counts: Int32Array;
  /** [E+1] exclusive cumsum of counts; offsets[E] = kept assignments. */
  offsets: Int32Array;
  /**
   * [T*slots] permutation of assignment indices a (token = a / slots): kept ones stably sorted by expert
   * (expert e's rows are order[offsets[e] .. offsets[e+1])), then dropped/unused ones in increasing order.
   */
  order: Int32Array;
  /** Capacity per expert (Infinity when dropless). */
  capacity: number;
  /** Token choice: assignments dropped by capacity. Expert choice: tokens no expert picked. */
  dropped: number;
  /**
   * Load-balancing loss E * sum_e f_e * P_e: P_e = mean over tokens of the routing probability (the scoring's
   * output at its temperature; sigmoid scores normalized per token as DeepSeek-V3's s'), f_e from the selected
   * assignments before capacity drops (per auxConvention).
   */
  auxLoss: number;
  /** Router z-loss: mean over tokens of logsumexp(logits)^2 (raw logits, no temperature). */
  zLoss: number;
  /** [T*E] d auxLoss / d logits (f_e held constant, as every implementation's autograd does). */
  auxGrad?: Float32Array;
  /** [T*E] d zLoss / d logits. */
  zGrad?: Float32Array;
}

const SCORINGS = ["softmax", "sigmoid", "stablemax", "activation"] as const;

/**
 * One call from router logits [T, E] to everything an MoE layer needs: selection (token-choice top-k,
 * optional selection-only bias, DeepSeek-V3 group limit, or expert choice), weights from the unbiased scores,
 * MegaBlocks-style dispatch (counts, offsets, stable order), capacity dropping, aux and z losses and their
 * gradients. Selection without bias or groups ranks by the logits themselves (the scores are monotone in
 * them, so this is the same choice without f32 rounding ties). NaN logits follow the ranking rule (a NaN
 * expert is selected first, ties by index) and make that token's weights NaN (with sigmoid scoring and no
 * normalize, only the NaN expert's weight) and the losses NaN; other tokens are unaffected. A token whose
 * softmax/stablemax row is undefined (+Infinity, or all -Infinity) gets NaN weights, as softmax() gives NaN rows.
 * Error vs the f64 reference, u = 2^-24, s the score of a weight's expert, T tokens, τ the temperature: weights
 * u (16 + 3 |ln s|) |w|; auxLoss 1e-6 |auxLoss| + 1e-12; zLoss 1e-6 (zLoss + 2 sqrt(zLoss)); zGrad u (2q/T) ((17 + 2 |ln q|)
 * |lse| + 16), q = softmax(logits); auxGrad u A ((16 + 3 |ln s|) |coef_e - sum coef p| + 16 max coef), coef_e =
 * E f_e / T, A the scoring's d score / d logit (p, p sigmoid(z), s / sum s or s'(z/τ) / sum s(z/τ), each over τ);
 * values under 2^-126 may flush to 0.
 * @example const r = route(logits, { experts: 8, k: 2, normalize: true }) // Mixtral
 * @example const r = route(logits, { experts: 256, k: 8, scoring: "sigmoid", bias, groups: 8, topkGroups: 4, normalize: true, scale: 2.5 }) // DeepSeek-V3
 */
export function route(logits: Float32Array, o: RouteOptions): RouteResult;
export function route(logits: DeviceArray, o: Omit<RouteOptions, "bias"> & { bias?: DeviceArray }): RouteDeviceResult;
export function route(logits: Float32Array | DeviceArray, o: RouteOptions | (Omit<RouteOptions, "bias"> & { bias?: DeviceArray })): RouteResult | RouteDeviceResult {
  const oo = readOptions(o, ["experts", "k", "scoring", "temperature", "bias", "groups", "topkGroups", "expertChoice", "normalize",
    "scale", "capacityFactor", "auxConvention", "grad"], "experts, k");
  const c = new OpCall();
  const Z = typedArg(c, "logits", logits, "f32");
  const E = checkInt("experts", oo.experts, 1, 1 << 24);
  const T = rowsOf("logits", Z, E, "experts");
  if (T === 0) throw new NumedgeError("shape", "logits is empty (no tokens to route)");
  const expertChoice = checkBool("expertChoice", oo.expertChoice, false);
  const k = checkInt("k", oo.k, 1, E);
  const scoring = checkEnum("scoring", oo.scoring ?? "softmax", SCORINGS);
  const scale = scaleOf(oo.temperature, true); // the kernels take 1/T as float32
  let bias: Arg | null = null;
  if (oo.bias !== undefined) {
    bias = typedArg(c, "bias", oo.bias, "f32");
    if (bias.length !== E) throw new NumedgeError("shape", `bias.length ${bias.length} must equal experts ${E}`);
    for (let e = 0; e < E; e++) {
      const v = elementAt(bias, e);
      if (!Number.isFinite(v)) throw new NumedgeError("nonfinite", `bias[${e}] = ${v} is not finite`);
    }
  }
  const groups = checkInt("groups", oo.groups ?? 1, 1, E);
  if (E % groups !== 0) throw new NumedgeError("range", `groups ${groups} must divide experts ${E}`);
  const topkGroups = checkInt("topkGroups", oo.topkGroups ?? groups, 1, groups);
  if (k > (topkGroups * E) / groups)
    throw new NumedgeError("range", `k ${k} must be <= topkGroups * experts / groups = ${(topkGroups * E) / groups}`);
  if (expertChoice && groups > 1) throw new NumedgeError("unsupported", "groups with expertChoice is not supported");
  const normalize = checkBool("normalize", oo.normalize, false);
  const routeScale = checkNumber("scale", oo.scale, { lo: -F32_MAX, hi: F32_MAX }, 1); // a float32 in the kernels
  let cf: number | undefined;
  if (oo.capacityFactor !== undefined) {
    cf = checkNumber("capacityFactor", oo.capacityFactor, { lo: 0 });
  }
  const conv = checkEnum("auxConvention", oo.auxConvention ?? "mixtral", ["mixtral", "normalized"] as const);
  const wantGrad = checkBool("grad", oo.grad, false);

  const be = c.be, z = Z.k as Float32Array, b = bias ? bias.k as Float32Array : null;
  const slots = expertChoice ? E : k;
  const capacity = expertChoice ? Math.min(T, Math.ceil(((cf ?? k) * T) / E)) : cf === undefined ? Infinity : Math.ceil((cf * T * k) / E);
  const experts = c.out("experts", "i32", T * slots), weights = c.out("weights", "f32", T * slots), order = c.out("order", "i32", T * slots);
  const counts = c.out("counts", "i32", E), offsets = c.out("offsets", "i32", E + 1), stats = c.out("stats", "f64", 3, true);
  // scratch: selections per expert before drops and probability sums (both accumulated: zeros), logsumexp per token,
  // d aux / d p
  const pre = c.out("pre", "i32", E, true), pSum = c.out("pSum", "f64", E, true), lse = c.out("lse", "f64", T), coef = c.out("coef", "f64", E);
  const I = (a: Arg) => a.k as Int32Array, D = (a: Arg) => a.k as Float64Array;
  if (!expertChoice) {
    be.routeTokens(z, { rows: T, experts: E, k, scoring, scale, bias: b, groups, topkGroups, normalize, routeScale,
      capacity: Number.isFinite(capacity) ? Math.min(capacity, T * k) : -1 },
    I(experts), weights.k as Float32Array, I(pre), D(pSum), D(lse), I(counts), I(offsets), I(order), D(stats));
  } else {
    be.routeExpertChoice(z, { rows: T, experts: E, scoring, scale, bias: b, capacity, normalize, routeScale },
      I(experts), weights.k as Float32Array, I(pre), D(pSum), D(lse), D(stats));
    be.routeDispatch(I(experts), weights.k as Float32Array, T * E, E, -1, I(counts), I(offsets), I(order), null);
  }
  // aux = E * sum_e f_e P_e with P_e = pSum_e / T, f_e = pre_e / T (mixtral) or pre_e / (T k) (normalized).
  be.routeLosses(I(pre), D(pSum), D(lse), T, E, conv === "mixtral" ? T : T * k, D(coef), D(stats));
  let auxGrad: Arg | undefined, zGrad: Arg | undefined;
  if (wantGrad) {
    auxGrad = c.out("auxGrad", "f32", T * E);
    zGrad = c.out("zGrad", "f32", T * E);
    be.routeGrad(z, T, E, scoring, scale, D(coef), D(lse), auxGrad.k as Float32Array, zGrad.k as Float32Array);
  }
  c.wrote(experts, weights, order, counts, offsets, stats, auxGrad, zGrad);
  c.drop(pre, pSum, lse, coef);
  if (c.device) {
    const r: RouteDeviceResult = { slots, experts: experts.da!, weights: weights.da!, counts: counts.da!, offsets: offsets.da!, order: order.da!, capacity, stats: stats.da! };
    if (auxGrad) { r.auxGrad = auxGrad.da!; r.zGrad = zGrad!.da!; }
    return r;
  }
  const st = D(stats);
  const res: RouteResult = {
    slots, experts: I(experts), weights: weights.k as Float32Array, counts: I(counts), offsets: I(offsets), order: I(order), capacity,
    dropped: st[0]!, auxLoss: st[1]!, zLoss: st[2]!,
  };
  if (auxGrad) { res.auxGrad = auxGrad.k as Float32Array; res.zGrad = zGrad!.k as Float32Array; }
  return res;
}

/**
 * Scatter expert outputs back to token order: out[t] = sum over t's kept assignments a of weights[a] *
 * expertOut[p], where p is a's row in dispatch order (order[p] = a, p < offsets[E]). expertOut is
 * [offsets[E], hidden]: expert e's rows are offsets[e] .. offsets[e+1]. Tokens with no kept assignment get 0.
 * Error: each output within 2 ulp * (sum of |terms|) of the f64 reference (f32 accumulation over <= slots terms).
 * @example const y = combine(expertOut, r, { hidden: 512 })
 */
export function combine(expertOut: Float32Array, r: RouteResult, o: { hidden: number }): Float32Array;
export function combine(expertOut: DeviceArray, r: RouteDeviceResult, o: { hidden: number }): DeviceArray;
export function combine(expertOut: Float32Array | DeviceArray, r: RouteResult | RouteDeviceResult, o: { hidden: number }): Float32Array | DeviceArray {
  const oo = readOptions(o, ["hidden"], "hidden");
  const rr = readRecord(r, ["order", "weights", "offsets", "slots"], "r must be the result of route()");
  const c = new OpCall();
  const X = typedArg(c, "expertOut", expertOut, "f32");
  const bad = () => new NumedgeError("dtype", "r must be the result of route()");
  const args = (["order", "weights", "offsets"] as const).map((k) => c.arg(`r.${k}`, rr[k]));
  const [order, weights, offsets] = args;
  if (!order || order.dtype !== "i32" || !weights || weights.dtype !== "f32" || !offsets || offsets.dtype !== "i32" || offsets.length === 0) throw bad();
  const hidden = checkInt("hidden", oo.hidden, 1);
  const slots = checkInt("r.slots", rr.slots, 1);
  const kept = elementAt(offsets, offsets.length - 1);
  if (order.length !== weights.length || order.length % slots !== 0 || !(kept >= 0 && kept <= order.length))
    throw new NumedgeError("shape", `r is inconsistent: order ${order.length}, weights ${weights.length}, slots ${slots}`);
  if (X.length !== kept * hidden)
    throw new NumedgeError("shape", `expertOut.length ${X.length} must be offsets[E] * hidden = ${kept} * ${hidden}`);
  const tokens = order.length / slots;
  const out = c.out("out", "f32", tokens * hidden, true); // combine adds into it
  const ord = checkIndices(order, order.length, (p, a) => `r.order[${p}] = ${a} is outside [0, ${order.length - 1}]`, kept);
  if (kept > 0) c.be.combine(X.k as Float32Array, ord.k as Int32Array, weights.k as Float32Array, slots, kept, hidden, out.k as Float32Array);
  c.wrote(out);
  return valueOf(out);
}

/**
 * Aux-loss-free balancing step (DeepSeek-V3), IN PLACE: bias[e] += rate * sign(mean(counts) - counts[e]).
 * Overloaded experts get a lower selection bias, idle ones a higher. Pass route(...).counts. Returns nothing.
 * @example updateBias(bias, route(logits, { experts: 64, k: 6, bias }).counts, 1e-3)
 */
export function updateBias(bias: Float32Array | DeviceArray, counts: Int32Array | DeviceArray, rate: number): void {
  const c = new OpCall();
  const B = typedArg(c, "bias", bias, "f32");
  const C = typedArg(c, "counts", counts, "i32");
  if (C.length !== B.length)
    throw new NumedgeError("shape", `counts.length ${C.length} must equal bias.length ${B.length}`);
  noOverlapArg(B, C);
  const r = checkNumber("rate", rate);
  c.be.updateBias(B.k as Float32Array, C.k as Int32Array, r);
  c.wrote(B);
}
