// Builds src/backends/cuda/kernels.ptx from kernels.cu with NVRTC for compute_75 (no GPU needed): the PTX numedge
// loads, JIT-compiled by the driver, where no libnvrtc is found at run time. Its first line records the source's
// hash; a test fails when kernels.cu changed and this was not rerun. Run: npm run build:ptx (Bun; NVRTC from the
// nvidia-cuda-nvrtc wheel works: NUMEDGE_NVRTC=.../nvidia/cu13/lib/libnvrtc.so.13, with that folder on
// LD_LIBRARY_PATH so libnvrtc finds its builtins).
import { writeFileSync } from "node:fs";
import { loadFfi } from "../src/backends/cuda/ffi.ts";
import { PTX_HASH_PREFIX, kernelSource, nvrtcCompile } from "../src/backends/cuda/nvrtc.ts";

const ffi = await loadFfi();
if (typeof ffi === "string") throw new Error(ffi);
const { src, hash } = kernelSource();
const r = nvrtcCompile(ffi, src, "compute_75");
if ("missing" in r) {
  console.error(`error: ${r.missing}; set NUMEDGE_NVRTC to a libnvrtc.so.13 (see this file's header)`);
  process.exit(2);
}
const ptx = new TextDecoder().decode(r.bytes);
writeFileSync(new URL("../src/backends/cuda/kernels.ptx", import.meta.url), `${PTX_HASH_PREFIX}${hash}\n${ptx}`);
console.log(`src/backends/cuda/kernels.ptx: ${ptx.length} bytes of PTX for compute_75 (${ptx.match(/\.version \S+/)?.[0]}), source ${hash.slice(0, 12)}${r.log ? `\n${r.log}` : ""}`);
