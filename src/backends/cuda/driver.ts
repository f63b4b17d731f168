// The CUDA driver API through FFI (ffi.ts: Bun, Deno or Node 26+), for the cuda backend: only libcuda.so.1 (the NVIDIA
// driver) is needed; NVRTC is used when present. Signatures as verified on an H200 (driver 580, CUDA 13): handles
// read back from 64-bit out-parameters, CUdeviceptr as u64, kernel parameters as an array of addresses of one small
// typed array each.
import { env } from "../../env.ts";
import { NumedgeError } from "../../errors.ts";
import { libPaths, loadFfi, openFirst, type Ffi } from "./ffi.ts";

/** One kernel argument: a device pointer, a 32- or 64-bit integer, or a double. */
export type KernelArg = { p: bigint } | { i32: number } | { i64: number } | { f32: number } | { f64: number };

export interface DeviceFacts {
  name: string;
  /** Compute capability as 10 * major + minor (90 for an H100/H200). */
  sm: number;
  totalBytes: number;
  driverVersion: number;
}

/** A captured CUDA graph: launch() replays its work on the driver's stream. */
export interface Graph {
  launch(): void;
  destroy(): void;
}

export interface Driver {
  readonly ffi: Ffi;
  readonly device: DeviceFacts;
  /** The stream every launch, memset and cuBLAS call goes to (0n: the legacy default stream). */
  readonly stream: bigint;
  alloc(bytes: number): bigint;
  free(p: bigint): void;
  htod(p: bigint, src: ArrayBufferView): void;
  dtoh(dst: ArrayBufferView, p: bigint): void;
  dtod(dst: bigint, src: bigint, bytes: number): void;
  zero(p: bigint, bytes: number): void;
  /** Load a cubin or PTX image; returns its functions (CUfunction handles) by name. */
  module(image: Uint8Array): (name: string) => bigint;
  /** Launch on a grid of blocks (x, or [x, y]) of threads (x, or [x, y]), with sharedBytes of dynamic shared memory
   *  per block (at most 48 KiB: more needs an opt-in no kernel here asks for). */
  launch(fn: bigint, grid: number | [number, number], block: number | [number, number], args: KernelArg[], sharedBytes?: number): void;
  sync(): void;
  /**
   * Record what `body` launches (kernels, memsets, cuBLAS calls) on the stream as a CUDA graph, without running it.
   * Copies and synchronizes inside `body` throw NumedgeError("unsupported"): they would break the capture.
   * Absent where the device cannot capture.
   */
  capture?(body: () => void): Graph;
}

/**
 * cuLaunchKernel's kernelParams for a launch's arguments: each in its own 8-byte slot of one block reused by every
 * launch (the driver copies the values before returning), and the address of the array of the slots' addresses.
 */
export function kernelParams(ffi: Ffi): (args: KernelArg[]) => bigint {
  const MAX_ARGS = 32, slotBytes = new BigUint64Array(MAX_ARGS), slots = new DataView(slotBytes.buffer);
  const base = ffi.addr(slotBytes), params = BigUint64Array.from({ length: MAX_ARGS }, (_, i) => base + BigInt(i * 8));
  return (args) => {
    if (args.length > MAX_ARGS) throw new NumedgeError("backend", `cuda: a kernel with ${args.length} arguments (at most ${MAX_ARGS})`);
    args.forEach((a, i) => {
      const o = i * 8;
      if ("p" in a) slots.setBigUint64(o, a.p, true);
      else if ("i32" in a) {
        // setInt32 would wrap a size past 2^31 - 1 into a negative int: a wrong result, never an error
        if ((a.i32 | 0) !== a.i32) throw new NumedgeError("backend", `cuda: kernel argument ${i} (int) is ${a.i32}, not a 32-bit integer`);
        slots.setInt32(o, a.i32, true);
      }
      else if ("i64" in a) slots.setBigInt64(o, BigInt(a.i64), true);
      else if ("f32" in a) slots.setFloat32(o, a.f32, true);
      else slots.setFloat64(o, a.f64, true);
    });
    // The array's address, taken each launch: a closure holding only an address taken once (and not the array)
    // let the GC free the array, so later launches passed freed memory as kernelParams (the cuda-cpu suites crashed).
    return ffi.addr(params);
  };
}

/**
 * Open the driver and the first device, or say why not (no runtime FFI, no driver, no device). The driver library is
 * `library` (a path) if given, else NUMEDGE_LIBCUDA's, else libcuda.so.1 where ldconfig or the loader finds it.
 */
export async function openDriver(library?: string): Promise<Driver | string> {
  const ffi = await loadFfi();
  if (typeof ffi === "string") return ffi;
  const path = library ?? env.NUMEDGE_LIBCUDA;
  const opened = openFirst(ffi, path ? [path] : libPaths("libcuda.so.1"), {
    cuInit: ["u32"],
    cuDriverGetVersion: ["buf"],
    cuDeviceGetCount: ["buf"],
    cuDeviceGet: ["buf", "i32"],
    cuDeviceGetName: ["buf", "i32", "i32"],
    cuDeviceGetAttribute: ["buf", "i32", "i32"],
    cuDeviceTotalMem_v2: ["buf", "i32"],
    cuDevicePrimaryCtxRetain: ["buf", "i32"],
    cuCtxSetCurrent: ["ptr"],
    cuMemAlloc_v2: ["buf", "usize"],
    cuMemFree_v2: ["u64"],
    cuMemGetInfo_v2: ["buf", "buf"],
    cuMemcpyHtoD_v2: ["u64", "buf", "usize"],
    cuMemcpyDtoH_v2: ["buf", "u64", "usize"],
    cuMemcpyDtoD_v2: ["u64", "u64", "usize"],
    cuMemsetD8Async: ["u64", "u8", "usize", "ptr"],
    cuStreamCreate: ["buf", "u32"],
    cuModuleLoadData: ["buf", "buf"],
    cuModuleLoadDataEx: ["buf", "buf", "u32", "buf", "buf"],
    cuModuleGetFunction: ["buf", "ptr", "buf"],
    cuLaunchKernel: ["ptr", "u32", "u32", "u32", "u32", "u32", "u32", "u32", "ptr", "ptr", "ptr"],
    cuCtxSynchronize: [],
    cuGetErrorName: ["i32", "buf"],
    cuGetErrorString: ["i32", "buf"],
  } as const);
  if ("why" in opened) return `${library ?? (path ? "NUMEDGE_LIBCUDA" : "libcuda.so.1")} could not be loaded (no NVIDIA driver here): ${opened.why}`;
  const cu = opened.lib.fn;
  // CUDA graphs (a driver for CUDA 11.4 or newer): without them the backend works, only capture() is absent
  const graphs = openFirst(ffi, [opened.path], {
    cuStreamBeginCapture_v2: ["ptr", "u32"],
    cuStreamEndCapture: ["ptr", "buf"],
    cuGraphInstantiateWithFlags: ["buf", "ptr", "u64"],
    cuGraphLaunch: ["ptr", "ptr"],
    cuGraphExecDestroy: ["ptr"],
    cuGraphDestroy: ["ptr"],
  } as const);
  const cg = "why" in graphs ? undefined : graphs.lib.fn;
  const text = (p: bigint) => ffi.cstring(p);
  const errName = (rc: number) => {
    const n = new BigUint64Array(1), s = new BigUint64Array(1);
    cu.cuGetErrorName(rc, n);
    cu.cuGetErrorString(rc, s);
    return `${text(n[0]!) || `CUresult ${rc}`}: ${text(s[0]!)}`;
  };
  // After these the context is unusable (CUDA's "sticky" errors: a kernel faulted); any other error leaves it, and
  // the backend, usable for the next call.
  const STICKY = new Set([700, 702, 714, 715, 716, 717, 718, 719]);
  const check = (rc: number, what: string) => {
    if (rc === 0) return;
    const lost = STICKY.has(rc) ? "; the CUDA context is lost: restart the process to use the GPU again" : "";
    throw new NumedgeError("backend", `cuda: ${what} failed (${errName(rc)})${lost}`);
  };
  const init = cu.cuInit(0);
  if (init !== 0) return `cuInit failed (${errName(init)}): the driver found no usable GPU`;
  const count = new Int32Array(1);
  check(cu.cuDeviceGetCount(count), "cuDeviceGetCount");
  if (count[0] === 0) return "the NVIDIA driver reports no CUDA device";
  const dev = new Int32Array(1);
  check(cu.cuDeviceGet(dev, 0), "cuDeviceGet");
  const nameBuf = new Uint8Array(256), maj = new Int32Array(1), min = new Int32Array(1), total = new BigUint64Array(1), ver = new Int32Array(1);
  check(cu.cuDeviceGetName(nameBuf, 256, dev[0]!), "cuDeviceGetName");
  check(cu.cuDeviceGetAttribute(maj, 75, dev[0]!), "cuDeviceGetAttribute(major)");
  check(cu.cuDeviceGetAttribute(min, 76, dev[0]!), "cuDeviceGetAttribute(minor)");
  check(cu.cuDeviceTotalMem_v2(total, dev[0]!), "cuDeviceTotalMem");
  check(cu.cuDriverGetVersion(ver), "cuDriverGetVersion");
  const ctx = new BigUint64Array(1);
  check(cu.cuDevicePrimaryCtxRetain(ctx, dev[0]!), "cuDevicePrimaryCtxRetain");
  check(cu.cuCtxSetCurrent(ctx[0]!), "cuCtxSetCurrent");
  const device: DeviceFacts = {
    name: new TextDecoder().decode(nameBuf).split("\0")[0]!, sm: maj[0]! * 10 + min[0]!, totalBytes: Number(total[0]), driverVersion: ver[0]!,
  };
  const freeBytes = () => {
    const f = new BigUint64Array(1), t = new BigUint64Array(1);
    cu.cuMemGetInfo_v2(f, t);
    return Number(f[0]);
  };
  // One stream of our own, not the legacy default stream (which cannot be captured). It is a blocking stream, so
  // the synchronous copies (on the legacy stream) still wait for its work and it for them: the order is as before.
  const st = new BigUint64Array(1);
  check(cu.cuStreamCreate(st, 0), "cuStreamCreate");
  const stream = st[0]!;
  const pack = kernelParams(ffi);
  // NUMEDGE_CUDA_SYNC=1: wait after every launch, so a kernel that faults is named (else the next copy reports it)
  const syncEach = env.NUMEDGE_CUDA_SYNC === "1", names = new Map<bigint, string>();
  let capturing = false;
  const notCapturing = (what: string) => {
    if (capturing) throw new NumedgeError("unsupported", `cuda: ${what} while capturing a CUDA graph (only launches and memsets can be captured)`);
  };
  return {
    ffi,
    device,
    stream,
    alloc(bytes) {
      const p = new BigUint64Array(1);
      const rc = cu.cuMemAlloc_v2(p, BigInt(Math.max(bytes, 1)));
      if (rc === 2) throw new NumedgeError("range", `cuda: out of device memory: asked for ${bytes} bytes, ${freeBytes()} free of ${device.totalBytes}`);
      check(rc, `cuMemAlloc(${bytes} bytes)`);
      return p[0]!;
    },
    free: (p) => check(cu.cuMemFree_v2(p), "cuMemFree"),
    htod: (p, src) => { notCapturing("a copy to the device"); if (src.byteLength) check(cu.cuMemcpyHtoD_v2(p, src, BigInt(src.byteLength)), "cuMemcpyHtoD"); },
    dtoh: (dst, p) => { notCapturing("a copy from the device"); if (dst.byteLength) check(cu.cuMemcpyDtoH_v2(dst, p, BigInt(dst.byteLength)), "cuMemcpyDtoH"); },
    dtod: (dst, src, bytes) => { notCapturing("a device copy"); if (bytes) check(cu.cuMemcpyDtoD_v2(dst, src, BigInt(bytes)), "cuMemcpyDtoD"); },
    zero: (p, bytes) => { if (bytes) check(cu.cuMemsetD8Async(p, 0, BigInt(bytes), stream), "cuMemsetD8Async"); },
    module(image) {
      const m = new BigUint64Array(1);
      const rc = cu.cuModuleLoadData(m, image);
      if (rc !== 0) {
        // again, for the JIT's error log (CU_JIT_ERROR_LOG_BUFFER, _SIZE_BYTES): what the driver refused in a PTX image
        const log = new Uint8Array(16384), values = BigUint64Array.of(ffi.addr(log), BigInt(log.length));
        cu.cuModuleLoadDataEx(m, image, 2, Int32Array.of(5, 6), values);
        const text = new TextDecoder().decode(log).split("\0")[0]!.trim();
        check(rc, `cuModuleLoadData${text ? ` (JIT log: ${text.slice(0, 2000)})` : ""}`);
      }
      const mod = m[0]!;
      return (name) => {
        const f = new BigUint64Array(1);
        check(cu.cuModuleGetFunction(f, mod, new TextEncoder().encode(name + "\0")), `cuModuleGetFunction(${name})`);
        names.set(f[0]!, name);
        return f[0]!;
      };
    },
    launch(fn, grid, block, args, sharedBytes = 0) {
      const [gx, gy] = typeof grid === "number" ? [grid, 1] : grid, [bx, by] = typeof block === "number" ? [block, 1] : block;
      check(cu.cuLaunchKernel(fn, gx, gy, 1, bx, by, 1, sharedBytes, stream, pack(args), 0n), `cuLaunchKernel(${names.get(fn)})`);
      if (syncEach && !capturing) check(cu.cuCtxSynchronize(), `${names.get(fn)}<<<[${gx}, ${gy}], [${bx}, ${by}], ${sharedBytes}>>> (NUMEDGE_CUDA_SYNC=1)`);
    },
    sync() {
      notCapturing("a synchronize");
      check(cu.cuCtxSynchronize(), "cuCtxSynchronize");
    },
    capture: cg && ((body) => {
      notCapturing("a capture");
      // relaxed (2): cuMemAlloc stays allowed inside (the pool may grow); the graph is instantiated, then dropped
      check(cg.cuStreamBeginCapture_v2(stream, 2), "cuStreamBeginCapture");
      capturing = true;
      let failed: unknown;
      try {
        body();
      } catch (e) {
        failed = e ?? new Error("capture body threw");
      }
      capturing = false;
      const g = new BigUint64Array(1), exec = new BigUint64Array(1);
      const rc = cg.cuStreamEndCapture(stream, g); // always: it ends the capture, a failed one too
      try {
        if (failed) throw failed;
        check(rc, "cuStreamEndCapture");
        check(cg.cuGraphInstantiateWithFlags(exec, g[0]!, 0n), "cuGraphInstantiateWithFlags");
      } finally {
        if (g[0]) cg.cuGraphDestroy(g[0]);
      }
      const e = exec[0]!;
      return {
        launch() {
          check(cg.cuGraphLaunch(e, stream), "cuGraphLaunch");
          if (syncEach) check(cu.cuCtxSynchronize(), "a CUDA graph's launches (NUMEDGE_CUDA_SYNC=1)");
        },
        destroy: () => check(cg.cuGraphExecDestroy(e), "cuGraphExecDestroy"),
      };
    }),
  };
}
