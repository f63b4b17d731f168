// The cuda backend: the CUDA driver API through FFI (backends/cuda/driver.ts), storage in device memory, kernels
// in CUDA C (backends/cuda/kernels.cu) compiled by NVRTC for the device when a libnvrtc is found (the cubin is
// cached per source hash and architecture), else the shipped compute_75 PTX, JIT-compiled by the driver.
// Kernels take device buffers as they are; host arrays are copied to the device and back around them. Every op
// has a CUDA kernel; one added to the backend interface without one runs the wasm kernel on host copies (staged)
// and backendInfo().stagedOps lists it.
import { existsSync, mkdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from "node:fs";
import { CTORS, type Dtype, type HostArray, type Storage } from "../device.ts";
import { NumedgeError, type FloatArray } from "../errors.ts";
import type { AdamStepScalars } from "./api/quant.ts";
import { SCORING_MODE, type RoutingKernels, type Scoring } from "./api/routing.ts";
import type { SoftmaxKernels } from "./api/softmax.ts";
import { openCublas, type Cublas } from "./cuda/cublas.ts";
import { openDriver, type Driver, type KernelArg } from "./cuda/driver.ts";
import { PTX_HASH_PREFIX, SHIPPED_PTX_ISA, kernelSource, openNvrtc } from "./cuda/nvrtc.ts";
import { stagedBy } from "./host/staged.ts";
import { prepareCode } from "../ops/quant/codes.ts";
import { cacheDir } from "./thresholds.ts";
import { env } from "../env.ts";
import { kernelNames, type Backend, type Captured } from "./types.ts";
import { wasmBackend } from "./wasm.ts";

/** A cuda DeviceArray's handle: a device allocation of the pool's size class `cls`. */
class CudaBuf {
  constructor(readonly p: bigint, readonly dtype: Dtype, readonly length: number, readonly bytes: number, readonly cls: number) {}
}
const isCudaBuf = (v: unknown): v is CudaBuf => v instanceof CudaBuf;

/**
 * Device memory by size class, reused: DeviceArrays, host arrays' device copies and kernel scratch take from it and
 * give back to it, because cuMemFree waits for the whole device (a step that disposed one DeviceArray would stall
 * the queue every step) and cuMemAlloc costs microseconds. Reuse is safe because every kernel runs in order on one
 * stream. Size classes are powers of two from 256 bytes; at most POOL_BYTES stay pooled; a buffer over
 * POOL_BYTES / 4 is allocated and freed exactly. Out of memory, the pool is handed back and the allocation retried.
 */
function devicePool(d: Driver, exact = false) {
  const POOL_BYTES = 256 * 2 ** 20, pool = new Map<number, bigint[]>();
  let pooled = 0;
  // A CUDA graph keeps the addresses it was captured with. Memory a capture touched (taken, given back, or handed to
  // a kernel: `use`) counts the live graphs using it; given back while any does, it waits (deferred) until the last
  // is released, so no one else gets memory a replay writes or reads.
  let capturing: Set<bigint> | null = null;
  const users = new Map<bigint, number>(), deferred = new Map<bigint, number>();
  const sizeClass = (bytes: number) => (exact || bytes > POOL_BYTES / 4 ? Math.max(1, bytes) : 2 ** Math.max(8, Math.ceil(Math.log2(Math.max(1, bytes)))));
  function fresh(c: number): bigint {
    const hit = pool.get(c)?.pop();
    if (hit !== undefined) {
      pooled -= c;
      return hit;
    }
    try {
      return d.alloc(c);
    } catch (e) { // out of memory (the driver's NumedgeError "range"): hand the pool back, then try once more
      // (not while capturing: cuMemFree waits for the device, which a capture forbids; the caller steps without a graph)
      if (pooled === 0 || capturing || !(e instanceof NumedgeError && e.code === "range")) throw e;
      pooled = 0;
      for (const list of pool.values()) for (const q of list.splice(0)) d.free(q);
      return d.alloc(c);
    }
  }
  const use = (p: bigint) => void capturing?.add(p);
  function take(bytes: number): [bigint, number] {
    const c = sizeClass(bytes), p = fresh(c);
    use(p);
    return [p, c];
  }
  function give(p: bigint, c: number): void {
    use(p);
    if (capturing?.has(p) || users.has(p)) return void deferred.set(p, c);
    if (c > POOL_BYTES / 4 || pooled + c > POOL_BYTES) {
      try {
        d.free(p);
      } catch { /* only after a fault that lost the context: the error that lost it is the one to report */ }
      return;
    }
    (pool.get(c) ?? pool.set(c, []).get(c)!).push(p);
    pooled += c;
  }
  /** Memory given back while graphs used it goes to the pool once none does. */
  function flush(p: bigint): void {
    const c = deferred.get(p);
    if (c === undefined || users.has(p)) return;
    deferred.delete(p);
    give(p, c);
  }
  /** body's result (a graph), and the release of the memory it uses; body failing, nothing is kept. */
  function holding<R>(body: () => R): { result: R; release: () => void } {
    const touched = new Set<bigint>();
    capturing = touched;
    let result: R;
    try {
      result = body();
    } catch (e) {
      capturing = null;
      for (const p of touched) flush(p);
      throw e;
    } finally {
      capturing = null;
    }
    for (const p of touched) users.set(p, (users.get(p) ?? 0) + 1);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      for (const p of touched) {
        const n = users.get(p)! - 1;
        if (n > 0) users.set(p, n);
        else {
          users.delete(p);
          flush(p);
        }
      }
    };
    return { result, release };
  }
  return { take, give, use, holding, recording: () => capturing !== null };
}

function cudaStorage(d: Driver, { take, give, use }: ReturnType<typeof devicePool>): Storage<CudaBuf> {
  // an output gets no memset (a device operation each): the op's kernels write the whole array
  const allocOutput = (length: number, dtype: Dtype) => {
    const bytes = length * CTORS[dtype].BYTES_PER_ELEMENT, [p, cls] = take(bytes);
    return new CudaBuf(p, dtype, length, bytes, cls);
  };
  return {
    alloc(length, dtype) {
      const b = allocOutput(length, dtype);
      d.zero(b.p, b.bytes);
      return b;
    },
    allocOutput,
    free: (b) => give(b.p, b.cls),
    write: (b, src) => d.htod(b.p, src),
    read(b) {
      const out = new CTORS[b.dtype](b.length) as HostArray;
      d.dtoh(out, b.p); // waits for the work queued before it
      return out;
    },
    zero: (b) => {
      use(b.p);
      d.zero(b.p, b.bytes);
    },
    copy: (src, dst) => d.dtod(dst.p, src.p, src.bytes),
  };
}

/**
 * The kernels' image for this device: a cubin NVRTC compiled (cached per source hash, architecture and NVRTC
 * version), else the shipped PTX. `ptx` gives the shipped PTX, for when the driver refuses the cubin (an NVRTC
 * newer than the driver).
 */
export function kernelImage(d: Driver): KernelImage {
  const { src, hash } = kernelSource();
  const nv = openNvrtc(d.ffi);
  if ("missing" in nv) return shippedPtx(nv.missing, hash);
  try {
    const arch = `sm_${d.device.sm}`, file = `${cacheDir()}/cuda-${hash.slice(0, 16)}-${arch}-nvrtc${nv.version}.cubin`;
    const how = `NVRTC ${nv.version} cubin for ${arch}`;
    if (existsSync(file)) {
      // a cached cubin the driver refuses is removed, so the next process compiles afresh
      const ptx = () => { try { unlinkSync(file); } catch { /* gone already */ } return shippedPtx("the driver refused the cached cubin", hash); };
      return { image: readFileSync(file), how: `${how} (cached)`, ptx };
    }
    let bytes: Uint8Array;
    try {
      bytes = nv.compile(src, arch).bytes;
    } catch (e) { // NVRTC broken here (its builtins missing, say): the shipped PTX, with NVRTC's message in the engine line
      return shippedPtx(`NVRTC ${nv.version} failed: ${(e instanceof Error ? e.message : String(e)).slice(0, 500)}`, hash);
    }
    try { // written whole, then renamed: a process that reads the cache never sees half a cubin
      mkdirSync(cacheDir(), { recursive: true });
      const tmp = `${file}.${Math.random().toString(36).slice(2)}.tmp`;
      writeFileSync(tmp, bytes);
      renameSync(tmp, file);
    } catch { /* an unwritable cache only costs a compile next time */ }
    return { image: bytes, how, ptx: () => shippedPtx("the driver refused the cubin", hash) };
  } finally {
    nv.close();
  }
}
function shippedPtx(why: string, hash: string): KernelImage {
  const ptx = readFileSync(new URL("./cuda/kernels.ptx", import.meta.url), "utf8");
  const stale = !ptx.startsWith(`${PTX_HASH_PREFIX}${hash}`);
  return { image: new TextEncoder().encode(ptx + "\0"), how: `shipped compute_75 PTX (ISA ${ptx.match(/\.version (\S+)/)?.[1]}), JIT by the driver (${why})${stale ? "; WARNING: kernels.ptx is older than kernels.cu" : ""}` };
}
/** A module load failure, with what fixes the likely cause. */
const ptxHint = (e: unknown) => new NumedgeError("backend", `${e instanceof Error ? e.message : String(e)}. The shipped PTX (compute_75, ` +
  `ISA ${SHIPPED_PTX_ISA}) needs a GPU of compute capability 7.5 or newer and a driver for CUDA 10.0 or newer; otherwise put the libnvrtc ` +
  "of your driver's CUDA version on the loader path (or NUMEDGE_NVRTC=path)");
interface KernelImage {
  image: Uint8Array;
  how: string;
  /** The shipped PTX instead, where the image is a cubin. */
  ptx?: () => KernelImage;
}

/** Every kernel the backend loads from kernels.cu (a test checks the shipped PTX defines each). */
export const KERNELS = [
  ...["softmax", "logsoftmax", "stablemax", "logstablemax", "relu", "relu_backward", "orthogonalize", "ortho_part", "ortho_residual", "ortho_apply", "max_into", "max_part", "gemm", "adamw", "embsum", "embsum_backward",
    "softmax_part", "softmax_finish", "stablemax_part", "stablemax_finish"]
    .flatMap((n) => [`${n}_f32`, `${n}_f64`]),
  ...["ce_softmax_f32", "ce_softmax_f32in_f64", "ce_softmax_f64", "ce_stablemax_f32", "ce_stablemax_f32in_f64", "ce_stablemax_f64"].flatMap((n) => [n, `${n}_warp`, `${n}_wide`]), "ce_finish", "max_into_finish",
  "topk_f32", ...[4, 8, 16, 32].flatMap((K) => [`topk_f32_k${K}`, `topk_warp_f32_k${K}`]), "topk_block_f32", "quant_absmax_f32", "quant_absmax_part", "quant_absmax_fold", "quant_blockwise_f32", "quant_blockwise_f32_warp", "quant_4bit_blockwise_f32", "quant_4bit_blockwise_f32_warp", "quant_affine_blockwise_f32", "quant_affine_blockwise_f32_warp", "bad_init", "bad_finish", "quant_codes_f32", "quant_4bit_f32", "dequant_blockwise_u8", "dequant_4bit",
  "quant_affine_params_f32", "quant_affine_part", "quant_affine_fold", "quant_affine_f32", "dequant_affine", "quant_q8_0_f32", "quant_q4_0_f32", "dequant_q8_0", "dequant_q4_0",
  "quant_stochastic_f32", "uniforms_f32", "absmax_part", "absmax_mean", "absmax_center_f32", "absmax_uncenter_f32", "to_f32", "adam8bit_f32", "adam32_f32",
  "route_score_f32", "route_psum", "route_select_f32", ...[4, 8, 16, 32].map((K) => `route_select_f32_k${K}`), "route_ec_threshold_f32", "route_ec_select_f32", "route_ec_finish", "route_ec_stats", "route_losses", "route_grad_f32", "update_bias",
  "dispatch_count", "dispatch_scan", "dispatch_drops", "dispatch_offsets", "dispatch_place",
  "emb_count", "radix_hist", "radix_scatter", "emb_gather_f32", "emb_gather_f64",
  "combine_count", "scan_part", "scan_top", "scan_apply", "combine_place", "combine_sort", "combine_gather_f32",
];

/** Threads per block for a row of `cols`: a multiple of 32, at most 1024. */
const rowBlock = (cols: number) => (cols >= 8192 ? 1024 : cols >= 1024 ? 256 : cols >= 128 ? 128 : 32);
/**
 * Threads per row of the softmax family: about 8 columns a thread, so a row up to 16384 f32 or 8192 f64 columns is
 * held in registers (kernels.cu ROW_REGS: 16 f32 or 8 f64 a thread) and read once; longer rows loop on 1024.
 */
const softmaxThreads = (cols: number) => Math.min(1024, Math.max(32, Math.ceil(cols / 256) * 32));
/** The register top-k kernels' buffer for k <= 32 keys (kernels.cu topk_insert): the smallest of 4, 8, 16, 32 that holds k. */
const keysK = (k: number) => (k <= 4 ? 4 : k <= 8 ? 8 : k <= 16 ? 16 : 32);
/** Fewer rows than this, each past the registers, split over several blocks (a large GPU runs two 1024-thread blocks an SM). */
const SPLIT_ROWS = 256;

/** What cuda tells backendInfo() beyond the backend. */
export interface CudaInfo {
  engine: string;
  stagedOps: string[];
  /** The key auto's measured thresholds are saved under: "cuda:<device name> sm_<cc>". */
  thresholdKey: string;
}

/** How the backend reaches a GPU: the real driver and kernels by default; tests substitute a device of their own. */
export interface CudaDeps {
  open(): Promise<Driver | string>;
  image(d: Driver): KernelImage;
  /** cuBLAS for matmul, or why not (then the NVRTC GEMM kernel runs). */
  blas(d: Driver): Cublas | string;
  /** Test devices: every buffer exactly its bytes (no size classes), so guard bytes after it catch a write past its end. */
  exactSizes?: boolean;
}
/**
 * NUMEDGE_CUDA_TF32=1 lets cuBLAS run f32 matmuls on TF32 tensor cores (10-bit mantissa products); default FP32.
 * NUMEDGE_CUBLAS=none: never cuBLAS (the GEMM kernel of kernels.cu, as on a machine with only the driver); a path:
 * that libcublas.
 */
export const realDeps: CudaDeps = {
  open: () => openDriver(), image: kernelImage, blas: (d) => (env.NUMEDGE_CUBLAS === "none" ? "NUMEDGE_CUBLAS=none" : openCublas(d, env.NUMEDGE_CUDA_TF32 === "1", env.NUMEDGE_CUBLAS || undefined)),
};

/** The cuda backend on the first GPU, or why it cannot run here. */
export async function createCudaBackend(fallback: Backend = wasmBackend, deps: CudaDeps = realDeps, id = "cuda"): Promise<{ backend: Backend; info: CudaInfo } | string> {
  const opened = await deps.open();
  if (typeof opened === "string") return opened;
  const d: Driver = opened;
  const mem = devicePool(d, deps.exactSizes), { take, give, use } = mem, storage = cudaStorage(d, mem);
  let img = deps.image(d), fn: (name: string) => bigint;
  try {
    fn = d.module(img.image);
  } catch (e) {
    if (!img.ptx) throw ptxHint(e);
    img = img.ptx(); // a cubin from an NVRTC newer than the driver: the driver JIT-compiles the shipped PTX instead
    try {
      fn = d.module(img.image);
    } catch (e2) {
      throw ptxHint(e2);
    }
  }
  const how = img.how, blas = deps.blas(d);
  const k = Object.fromEntries(KERNELS.map((n) => [n, fn(n)])) as Record<string, bigint>;
  /** The wasm kernel `name` on host copies: for what has no CUDA version. */
  const viaWasm = <K extends keyof Backend>(name: K) => stagedBy(storage, fallback[name] as (...a: unknown[]) => unknown, isCudaBuf) as unknown as Backend[K];
  const stagedOps: string[] = [];


  /**
   * Runs `body` on device pointers: DeviceArray buffers as they are, host inputs copied to temporary device
   * buffers, host outputs received in temporary ones and copied back after. A host array given as input and output
   * (in place, an accumulator, optimizer state) gets one temporary, as a DeviceArray would be one buffer.
   */
  function onDevice(ins: unknown[], outs: unknown[], body: (ip: bigint[], op: bigint[]) => void, keep?: (op: bigint[]) => boolean): void {
    const temps = new Map<HostArray, [bigint, number]>();
    const put = (a: unknown, copyIn: boolean) => {
      if (isCudaBuf(a)) {
        use(a.p); // a graph being recorded reads or writes it
        return a.p;
      }
      const h = a as HostArray;
      let t = temps.get(h);
      if (t === undefined) {
        temps.set(h, (t = take(h.byteLength)));
        if (copyIn) d.htod(t[0], h);
      }
      return t[0];
    };
    try {
      const ip = ins.map((a) => put(a, true)), op = outs.map((a) => put(a, false));
      body(ip, op);
      if (keep && !keep(op)) return; // a failed quantizer leaves host outputs untouched
      outs.forEach((a, i) => { if (!isCudaBuf(a)) d.dtoh(a as HostArray, op[i]!); });
    } finally {
      for (const [p, c] of temps.values()) give(p, c);
    }
  }
  const t = (x: unknown) => ((x as { dtype?: string }).dtype === "f64" || x instanceof Float64Array ? "f64" : "f32");
  const rows = (name: string, x: FloatArray, y: FloatArray, r: number, cols: number, extra: KernelArg[]) => {
    if (r === 0) return;
    const regs = t(x) === "f64" ? 8 : 16; // kernels.cu ROW_REGS
    if (cols > regs * 1024 && r < SPLIT_ROWS) { // P blocks of 256 a row: a part's (max, sum), then each part's outputs
      const P = Math.min(256, Math.ceil(cols / (regs * 256))), fam = name.endsWith("stablemax") ? "stablemax" : "softmax", scale = fam === "softmax" ? [extra[0]!] : [];
      scratch(r * P * 16, ([part]) => onDevice([x], [y], ([px], [py]) => {
        d.launch(k[`${fam}_part_${t(x)}`]!, r * P, 256, [{ p: px! }, { i32: cols }, { i32: P }, ...scale, { p: part! }]);
        d.launch(k[`${fam}_finish_${t(x)}`]!, r * P, 256, [{ p: px! }, { p: py! }, { i32: cols }, { i32: P }, ...scale, { i32: name.startsWith("log") ? 1 : 0 }, { p: part! }]);
      }));
      return;
    }
    onDevice([x], [y], ([px], [py]) => d.launch(k[`${name}_${t(x)}`]!, r, softmaxThreads(cols), [{ p: px! }, { p: py! }, { i32: cols }, ...extra]));
  };
  const elems = (n: number) => Math.max(1, Math.min(Math.ceil(n / 256), 65535));

  // Code tables on the device, one upload per distinct table contents (every quantize result carries its own copy
  // of the code, so a cache by array would upload and keep a table per result): the 256 values, and for the search
  // 255 thresholds padded with +Infinity, in the search tree's order (kernels.cu code_of), and the code index of each
  // rank (as the wasm search kernel); for stochastic rounding the distinct values, whose code indices are the same ranks.
  const tables = new Map<number, Array<{ snap: Float32Array; code: bigint; tree: bigint; ranks: bigint; vals: bigint; nu: number; zero: number }>>();
  function table(code: Float32Array) {
    const words = new Uint32Array(code.buffer, code.byteOffset, code.length);
    let h = 0x811c9dc5;
    for (const w of words) h = Math.imul(h ^ w, 0x01000193);
    const bucket = tables.get(h) ?? [];
    const hit = bucket.find((t) => t.snap.length === code.length && t.snap.every((v, i) => Object.is(v, code[i])));
    if (hit) return hit;
    const prep = prepareCode(code);
    const thr = new Float32Array(255).fill(Infinity), ranks = new Uint8Array(256).fill(prep.ranks[prep.ranks.length - 1]!);
    thr.set(prep.thr);
    ranks.set(prep.ranks);
    // Eytzinger order: node i (1..255, at level L = floor(log2 i)) holds the sorted threshold of in-order rank
    // (2 (i - 2^L) + 1) 2^(7 - L) - 1, so the root is thr[127], its children thr[63] and thr[191], ...
    const tree = new Float32Array(256);
    for (let i = 1; i < 256; i++) { const L = 31 - Math.clz32(i); tree[i] = thr[(2 * (i - 2 ** L) + 1) * 2 ** (7 - L) - 1]!; }
    const put = (a: ArrayBufferView) => { const p = d.alloc(a.byteLength); d.htod(p, a); return p; };
    const t = { snap: code.slice(), code: put(code), tree: put(tree), ranks: put(ranks), vals: put(prep.vals), nu: prep.vals.length, zero: prep.zeroCode };
    tables.set(h, [...bucket, t]);
    return t;
  }
  /** Runs the kernels of `launch`, which atomicMin each bad block into bad[0]: then bad[0] = the first, or -1. */
  function findBad(pbad: bigint, launch: () => void) {
    d.launch(k.bad_init!, 1, 32, [{ p: pbad }]);
    launch();
    d.launch(k.bad_finish!, 1, 32, [{ p: pbad }]);
  }
  /** Threads of a CUDA block that reduces one quantization block of bs of the n elements: whole warps, at most 256. */
  const blockThreads = (bs: number, n: number) => Math.min(256, Math.ceil(Math.min(bs, n) / 32) * 32);
  /**
   * One group too long for one CUDA block to read (a "tensor" group past 4096 elements): the `part` kernel reduces
   * each CUDA block's grid-stride share into `words` ints, then the `fold` kernel combines them (and reports bad).
   */
  function splitReduce(part: string, fold: string, words: number, px: bigint, n: number, pbad: bigint, foldArgs: KernelArg[]) {
    const parts = Math.min(Math.ceil(n / 4096), 1024);
    scratch(parts * 4 * words, ([pp]) => findBad(pbad, () => {
      d.launch(k[part]!, parts, 256, [{ p: px }, { i64: n }, { p: pp! }]);
      d.launch(k[fold]!, 1, 1024, [{ p: pp! }, { i32: parts }, ...foldArgs]);
    }));
  }
  /** Block absmax and the first bad block into `bad` (-1 if none). */
  function absmaxPass(px: bigint, n: number, bs: number, nb: number, pa: bigint, inv: bigint, pbad: bigint) {
    if (nb === 1 && n > 4096) return splitReduce("quant_absmax_part", "quant_absmax_fold", 1, px, n, pbad, [{ p: pa }, { p: inv }, { p: pbad }]);
    findBad(pbad, () => d.launch(k.quant_absmax_f32!, nb, blockThreads(bs, n), [{ p: px }, { i64: n }, { i32: bs }, { p: pa }, { p: inv }, { p: pbad }]));
  }
  /**
   * A quantizer in one read of x, a group's values held in registers (kernels.cu quant_block / quant_warp): `name`,
   * or `${name}_warp` (a warp per 512 elements) for power-of-two groups of 32 to 512 (a lone group is padded to
   * one). `args`: the kernel's arguments after (x, n, group size). False for a lone group past 4096 (the caller
   * reduces it over many CUDA blocks, then reads again).
   */
  function quantOneRead(name: string, px: bigint, n: number, bs: number, nb: number, args: KernelArg[], pbad: bigint) {
    let pad = bs;
    if (nb === 1) for (pad = 32; pad < n; pad *= 2);
    if (pad >= 32 && pad <= 512 && (pad & (pad - 1)) === 0) findBad(pbad, () => { if (n > 0) d.launch(k[`${name}_warp`]!, Math.ceil(n / 4096), 256, [{ p: px }, { i64: n }, { i32: pad }, ...args]); });
    else if (Math.min(bs, n) <= 4096) findBad(pbad, () => d.launch(k[name]!, nb, blockThreads(bs, n), [{ p: px }, { i64: n }, { i32: bs }, ...args]));
    else return false;
    return true;
  }
  /** A host `bad` (outs[at]) gets the bad block now; the other host outputs come back only when there is none. */
  const keepUnlessBad = (bad: Int32Array | CudaBuf, at = 2) => (op: bigint[]) => {
    if (isCudaBuf(bad)) return true;
    d.dtoh(bad, op[at]!);
    return bad[0]! < 0;
  };
  /** A ggml quantizer: one warp per block of 32 (8 blocks per CUDA block), the first bad block into `bad`. */
  function ggml(kernel: string, x: Float32Array, out: Uint8Array, bad: Int32Array) {
    const nb = x.length / 32;
    onDevice([x], [out, bad], ([px], [po, pbad]) => findBad(pbad!, () => {
      if (nb > 0) d.launch(k[kernel]!, Math.ceil(nb / 8), 256, [{ p: px! }, { i64: nb }, { p: po! }, { p: pbad! }]);
    }), keepUnlessBad(bad, 1));
  }
  /** Runs body on device scratch buffers of the given byte sizes (one pooled buffer; each 16-byte aligned). */
  function scratch<R>(bytes: number | number[], body: (p: bigint[]) => R): R {
    const sizes = typeof bytes === "number" ? [bytes] : bytes, at: number[] = [];
    let total = 0;
    for (const b of sizes) { at.push(total); total += Math.ceil(b / 16) * 16; }
    const [base, c] = take(Math.max(16, total));
    try {
      return body(at.map((o) => base + BigInt(o)));
    } finally {
      give(base, c);
    }
  }
  /** Blocks of 128 threads for one thread per item. */
  const perThread = (n: number) => Math.max(1, Math.min(Math.ceil(n / 128), 65535));
  /** y[0..n) = the exclusive scan of the ints x[0..n), y[n] = their total (part: ceil(n / 1024) ints of scratch). */
  function scanInts(x: bigint, n: number, part: bigint, y: bigint) {
    const chunks = Math.ceil(n / 1024);
    d.launch(k.scan_part!, perThread(chunks), 128, [{ p: x }, { i32: n }, { p: part }]);
    d.launch(k.scan_top!, 1, 32, [{ p: part }, { i32: n }, { p: y }]);
    d.launch(k.scan_apply!, perThread(chunks), 128, [{ p: x }, { i32: n }, { p: part }, { p: y }]);
  }
  const adamScalars = (h: AdamStepScalars): KernelArg[] =>
    [h.beta1, h.oneMinusBeta1, h.beta2, h.oneMinusBeta2, h.epsC2, h.stepSize, h.decay].map((v) => ({ f32: Math.fround(v) }));
  const isI8 = (q: unknown) => (q instanceof Int8Array || (q as CudaBuf).dtype === "i8" ? 1 : 0);

  const f32 = (v: number): KernelArg => ({ f32: Math.fround(v) });
  /** Scores [T, E] into ps (inv: 1 / what p divides them by), pSum += routing probabilities, lse per token. */
  function score(pz: bigint, T: number, E: number, scoring: Scoring, scale: number, ps: bigint, pinv: bigint, pSum: bigint, plse: bigint) {
    d.launch(k.route_score_f32!, perThread(T), 128, [{ p: pz }, { i32: T }, { i32: E }, { i32: SCORING_MODE[scoring] }, f32(scale), { p: ps }, { p: pinv }, { p: plse }]);
    d.launch(k.route_psum!, Math.min(E, 65535), 256, [{ p: ps }, { p: pinv }, { i32: T }, { i32: E }, { p: pSum }]);
  }
  /** routeDispatch on device buffers (pstats 0n: no stats). */
  function dispatch(pe: bigint, pw: bigint, n: number, E: number, cap: number, pc: bigint, po: bigint, pr: bigint, pstats: bigint) {
    // chunks of 256 assignments, doubled until the per-chunk histograms (chunks x E, twice) fit in 2^20 entries each:
    // expert choice has T x E assignments, so 256 would take T E^2 / 32 bytes (2 GiB at 1M tokens and 256 experts)
    let chunk = 256;
    while (Math.ceil(n / chunk) * E > 2 ** 20 && chunk < 2 ** 30) chunk *= 2;
    const chunks = Math.ceil(n / chunk);
    scratch([chunks * E * 4, chunks * E * 4, chunks * 4, E * 4], ([hist, base, neg, total]) => {
      d.launch(k.dispatch_count!, Math.min(chunks, 65535), 256, [{ p: pe }, { i32: n }, { i32: E }, { i32: chunk }, { p: hist! }, { p: neg! }]);
      d.launch(k.dispatch_scan!, Math.min(E, 65535), 256, [{ p: hist! }, { i32: chunks }, { i32: E }, { i32: cap }, { p: base! }, { p: pc }, { p: total! }]);
      if (cap >= 0) d.launch(k.dispatch_drops!, perThread(chunks), 128, [{ p: hist! }, { p: base! }, { i32: chunks }, { i32: E }, { i32: cap }, { p: neg! }]);
      d.launch(k.dispatch_offsets!, 1, 1024, [{ p: pc }, { p: total! }, { i32: E }, { i32: chunks }, { p: po }, { p: neg! }, { p: pstats }]);
      d.launch(k.dispatch_place!, Math.min(chunks, 65535), 256, [{ p: pe }, { p: pw }, { i32: n }, { i32: E }, { i32: chunk }, { i32: cap }, { p: hist! }, { p: base! }, { p: po }, { p: neg! }, { p: pr }]);
    });
  }
  // Accumulators (pre, pSum) and partly written outputs (stats) are inputs too, so host arrays keep what the kernels do not write.
  const routing: Omit<RoutingKernels, "topk"> = {
    routeScores(z, T, E, scoring, scale, scores, pSum, lse) {
      scratch([T * 8, scores ? 0 : T * E * 4], ([pinv, pscr]) => onDevice([z, pSum], scores ? [scores, pSum, lse] : [pSum, lse], ([pz], op) => {
        const [ps, pps, pl] = scores ? op : [pscr!, ...op];
        score(pz!, T, E, scoring, scale, ps!, pinv!, pps!, pl!);
      }));
    },
    routeTokens(z, o, experts, weights, pre, pSum, lse, counts, offsets, order, stats) {
      const { rows: T, experts: E, groups, topkGroups } = o, kmax = Math.max(o.k, topkGroups, 2), masked = o.bias !== null || groups > 1;
      scratch([T * E * 4, T * 8, masked ? T * E * 4 : 0, masked ? T * groups * 4 : 0, kmax > 32 ? T * kmax * 8 : 0], ([ps, pinv, psel, pgsc, pkeys]) =>
        onDevice(o.bias ? [z, o.bias, pre, pSum, stats] : [z, pre, pSum, stats], [experts, weights, pre, pSum, lse, counts, offsets, order, stats],
          (ip, [pe, pw, pp, pps, pl, pc, po, pr, pst]) => {
            score(ip[0]!, T, E, o.scoring, o.scale, ps!, pinv!, pps!, pl!);
            d.launch(k[kmax <= 32 ? `route_select_f32_k${keysK(kmax)}` : "route_select_f32"]!, perThread(T), 128, [{ p: ip[0]! }, { p: ps! }, { p: o.bias ? ip[1]! : 0n }, { i32: T }, { i32: E }, { i32: o.k },
              { i32: groups }, { i32: topkGroups }, { i32: o.normalize ? 1 : 0 }, f32(o.routeScale), { p: psel! }, { p: pgsc! }, { p: pkeys! }, { i32: kmax },
              { p: pe! }, { p: pw! }, { p: pp! }]);
            dispatch(pe!, pw!, T * o.k, E, o.capacity, pc!, po!, pr!, pst!);
          }));
    },
    routeExpertChoice(z, o, experts, weights, pre, pSum, lse, stats) {
      const { rows: T, experts: E, capacity: cap } = o;
      scratch([T * E * 4, T * 8, 4, E * 8], ([ps, pinv, puntaken, pthr]) => {
        d.zero(puntaken!, 4);
        onDevice(o.bias ? [z, o.bias, pre, pSum, stats] : [z, pre, pSum, stats], [experts, weights, pre, pSum, lse, stats], (ip, [pe, pw, pp, pps, pl, pst]) => {
          score(ip[0]!, T, E, o.scoring, o.scale, ps!, pinv!, pps!, pl!);
          const pb = o.bias ? ip[1]! : 0n;
          d.launch(k.route_ec_threshold_f32!, Math.min(E, 65535), 1024, [{ p: ps! }, { p: pb }, { i32: T }, { i32: E }, { i32: cap }, { p: pthr! }]);
          d.launch(k.route_ec_select_f32!, elems(T * E), 256, [{ p: ps! }, { p: pb }, { i32: T }, { i32: E }, { i32: cap }, { p: pthr! }, { p: pe! }, { p: pw! }]);
          d.launch(k.route_ec_finish!, perThread(T), 128, [{ p: pe! }, { p: pw! }, { i32: T }, { i32: E }, { i32: o.normalize ? 1 : 0 }, f32(o.routeScale), { p: puntaken! }]);
          d.launch(k.route_ec_stats!, 1, 32, [{ p: pp! }, { i32: E }, { i32: cap }, { p: puntaken! }, { p: pst! }]);
        });
      });
    },
    routeLosses(pre, pSum, lse, T, E, fDen, coef, stats) {
      onDevice([pre, pSum, lse, stats], [coef, stats], ([pp, ps, pl], [pc, pst]) =>
        d.launch(k.route_losses!, 1, 256, [{ p: pp! }, { p: ps! }, { p: pl! }, { i32: T }, { i32: E }, { f64: fDen }, { p: pc! }, { p: pst! }]));
    },
    routeDispatch(experts, weights, n, E, cap, counts, offsets, order, stats) {
      const io = stats ? [experts, weights, stats] : [experts, weights];
      onDevice(io, [experts, weights, counts, offsets, order, ...(stats ? [stats] : [])], (_, op) =>
        dispatch(op[0]!, op[1]!, n, E, cap, op[2]!, op[3]!, op[4]!, stats ? op[5]! : 0n));
    },
    routeGrad(z, T, E, scoring, scale, coef, lse, auxGrad, zGrad) {
      onDevice([z, coef, lse], [auxGrad, zGrad].filter((a) => a !== null), ([pz, pc, pl], op) => {
        const pa = auxGrad ? op[0]! : 0n, pg = zGrad ? op[auxGrad ? 1 : 0]! : 0n;
        d.launch(k.route_grad_f32!, perThread(T), 128, [{ p: pz! }, { i32: T }, { i32: E }, { i32: SCORING_MODE[scoring] }, f32(scale), { p: pc! }, { p: pl! }, { p: pa }, { p: pg }]);
      });
    },
    updateBias(bias, counts, rate) {
      onDevice([bias, counts], [bias], ([pb, pc]) => d.launch(k.update_bias!, 1, 32, [{ p: pb! }, { p: pc! }, { i32: bias.length }, { f64: rate }]));
    },
    combine(eo, order, weights, slots, kept, hidden, out) {
      const T = order.length / slots, chunks = Math.ceil(T / 1024);
      scratch([T * 4, (T + 1) * 4, T * 4, kept * 4, chunks * 4], ([cnt, start, cur, list, part]) => {
        d.zero(cnt!, T * 4);
        d.zero(cur!, T * 4);
        onDevice([eo, order, weights], [out], ([pe, po, pw], [pout]) => {
          d.launch(k.combine_count!, perThread(kept), 128, [{ p: po! }, { i32: kept }, { i32: slots }, { p: cnt! }]);
          scanInts(cnt!, T, part!, start!);
          d.launch(k.combine_place!, perThread(kept), 128, [{ p: po! }, { i32: kept }, { i32: slots }, { p: start! }, { p: cur! }, { p: list! }]);
          d.launch(k.combine_sort!, perThread(T), 128, [{ p: start! }, { i32: T }, { p: list! }]);
          d.launch(k.combine_gather_f32!, elems(T * hidden), 256, [{ p: pe! }, { p: po! }, { p: pw! }, { p: list! }, { p: start! }, { i32: T }, { i32: hidden }, { p: pout! }]);
        });
      });
    },
  };

  const native: Partial<Backend> = {
    softmax: (x, y, r, cols, scale, algorithm) => rows("softmax", x, y, r, cols, [{ f64: scale }, { i32: algorithm === "threepass" ? 0 : 1 }]),
    logSoftmax: (x, y, r, cols, scale) => rows("logsoftmax", x, y, r, cols, [{ f64: scale }]),
    stablemax: (x, y, r, cols) => rows("stablemax", x, y, r, cols, []),
    logStablemax: (x, y, r, cols) => rows("logstablemax", x, y, r, cols, []),
    relu(x, y) {
      onDevice([x], [y], ([px], [py]) => d.launch(k[`relu_${t(x)}`]!, elems(x.length), 256, [{ p: px! }, { p: py! }, { i64: x.length }]));
    },
    reluBackward(dy, x, dx) {
      onDevice([dy, x], [dx], ([pd, px], [po]) => d.launch(k[`relu_backward_${t(x)}`]!, elems(x.length), 256, [{ p: pd! }, { p: px! }, { p: po! }, { i64: x.length }]));
    },
    crossEntropy(z, labels, grad, stats, r, cols, head, precision) {
      const kern = `ce_${head}_${t(z) === "f64" ? "f64" : precision === "f64" ? "f32in_f64" : "f32"}`;
      scratch(Math.max(1, r) * 24, ([perRow]) => onDevice([z, labels], grad ? [grad, stats] : [stats], ([pz, pl], outs) => {
        const pg = grad ? outs[0]! : 0n, ps = outs[grad ? 1 : 0]!;
        const args: KernelArg[] = [{ p: pz! }, { p: pl! }, { p: pg }, { i32: r }, { i32: cols }, { p: perRow! }];
        // rows up to 2048 (f32 softmax) or 1024 (the other heads: f64 terms in shared memory): a warp per row, the
        // thread kernel's bits (that kernel is its tested twin, not launched here), 4 warps a block, each with a row
        // of terms in dynamic shared memory (32 KiB at most); wider rows: a block per row
        const term = kern === "ce_softmax_f32" || kern === "ce_stablemax_f32" ? 4 : 8;
        if (cols <= (kern === "ce_softmax_f32" ? 2048 : 1024))
          d.launch(k[`${kern}_warp`]!, Math.max(1, Math.min(Math.ceil(r / 4), 65535)), 128, args, 4 * cols * term);
        else d.launch(k[`${kern}_wide`]!, Math.max(1, Math.min(r, 65535)), rowBlock(cols), args);
        d.launch(k.ce_finish!, 1, 1024, [{ p: perRow! }, { i32: r }, { p: ps }]);
      }));
    },
    topk(x, values, indices, r, cols, kk, sorted) {
      // long rows: a warp per row (k <= 32) or a block per row (k <= 1024); else a thread per row. k <= 32 keeps its
      // keys in registers (kernels for k up to 4, 8, 16, 32); a thread per row past that, in device scratch.
      const args = (px: bigint, pv: bigint, pi: bigint): KernelArg[] => [{ p: px }, { p: pv }, { p: pi }, { i32: r }, { i32: cols }, { i32: kk }, { i32: sorted ? 1 : 0 }];
      const K = keysK(kk);
      if (kk <= 1024 && cols >= 128) {
        const warp = kk <= 32, grid = Math.max(1, Math.min(warp ? Math.ceil(r / 4) : r, 65535));
        onDevice([x], [values, indices], ([px], [pv, pi]) => d.launch(warp ? k[`topk_warp_f32_k${K}`]! : k.topk_block_f32!, grid, warp ? 128 : 256, args(px!, pv!, pi!)));
      } else if (kk <= 32) onDevice([x], [values, indices], ([px], [pv, pi]) => d.launch(k[`topk_f32_k${K}`]!, perThread(r), 128, args(px!, pv!, pi!)));
      else scratch(r * kk * 8, ([keys]) => onDevice([x], [values, indices], ([px], [pv, pi]) => d.launch(k.topk_f32!, perThread(r), 128, [...args(px!, pv!, pi!), { p: keys! }])));
    },
    ...routing,
    quantizeBlockwise(x, bs, code, codes, absmax, rand, bad) {
      const n = x.length, nb = absmax.length, tb = table(code);
      onDevice(rand ? [x, rand] : [x], [codes, absmax, bad], ([px, pr], [pc, pa, pbad]) => {
        if (!rand && quantOneRead("quant_blockwise_f32", px!, n, bs, nb, [{ p: pa! }, { p: tb.tree }, { p: tb.ranks }, { p: pc! }, { p: pbad! }], pbad!)) return;
        scratch(nb * 4, ([inv]) => {
          absmaxPass(px!, n, bs, nb, pa!, inv!, pbad!);
          if (pr) d.launch(k.quant_stochastic_f32!, elems(n), 256, [{ p: px! }, { i64: n }, { i32: bs }, { p: inv! }, { p: tb.vals }, { p: tb.ranks }, { i32: tb.nu }, { p: pr }, { p: pc! }]);
          else d.launch(k.quant_codes_f32!, elems(n), 256, [{ p: px! }, { i64: n }, { i32: bs }, { p: inv! }, { p: tb.tree }, { p: tb.ranks }, { p: pc! }]);
        });
      }, keepUnlessBad(bad));
    },
    quantize4bit(x, bs, code, packed, absmax, bad) {
      const n = x.length, nb = absmax.length, tb = table(code);
      onDevice([x], [packed, absmax, bad], ([px], [pp, pa, pbad]) => {
        if (quantOneRead("quant_4bit_blockwise_f32", px!, n, bs, nb, [{ p: pa! }, { p: tb.tree }, { p: tb.ranks }, { i32: tb.zero }, { p: pp! }, { p: pbad! }], pbad!)) return;
        scratch(nb * 4, ([inv]) => { // a lone block past 4096: its absmax over many CUDA blocks, then the codes
          absmaxPass(px!, n, bs, nb, pa!, inv!, pbad!);
          d.launch(k.quant_4bit_f32!, elems(packed.length), 256, [{ p: px! }, { i64: n }, { i32: bs }, { p: inv! }, { p: tb.tree }, { p: tb.ranks }, { i32: tb.zero }, { p: pp! }]);
        });
      }, keepUnlessBad(bad));
    },
    dequantizeBlockwise(codes, bs, code, absmax, out) {
      const tb = table(code);
      onDevice([codes, absmax], [out], ([pc, pa], [po]) => d.launch(k.dequant_blockwise_u8!, elems(out.length), 256, [{ p: pc! }, { i64: out.length }, { i32: bs }, { p: pa! }, { p: tb.code }, { p: po! }]));
    },
    dequantize4bit(packed, bs, code, absmax, out) {
      const tb = table(code);
      onDevice([packed, absmax], [out], ([pp, pa], [po]) => d.launch(k.dequant_4bit!, elems(out.length), 256, [{ p: pp! }, { i64: out.length }, { i32: bs }, { p: pa! }, { p: tb.code }, { p: po! }]));
    },
    quantizeAffine(x, g, compute, scale, zp, q, bad) {
      // with compute, scale and zp are outputs; without, inputs (and a bad group still stops the call)
      const n = x.length, ng = scale.length, signed = isI8(q);
      onDevice(compute ? [x] : [x, scale, zp], compute ? [q, scale, zp, bad] : [q, bad], (ins, outs) => {
        const [px, ps, pz] = compute ? [ins[0]!, outs[1]!, outs[2]!] : ins, pbad = outs[compute ? 3 : 1]!;
        if (compute && quantOneRead("quant_affine_blockwise_f32", px!, n, g, ng, [{ i32: signed }, { p: ps! }, { p: pz! }, { p: outs[0]! }, { p: pbad }], pbad)) return;
        const params: KernelArg[] = [{ i32: signed }, { i32: compute ? 1 : 0 }, { p: ps! }, { p: pz! }, { p: pbad }];
        if (ng === 1 && n > 4096) splitReduce("quant_affine_part", "quant_affine_fold", 3, px!, n, pbad, params);
        else findBad(pbad, () => d.launch(k.quant_affine_params_f32!, ng, blockThreads(g, n), [{ p: px! }, { i64: n }, { i32: g }, ...params]));
        d.launch(k.quant_affine_f32!, elems(n), 256, [{ p: px! }, { i64: n }, { i32: g }, { i32: signed }, { p: ps! }, { p: pz! }, { p: outs[0]! }]);
      }, keepUnlessBad(bad, compute ? 3 : 1));
    },
    dequantizeAffine(q, g, scale, zp, out) {
      const signed = isI8(q);
      onDevice([q, scale, zp], [out], ([pq, ps, pz], [po]) => d.launch(k.dequant_affine!, elems(out.length), 256, [{ p: pq! }, { i64: out.length }, { i32: g }, { p: ps! }, { p: pz! }, { i32: signed }, { p: po! }]));
    },
    uniforms(out, seed) {
      onDevice([], [out], (_, [po]) => d.launch(k.uniforms_f32!, elems(out.length), 256, [{ p: po! }, { i64: out.length }, { i32: seed | 0 }]));
    },
    absmaxCenter(absmax, centered, offset) {
      const n = absmax.length, parts = Math.ceil(n / 4096); // ABSMAX_CHUNK
      scratch(parts * 8, ([part]) => onDevice([absmax], [centered, offset], ([pa], [pc, po]) => {
        d.launch(k.absmax_part!, perThread(parts), 128, [{ p: pa! }, { i64: n }, { p: part! }]);
        d.launch(k.absmax_mean!, 1, 32, [{ p: part! }, { i64: n }, { p: po! }]);
        d.launch(k.absmax_center_f32!, elems(n), 256, [{ p: pa! }, { i64: n }, { p: po! }, { p: pc! }]);
      }));
    },
    absmaxUncenter(x, offset) {
      onDevice([x, offset], [x], ([px, po]) => d.launch(k.absmax_uncenter_f32!, elems(x.length), 256, [{ p: px! }, { i64: x.length }, { p: po! }]));
    },
    toF32(x, out) {
      onDevice([x], [out], ([px], [po]) => d.launch(k.to_f32!, elems(x.length), 256, [{ p: px! }, { i64: x.length }, { p: po! }]));
    },
    adam8bitStep(p, g, s, h) {
      const t1 = table(s.code1), t2 = table(s.code2), nb = s.absmax1.length;
      const state = [p, s.c1, s.c2, s.absmax1, s.absmax2];
      onDevice([g, ...state], state, ([pg], [pp, pc1, pc2, pa1, pa2]) =>
        d.launch(k.adam8bit_f32!, nb, 256, [{ p: pp! }, { p: pg! }, { p: pc1! }, { p: pc2! }, { p: pa1! }, { p: pa2! }, { i64: p.length }, { i32: s.blockSize },
          { p: t1.code }, { p: t1.tree }, { p: t1.ranks }, { p: t2.code }, { p: t2.tree }, { p: t2.ranks }, ...adamScalars(h)]));
    },
    adam32Step(p, g, m, v, h) {
      onDevice([p, g, m, v], [p, m, v], ([pp, pg, pm, pv]) =>
        d.launch(k.adam32_f32!, elems(p.length), 256, [{ p: pp! }, { p: pg! }, { p: pm! }, { p: pv! }, { i64: p.length }, ...adamScalars(h)]));
    },
    quantizeQ8_0: (x, out, bad) => ggml("quant_q8_0_f32", x, out, bad),
    quantizeQ4_0: (x, out, bad) => ggml("quant_q4_0_f32", x, out, bad),
    dequantizeQ8_0(bytes, out) {
      onDevice([bytes], [out], ([pb], [po]) => d.launch(k.dequant_q8_0!, elems(out.length), 256, [{ p: pb! }, { i64: out.length }, { p: po! }]));
    },
    dequantizeQ4_0(bytes, out) {
      onDevice([bytes], [out], ([pb], [po]) => d.launch(k.dequant_q4_0!, elems(out.length), 256, [{ p: pb! }, { i64: out.length }, { p: po! }]));
    },
    gemm(a, b, c, m, kk, n, transA, transB, accumulate) {
      if (m === 0 || n === 0) return;
      // c is read too when accumulating: an input as well as an output
      onDevice(accumulate ? [a, b, c] : [a, b], [c], ([pa, pb], [pc]) => {
        if (typeof blas !== "string") {
          // row-major C [m, n] = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: B's storage first, as it is
          (t(a) === "f64" ? blas.dgemm : blas.sgemm)(transB ? 1 : 0, transA ? 1 : 0, n, m, kk, 1, pb!, Math.max(1, transB ? kk : n),
            pa!, Math.max(1, transA ? m : kk), accumulate ? 1 : 0, pc!, n);
          if (env.NUMEDGE_CUDA_SYNC === "1" && !mem.recording()) d.sync(); // as after every kernel (driver.ts): a fault shows here, not later
          return;
        }
        d.launch(k[`gemm_${t(a)}`]!, [Math.ceil(n / 64), Math.min(Math.ceil(m / 64), 65535)], [16, 16], [{ p: pa! }, { p: pb! }, { p: pc! }, { i32: m }, { i32: kk }, { i32: n },
          { i32: transA ? 1 : 0 }, { i32: transB ? 1 : 0 }, { i32: accumulate ? 1 : 0 }]);
      });
    },
    embeddingSum(w, idx, out, cols, per) {
      const rows = idx.length / per;
      onDevice([w, idx], [out], ([pw, pi], [po]) => d.launch(k[`embsum_${t(w)}`]!, elems(rows * cols), 256, [{ p: pw! }, { p: pi! }, { p: po! }, { i32: rows }, { i32: cols }, { i32: per }]));
    },
    embeddingSumBackward(dout, idx, dw, cols, per) {
      const rows = idx.length / per, vocab = dw.length / cols, n = idx.length, grid = Math.max(1, Math.min(vocab, 1 << 20));
      // the scan reads every index once per vocabulary row: one launch, for small vocab x indices (grok's 226 x 10214);
      // past 2^26 index reads, the positions sorted by index (a stable radix sort, 8 bits a pass; positions are ints)
      if (vocab * n <= 2 ** 26 || n > 2 ** 31 - 2048) { // (the sort's int positions step by 256 past n)
        onDevice([dout, idx, dw], [dw], ([pd, pi, pw]) => d.launch(k[`embsum_backward_${t(dw)}`]!, grid, 256,
          [{ p: pd! }, { p: pi! }, { p: pw! }, { i32: rows }, { i32: cols }, { i32: per }, { i32: vocab }]));
        return;
      }
      const tiles = Math.ceil(n / 2048), passes = Math.max(1, Math.ceil(Math.log2(vocab) / 8)), hn = 256 * tiles;
      scratch([vocab * 4, (vocab + 1) * 4, Math.ceil(vocab / 1024) * 4, hn * 4, (hn + 1) * 4, Math.ceil(hn / 1024) * 4, n * 4, n * 4, n * 4, n * 4],
        ([cnt, start, vpart, hist, place, hpart, k0, v0, k1, v1]) => {
          d.zero(cnt!, vocab * 4);
          onDevice([dout, idx, dw], [dw], ([pd, pi, pw]) => {
            d.launch(k.emb_count!, elems(n), 256, [{ p: pi! }, { i64: n }, { i32: vocab }, { p: cnt! }]);
            scanInts(cnt!, vocab, vpart!, start!);
            let kin = pi!, vin = 0n;
            for (let pass = 0; pass < passes; pass++) {
              const [kout, vout] = pass % 2 ? [k1!, v1!] : [k0!, v0!], grid = Math.min(tiles, 65535);
              d.launch(k.radix_hist!, grid, 256, [{ p: kin }, { i32: n }, { i32: 8 * pass }, { p: hist! }]);
              scanInts(hist!, hn, hpart!, place!);
              d.launch(k.radix_scatter!, grid, 256, [{ p: kin }, { p: vin }, { i32: n }, { i32: 8 * pass }, { p: place! }, { p: kout }, { p: vout }]);
              [kin, vin] = [kout, vout];
            }
            d.launch(k[`emb_gather_${t(dw)}`]!, grid, 256, [{ p: pd! }, { p: start! }, { p: vin }, { p: pw! }, { i32: cols }, { i32: per }, { i32: vocab }]);
          });
        });
    },
    adamw(w, g, m, v, s) {
      // f32: every scalar rounded to f32 first, lwc = f32(1 - f32(lerpW)) as ATen's opmath; f64 as they are
      const f64 = t(w) === "f64", r = f64 ? (v: number) => v : Math.fround, lw = r(s.lerpW);
      const num = (v: number): KernelArg => (f64 ? { f64: v } : { f32: v });
      onDevice([w, g, m, v], [w, m, v], ([pw, pg, pm, pv]) => {
        d.launch(k[`adamw_${t(w)}`]!, elems(w.length), 256, [{ p: pw! }, { p: pg! }, { p: pm! }, { p: pv! }, { i64: w.length },
          num(r(s.decay)), { i32: s.decay !== 1 ? 1 : 0 }, num(lw), num(r(1 - lw)), { i32: s.lerpW < 0.5 ? 1 : 0 },
          num(r(s.beta2)), num(r(s.oneMinusBeta2)), num(r(s.bc2sqrt)), num(r(s.eps)), num(r(s.negStep))]);
      });
    },
    orthogonalize(w, g) {
      // one block up to 256K elements; above, three passes over many blocks (partial sums folded alike by each block)
      const n = w.length, parts = n <= 1 << 18 ? 0 : Math.min(Math.ceil(n / 8192), 1024), ty = t(w);
      scratch([parts * 24, parts * 8], ([pp, pq]) => onDevice([w, g], [g], ([pw, pg]) => {
        if (!parts) return d.launch(k[`orthogonalize_${ty}`]!, 1, 1024, [{ p: pw! }, { p: pg! }, { i64: n }]);
        d.launch(k[`ortho_part_${ty}`]!, parts, 256, [{ p: pw! }, { p: pg! }, { i64: n }, { p: pp! }]);
        d.launch(k[`ortho_residual_${ty}`]!, parts, 256, [{ p: pw! }, { p: pg! }, { i64: n }, { p: pp! }, { i32: parts }, { p: pq! }]);
        d.launch(k[`ortho_apply_${ty}`]!, parts, 256, [{ p: pw! }, { p: pg! }, { i64: n }, { p: pp! }, { p: pq! }, { i32: parts }]);
      }));
    },
    maxInto(dst, idx, src, from, n, abs) {
      const bpe = t(src) === "f64" ? 8 : 4;
      // one block up to 64K elements; above, per-block maxima (16+ elements a thread) folded by a second kernel
      const parts = n <= 1 << 16 ? 0 : Math.min(Math.ceil(n / 4096), 1024);
      scratch(parts * 8, ([pp]) => onDevice([dst, src], [dst], ([pd, ps]) => {
        const at = pd! + BigInt(idx * 8), from_ = ps! + BigInt(from * bpe);
        if (!parts) return d.launch(k[`max_into_${t(src)}`]!, 1, 1024, [{ p: at }, { p: from_ }, { i64: n }, { i32: abs ? 1 : 0 }]);
        d.launch(k[`max_part_${t(src)}`]!, parts, 256, [{ p: from_ }, { i64: n }, { i32: abs ? 1 : 0 }, { p: pp! }]);
        d.launch(k.max_into_finish!, 1, 1024, [{ p: at }, { p: pp! }, { i32: parts }]);
      }));
    },
  } satisfies Partial<SoftmaxKernels> & Partial<Backend>;


  const out: Record<string, unknown> = { name: "cuda", id, storage };
  if (d.capture) out.capture = (body: () => void): Captured => {
    const { result: graph, release } = mem.holding(() => d.capture!(body));
    let live = true;
    return {
      replay() {
        if (!live) throw new NumedgeError("unsupported", "cuda: replay() of a disposed capture");
        graph.launch();
      },
      dispose() {
        if (!live) return;
        live = false;
        // no wait: a graph in flight is freed when done, and whoever gets its memory next queues behind it on the stream
        try {
          graph.destroy();
        } finally {
          release();
        }
      },
    };
  };
  for (const name of kernelNames(fallback)) {
    const f = (native as Record<string, unknown>)[name];
    if (f) out[name] = f;
    else {
      out[name] = viaWasm(name as keyof Backend);
      stagedOps.push(name);
    }
  }
  const dev = d.device;
  return {
    backend: out as unknown as Backend,
    info: {
      engine: `cuda: ${dev.name} (sm_${dev.sm}, ${(dev.totalBytes / 2 ** 30).toFixed(0)} GiB, driver API ${dev.driverVersion}), ${how}; matmul: ${
        typeof blas === "string" ? `NVRTC GEMM kernel (${blas})` : blas.engine}`,
      stagedOps: stagedOps.sort(),
      thresholdKey: `cuda:${dev.name} sm_${dev.sm}`,
    },
  };
}
