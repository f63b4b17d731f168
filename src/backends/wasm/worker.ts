// A pool worker: its own instance of numedge.wasm over the caller's shared memory, running chunks of the jobs
// described in the shared control block (job.ts) until told to quit.
import { workerData } from "node:worker_threads";
import { BASE_BYTE, GEN, MAX_ARGS, QUIT, READY, SPIN, work } from "./job.ts";

export interface PoolWorkerData {
  numedgePool: true;
  /** The caller's compiled module (one compile, and the very code whose static layout the shared memory holds). */
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  ctl: SharedArrayBuffer;
  names: string[];
  tid: number;
  /** This thread's static scratch (asm thread_scratch) in the shared memory. */
  scratch: number;
}

const d = workerData as PoolWorkerData | undefined;
if (d?.numedgePool) {
  const exports = new WebAssembly.Instance(d.module, { env: { memory: d.memory } }).exports as
    Record<string, (...a: number[]) => unknown>;
  exports.thread_scratch!(d.scratch);
  const fns = d.names.map((n) => exports[n]!);
  const I = new Int32Array(d.ctl), F = new Float64Array(d.ctl, BASE_BYTE, 2 * MAX_ARGS);
  Atomics.add(I, READY, 1);
  let seen = 0; // a fresh control block: a job already published (GEN > 0) is joined at once
  for (;;) {
    for (let s = 0; s < SPIN && Atomics.load(I, GEN) === seen; s++);
    Atomics.wait(I, GEN, seen);
    seen = Atomics.load(I, GEN);
    if (Atomics.load(I, QUIT)) break;
    work(I, F, fns, d.tid);
  }
}
