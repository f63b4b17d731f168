// Optimizers over lists of parameter tensors: AdamW (PyTorch semantics, via the adamwStep op) and the
// OrthoGrad (⊥Grad) wrapper of "Grokking at the Edge of Numerical Stability", usable around any optimizer.
import { NumedgeError, checkFloatArray, checkOptions, type FloatArray } from "../errors.ts";
import { adamwStep } from "../ops/dense.ts";
import { checkAdamWHyper } from "../ops/adamw-hyper.ts";
import { dot } from "./metrics.ts";

/** Anything that updates params in place from grads of the same shapes. */
export interface Optimizer {
  step(params: FloatArray[], grads: FloatArray[]): void;
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
  private m: FloatArray[] = [];
  private v: FloatArray[] = [];
  constructor(o: AdamWConfig, private readonly alloc?: (like: FloatArray) => FloatArray) {
    checkOptions(o, "lr");
    // adamwStep's checks, here, so that bad hyperparameters fail now and not halfway through a step
    ({ lr: this.lr, beta1: this.beta1, beta2: this.beta2, eps: this.eps, weightDecay: this.weightDecay } = checkAdamWHyper(
      { lr: o.lr, beta1: o.beta1 ?? 0.9, beta2: o.beta2 ?? 0.999, eps: o.eps ?? 1e-8, weightDecay: o.weightDecay ?? 0 }));
  }
  step(params: FloatArray[], grads: FloatArray[]): void {
    if (params.length !== grads.length) throw new NumedgeError("shape", `params has ${params.length} tensors but grads has ${grads.length}`);
    // Check every pair before touching any tensor or the step count: a failure leaves the optimizer as it was.
    for (let i = 0; i < params.length; i++) {
      const w = params[i], g = grads[i];
      checkFloatArray(`params[${i}]`, w);
      checkFloatArray(`grads[${i}]`, g);
      if (g.constructor !== w.constructor) throw new NumedgeError("dtype", `grads[${i}] must be a ${w.constructor.name} like params[${i}], got ${g.constructor.name}`);
      if (g.length !== w.length) throw new NumedgeError("shape", `grads[${i}].length ${g.length} must equal params[${i}].length ${w.length}`);
      if (this.t > 0 && this.m[i]?.length !== w.length) throw new NumedgeError("shape", `params[${i}].length ${w.length} changed since the first step`);
    }
    if (this.t === 0) {
      const mk = this.alloc ?? ((x: FloatArray) => new (x.constructor as new (n: number) => FloatArray)(x.length));
      this.m = params.map(mk);
      this.v = params.map(mk);
    }
    this.t++;
    const o = { lr: this.lr, beta1: this.beta1, beta2: this.beta2, eps: this.eps, weightDecay: this.weightDecay, step: this.t };
    for (let i = 0; i < params.length; i++) adamwStep(params[i]!, grads[i]!, this.m[i]!, this.v[i]!, o);
  }
}

/**
 * ⊥Grad on one tensor, in place on g, exactly as the authors' OrthoGrad: proj = (w·g)/(w·w + 1e-30),
 * g⊥ = g - proj·w, then g⊥ *= ‖g‖/(‖g⊥‖ + 1e-30). Dot products and the update in f64.
 * Returns proj. @example orthogonalize(w, g) // now dot(w, g) ≈ 0 and ‖g‖ unchanged
 */
export function orthogonalize(w: FloatArray, g: FloatArray): number {
  if (w.length !== g.length) throw new NumedgeError("shape", `w.length ${w.length} must equal g.length ${g.length}`);
  const proj = dot(w, g) / (dot(w, w) + 1e-30);
  const gNorm = Math.sqrt(dot(g, g));
  let oo = 0;
  for (let i = 0; i < g.length; i++) {
    const r = g[i]! - proj * w[i]!;
    oo += r * r;
  }
  const scale = gNorm / (Math.sqrt(oo) + 1e-30);
  for (let i = 0; i < g.length; i++) g[i] = (g[i]! - proj * w[i]!) * scale;
  return proj;
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
      if (params.length !== grads.length) throw new NumedgeError("shape", `params has ${params.length} tensors but grads has ${grads.length}`);
      for (let i = 0; i < params.length; i++) orthogonalize(params[i]!, grads[i]!);
      base.step(params, grads);
    },
  };
}
