// The tfjs backend: the same kernels on TensorFlow.js primitives, on whichever engine the probe found
// (tfjs-node-gpu on CUDA, tfjs-node, tfjs-backend-wasm, tfjs-backend-cpu).
//
// One file per family under tfjs/. An op a family file does not implement (a family that landed after this
// backend, or one tfjs has no sensible primitive for) runs on the fallback backend (wasm); so do all
// Float64Array inputs, since tfjs has no float64. tfjsFallbackOps() lists the ops that never touch tfjs,
// and backendInfo().fallbackOps reports them.
import type { Backend } from "./types.ts";
import type { TfEngine } from "./probe.ts";
import { makeCtx } from "./tfjs/common.ts";
import { denseTfjs } from "./tfjs/dense.ts";
import { quantTfjs } from "./tfjs/quant.ts";
import { routingTfjs } from "./tfjs/routing.ts";
import { softmaxTfjs } from "./tfjs/softmax.ts";
import { wasmBackend } from "./wasm.ts";

type Kernels = Omit<Backend, "name">;

function nativeKernels(engine: TfEngine, fallback: Backend): Partial<Kernels> {
  const ctx = makeCtx(engine, fallback);
  return { ...softmaxTfjs(ctx), ...routingTfjs(ctx), ...quantTfjs(ctx), ...denseTfjs(ctx) };
}

/** A Backend running on `engine`; ops without a tfjs implementation run on `fallback` (default: wasm). */
export function createTfjsBackend(engine: TfEngine, fallback: Backend = wasmBackend): Backend {
  return { ...fallback, ...nativeKernels(engine, fallback), name: "tfjs" } as Backend;
}

/** Ops that always run on the fallback kernels under the tfjs backend (f64 inputs aside). */
export function tfjsFallbackOps(fallback: Backend = wasmBackend): string[] {
  // Kernel factories only capture the engine; a stub engine is enough to list which ops they define.
  const stub = { candidate: "tfjs-cpu", tf: {}, tfBackend: "cpu", device: "cpu" } as unknown as TfEngine;
  const native = nativeKernels(stub, fallback);
  return Object.keys(fallback).filter((k) => k !== "name" && typeof (fallback as unknown as Record<string, unknown>)[k] === "function" && !(k in native)).sort();
}
