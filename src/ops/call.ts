// One op call's arrays: which backend runs it, and what its kernels receive. Host typed arrays run on the
// current backend and come back as host arrays; DeviceArrays run on the backend that owns them and outputs
// are made there (no host copy). One call takes either kind, never both, and DeviceArrays of one backend only.
import { getBackend } from "../backends/index.ts";
import type { Backend } from "../backends/types.ts";
import { CTORS, DeviceArray, changed, dtypeOfHost, storageArray, type Dtype, type HostArray } from "../device.ts";
import { NumedgeError, overlaps, show } from "../errors.ts";
import { inWasm } from "../backends/wasm/runtime.ts";

/** One array argument: its dtype and length, and `k`, what the kernel gets (the host array, or the handle). */
export interface Arg {
  readonly name: string;
  readonly dtype: Dtype;
  readonly length: number;
  /** The host array, or the DeviceArray's handle (typed as a host array: see backends/types.ts). */
  readonly k: HostArray;
  readonly da?: DeviceArray;
}

/** Host arrays or DeviceArrays: what every op's array arguments may be. */
export type Arr<T extends HostArray = HostArray> = T | DeviceArray;

const NAMES: Record<Dtype, string> = { f32: "Float32Array", f64: "Float64Array", i32: "Int32Array", u8: "Uint8Array", i8: "Int8Array" };

export class OpCall {
  private dev: Arg | undefined;
  private host: Arg | undefined;

  /** The backend that runs the kernels: the DeviceArrays' owner, else the current backend. */
  get be(): Backend {
    return this.dev ? (this.dev.da!.owner as Backend) : getBackend();
  }

  /** True when the call's arrays are DeviceArrays. */
  get device(): boolean {
    return this.dev !== undefined;
  }

  /** An array argument (host typed array or DeviceArray), or undefined for anything else (the op says why). */
  arg(name: string, v: unknown): Arg | undefined {
    if (v instanceof DeviceArray) {
      if (v.disposed) throw new NumedgeError("backend", `${name} is a disposed DeviceArray (${v.dtype}[${v.length}] on ${v.backend})`);
      // k re-reads the handle on every use: a wasm handle detached by memory growth (Node 20) is re-derived
      v.handle; // throws now if disposed
      const a: Arg = { name, dtype: v.dtype, length: v.length, get k() { return v.handle as HostArray; }, da: v };
      if (this.dev && this.dev.da!.owner !== v.owner)
        throw new NumedgeError("backend", `${this.dev.name} is on backend ${this.dev.da!.backend} but ${name} is on ${v.backend}: one call runs on one backend (copy with toDevice(await ${name}.read(), { backend: "${this.dev.da!.backend}" }))`);
      this.dev ??= a;
      this.mixed();
      return a;
    }
    const dtype = dtypeOfHost(v);
    if (!dtype) return undefined;
    const a: Arg = { name, dtype, length: (v as HostArray).length, k: v as HostArray };
    this.host ??= a;
    this.mixed();
    return a;
  }

  private mixed(): void {
    if (this.dev && this.host)
      throw new NumedgeError("backend", `${this.dev.name} is a DeviceArray on ${this.dev.da!.backend} but ${this.host.name} is a host ${this.host.k.constructor.name}: `
        + `pass DeviceArrays for all of a call's arrays (toDevice(${this.host.name})) or host arrays for all`);
  }

  /**
   * A new output array of the call's kind: a DeviceArray on the call's backend, or a host array. Its contents are
   * unspecified on a device (the kernel writes it in full) unless `zero`: an accumulator, or an array the kernels
   * may leave partly unwritten, must ask for zeros.
   */
  out(name: string, dtype: Dtype, length: number, zero = false): Arg {
    if (!this.dev) {
      try {
        return { name, dtype, length, k: new CTORS[dtype](length) };
      } catch (e) {
        throw new NumedgeError("range", `cannot allocate ${name}: ${length} elements of ${dtype} (${e instanceof Error ? e.message : String(e)})`);
      }
    }
    const be = this.be;
    const da = new DeviceArray(be, storageArray(be.storage, length, dtype, zero), dtype, length);
    return { name, dtype, length, get k() { return da.handle as HostArray; }, da };
  }

  /** dst = src (same dtype and length), where the call's arrays live. */
  copy(src: Arg, dst: Arg): void {
    if (this.dev) this.be.storage.copy(src.k, dst.k);
    else dst.k.set(src.k as never);
    this.wrote(dst);
  }

  /** Dispose DeviceArrays made for one call (scratch); a no-op for host arrays. */
  drop(...as: Array<Arg | undefined | null>): void {
    for (const a of as) a?.da?.dispose();
  }

  /** Outputs the kernel wrote: their DeviceArrays' contents changed. */
  wrote(...as: Array<Arg | undefined | null>): void {
    for (const a of as) if (a?.da) changed(a.da);
  }
}

/** What the op returns for an argument or output: the host array, or the DeviceArray. */
export function valueOf<T>(a: Arg): T {
  return (a.da ?? a.k) as T;
}

/** "Float32Array" or "a f32 DeviceArray", for messages. */
export function typeName(dtype: Dtype): string {
  return NAMES[dtype];
}

/** True when two arguments share storage: the same DeviceArray, or host views sharing bytes. */
export function argsOverlap(a: Arg, b: Arg): boolean {
  return a.da || b.da ? a.da === b.da : overlaps(a.k, b.k); // distinct DeviceArrays never share storage
}

/** Throws "shape" if output `out` shares storage with input `x` (unless inPlaceOk and out is x itself). */
export function noOverlapArg(out: Arg, x: Arg, inPlaceOk = false): void {
  if (inPlaceOk && (out.da ?? out.k) === (x.da ?? x.k)) return;
  if (argsOverlap(out, x))
    throw new NumedgeError("shape", `${out.name} overlaps ${x.name}${inPlaceOk ? " without being it" : ""}; pass a separate array`);
}

/** A float argument: Float32Array / Float64Array or an f32 / f64 DeviceArray, non-empty. */
export function floatArg(c: OpCall, name: string, v: unknown): Arg {
  const a = c.arg(name, v);
  if (!a || (a.dtype !== "f32" && a.dtype !== "f64"))
    throw new NumedgeError("dtype", `${name} must be a Float32Array or Float64Array, got ${show(v)}`);
  if (a.length === 0)
    throw new NumedgeError("shape", `${name} is empty (length 0${!a.da && a.k.buffer.byteLength === 0 ? "; if it came from alloc(), WASM memory grew and detached it" : ""})`);
  return a;
}

/** An argument of exactly `dtype` (any length), with the usual "must be a X" message. */
export function typedArg(c: OpCall, name: string, v: unknown, dtype: Dtype): Arg {
  const a = c.arg(name, v);
  if (!a || a.dtype !== dtype) throw new NumedgeError("dtype", `${name} must be a ${NAMES[dtype]}, got ${show(v)}`);
  return a;
}

/** `out`, if given, must have x's dtype and length; else a new output like x. */
export function outLikeArg(c: OpCall, x: Arg, out: unknown, name = "out"): Arg {
  if (out === undefined) return c.out(name, x.dtype, x.length);
  const a = out === null ? undefined : c.arg(name, out);
  if (!a || a.dtype !== x.dtype)
    throw new NumedgeError("dtype", `${name} must be a ${NAMES[x.dtype]} like the input, got ${show(out)}`);
  if (a.length !== x.length) throw new NumedgeError("shape", `${name}.length ${a.length} must equal the input length ${x.length}`);
  return a;
}

/** An optional output of `dtype` and `length`: the given one (checked) or a new one. */
export function outArg(c: OpCall, name: string, given: unknown, dtype: Dtype, length: number): Arg {
  if (given === undefined) return c.out(name, dtype, length);
  const a = typedArg(c, name, given, dtype);
  if (a.length !== length) throw new NumedgeError("shape", `${name}.length ${a.length} must be ${length}`);
  return a;
}

// Index arrays are range-checked before a kernel trusts them. A DeviceArray's check is remembered until it is
// written again, so constant index data (a data set's labels) is checked once, not read back every step.
const checkedUpTo = new WeakMap<DeviceArray, { version: number; hi: number; n: number }>();

/** The elements of an argument on the host: the array itself where it is host memory, else a cached read. */
function hostView(a: Arg): HostArray {
  if (ArrayBuffer.isView(a.k)) return a.k; // host arrays, and wasm / reference handles
  const da = a.da!, c = lastRead.get(da);
  if (c && c.version === da.version) return c.data;
  const data = da.readSync();
  lastRead.set(da, { version: da.version, data });
  return data;
}
const lastRead = new WeakMap<DeviceArray, { version: number; data: HostArray }>();

/** Element i of an argument (a data-dependent size, such as offsets[E]). */
export function elementAt(a: Arg, i: number): number {
  return hostView(a)[i]!;
}

/**
 * The first n (default all) elements of `a` must lie in [0, hi); else "range" with `describe(i, value)`. Returns
 * the argument the kernel must use: a host array over a SharedArrayBuffer is copied first, so another thread cannot
 * change an index between this check and the kernel. Not an alloc() array: those stay zero-copy. WASM memory is
 * shared with the pool's workers, which never write an op's inputs; a caller who hands an alloc() array to a worker
 * of its own and rewrites it during a call races the call (the kernel stays inside WASM memory, but may write
 * anywhere in it).
 */
export function checkIndices(a0: Arg, hi: number, describe: (i: number, v: number) => string, n = a0.length): Arg {
  const a: Arg = !a0.da && a0.k.buffer instanceof SharedArrayBuffer && !inWasm(a0.k) ? { name: a0.name, dtype: a0.dtype, length: a0.length, k: a0.k.slice() } : a0;
  const da = a.da;
  if (da) {
    const c = checkedUpTo.get(da);
    if (c && c.version === da.version && c.hi === hi && c.n === n) return a;
  }
  const v = hostView(a);
  for (let i = 0; i < n; i++) {
    const x = v[i]!;
    if (!(x >= 0 && x < hi)) throw new NumedgeError("range", describe(i, x));
  }
  if (da) checkedUpTo.set(da, { version: da.version, hi, n });
  return a;
}
