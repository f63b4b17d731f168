// Where data lives. A DeviceArray is owned by one backend and stays in that backend's storage (WASM memory,
// a tf.Tensor, a plain array for the reference) between calls; ops given DeviceArrays return DeviceArrays on
// the same backend without a host copy. Host typed arrays keep working everywhere: they are copied in and out.
import { NumedgeError, show } from "./errors.ts";
import type { Backend, Captured } from "./backends/types.ts";

/** Arrays written while device work is being recorded (recordOn), so that each replay marks them changed again. */
let recordedWrites: Set<DeviceArray> | null = null;

/** A DeviceArray's contents changed (an op or a write): bump its version, which caches of its contents compare. */
export function changed(da: DeviceArray): void {
  da.version++;
  recordedWrites?.add(da);
}

/**
 * The device work `body` queues on backend `be`, recorded (not run) for replay: be.capture, plus the version bumps
 * of the arrays body writes, repeated by each replay. Throws NumedgeError where the backend cannot record it.
 */
export function recordOn(be: Backend, body: () => void): Captured {
  if (!be.capture) throw new NumedgeError("unsupported", `backend ${be.id} cannot record device work`);
  const writes = new Set<DeviceArray>();
  recordedWrites = writes;
  let inner: Captured;
  try {
    inner = be.capture(body);
  } finally {
    recordedWrites = null;
  }
  return {
    replay() {
      inner.replay();
      for (const da of writes) da.version++;
    },
    dispose: () => inner.dispose(),
  };
}

/** Element types a DeviceArray can hold. */
export type Dtype = "f32" | "f64" | "i32" | "u8" | "i8";

/** The host typed array type of each dtype. */
export interface HostOf {
  f32: Float32Array;
  f64: Float64Array;
  i32: Int32Array;
  u8: Uint8Array;
  i8: Int8Array;
}
export type HostArray = HostOf[Dtype];

export const CTORS: { readonly [D in Dtype]: { new (n: number): HostOf[D]; new (b: ArrayBufferLike, o: number, n: number): HostOf[D]; BYTES_PER_ELEMENT: number; from(a: ArrayLike<number>): HostOf[D] } } = {
  f32: Float32Array, f64: Float64Array, i32: Int32Array, u8: Uint8Array, i8: Int8Array,
};

/** The dtype of a host typed array, or undefined for anything else. */
export function dtypeOfHost(a: unknown): Dtype | undefined {
  if (a instanceof Float32Array) return "f32";
  if (a instanceof Float64Array) return "f64";
  if (a instanceof Int32Array) return "i32";
  if (a instanceof Uint8Array) return "u8";
  if (a instanceof Int8Array) return "i8";
  return undefined;
}

/**
 * A backend's storage, in the shape of tinygrad's Allocator and tfjs-core's KernelBackend: allocate, free, copy
 * in, copy out. `H` is the backend's handle; kernels of that backend receive handles wherever a DeviceArray was
 * passed. `read` and `write` are the only ways data crosses between the host and the backend.
 */
export interface Storage<H = unknown> {
  /** A zero-filled array of `length` elements of `dtype`. */
  alloc(length: number, dtype: Dtype): H;
  /**
   * The same with its contents unspecified, for an array about to be written in full (an op's output, toDevice):
   * where zeroing costs a device operation (cuda: a memset per array), this skips it. Absent: alloc serves.
   */
  allocOutput?(length: number, dtype: Dtype): H;
  free(h: H): void;
  /** Copy a host array of the handle's dtype and length in. */
  write(h: H, src: HostArray): void;
  /** A fresh host copy. */
  read(h: H): HostArray;
  /** Set every element to 0 where the data lives. */
  zero(h: H): void;
  /** dst = src where the data lives (same dtype and length). */
  copy(src: H, dst: H): void;
  /** A fresh handle when `h` went stale (wasm views detached by memory growth), else undefined. */
  refresh?(h: H): H | undefined;
  /** True when the storage frees a handle itself once it is unreachable (so DeviceArrays need no finalizer). */
  collects?: boolean;
  /** The same, without blocking the thread where the backend can (default: read). */
  readAsync?(h: H): Promise<HostArray>;
}

/** A storage array for data about to be written in full (allocOutput where the storage has it), or zero-filled. */
export function storageArray<H>(st: Storage<H>, length: number, dtype: Dtype, zero: boolean): H {
  return !zero && st.allocOutput ? st.allocOutput(length, dtype) : st.alloc(length, dtype);
}

/** The part of a backend a DeviceArray needs: its name and its storage. */
export interface StorageOwner {
  /** Unique among loaded backends ("wasm", "reference", "tfjs-cpu", ...). */
  readonly id: string;
  readonly storage: Storage;
}

// Storage freed when a DeviceArray is garbage-collected without dispose(). Held: the owner and the handle.
const collected = new FinalizationRegistry<{ owner: StorageOwner; h: unknown }>(({ owner, h }) => owner.storage.free(h));

/**
 * An array owned by one backend. Ops given DeviceArrays run on that backend and return DeviceArrays there, so
 * nothing crosses to the host until you call read(). Made by toDevice() and empty(); freed by dispose() (or
 * when garbage-collected).
 * @example const x = toDevice(logits); const p = softmax(x, { cols: 113 }); console.log(await p.read())
 */
export class DeviceArray<D extends Dtype = Dtype> {
  /** Bumped each time the array is written (by an op or by write()): lets backends cache facts about contents. */
  version = 0;
  private h: unknown;

  /** @internal Use toDevice() or empty(). */
  constructor(readonly owner: StorageOwner, handle: unknown, readonly dtype: D, readonly length: number) {
    this.h = handle;
    if (!owner.storage.collects) collected.register(this, { owner, h: handle }, this);
  }

  /** The owning backend's id ("wasm", "reference", "tfjs-cpu", ...). */
  get backend(): string {
    return this.owner.id;
  }

  get disposed(): boolean {
    return this.h === undefined;
  }

  /** @internal The backend's handle (what its kernels receive). */
  get handle(): unknown {
    if (this.h === undefined) throw new NumedgeError("backend", `this DeviceArray (${this.dtype}[${this.length}] on ${this.backend}) was disposed`);
    const fresh = this.owner.storage.refresh?.(this.h);
    if (fresh !== undefined) this.h = fresh;
    return this.h;
  }

  /** A host copy of the contents, waiting for the backend without blocking where it can. @example const y = await p.read() */
  async read(): Promise<HostOf[D]> {
    const s = this.owner.storage, h = this.handle;
    return (await (s.readAsync ? s.readAsync(h) : s.read(h))) as HostOf[D];
  }

  /** A host copy of the contents, now (blocks until the backend is done). @example const y = p.readSync() */
  readSync(): HostOf[D] {
    return this.owner.storage.read(this.handle) as HostOf[D];
  }

  /** Overwrite the contents from a host array of the same dtype and length. @example w.write(init) */
  write(src: HostOf[D]): void {
    if (dtypeOfHost(src) !== this.dtype || src.length !== this.length)
      throw new NumedgeError("shape", `write needs a ${CTORS[this.dtype].name}(${this.length}), got ${show(src)}`);
    this.owner.storage.write(this.handle, src);
    changed(this);
  }

  /** Set every element to 0, on the backend (no host traffic). @example grad.zero() */
  zero(): void {
    this.owner.storage.zero(this.handle);
    changed(this);
  }

  /** Free the storage now; later use throws. Idempotent. @example x.dispose() */
  dispose(): void {
    if (this.h === undefined) return;
    if (!this.owner.storage.collects) collected.unregister(this);
    const h = this.h;
    this.h = undefined;
    this.owner.storage.free(h);
  }

  toString(): string {
    return `DeviceArray(${this.dtype}[${this.length}] on ${this.backend}${this.disposed ? ", disposed" : ""})`;
  }
}

/** A host array as it is, or a DeviceArray's contents read back (for host-side measurements). @example hostCopy(net.params[0]) */
export function hostCopy<T extends HostArray>(t: T | DeviceArray): T {
  return (t instanceof DeviceArray ? t.readSync() : t) as T;
}
