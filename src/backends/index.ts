// Which backend runs the ops: NUMEDGE_BACKEND at start-up, or setBackend() later.
//
// Choices:
//   wasm       the default: WASM SIMD kernels (build/numedge.wasm).
//   reference  f64 TypeScript, the oracle.
//   tfjs       TensorFlow.js on the first engine the probe finds: tfjs-node-gpu, tfjs-node, tfjs-backend-wasm,
//              tfjs-backend-cpu (src/backends/probe.ts). Throws NumedgeError("backend") only when none works.
//   tfjs-gpu   tfjs-node-gpu on a CUDA device, or NumedgeError("backend") saying what is missing.
//   tfjs-node | tfjs-wasm | tfjs-cpu   that tfjs engine exactly (the parity suites use the last two).
//   auto       never throws: wasm for every op, except ops above a per-op size (GPU_THRESHOLDS) that go to
//              tfjs-gpu when a GPU is usable. Without one it stays on wasm and, when the GPU was asked for
//              (tfjs-node-gpu is installed, or { warn: true }), says why in one line on stderr.
import { NumedgeError } from "../errors.ts";
import type { Backend } from "./types.ts";
import { CANDIDATES, TfjsProbe, type Candidate, type TfEngine } from "./probe.ts";
import { referenceBackend } from "./reference.ts";
import { createTfjsBackend, tfjsFallbackOps } from "./tfjs.ts";
import { wasmBackend } from "./wasm.ts";

export type BackendChoice = "wasm" | "reference" | "tfjs" | "tfjs-gpu" | "tfjs-node" | "tfjs-wasm" | "tfjs-cpu" | "auto";

/** What runs the ops now, and why the other candidates were not picked. */
export interface BackendInfo {
  name: Backend["name"];
  device: "cpu" | "gpu";
  /** "wasm-simd", "typescript-f64", "tfjs-node-gpu", "tfjs-node", "tfjs-wasm", "tfjs-cpu", or "auto(wasm-simd + tfjs-node-gpu)". */
  engine: string;
  /** Candidate -> why it was not picked (tfjs engines, and "tfjs-gpu" for auto). */
  reasons: Record<string, string>;
  /** tfjs backends: ops that run on the wasm kernels instead (Float64Array inputs always do). */
  fallbackOps?: string[];
  /** auto with a GPU: per-op minimum size (elements of the largest array; gemm: m*k*n) sent to the GPU. */
  gpuThresholds?: Record<string, number>;
}

export interface SetBackendOptions {
  /** auto: print the one-line "no GPU, staying on wasm" notice on stderr. Default: only when
   *  @tensorflow/tfjs-node-gpu is installed (the user asked for the GPU by installing it). */
  warn?: boolean;
  /** auto: override GPU_THRESHOLDS per op (e.g. from scripts/gpu-check.ts's measured crossover). */
  thresholds?: Record<string, number>;
}

const CHOICES: readonly BackendChoice[] = ["wasm", "reference", "tfjs", "tfjs-gpu", "tfjs-node", "tfjs-wasm", "tfjs-cpu", "auto"];
const ENGINES: Record<string, string> = { wasm: "wasm-simd", reference: "typescript-f64" };

/**
 * Smallest problem `auto` sends to tfjs-gpu, per kernel; every other kernel, and anything smaller, stays on wasm.
 * Size = elements of the largest array argument, except gemm: m * k * n.
 *
 * Basis. No GPU was available where these were set: they come from a cost model, and scripts/gpu-check.ts
 * measures the real crossover on a CUDA box and prints it (`setBackend("auto", { thresholds })` takes it).
 * - GPU side: numedge's API takes and returns host typed arrays, so a GPU call pays host -> device and
 *   device -> host copies (~10 GB/s through pageable memory), tfjs-node's host copies into and out of
 *   TF_Tensor, and 10-30 us of eager dispatch per tfjs op (5-20 ops per kernel): ~1.4 ns per element moved
 *   (4 bytes in, 4 out) plus ~0.3 ms fixed.
 * - wasm side, measured (1M elements, one core, bun 1.4.5, on a 2-core machine under load ~7, so 2-4x slower
 *   than an idle core): relu 2.2, softmax 12.8, crossEntropy 25.8, AdamW 20.8 ns/element; GEMM 19 GFLOP/s at
 *   128^3 and 6 at 256^3.
 * - So: exp-heavy row ops (softmax family, crossEntropy: ~3+ ns/element on an idle core) cross near 2e5
 *   elements; 2^20 leaves margin for the model's error. Copy-bound ops (relu, embedding, AdamW with 28 bytes
 *   moved per element, top-k, quantization) move as many bytes as wasm spends time on them: never routed.
 *   gemm: wasm needs ~0.5 ms at 128^3 = 2^21 but ~3 ms at 2^24, against ~0.3 ms + copies on the GPU: 2^22.
 */
export const GPU_THRESHOLDS: Readonly<Record<string, number>> = Object.freeze({
  gemm: 2 ** 22,
  softmax: 2 ** 20,
  logSoftmax: 2 ** 20,
  stablemax: 2 ** 20,
  logStablemax: 2 ** 20,
  crossEntropy: 2 ** 20,
});

/** Problem size of one kernel call, as GPU_THRESHOLDS counts it. */
export function opSize(op: string, args: readonly unknown[]): number {
  if (op === "gemm") return (args[3] as number) * (args[4] as number) * (args[5] as number);
  let n = 0;
  for (const a of args) if (ArrayBuffer.isView(a)) n = Math.max(n, (a as unknown as { length: number }).length ?? 0);
  return n;
}

/** A backend sending each op to `big` when its size reaches thresholds[op], else to `small`. */
export function routedBackend(small: Backend, big: Backend, thresholds: Record<string, number>): Backend {
  const out: Record<string, unknown> = { name: big.name };
  for (const [op, fn] of Object.entries(small)) {
    if (typeof fn !== "function") continue;
    const min = thresholds[op] ?? Infinity;
    const s = fn as (...a: unknown[]) => unknown;
    const b = (big as unknown as Record<string, (...a: unknown[]) => unknown>)[op] ?? s;
    out[op] = min === Infinity ? s : (...a: unknown[]) => (opSize(op, a) >= min ? b : s)(...a);
  }
  return out as unknown as Backend;
}

let current: Backend = wasmBackend;
let info: BackendInfo = { name: "wasm", device: "cpu", engine: "wasm-simd", reasons: {} };
let probe = new TfjsProbe();
const tfjsBackends = new Map<Candidate, Backend>();

/** The backend ops dispatch to. */
export function getBackend(): Backend {
  return current;
}

/** Install a backend object directly (used by the tfjs loader and by tests). */
export function useBackend(b: Backend, i: Partial<BackendInfo> = {}): BackendInfo {
  current = b;
  info = { name: b.name, device: "cpu", engine: ENGINES[b.name] ?? b.name, reasons: {}, ...i };
  return info;
}

/** Replace the tfjs probe (tests inject fake file systems and imports); returns the previous one. */
export function useProbe(p: TfjsProbe): TfjsProbe {
  const prev = probe;
  probe = p;
  tfjsBackends.clear();
  return prev;
}

function tfjsOn(e: TfEngine): Backend {
  let b = tfjsBackends.get(e.candidate);
  if (!b) tfjsBackends.set(e.candidate, (b = createTfjsBackend(e)));
  return b;
}

function useTfjs(e: TfEngine, reasons: Record<string, string>): BackendInfo {
  return useBackend(tfjsOn(e), { device: e.device, engine: e.candidate, reasons, fallbackOps: tfjsFallbackOps() });
}

const ENGINE_CHOICE: Record<string, Candidate> = { "tfjs-node": "tfjs-node", "tfjs-wasm": "tfjs-wasm", "tfjs-cpu": "tfjs-cpu" };

/**
 * Pick the backend every op uses from now on. Throws NumedgeError("backend") for an unknown name, for "tfjs-gpu"
 * without a usable GPU, and for a tfjs engine that cannot load; the message says what is missing and how to
 * get it. "auto" never throws.
 * @example await setBackend("tfjs"); console.log(backendInfo().engine) // "tfjs-wasm" on a machine without tfjs-node
 */
export async function setBackend(name: BackendChoice, opts: SetBackendOptions = {}): Promise<BackendInfo> {
  if (!CHOICES.includes(name))
    throw new NumedgeError("backend", `backend must be one of ${CHOICES.join(", ")}, got ${JSON.stringify(name)}`);
  if (name === "wasm") return useBackend(wasmBackend);
  if (name === "reference") return useBackend(referenceBackend);
  if (name === "tfjs") {
    const { engine, reasons } = await probe.first();
    if (engine) return useTfjs(engine, reasons);
    throw new NumedgeError("backend", `backend "tfjs": no TensorFlow.js engine could be loaded. ${explain(reasons)}`);
  }
  if (name === "tfjs-gpu") {
    const e = await probe.gpu();
    if (typeof e !== "string") return useTfjs(e, {});
    throw new NumedgeError("backend", `backend "tfjs-gpu" needs @tensorflow/tfjs-node-gpu with its native binding and a CUDA GPU: ${e}`);
  }
  if (name === "auto") return auto(opts);
  const c = ENGINE_CHOICE[name]!;
  const e = await probe.engine(c);
  if (typeof e !== "string") return useTfjs(e, {});
  throw new NumedgeError("backend", `backend ${JSON.stringify(name)} is not usable: ${e}`);
}

async function auto(opts: SetBackendOptions): Promise<BackendInfo> {
  let e: TfEngine | string;
  try {
    e = await probe.gpu();
  } catch (err) {
    e = `probe failed: ${err instanceof Error ? err.message.split("\n")[0] : String(err)}`;
  }
  if (typeof e === "string") {
    const warn = opts.warn ?? probe.installed("tfjs-node-gpu");
    if (warn) stderrLine(`numedge: no usable GPU, running on wasm (${e})`);
    return useBackend(wasmBackend, { reasons: { "tfjs-gpu": e } });
  }
  const thresholds = { ...GPU_THRESHOLDS, ...(opts.thresholds ?? {}) };
  const routed = routedBackend(wasmBackend, tfjsOn(e), thresholds);
  return useBackend(routed, {
    device: "gpu", engine: `auto(wasm-simd + ${e.candidate})`, reasons: {}, fallbackOps: tfjsFallbackOps(), gpuThresholds: thresholds,
  });
}

function explain(reasons: Record<string, string>): string {
  return CANDIDATES.map((c) => `${c}: ${reasons[c] ?? "not probed"}`).join("; ");
}

function stderrLine(line: string): void {
  const p = (globalThis as { process?: { stderr?: { write(s: string): unknown } } }).process;
  if (p?.stderr) p.stderr.write(`${line}\n`);
  else console.warn(line);
}

/**
 * What runs the ops now: `{ name, device, engine, reasons }` (reasons: why each other backend was not picked).
 * @example await setBackend("tfjs"); console.log(backendInfo().device) // "cpu" unless tfjs-node-gpu found CUDA
 */
export function backendInfo(): BackendInfo {
  const i: BackendInfo = { ...info, reasons: { ...info.reasons } };
  if (info.fallbackOps) i.fallbackOps = [...info.fallbackOps];
  if (info.gpuThresholds) i.gpuThresholds = { ...info.gpuThresholds };
  return i;
}

// NUMEDGE_BACKEND at import. A module cannot throw from its import without a stack trace, so a bad value or an
// unusable backend prints the NumedgeError's message on one line and exits with status 1; in code, call
// setBackend() and catch NumedgeError instead.
const proc = (globalThis as { process?: { env?: Record<string, string | undefined>; exit?(c: number): never } }).process;
const fromEnv = proc?.env?.NUMEDGE_BACKEND;
if (fromEnv) {
  try {
    await setBackend(fromEnv as BackendChoice);
  } catch (e) {
    if (!(e instanceof NumedgeError) || !proc?.exit) throw e;
    stderrLine(`numedge: NUMEDGE_BACKEND=${fromEnv}: ${e.message}`);
    proc.exit(1);
  }
}
