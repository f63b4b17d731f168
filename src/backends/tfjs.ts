// The tfjs backend: the same kernels on TensorFlow.js primitives, on whichever engine the probe found
// (tfjs-node-gpu on CUDA, tfjs-node, tfjs-backend-wasm, tfjs-backend-cpu), storage in tf.Tensors.
//
// One file per family under tfjs/. An op a family file does not implement (a family that landed after this
// backend, or one tfjs has no sensible primitive for) runs on the fallback backend (wasm); so do all
// Float64Array inputs, since tfjs has no float64. tfjsFallbackOps() lists the ops that never touch tfjs,
// and backendInfo().fallbackOps reports them.
//
// DeviceArray arguments reach the kernels as TfBufs. Kernels in RESIDENT take them as they are (their tensors
// stay in the engine); the others are wrapped by `staged`: a call with TfBufs reads them to the host, runs, and
// writes back the ones it changed (backendInfo().stagedOps lists them). Host-array calls go straight through.
import { kernelNames, type Backend, type Kernels } from "./types.ts";
import type { TfEngine } from "./probe.ts";
import { makeCtx, staged } from "./tfjs/common.ts";
import { denseTfjs } from "./tfjs/dense.ts";
import { quantTfjs } from "./tfjs/quant.ts";
import { routingTfjs } from "./tfjs/routing.ts";
import { softmaxTfjs } from "./tfjs/softmax.ts";
import { tfjsStorage } from "./tfjs/storage.ts";
import { wasmBackend } from "./wasm.ts";

function nativeKernels(engine: TfEngine, fallback: Backend, storage?: Backend["storage"]): Partial<Kernels> {
  const ctx = makeCtx(engine, fallback, storage);
  return { ...softmaxTfjs(ctx), ...routingTfjs(ctx), ...quantTfjs(ctx), ...denseTfjs(ctx) };
}

/** Kernels whose tfjs version takes TfBufs as they are (tensors stay resident); the others are staged. */
const RESIDENT: ReadonlySet<string> = new Set([
  "softmax", "logSoftmax", "stablemax", "logStablemax", "crossEntropy",
  "gemm", "relu", "reluBackward", "embeddingSum", "embeddingSumBackward", "adamw", "orthogonalize", "maxInto",
  "quantizeBlockwise", "quantize4bit", "quantizeAffine", "dequantizeBlockwise", "dequantize4bit", "dequantizeAffine",
  "dequantizeQ8_0", "dequantizeQ4_0", "adam32Step",
]);

/** A Backend running on `engine`; ops without a tfjs implementation run on `fallback` (default: wasm). */
export function createTfjsBackend(engine: TfEngine, fallback: Backend = wasmBackend): Backend {
  const storage = tfjsStorage(makeCtx(engine, fallback));
  const native = nativeKernels(engine, fallback, storage) as Record<string, unknown>;
  const out: Record<string, unknown> = { name: "tfjs", id: engine.candidate, storage };
  for (const k of kernelNames(fallback)) {
    const f = (native[k] ?? (fallback as unknown as Record<string, unknown>)[k]) as (...a: unknown[]) => unknown;
    out[k] = RESIDENT.has(k) && k in native ? f : staged(storage, f);
  }
  return out as unknown as Backend;
}

/** The kernels the tfjs family files define (kernel factories only capture the engine: a stub one lists them). */
function nativeNames(fallback: Backend): Set<string> {
  const stub = { candidate: "tfjs-cpu", tf: {}, tfBackend: "cpu", device: "cpu" } as unknown as TfEngine;
  return new Set(Object.keys(nativeKernels(stub, fallback)));
}

/** Ops that always run on the fallback kernels under the tfjs backend (f64 inputs aside). */
export function tfjsFallbackOps(fallback: Backend = wasmBackend): string[] {
  const native = nativeNames(fallback);
  return kernelNames(fallback).filter((k) => !native.has(k)).sort();
}

/** Kernels that read DeviceArray arguments to the host and write them back on tfjs (backendInfo().stagedOps). */
export function tfjsStagedOps(fallback: Backend = wasmBackend): string[] {
  const native = nativeNames(fallback);
  return kernelNames(fallback).filter((k) => !(RESIDENT.has(k) && native.has(k))).sort();
}
