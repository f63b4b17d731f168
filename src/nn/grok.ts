// One grokking training run (data + MLP + loss head + optimizer) stepped by the caller, and the paper's arms.
import type { FloatArray } from "../errors.ts";
import { crossEntropy } from "../ops/softmax.ts";
import { modularData, type ModOp, type ModularData } from "./data.ts";
import { accuracy, l2norm, maxAbs, nlmCosine } from "./metrics.ts";
import { MLP } from "./mlp.ts";
import { AdamW, orthoGrad, type Optimizer } from "./optim.ts";

export interface GrokConfig {
  p: number;
  op: ModOp;
  /** Train share of the p^2 pairs. */
  frac: number;
  hidden: number[];
  seed: number;
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** Loss head and its arithmetic: softmax in f32 collapses; StableMax in f64 does not. */
  head: "softmax" | "stablemax";
  precision: "f32" | "f64";
  /** Wrap AdamW in ⊥Grad. */
  ortho: boolean;
}

export type ArmName = "baseline" | "perp" | "stablemax";

/**
 * The paper's three arms as optimizer/loss settings (its public code): AdamW + f32 softmax CE with betas
 * (0.9, 0.99), eps 1e-25; ⊥AdamW with PyTorch's default betas (0.9, 0.999), eps 1e-8; AdamW + StableMax CE
 * in f64 with beta2 0.999, eps 1e-25. No weight decay in any.
 * @example const run = new GrokRun({ ...GROK_ARMS.stablemax, p: 47, op: "add", frac: 0.6, hidden: [128, 128], seed: 0, lr: 0.01 })
 */
export const GROK_ARMS: Record<ArmName, Pick<GrokConfig, "head" | "precision" | "ortho" | "beta1" | "beta2" | "eps" | "weightDecay">> = {
  baseline: { head: "softmax", precision: "f32", ortho: false, beta1: 0.9, beta2: 0.99, eps: 1e-25, weightDecay: 0 },
  perp: { head: "softmax", precision: "f32", ortho: true, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 },
  stablemax: { head: "stablemax", precision: "f64", ortho: false, beta1: 0.9, beta2: 0.999, eps: 1e-25, weightDecay: 0 },
};

/** Train-set measurements of the weights at `step` (before that step's update). */
export interface StepStats {
  step: number;
  loss: number;
  trainAcc: number;
  /** Share of train rows in Softmax Collapse (sum_k exp(z_k - max z) == 1 in the head's precision). */
  scFraction: number;
  zeroLossFraction: number;
  maxLogit: number;
  weightNorm: number;
  /** cos(-grad, W) per layer, on the raw gradient. */
  nlmCos: number[];
}

/**
 * One grokking training run: the seeded modular-arithmetic split, the MLP, and the arm's optimizer and loss head;
 * train() measures the train set and takes one full-batch step, testAccuracy() scores the held-out pairs.
 * @example const run = new GrokRun({ ...GROK_ARMS.perp, p: 97, op: "add", frac: 0.4, hidden: [200, 200], seed: 0, lr: 0.01 });
 *          for (let t = 0; t < 200; t++) run.train(); console.log(run.testAccuracy())
 */
export class GrokRun {
  readonly data: ModularData;
  readonly model: MLP;
  readonly opt: Optimizer;
  /** Updates applied so far. */
  step = 0;

  constructor(readonly config: GrokConfig, o: { dtype?: "f32" | "f64"; alloc?: (n: number, dtype: "f32" | "f64") => FloatArray } = {}) {
    const c = config;
    this.data = modularData({ p: c.p, op: c.op, frac: c.frac, seed: c.seed });
    this.model = new MLP({ inputs: 2 * c.p, hidden: c.hidden, outputs: c.p, seed: c.seed, dtype: o.dtype, alloc: o.alloc });
    this.model.workspace(this.data.train.rows);
    this.model.workspace(this.data.test.rows);
    const dtype = this.model.dtype;
    const adam = new AdamW({ lr: c.lr, beta1: c.beta1, beta2: c.beta2, eps: c.eps, weightDecay: c.weightDecay },
      o.alloc ? (x) => o.alloc!(x.length, dtype) : undefined);
    this.opt = c.ortho ? orthoGrad(adam) : adam;
  }

  /** Measure the current weights on the train set and, if `update`, take one full-batch optimizer step. */
  train(update = true): StepStats {
    const { train } = this.data, p = this.config.p, m = this.model;
    const z = m.forward(train.idx, train.rows);
    const ce = crossEntropy(z, train.labels, { cols: p, head: this.config.head, precision: this.config.precision });
    m.backward(ce.grad!, train.idx);
    const stats: StepStats = {
      step: this.step,
      loss: ce.loss,
      trainAcc: accuracy(z, train.labels, p),
      scFraction: ce.scFraction,
      zeroLossFraction: ce.zeroLossFraction,
      maxLogit: maxAbs(z),
      weightNorm: l2norm(m.params),
      nlmCos: m.params.map((w, l) => nlmCosine(w, m.grads[l]!)),
    };
    if (update) {
      this.opt.step(m.params, m.grads);
      this.step++;
    }
    return stats;
  }

  /** Accuracy of the current weights on the held-out pairs. */
  testAccuracy(): number {
    const { test } = this.data;
    return accuracy(this.model.forward(test.idx, test.rows), test.labels, this.config.p);
  }
}
