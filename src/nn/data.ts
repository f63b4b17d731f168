// Modular-arithmetic datasets for grokking: every pair (a, b) in [0, p)^2, target (a op b) mod p, as the
// grokking paper's AlgorithmicDataset builds them; the input is two concatenated one-hot vectors (2p dims),
// stored here as the two hot positions per row (a, p + b) for the first layer's gather.
import { NumedgeError, checkEnum, checkInt, readOptions } from "../errors.ts";
import { Rng } from "../report/rng.ts";

export type ModOp = "add" | "sub" | "mul";

export interface ModularSplit {
  /** Hot input positions, 2 per row: [a, p + b]. */
  idx: Int32Array;
  /** Targets (a op b) mod p. */
  labels: Int32Array;
  rows: number;
}

export interface ModularData {
  p: number;
  op: ModOp;
  /** Input width 2p. */
  inputs: number;
  train: ModularSplit;
  test: ModularSplit;
}

export interface ModularDataOptions {
  p: number;
  op?: ModOp;
  /** Share of the p^2 pairs used for training, in (0, 1); train rows = floor(frac * p^2) like torch random_split. */
  frac: number;
  seed: number;
  /** Array constructor for idx/labels (e.g. a WASM-memory allocator); default new Int32Array. */
  alloc?: (n: number) => Int32Array;
}

const OPS: Record<ModOp, (a: number, b: number, p: number) => number> = {
  add: (a, b, p) => (a + b) % p,
  sub: (a, b, p) => (((a - b) % p) + p) % p,
  mul: (a, b, p) => (a * b) % p, // a, b < p <= 46340, so a * b < 2^31: exact in a double
};

/**
 * All p^2 pairs of `a op b mod p`, randomly split by `seed` (a seeded shuffle of the pair list, then the
 * first floor(frac * p^2) pairs train). Same (p, op, frac, seed) -> identical split on every backend.
 * @example const d = modularData({ p: 97, op: "add", frac: 0.4, seed: 0 }); d.train.rows // 3763
 */
export function modularData(o0: ModularDataOptions): ModularData {
  const o = readOptions(o0, ["p", "op", "frac", "seed", "alloc"], "p, frac, seed") as Partial<ModularDataOptions>;
  const p = checkInt("p", o.p, 2, 46340);
  const op = checkEnum("op", o.op ?? "add", ["add", "sub", "mul"] as const);
  if (typeof o.frac !== "number" || !(o.frac > 0 && o.frac < 1))
    throw new NumedgeError("range", `frac must be a number in (0, 1), got ${o.frac}`);
  const seed = checkInt("seed", o.seed, -(2 ** 31), 2 ** 32 - 1);
  const n = p * p;
  const nTrain = Math.floor(o.frac! * n);
  if (nTrain < 1 || nTrain >= n)
    throw new NumedgeError("range", `frac ${o.frac} leaves ${nTrain} of ${n} pairs for training; need at least 1 train and 1 test pair`);
  const order = new Rng(seed).shuffle(Int32Array.from({ length: n }, (_, i) => i));
  const mk = o.alloc ?? ((k: number) => new Int32Array(k));
  const split = (from: number, to: number): ModularSplit => {
    const rows = to - from, idx = mk(2 * rows), labels = mk(rows);
    for (let r = 0; r < rows; r++) {
      const pair = order[from + r]!, a = Math.floor(pair / p), b = pair % p;
      idx[2 * r] = a;
      idx[2 * r + 1] = p + b;
      labels[r] = OPS[op](a, b, p);
    }
    return { idx, labels, rows };
  };
  return { p, op, inputs: 2 * p, train: split(0, nTrain), test: split(nTrain, n) };
}
