// A bias-free ReLU MLP whose input is k-hot (the grokking paper's two concatenated one-hots), with explicit
// forward and backward passes in llm.c style: every buffer is allocated once, every step is an op call. With
// `device`, parameters, gradients and activations are DeviceArrays on one backend and a step never leaves it;
// without, they are host typed arrays. The first layer is a gather-and-sum of weight rows (embeddingSum).
import { DeviceArray } from "../device.ts";
import { NumedgeError, checkInt, readOptions, show, type FloatArray } from "../errors.ts";
import { loadedBackend } from "../backends/index.ts";
import { empty } from "../memory.ts";
import { embeddingSum, embeddingSumBackward, matmul, relu, reluBackward } from "../ops/dense.ts";
import { Rng } from "../report/rng.ts";
import type { Tensor } from "./optim.ts";

export interface MLPOptions {
  /** Input width (2p for the two-hot modular input). */
  inputs: number;
  /** Hidden widths, e.g. [200, 200]; ReLU after each. May be empty (a linear model). */
  hidden: number[];
  outputs: number;
  /** Hot positions per input row (2 for two-hot). */
  per?: number;
  seed: number;
  dtype?: "f32" | "f64";
  /**
   * Keep every array as a DeviceArray: `true` on the current backend, or a loaded backend's id ("wasm",
   * "tfjs-cpu", ...). forward() then takes DeviceArray indices on that backend and returns DeviceArray logits.
   */
  device?: boolean | string;
  /** Host mode only: where arrays live (e.g. numedge's alloc for zero-copy WASM); default plain typed arrays. */
  alloc?: (n: number, dtype: "f32" | "f64") => FloatArray;
}

interface Workspace {
  /** acts[l] = output of layer l ([rows, sizes[l+1]]), after ReLU except for the last (the logits). */
  acts: Tensor[];
  /** d[l] = dL/d(output of layer l) ([rows, sizes[l+1]]), reused across steps. */
  d: Tensor[];
}

const F = (t: Tensor) => t as FloatArray; // ops take host arrays and DeviceArrays alike

/**
 * params[l] is [sizes[l], sizes[l+1]] row-major (x · W; PyTorch's weight transposed), initialized like
 * PyTorch's nn.Linear: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = sizes[l], from a seeded stream.
 * @example const net = new MLP({ inputs: 2 * p, hidden: [200, 200], outputs: p, seed: 0 });
 *          const z = net.forward(idx, rows); net.backward(dz, idx) // fills net.grads
 */
export class MLP<T extends Tensor = FloatArray> {
  readonly sizes: number[];
  /** Host typed arrays by default; DeviceArrays with `device` (write `new MLP<DeviceArray>(...)` for their type). */
  readonly params: T[];
  readonly grads: T[];
  readonly per: number;
  readonly dtype: "f32" | "f64";
  /** The backend id holding every array, or null for host typed arrays. */
  readonly backend: string | null;
  private readonly mk: (n: number) => T;
  private readonly ws = new Map<number, Workspace>();

  constructor(o0: MLPOptions) {
    const o = readOptions(o0, ["inputs", "hidden", "outputs", "per", "seed", "dtype", "device", "alloc"], "inputs, hidden, outputs, seed") as Partial<MLPOptions>;
    const inputs = checkInt("inputs", o.inputs, 1), outputs = checkInt("outputs", o.outputs, 1);
    if (!Array.isArray(o.hidden)) throw new NumedgeError("dtype", `hidden must be an array of widths, got ${show(o.hidden)}`);
    const hidden = [...o.hidden];
    hidden.forEach((h, i) => checkInt(`hidden[${i}]`, h, 1));
    this.per = checkInt("per", o.per ?? 2, 1);
    this.dtype = o.dtype ?? "f32";
    if (this.dtype !== "f32" && this.dtype !== "f64") throw new NumedgeError("dtype", `dtype must be "f32" or "f64", got ${JSON.stringify(o.dtype)}`);
    const dtype = this.dtype;
    if (o.device !== undefined && typeof o.device !== "boolean" && typeof o.device !== "string")
      throw new NumedgeError("dtype", `device must be a boolean or a backend id, got ${show(o.device)}`);
    this.backend = o.device === undefined || o.device === false ? null : loadedBackend(o.device === true ? undefined : o.device).id;
    const alloc = o.alloc;
    if (alloc !== undefined && typeof alloc !== "function") throw new NumedgeError("dtype", `alloc must be a function, got ${show(alloc)}`);
    const host = alloc ? (n: number) => alloc(n, dtype) : (n: number) => (dtype === "f64" ? new Float64Array(n) : new Float32Array(n));
    const on = this.backend;
    this.mk = (on === null ? host : (n: number) => empty(n, dtype, { backend: on })) as (n: number) => T;
    this.sizes = [inputs, ...hidden, outputs];
    const rng = new Rng((checkInt("seed", o.seed, -(2 ** 31), 2 ** 32 - 1) ^ 0x1b873593) | 0); // init stream, distinct from the split's
    this.params = [];
    this.grads = [];
    for (let l = 0; l + 1 < this.sizes.length; l++) {
      const fanIn = this.sizes[l]!, n = fanIn * this.sizes[l + 1]!, bound = 1 / Math.sqrt(fanIn);
      let init: FloatArray;
      try {
        init = dtype === "f64" ? new Float64Array(n) : new Float32Array(n);
      } catch {
        throw new NumedgeError("range", `cannot allocate layer ${l + 1}'s ${n} weights (sizes ${this.sizes.join("x")}): too large for memory`);
      }
      for (let i = 0; i < n; i++) init[i] = rng.uniform(-bound, bound);
      const w = this.mk(n);
      if (w instanceof DeviceArray) w.write(init);
      else w.set(init);
      this.params.push(w);
      this.grads.push(this.mk(n));
    }
  }

  get layers(): number {
    return this.params.length;
  }

  /** Reserve the buffers for a batch of `rows` now (forward does it on first use). */
  workspace(rows: number): Workspace {
    let w = this.ws.get(rows);
    if (!w) {
      const outs = this.sizes.slice(1).map((c) => rows * c);
      w = { acts: outs.map((n) => this.mk(n)), d: outs.slice(0, -1).map((n) => this.mk(n)) };
      this.ws.set(rows, w);
    }
    return w;
  }

  /**
   * Logits [rows, outputs] for k-hot inputs given as hot positions (`per` per row). The returned array is
   * this model's buffer for that batch size: copy it to keep it past the next forward of the same size.
   */
  forward(idx: Int32Array | DeviceArray, rows: number): T {
    checkInt("rows", rows, 1);
    const isIdx = idx instanceof Int32Array || (idx instanceof DeviceArray && idx.dtype === "i32");
    if (!isIdx || idx.length !== rows * this.per)
      throw new NumedgeError("shape", `idx must be an Int32Array${this.backend ? ` DeviceArray on ${this.backend}` : ""} of rows * per = ${rows * this.per} positions, got ${show(idx)}`);
    const { acts } = this.workspace(rows), L = this.layers, s = this.sizes;
    embeddingSum(F(this.params[0]!), idx as Int32Array, { cols: s[1]!, per: this.per, out: F(acts[0]!) });
    if (L > 1) relu(F(acts[0]!), { out: F(acts[0]!) });
    for (let l = 1; l < L; l++) {
      matmul(F(acts[l - 1]!), F(this.params[l]!), { m: rows, k: s[l]!, n: s[l + 1]!, out: F(acts[l]!) });
      if (l < L - 1) relu(F(acts[l]!), { out: F(acts[l]!) });
    }
    return acts[L - 1]! as T;
  }

  /**
   * Gradients of the loss into this.grads, from dL/dlogits of the last forward with the same idx/rows.
   * dlogits may be the loss's own array; it is not modified.
   */
  backward(dlogits: Tensor, idx: Int32Array | DeviceArray): void {
    const s = this.sizes, L = this.layers, outs = s[L]!;
    const isIdx = idx instanceof Int32Array || (idx instanceof DeviceArray && idx.dtype === "i32");
    if (!isIdx) throw new NumedgeError("dtype", `idx must be an Int32Array${this.backend ? ` DeviceArray on ${this.backend}` : ""}, got ${show(idx)}`);
    const isF = (v: unknown) => (v instanceof DeviceArray ? v.dtype : v instanceof Float32Array ? "f32" : v instanceof Float64Array ? "f64" : null);
    if (isF(dlogits) !== this.dtype)
      throw new NumedgeError("dtype", `dlogits must be ${this.dtype} like the model (${this.dtype === "f32" ? "Float32Array" : "Float64Array"}), got ${show(dlogits)}`);
    const rows = idx.length / this.per;
    if (dlogits.length !== rows * outs) throw new NumedgeError("shape", `dlogits.length ${dlogits.length} must equal rows * outputs = ${rows * outs}`);
    const w = this.ws.get(rows);
    if (!w) throw new NumedgeError("shape", `backward(rows = ${rows}) has no matching forward`);
    let d = F(dlogits);
    for (let l = L - 1; l >= 1; l--) {
      // dW_l = act_{l-1}^T · d ; d_{l-1} = (d · W_l^T) ⊙ [act_{l-1} > 0]
      matmul(F(w.acts[l - 1]!), d, { m: s[l]!, k: rows, n: s[l + 1]!, transA: true, out: F(this.grads[l]!) });
      const prev = F(w.d[l - 1]!);
      matmul(d, F(this.params[l]!), { m: rows, k: s[l + 1]!, n: s[l]!, transB: true, out: prev });
      reluBackward(prev, F(w.acts[l - 1]!), { out: prev });
      d = prev;
    }
    const g0 = this.grads[0]!;
    if (g0 instanceof DeviceArray) g0.zero();
    else g0.fill(0);
    embeddingSumBackward(d, idx as Int32Array, F(g0), { cols: s[1]!, per: this.per });
  }
}
