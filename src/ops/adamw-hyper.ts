// AdamW's hyperparameter checks, shared by the adamwStep op and the AdamW optimizer (which checks them once,
// in its constructor, so that bad settings fail before any tensor is touched). Not part of the public surface.
import { checkNumber } from "../errors.ts";

export interface AdamWHyper { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number }

/** lr >= 0, beta1 and beta2 in [0, 1), eps > 0, weightDecay >= 0; returns them as numbers. */
export function checkAdamWHyper(o: { lr?: unknown; beta1?: unknown; beta2?: unknown; eps?: unknown; weightDecay?: unknown }): AdamWHyper {
  return {
    lr: checkNumber("lr", o.lr, { lo: 0 }),
    beta1: checkNumber("beta1", o.beta1, { lo: 0, hi: 1, hiOpen: true }),
    beta2: checkNumber("beta2", o.beta2, { lo: 0, hi: 1, hiOpen: true }),
    eps: checkNumber("eps", o.eps, { lo: 0, loOpen: true }),
    weightDecay: checkNumber("weightDecay", o.weightDecay, { lo: 0 }),
  };
}
