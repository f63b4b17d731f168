// The "cuda-cpu" device: the real CUDA C of kernels.cu, compiled by the host C++ compiler against cpu-cuda/cuda_shim.h
// and run on the CPU by cpu-cuda/runtime.cpp (blocks one at a time, threads as fibers), behind the cuda backend's
// Driver interface. Where the emulated driver mirrors each kernel in TypeScript, this executes the kernels themselves,
// so CI without a GPU still runs every line of kernels.cu through the backend's own marshalling.
// No FMA contraction (-ffp-contract=off), as NVRTC's --fmad=false: f32/f64 arithmetic rounds as on the GPU; only
// libm (exp, log, log1p) may differ from CUDA's libdevice by an ulp.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { kernelParams, type Driver } from "../../src/backends/cuda/driver.ts";
import { loadFfi } from "../../src/backends/cuda/ffi.ts";
import { NumedgeError } from "../../src/errors.ts";

const CXX = process.env.CXX ?? "g++";
// NUMEDGE_CUDA_CPU_ASAN=1: kernels under AddressSanitizer, which then must be preloaded into the runtime:
//   LD_PRELOAD=$(g++ -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0 NUMEDGE_CUDA_CPU_ASAN=1 bun test ...
const FLAGS = ["-O2", "-std=c++17", "-fPIC", "-shared", "-ffp-contract=off", "-w", ...(process.env.NUMEDGE_CUDA_CPU_ASAN === "1" ? ["-fsanitize=address", "-g"] : [])];
const shimDir = fileURLToPath(new URL("./cpu-cuda/", import.meta.url));

/** Why kernels.cu cannot run on the CPU here (no C++ compiler), or null. */
export function cpuCudaMissing(): string | null {
  const r = spawnSync(CXX, ["--version"], { stdio: "ignore" });
  return r.status === 0 ? null : `no ${CXX}`;
}

type ArgKind = "p" | "i32" | "i64" | "f32" | "f64";
const SCALARS: Record<string, ArgKind> = { int: "i32", "long long": "i64", float: "f32", double: "f64" };

/** Every `extern "C" __global__` kernel of the source: its name, parameters' C types and the KernelArg each takes. */
export function kernelSignatures(src: string): Array<{ name: string; types: string[]; kinds: ArgKind[] }> {
  return [...src.matchAll(/extern "C" __global__ void (?:__launch_bounds__\([\d, ]+\) )?(\w+)\(([^)]*)\)/g)].map(([, name, params]) => {
    const types = params!.split(",").map((p) => p.trim().replace(/\s*\b\w+$/, "")); // drop the parameter's name
    const kinds = types.map((t) => {
      const k = t.includes("*") ? "p" : SCALARS[t];
      if (!k) throw new Error(`cuda-cpu: kernel ${name} has a parameter of type ${t}, which cpu-driver.ts cannot pass`);
      return k;
    });
    return { name: name!, types, kinds };
  });
}

/**
 * The .so of kernels.cu for this CPU, compiled once per source (shim, runtime, kernels, wrappers, and `also`, a file
 * of cpu-cuda/ such as the fake libcuda) into a temp cache.
 */
function compile(sigs: ReturnType<typeof kernelSignatures>, kernelsPath: string, also?: string): string {
  // one wrapper per kernel: unpack cuLaunchKernel's kernelParams (args[i] points at parameter i) and call it
  const gen = [`#include "runtime.cpp"`, `#include "${kernelsPath}"`,
    ...sigs.map((s, i) => `static void w${i}(void** a) { ${s.name}(${s.types.map((t, j) => `*(${t}*)a[${j}]`).join(", ")}); }`),
    `static void (*const cc_kernels[])(void**) = { ${sigs.map((_, i) => `w${i}`).join(", ")} };`,
    `static const char* const cc_names[] = { ${sigs.map((s) => JSON.stringify(s.name)).join(", ")} };`,
    `static const unsigned cc_nparams[] = { ${sigs.map((s) => s.types.length).join(", ")} };`,
    `extern "C" int cc_function(uint64_t* out, uint32_t i) { if (i >= ${sigs.length}) return 1; *out = (uint64_t)cc_kernels[i]; return 0; }`,
    ...(also ? [`#include "${also}"`] : []), ""].join("\n");
  const h = createHash("sha256").update([CXX, ...FLAGS, gen, readFileSync(kernelsPath, "utf8"), ...["cuda_shim.h", "runtime.cpp", ...(also ? [also] : [])].map((f) => readFileSync(shimDir + f, "utf8"))].join("\0"));
  const dir = join(tmpdir(), "numedge-cuda-cpu"), so = join(dir, `kernels-${h.digest("hex").slice(0, 16)}.so`);
  if (existsSync(so)) return so;
  mkdirSync(dir, { recursive: true });
  const work = mkdtempSync(join(dir, "build-"));
  try {
    writeFileSync(join(work, "gen.cpp"), gen);
    const r = spawnSync(CXX, [...FLAGS, "-I", shimDir, join(work, "gen.cpp"), "-o", join(work, "k.so")], { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`cuda-cpu: ${CXX} failed on kernels.cu:\n${(r.stderr || String(r.error)).slice(0, 4000)}`);
    renameSync(join(work, "k.so"), so); // atomic: a concurrent test process sees the whole file or none
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return so;
}

/**
 * A fake libcuda.so.1 (cpu-cuda/libcuda.cpp) that runs kernels.cu on the CPU device, or why not: a process started
 * with NUMEDGE_LIBCUDA=lib runs the cuda backend's real driver.ts on it, with no GPU.
 */
export function fakeLibcuda(): { lib: string } | string {
  const missing = cpuCudaMissing();
  if (missing) return missing;
  const kernelsPath = fileURLToPath(new URL("../../src/backends/cuda/kernels.cu", import.meta.url));
  const so = compile(kernelSignatures(readFileSync(kernelsPath, "utf8")), kernelsPath, "libcuda.cpp"), dir = so.replace(/\.so$/, "-libcuda");
  mkdirSync(dir, { recursive: true });
  if (!existsSync(join(dir, "libcuda.so.1"))) { // atomic, as compile()'s
    copyFileSync(so, join(dir, `libcuda.so.1.${process.pid}`));
    renameSync(join(dir, `libcuda.so.1.${process.pid}`), join(dir, "libcuda.so.1"));
  }
  return { lib: join(dir, "libcuda.so.1") };
}

export interface CpuDriver extends Driver {
  /** Kernel names in launch order (tests check which kernels a call ran). */
  launches: string[];
}

/**
 * The CPU device running the kernels of `source` (kernels.cu by default), or why not. Launches run to completion
 * before returning (sync is free); blocks and threads run in a shuffled order seeded by the launch count
 * (NUMEDGE_CUDA_CPU_SHUFFLE=0: in order).
 */
export async function cpuDriver(source = new URL("../../src/backends/cuda/kernels.cu", import.meta.url)): Promise<CpuDriver | string> {
  const missing = cpuCudaMissing();
  if (missing) return missing;
  const ffi = await loadFfi();
  if (typeof ffi === "string") return ffi;
  const kernelsPath = fileURLToPath(source), sigs = kernelSignatures(readFileSync(kernelsPath, "utf8"));
  const lib = ffi.open(compile(sigs, kernelsPath), {
    cc_error: ["buf"],
    cc_alloc: ["buf", "u64"],
    cc_free: ["u64"],
    cc_htod: ["u64", "buf", "usize"],
    cc_dtoh: ["buf", "u64", "usize"],
    cc_dtod: ["u64", "u64", "usize"],
    cc_memset: ["u64", "u32", "usize"],
    cc_function: ["buf", "u32"],
    cc_launch: ["ptr", "u32", "u32", "u32", "u32", "u32", "ptr", "u32", "u32"],
  } as const);
  const cc = lib.fn;
  const check = (rc: number, what: string) => {
    if (rc === 0) return;
    const p = new BigUint64Array(1);
    cc.cc_error(p);
    throw new NumedgeError(rc === 2 ? "range" : "backend", `cuda-cpu: ${what} failed: ${ffi.cstring(p[0]!)}`);
  };
  const byName = new Map(sigs.map((s, i) => {
    const f = new BigUint64Array(1);
    check(cc.cc_function(f, i), "cc_function");
    return [s.name, { ...s, fn: f[0]! }];
  }));
  const byFn = new Map([...byName.values()].map((s) => [s.fn, s]));
  const shuffle = process.env.NUMEDGE_CUDA_CPU_SHUFFLE !== "0";
  let launchCount = 0;
  const pack = kernelParams(ffi); // the real driver's packing, so these tests run it too
  const launches: string[] = [];
  // CUDA graph capture as the driver's: launches and memsets are recorded, not run; copies and syncs throw
  let recording: Array<() => void> | null = null;
  const notCapturing = (what: string) => {
    if (recording) throw new NumedgeError("unsupported", `cuda-cpu: ${what} while capturing a CUDA graph (only launches and memsets can be captured)`);
  };
  const runOrRecord = (run: () => void) => (recording ? recording.push(run) : run());
  return {
    ffi,
    device: { name: "CPU (kernels.cu via g++)", sm: 90, totalBytes: totalmem(), driverVersion: 0 },
    stream: 0n,
    launches,
    alloc(bytes) {
      const p = new BigUint64Array(1);
      check(cc.cc_alloc(p, BigInt(Math.max(bytes, 1))), `alloc(${bytes} bytes)`);
      return p[0]!;
    },
    free: (p) => check(cc.cc_free(p), "free"),
    htod: (p, src) => { notCapturing("a copy to the device"); if (src.byteLength) check(cc.cc_htod(p, src, BigInt(src.byteLength)), "htod"); },
    dtoh: (dst, p) => { notCapturing("a copy from the device"); if (dst.byteLength) check(cc.cc_dtoh(dst, p, BigInt(dst.byteLength)), "dtoh"); },
    dtod: (dst, src, bytes) => { notCapturing("a device copy"); if (bytes) check(cc.cc_dtod(dst, src, BigInt(bytes)), "dtod"); },
    zero: (p, bytes) => { if (bytes) runOrRecord(() => check(cc.cc_memset(p, 0, BigInt(bytes)), "memset")); },
    module: () => (name) => {
      const s = byName.get(name);
      if (!s) throw new NumedgeError("backend", `cuda-cpu: cuModuleGetFunction(${name}) failed (CUDA_ERROR_NOT_FOUND: kernels.cu has no such kernel)`);
      return s.fn;
    },
    launch(fn, grid, block, args, sharedBytes = 0) {
      const s = byFn.get(fn);
      if (!s) throw new NumedgeError("backend", "cuda-cpu: launch of an unknown function handle");
      // what the real driver cannot check: each argument of the kind its C parameter takes (else the kernel reads garbage)
      const kinds = args.map((a) => Object.keys(a)[0]);
      if (kinds.join() !== s.kinds.join()) throw new NumedgeError("backend", `cuda-cpu: ${s.name}(${s.types.join(", ")}) launched with arguments ${kinds.join(", ")}`);
      const [gx, gy] = typeof grid === "number" ? [grid, 1] : grid, [bx, by] = typeof block === "number" ? [block, 1] : block;
      const a = [...args];
      runOrRecord(() => {
        launches.push(s.name);
        check(cc.cc_launch(fn, gx, gy, bx, by, sharedBytes, pack(a), a.length, shuffle ? ++launchCount : 0), `${s.name}<<<[${gx}, ${gy}], [${bx}, ${by}]>>>`);
      });
    },
    sync: () => notCapturing("a synchronize"),
    capture(body) {
      notCapturing("a capture");
      const work: Array<() => void> = [];
      recording = work;
      try {
        body();
      } finally {
        recording = null;
      }
      let live = true;
      return {
        launch() {
          if (!live) throw new Error("cuda-cpu: launch of a destroyed CUDA graph");
          launches.push("(graph launch)");
          for (const w of work) w();
        },
        destroy() { live = false; },
      };
    },
  };
}
