// The wasm backend's storage: blocks of WASM memory from the allocator in runtime.ts, handed to kernels as typed
// array views (zero-copy). alloc() in the public API is the same storage seen as a plain typed array.
import { CTORS, type Dtype, type HostArray, type Storage } from "../../device.ts";
import { allocIn, freeIn, type WasmArray } from "./runtime.ts";

export const wasmStorage: Storage<WasmArray> = {
  alloc: (length: number, dtype: Dtype) => allocIn(CTORS[dtype] as never, length),
  free: (h) => freeIn(h),
  write: (h, src: HostArray) => h.set(src as never),
  read: (h) => h.slice() as HostArray,
  zero: (h) => h.fill(0),
  copy: (src, dst) => dst.set(src as never),
};
