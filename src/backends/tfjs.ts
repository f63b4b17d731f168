// The tfjs backend: the same kernels on TensorFlow.js primitives, on whichever engine the probe found
// (tfjs-node-gpu on CUDA, tfjs-node, tfjs-backend-wasm, tfjs-backend-cpu), storage in tf.Tensors.
//
// One file per family under tfjs/. An op a family file does not implement (a family that landed after this
// backend, or one tfjs has no sensible primitive for) runs on the fallback backend (wasm); so do all
// Float64Array inputs, since tfjs has no float64. tfjsFallbackOps() lists the ops that never touch tfjs,
// and backendInfo().fallbackOps reports them.
//
// DeviceArray arguments reach the kernels as TfBufs. The family files take host arrays, so for now every kernel
// is wrapped by `staged`: a call with TfBufs reads them to the host, runs, and writes back the ones it changed
// (backendInfo().stagedOps says so). Host-array calls go straight through.
import type { HostArray } from "../device.ts";
import type { Backend, Kernels } from "./types.ts";
import type { TfEngine } from "./probe.ts";
import { makeCtx } from "./tfjs/common.ts";
import { denseTfjs } from "./tfjs/dense.ts";
import { quantTfjs } from "./tfjs/quant.ts";
import { routingTfjs } from "./tfjs/routing.ts";
import { softmaxTfjs } from "./tfjs/softmax.ts";
import { isTfBuf, tfjsStorage, type TfBuf } from "./tfjs/storage.ts";
import { wasmBackend } from "./wasm.ts";

function nativeKernels(engine: TfEngine, fallback: Backend): Partial<Kernels> {
  const ctx = makeCtx(engine, fallback);
  return { ...softmaxTfjs(ctx), ...routingTfjs(ctx), ...quantTfjs(ctx), ...denseTfjs(ctx) };
}

const isPlain = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && Object.getPrototypeOf(v) === Object.prototype;

/** `fn` with TfBuf arguments (also one level inside plain objects) read to the host and changed ones written back. */
function staged(storage: Backend["storage"], fn: (...a: unknown[]) => unknown) {
  return (...args: unknown[]) => {
    if (!args.some((a) => isTfBuf(a) || (isPlain(a) && Object.values(a).some(isTfBuf)))) return fn(...args);
    const host = new Map<TfBuf, [HostArray, HostArray]>();
    const stage = (v: unknown) => {
      if (!isTfBuf(v)) return v;
      let e = host.get(v);
      if (!e) {
        const a = storage.read(v) as HostArray;
        host.set(v, (e = [a, a.slice()]));
      }
      return e[0];
    };
    const r = fn(...args.map((a) => (isPlain(a) ? Object.fromEntries(Object.entries(a).map(([k, v]) => [k, stage(v)])) : stage(a))));
    for (const [b, [a, before]] of host) {
      const x = new Uint8Array(a.buffer, a.byteOffset, a.byteLength), y = new Uint8Array(before.buffer);
      if (x.some((v, i) => v !== y[i])) storage.write(b, a);
    }
    return r;
  };
}

/** A Backend running on `engine`; ops without a tfjs implementation run on `fallback` (default: wasm). */
export function createTfjsBackend(engine: TfEngine, fallback: Backend = wasmBackend): Backend {
  const storage = tfjsStorage(makeCtx(engine, fallback));
  const kernels = { ...fallback, ...nativeKernels(engine, fallback) } as unknown as Record<string, unknown>;
  const out: Record<string, unknown> = { name: "tfjs", id: engine.candidate, storage };
  for (const [k, v] of Object.entries(kernels)) if (typeof v === "function") out[k] = staged(storage, v as (...a: unknown[]) => unknown);
  return out as unknown as Backend;
}

/** Ops that always run on the fallback kernels under the tfjs backend (f64 inputs aside). */
export function tfjsFallbackOps(fallback: Backend = wasmBackend): string[] {
  // Kernel factories only capture the engine; a stub engine is enough to list which ops they define.
  const stub = { candidate: "tfjs-cpu", tf: {}, tfBackend: "cpu", device: "cpu" } as unknown as TfEngine;
  const native = nativeKernels(stub, fallback);
  return Object.keys(fallback).filter((k) => k !== "name" && k !== "id" && k !== "storage" && typeof (fallback as unknown as Record<string, unknown>)[k] === "function" && !(k in native)).sort();
}
