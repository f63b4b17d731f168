// The worker pool's shared job descriptor and the chunk loop every thread (the caller and the workers) runs.
// One job at a time: the caller writes the descriptor, stores TICKET = (chunks, 0) and wakes the workers; every
// thread then claims chunks by compare-exchange on TICKET until none is left. The ticket holds the job's chunk
// count next to the next chunk, so a successful exchange always claims an unclaimed chunk of the current job,
// however late the thread read it. The caller returns when DONE counts every chunk. No imports: a worker loads
// this file alone.

export const GEN = 0, TICKET = 1, DONE = 2, FN = 3, NARGS = 4, UNITS = 5, CHUNK = 6, RESULT = 8, ERR = 9,
  QUIT = 10, READY = 11, WORKER_CHUNKS = 12, DEAD = 13, KILL = 14, ROLES = 32;
/** Float64 slots (from byte BASE_BYTE): each argument's base value, then its per-unit (or per-chunk/thread) step. */
export const BASE_BYTE = 256, MAX_ARGS = 32;
/** Int32 word per thread id (after the float slots): 1 while the worker claims and runs chunks, -1 once it died. */
export const BUSY = (BASE_BYTE + 16 * MAX_ARGS) / 4, CTL_BYTES = 4 * (BUSY + 257);
/** Set in DONE by the supervisor when a worker dies, so a caller waiting on DONE wakes; DEAD: tid | exit code << 8. */
export const DEAD_BIT = 1 << 30;
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

/** One argument's value for chunk c (units [u0, u1)) on thread tid. */
export function argOf(base: number, role: number, per: number, u0: number, u1: number, c: number, tid: number): number {
  switch (role) {
    case UNIT: return base + u0 * per;
    case COUNT: return Math.min(u1 * per, base) - u0 * per;
    case START: return u0;
    case END: return u1;
    case CHUNK_SLOT: return base + c * per;
    default: return base + tid * per;
  }
}

type Fn = (...a: number[]) => unknown;
/** Call f with a[0..n) without allocating (a spread or apply would copy the arguments). */
export function invoke(f: Fn, a: number[], n: number): unknown {
  switch (n) {
    case 0: return f();
    case 1: return f(a[0]!);
    case 2: return f(a[0]!, a[1]!);
    case 3: return f(a[0]!, a[1]!, a[2]!);
    case 4: return f(a[0]!, a[1]!, a[2]!, a[3]!);
    case 5: return f(a[0]!, a[1]!, a[2]!, a[3]!, a[4]!);
    case 6: return f(a[0]!, a[1]!, a[2]!, a[3]!, a[4]!, a[5]!);
    case 7: return f(a[0]!, a[1]!, a[2]!, a[3]!, a[4]!, a[5]!, a[6]!);
    case 8: return f(a[0]!, a[1]!, a[2]!, a[3]!, a[4]!, a[5]!, a[6]!, a[7]!);
    case 9: return f(a[0]!, a[1]!, a[2]!, a[3]!, a[4]!, a[5]!, a[6]!, a[7]!, a[8]!);
    case 10: return f(a[0]!, a[1]!, a[2]!, a[3]!, a[4]!, a[5]!, a[6]!, a[7]!, a[8]!, a[9]!);
    case 11: return f(a[0]!, a[1]!, a[2]!, a[3]!, a[4]!, a[5]!, a[6]!, a[7]!, a[8]!, a[9]!, a[10]!);
    case 12: return f(a[0]!, a[1]!, a[2]!, a[3]!, a[4]!, a[5]!, a[6]!, a[7]!, a[8]!, a[9]!, a[10]!, a[11]!);
    case 13: return f(a[0]!, a[1]!, a[2]!, a[3]!, a[4]!, a[5]!, a[6]!, a[7]!, a[8]!, a[9]!, a[10]!, a[11]!, a[12]!);
    default: return f(...a.slice(0, n));
  }
}

/** This thread's argument buffer (each thread loads its own copy of this module). */
const args: number[] = new Array<number>(MAX_ARGS).fill(0);

/** Run chunk c on this thread; returns -1 or the first failing unit of the chunk (absolute). */
export function runChunk(I: Int32Array, F: Float64Array, fns: Fn[], tid: number, c: number): number {
  const nargs = I[NARGS]!, units = I[UNITS]!, chunk = I[CHUNK]!;
  const u0 = c * chunk, u1 = Math.min(units, u0 + chunk);
  for (let i = 0; i < nargs; i++) args[i] = argOf(F[i]!, I[ROLES + i]!, F[MAX_ARGS + i]!, u0, u1, c, tid);
  const r = invoke(fns[I[FN]!]!, args, nargs);
  return typeof r === "number" && r >= 0 ? u0 + r : -1;
}

/**
 * Claim and run chunks of the current job until none is left (tid 0: the caller). Returns the first error this
 * thread's chunks threw (ERR tells the caller that some thread's did).
 */
export function work(I: Int32Array, F: Float64Array, fns: Fn[], tid: number): unknown {
  let err: unknown;
  for (;;) {
    const t = Atomics.load(I, TICKET), c = t & CHUNK_MASK, nch = t >> CHUNK_BITS;
    if (c >= nch) return err;
    if (Atomics.compareExchange(I, TICKET, t, t + 1) !== t) continue;
    if (tid > 0 && I[KILL] === tid) process.exit(70); // poolKill(): die holding a chunk
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
