// The "cuda-cpu" device: the real CUDA C of kernels.cu, compiled by the host C++ compiler against cpu-cuda/cuda_shim.h
// and run on the CPU by cpu-cuda/runtime.cpp (blocks one at a time, threads as fibers), behind a fake libcuda.so.1
// (cpu-cuda/libcuda.cpp, with a fake cuBLAS: libcublas.cpp) that the cuda backend's own driver (driver.ts) opens, so
// CI without a GPU still runs every line of kernels.cu through the backend's own marshalling and FFI calls.
// No FMA contraction (-ffp-contract=off), as NVRTC's --fmad=false: f32/f64 arithmetic rounds as on the GPU; only
// libm (exp, log, log1p) may differ from CUDA's libdevice by an ulp.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { openCublas, type Cublas, type GemmCall } from "../../src/backends/cuda/cublas.ts";
import { openDriver, type Driver, type Graph } from "../../src/backends/cuda/driver.ts";
import { openFirst } from "../../src/backends/cuda/ffi.ts";
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
 * The kernels of `kernelsPath` behind a fake libcuda.so.1 (cpu-cuda/libcuda.cpp over runtime.cpp), with one
 * wrapper per kernel that unpacks cuLaunchKernel's kernelParams; compiled once per source into a temp cache.
 */
function compile(kernelsPath: string): string {
  const sigs = kernelSignatures(readFileSync(kernelsPath, "utf8"));
  const gen = [`#include "runtime.cpp"`, `#include "${kernelsPath}"`,
    ...sigs.map((s, i) => `static void w${i}(void** a) { ${s.name}(${s.types.map((t, j) => `*(${t}*)a[${j}]`).join(", ")}); }`),
    `static void (*const cc_kernels[])(void**) = { ${sigs.map((_, i) => `w${i}`).join(", ")} };`,
    `static const char* const cc_names[] = { ${sigs.map((s) => JSON.stringify(s.name)).join(", ")} };`,
    `static const unsigned cc_nparams[] = { ${sigs.map((s) => s.types.length).join(", ")} };`,
    `#include "libcuda.cpp"`, `#include "libcublas.cpp"`, ""].join("\n");
  const h = createHash("sha256").update([CXX, ...FLAGS, gen, readFileSync(kernelsPath, "utf8"), ...["cuda_shim.h", "runtime.cpp", "libcuda.cpp", "libcublas.cpp"].map((f) => readFileSync(shimDir + f, "utf8"))].join("\0"));
  const dir = join(tmpdir(), "numedge-cuda-cpu"), so = join(dir, `kernels-${h.digest("hex").slice(0, 16)}.so`);
  if (existsSync(so)) return so;
  mkdirSync(dir, { recursive: true });
  const work = mkdtempSync(join(dir, "build-"));
  try {
    writeFileSync(join(work, "gen.cpp"), gen);
    const r = spawnSync(CXX, [...FLAGS, "-I", shimDir, join(work, "gen.cpp"), "-o", join(work, "k.so")], { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`cuda-cpu: ${CXX} failed on ${kernelsPath}:\n${(r.stderr || String(r.error)).slice(0, 4000)}`);
    renameSync(join(work, "k.so"), so); // atomic: a concurrent test process sees the whole file or none
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return so;
}

const kernelsCu = new URL("../../src/backends/cuda/kernels.cu", import.meta.url);

/**
 * A fake libcuda.so.1 (cpu-cuda/libcuda.cpp) that runs kernels.cu on the CPU device, and the same library as a fake
 * libcublas.so.13 (cpu-cuda/libcublas.cpp), or why not: a process started with NUMEDGE_LIBCUDA=lib (and
 * NUMEDGE_CUBLAS=blas) runs the cuda backend on them, with no GPU. A copy of its own (a second instance of the library
 * where cpuDriver's is loaded too), with the GPU's rule that a kernel's fault loses the context.
 */
export function fakeLibcuda(): { lib: string; blas: string } | string {
  const missing = cpuCudaMissing();
  if (missing) return missing;
  const so = compile(fileURLToPath(kernelsCu)), dir = so.replace(/\.so$/, "-libcuda");
  mkdirSync(dir, { recursive: true });
  // atomic, as compile()'s; the link is the same file, so the loader gives both names one instance (one stream)
  for (const [name, make] of [["libcuda.so.1", (tmp: string) => copyFileSync(so, tmp)], ["libcublas.so.13", (tmp: string) => symlinkSync("libcuda.so.1", tmp)]] as const)
    if (!existsSync(join(dir, name))) {
      make(join(dir, `${name}.${process.pid}`));
      renameSync(join(dir, `${name}.${process.pid}`), join(dir, name));
    }
  return { lib: join(dir, "libcuda.so.1"), blas: join(dir, "libcublas.so.13") };
}

/** The kernel image a cuda backend on the CPU device loads: none (the fake driver has the kernels compiled in). */
export const cpuImage = () => ({ image: new Uint8Array(0), how: "kernels.cu on the CPU" });

export interface CpuDriver extends Driver {
  /** Kernel names in launch order (cuBLAS calls as cublasSgemm_v2 / cublasDgemm_v2), a graph's as "(graph launch)"
   *  and then its kernels: tests check what a call ran. */
  launches: string[];
  /** How many times each memory and synchronizing call ran (alloc, free, htod, dtoh, dtod, zero, sync). */
  calls: Record<string, number>;
  /** Device allocations alive now (bytes). */
  liveBytes(): number;
  /** The fake cuBLAS of the same library (cpu-cuda/libcublas.cpp) through cublas.ts, its calls logged in `launches`. */
  blas(): Cublas | string;
  /** The library's path (libcuda.so.1 and libcublas.so.13 in one). */
  library: string;
}

/**
 * The CPU device running the kernels of `source` (kernels.cu by default) through the cuda backend's own driver
 * (driver.ts over the fake libcuda.so.1), or why not. Launches run to completion before returning; blocks and
 * threads run in a shuffled order seeded by a count of the library's launches (every CPU device of one source in a
 * process shares the library, and so its memory and that count; NUMEDGE_CUDA_CPU_SHUFFLE=0: in order). Unlike a
 * GPU's, a kernel's fault (an out-of-bounds write, reported and its guard bytes restored) leaves the device usable,
 * and each launch's arguments are checked against the kernel's C parameters (what no real driver can check: a
 * wrong kind reads garbage).
 */
export async function cpuDriver(source = kernelsCu): Promise<CpuDriver | string> {
  const missing = cpuCudaMissing();
  if (missing) return missing;
  const kernelsPath = fileURLToPath(source), so = compile(kernelsPath);
  const d = await openDriver(so);
  if (typeof d === "string") return d;
  const hooks = openFirst(d.ffi, [so], { numedge_fake_recoverable_faults: [] } as const);
  if ("why" in hooks) return hooks.why;
  hooks.lib.fn.numedge_fake_recoverable_faults();
  const sigs = new Map(kernelSignatures(readFileSync(kernelsPath, "utf8")).map((s) => [s.name, s]));
  const byFn = new Map<bigint, { name: string; types: string[]; kinds: ArgKind[] }>();
  const launches: string[] = [], calls: Record<string, number> = {}, live = new Map<bigint, number>();
  let recording: string[] | null = null;
  const count = (what: string) => { calls[what] = (calls[what] ?? 0) + 1; };
  const gemm = (name: string, f: GemmCall): GemmCall => (...a) => { (recording ?? launches).push(name); f(...a); };
  const self: CpuDriver = {
    ...d,
    launches,
    calls,
    library: so,
    liveBytes: () => [...live.values()].reduce((a, b) => a + b, 0),
    alloc(bytes) { count("alloc"); const p = d.alloc(bytes); live.set(p, bytes); return p; },
    free(p) { count("free"); d.free(p); live.delete(p); },
    htod(p, src) { count("htod"); d.htod(p, src); },
    dtoh(dst, p) { count("dtoh"); d.dtoh(dst, p); },
    dtod(dst, src, bytes) { count("dtod"); d.dtod(dst, src, bytes); },
    zero(p, bytes) { count("zero"); d.zero(p, bytes); },
    sync() { count("sync"); d.sync(); },
    blas() {
      const b = openCublas(self, false, so);
      return typeof b === "string" ? b : { ...b, sgemm: gemm("cublasSgemm_v2", b.sgemm), dgemm: gemm("cublasDgemm_v2", b.dgemm) };
    },
    module(image) {
      const get = d.module(image);
      return (name) => {
        const fn = get(name);
        byFn.set(fn, sigs.get(name)!);
        return fn;
      };
    },
    launch(fn, grid, block, args, sharedBytes) {
      const s = byFn.get(fn);
      if (!s) throw new NumedgeError("backend", "cuda-cpu: launch of an unknown function handle");
      const kinds = args.map((a) => Object.keys(a)[0]);
      if (kinds.join() !== s.kinds.join()) throw new NumedgeError("backend", `cuda-cpu: ${s.name}(${s.types.join(", ")}) launched with arguments ${kinds.join(", ")}`);
      (recording ?? launches).push(s.name);
      d.launch(fn, grid, block, args, sharedBytes);
    },
    capture: d.capture && ((body) => {
      const work: string[] = [], outer = recording;
      recording = work;
      let g: Graph;
      try {
        g = d.capture!(body);
      } finally {
        recording = outer; // a capture inside a capture fails; the outer one goes on recording
      }
      return {
        launch() {
          g.launch();
          launches.push("(graph launch)", ...work);
        },
        destroy: () => g.destroy(),
      };
    }),
  };
  return self;
}
