// Which backend runs the ops: NUMEDGE_BACKEND at start-up, or setBackend() later; and the registry of backends.
//
// A backend is storage plus kernels (types.ts). registerBackend(name, factory) adds a choice: setBackend(name),
// NUMEDGE_BACKEND=name and every script's --backend take it, and adding one touches no op file and no script.
// Built in:
//   wasm       the default: WASM SIMD kernels (build/numedge.wasm), storage in WASM memory.
//   reference  f64 TypeScript, the oracle.
//   tfjs       TensorFlow.js on the first engine the probe finds: tfjs-node-gpu, tfjs-node, tfjs-backend-wasm,
//              tfjs-backend-cpu (src/backends/probe.ts). Throws NumedgeError("backend") only when none works.
//   tfjs-gpu   tfjs-node-gpu on a CUDA device, or NumedgeError("backend") saying what is missing.
//   tfjs-node | tfjs-wasm | tfjs-cpu   that tfjs engine exactly (the parity suites use the last two).
//   cuda       NVIDIA GPUs through the driver API (bun:ffi, Deno.dlopen or node:ffi); NumedgeError("backend") saying what is missing.
//   auto       never throws: wasm for every op, except ops at or above a per-op size that go to the GPU (cuda,
//              else tfjs-gpu). The sizes are measured on this machine by scripts/gpu-check.ts and saved
//              (thresholds.ts), or passed as { thresholds }; a GPU without them, like no GPU, leaves every op on
//              wasm and says why in one line on stderr (no GPU: only when the GPU was asked for, i.e.
//              tfjs-node-gpu is installed or { warn: true }).
// Ops on DeviceArrays run on the backend that owns them, whatever is current.
import { NumedgeError, readOptions } from "../errors.ts";
import type { Backend } from "./types.ts";
import { CANDIDATES, TfjsProbe, type Candidate, type TfEngine } from "./probe.ts";
import { referenceBackend } from "./reference.ts";
import { createCudaBackend } from "./cuda.ts";
import { createTfjsBackend, tfjsFallbackOps, tfjsStagedOps } from "./tfjs.ts";
import { readThresholds } from "./thresholds.ts";
import { env, exitOneLine } from "../env.ts";
import { wasmBackend } from "./wasm.ts";
import { threads, threadsNote } from "./wasm/pool.ts";

/** A registered backend name: the built-in ones, or any name given to registerBackend(). */
export type BackendChoice = "wasm" | "reference" | "tfjs" | "tfjs-gpu" | "tfjs-node" | "tfjs-wasm" | "tfjs-cpu" | "cuda" | "auto" | (string & {});

/** What runs the ops now, and why the other candidates were not picked. */
export interface BackendInfo {
  name: Backend["name"];
  /** The backend's id (DeviceArray.backend of arrays toDevice() makes now). */
  id: string;
  device: "cpu" | "gpu";
  /** "wasm-simd", "typescript-f64", "tfjs-node-gpu", "tfjs-node", "tfjs-wasm", "tfjs-cpu", or "auto(wasm-simd + tfjs-node-gpu)". */
  engine: string;
  /** Candidate -> why it was not picked (tfjs engines, and "tfjs-gpu" for auto). */
  reasons: Record<string, string>;
  /** tfjs backends: ops that run on the wasm kernels instead (Float64Array inputs always do). */
  fallbackOps?: string[];
  /** Ops whose DeviceArray arguments are read to the host and written back around the kernel (not resident yet);
   * an op staged only for some arguments would be listed with them, as "op (when)". */
  stagedOps?: string[];
  /** auto with a GPU: per-op minimum size (elements of the largest array; gemm: m*k*n) sent to the GPU. */
  gpuThresholds?: Record<string, number>;
  /** A GPU backend (cuda, tfjs-gpu): the key its measured thresholds are saved under (scripts/gpu-check.ts). */
  thresholdKey?: string;
  /** Threads the wasm kernels split large ops over (setThreads, NUMEDGE_THREADS). */
  threads: number;
  /** Present when the wasm kernels run one thread whatever setThreads() says: why (e.g. no shared memory). */
  threadsNote?: string;
}

export interface SetBackendOptions {
  /** auto: print the one-line "no GPU, staying on wasm" notice on stderr. Default: only when
   *  @tensorflow/tfjs-node-gpu is installed (the user asked for the GPU by installing it). */
  warn?: boolean;
  /** auto: per-op sizes from which ops go to the GPU, instead of those scripts/gpu-check.ts saved on this machine. */
  thresholds?: Record<string, number>;
}

const ENGINES: Record<string, string> = { wasm: "wasm-simd", reference: "typescript-f64" };

/** Problem size of one kernel call, as auto's thresholds count it: elements of the largest array; gemm: m * k * n. */
export function opSize(op: string, args: readonly unknown[]): number {
  if (op === "gemm") return (args[3] as number) * (args[4] as number) * (args[5] as number);
  let n = 0;
  for (const a of args) if (ArrayBuffer.isView(a)) n = Math.max(n, (a as unknown as { length: number }).length ?? 0);
  return n;
}

/** A backend sending each op to `big` when its size reaches thresholds[op], else to `small`. */
export function routedBackend(small: Backend, big: Backend, thresholds: Record<string, number>): Backend {
  // Storage is small's: DeviceArrays made under it belong to small and their ops run there.
  const out: Record<string, unknown> = { name: big.name, id: small.id, storage: small.storage };
  Object.defineProperty(out, "home", { value: small }); // the backend that owns DeviceArrays made under this one
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
let info: Omit<BackendInfo, "threads"> = { name: "wasm", id: "wasm", device: "cpu", engine: "wasm-simd", reasons: {} };
let probe = new TfjsProbe();
const tfjsBackends = new Map<Candidate, Backend>();
/** Loaded backends by id: the ones DeviceArrays can be made on (toDevice's `backend` option). */
const loaded = new Map<string, Backend>([["wasm", wasmBackend], ["reference", referenceBackend]]);

/** The backend ops on host arrays dispatch to. */
export function getBackend(): Backend {
  return current;
}

/** Install a backend object directly (used by setBackend and by tests). */
export function useBackend(b: Backend, i: Partial<BackendInfo> = {}): BackendInfo {
  current = b;
  // the newest instance of a backend owns the DeviceArrays made from now on (a routed backend: its small one)
  loaded.set(b.id, (b as { home?: Backend }).home ?? b);
  info = { name: b.name, id: b.id, device: "cpu", engine: ENGINES[b.name] ?? b.name, reasons: {}, ...i };
  return backendInfo();
}

/**
 * The loaded backend with this id (or registered name), or the current one's storage owner when undefined.
 * Throws NumedgeError("backend") for one that is not loaded yet: setBackend() loads it.
 */
export function loadedBackend(id?: string): Backend {
  if (id === undefined) return loaded.get(current.id) ?? current;
  const b = loaded.get(id) ?? (id === "tfjs" && info.name === "tfjs" ? loaded.get(info.id) : undefined);
  if (b) return b;
  throw new NumedgeError("backend", `backend ${JSON.stringify(id)} is not loaded${registry.has(id) ? `: await setBackend(${JSON.stringify(id)}) first` : `; loaded: ${[...loaded.keys()].join(", ")}`}`);
}

/** Replace the tfjs probe (tests inject fake file systems and imports); returns the previous one. */
export function useProbe(p: TfjsProbe): TfjsProbe {
  const prev = probe;
  probe = p;
  tfjsBackends.clear();
  for (const c of CANDIDATES) loaded.delete(c);
  return prev;
}

function tfjsOn(e: TfEngine): Backend {
  let b = tfjsBackends.get(e.candidate);
  if (!b) tfjsBackends.set(e.candidate, (b = createTfjsBackend(e)));
  return b;
}

/** What a factory gives: a backend, or a backend with what backendInfo() should say about it. */
export type Loaded = Backend | { backend: Backend; info: Partial<BackendInfo> };

/** Makes a backend for setBackend(name); throws NumedgeError("backend") saying what is missing. */
export type BackendFactory = (o: SetBackendOptions) => Loaded | Promise<Loaded>;

const registry = new Map<string, BackendFactory>();

/**
 * Add a backend choice (or replace one): setBackend(name), NUMEDGE_BACKEND=name and the scripts' --backend accept
 * it from then on. The factory runs on each setBackend(name) and may cache.
 * @example registerBackend("mine", () => ({ ...wasmBackendLike, name: "mine", id: "mine" }))
 */
export function registerBackend(name: string, factory: BackendFactory): void {
  if (typeof name !== "string" || !/^[a-z][a-z0-9-]*$/.test(name))
    throw new NumedgeError("backend", `a backend name must be lower-case letters, digits and dashes, got ${JSON.stringify(name)}`);
  if (typeof factory !== "function") throw new NumedgeError("backend", `registerBackend(${JSON.stringify(name)}) needs a factory function`);
  registry.set(name, factory);
}

/** The registered backend names, in registration order. @example backendNames() // ["wasm", "reference", "tfjs", ...] */
export function backendNames(): string[] {
  return [...registry.keys()];
}

type LoadedWithInfo = { backend: Backend; info: Partial<BackendInfo> };
const tfjsInfo = (e: TfEngine, reasons: Record<string, string>): LoadedWithInfo => {
  const b = tfjsOn(e);
  return { backend: b, info: { device: e.device, engine: e.candidate, reasons, fallbackOps: tfjsFallbackOps(), stagedOps: tfjsStagedOps(),
    ...(e.device === "gpu" ? { thresholdKey: `tfjs-gpu:${e.candidate}` } : {}) } };
};

registerBackend("wasm", () => wasmBackend);
registerBackend("reference", () => referenceBackend);
registerBackend("tfjs", async () => {
  const { engine, reasons } = await probe.first();
  if (engine) return tfjsInfo(engine, reasons);
  throw new NumedgeError("backend", `backend "tfjs": no TensorFlow.js engine could be loaded. ${explain(reasons)}`);
});
registerBackend("tfjs-gpu", async () => {
  const e = await probe.gpu();
  if (typeof e !== "string") return tfjsInfo(e, {});
  throw new NumedgeError("backend", `backend "tfjs-gpu" needs @tensorflow/tfjs-node-gpu with its native binding and a CUDA GPU: ${e}`);
});
for (const c of ["tfjs-node", "tfjs-wasm", "tfjs-cpu"] as const) {
  registerBackend(c, async () => {
    const e = await probe.engine(c);
    if (typeof e !== "string") return tfjsInfo(e, {});
    throw new NumedgeError("backend", `backend ${JSON.stringify(c)} is not usable: ${e}`);
  });
}
let cuda: Promise<LoadedWithInfo | string> | undefined;
/**
 * Replace the cuda backend's load (tests that check the registry as on a machine without a GPU pass why not); returns
 * the previous one, to put back. undefined: load it again on next use.
 */
export function swapCudaLoad(p: Promise<LoadedWithInfo | string> | undefined): Promise<LoadedWithInfo | string> | undefined {
  const prev = cuda;
  cuda = p;
  return prev;
}
/** The cuda backend (loaded once), or why it cannot run here. */
const loadCuda = () => (cuda ??= createCudaBackend().then(
  (r) => (typeof r === "string" ? r : { backend: r.backend, info: { device: "gpu" as const, ...r.info } }),
  (e: unknown) => `failed to start: ${e instanceof Error ? e.message : String(e)}`, // all of it: an NVRTC log spans lines
));
registerBackend("cuda", async () => {
  const r = await loadCuda();
  if (typeof r === "string") throw new NumedgeError("backend", `backend "cuda" is not usable: ${r}`);
  return r;
});
registerBackend("auto", (o) => auto(o));

/**
 * Pick the backend every op on host arrays uses from now on (DeviceArrays run where they live). Throws
 * NumedgeError("backend") for an unknown name, for "tfjs-gpu" without a usable GPU, and for a tfjs engine that
 * cannot load; the message says what is missing and how to get it. "auto" never throws.
 * @example await setBackend("tfjs"); console.log(backendInfo().engine) // "tfjs-wasm" on a machine without tfjs-node
 */
export async function setBackend(name: BackendChoice, opts: SetBackendOptions = {}): Promise<BackendInfo> {
  const factory = typeof name === "string" ? registry.get(name) : undefined;
  if (!factory)
    throw new NumedgeError("backend", `backend must be one of ${backendNames().join(", ")}, got ${JSON.stringify(name)}`);
  const o = readOptions(opts, ["warn", "thresholds"], "", "dtype") as SetBackendOptions;
  if (o.warn !== undefined && typeof o.warn !== "boolean") throw new NumedgeError("dtype", `warn must be a boolean, got ${JSON.stringify(o.warn)}`);
  if (o.thresholds !== undefined && (o.thresholds === null || typeof o.thresholds !== "object"))
    throw new NumedgeError("dtype", "thresholds must be an object of per-op sizes");
  const got = await factory(o);
  return "backend" in got ? useBackend(got.backend, got.info) : useBackend(got);
}

async function auto(opts: SetBackendOptions): Promise<Loaded> {
  const c = await loadCuda();
  if (typeof c !== "string") return autoOn(c, opts);
  let e: TfEngine | string;
  try {
    e = await probe.gpu();
  } catch (err) {
    e = `probe failed: ${err instanceof Error ? err.message.split("\n")[0] : String(err)}`;
  }
  if (typeof e === "string") {
    const warn = opts.warn ?? probe.installed("tfjs-node-gpu");
    if (warn) stderrLine(`numedge: no usable GPU, running on wasm (${e})`);
    return { backend: wasmBackend, info: { reasons: { cuda: c, "tfjs-gpu": e } } };
  }
  return autoOn(tfjsInfo(e, { cuda: c }), opts);
}

/**
 * auto once a GPU backend loaded: ops at or above the measured sizes go to it, the rest stay on wasm. The sizes
 * are opts.thresholds, else those scripts/gpu-check.ts saved for this device; without either, every op stays on
 * wasm and one stderr line says how to measure them.
 */
export function autoOn(gpu: LoadedWithInfo, opts: SetBackendOptions): Loaded {
  const reasons = gpu.info.reasons ?? {};
  const key = gpu.info.thresholdKey ?? gpu.backend.name;
  const th = opts.thresholds ?? readThresholds(key)?.thresholds;
  if (!th) {
    const why = `a GPU is here (${key}) but no thresholds were measured for it: run \`npx numedge gpu-check\` once (or pass setBackend("auto", { thresholds }))`;
    if (opts.warn ?? true) stderrLine(`numedge: auto keeps every op on wasm: ${why}`);
    return { backend: wasmBackend, info: { reasons: { ...reasons, [gpu.backend.name]: why } } };
  }
  return { backend: routedBackend(wasmBackend, gpu.backend, th), info: {
    device: "gpu", engine: `auto(wasm-simd + ${gpu.info.engine?.split(":")[0] ?? gpu.backend.name})`, reasons, gpuThresholds: { ...th }, thresholdKey: key,
    ...(gpu.info.fallbackOps ? { fallbackOps: gpu.info.fallbackOps } : {}),
  } };
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
  const i: BackendInfo = { ...info, reasons: { ...info.reasons }, threads: threads() };
  const note = threadsNote();
  if (note) i.threadsNote = note;
  if (info.fallbackOps) i.fallbackOps = [...info.fallbackOps];
  if (info.stagedOps) i.stagedOps = [...info.stagedOps];
  if (info.gpuThresholds) i.gpuThresholds = { ...info.gpuThresholds };
  return i;
}

// NUMEDGE_BACKEND at import. A module cannot throw from its import without a stack trace, so a bad value or an
// unusable backend prints the NumedgeError's message on one line and exits with status 1; in code, call
// setBackend() and catch NumedgeError instead.
const fromEnv = env.NUMEDGE_BACKEND;
if (fromEnv) {
  try {
    await setBackend(fromEnv as BackendChoice);
  } catch (e) {
    if (e instanceof NumedgeError) exitOneLine(`NUMEDGE_BACKEND=${fromEnv}: ${e.message}`);
    throw e;
  }
}
