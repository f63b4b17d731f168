// One grokking training run (data + MLP + loss head + optimizer) stepped by the caller, and the paper's arms.
import { DeviceArray, hostCopy, recordOn } from "../device.ts";
import { NumedgeError, readOptions, readRecord, type FloatArray } from "../errors.ts";
import { empty, toDevice } from "../memory.ts";
import { crossEntropy } from "../ops/softmax.ts";
import { maxInto } from "../ops/track.ts";
import { modularData, type ModOp, type ModularData, type ModularSplit } from "./data.ts";
import { accuracy, l2norm, maxAbs, nlmCosine } from "./metrics.ts";
import { MLP } from "./mlp.ts";
import { AdamW, orthoGrad, zerosLike, type Optimizer, type Tensor } from "./optim.ts";
import { loadedBackend } from "../backends/index.ts";
import type { Captured } from "../backends/types.ts";

export interface GrokRunOptions {
  dtype?: "f32" | "f64";
  /**
   * Where a one-thread run lives: true (default) keeps the model, optimizer state, data and step statistics as
   * DeviceArrays on the current backend (or on the backend with this id), so unlogged steps read nothing back;
   * false uses host typed arrays.
   */
  device?: boolean | string;
  /** Host arrays only (device: false): where the model's arrays live. */
  alloc?: (n: number, dtype: "f32" | "f64") => FloatArray;
  /**
   * Device-resident runs on a backend that can record its work (cuda): the first unlogged step records forward,
   * loss and backward as a CUDA graph, and later unlogged steps replay it (one launch instead of ~17; the optimizer
   * still runs per step). The same bits as without. Default false. graphStatus says whether it is in use.
   */
  graph?: boolean;
}

/** Recorded steps are released with their run (a failure there has no one to report to: the memory stays held). */
const graphs = new FinalizationRegistry<Captured>((g) => { try { g.dispose(); } catch { /* a lost context */ } });

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

/** A split where the model lives (DeviceArrays when it is device-resident). */
interface Split {
  idx: Int32Array | DeviceArray;
  labels: Int32Array | DeviceArray;
  rows: number;
}


/**
 * One grokking training run: the seeded modular-arithmetic split, the MLP, and the arm's optimizer and loss head;
 * train() takes one full-batch step (measuring the train set when asked), testAccuracy() scores the held-out
 * pairs. By default everything stays on the current backend as DeviceArrays and only logged steps read back.
 * Large kernels split over the wasm worker pool (setThreads): the same bits on any thread count.
 * @example const run = new GrokRun({ ...GROK_ARMS.perp, p: 97, op: "add", frac: 0.4, hidden: [200, 200], seed: 0, lr: 0.01 });
 *          for (let t = 0; t < 200; t++) run.train(); console.log(run.testAccuracy())
 */
export class GrokRun {
  readonly data: ModularData;
  readonly model: MLP<Tensor>;
  readonly opt: Optimizer;
  /** Updates applied so far. */
  step = 0;
  private readonly train_: Split;
  private readonly test_: Split;
  /** dL/dlogits of the train batch, reused every step. */
  private readonly dz: Tensor;
  /** Running maxima over every train() call: [scFraction, max |logit|] (f64, on the model's backend). */
  private readonly track: Float64Array | DeviceArray;
  /** The recorded unlogged step (options.graph), "off", or why it could not be recorded. */
  private graph: Captured | string;
  private ranOnce = false;

  readonly config: GrokConfig;

  constructor(config: GrokConfig, o0: GrokRunOptions = {}) {
    // the config is read once, into a plain copy every step reads (scripts pass extra keys, e.g. steps: ignored)
    const c = readRecord(config, ["p", "op", "frac", "hidden", "seed", "lr", "beta1", "beta2", "eps", "weightDecay", "head", "precision", "ortho"],
      "config must be a GrokConfig object") as unknown as GrokConfig;
    if (Array.isArray(c.hidden)) c.hidden = [...c.hidden];
    this.config = c;
    const o = readOptions(o0, ["dtype", "device", "alloc", "graph"], "", "dtype") as GrokRunOptions;
    if (o.graph !== undefined && typeof o.graph !== "boolean") throw new NumedgeError("dtype", `graph must be a boolean, got ${JSON.stringify(o.graph)}`);
    this.data = modularData({ p: c.p, op: c.op, frac: c.frac, seed: c.seed });
    const device = o.device ?? true;
    this.model = new MLP<Tensor>({ inputs: 2 * c.p, hidden: c.hidden, outputs: c.p, seed: c.seed, dtype: o.dtype, alloc: o.alloc, device });
    const dtype = this.model.dtype, on = this.model.backend;
    if (on !== null && dtype === "f64" && c.precision === "f32")
      throw new NumedgeError("unsupported", "an f64 model with the f32 loss head needs device: false (the head rounds the logits to f32 on the host)");
    const put = (s: ModularSplit): Split => (on === null ? s : { idx: toDevice(s.idx, { backend: on }), labels: toDevice(s.labels, { backend: on }), rows: s.rows });
    this.train_ = put(this.data.train);
    this.test_ = put(this.data.test);
    this.track = on === null ? new Float64Array(2) : empty(2, "f64", { backend: on });
    const z = this.model.workspace(this.data.train.rows).acts.at(-1)!;
    this.model.workspace(this.data.test.rows);
    this.dz = zerosLike(z);
    const adam = new AdamW({ lr: c.lr, beta1: c.beta1, beta2: c.beta2, eps: c.eps, weightDecay: c.weightDecay },
      o.alloc ? (x) => o.alloc!(x.length, dtype) : undefined);
    this.opt = c.ortho ? orthoGrad(adam) : adam;
    this.graph = !o.graph ? "off" : on === null ? "no graph: the run is on host arrays (device: false)"
      : loadedBackend(on).capture ? "not recorded yet" : `no graph: backend ${on} cannot record its work`;
  }

  /** "in use" when unlogged steps replay a recorded graph (options.graph), else "off" or why not. */
  get graphStatus(): string {
    return typeof this.graph === "string" ? this.graph : "in use";
  }

  /**
   * One full-batch step on the train set: forward, loss, backward and, if `update`, the optimizer step. With `log`
   * (default) it returns the train-set measurements of the weights before the update, reading them back; without,
   * it reads nothing back and returns undefined. Running maxima over every call are in maxima().
   */
  train(update?: boolean, log?: true): StepStats;
  train(update: boolean, log: boolean): StepStats | undefined;
  train(update = true, log = true): StepStats | undefined {
    // recorded after one step has run as usual: first uses read back (a label check, say), which a graph cannot
    if (!log && this.graph === "not recorded yet" && this.ranOnce) this.record();
    if (!log && typeof this.graph !== "string") {
      this.graph.replay();
      return this.finish(undefined, update);
    }
    const s = this.forwardBackward(log);
    this.ranOnce = true;
    return this.finish(s, update);
  }

  /** Record forwardBackward(false) as a graph (not run: replay() runs it), or keep why that failed. */
  private record(): void {
    try {
      const g = recordOn(loadedBackend(this.model.backend!), () => void this.forwardBackward(false));
      this.graph = g;
      graphs.register(this, g);
    } catch (e) {
      this.graph = `no graph: recording failed (${e instanceof Error ? e.message : String(e)})`;
    }
  }

  /** Forward, loss (dL/dlogits into this.dz, running maxima) and backward into the model's grads; stats if log. */
  private forwardBackward(log: boolean): Omit<StepStats, "step" | "weightNorm" | "nlmCos"> | undefined {
    const { idx, labels, rows } = this.train_, p = this.config.p, m = this.model;
    const z = m.forward(idx, rows);
    const o = { cols: p, head: this.config.head, precision: this.config.precision, gradOut: this.dz as FloatArray };
    let s: Omit<StepStats, "step" | "weightNorm" | "nlmCos"> | undefined;
    if (z instanceof DeviceArray) {
      const ce = crossEntropy(z, labels as DeviceArray, o);
      maxInto(this.track as DeviceArray, 0, ce.stats, 1, 1, false);
      maxInto(this.track as DeviceArray, 1, z, 0, z.length, true);
      if (log) {
        const st = ce.stats.readSync(), zh = z.readSync() as FloatArray;
        s = { loss: st[0]!, trainAcc: accuracy(zh, this.data.train.labels, p), scFraction: st[1]!, zeroLossFraction: st[2]!, maxLogit: maxAbs(zh) };
      }
      ce.stats.dispose();
    } else {
      const ce = crossEntropy(z, labels as Int32Array, o);
      s = { loss: ce.loss, trainAcc: accuracy(z, this.data.train.labels, p), scFraction: ce.scFraction, zeroLossFraction: ce.zeroLossFraction, maxLogit: maxAbs(z) };
      this.trackHost(s);
    }
    m.backward(this.dz, idx);
    return s;
  }

  private trackHost(s: { scFraction: number; maxLogit: number }): void {
    const t = this.track as Float64Array;
    t[0] = Math.max(t[0]!, s.scFraction);
    t[1] = Math.max(t[1]!, s.maxLogit);
  }

  /** Largest Softmax Collapse share and largest |logit| over every train() call so far (reads them back). */
  maxima(): { scFraction: number; maxLogit: number } {
    const t = this.track instanceof DeviceArray ? this.track.readSync() : this.track;
    return { scFraction: t[0]!, maxLogit: t[1]! };
  }

  /** Add the weight norm and NLM cosines (of the current grads) to a step's train-set stats; then step if asked. */
  private finish(s: Omit<StepStats, "step" | "weightNorm" | "nlmCos"> | undefined, update: boolean): StepStats | undefined {
    const m = this.model;
    let stats: StepStats | undefined;
    if (s) {
      const w = m.params.map((t) => hostCopy<FloatArray>(t)), g = m.grads.map((t) => hostCopy<FloatArray>(t));
      stats = { step: this.step, ...s, weightNorm: l2norm(w), nlmCos: w.map((x, l) => nlmCosine(x, g[l]!)) };
    }
    if (update) {
      this.opt.step(m.params, m.grads);
      this.step++;
    }
    return stats;
  }

  /** Accuracy of the current weights on the held-out pairs. */
  testAccuracy(): number {
    const { idx, rows } = this.test_;
    return accuracy(hostCopy<FloatArray>(this.model.forward(idx, rows)), this.data.test.labels, this.config.p);
  }
}
