// The worker pool: threads - 1 workers, each with its own instance of numedge.wasm over the one shared memory,
// run chunks of a kernel call with the calling thread (job.ts). Workers start on the first call that splits, under
// a supervisor thread that reports a worker's death (worker.ts); it is unref'd, so idle workers never keep a script
// alive. Without shared memory everything runs on the caller.
import { env, exitOneLine } from "../../env.ts";
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { NumedgeError } from "../../errors.ts";
import {
  BASE_BYTE, BUSY, CHUNK_SLOT, COUNT, CTL_BYTES, DEAD, DEAD_BIT, DONE, END, ERR, FN, GEN, KILL, MAX_ARGS, MAX_CHUNKS,
  NARGS, QUIT, READY, RESULT, ROLES, SPIN, START, THREAD, TICKET, UNIT, UNITS, CHUNK, WORKER_CHUNKS, argOf, invoke, ticket, work,
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
/** The supervisor thread (worker.ts) while workers run, and how many it started. */
let sup: Worker | null = null;
let workers = 0;
let scratch: number[] = [];
// A fresh control block per set of workers: a worker still being terminated can never see a later job.
const newCtl = () => (noSharedMemory ? new ArrayBuffer(CTL_BYTES) : new SharedArrayBuffer(CTL_BYTES));
let ctl = newCtl();
let I = new Int32Array(ctl), F = new Float64Array(ctl, BASE_BYTE, 2 * MAX_ARGS);
let failed: string | null = null;
/** Export names in one order for every thread: a job names its kernel by index. */
const names = Object.keys(asm).filter((k) => typeof asm[k] === "function").sort();
const index = new Map(names.map((n, i) => [n, i]));
let fns: Array<(...a: number[]) => unknown> = names.map((n) => asm[n]!);
let gen = 0;

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
  return { workers, ready: workers ? Atomics.load(I, READY) : 0, workerChunks: retired + Atomics.load(I, WORKER_CHUNKS) };
}

/** Test hook: pool worker `tid` exits as soon as it claims a chunk, as a worker killed mid-chunk would. */
export function poolKill(tid: number): void {
  Atomics.store(I, KILL, tid);
}

/** Chunks that workers of earlier control blocks ran. */
let retired = 0;

function stop(): void {
  if (!sup) return;
  retired += Atomics.load(I, WORKER_CHUNKS);
  Atomics.store(I, QUIT, 1); // workers exit by themselves (Deno does not end a terminated worker's workers)
  Atomics.add(I, GEN, 1);
  Atomics.notify(I, GEN);
  void sup.terminate();
  for (const p of scratch) mfree(p);
  sup = null;
  workers = 0;
  scratch = [];
}
onMemoryReset(() => {
  scratch = []; // they were in the old memory
  stop();
  fns = names.map((n) => asm[n]!);
});

/** The pool runs one thread from now on (threadsNote says why) until setThreads() asks again. */
function fail(why: string): void {
  failed ??= why;
  stop();
}

function start(): void {
  ctl = newCtl();
  I = new Int32Array(ctl);
  F = new Float64Array(ctl, BASE_BYTE, 2 * MAX_ARGS);
  const ext = import.meta.url.endsWith(".ts") ? ".ts" : ".js";
  const at: number[] = [];
  for (let tid = 1; tid < wanted; tid++) {
    const reserved = threadScratch(tid), p = reserved ?? malloc(asm.thread_scratch_bytes!());
    if (reserved === null) scratch.push(p);
    at.push(p);
  }
  const d: PoolWorkerData = { numedgePool: "supervisor", module: wasmModule, memory: asm.memory, ctl: ctl as SharedArrayBuffer, names, scratch: at, tid: 0 };
  const s = (sup = new Worker(new URL(`./worker${ext}`, import.meta.url), { workerData: d }));
  s.on("message", (why: string) => sup === s && fail(why));
  s.on("error", (e) => sup === s && fail(e instanceof Error ? e.message : String(e)));
  s.unref(); // after on("message"), which refs it again: its workers keep it alive, but not the script
  workers = wanted - 1;
}

/** One argument of par(): a fixed number, or [base, role, per] (roles in job.ts). */
export type Arg = number | [number, number, number];

const direct: number[] = new Array<number>(MAX_ARGS).fill(0);
/** Chunk c on the calling thread, straight from par's arguments. */
function runHere(f: (...a: number[]) => unknown, units: number, chunk: number, args: Arg[], c: number): number {
  const u0 = c * chunk, u1 = Math.min(units, u0 + chunk);
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    // a NaN scalar as the control block stores it (the pure NaN), so a job run here gives the bits a split one does
    direct[i] = typeof a === "number" ? (a === a ? a : NaN) : argOf(a[0], a[1], a[2], u0, u1, c, 0);
  }
  const r = invoke(f, direct, args.length);
  return typeof r === "number" && r >= 0 ? u0 + r : -1;
}

/**
 * Run asm kernel `fn` over `units` units in chunks of `chunk` units, on every thread of the pool (on the caller
 * alone when there is one chunk or one thread). Kernels return -1 (or nothing) or the failing unit of their chunk;
 * par returns -1 or the first failing unit overall.
 */
export function par(fn: string, units: number, chunk: number, args: Arg[]): number {
  if (units <= 0) return runHere(asm[fn]!, units, 1, args, 0);
  const nch = Math.ceil(units / chunk);
  // chunkOf and fixedChunk stay far below MAX_CHUNKS; a caller sizing CHUNK_SLOT scratch counts on nch as it is
  if (nch > MAX_CHUNKS) throw new NumedgeError("backend", `internal: ${fn} split into ${nch} chunks (at most ${MAX_CHUNKS})`);
  if (nch > 1 && sup && Atomics.load(I, DEAD)) fail(deadWorker());
  if (nch === 1 || threads() === 1) {
    const f = asm[fn]!;
    for (let c = 0; c < nch; c++) {
      const bad = runHere(f, units, chunk, args, c);
      if (bad >= 0) return bad;
    }
    return -1;
  }
  if (!sup) start(); // a new control block: write the job after this
  I[FN] = index.get(fn)!;
  I[NARGS] = args.length;
  I[UNITS] = units;
  I[CHUNK] = chunk;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    F[i] = typeof a === "number" ? a : a[0];
    F[MAX_ARGS + i] = typeof a === "number" ? 0 : a[2];
    I[ROLES + i] = typeof a === "number" ? UNIT : a[1];
  }
  Atomics.store(I, RESULT, 0x7fffffff);
  Atomics.store(I, DONE, 0);
  Atomics.store(I, ERR, 0);
  Atomics.store(I, TICKET, ticket(nch));
  Atomics.store(I, GEN, ++gen);
  Atomics.notify(I, GEN, Math.min(nch - 1, workers));
  const mine = work(I, F, fns, 0);
  for (let s = 0, d = Atomics.load(I, DONE); d !== nch; d = Atomics.load(I, DONE)) {
    if (d & DEAD_BIT) return died(fn, nch);
    if (++s > SPIN) Atomics.wait(I, DONE, d);
  }
  if (mine !== undefined) throw mine; // the caller's own chunk failed: the same error one thread would raise
  if (Atomics.load(I, ERR)) throw new NumedgeError("backend", `wasm kernel ${fn} failed on a pool thread`);
  const r = Atomics.load(I, RESULT);
  return r === 0x7fffffff ? -1 : r;
}

const deadWorker = (d = Atomics.load(I, DEAD)) => `pool worker ${d & 255} exited (code ${d >> 8})`;

/**
 * A worker died during this job (the supervisor set DEAD_BIT). Every chunk was claimed before the caller waits:
 * let the live workers finish theirs (nothing may write into this call's buffers after it returns), then fail the
 * pool, and throw unless every chunk still completed.
 */
function died(fn: string, nch: number): number {
  const why = deadWorker();
  for (let t = 1; t <= workers; t++) while (Atomics.load(I, BUSY + t) === 1) Atomics.wait(I, DONE, Atomics.load(I, DONE), 1);
  const complete = (Atomics.load(I, DONE) & ~DEAD_BIT) === nch, err = Atomics.load(I, ERR), r = Atomics.load(I, RESULT);
  fail(why);
  if (!complete) throw new NumedgeError("backend", `${why} while running wasm kernel ${fn}; the pool runs one thread until setThreads()`);
  if (err) throw new NumedgeError("backend", `wasm kernel ${fn} failed on a pool thread`);
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
