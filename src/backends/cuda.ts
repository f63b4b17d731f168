// The cuda backend: the CUDA driver API through FFI (backends/cuda/driver.ts), storage in device memory, kernels
// in CUDA C (backends/cuda/kernels.cu) compiled by NVRTC for the device when a libnvrtc is found (the cubin is
// cached per source hash and architecture), else the shipped compute_75 PTX, JIT-compiled by the driver.
// Kernels with a CUDA version take device buffers as they are; host arrays are copied to the device and back
// around them. The others run the wasm kernels on host copies (staged) and backendInfo().stagedOps lists them.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { CTORS, type Dtype, type HostArray, type Storage } from "../device.ts";
import type { FloatArray } from "../errors.ts";
import type { SoftmaxKernels } from "./api/softmax.ts";
import { openDriver, type Driver, type KernelArg } from "./cuda/driver.ts";
import { PTX_HASH_PREFIX, kernelSource, nvrtcCompile } from "./cuda/nvrtc.ts";
import { stagedBy } from "./host/staged.ts";
import { kernelNames, type Backend } from "./types.ts";
import { wasmBackend } from "./wasm.ts";

/** A cuda DeviceArray's handle: a device allocation. */
export class CudaBuf {
  constructor(readonly p: bigint, readonly dtype: Dtype, readonly length: number, readonly bytes: number) {}
}
export const isCudaBuf = (v: unknown): v is CudaBuf => v instanceof CudaBuf;

function cudaStorage(d: Driver): Storage<CudaBuf> {
  return {
    alloc(length, dtype) {
      const bytes = length * CTORS[dtype].BYTES_PER_ELEMENT, p = d.alloc(bytes);
      d.zero(p, bytes);
      return new CudaBuf(p, dtype, length, bytes);
    },
    free: (b) => d.free(b.p),
    write: (b, src) => d.htod(b.p, src),
    read(b) {
      const out = new CTORS[b.dtype](b.length) as HostArray;
      d.dtoh(out, b.p); // waits for the work queued before it
      return out;
    },
    zero: (b) => d.zero(b.p, b.bytes),
    copy: (src, dst) => d.dtod(dst.p, src.p, src.bytes),
  };
}

/** Where compiled kernels are cached: $XDG_CACHE_HOME/numedge or ~/.cache/numedge. */
function cacheDir(): string {
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env ?? {};
  return `${env.XDG_CACHE_HOME ?? `${homedir()}/.cache`}/numedge`;
}

/** The kernels' image for this device: a cached or freshly compiled cubin, else the shipped PTX. */
function kernelImage(d: Driver): { image: Uint8Array; how: string } {
  const { src, hash } = kernelSource();
  const arch = `sm_${d.device.sm}`, file = `${cacheDir()}/cuda-${hash.slice(0, 16)}-${arch}.cubin`;
  if (existsSync(file)) return { image: readFileSync(file), how: `NVRTC cubin for ${arch} (cached)` };
  const r = nvrtcCompile(d.ffi, src, arch);
  if (!("missing" in r)) {
    try {
      mkdirSync(cacheDir(), { recursive: true });
      writeFileSync(file, r.bytes);
    } catch { /* an unwritable cache only costs a compile next time */ }
    return { image: r.bytes, how: `NVRTC cubin for ${arch}` };
  }
  const ptx = readFileSync(new URL("./cuda/kernels.ptx", import.meta.url), "utf8");
  const stale = !ptx.startsWith(`${PTX_HASH_PREFIX}${hash}`);
  return { image: new TextEncoder().encode(ptx + "\0"), how: `shipped compute_75 PTX, JIT by the driver (${r.missing})${stale ? "; WARNING: kernels.ptx is older than kernels.cu" : ""}` };
}

/** Threads per block for a row of `cols`: a multiple of 32, at most 1024. */
const rowBlock = (cols: number) => (cols >= 8192 ? 1024 : cols >= 1024 ? 256 : cols >= 128 ? 128 : 32);

/** What cuda tells backendInfo() beyond the backend. */
export interface CudaInfo {
  engine: string;
  stagedOps: string[];
}

/** How the backend reaches a GPU: the real driver and kernels by default; tests substitute an emulated device. */
export interface CudaDeps {
  open(): Promise<Driver | string>;
  image(d: Driver): { image: Uint8Array; how: string };
}
const realDeps: CudaDeps = { open: openDriver, image: kernelImage };

/** The cuda backend on the first GPU, or why it cannot run here. */
export async function createCudaBackend(fallback: Backend = wasmBackend, deps: CudaDeps = realDeps, id = "cuda"): Promise<{ backend: Backend; info: CudaInfo } | string> {
  const opened = await deps.open();
  if (typeof opened === "string") return opened;
  const d: Driver = opened;
  const storage = cudaStorage(d);
  const { image, how } = deps.image(d);
  const fn = d.module(image);
  const k = Object.fromEntries(["softmax", "logsoftmax", "stablemax", "logstablemax", "relu", "relu_backward"].flatMap((n) =>
    ["f32", "f64"].map((t) => [`${n}_${t}`, fn(`${n}_${t}`)]))) as Record<string, import("bun:ffi").Pointer>;

  /**
   * Runs `body` on device pointers: DeviceArray buffers as they are, host inputs copied to temporary device
   * buffers, host outputs received in temporary ones and copied back after.
   */
  function onDevice(ins: unknown[], outs: unknown[], body: (ip: bigint[], op: bigint[]) => void): void {
    const temps: bigint[] = [];
    const put = (a: unknown, copyIn: boolean) => {
      if (isCudaBuf(a)) return a.p;
      const h = a as HostArray, p = d.alloc(h.byteLength);
      temps.push(p);
      if (copyIn) d.htod(p, h);
      return p;
    };
    try {
      const ip = ins.map((a) => put(a, true)), op = outs.map((a) => put(a, false));
      body(ip, op);
      outs.forEach((a, i) => { if (!isCudaBuf(a)) d.dtoh(a as HostArray, op[i]!); });
    } finally {
      for (const p of temps) d.free(p);
    }
  }
  const t = (x: unknown) => ((x as { dtype?: string }).dtype === "f64" || x instanceof Float64Array ? "f64" : "f32");
  const rows = (name: string, x: FloatArray, y: FloatArray, r: number, cols: number, extra: KernelArg[]) => {
    if (r === 0) return;
    onDevice([x], [y], ([px], [py]) => d.launch(k[`${name}_${t(x)}`]!, r, rowBlock(cols), [{ p: px! }, { p: py! }, { i32: cols }, ...extra]));
  };
  const elems = (n: number) => Math.max(1, Math.min(Math.ceil(n / 256), 65535));

  const native: Partial<Backend> = {
    softmax: (x, y, r, cols, scale) => rows("softmax", x, y, r, cols, [{ f64: scale }]),
    logSoftmax: (x, y, r, cols, scale) => rows("logsoftmax", x, y, r, cols, [{ f64: scale }]),
    stablemax: (x, y, r, cols) => rows("stablemax", x, y, r, cols, []),
    logStablemax: (x, y, r, cols) => rows("logstablemax", x, y, r, cols, []),
    relu(x, y) {
      onDevice([x], [y], ([px], [py]) => d.launch(k[`relu_${t(x)}`]!, elems(x.length), 256, [{ p: px! }, { p: py! }, { i64: x.length }]));
    },
    reluBackward(dy, x, dx) {
      onDevice([dy, x], [dx], ([pd, px], [po]) => d.launch(k[`relu_backward_${t(x)}`]!, elems(x.length), 256, [{ p: pd! }, { p: px! }, { p: po! }, { i64: x.length }]));
    },
  } satisfies Partial<SoftmaxKernels> & Partial<Backend>;

  const out: Record<string, unknown> = { name: "cuda", id, storage };
  const stagedOps: string[] = [];
  for (const name of kernelNames(fallback)) {
    const f = (native as Record<string, unknown>)[name];
    if (f) out[name] = f;
    else {
      out[name] = stagedBy(storage, (fallback as unknown as Record<string, (...a: unknown[]) => unknown>)[name]!, isCudaBuf);
      stagedOps.push(name);
    }
  }
  const dev = d.device;
  return {
    backend: out as unknown as Backend,
    info: {
      engine: `cuda: ${dev.name} (sm_${dev.sm}, ${(dev.totalBytes / 2 ** 30).toFixed(0)} GiB, driver API ${dev.driverVersion}), ${how}`,
      stagedOps: stagedOps.sort(),
    },
  };
}
