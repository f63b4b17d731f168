// Builds src/backends/cuda/kernels.ptx from kernels.cu with NVRTC for compute_75 (no GPU needed): the PTX numedge
// loads, JIT-compiled by the driver, where no libnvrtc is found at run time. Its first line records the source's
// hash; a test fails when kernels.cu changed and this was not rerun. The `.version` line is lowered to
// SHIPPED_PTX_ISA so drivers older than NVRTC's CUDA load it; where ptxas is on PATH this checks that both
// declarations assemble to the same machine code (sm_75 and sm_90). Run: npm run build:ptx (Bun; NVRTC from the
// nvidia-cuda-nvrtc wheel works: NUMEDGE_NVRTC=.../nvidia/cu13/lib/libnvrtc.so.13, with that folder on
// LD_LIBRARY_PATH so libnvrtc finds its builtins).
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadFfi } from "../src/backends/cuda/ffi.ts";
import { PTX_HASH_PREFIX, SHIPPED_PTX_ISA, kernelSource, nvrtcCompile, portablePtx } from "../src/backends/cuda/nvrtc.ts";

const ffi = await loadFfi();
if (typeof ffi === "string") throw new Error(ffi);
const { src, hash } = kernelSource();
const r = nvrtcCompile(ffi, src, "compute_75");
if ("missing" in r) {
  console.error(`error: ${r.missing}; set NUMEDGE_NVRTC to a libnvrtc.so.13 (see this file's header)`);
  process.exit(2);
}
const native = new TextDecoder().decode(r.bytes), ptx = portablePtx(native);
const isa = native.match(/^\.version (\S+)$/m)?.[1];

/** Machine code for `arch` from each PTX, or null when there is no ptxas. */
function assemble(arch: string, texts: string[]): Buffer[] | null {
  const dir = mkdtempSync(join(tmpdir(), "numedge-ptx-"));
  try {
    return texts.map((t, i) => {
      writeFileSync(join(dir, `${i}.ptx`), t);
      const p = spawnSync("ptxas", [`-arch=${arch}`, join(dir, `${i}.ptx`), "-o", join(dir, `${i}.cubin`)], { encoding: "utf8" });
      if (p.error) throw p.error;
      if (p.status !== 0) throw new Error(`ptxas -arch=${arch} refused the PTX declared ${i ? SHIPPED_PTX_ISA : isa}:\n${p.stderr}`);
      return readFileSync(join(dir, `${i}.cubin`));
    });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw e;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
let checked = "not checked (no ptxas on PATH)";
for (const arch of ["sm_75", "sm_90"]) {
  const bins = assemble(arch, [native, ptx]);
  if (!bins) break;
  if (!bins[0]!.equals(bins[1]!)) throw new Error(`ISA ${SHIPPED_PTX_ISA} and ${isa} assemble differently for ${arch}: raise SHIPPED_PTX_ISA`);
  checked = "same machine code as ISA " + isa + " (ptxas, sm_75 and sm_90)";
}
writeFileSync(new URL("../src/backends/cuda/kernels.ptx", import.meta.url), `${PTX_HASH_PREFIX}${hash}\n${ptx}`);
console.log(`src/backends/cuda/kernels.ptx: ${ptx.length} bytes of PTX for compute_75, ISA ${SHIPPED_PTX_ISA}: ${checked}; source ${hash.slice(0, 12)}${r.log ? `\n${r.log}` : ""}`);
