// Shared plumbing for the tfjs kernels: which engine, how to make tensors, how to read them back.
// Pattern of every kernel: build the result tensors inside tf.tidy (intermediates freed), read them with
// dataSync() *outside* the tidy, then dispose them. Float64Array calls never reach tfjs (it has no float64):
// each family routes them to its fallback (the wasm kernels, which have f64 twins).
import type { Tensor } from "@tensorflow/tfjs-core";
import type { Backend } from "../types.ts";
import type { Tf, TfEngine } from "../probe.ts";
import { stagedBy } from "../host/staged.ts";
import { isTfBuf, type TfBuf } from "./storage.ts";

export type { Tf } from "../probe.ts";

export interface TfCtx {
  engine: TfEngine;
  /** The fallback's kernel `name`, staged: DeviceArray (TfBuf) arguments read to the host and written back. */
  fb<K extends keyof Backend>(name: K): Backend[K];
  /** Make this engine tfjs's current backend (synchronous once initialized: parity suites switch between
   *  tfjs-wasm and tfjs-cpu in one process) and return the tf namespace. */
  use(): Tf;
  /** Kernels for what tfjs cannot do: Float64Array inputs, and ops listed in each family's FALLBACK list. */
  fallback: Backend;
}

export function makeCtx(engine: TfEngine, fallback: Backend, storage?: Backend["storage"]): TfCtx {
  const { tf, tfBackend } = engine;
  return {
    engine,
    fallback,
    fb: (name) => {
      const f = fallback[name];
      return (typeof f === "function" && storage ? staged(storage, f as never) : f) as never;
    },
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

/** True when any argument holds float64 (a Float64Array, or an f64 TfBuf): those run on the fallback. */
export const isF64 = (...a: unknown[]) => a.some((x) => x instanceof Float64Array || (isTfBuf(x) && x.dtype === "f64"));

/** An f64 argument's host array (an f64 TfBuf keeps one: tfjs has no float64). */
export const hostF64 = (x: unknown): Float64Array => (isTfBuf(x) ? x.host! : x as Float64Array);

/** A kernel argument as a tensor of `shape`: a resident TfBuf's own tensor reshaped (no copy), or a host array uploaded. */
export function tin(tf: Tf, x: unknown, shape: number[], dtype: "float32" | "int32" = "float32"): Tensor {
  if (isTfBuf(x)) return tf.reshape(x.t!, shape);
  return tf.tensor(x as Float32Array, shape, dtype);
}

/**
 * compute() for kernels that may get resident arguments: returned tensor i goes to dests[i], a TfBuf taking it as
 * its new tensor (flattened; the old one disposed) or a host array receiving its data; a null dest returns the
 * data instead (small kernel-internal reads, e.g. per-row losses).
 */
export function computeInto(ctx: TfCtx, dests: Array<unknown>, build: (tf: Tf) => Tensor[]): Data[] {
  const tf = ctx.use();
  const ts = tf.tidy(() => build(tf).map((t, i) => (isTfBuf(dests[i]) ? tf.reshape(t, [(dests[i] as TfBuf).length]) : t)));
  const got: Data[] = [];
  ts.forEach((t, i) => {
    const d = dests[i];
    if (isTfBuf(d)) {
      d.t?.dispose();
      d.t = t;
      return;
    }
    const v = t.dataSync() as Data;
    t.dispose();
    if (d) (d as Float32Array).set(v);
    else got.push(v);
  });
  return got;
}

/** staged() for tfjs: TfBufs are the handles; an f64 TfBuf's host array is used in place. */
export const staged = (storage: Backend["storage"], fn: (...a: unknown[]) => unknown) =>
  stagedBy(storage, fn, isTfBuf, (b) => (b as TfBuf).host ?? undefined);

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
