// Arrays that live in WASM memory: every op uses them in place, with no copy in or out.
import { NumedgeError, checkInt } from "./errors.ts";
import { allocIn, freeIn } from "./backends/wasm/runtime.ts";

const CTORS = { f32: Float32Array, f64: Float64Array, i32: Int32Array, u8: Uint8Array } as const;
type Dtype = keyof typeof CTORS;

/**
 * A zero-filled array inside WASM memory, used zero-copy by the wasm backend (n elements of dtype "f32"
 * (default), "f64", "i32" or "u8"). It is freed when garbage collected (or by free()). Under Bun, Deno and
 * Node >= 22 the memory's buffer is resizable, so growth keeps alloc() arrays valid; under Node 20 growth
 * detaches them (length 0, and ops then throw "shape ... detached"): there, allocate big buffers first.
 * Views of it (subarray, new Float32Array(x.buffer, ...)) are zero-copy too while it is alive; they must not
 * outlive it: once it is freed or collected its block is reused, and a view that lies inside someone else's
 * block then aliases their data (a view over a free block is merely copied). Keep the alloc() array referenced.
 * @example const x = alloc(4096 * 64); x.set(data); softmax(x, { cols: 64, out: x })
 */
export function alloc(n: number): Float32Array;
export function alloc<D extends Dtype>(n: number, dtype: D): InstanceType<(typeof CTORS)[D]>;
export function alloc(n: number, dtype: Dtype = "f32") {
  checkInt("n", n, 0, 2 ** 30);
  const C = Object.hasOwn(CTORS, dtype) ? CTORS[dtype] : undefined;
  if (!C) throw new NumedgeError("dtype", `dtype must be one of ${Object.keys(CTORS).join(", ")}, got ${String(dtype)}`);
  return allocIn(C as never, n);
}

/**
 * Release an array from alloc() now. Only the arrays alloc() returned are freed: anything else (plain arrays,
 * subarrays of an alloc() array, an array already freed) is ignored. @example free(x)
 */
export function free(a: ArrayBufferView): void {
  freeIn(a);
}
