// The wasm backend's storage: blocks of WASM memory from the allocator in runtime.ts, handed to kernels as typed
// array views (zero-copy). alloc() in the public API is the same storage seen as a plain typed array.
// Where memory growth detaches views (Node 20) a handle is re-derived from its block on use (refresh), so a
// DeviceArray survives growth; blocks are freed by pointer, and garbage collection of the view returns them.
import { CTORS, type Dtype, type HostArray, type Storage } from "../../device.ts";
import { allocIn, asm, freeBlock, view, type WasmArray } from "./runtime.ts";

interface Block {
  ptr: number;
  n: number;
  ctor: (typeof CTORS)[Dtype];
  /** The array allocIn() returned: kept reachable while any view of the block is, so GC frees the block only then. */
  first: WasmArray;
  freed: boolean;
}
const blocks = new WeakMap<WasmArray, Block>();

/** The handle's view, re-derived if growth detached it. */
function live(h: WasmArray): WasmArray {
  if (h.buffer === asm.memory.buffer) return h;
  const b = blocks.get(h)!;
  const v = view(b.ctor as never, b.ptr, b.n) as WasmArray;
  blocks.set(v, b);
  return v;
}

export const wasmStorage: Storage<WasmArray> = {
  alloc(length: number, dtype: Dtype) {
    const a = allocIn(CTORS[dtype] as never, length) as WasmArray;
    blocks.set(a, { ptr: a.byteOffset, n: length, ctor: CTORS[dtype], first: a, freed: false });
    return a;
  },
  free(h) {
    const b = blocks.get(h);
    if (!b || b.freed) return;
    b.freed = true;
    freeBlock(b.ptr);
  },
  refresh: (h) => (h.buffer === asm.memory.buffer ? undefined : live(h)),
  collects: true,
  write: (h, src: HostArray) => live(h).set(src as never),
  read: (h) => live(h).slice() as HostArray,
  zero: (h) => live(h).fill(0),
  copy: (src, dst) => live(dst).set(live(src) as never),
};
