// Optimizers over lists of parameter tensors: AdamW (PyTorch semantics, via the adamwStep op) and the
// OrthoGrad (⊥Grad) wrapper of "Grokking at the Edge of Numerical Stability", usable around any optimizer.
// Parameters and gradients are host typed arrays or DeviceArrays; moments are made like the parameters (on the
// same backend for DeviceArrays), so a step never leaves the device.
import { DeviceArray } from "../device.ts";
import { NumedgeError, overlaps, readOptions, show, type FloatArray } from "../errors.ts";
import { adamwStep, orthogonalize } from "../ops/dense.ts";
import { checkAdamWHyper } from "../ops/adamw-hyper.ts";
import { empty } from "../memory.ts";
import { typeName } from "../ops/call.ts";

/** A float tensor: host Float32Array / Float64Array, or an f32 / f64 DeviceArray. */
export type Tensor = FloatArray | DeviceArray;

/** Anything that updates params in place from grads of the same shapes. */
export interface Optimizer {
  step(params: Tensor[], grads: Tensor[]): void;
}

/** dtype and length of a float tensor argument, or a NumedgeError naming it. */
function meta(arg: string, v: unknown): { dtype: string; length: number } {
  if (v instanceof DeviceArray && (v.dtype === "f32" || v.dtype === "f64")) return v;
  if (v instanceof Float32Array) return { dtype: "f32", length: v.length };
  if (v instanceof Float64Array) return { dtype: "f64", length: v.length };
  throw new NumedgeError("dtype", `${arg} must be a Float32Array or Float64Array (or an f32/f64 DeviceArray), got ${show(v)}`);
}

/**
 * params and grads must be arrays of the same length whose tensors share no storage (checked before any tensor is
 * touched, so a failing step changes nothing).
 */
function checkLists(params: unknown, grads: unknown): void {
  if (!Array.isArray(params)) throw new NumedgeError("dtype", `params must be an array of tensors, got ${show(params)}`);
  if (!Array.isArray(grads)) throw new NumedgeError("dtype", `grads must be an array of tensors, got ${show(grads)}`);
  if (params.length !== grads.length) throw new NumedgeError("shape", `params has ${params.length} tensors but grads has ${grads.length}`);
  const all: Array<[string, unknown]> = [...params.map((p, i) => [`params[${i}]`, p] as [string, unknown]), ...grads.map((g, i) => [`grads[${i}]`, g] as [string, unknown])];
  for (let i = 0; i < all.length; i++)
    for (let j = i + 1; j < all.length; j++) {
      const a = all[i]![1], b = all[j]![1];
      const same = a === b || (ArrayBuffer.isView(a) && ArrayBuffer.isView(b) && overlaps(a, b));
      if (same) throw new NumedgeError("shape", `${all[i]![0]} overlaps ${all[j]![0]}; every tensor must be a separate array`);
    }
}

/** Zeros shaped like x, where x lives. */
export function zerosLike(x: Tensor): Tensor {
  if (x instanceof DeviceArray) return empty(x.length, x.dtype, { backend: x.backend });
  return new (x.constructor as new (n: number) => FloatArray)(x.length);
}

export interface AdamWConfig {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** Decoupled weight decay (PyTorch AdamW: w -= lr * wd * w before the Adam update). Default 0 here
   *  (PyTorch's default is 0.01; the grokking experiments use none). */
  weightDecay?: number;
}

/**
 * PyTorch torch.optim.AdamW, one adamwStep per tensor; moments are created at the first step with the
 * tensors' own type. @example const opt = new AdamW({ lr: 0.01, beta2: 0.99, eps: 1e-25 }); opt.step(params, grads)
 */
export class AdamW implements Optimizer {
  readonly lr: number; readonly beta1: number; readonly beta2: number; readonly eps: number; readonly weightDecay: number;
  /** Number of steps taken. */
  t = 0;
  private m: Tensor[] = [];
  private v: Tensor[] = [];
  constructor(o: AdamWConfig, private readonly alloc?: (like: FloatArray) => FloatArray) {
    const oo = readOptions(o, ["lr", "beta1", "beta2", "eps", "weightDecay"], "lr");
    // adamwStep's checks, here, so that bad hyperparameters fail now and not halfway through a step
    ({ lr: this.lr, beta1: this.beta1, beta2: this.beta2, eps: this.eps, weightDecay: this.weightDecay } = checkAdamWHyper(
      { lr: oo.lr, beta1: oo.beta1 ?? 0.9, beta2: oo.beta2 ?? 0.999, eps: oo.eps ?? 1e-8, weightDecay: oo.weightDecay ?? 0 }));
  }
  step(params: Tensor[], grads: Tensor[]): void {
    checkLists(params, grads);
    // Check every pair before touching any tensor or the step count: a failure leaves the optimizer as it was.
    for (let i = 0; i < params.length; i++) {
      const w = meta(`params[${i}]`, params[i]), g = meta(`grads[${i}]`, grads[i]);
      if (w.length === 0) throw new NumedgeError("shape", `params[${i}] is empty (length 0)`);
      if (g.dtype !== w.dtype) throw new NumedgeError("dtype", `grads[${i}] must be a ${typeName(w.dtype as never)} like params[${i}], got ${typeName(g.dtype as never)}`);
      if (g.length !== w.length) throw new NumedgeError("shape", `grads[${i}].length ${g.length} must equal params[${i}].length ${w.length}`);
      if (this.t > 0 && this.m[i]?.length !== w.length) throw new NumedgeError("shape", `params[${i}].length ${w.length} changed since the first step`);
    }
    if (this.t === 0) {
      const mk = (x: Tensor) => (this.alloc && !(x instanceof DeviceArray) ? this.alloc(x) : zerosLike(x));
      this.m = params.map(mk);
      this.v = params.map(mk);
    }
    this.t++;
    const o = { lr: this.lr, beta1: this.beta1, beta2: this.beta2, eps: this.eps, weightDecay: this.weightDecay, step: this.t };
    for (let i = 0; i < params.length; i++) adamwStep(params[i]!, grads[i]!, this.m[i]!, this.v[i]!, o);
  }
}

/**
 * Wrap any optimizer with ⊥Grad: each step first makes every gradient tensor orthogonal to its weights
 * (keeping its norm), so the base optimizer (and its moments) only sees g⊥. Grads are modified in place.
 * @example const opt = orthoGrad(new AdamW({ lr: 0.01 })) // ⊥AdamW
 */
export function orthoGrad<O extends Optimizer>(base: O): Optimizer & { base: O } {
  return {
    base,
    step(params, grads) {
      checkLists(params, grads);
      for (let i = 0; i < params.length; i++) orthogonalize(params[i]!, grads[i]! as never);
      base.step(params, grads);
    },
  };
}
