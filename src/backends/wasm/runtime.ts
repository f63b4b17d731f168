// The one WebAssembly instance, its linear memory, and a small first-fit allocator over it.
// Kernels only see pointers; this file turns typed arrays into pointers. Arrays already inside WASM memory
// (from alloc()) are used in place; any other array is copied into scratch and, for outputs, copied back.
import { readFileSync } from "node:fs";
import { NumedgeError, setOneMemory } from "../../errors.ts";

const wasmUrl = (f: string) => new URL(`../../../build/${f}`, import.meta.url);
const SHARED_LIMITS = { initial: 256, maximum: 65536, shared: true } as const;
/** Why this runtime runs one thread (no shared WebAssembly memory), or null when the pool can run. */
export const noSharedMemory: string | null = (() => {
  try {
    new WebAssembly.Memory(SHARED_LIMITS); // the real limits: a 4 GiB reservation can fail where 1 page would not
    return typeof SharedArrayBuffer === "function" && typeof Atomics.wait === "function" ? null : "no SharedArrayBuffer or Atomics.wait";
  } catch (e) {
    return `no shared WebAssembly memory (${e instanceof Error ? e.message : String(e)})`;
  }
})();
export const shared = noSharedMemory === null;
/** The compiled module: the threaded build (imports a shared memory) where the pool can run; pool workers instantiate it too. */
export const wasmModule = await WebAssembly.compile(readFileSync(wasmUrl(shared ? "numedge.wasm" : "numedge-st.wasm")));

type Exports = Record<string, (...args: number[]) => number> & { memory: WebAssembly.Memory; heapBase(): number };
/** Every function asm/index.ts exports, by name (pointers and sizes are numbers); refilled by releaseMemory(). */
export const asm = {} as Exports;
let memory!: WebAssembly.Memory;
/** Every buffer this memory has had (a shared memory's grows give a new SharedArrayBuffer; the old views stay valid). */
let buffers = new WeakSet<ArrayBufferLike>();
setOneMemory((a, b) => a === b || (buffers.has(a) && buffers.has(b)));
function buffer(): ArrayBuffer {
  const b = memory.buffer as ArrayBuffer;
  buffers.add(b);
  return b;
}

/** A fresh instance with its own small memory (shared where the runtime can): asm's functions and `memory` now refer to it. */
function instantiate(): void {
  const mem = shared ? new WebAssembly.Memory(SHARED_LIMITS) : undefined;
  const exports = new WebAssembly.Instance(wasmModule, mem ? { env: { memory: mem } } : {}).exports as unknown as Exports;
  Object.assign(asm, exports);
  memory = exports.memory;
  buffers = new WeakSet();
  // Unshared, where the runtime can (Bun, Deno, Node >= 22), turn the memory's buffer into a resizable ArrayBuffer:
  // growth then resizes it in place and views from alloc() stay valid. Elsewhere (Node 20) growth detaches them.
  if (!shared && resizable) (memory as unknown as { toResizableBuffer: () => ArrayBuffer }).toResizableBuffer();
  buffer();
}
const resizable = typeof (WebAssembly.Memory.prototype as { toResizableBuffer?: () => ArrayBuffer }).toResizableBuffer === "function";
instantiate();
/** True when memory growth keeps existing alloc() views valid (a shared or a resizable buffer). */
export const growthKeepsViews = shared || resizable;
const PAGE = 65536;
const ALIGN = 16;

// Free list of [start, end) byte ranges, sorted by start; coalesced on free.
/** Pool workers 1..RESERVED_THREADS get their static scratch (asm thread_scratch) here, below the heap, so a
 *  worker's start never leaves a long-lived block in the middle of the heap. */
const RESERVED_THREADS = 16;
const heapStart = () => align(asm.heapBase() + RESERVED_THREADS * align(asm.thread_scratch_bytes!()));
/** Worker tid's static scratch when reserved (tid <= 16), else null (the pool mallocs it). */
export function threadScratch(tid: number): number | null {
  return tid >= 1 && tid <= RESERVED_THREADS ? align(asm.heapBase()) + (tid - 1) * align(asm.thread_scratch_bytes!()) : null;
}
let free: Array<[number, number]> = [[heapStart(), memory.buffer.byteLength]];

/** Called after releaseMemory() replaced the instance (caches of pointers into the old memory drop them). */
const resetHooks: Array<() => void> = [];
export function onMemoryReset(fn: () => void): void {
  resetHooks.push(fn);
}

/**
 * Give WASM memory back to the system: WebAssembly memory only grows, so this replaces the instance with a fresh
 * one (the initial 16 MiB) once no alloc() array or wasm DeviceArray is alive (dropped ones are collected first).
 * Returns the bytes before and after; throws NumedgeError("unsupported") naming what is still alive.
 */
export function resetMemory(): { before: number; after: number } {
  const before = memory.buffer.byteLength;
  sweep();
  if (refs.size > 0)
    throw new NumedgeError("unsupported", `${refs.size} alloc() arrays or wasm DeviceArrays (${[...refs.keys()].reduce((a, p) => a + sizes.get(p)!, 0)} bytes) are still alive: free() or dispose() them first`);
  instantiate();
  free = [[heapStart(), memory.buffer.byteLength]];
  sizes.clear();
  blockStarts.length = 0;
  blockEnd.clear();
  for (const f of resetHooks) f();
  return { before, after: memory.buffer.byteLength };
}
const sizes = new Map<number, number>();

/** Round up to a multiple of ALIGN, in plain arithmetic (bitwise operators would wrap at 2^31). */
function align(n: number): number {
  return Math.ceil(n / ALIGN) * ALIGN;
}

/** The most WASM memory can hold (maximumMemory: 65536 pages). */
const MAX_BYTES = 65536 * PAGE;

/** Reserve `nbytes` in WASM memory; grows memory (detaching old views) only when no free range fits. */
export function malloc(nbytes: number): number {
  if (!(nbytes >= 0 && nbytes <= MAX_BYTES))
    throw new NumedgeError("range", `out of WASM memory: cannot reserve ${nbytes} bytes (WASM memory holds at most 4 GiB)`);
  const need = align(Math.max(nbytes, 1));
  for (let i = 0; i < free.length; i++) {
    const [s, e] = free[i]!;
    if (e - s >= need) {
      if (e - s === need) free.splice(i, 1);
      else free[i] = [s + need, e];
      sizes.set(s, need);
      return s;
    }
  }
  // Before growing: blocks whose alloc() arrays were dropped go back now (a forced collection where the runtime
  // offers one); FinalizationRegistry alone would return them only after this call, at some later task.
  if (!swept && framesOpen === 0 && sweep()) {
    swept = true;
    try {
      return malloc(nbytes);
    } finally {
      swept = false;
    }
  }
  const oldEnd = memory.buffer.byteLength;
  const last = free.length && free[free.length - 1]![1] === oldEnd ? free.pop()! : ([oldEnd, oldEnd] as [number, number]);
  const short = need - (last[1] - last[0]);
  // Grow by at least half the current size so growth (which detaches every view) stays rare, within the maximum.
  const maxPages = MAX_BYTES / PAGE - oldEnd / PAGE, least = Math.ceil(short / PAGE);
  const pages = Math.min(Math.max(least, Math.ceil(oldEnd / PAGE / 2)), maxPages);
  try {
    if (least > maxPages) throw new Error("beyond the maximum");
    memory.grow(pages);
  } catch {
    free.push(last);
    throw new NumedgeError("range", `out of WASM memory: cannot reserve ${nbytes} bytes (memory is ${oldEnd} bytes, max 4 GiB)`);
  }
  free.push([last[0], buffer().byteLength]);
  return malloc(nbytes);
}

/** Give back a range from malloc(). */
export function mfree(ptr: number): void {
  const n = sizes.get(ptr);
  if (n === undefined) return;
  sizes.delete(ptr);
  let lo = 0, hi = free.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (free[mid]![0] < ptr) lo = mid + 1;
    else hi = mid;
  }
  free.splice(lo, 0, [ptr, ptr + n]);
  if (lo + 1 < free.length && free[lo]![1] === free[lo + 1]![0]) {
    free[lo] = [free[lo]![0], free[lo + 1]![1]];
    free.splice(lo + 1, 1);
  }
  if (lo > 0 && free[lo - 1]![1] === free[lo]![0]) {
    free[lo - 1] = [free[lo - 1]![0], free[lo]![1]];
    free.splice(lo, 1);
  }
}

/** Bytes copied into and out of WASM memory by call() marshalling (for tests of the zero-copy path). */
export const copyStats = { inBytes: 0, outBytes: 0 };

/** Bytes currently handed out (for tests of leaks). */
export function bytesInUse(): number {
  let n = 0;
  for (const v of sizes.values()) n += v;
  return n;
}

export type WasmArray = Float32Array | Float64Array | Int32Array | Uint8Array | Int8Array | Uint32Array | Uint16Array;
type Ctor<T> = { new (buf: ArrayBuffer, off: number, n: number): T; BYTES_PER_ELEMENT: number };

/** A fresh view of `n` elements at `ptr` (views die when memory grows: derive, use, drop). */
export function view<T extends WasmArray>(ctor: Ctor<T>, ptr: number, n: number): T {
  return new ctor(buffer(), ptr, n);
}

// Blocks handed out by allocIn(), as sorted starts and start -> end: only views inside one of these are used
// zero-copy (a stale subarray of a freed alloc() array is copied instead of being trusted).
const blockStarts: number[] = [];
const blockEnd = new Map<number, number>();
/** The arrays allocIn() returned and that are not freed yet: the only ones freeIn() accepts. */
const live = new WeakSet<ArrayBufferView>();

function firstAbove(ptr: number): number {
  let lo = 0, hi = blockStarts.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (blockStarts[mid]! <= ptr) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function releaseBlock(ptr: number): void {
  if (!blockEnd.delete(ptr)) return;
  const i = firstAbove(ptr) - 1;
  if (i >= 0 && blockStarts[i] === ptr) blockStarts.splice(i, 1);
  mfree(ptr);
}

/** True when `a` lies inside a live alloc() block of WASM memory, so kernels can use it without a copy. */
export function inWasm(a: ArrayBufferView): boolean {
  if (!buffers.has(a.buffer)) return false;
  const i = firstAbove(a.byteOffset) - 1;
  return i >= 0 && a.byteOffset + a.byteLength <= blockEnd.get(blockStarts[i]!)!;
}

/** True when `a`'s buffer was detached (transferred, or by WASM memory growth where buffers are not resizable). */
function isDetached(a: ArrayBufferView): boolean {
  const d = (a.buffer as { detached?: boolean }).detached;
  if (d !== undefined) return d;
  try {
    // runtimes without ArrayBuffer.prototype.detached: a detached buffer refuses to be sliced
    a.buffer.slice(0, 0);
    return false;
  } catch {
    return true;
  }
}

const owned = new FinalizationRegistry<number>((ptr) => { refs.delete(ptr); releaseBlock(ptr); });
/** Live allocIn() blocks: start -> [a weak reference to the array, the token its finalizer is registered with]. */
const refs = new Map<number, [WeakRef<WasmArray>, object]>();
/** Block start of each allocIn() array (a detached view's byteOffset reads 0). */
const ptrOf = new WeakMap<ArrayBufferView, number>();
let swept = false;
/**
 * Frames (calls) in progress: no sweep then, since a call may hold a block only through a view whose parent
 * array is already unreachable (a subarray of a dropped alloc() array), and freeing it mid-call would hand the
 * block to the call's own scratch.
 */
let framesOpen = 0;

/** Collect (where the runtime can, synchronously) and free the blocks whose arrays are gone; true if any was. */
function sweep(): boolean {
  const g = globalThis as { Bun?: { gc(force: boolean): void }; gc?: () => void };
  if (g.Bun) g.Bun.gc(true);
  else g.gc?.();
  let any = false;
  for (const [ptr, [ref, token]] of refs) {
    if (ref.deref() !== undefined) continue;
    owned.unregister(token);
    refs.delete(ptr);
    releaseBlock(ptr);
    any = true;
  }
  return any;
}

/** A typed array living in WASM memory (zero-copy for every op); freed when garbage-collected. */
export function allocIn<T extends WasmArray>(ctor: Ctor<T>, n: number): T {
  const ptr = malloc(n * ctor.BYTES_PER_ELEMENT);
  const a = view(ctor, ptr, n);
  a.fill(0 as never);
  blockStarts.splice(firstAbove(ptr), 0, ptr);
  blockEnd.set(ptr, ptr + sizes.get(ptr)!);
  live.add(a);
  ptrOf.set(a, ptr);
  const token = {};
  refs.set(ptr, [new WeakRef(a), token]);
  owned.register(a, ptr, token);
  return a;
}

/** Free an array that allocIn() returned, now instead of at garbage collection; anything else (a subarray, a freed array) is ignored. */
export function freeIn(a: ArrayBufferView): void {
  const p = ptrOf.get(a);
  if (p !== undefined && live.delete(a)) freeBlock(p);
}

/** Free the live allocIn() block starting at ptr (its arrays may be detached views); anything else is ignored. */
export function freeBlock(ptr: number): void {
  const r = refs.get(ptr);
  if (!r) return;
  owned.unregister(r[1]);
  refs.delete(ptr);
  const a = r[0].deref();
  if (a) live.delete(a);
  releaseBlock(ptr);
}

/**
 * One kernel call's marshalling: `input`/`output` give pointers, copying non-WASM arrays through scratch.
 * `run` allocates everything first, then calls the kernel, then copies outputs back and frees scratch.
 * A reservation may grow memory; where growth detaches views (Node 20) an alloc() array handed in after that is
 * detached: input/output then throw, and ready() re-checks every array taken zero-copy.
 */
export class Frame {
  constructor() {
    framesOpen++;
  }
  private temps: number[] = [];
  private copyBack: Array<[number, WasmArray]> = [];
  private copyIn: Array<[number, WasmArray]> = [];
  private zero: Array<[number, number]> = [];
  private inPlace: Array<[WasmArray, string]> = [];

  private reserve(nbytes: number): number {
    const p = malloc(nbytes);
    this.temps.push(p);
    return p;
  }
  private zeroCopy(a: WasmArray, what: string): number | undefined {
    if (isDetached(a)) throw detachedError(a, what);
    if (!inWasm(a)) return undefined;
    this.inPlace.push([a, what]);
    return a.byteOffset;
  }
  /** Bytes for this call that the caller fills itself (staging for streamed copies): neither zeroed nor copied. */
  staging(nbytes: number): number {
    return this.reserve(nbytes);
  }
  /** Scratch bytes for this call, zero-filled (kernels may rely on it). */
  scratch(nbytes: number): number {
    const p = this.reserve(nbytes);
    this.zero.push([p, nbytes]);
    return p;
  }
  input(a: WasmArray): number {
    const z = this.zeroCopy(a, "input");
    if (z !== undefined) return z;
    const p = this.reserve(a.byteLength);
    this.copyIn.push([p, a]);
    return p;
  }
  /** Written by the kernel, then copied back. Not zeroed: the kernel must write every element. */
  output(a: WasmArray): number {
    const z = this.zeroCopy(a, "output");
    if (z !== undefined) return z;
    const p = this.reserve(a.byteLength);
    this.copyBack.push([p, a]);
    return p;
  }
  /** Read and written (an in-place API). */
  inout(a: WasmArray): number {
    const p = this.input(a);
    if (!inWasm(a)) this.copyBack.push([p, a]);
    return p;
  }
  /** Copy inputs in; call after every scratch/input/output is reserved (a later malloc may grow memory). */
  ready(): void {
    for (const [a, what] of this.inPlace) if (isDetached(a) || !buffers.has(a.buffer)) throw detachedError(a, what);
    if (this.zero.length === 0 && this.copyIn.length === 0) return; // all zero-copy: nothing to do
    const u8 = new Uint8Array(buffer());
    for (const [p, n] of this.zero) u8.fill(0, p, p + n);
    for (const [p, a] of this.copyIn) {
      u8.set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), p);
      copyStats.inBytes += a.byteLength;
    }
  }
  done(): void {
    if (this.copyBack.length === 0) return this.release();
    const u8 = new Uint8Array(buffer());
    for (const [p, a] of this.copyBack) {
      new Uint8Array(a.buffer, a.byteOffset, a.byteLength).set(u8.subarray(p, p + a.byteLength));
      copyStats.outBytes += a.byteLength;
    }
    this.release();
  }
  release(): void {
    for (const p of this.temps) mfree(p);
    this.temps.length = 0;
    if (!this.closed) framesOpen--;
    this.closed = true;
  }
  private closed = false;
}

function detachedError(a: ArrayBufferView, what: string): NumedgeError {
  return new NumedgeError("shape", `an ${what} ${a.constructor.name} is detached (WASM memory grew during this call, or its buffer was transferred); `
    + "where growth detaches views (Node 20), alloc() big arrays first or pass plain arrays");
}

/**
 * Run one kernel call with marshalling: `setup` reserves pointers, `kernel` runs on them. Outputs are copied back
 * unless `keep` says the kernel's result is a failure (then caller-given non-WASM outputs stay untouched).
 */
export function call<P, R>(setup: (f: Frame) => P, kernel: (p: P) => R, keep?: (r: R) => boolean): R {
  const f = new Frame();
  try {
    const p = setup(f);
    f.ready();
    const r = kernel(p);
    if (keep === undefined || keep(r)) f.done();
    return r;
  } finally {
    f.release();
  }
}

/** Host bytes a streamed call moves per piece and thread: small enough that a piece is still in cache when the kernel reads it. */
const PIECE_BYTES = 1 << 17;
let pieceBytes = PIECE_BYTES, pieceThreads = 1;
/** The pool (pool.ts) splits each piece over its threads: pieces grow with them (past the pool's least split
 *  work), at least a unit per thread. */
export function setPieceThreads(n: number): void {
  pieceBytes = n > 1 ? 4 * PIECE_BYTES * n : PIECE_BYTES;
  pieceThreads = n;
}

/** One array of a streamed call: `per` elements per unit (row, block, group); the last unit may be partial. */
export type Part = [WasmArray, number];

/**
 * A kernel call streamed over `units` independent units. Host inputs are copied in one piece at a time through a
 * small staging buffer while the kernel runs piece by piece, so each copy is read back from cache, not memory;
 * host outputs are copied back after each piece, or, when `atomic`, written to a full-size region and copied back
 * only when every piece succeeded. Arrays in WASM memory are used in place. `setup(f, unitsPerPiece)` reserves
 * what every piece shares (tables, per-piece scratch) and returns its pointers; `kernel(ins, outs, shared, u0, n)`
 * gets byte pointers to the piece's first unit and returns -1 or the failing unit within the piece. Returns -1 or
 * the failing unit.
 */
export function stream(units: number, ins: Part[], outs: Part[], atomic: boolean,
  kernel: (ins: number[], outs: number[], shared: number[], u0: number, n: number) => number,
  setup: (f: Frame, step: number) => number[] = () => []): number {
  const host = (a: WasmArray) => !inWasm(a);
  let perUnit = 0;
  for (const [a, per] of ins) if (host(a)) perUnit += per * a.BYTES_PER_ELEMENT;
  if (!atomic) for (const [a, per] of outs) if (host(a)) perUnit += per * a.BYTES_PER_ELEMENT;
  const step = perUnit === 0 ? units : Math.max(1, Math.min(units, Math.max(pieceThreads, Math.floor(pieceBytes / perUnit))));
  const f = new Frame();
  try {
    // [pointer, staged]: arrays in WASM memory and atomic outputs have a full-size pointer; others a staging piece
    const inP = ins.map(([a, per]) => (host(a) ? [f.staging(step * per * a.BYTES_PER_ELEMENT), 1] : [f.input(a), 0]));
    const outP = outs.map(([a, per]) => (host(a) && !atomic ? [f.staging(step * per * a.BYTES_PER_ELEMENT), 1] : [f.output(a), 0]));
    const shared = setup(f, step);
    f.ready();
    const u8 = new Uint8Array(buffer());
    const range = (a: WasmArray, per: number, u0: number, n: number) => [u0 * per * a.BYTES_PER_ELEMENT, Math.min((u0 + n) * per, a.length) * a.BYTES_PER_ELEMENT];
    for (let u0 = 0; u0 < units; u0 += step) {
      const n = Math.min(step, units - u0);
      const ip = ins.map(([a, per], i) => {
        const [p, staged] = inP[i]!, [b0, b1] = range(a, per, u0, n);
        if (!staged) return p! + b0!;
        u8.set(new Uint8Array(a.buffer, a.byteOffset + b0!, b1! - b0!), p!);
        copyStats.inBytes += b1! - b0!;
        return p!;
      });
      const op = outs.map(([a, per], i) => {
        const [p, staged] = outP[i]!;
        return staged ? p! : p! + range(a, per, u0, n)[0]!;
      });
      const bad = kernel(ip, op, shared, u0, n);
      if (bad >= 0) return u0 + bad;
      outs.forEach(([a, per], i) => {
        if (!outP[i]![1]) return;
        const [b0, b1] = range(a, per, u0, n);
        new Uint8Array(a.buffer, a.byteOffset + b0!, b1! - b0!).set(u8.subarray(outP[i]![0]!, outP[i]![0]! + b1! - b0!));
        copyStats.outBytes += b1! - b0!;
      });
    }
    f.done();
    return -1;
  } finally {
    f.release();
  }
}
