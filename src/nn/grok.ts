// One grokking training run (data + MLP + loss head + optimizer) stepped by the caller, and the paper's arms.
import { Worker } from "node:worker_threads";
import { backendInfo } from "../backends/index.ts";
import { DeviceArray, hostCopy } from "../device.ts";
import { NumedgeError, readOptions, readRecord, type FloatArray } from "../errors.ts";
import { empty, toDevice } from "../memory.ts";
import { crossEntropy } from "../ops/softmax.ts";
import { maxInto } from "../ops/track.ts";
import { modularData, type ModOp, type ModularData, type ModularSplit } from "./data.ts";
import { accuracy, l2norm, maxAbs, nlmCosine } from "./metrics.ts";
import { MLP } from "./mlp.ts";
import { AdamW, orthoGrad, zerosLike, type Optimizer, type Tensor } from "./optim.ts";
import {
  CMD, DONE, ERR, ERR_BYTES, HITS, KIND, LOSS_SUM, MAX_LOGIT, QUIT, SC_ROWS, STATS, TEST, TRAIN, ZERO_ROWS,
  floats, half, pack, shardHits, shardOf, shardTrain, type GrokWorkerData,
} from "./grok-worker.ts";

export interface GrokRunOptions {
  dtype?: "f32" | "f64";
  /**
   * Where a one-thread run lives: true (default) keeps the model, optimizer state, data and step statistics as
   * DeviceArrays on the current backend (or on the backend with this id), so unlogged steps read nothing back;
   * false uses host typed arrays.
   */
  device?: boolean | string;
  /** Host arrays only (device: false or threads: 2): where the model's arrays live. */
  alloc?: (n: number, dtype: "f32" | "f64") => FloatArray;
  /**
   * 2: data-parallel over two threads. A worker thread (its own replica and WASM instance) takes the second half
   * of the train (and test) rows; gradients and statistics are combined weighted by rows, in a fixed order, so a
   * run is deterministic for a given thread count (it differs from threads 1 by f32 rounding only). Needs the
   * wasm or reference backend; call close() when done. Default 1: everything on the calling thread.
   */
  threads?: 1 | 2;
}

/** The main thread's side of threads: 2 (see grok-worker.ts for the protocol). */
interface Parallel {
  worker: Worker;
  ctrl: Int32Array;
  weights: FloatArray;
  grads: FloatArray;
  stats: Float64Array;
  own: Float64Array;
  err: SharedArrayBuffer;
  /** [this thread's shard (the first half), all rows of the split] */
  train: [ModularSplit, number];
  test: [ModularSplit, number];
  seq: number;
}

const WAIT_MS = 120_000;

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
 * With `{ threads: 2 }` a worker thread computes half of every step (call close() when done).
 * @example const run = new GrokRun({ ...GROK_ARMS.perp, p: 97, op: "add", frac: 0.4, hidden: [200, 200], seed: 0, lr: 0.01 });
 *          for (let t = 0; t < 200; t++) run.train(); console.log(run.testAccuracy())
 */
export class GrokRun {
  readonly data: ModularData;
  readonly model: MLP<Tensor>;
  readonly opt: Optimizer;
  /** Updates applied so far. */
  step = 0;
  readonly threads: 1 | 2;
  private par: Parallel | null = null;
  private closed = false;
  private readonly train_: Split;
  private readonly test_: Split;
  /** dL/dlogits of the train batch, reused every step. */
  private readonly dz: Tensor | null = null;
  /** Running maxima over every train() call: [scFraction, max |logit|] (f64, on the model's backend). */
  private readonly track: Float64Array | DeviceArray;

  readonly config: GrokConfig;

  constructor(config: GrokConfig, o0: GrokRunOptions = {}) {
    // the config is read once, into a plain copy every step reads (scripts pass extra keys, e.g. steps: ignored)
    const c = readRecord(config, ["p", "op", "frac", "hidden", "seed", "lr", "beta1", "beta2", "eps", "weightDecay", "head", "precision", "ortho"],
      "config must be a GrokConfig object") as unknown as GrokConfig;
    if (Array.isArray(c.hidden)) c.hidden = [...c.hidden];
    this.config = c;
    const o = readOptions(o0, ["dtype", "device", "alloc", "threads"], "", "dtype") as GrokRunOptions;
    const threads = o.threads ?? 1;
    if (threads !== 1 && threads !== 2) throw new NumedgeError("range", `threads must be 1 or 2, got ${JSON.stringify(o.threads)}`);
    this.threads = threads;
    this.data = modularData({ p: c.p, op: c.op, frac: c.frac, seed: c.seed });
    const device = threads === 1 ? (o.device ?? true) : false;
    if (threads === 2 && o.device) throw new NumedgeError("unsupported", "threads: 2 runs on host arrays; drop device or use threads: 1");
    this.model = new MLP<Tensor>({ inputs: 2 * c.p, hidden: c.hidden, outputs: c.p, seed: c.seed, dtype: o.dtype, alloc: o.alloc, device });
    const dtype = this.model.dtype, on = this.model.backend;
    if (on !== null && dtype === "f64" && c.precision === "f32")
      throw new NumedgeError("unsupported", "an f64 model with the f32 loss head needs device: false (the head rounds the logits to f32 on the host)");
    const put = (s: ModularSplit): Split => (on === null ? s : { idx: toDevice(s.idx, { backend: on }), labels: toDevice(s.labels, { backend: on }), rows: s.rows });
    this.train_ = put(this.data.train);
    this.test_ = put(this.data.test);
    this.track = on === null ? new Float64Array(2) : empty(2, "f64", { backend: on });
    if (threads === 1) {
      const z = this.model.workspace(this.data.train.rows).acts.at(-1)!;
      this.model.workspace(this.data.test.rows);
      this.dz = zerosLike(z);
    } else this.par = this.spawn(dtype);
    const adam = new AdamW({ lr: c.lr, beta1: c.beta1, beta2: c.beta2, eps: c.eps, weightDecay: c.weightDecay },
      o.alloc ? (x) => o.alloc!(x.length, dtype) : undefined);
    this.opt = c.ortho ? orthoGrad(adam) : adam;
  }

  private spawn(dtype: "f32" | "f64"): Parallel {
    const backend = backendInfo().name;
    if (backend !== "wasm" && backend !== "reference")
      throw new NumedgeError("unsupported", `threads: 2 needs the wasm or reference backend, got ${JSON.stringify(backend)}`);
    const { train, test } = this.data;
    const n = this.model.params.reduce((a, w) => a + w.length, 0), bytes = dtype === "f64" ? 8 : 4;
    const d: GrokWorkerData = {
      numedgeGrok: true, config: { ...this.config, hidden: [...this.config.hidden] }, dtype, backend,
      ctrl: new SharedArrayBuffer(16), weights: new SharedArrayBuffer(n * bytes), grads: new SharedArrayBuffer(n * bytes),
      stats: new SharedArrayBuffer(8 * STATS), err: new SharedArrayBuffer(ERR_BYTES),
    };
    // The worker file next to this one, with this module's own extension (.ts under Bun, .js in dist/ under Node).
    const ext = import.meta.url.endsWith(".ts") ? ".ts" : ".js";
    const worker = new Worker(new URL(`./grok-worker${ext}`, import.meta.url), { workerData: d });
    worker.unref(); // a forgotten close() must not keep the process alive
    const tr = half(train.rows), te = half(test.rows);
    const par: Parallel = {
      worker, ctrl: new Int32Array(d.ctrl), weights: floats(d.weights, dtype), grads: floats(d.grads, dtype), stats: new Float64Array(d.stats),
      own: new Float64Array(STATS), err: d.err, train: [shardOf(train, 0, tr), train.rows], test: [shardOf(test, 0, te), test.rows], seq: 0,
    };
    this.model.workspace(tr);
    this.model.workspace(te);
    return par;
  }

  /** Broadcast the weights and start `kind` on the worker. */
  private send(par: Parallel, kind: number): void {
    if (this.closed) throw new NumedgeError("unsupported", "GrokRun was closed");
    pack(this.model.params as FloatArray[], par.weights); // threads: 2 runs on host arrays
    Atomics.store(par.ctrl, KIND, kind);
    par.seq = Atomics.add(par.ctrl, CMD, 1) + 1;
    Atomics.notify(par.ctrl, CMD);
  }

  /** Block until the worker finished the last command (or failed, or timed out). */
  private join(par: Parallel): void {
    const t0 = Date.now();
    for (;;) {
      const done = Atomics.load(par.ctrl, DONE);
      if (Atomics.load(par.ctrl, ERR)) {
        const len = new Int32Array(par.err, 0, 1)[0]!;
        const msg = new TextDecoder().decode(new Uint8Array(par.err, 4, len).slice());
        this.close();
        throw new NumedgeError("backend", `GrokRun worker failed: ${msg}`);
      }
      if (done === par.seq) return;
      const left = WAIT_MS - (Date.now() - t0);
      if (left <= 0 || Atomics.wait(par.ctrl, DONE, done, left) === "timed-out") {
        this.close();
        throw new NumedgeError("backend", `GrokRun worker did not answer within ${WAIT_MS / 1000} s`);
      }
    }
  }

  /** Stop the worker thread (threads: 2); a no-op otherwise and when already closed. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const par = this.par;
    if (!par) return;
    Atomics.store(par.ctrl, KIND, QUIT);
    Atomics.add(par.ctrl, CMD, 1);
    Atomics.notify(par.ctrl, CMD);
    void par.worker.terminate();
  }

  /**
   * One full-batch step on the train set: forward, loss, backward and, if `update`, the optimizer step. With `log`
   * (default) it returns the train-set measurements of the weights before the update, reading them back; without,
   * it reads nothing back and returns undefined. Running maxima over every call are in maxima().
   */
  train(update?: boolean, log?: true): StepStats;
  train(update: boolean, log: boolean): StepStats | undefined;
  train(update = true, log = true): StepStats | undefined {
    if (this.par) return this.trainParallel(this.par, update);
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
    m.backward(this.dz!, idx);
    return this.finish(s, update);
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

  /** train() with threads 2: each thread one half of the rows; the main thread combines, then steps. */
  private trainParallel(par: Parallel, update: boolean): StepStats {
    const m = this.model, [shard, rows] = par.train, own = par.own, their = par.stats;
    this.send(par, TRAIN);
    shardTrain(m as MLP, shard, this.config, own);
    this.join(par);
    const n0 = shard.rows, a = n0 / rows, b = (rows - n0) / rows;
    for (let l = 0, o = 0; l < m.layers; l++) {
      const g = m.grads[l] as FloatArray;
      for (let i = 0; i < g.length; i++, o++) g[i] = g[i]! * a + par.grads[o]! * b;
    }
    const s = {
      loss: (own[LOSS_SUM]! + their[LOSS_SUM]!) / rows,
      trainAcc: (own[HITS]! + their[HITS]!) / rows,
      scFraction: (own[SC_ROWS]! + their[SC_ROWS]!) / rows,
      zeroLossFraction: (own[ZERO_ROWS]! + their[ZERO_ROWS]!) / rows,
      maxLogit: Math.max(own[MAX_LOGIT]!, their[MAX_LOGIT]!),
    };
    this.trackHost(s);
    return this.finish(s, update)!;
  }

  /** Accuracy of the current weights on the held-out pairs. */
  testAccuracy(): number {
    const par = this.par;
    if (par) {
      const [shard, rows] = par.test;
      this.send(par, TEST);
      const hits = shardHits(this.model as MLP, shard, this.config.p);
      this.join(par);
      return (hits + par.stats[HITS]!) / rows;
    }
    const { idx, rows } = this.test_;
    return accuracy(hostCopy<FloatArray>(this.model.forward(idx, rows)), this.data.test.labels, this.config.p);
  }
}
