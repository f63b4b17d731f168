// The worker pool's shared job descriptor and the chunk loop every thread (the caller and the workers) runs.
// One job at a time: the caller writes the descriptor, stores TICKET = (chunks, 0) and wakes the workers; every
// thread then claims chunks by compare-exchange on TICKET until none is left. The ticket holds the job's chunk
// count next to the next chunk, so a successful exchange always claims an unclaimed chunk of the current job,
// however late the thread read it. The caller returns when DONE counts every chunk. No imports: a worker loads
// this file alone.

export const GEN = 0, TICKET = 1, DONE = 2, FN = 3, NARGS = 4, UNITS = 5, CHUNK = 6, RESULT = 8, ERR = 9,
  QUIT = 10, READY = 11, WORKER_CHUNKS = 12, ROLES = 32;
/** Float64 slots (from byte BASE_BYTE): each argument's base value, then its per-unit (or per-chunk/thread) step. */
export const BASE_BYTE = 256, MAX_ARGS = 32, CTL_BYTES = BASE_BYTE + 16 * MAX_ARGS;
const CHUNK_BITS = 13, CHUNK_MASK = (1 << CHUNK_BITS) - 1;
/** Most chunks one job may have. */
export const MAX_CHUNKS = CHUNK_MASK;

/**
 * How a kernel argument varies over chunks (a chunk is units [u0, u1)); `per` is the argument's step:
 * UNIT: base + u0 * per (a pointer to the chunk's first unit); COUNT: min(u1 * per, base) - u0 * per (the chunk's
 * element count, base the total); START/END: u0 / u1; CHUNK: base + chunk * per (a slot per chunk, for partial
 * sums); THREAD: base + thread * per (scratch of the thread running the chunk).
 */
export const UNIT = 0, COUNT = 1, START = 2, END = 3, CHUNK_SLOT = 4, THREAD = 5;

/** The first ticket of a job of `chunks` chunks. */
export const ticket = (chunks: number) => chunks << CHUNK_BITS;

/** Run chunk c on this thread; returns -1 or the first failing unit of the chunk (absolute). */
export function runChunk(I: Int32Array, F: Float64Array, fns: Array<(...a: number[]) => unknown>, tid: number, c: number): number {
  const nargs = I[NARGS]!, units = I[UNITS]!, chunk = I[CHUNK]!;
  const u0 = c * chunk, u1 = Math.min(units, u0 + chunk);
  const args = new Array<number>(nargs);
  for (let i = 0; i < nargs; i++) {
    const base = F[i]!, per = F[MAX_ARGS + i]!;
    switch (I[ROLES + i]) {
      case UNIT: args[i] = base + u0 * per; break;
      case COUNT: args[i] = Math.min(u1 * per, base) - u0 * per; break;
      case START: args[i] = u0; break;
      case END: args[i] = u1; break;
      case CHUNK_SLOT: args[i] = base + c * per; break;
      default: args[i] = base + tid * per;
    }
  }
  const r = fns[I[FN]!]!(...args);
  return typeof r === "number" && r >= 0 ? u0 + r : -1;
}

/**
 * Claim and run chunks of the current job until none is left (tid 0: the caller). Returns the first error this
 * thread's chunks threw (ERR tells the caller that some thread's did).
 */
export function work(I: Int32Array, F: Float64Array, fns: Array<(...a: number[]) => unknown>, tid: number): unknown {
  let err: unknown;
  for (;;) {
    const t = Atomics.load(I, TICKET), c = t & CHUNK_MASK, nch = t >> CHUNK_BITS;
    if (c >= nch) return err;
    if (Atomics.compareExchange(I, TICKET, t, t + 1) !== t) continue;
    let bad = -1;
    try {
      bad = runChunk(I, F, fns, tid, c);
    } catch (e) {
      Atomics.store(I, ERR, 1);
      err ??= e;
    }
    if (bad >= 0) for (let r = Atomics.load(I, RESULT); bad < r; r = Atomics.load(I, RESULT))
      if (Atomics.compareExchange(I, RESULT, r, bad) === r) break;
    if (tid > 0) Atomics.add(I, WORKER_CHUNKS, 1);
    if (Atomics.add(I, DONE, 1) + 1 === nch) Atomics.notify(I, DONE);
  }
}

/** Spin this many loads on a word before sleeping on it: a wake-up costs tens of microseconds, but a spinning
 *  thread takes a core from the others (the caller too) on a loaded machine. */
export const SPIN = 2000;
