// Which backends the parity suites run on, and how to compute the oracle answer.
// Each family's tests loop over parityBackends; the tfjs issue appends its engines here.
// setBackend from the source (the same module "numedge" resolves to under Bun), so its types include the tfjs
// engines even when dist/ is stale.
import { backendInfo, getBackend, registerBackend, setBackend, useBackend } from "../src/backends/index.ts";
import { createCudaBackend } from "../src/backends/cuda.ts";
import { referenceBackend } from "../src/backends/reference.ts";
import { wasmBackend } from "../src/backends/wasm.ts";
import { cpuCudaMissing, cpuDriver, type CpuDriver } from "./gpu/cpu-driver.ts";
import { emulatedDriver, type EmulatedDriver } from "./gpu/emulated-driver.ts";

/** The device behind "cuda-emulated": the cuda backend's TypeScript over an emulated GPU (test/gpu/emulated-driver.ts). */
export const emulated: EmulatedDriver = emulatedDriver();
const emulatedBackend = createCudaBackend(wasmBackend, { open: async () => emulated, image: () => ({ image: new Uint8Array(0), how: "emulated kernels" }), blas: () => emulated.blas() }, "cuda-emulated");
registerBackend("cuda-emulated", async () => {
  const r = await emulatedBackend; // one instance, like the real cuda backend
  if (typeof r === "string") throw new Error(r);
  return { backend: r.backend, info: { device: "gpu", ...r.info } };
});

/** Why "cuda-cpu" (the cuda backend running kernels.cu itself on the CPU: test/gpu/cpu-driver.ts) cannot run here, or null. */
export const cpuCudaUnavailable = cpuCudaMissing();
if (cpuCudaUnavailable) console.log(`skipped: cuda-cpu (${cpuCudaUnavailable})`);
let cpuDev: Promise<CpuDriver | string> | undefined, cpuBackend: ReturnType<typeof createCudaBackend> | undefined;
/** Its device (kernels.cu compiled on first use, a few seconds; then cached in the temp folder per source hash). */
export const cpuCuda = async (): Promise<CpuDriver> => {
  const d = await (cpuDev ??= cpuDriver());
  if (typeof d === "string") throw new Error(`cuda-cpu: ${d}`);
  return d;
};
registerBackend("cuda-cpu", async () => {
  // GEMM by the kernel of kernels.cu (no cuBLAS on the CPU)
  const r = await (cpuBackend ??= createCudaBackend(wasmBackend, { open: cpuCuda, image: () => ({ image: new Uint8Array(0), how: "kernels.cu on the CPU" }), blas: () => "none", exactSizes: true }, "cuda-cpu"));
  if (typeof r === "string") throw new Error(r);
  return { backend: r.backend, info: { device: "gpu", ...r.info } };
});

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
  //   2 * 2^-24 * 69 = 8e-6 relative on the output, 8x the wasm bound (tfjs-cpu);
  // - tfjs-wasm also sums rows in f32 (two-level, ~2 sqrt(cols) ulps; the wasm kernels sum in f64 blocks)
  //   and its exp/log are libm's f32 (<= 1 ulp each): 16x.
  // Ops whose tfjs path is exact (dense, topk, quant) pass at any tol.
  { name: "tfjs-wasm", setup: () => setBackend("tfjs-wasm"), tol: 16 },
  { name: "tfjs-cpu", setup: () => setBackend("tfjs-cpu"), tol: 8 },
  // cuda where a GPU is (test/gpu/ and npm run test:gpu say why not, in one line, where it is not): its kernels
  // sum and exponentiate in f64, so the wasm bounds hold as they are. Everywhere, the same backend over an
  // emulated GPU checks its storage, marshalling and staging.
  { name: "cuda", setup: () => setBackend("cuda"), tol: 1 },
  { name: "cuda-emulated", setup: () => setBackend("cuda-emulated"), tol: 1 },
  // the same kernels as "cuda", compiled for the CPU: the wasm bounds hold as for cuda
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
