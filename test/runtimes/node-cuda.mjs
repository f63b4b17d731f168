// Node 26+ (node:ffi): the cuda backend's FFI under Node, on the package as Node loads it (dist/). Without a GPU,
// setBackend("cuda") must fail naming the driver, not the runtime. The cuda backend then runs kernels.cu on the CPU
// device (test/gpu/cpu-driver.ts: every driver call through node:ffi), and on the GPU where there is one, and must
// match wasm; where a libnvrtc loads, NVRTC under Node must build the shipped PTX.
// Run: node test/runtimes/node-cuda.mjs (after npm run build)
import { readFileSync } from "node:fs";
import * as numedge from "numedge";
import { NumedgeError, registerBackend, setBackend } from "numedge";
import { createCudaBackend } from "../../dist/backends/cuda.js";
import { loadFfi } from "../../dist/backends/cuda/ffi.js";
import { PTX_HASH_PREFIX, kernelSource, nvrtcCompile, portablePtx } from "../../dist/backends/cuda/nvrtc.js";
import { wasmBackend } from "../../dist/backends/wasm.js";
import { compareWithWasm } from "./cuda-compare.ts";

function fail(why) {
  console.log(`node cuda: FAILED ${why}`);
  process.exit(1);
}
const ffi = await loadFfi();
if (typeof ffi === "string" || ffi.runtime !== "node") fail(`no Node FFI: ${String(ffi)}`);
const done = [], devices = []; // where kernels.cu runs: the CPU device, and a GPU where there is one
try {
  const info = await setBackend("cuda");
  done.push(`cuda backend up: ${info.engine}`);
  devices.push("cuda");
} catch (e) {
  if (!(e instanceof NumedgeError) || e.code !== "backend") fail(`setBackend("cuda") threw ${String(e)}`);
  if (/node|runtime|Bun|Deno/i.test(e.message) && !/libcuda|driver|device/i.test(e.message)) fail(`the reason names the runtime: ${e.message}`);
  done.push(`no GPU here, cleanly: ${e.message.split("\n")[0]}`);
}

// The CPU device (g++ compiles kernels.cu; a .ts file, which Node 26 runs by stripping its types)
const { cpuDriver, cpuCudaMissing, cpuImage } = await import("../gpu/cpu-driver.ts");
let cpuLaunches = () => 0;
if (cpuCudaMissing()) done.push(`no CPU device: ${cpuCudaMissing()}`);
else {
  const d = await cpuDriver();
  if (typeof d === "string") fail(`cpuDriver: ${d}`);
  const made = await createCudaBackend(wasmBackend, { open: async () => d, image: cpuImage, blas: () => "none", exactSizes: true }, "cuda-cpu");
  if (typeof made === "string") fail(`createCudaBackend: ${made}`);
  registerBackend("cuda-cpu", async () => ({ backend: made.backend, info: { device: "gpu", ...made.info } }));
  devices.push("cuda-cpu");
  cpuLaunches = () => d.launches.length;
}

// softmax, top-k and a short grok run (a recorded graph) on each device, against wasm
const why = await compareWithWasm(numedge, devices);
if (why) fail(why);
if (devices.length) done.push(`softmax, topk and grok steps (a recorded graph) on ${devices.join(" and ")} match wasm${cpuLaunches() ? ` (${cpuLaunches()} launches on the CPU device through node:ffi)` : ""}`);

const { src, hash } = kernelSource();
const r = nvrtcCompile(ffi, src, "compute_75");
if ("missing" in r) done.push(`NVRTC part skipped: ${r.missing}`);
else {
  const shipped = readFileSync(new URL("../../src/backends/cuda/kernels.ptx", import.meta.url), "utf8");
  if (!shipped.startsWith(`${PTX_HASH_PREFIX}${hash}\n`)) fail("kernels.ptx is older than kernels.cu");
  if (shipped.slice(shipped.indexOf("\n") + 1) !== portablePtx(new TextDecoder().decode(r.bytes))) fail("NVRTC under Node built different PTX");
  done.push(`NVRTC under Node built the shipped PTX (${r.bytes.length} bytes)`);
}
console.log(`node cuda: ok (${done.join("; ")})`);
