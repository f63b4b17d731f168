// Which backends the parity suites run on, and how to compute the oracle answer.
// Each family's tests loop over parityBackends; the tfjs issue appends its engines here.
// setBackend from the source (the same module "numedge" resolves to under Bun), so its types include the tfjs
// engines even when dist/ is stale.
import { backendInfo, getBackend, registerBackend, setBackend, useBackend } from "../src/backends/index.ts";
import { createCudaBackend } from "../src/backends/cuda.ts";
import { referenceBackend } from "../src/backends/reference.ts";
import { wasmBackend } from "../src/backends/wasm.ts";
import { cpuCudaMissing, cpuDriver, cpuImage, type CpuDriver } from "./gpu/cpu-driver.ts";

/** Why the CPU device (kernels.cu compiled for the CPU, behind a fake libcuda: test/gpu/cpu-driver.ts) cannot run here, or null. */
export const cpuCudaUnavailable = cpuCudaMissing();
if (cpuCudaUnavailable) console.log(`skipped: cuda-cpu and cuda-cpu-cublas (${cpuCudaUnavailable})`);

/** The cuda backend on a driver of its own over the CPU device, registered as `name`; returns that driver (opened on first use). */
function onCpuDevice(name: string, o: { exactSizes: boolean; cublas: boolean }): () => Promise<CpuDriver> {
  let dev: Promise<CpuDriver | string> | undefined, made: ReturnType<typeof createCudaBackend> | undefined;
  const device = async () => {
    const d = await (dev ??= cpuDriver());
    if (typeof d === "string") throw new Error(`${name}: ${d}`);
    return d;
  };
  registerBackend(name, async () => {
    const r = await (made ??= createCudaBackend(wasmBackend, {
      open: device, image: cpuImage, blas: (d) => (o.cublas ? (d as CpuDriver).blas() : "none"), exactSizes: o.exactSizes,
    }, name));
    if (typeof r === "string") throw new Error(r);
    return { backend: r.backend, info: { device: "gpu", ...r.info } };
  });
  return device;
}
/** "cuda-cpu": every buffer its exact size (guard bytes after it catch a write past its end), matmul by the GEMM kernel of kernels.cu. */
export const cpuCuda = onCpuDevice("cuda-cpu", { exactSizes: true, cublas: false });
/** "cuda-cpu-cublas": as on a GPU, buffers in the pool's size classes and matmul by cuBLAS (the fake one, cpu-cuda/libcublas.cpp). */
export const cpuCudaCublas = onCpuDevice("cuda-cpu-cublas", { exactSizes: false, cublas: true });

export interface ParityBackend {
  name: string;
  /** Make this backend current (call in beforeAll). */
  setup: () => Promise<unknown>;
  /** Multiplier on every tolerance (1 for wasm; documented where a backend's f32 math needs more). */
  tol: number;
}

const all: ParityBackend[] = [
  // The tfjs backend on tfjs's own engines (src/backends/tfjs/). Looser where tfjs's f32 math forces it:
  // - every intermediate is an f32 tensor where the wasm kernels work in f64: softmax's exp argument
  //   (x - max) / T is rounded twice, which at arguments down to -69 (outputs >= 1e-30) is up to
  //   2 * 2^-24 * 69 = 8.2e-6 relative on the output, plus the wasm bound's own 1e-6: 10x (tfjs-cpu);
  // - tfjs-wasm also sums rows in f32 (two-level, ~2 sqrt(cols) ulps; the wasm kernels sum in f64 blocks)
  //   and its exp/log are libm's f32 (<= 1 ulp each): 16x.
  // Ops whose tfjs path is exact (dense, topk, quant) pass at any tol.
  { name: "tfjs-wasm", setup: () => setBackend("tfjs-wasm"), tol: 16 },
  { name: "tfjs-cpu", setup: () => setBackend("tfjs-cpu"), tol: 10 },
  // cuda where a GPU is (test/gpu/ and npm run test:gpu say why not, in one line, where it is not): its kernels
  // sum and exponentiate in f64, so the wasm bounds hold as they are.
  { name: "cuda", setup: () => setBackend("cuda"), tol: 1 },
  // the same backend and kernels where there is no GPU, compiled for the CPU: the wasm bounds hold as for cuda
  { name: "cuda-cpu", setup: () => setBackend("cuda-cpu"), tol: 1 },
  // wasm last: bun runs every test file in one process, so the last suite's setup is the backend the next
  // file's non-parity tests start on; it must be the default.
  { name: "wasm", setup: () => setBackend("wasm"), tol: 1 },
];

/** Why the cuda backend cannot run here, or null where it can (probed once). */
export const cudaUnavailable: string | null = await setBackend("cuda").then(() => null, (e: Error) => e.message);
await setBackend("wasm");

/**
 * The backends parity suites run on: every one above that can run here (cuda only with a GPU), restricted to the
 * comma-separated names in NUMEDGE_TEST_BACKENDS when it is set (the GPU machine runs "cuda,wasm" without the tfjs packages).
 */
const only = process.env.NUMEDGE_TEST_BACKENDS?.split(",");
export const parityBackends: ParityBackend[] = all.filter((b) => (b.name !== "cuda" || cudaUnavailable === null) && (b.name !== "cuda-cpu" || cpuCudaUnavailable === null) && (!only || only.includes(b.name)));

/** Run fn with the f64 reference backend current, then restore whatever was current. */
export function underReference<T>(fn: () => T): T {
  const prev = getBackend(), prevInfo = backendInfo();
  useBackend(referenceBackend);
  try {
    return fn();
  } finally {
    useBackend(prev, prevInfo);
  }
}
