// Quantization kernels around the per-backend quantizers, written once over typed arrays for backends whose
// storage is host memory (wasm, reference; tfjs's quantizers are adapted the same way): the bad-block index
// written into an array, the stochastic-rounding draws, double quantization's centring, the f64 -> f32 cast.
import { hash01 } from "../../report/rng.ts";
import type { QuantKernels, QuantKernelsReturning } from "../api/quant.ts";

const QUANTIZERS = ["quantizeBlockwise", "quantize4bit", "quantizeAffine", "quantizeQ8_0", "quantizeQ4_0"] as const;

/** The first group of `g` elements holding NaN/±Infinity, or -1. */
function firstBadGroup(x: Float32Array, g: number): number {
  for (let i = 0; i < x.length; i++) if (!Number.isFinite(x[i]!)) return Math.floor(i / g);
  return -1;
}

/** Quantizers that return their bad block, as ones that write it into their last argument. */
export function badIntoArray<K extends Partial<QuantKernelsReturning>>(k: K): Partial<QuantKernels> {
  const out: Record<string, unknown> = { ...k };
  for (const name of QUANTIZERS) {
    const fn = k[name] as ((...a: unknown[]) => number) | undefined;
    if (!fn) continue;
    out[name] = (...a: unknown[]) => {
      const bad = a.pop() as Int32Array;
      if (name === "quantizeAffine" && !a[2]) {
        const b = firstBadGroup(a[0] as Float32Array, a[1] as number);
        if (b >= 0) return void (bad[0] = b); // nothing written
      }
      bad[0] = fn(...a);
    };
  }
  return out as Partial<QuantKernels>;
}

/** absmaxCenter's summation chunk (kernels.cu's ABSMAX_CHUNK). */
const ABSMAX_CHUNK = 4096;

/** The whole quant family for a host-memory backend from its quantizers. */
export function hostQuant(k: QuantKernelsReturning): QuantKernels {
  return {
    ...(badIntoArray(k) as QuantKernels),
    uniforms(out, seed) {
      for (let i = 0; i < out.length; i++) out[i] = Math.floor(hash01(seed, i) * 16777216) / 16777216;
    },
    absmaxCenter(absmax, centered, offset) {
      let s = 0; // chunks' f64 sums in order, then the chunks' sums in order: a GPU adds the chunks in parallel
      for (let c = 0; c < absmax.length; c += ABSMAX_CHUNK) {
        let part = 0;
        for (let i = c; i < Math.min(absmax.length, c + ABSMAX_CHUNK); i++) part += absmax[i]!;
        s += part;
      }
      const o = Math.fround(s / absmax.length);
      offset[0] = o;
      for (let i = 0; i < absmax.length; i++) centered[i] = absmax[i]! - o;
    },
    absmaxUncenter(x, offset) {
      const o = offset[0]!;
      for (let i = 0; i < x.length; i++) x[i] = x[i]! + o;
    },
    toF32(x, out) {
      out.set(x);
    },
  };
}

/** The other way round: a backend's quantizers as ones returning their bad block (for kernels that fall back). */
export function returningOf(k: QuantKernels): Pick<QuantKernelsReturning, (typeof QUANTIZERS)[number]> {
  const out: Record<string, unknown> = {};
  for (const name of QUANTIZERS) {
    const fn = k[name] as (...a: unknown[]) => void;
    out[name] = (...a: unknown[]) => {
      const bad = new Int32Array(1);
      fn(...a, bad);
      return bad[0]!;
    };
  }
  return out as Pick<QuantKernelsReturning, (typeof QUANTIZERS)[number]>;
}
