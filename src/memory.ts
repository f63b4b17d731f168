// Where arrays live: DeviceArrays on any backend (toDevice, empty), and alloc(), the wasm backend's storage seen
// as plain typed arrays that every op uses in place.
import { loadedBackend } from "./backends/index.ts";
import { allocIn, freeIn, resetMemory } from "./backends/wasm/runtime.ts";
import { CTORS, DeviceArray, dtypeOfHost, storageArray, type Dtype, type HostOf } from "./device.ts";
import { NumedgeError, checkInt, readOptions, show } from "./errors.ts";

const ALLOC_DTYPES = ["f32", "f64", "i32", "u8"] as const;
type AllocDtype = (typeof ALLOC_DTYPES)[number];

export interface DeviceOptions {
  /** Id of a loaded backend ("wasm", "reference", "tfjs-cpu", ...; "tfjs" = the tfjs engine in use). Default:
   *  the current backend (under "auto", wasm). */
  backend?: string;
}

function backendOpt(o: unknown) {
  const { backend } = readOptions(o, ["backend"]);
  if (backend !== undefined && typeof backend !== "string") throw new NumedgeError("dtype", `backend must be a string, got ${show(backend)}`);
  return loadedBackend(backend as string | undefined);
}

/**
 * A copy of a host typed array on a backend (default: the current one), as a DeviceArray: ops given it run there
 * and return DeviceArrays there, with no host copy until read().
 * @example const w = toDevice(Float32Array.from(init)); const y = matmul(x, w, { m, k, n }); await y.read()
 */
export function toDevice<T extends HostOf[Dtype]>(x: T, o?: DeviceOptions): DeviceArray {
  const dtype = dtypeOfHost(x);
  if (!dtype) throw new NumedgeError("dtype", `x must be a Float32Array, Float64Array, Int32Array, Uint8Array or Int8Array, got ${show(x)}`);
  const be = backendOpt(o);
  const d = new DeviceArray(be, storageArray(be.storage, x.length, dtype, false), dtype, x.length);
  if (x.length > 0) be.storage.write(d.handle, x);
  return d;
}

/**
 * A zero-filled DeviceArray of `length` elements of `dtype` on a backend (default: the current one).
 * @example const grad = empty(4096, "f32")
 */
export function empty<D extends Dtype>(length: number, dtype: D, o?: DeviceOptions): DeviceArray<D> {
  checkInt("length", length, 0, 2 ** 31 - 1);
  if (typeof dtype !== "string" || !Object.hasOwn(CTORS, dtype))
    throw new NumedgeError("dtype", `dtype must be one of ${Object.keys(CTORS).join(", ")}, got ${show(dtype)}`);
  const be = backendOpt(o);
  return new DeviceArray(be, be.storage.alloc(length, dtype), dtype, length);
}

/**
 * A zero-filled array inside WASM memory, used zero-copy by the wasm backend (n elements of dtype "f32"
 * (default), "f64", "i32" or "u8"): the wasm backend's storage, seen as a plain typed array you can fill and
 * read directly (toDevice()/empty() give the same storage as a DeviceArray, portable to every backend).
 * It is freed when garbage collected (or by free()). Under Bun, Deno and Node >= 22 the memory's buffer is
 * resizable, so growth keeps alloc() arrays valid; under Node 20 growth detaches them (length 0, and ops then
 * throw "shape ... detached"): there, allocate big buffers first.
 * Views of it (subarray, new Float32Array(x.buffer, ...)) are zero-copy too while it is alive; they must not
 * outlive it: once it is freed or collected its block is reused, and a view that lies inside someone else's
 * block then aliases their data (a view over a free block is merely copied). Keep the alloc() array referenced.
 * @example const x = alloc(4096 * 64); x.set(data); softmax(x, { cols: 64, out: x })
 */
export function alloc(n: number): Float32Array;
export function alloc<D extends AllocDtype>(n: number, dtype: D): HostOf[D];
export function alloc(n: number, dtype: AllocDtype = "f32") {
  checkInt("n", n, 0, 2 ** 30);
  if (!(ALLOC_DTYPES as readonly string[]).includes(dtype as string))
    throw new NumedgeError("dtype", `dtype must be one of ${ALLOC_DTYPES.join(", ")}, got ${String(dtype)}`);
  return allocIn(CTORS[dtype] as never, n);
}

/**
 * Release an array from alloc() now. Only the arrays alloc() returned are freed: anything else (plain arrays,
 * subarrays of an alloc() array, an array already freed) is ignored. @example free(x)
 */
export function free(a: ArrayBufferView): void {
  freeIn(a);
}

/**
 * Give the wasm backend's grown memory back to the system. WebAssembly memory only grows (to the largest amount
 * live at once: alloc() arrays, wasm DeviceArrays, the staging of a call), so this replaces the wasm instance with
 * a fresh 16 MiB one. Only possible once no alloc() array or wasm DeviceArray is alive: free() / dispose() them
 * first (dropped ones are collected here); otherwise it throws NumedgeError("unsupported") saying how many remain.
 * @example x.dispose(); const { before, after } = releaseMemory() // bytes of WASM memory
 */
export function releaseMemory(): { before: number; after: number } {
  return resetMemory();
}
