// The worker pool: threads - 1 workers, each with its own instance of numedge.wasm over the one shared memory,
// run chunks of a kernel call with the calling thread (job.ts). Workers start on the first call that splits and
// are unref'd, so idle ones never keep a script alive. Without shared memory everything runs on the caller.
import { env, exitOneLine } from "../../env.ts";
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { NumedgeError } from "../../errors.ts";
import {
  BASE_BYTE, CHUNK_SLOT, COUNT, CTL_BYTES, DONE, END, ERR, FN, GEN, MAX_ARGS, MAX_CHUNKS, NARGS, QUIT, READY,
  RESULT, ROLES, SPIN, START, THREAD, TICKET, UNIT, UNITS, CHUNK, WORKER_CHUNKS, runChunk, ticket, work,
} from "./job.ts";
import { asm, malloc, mfree, noSharedMemory, onMemoryReset, setPieceThreads, threadScratch, wasmModule } from "./runtime.ts";
import type { PoolWorkerData } from "./worker.ts";

export { UNIT, COUNT, START, END, CHUNK_SLOT, THREAD };

/** NUMEDGE_THREADS, else the available parallelism. A bad value prints one line and exits 1 (as NUMEDGE_BACKEND). */
function fromEnv(): number {
  const cores = typeof availableParallelism === "function" ? availableParallelism() : 1;
  const v = env.NUMEDGE_THREADS;
  if (v === undefined || v === "") return cores;
  const n = Number(v);
  if (Number.isInteger(n) && n >= 1 && n <= 256) return n;
  const msg = `NUMEDGE_THREADS must be an integer from 1 to 256, got ${JSON.stringify(v)}`;
  exitOneLine(msg);
  throw new NumedgeError("range", msg);
}

let wanted = noSharedMemory ? 1 : fromEnv();
setPieceThreads(wanted);
let workers: Worker[] = [];
let scratch: number[] = [];
// A fresh control block per set of workers: a worker still being terminated can never see a later job.
const newCtl = () => (noSharedMemory ? new ArrayBuffer(CTL_BYTES) : new SharedArrayBuffer(CTL_BYTES));
let ctl = newCtl();
let I = new Int32Array(ctl), F = new Float64Array(ctl, BASE_BYTE, 2 * MAX_ARGS);
/** Export names in one order for every thread: a job names its kernel by index. */
const names = Object.keys(asm).filter((k) => typeof asm[k] === "function").sort();
const index = new Map(names.map((n, i) => [n, i]));
let fns: Array<(...a: number[]) => unknown> = names.map((n) => asm[n]!);
let gen = 0;
let failed: string | null = null;

/**
 * Use n threads (the caller and n - 1 workers) for every large wasm op from now on; results are the same bits for
 * any n. Default: NUMEDGE_THREADS, else the machine's available parallelism. Without shared WebAssembly memory
 * every op stays on one thread (backendInfo().threadsNote says why).
 * @example setThreads(4)
 */
export function setThreads(n: number): void {
  if (!Number.isInteger(n) || n < 1 || n > 256) throw new NumedgeError("range", `setThreads: n must be an integer from 1 to 256, got ${JSON.stringify(n)}`);
  if (noSharedMemory) return;
  if (n !== wanted || failed) stop(); // a failed pool is stopped; setThreads starts a fresh one on the next split op
  failed = null;
  wanted = n;
  setPieceThreads(n);
}

/** Threads the wasm ops split over now. */
export function threads(): number {
  return noSharedMemory || failed ? 1 : wanted;
}

/** Why the pool runs one thread whatever setThreads() says, or null. */
export function threadsNote(): string | null {
  return noSharedMemory ? `one thread: ${noSharedMemory}` : failed ? `one thread: a pool worker failed (${failed})` : null;
}

/** Workers that started, and chunks they ran (for tests and the benchmark). */
export function poolStats(): { workers: number; ready: number; workerChunks: number } {
  return { workers: workers.length, ready: workers.length ? Atomics.load(I, READY) : 0, workerChunks: retired + Atomics.load(I, WORKER_CHUNKS) };
}

/** Chunks that workers of earlier control blocks ran. */
let retired = 0;

function stop(): void {
  if (workers.length === 0) return;
  retired += Atomics.load(I, WORKER_CHUNKS);
  Atomics.store(I, QUIT, 1);
  Atomics.add(I, GEN, 1);
  Atomics.notify(I, GEN);
  for (const w of workers) void w.terminate();
  for (const p of scratch) mfree(p);
  workers = [];
  scratch = [];
}
onMemoryReset(() => {
  scratch = []; // they were in the old memory
  stop();
  fns = names.map((n) => asm[n]!);
});

function start(): void {
  ctl = newCtl();
  I = new Int32Array(ctl);
  F = new Float64Array(ctl, BASE_BYTE, 2 * MAX_ARGS);
  const ext = import.meta.url.endsWith(".ts") ? ".ts" : ".js";
  for (let tid = 1; tid < wanted; tid++) {
    const reserved = threadScratch(tid), p = reserved ?? malloc(asm.thread_scratch_bytes!());
    if (reserved === null) scratch.push(p);
    const d: PoolWorkerData = { numedgePool: true, module: wasmModule, memory: asm.memory, ctl: ctl as SharedArrayBuffer, names, tid, scratch: p };
    const w = new Worker(new URL(`./worker${ext}`, import.meta.url), { workerData: d });
    w.unref();
    w.on("error", (e) => {
      failed ??= e instanceof Error ? e.message : String(e);
      stop(); // one thread from now on (threadsNote says why) until setThreads() asks again
    });
    workers.push(w);
  }
}

/** One argument of par(): a fixed number, or [base, role, per] (roles in job.ts). */
export type Arg = number | [number, number, number];

/**
 * Run asm kernel `fn` over `units` units in chunks of `chunk` units, on every thread of the pool (on the caller
 * alone when there is one chunk or one thread). Kernels return -1 (or nothing) or the failing unit of their chunk;
 * par returns -1 or the first failing unit overall.
 */
export function par(fn: string, units: number, chunk: number, args: Arg[]): number {
  const nch = units <= 0 ? 1 : Math.ceil(units / chunk);
  // chunkOf and fixedChunk stay far below MAX_CHUNKS; a caller sizing CHUNK_SLOT scratch counts on nch as it is
  if (nch > MAX_CHUNKS) throw new NumedgeError("backend", `internal: ${fn} split into ${nch} chunks (at most ${MAX_CHUNKS})`);
  const pool = nch > 1 ? threads() : 1;
  if (pool > 1 && workers.length !== pool - 1) {
    stop();
    start(); // a new control block: write the job after this
  }
  I[FN] = index.get(fn)!;
  I[NARGS] = args.length;
  I[UNITS] = units;
  I[CHUNK] = units <= 0 ? 1 : chunk;
  args.forEach((a, i) => {
    const [base, role, per] = typeof a === "number" ? [a, UNIT, 0] : a;
    F[i] = base;
    F[MAX_ARGS + i] = per;
    I[ROLES + i] = role;
  });
  if (pool === 1) {
    for (let c = 0; c < nch; c++) {
      const bad = runChunk(I, F, fns, 0, c);
      if (bad >= 0) return bad;
    }
    return -1;
  }
  Atomics.store(I, RESULT, 0x7fffffff);
  Atomics.store(I, DONE, 0);
  Atomics.store(I, ERR, 0);
  Atomics.store(I, TICKET, ticket(nch));
  Atomics.store(I, GEN, ++gen);
  Atomics.notify(I, GEN, Math.min(nch - 1, workers.length));
  const mine = work(I, F, fns, 0);
  for (let s = 0, d = Atomics.load(I, DONE); d !== nch; d = Atomics.load(I, DONE))
    if (++s > SPIN) Atomics.wait(I, DONE, d, 1000);
  if (mine !== undefined) throw mine; // the caller's own chunk failed: the same error one thread would raise
  if (Atomics.load(I, ERR)) throw new NumedgeError("backend", `wasm kernel ${fn} failed on a pool thread`);
  const r = Atomics.load(I, RESULT);
  return r === 0x7fffffff ? -1 : r;
}

/**
 * Units per chunk for an op of `units` units costing `cost` each: one chunk below MIN_WORK in all, else `perThread`
 * per thread (several, so a thread slowed by a neighbour's load hands chunks to the others).
 */
export function chunkOf(units: number, cost: number, perThread = 4): number {
  const n = threads();
  if (n === 1 || units * cost < MIN_WORK) return Math.max(units, 1);
  return Math.max(Math.ceil(units / (perThread * n)), Math.ceil(MIN_CHUNK / cost));
}
/**
 * Rows per chunk for a reduction over rows of `rowBytes` each: a function of the size only (never of the thread
 * count), a multiple of `multiple`, so partial sums per chunk added in chunk order give the same bits on any pool.
 */
export function fixedChunk(rows: number, rowBytes: number, multiple = 1): number {
  if (rows * rowBytes < MIN_WORK) return Math.max(rows, 1);
  return Math.ceil(Math.max(MIN_CHUNK / rowBytes, rows / 4096) / multiple) * multiple;
}
/** Work (bytes touched, roughly) below which an op stays on the calling thread, and the least work per chunk. */
export const MIN_WORK = 1 << 18, MIN_CHUNK = 1 << 16;
