// A bias-free ReLU MLP whose input is k-hot (the grokking paper's two concatenated one-hots), with explicit
// forward and backward passes in llm.c style: every buffer is allocated once, every step is an op call, so it
// runs on whichever backend is current. The first layer is a gather-and-sum of weight rows (embeddingSum).
import { NumedgeError, checkInt, type FloatArray } from "../errors.ts";
import { embeddingSum, embeddingSumBackward, matmul, relu, reluBackward } from "../ops/dense.ts";
import { Rng } from "../report/rng.ts";

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
  /** Where arrays live (e.g. numedge's alloc for zero-copy WASM); default plain typed arrays. */
  alloc?: (n: number, dtype: "f32" | "f64") => FloatArray;
}

interface Workspace {
  /** acts[l] = output of layer l ([rows, sizes[l+1]]), after ReLU except for the last (the logits). */
  acts: FloatArray[];
  /** d[l] = dL/d(output of layer l) ([rows, sizes[l+1]]), reused across steps. */
  d: FloatArray[];
}

/**
 * params[l] is [sizes[l], sizes[l+1]] row-major (x · W; PyTorch's weight transposed), initialized like
 * PyTorch's nn.Linear: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = sizes[l], from a seeded stream.
 * @example const net = new MLP({ inputs: 2 * p, hidden: [200, 200], outputs: p, seed: 0 });
 *          const z = net.forward(idx, rows); net.backward(dz, idx) // fills net.grads
 */
export class MLP {
  readonly sizes: number[];
  readonly params: FloatArray[];
  readonly grads: FloatArray[];
  readonly per: number;
  readonly dtype: "f32" | "f64";
  private readonly mk: (n: number) => FloatArray;
  private readonly ws = new Map<number, Workspace>();

  constructor(o: MLPOptions) {
    const inputs = checkInt("inputs", o.inputs, 1), outputs = checkInt("outputs", o.outputs, 1);
    if (!Array.isArray(o.hidden)) throw new NumedgeError("dtype", `hidden must be an array of widths, got ${typeof o.hidden}`);
    o.hidden.forEach((h, i) => checkInt(`hidden[${i}]`, h, 1));
    this.per = checkInt("per", o.per ?? 2, 1);
    this.dtype = o.dtype ?? "f32";
    if (this.dtype !== "f32" && this.dtype !== "f64") throw new NumedgeError("dtype", `dtype must be "f32" or "f64", got ${JSON.stringify(o.dtype)}`);
    const dtype = this.dtype;
    this.mk = o.alloc ? (n) => o.alloc!(n, dtype) : (n) => (dtype === "f64" ? new Float64Array(n) : new Float32Array(n));
    this.sizes = [inputs, ...o.hidden, outputs];
    const rng = new Rng((checkInt("seed", o.seed, -(2 ** 31), 2 ** 32 - 1) ^ 0x1b873593) | 0); // init stream, distinct from the split's
    this.params = [];
    this.grads = [];
    for (let l = 0; l + 1 < this.sizes.length; l++) {
      const fanIn = this.sizes[l]!, n = fanIn * this.sizes[l + 1]!, bound = 1 / Math.sqrt(fanIn);
      const w = this.mk(n);
      for (let i = 0; i < n; i++) w[i] = rng.uniform(-bound, bound);
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
  forward(idx: Int32Array, rows: number): FloatArray {
    checkInt("rows", rows, 1);
    if (!(idx instanceof Int32Array) || idx.length !== rows * this.per)
      throw new NumedgeError("shape", `idx must be an Int32Array of rows * per = ${rows * this.per} positions, got length ${(idx as { length?: number })?.length}`);
    const { acts } = this.workspace(rows), L = this.layers, s = this.sizes;
    embeddingSum(this.params[0]!, idx, { cols: s[1]!, per: this.per, out: acts[0]! });
    if (L > 1) relu(acts[0]!, { out: acts[0]! });
    for (let l = 1; l < L; l++) {
      matmul(acts[l - 1]!, this.params[l]!, { m: rows, k: s[l]!, n: s[l + 1]!, out: acts[l]! });
      if (l < L - 1) relu(acts[l]!, { out: acts[l]! });
    }
    return acts[L - 1]!;
  }

  /**
   * Gradients of the loss into this.grads, from dL/dlogits of the last forward with the same idx/rows.
   * dlogits may be the loss's own array; it is not modified.
   */
  backward(dlogits: FloatArray, idx: Int32Array): void {
    const s = this.sizes, L = this.layers, outs = s[L]!;
    const rows = idx.length / this.per;
    if (dlogits.length !== rows * outs) throw new NumedgeError("shape", `dlogits.length ${dlogits.length} must equal rows * outputs = ${rows * outs}`);
    const w = this.ws.get(rows);
    if (!w) throw new NumedgeError("shape", `backward(rows = ${rows}) has no matching forward`);
    let d = dlogits;
    for (let l = L - 1; l >= 1; l--) {
      // dW_l = act_{l-1}^T · d ; d_{l-1} = (d · W_l^T) ⊙ [act_{l-1} > 0]
      matmul(w.acts[l - 1]!, d, { m: s[l]!, k: rows, n: s[l + 1]!, transA: true, out: this.grads[l]! });
      const prev = w.d[l - 1]!;
      matmul(d, this.params[l]!, { m: rows, k: s[l + 1]!, n: s[l]!, transB: true, out: prev });
      reluBackward(prev, w.acts[l - 1]!, { out: prev });
      d = prev;
    }
    this.grads[0]!.fill(0);
    embeddingSumBackward(d, idx, this.grads[0]!, { cols: s[1]!, per: this.per });
  }
}
