// Data-parallel GrokRun (threads: 2): the shard computation both threads run, the shared-memory protocol, and
// the worker's entry. The main thread does the first half of the train rows, this worker the second half, on
// its own replica (same config -> same split) and its own WASM instance. Each step the main thread copies the
// weights into shared memory and bumps CMD; the worker copies them in, runs forward + crossEntropy + backward
// on its rows, writes its gradients and row counts back and sets DONE = CMD. Atomics order the plain writes.
import { isMainThread, workerData } from "node:worker_threads";
import type { FloatArray } from "../errors.ts";
import { crossEntropy } from "../ops/softmax.ts";
import { setBackend } from "../backends/index.ts";
import { modularData, type ModularSplit } from "./data.ts";
import { accuracy, maxAbs } from "./metrics.ts";
import { MLP } from "./mlp.ts";
import type { GrokConfig } from "./grok.ts";

/** ctrl (Int32Array) slots. */
export const CMD = 0, KIND = 1, DONE = 2, ERR = 3;
/** Commands. */
export const TRAIN = 1, TEST = 2, QUIT = 3;
/** stats (Float64Array) slots: a shard's loss sum and row counts, so the main thread can weight by rows. */
export const LOSS_SUM = 0, HITS = 1, SC_ROWS = 2, ZERO_ROWS = 3, MAX_LOGIT = 4, STATS = 5;
/** Bytes for the worker's error message. */
export const ERR_BYTES = 2048;

export interface GrokWorkerData {
  numedgeGrok: true;
  config: GrokConfig;
  dtype: "f32" | "f64";
  backend: "wasm" | "reference";
  ctrl: SharedArrayBuffer;
  weights: SharedArrayBuffer;
  grads: SharedArrayBuffer;
  stats: SharedArrayBuffer;
  err: SharedArrayBuffer;
}

/** Rows [from, to) of a split, as views (no copy). */
export function shardOf(s: ModularSplit, from: number, to: number): ModularSplit {
  return { idx: s.idx.subarray(2 * from, 2 * to), labels: s.labels.subarray(from, to), rows: to - from };
}

/** The first shard's size: main thread rows [0, half), worker rows [half, rows). */
export const half = (rows: number) => Math.ceil(rows / 2);

/** Forward + crossEntropy + backward on one shard (grads into m.grads, mean over the shard); counts into out. */
export function shardTrain(m: MLP, s: ModularSplit, c: GrokConfig, out: Float64Array): void {
  const z = m.forward(s.idx, s.rows); // threads: 2 runs on host arrays
  const ce = crossEntropy(z, s.labels, { cols: c.p, head: c.head, precision: c.precision });
  m.backward(ce.grad!, s.idx);
  out[LOSS_SUM] = ce.loss * s.rows;
  out[HITS] = Math.round(accuracy(z, s.labels, c.p) * s.rows);
  out[SC_ROWS] = Math.round(ce.scFraction * s.rows);
  out[ZERO_ROWS] = Math.round(ce.zeroLossFraction * s.rows);
  out[MAX_LOGIT] = maxAbs(z);
}

/** Correct predictions on one shard. */
export function shardHits(m: MLP, s: ModularSplit, p: number): number {
  return Math.round(accuracy(m.forward(s.idx, s.rows), s.labels, p) * s.rows);
}

/** A typed view of a shared buffer. */
export const floats = (b: SharedArrayBuffer, dtype: "f32" | "f64"): FloatArray => (dtype === "f64" ? new Float64Array(b) : new Float32Array(b));

/** Flat copies between the per-layer tensors and one shared array. */
export function pack(xs: FloatArray[], flat: FloatArray): void {
  let o = 0;
  for (const x of xs) { flat.set(x, o); o += x.length; }
}
export function unpack(flat: FloatArray, xs: FloatArray[]): void {
  let o = 0;
  for (const x of xs) { x.set(flat.subarray(o, o + x.length)); o += x.length; }
}

async function serve(d: GrokWorkerData): Promise<void> {
  const ctrl = new Int32Array(d.ctrl);
  const fail = (e: unknown) => {
    const msg = new TextEncoder().encode(String(e instanceof Error ? e.message : e)).subarray(0, ERR_BYTES - 4);
    new Uint8Array(d.err).set(msg, 4);
    new Int32Array(d.err, 0, 1)[0] = msg.length;
    Atomics.store(ctrl, ERR, 1);
    Atomics.store(ctrl, DONE, -1); // changes the value a waiting main thread sleeps on, then wakes it
    Atomics.notify(ctrl, DONE);
  };
  let m: MLP, train: ModularSplit, test: ModularSplit;
  try {
    await setBackend(d.backend);
    const c = d.config;
    const data = modularData({ p: c.p, op: c.op, frac: c.frac, seed: c.seed });
    m = new MLP({ inputs: 2 * c.p, hidden: c.hidden, outputs: c.p, seed: c.seed, dtype: d.dtype });
    train = shardOf(data.train, half(data.train.rows), data.train.rows);
    test = shardOf(data.test, half(data.test.rows), data.test.rows);
    m.workspace(train.rows);
    m.workspace(test.rows);
  } catch (e) {
    fail(e);
    return;
  }
  const weights = floats(d.weights, d.dtype), grads = floats(d.grads, d.dtype), stats = new Float64Array(d.stats);
  let seen = 0;
  for (;;) {
    Atomics.wait(ctrl, CMD, seen);
    const seq = Atomics.load(ctrl, CMD);
    if (seq === seen) continue;
    seen = seq;
    const kind = Atomics.load(ctrl, KIND);
    if (kind === QUIT) return;
    try {
      unpack(weights, m.params);
      if (kind === TRAIN) {
        shardTrain(m, train, d.config, stats);
        pack(m.grads, grads);
      } else stats[HITS] = shardHits(m, test, d.config.p);
    } catch (e) {
      fail(e);
      return;
    }
    Atomics.store(ctrl, DONE, seq);
    Atomics.notify(ctrl, DONE);
  }
}

if (!isMainThread && (workerData as GrokWorkerData | undefined)?.numedgeGrok) await serve(workerData as GrokWorkerData);
