// Pool threads. The supervisor (a worker of the caller's thread) starts the pool workers and watches them: a caller
// blocked in Atomics.wait never sees its own workers' 'exit' events, the supervisor's free event loop does, and
// wakes the caller through the shared control block. A pool worker: its own instance of numedge.wasm over the
// caller's shared memory, running chunks of the jobs described in the control block (job.ts) until told to quit.
import { Worker, parentPort, workerData } from "node:worker_threads";
import { BASE_BYTE, BUSY, DEAD, DEAD_BIT, DONE, GEN, MAX_ARGS, QUIT, READY, SPIN, work } from "./job.ts";

export interface PoolWorkerData {
  numedgePool: "supervisor" | "worker";
  /** The caller's compiled module (one compile, and the very code whose static layout the shared memory holds). */
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  ctl: SharedArrayBuffer;
  names: string[];
  /** This thread's static scratch (asm thread_scratch) in the shared memory, by thread id (1..). */
  scratch: number[];
  tid: number;
}

const d = workerData as PoolWorkerData | undefined;
if (d?.numedgePool === "supervisor") {
  const I = new Int32Array(d.ctl);
  for (let tid = 1; tid <= d.scratch.length; tid++) {
    const w = new Worker(new URL(import.meta.url), { workerData: { ...d, numedgePool: "worker", tid } satisfies PoolWorkerData });
    let error = "";
    w.on("error", (e) => { error = e instanceof Error ? e.message : String(e); });
    w.on("exit", (code) => {
      if (Atomics.load(I, QUIT)) return;
      Atomics.store(I, BUSY + tid, -1); // it will never finish the chunk it may hold
      Atomics.compareExchange(I, DEAD, 0, tid | ((code & 0xffff) << 8));
      Atomics.or(I, DONE, DEAD_BIT);
      Atomics.notify(I, DONE);
      parentPort!.postMessage(`pool worker ${tid} exited (code ${code}${error ? `: ${error}` : ""})`);
    });
  }
} else if (d?.numedgePool === "worker") {
  const exports = new WebAssembly.Instance(d.module, { env: { memory: d.memory } }).exports as
    Record<string, (...a: number[]) => unknown>;
  exports.thread_scratch!(d.scratch[d.tid - 1]!);
  const fns = d.names.map((n) => exports[n]!);
  const I = new Int32Array(d.ctl), F = new Float64Array(d.ctl, BASE_BYTE, 2 * MAX_ARGS);
  Atomics.add(I, READY, 1);
  let seen = 0; // a fresh control block: a job already published (GEN > 0) is joined at once
  for (;;) {
    for (let s = 0; s < SPIN && Atomics.load(I, GEN) === seen; s++);
    Atomics.wait(I, GEN, seen);
    seen = Atomics.load(I, GEN);
    if (Atomics.load(I, QUIT)) break;
    Atomics.store(I, BUSY + d.tid, 1);
    work(I, F, fns, d.tid);
    Atomics.store(I, BUSY + d.tid, 0);
  }
}
