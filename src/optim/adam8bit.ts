// 8-bit Adam (Dettmers et al. 2022, bitsandbytes Adam8bit with block_wise=True): both moments stored as 8-bit
// codes with a float32 absmax per block of 256 — m with the signed dynamic code, v with the unsigned one —
// dequantized, updated and re-quantized every step in one kernel pass. Tensors under 4096 elements keep
// float32 moments (bitsandbytes' min_8bit_size).
// Parameters may be host Float32Arrays or f32 DeviceArrays; each tensor's state lives where it does.
import type { Adam8bitState, AdamStepScalars } from "../backends/api/quant.ts";
import { DeviceArray, hostCopy } from "../device.ts";
import { NumedgeError, checkInt, checkNumber, checkPositive, readOptions, show } from "../errors.ts";
import { toDevice } from "../memory.ts";
import { OpCall, argsOverlap, noOverlapArg, typedArg, type Arg } from "../ops/call.ts";
import { DYNAMIC_SIGNED, DYNAMIC_UNSIGNED, LINEAR_SIGNED, LINEAR_UNSIGNED } from "../ops/quant/codes.ts";

const f = Math.fround;

export interface Adam8bitOptions {
  /** Learning rate (default 1e-3). */
  lr?: number;
  /** (beta1, beta2), default (0.9, 0.999). */
  betas?: [number, number];
  /** Default 1e-8. */
  eps?: number;
  /** Decoupled weight decay: p *= 1 - lr * weightDecay after the update (bitsandbytes). Default 0. */
  weightDecay?: number;
  /** Elements per absmax block (default 256), or "tensor" for one absmax per tensor. */
  blockSize?: number | "tensor";
  /** Code of the 8-bit states: "dynamic" (default; m signed dynamic, v unsigned dynamic) or "linear". */
  code?: "dynamic" | "linear";
  /** Tensors with fewer elements keep float32 moments (default 4096; Infinity = plain 32-bit Adam). */
  minSize8bit?: number;
}

type F32 = Float32Array | DeviceArray;
/** A tensor's state: arrays where its parameter lives (host arrays or DeviceArrays). */
type Slot = { kind: "8bit"; s: { c1: Uint8Array | DeviceArray; c2: Uint8Array | DeviceArray; absmax1: F32; absmax2: F32; blockSize: number; code1: Float32Array; code2: Float32Array } }
  | { kind: "f32"; m: F32; v: F32 };


/**
 * Adam with 8-bit block-wise states, updating Float32Array parameters in place.
 * Per element and step (float32, bitsandbytes' order): m = m*b1 + (1-b1) g; v = v*b2 + ((1-b2) g) g;
 * p += -lr sqrt(1-b2^t)/(1-b1^t) * m / (sqrt(v) + eps sqrt(1-b2^t)); p *= 1 - lr*wd. Then m and v are
 * re-quantized (nearest code of value / new block absmax; m keeps its sign: a code of the wrong sign moves one
 * step toward it). A NaN/±Infinity gradient leaves its parameter unchanged and (8-bit states) resets its moments
 * to 0, as bitsandbytes does; f32-state tensors keep their moments.
 * Error: each stored moment is within absmax_block * 0.0071 (dynamic code) of its float32 value after the step.
 * @example const opt = new Adam8bit([w1, w2], { lr: 1e-3 }); opt.step([g1, g2])
 */
export class Adam8bit {
  private slots: Slot[];
  private params: F32[];
  private t = 0;
  lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;

  constructor(params: F32[], o: Adam8bitOptions = {}) {
    if (!Array.isArray(params) || params.length === 0) throw new NumedgeError("shape", "params must be a non-empty array of Float32Array");
    params.forEach((p, i) => {
      if (!(p instanceof Float32Array) && !(p instanceof DeviceArray && p.dtype === "f32")) throw new NumedgeError("dtype", `params[${i}] must be a Float32Array, got ${show(p)}`);
      if (p.length === 0) throw new NumedgeError("shape", `params[${i}] is empty`);
    });
    o = readOptions(o, ["lr", "betas", "eps", "weightDecay", "blockSize", "code", "minSize8bit"], "", "dtype") as Adam8bitOptions;
    this.lr = checkPositive("lr", o.lr ?? 1e-3);
    const betas = Array.isArray(o.betas) ? [...o.betas] : o.betas ?? [0.9, 0.999];
    if (!Array.isArray(betas) || betas.length !== 2) throw new NumedgeError("shape", "betas must be [beta1, beta2]");
    betas.forEach((b, i) => checkNumber(`betas[${i}]`, b, { lo: 0, hi: 1, hiOpen: true }));
    [this.beta1, this.beta2] = betas;
    this.eps = checkPositive("eps", o.eps ?? 1e-8);
    this.weightDecay = checkNumber("weightDecay", o.weightDecay, { lo: 0 }, 0);
    const bsOpt = o.blockSize ?? 256;
    if (bsOpt !== "tensor") checkInt("blockSize", bsOpt, 1, 2 ** 24);
    const codeName = o.code ?? "dynamic";
    if (codeName !== "dynamic" && codeName !== "linear") throw new NumedgeError("range", `code must be "dynamic" or "linear", got ${JSON.stringify(codeName)}`);
    const minSize = o.minSize8bit ?? 4096;
    if (typeof minSize !== "number" || !(minSize >= 0)) throw new NumedgeError("range", `minSize8bit must be a number >= 0, got ${minSize}`);
    const [code1, code2] = codeName === "dynamic" ? [DYNAMIC_SIGNED, DYNAMIC_UNSIGNED] : [LINEAR_SIGNED, LINEAR_UNSIGNED];
    this.params = params;
    this.slots = params.map((p): Slot => {
      const n = p.length;
      const put = <T extends Float32Array | Uint8Array>(a: T): T | DeviceArray => (p instanceof DeviceArray ? toDevice(a, { backend: p.backend }) : a);
      if (n < minSize) return { kind: "f32", m: put(new Float32Array(n)), v: put(new Float32Array(n)) };
      const bs = bsOpt === "tensor" ? n : Math.min(bsOpt, n);
      const nb = Math.ceil(n / bs);
      // code index of 0 in each code: states start at exactly 0 (absmax 0 makes any code 0 anyway)
      return { kind: "8bit", s: { c1: put(new Uint8Array(n).fill(code1.indexOf(0))), c2: put(new Uint8Array(n)), absmax1: put(new Float32Array(nb)), absmax2: put(new Float32Array(nb)), blockSize: bs, code1, code2 } };
    });
  }

  /** Steps taken so far. */
  get steps(): number {
    return this.t;
  }

  /** One update of every parameter from its gradient (same order and lengths as the params). */
  step(grads: F32[]): void {
    if (!Array.isArray(grads) || grads.length !== this.params.length)
      throw new NumedgeError("shape", `grads must be an array of ${this.params.length} Float32Array, got ${Array.isArray(grads) ? `length ${grads.length}` : typeof grads}`);
    // every tensor's arrays, checked (one backend per tensor) before any is touched
    const calls = grads.map((g, i) => {
      const c = new OpCall(), s = this.slots[i]!;
      const P = typedArg(c, `params[${i}]`, this.params[i], "f32"), G = typedArg(c, `grads[${i}]`, g, "f32");
      if (G.length !== P.length) throw new NumedgeError("shape", `grads[${i}].length ${G.length} must equal params[${i}].length ${P.length}`);
      noOverlapArg(G, P);
      for (let j = 0; j < i; j++) if (argsOverlap(P, typedArg(new OpCall(), `params[${j}]`, this.params[j], "f32")))
        throw new NumedgeError("shape", `params[${i}] overlaps params[${j}]; every tensor must be a separate array`);
      const st = s.kind === "8bit" ? [s.s.c1, s.s.c2, s.s.absmax1, s.s.absmax2] : [s.m, s.v];
      return { c, P, G, st: st.map((a, j) => c.arg(`state ${j} of params[${i}]`, a)!) };
    });
    checkPositive("lr", this.lr);
    this.t++;
    const b1 = f(this.beta1), b2 = f(this.beta2), lr = f(this.lr);
    const c1 = f(1 - f(b1 ** this.t)), c2 = f(Math.sqrt(f(1 - f(b2 ** this.t))));
    const h: AdamStepScalars = {
      beta1: b1, oneMinusBeta1: f(1 - b1), beta2: b2, oneMinusBeta2: f(1 - b2),
      epsC2: f(c2 * f(this.eps)), stepSize: f(f(-lr * c2) / c1),
      decay: this.weightDecay > 0 ? f(1 - f(lr * f(this.weightDecay))) : 1,
    };
    this.slots.forEach((s, i) => {
      const { c, P, G, st } = calls[i]!, k = (a: Arg) => a.k as Float32Array;
      if (s.kind === "8bit") {
        const state: Adam8bitState = { c1: st[0]!.k as Uint8Array, c2: st[1]!.k as Uint8Array, absmax1: k(st[2]!), absmax2: k(st[3]!), blockSize: s.s.blockSize, code1: s.s.code1, code2: s.s.code2 };
        c.be.adam8bitStep(k(P), k(G), state, h);
      } else c.be.adam32Step(k(P), k(G), k(st[0]!), k(st[1]!), h);
      c.wrote(P, ...st);
    });
  }

  /** Bytes of optimizer state: 8-bit tensors n + n codes + 8 bytes of absmax per block; f32 tensors 8n. */
  stateBytes(): number {
    let b = 0;
    for (const s of this.slots) b += s.kind === "8bit" ? s.s.c1.length * 2 + s.s.absmax1.length * 8 : s.m.length * 8;
    return b;
  }

  /** The moments of params[i] as float32 (dequantized for 8-bit states): for inspection and tests. */
  moments(i: number): { m: Float32Array; v: Float32Array; bits: 8 | 32 } {
    checkInt("i", i, 0, this.slots.length - 1);
    const s = this.slots[i]!;
    if (s.kind === "f32") return { m: hostCopy(s.m).slice(), v: hostCopy(s.v).slice(), bits: 32 };
    const { blockSize, code1, code2 } = s.s;
    const c1 = hostCopy(s.s.c1), c2 = hostCopy(s.s.c2), absmax1 = hostCopy(s.s.absmax1), absmax2 = hostCopy(s.s.absmax2);
    const m = new Float32Array(c1.length), v = new Float32Array(c1.length);
    for (let k = 0; k < c1.length; k++) {
      const b = Math.floor(k / blockSize);
      m[k] = code1[c1[k]!]! * absmax1[b]!;
      v[k] = code2[c2[k]!]! * absmax2[b]!;
    }
    return { m, v, bits: 8 };
  }
}

