// Routing kernels: top-k selection and the mixture-of-experts router, the interface every backend implements.
// Arguments are already checked by src/ops/routing.ts (shapes, ranges, k <= cols, bias finite...).
// Kernels write only their outputs (and the arrays documented as in/out); they never allocate results.

export type Scoring = "softmax" | "sigmoid" | "stablemax" | "activation";
/** The scoring's number in the kernels (asm and CUDA). */
export const SCORING_MODE: Record<Scoring, number> = { softmax: 0, sigmoid: 1, stablemax: 2, activation: 3 };

/**
 * Ranking rule shared by every backend: a ranks before b when a > b, or when a is NaN and b is not, or when
 * they compare equal (NaN with NaN, -0 with +0 included) and a has the lower index.
 */
export interface RoutingKernels {
  /** Top-k of each row: values/indices are [rows*k]; sorted = descending rank, else ascending index. */
  topk(x: Float32Array, values: Float32Array, indices: Int32Array, rows: number, cols: number, k: number, sorted: boolean): void;

  /**
   * Scoring pass. scores (if not null) receives the unbiased scores [rows*E]; pSum[e] += sum over rows of the
   * routing probability p[t,e] (scores normalized per token); lse[t] = logsumexp of the raw logits row.
   */
  routeScores(logits: Float32Array, rows: number, experts: number, scoring: Scoring, scale: number,
    scores: Float32Array | null, pSum: Float64Array, lse: Float64Array): void;

  /**
   * Token-choice routing, fused: scoring, selection of the top k of (score + bias) (group-limited when
   * groups > 1: group score = sum of its top-2 of score + bias with a bias, its max without), weights from the unbiased scores (normalized, scaled), per-expert counts of the selection
   * (before any capacity drop), pSum and lse as in routeScores, then the dispatch of routeDispatch with
   * p.capacity. experts/weights are [rows*k], slots in rank order. stats[0] receives the dropped count.
   */
  routeTokens(logits: Float32Array, p: TokenChoiceParams, experts: Int32Array, weights: Float32Array,
    preCounts: Int32Array, pSum: Float64Array, lse: Float64Array, counts: Int32Array, offsets: Int32Array,
    order: Int32Array, stats: Float64Array): void;

  /**
   * Expert-choice selection: scoring (scores, pSum, lse as in routeScores), then each expert takes the top
   * p.capacity tokens by score + bias (ties: lower token first): experts[t*E + e] = e and weights[t*E + e] =
   * its score for the chosen pairs, -1 and 0 elsewhere; each token's weights normalized (when p.normalize and
   * their sum > 0) and scaled; preCounts[e] += capacity. stats[0] receives the number of tokens no expert took.
   */
  routeExpertChoice(logits: Float32Array, p: ExpertChoiceParams, experts: Int32Array, weights: Float32Array,
    preCounts: Int32Array, pSum: Float64Array, lse: Float64Array, stats: Float64Array): void;

  /**
   * Load-balancing and z losses from the selection counts (before drops) and the scoring pass: with
   * f_e = preCounts[e] / fDen and P_e = pSum[e] / rows, stats[1] = E * sum_e f_e P_e, coef[e] = E f_e / rows
   * (d aux / d p[t,e]), stats[2] = mean over rows of lse^2. Sums in f64, in index order.
   */
  routeLosses(preCounts: Int32Array, pSum: Float64Array, lse: Float64Array, rows: number, experts: number, fDen: number,
    coef: Float64Array, stats: Float64Array): void;

  /** bias[e] += rate * sign(mean(counts) - counts[e]), in place (the mean in f64, the update rounded to f32). */
  updateBias(bias: Float32Array, counts: Int32Array, rate: number): void;

  /**
   * Dispatch of n = rows*slots assignments (experts[a] in [0, numExperts), or negative: none): walking a in increasing order, an
   * assignment whose expert already holds `capacity` (>= 0) is dropped (experts[a] = -1, weights[a] = 0,
   * in place). counts = kept per expert, offsets = exclusive cumsum (E+1), order = kept assignments stably
   * sorted by expert, then dropped ones in increasing order, then unused (-1 slots). stats[0] (when given)
   * receives the dropped count.
   */
  routeDispatch(experts: Int32Array, weights: Float32Array, n: number, numExperts: number, capacity: number,
    counts: Int32Array, offsets: Int32Array, order: Int32Array, stats: Float64Array | null): void;

  /**
   * Gradients w.r.t. logits. auxGrad[t,e] = d/dz[t,e] of sum_{t,e} coef[e] * p[t,e] (p = routing probabilities);
   * zGrad[t,e] = 2 * lse[t] * softmax(z[t])[e] / rows. Either output may be null.
   */
  routeGrad(logits: Float32Array, rows: number, experts: number, scoring: Scoring, scale: number,
    coef: Float64Array, lse: Float64Array, auxGrad: Float32Array | null, zGrad: Float32Array | null): void;

  /**
   * out[a / slots] += weights[a] * expertOut[p] for p < kept, a = order[p] (out is zero on entry, [tokens*hidden]).
   */
  combine(expertOut: Float32Array, order: Int32Array, weights: Float32Array, slots: number, kept: number,
    hidden: number, out: Float32Array): void;
}

export interface TokenChoiceParams {
  rows: number;
  experts: number;
  k: number;
  scoring: Scoring;
  /** 1 / temperature. */
  scale: number;
  bias: Float32Array | null;
  /** 1 = no group limit. */
  groups: number;
  topkGroups: number;
  normalize: boolean;
  routeScale: number;
  /** Assignments per expert before drops; -1 = dropless. */
  capacity: number;
}

export interface ExpertChoiceParams {
  rows: number;
  experts: number;
  scoring: Scoring;
  /** 1 / temperature. */
  scale: number;
  bias: Float32Array | null;
  /** Tokens per expert, <= rows. */
  capacity: number;
  normalize: boolean;
  routeScale: number;
}
