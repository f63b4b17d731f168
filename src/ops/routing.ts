// Top-k and mixture-of-experts routing: argument checks, shapes, and dispatch to the backend kernels.
// Ranking rule everywhere (topk, route selection, group selection, expert choice): larger first; NaN ranks
// above everything (above +Infinity); equal values (NaN with NaN, -0 with +0) go lower index first (tf.topk).
import { getBackend } from "../backends/index.ts";
import type { Scoring } from "../backends/api/routing.ts";
import {
  F32_MAX, NumedgeError, checkBool, checkEnum, checkFloat32, checkInt, checkNumber, checkOptions, noOverlap, rowsOf, scaleOf, show,
} from "../errors.ts";

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
 * Kernel: SIMD threshold scan with a sorted buffer for k <= 32, buffered partial quickselect above.
 * @example const { values, indices } = topk(logits, { cols: 32000, k: 50 })
 * @example topk(x, { cols: 256, k: 8, out: { values: alloc(rows * 8), indices: alloc(rows * 8, "i32") } }) // no allocation
 */
export function topk(x: Float32Array, o: TopkOptions): TopkResult {
  checkFloat32("x", x);
  const oo = checkOptions(o, "cols, k");
  const cols = checkInt("cols", oo.cols, 1);
  const rows = rowsOf("x", x, cols);
  const k = checkInt("k", oo.k, 0, cols);
  const sorted = checkBool("sorted", oo.sorted, true);
  let values: Float32Array, indices: Int32Array;
  if (oo.out === undefined) {
    values = new Float32Array(rows * k);
    indices = new Int32Array(rows * k);
  } else {
    const out = oo.out as { values?: unknown; indices?: unknown };
    if (out === null || typeof out !== "object") throw new NumedgeError("dtype", "out must be { values, indices }");
    checkFloat32("out.values", out.values);
    if (!(out.indices instanceof Int32Array)) throw new NumedgeError("dtype", `out.indices must be an Int32Array, got ${show(out.indices)}`);
    values = out.values;
    indices = out.indices;
    for (const [name, a] of [["out.values", values], ["out.indices", indices]] as const) {
      if (a.length !== rows * k) throw new NumedgeError("shape", `${name}.length ${a.length} must be rows * k = ${rows * k}`);
      noOverlap(name, a, "x", x);
    }
    noOverlap("out.values", values, "out.indices", indices);
  }
  if (k > 0 && rows > 0) getBackend().topk(x, values, indices, rows, cols, k, sorted);
  return { values, indices };
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
 * Error: weights within 2e-6 relative of the f64 reference; auxLoss/zLoss within 1e-6 relative; gradients
 * within 1e-5 of max |grad| (the aux gradient cancels in coef_e - <coef, p> near balance).
 * @example const r = route(logits, { experts: 8, k: 2, normalize: true }) // Mixtral
 * @example const r = route(logits, { experts: 256, k: 8, scoring: "sigmoid", bias, groups: 8, topkGroups: 4, normalize: true, scale: 2.5 }) // DeepSeek-V3
 */
export function route(logits: Float32Array, o: RouteOptions): RouteResult {
  checkFloat32("logits", logits);
  const oo = checkOptions(o, "experts, k");
  const E = checkInt("experts", oo.experts, 1, 1 << 24);
  const T = rowsOf("logits", logits, E, "experts");
  if (T === 0) throw new NumedgeError("shape", "logits is empty (no tokens to route)");
  const expertChoice = checkBool("expertChoice", oo.expertChoice, false);
  const k = checkInt("k", oo.k, 1, E);
  const scoring = checkEnum("scoring", oo.scoring ?? "softmax", SCORINGS);
  const scale = scaleOf(oo.temperature, true); // the kernels take 1/T as float32
  let bias: Float32Array | null = null;
  if (oo.bias !== undefined) {
    checkFloat32("bias", oo.bias);
    bias = oo.bias;
    if (bias.length !== E) throw new NumedgeError("shape", `bias.length ${bias.length} must equal experts ${E}`);
    for (let e = 0; e < E; e++)
      if (!Number.isFinite(bias[e]!)) throw new NumedgeError("nonfinite", `bias[${e}] = ${bias[e]} is not finite`);
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

  const be = getBackend();
  const pSum = new Float64Array(E), lse = new Float64Array(T), pre = new Int32Array(E);
  const counts = new Int32Array(E), offsets = new Int32Array(E + 1);
  let slots: number, experts: Int32Array, weights: Float32Array, order: Int32Array, capacity: number, dropped: number;
  if (!expertChoice) {
    slots = k;
    experts = new Int32Array(T * k);
    weights = new Float32Array(T * k);
    capacity = cf === undefined ? Infinity : Math.ceil((cf * T * k) / E);
    order = new Int32Array(T * k);
    dropped = be.routeTokens(logits, { rows: T, experts: E, k, scoring, scale, bias, groups, topkGroups, normalize, routeScale,
      capacity: Number.isFinite(capacity) ? Math.min(capacity, T * k) : -1 }, experts, weights, pre, pSum, lse, counts, offsets, order);
  } else {
    slots = E;
    capacity = Math.min(T, Math.ceil(((cf ?? k) * T) / E));
    const scores = new Float32Array(T * E);
    be.routeScores(logits, T, E, scoring, scale, scores, pSum, lse);
    // Each expert ranks the tokens by (score + bias): a top-k over the transposed [E, T] matrix.
    const byExpert = new Float32Array(E * T);
    for (let t = 0; t < T; t++) for (let e = 0; e < E; e++) byExpert[e * T + t] = scores[t * E + e]! + (bias ? bias[e]! : 0);
    const chosen = { values: new Float32Array(E * capacity), indices: new Int32Array(E * capacity) };
    if (capacity > 0) be.topk(byExpert, chosen.values, chosen.indices, E, T, capacity, true);
    experts = new Int32Array(T * E).fill(-1);
    weights = new Float32Array(T * E);
    for (let e = 0; e < E; e++) {
      pre[e] = capacity;
      for (let j = 0; j < capacity; j++) {
        const t = chosen.indices[e * capacity + j]!;
        experts[t * E + e] = e;
        weights[t * E + e] = scores[t * E + e]!;
      }
    }
    dropped = 0; // expert choice reports the tokens no expert picked
    for (let t = 0; t < T; t++) {
      let sum = 0, n = 0;
      for (let e = 0; e < E; e++) if (experts[t * E + e]! >= 0) { sum += weights[t * E + e]!; n++; }
      if (n === 0) dropped++;
      const c = normalize && sum > 0 ? routeScale / sum : routeScale;
      for (let e = 0; e < E; e++) weights[t * E + e] = weights[t * E + e]! * c;
    }
    order = new Int32Array(T * E);
    be.routeDispatch(experts, weights, T * E, E, -1, counts, offsets, order);
  }

  // aux = E * sum_e f_e P_e with P_e = pSum_e / T, f_e = pre_e / T (mixtral) or pre_e / (T k) (normalized).
  const fDen = conv === "mixtral" ? T : T * k;
  const coef = new Float64Array(E); // d aux / d p[t,e] = E * f_e / T
  let auxLoss = 0, zLoss = 0;
  for (let e = 0; e < E; e++) {
    const f = pre[e]! / fDen;
    auxLoss += f * (pSum[e]! / T);
    coef[e] = (E * f) / T;
  }
  auxLoss *= E;
  for (let t = 0; t < T; t++) zLoss += lse[t]! * lse[t]!;
  zLoss /= T;
  const res: RouteResult = {
    slots, experts, weights, counts, offsets, order, capacity,
    dropped, auxLoss, zLoss,
  };
  if (wantGrad) {
    res.auxGrad = new Float32Array(T * E);
    res.zGrad = new Float32Array(T * E);
    be.routeGrad(logits, T, E, scoring, scale, coef, lse, res.auxGrad, res.zGrad);
  }
  return res;
}

/**
 * Scatter expert outputs back to token order: out[t] = sum over t's kept assignments a of weights[a] *
 * expertOut[p], where p is a's row in dispatch order (order[p] = a, p < offsets[E]). expertOut is
 * [offsets[E], hidden]: expert e's rows are offsets[e] .. offsets[e+1]. Tokens with no kept assignment get 0.
 * Error: each output within 2 ulp * (sum of |terms|) of the f64 reference (f32 accumulation over <= slots terms).
 * @example const y = combine(expertOut, r, { hidden: 512 })
 */
export function combine(expertOut: Float32Array, r: RouteResult, o: { hidden: number }): Float32Array {
  checkFloat32("expertOut", expertOut);
  if (r === null || typeof r !== "object" || !(r.order instanceof Int32Array) || !(r.weights instanceof Float32Array)
    || !(r.offsets instanceof Int32Array))
    throw new NumedgeError("dtype", "r must be the result of route()");
  const hidden = checkInt("hidden", checkOptions(o, "hidden").hidden, 1);
  const slots = checkInt("r.slots", r.slots, 1);
  const kept = r.offsets[r.offsets.length - 1]!;
  if (r.order.length !== r.weights.length || r.order.length % slots !== 0 || kept > r.order.length)
    throw new NumedgeError("shape", `r is inconsistent: order ${r.order.length}, weights ${r.weights.length}, slots ${slots}`);
  if (expertOut.length !== kept * hidden)
    throw new NumedgeError("shape", `expertOut.length ${expertOut.length} must be offsets[E] * hidden = ${kept} * ${hidden}`);
  const tokens = r.order.length / slots;
  const out = new Float32Array(tokens * hidden);
  for (let p = 0; p < kept; p++) {
    const a = r.order[p]!;
    if (!(a >= 0 && a < r.order.length)) throw new NumedgeError("range", `r.order[${p}] = ${a} is outside [0, ${r.order.length - 1}]`);
  }
  if (kept > 0) getBackend().combine(expertOut, r.order, r.weights, slots, kept, hidden, out);
  return out;
}

/**
 * Aux-loss-free balancing step (DeepSeek-V3), IN PLACE: bias[e] += rate * sign(mean(counts) - counts[e]).
 * Overloaded experts get a lower selection bias, idle ones a higher. Pass route(...).counts. Returns nothing.
 * @example updateBias(bias, route(logits, { experts: 64, k: 6, bias }).counts, 1e-3)
 */
export function updateBias(bias: Float32Array, counts: Int32Array, rate: number): void {
  checkFloat32("bias", bias);
  if (!(counts instanceof Int32Array)) throw new NumedgeError("dtype", `counts must be an Int32Array, got ${show(counts)}`);
  if (counts.length !== bias.length)
    throw new NumedgeError("shape", `counts.length ${counts.length} must equal bias.length ${bias.length}`);
  const r = checkNumber("rate", rate);
  let sum = 0;
  for (let e = 0; e < counts.length; e++) sum += counts[e]!;
  const mean = sum / counts.length;
  for (let e = 0; e < bias.length; e++) bias[e] = bias[e]! + r * Math.sign(mean - counts[e]!);
}
