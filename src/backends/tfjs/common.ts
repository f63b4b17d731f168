// Shared plumbing for the tfjs kernels: which engine, how to make tensors, how to read them back.
// Pattern of every kernel: build the result tensors inside tf.tidy (intermediates freed), read them with
// dataSync() *outside* the tidy, then dispose them. Float64Array calls never reach tfjs (it has no float64):
// each family routes them to its fallback (the wasm kernels, which have f64 twins).
import type { Tensor } from "@tensorflow/tfjs-core";
import type { Backend } from "../types.ts";
import type { Tf, TfEngine } from "../probe.ts";

export type { Tf } from "../probe.ts";

export interface TfCtx {
  engine: TfEngine;
  /** Make this engine tfjs's current backend (synchronous once initialized: parity suites switch between
   *  tfjs-wasm and tfjs-cpu in one process) and return the tf namespace. */
  use(): Tf;
  /** Kernels for what tfjs cannot do: Float64Array inputs, and ops listed in each family's FALLBACK list. */
  fallback: Backend;
}

export function makeCtx(engine: TfEngine, fallback: Backend): TfCtx {
  const { tf, tfBackend } = engine;
  return {
    engine,
    fallback,
    use() {
      if (tf.getBackend() !== tfBackend) void tf.setBackend(tfBackend);
      return tf;
    },
  };
}

type Data = Float32Array | Int32Array | Uint8Array;

/**
 * Run `build` inside tf.tidy, then read every returned tensor with dataSync() outside it and dispose them.
 * Returns the host arrays in the same order (float32 -> Float32Array, int32 -> Int32Array, bool -> Uint8Array).
 */
export function compute(ctx: TfCtx, build: (tf: Tf) => Tensor[]): Data[] {
  const tf = ctx.use();
  const ts = tf.tidy(() => build(tf));
  try {
    return ts.map((t) => t.dataSync() as Data);
  } finally {
    for (const t of ts) t.dispose();
  }
}

export const isF64 = (...a: ArrayBufferView[]) => a.some((x) => x instanceof Float64Array);

/** StableMax's s(x) = x + 1 for x >= 0, 1 / (1 - x) for x < 0, elementwise. */
export const sOf = (tf: Tf, x: Tensor): Tensor => tf.where(tf.greaterEqual(x, 0), tf.add(x, 1), tf.reciprocal(tf.sub(1, x)));

/**
 * Split n scatter-add items into passes in which no target repeats (tensorScatterUpdate keeps one of repeated
 * indices, and tfjs sums repeats in an unspecified order): pass j lists, in item order, the items that are the
 * j-th hit of their target, so applying the passes in order adds every target's items left to right.
 */
export function occurrencePasses(n: number, target: (i: number) => number): number[][] {
  const seen = new Map<number, number>();
  const passes: number[][] = [];
  for (let i = 0; i < n; i++) {
    const t = target(i), j = seen.get(t) ?? 0;
    seen.set(t, j + 1);
    (passes[j] ??= []).push(i);
  }
  return passes;
}
