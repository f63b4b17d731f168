// The PTX numedge ships for GPUs without NVRTC must come from the current kernels.cu (npm run build:ptx), and must
// define every kernel the cuda backend loads. Runs everywhere: no GPU needed.
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { KERNELS } from "../src/backends/cuda.ts";
import { PTX_HASH_PREFIX, SHIPPED_PTX_ISA, kernelSource, nvrtcCompile } from "../src/backends/cuda/nvrtc.ts";
import { loadFfi, type Ffi } from "../src/backends/cuda/ffi.ts";
import { NumedgeError } from "../src/errors.ts";

describe("shipped CUDA PTX", () => {
  const ptx = readFileSync(new URL("../src/backends/cuda/kernels.ptx", import.meta.url), "utf8");
  test("kernels.ptx was built from the current kernels.cu (else: npm run build:ptx)", () => {
    expect(ptx.split("\n")[0]).toBe(`${PTX_HASH_PREFIX}${kernelSource().hash}`);
    expect(ptx).toMatch(/^\.target sm_75$/m);
    expect(ptx).toMatch(new RegExp(`^\\.version ${SHIPPED_PTX_ISA.replace(".", "\\.")}$`, "m")); // loads on drivers older than NVRTC's CUDA
  });
  test("every kernel the backend looks up is defined", () => {
    expect(KERNELS.length).toBeGreaterThan(10);
    for (const n of KERNELS) expect(ptx).toContain(`.entry ${n}(`);
  });
});

describe("the cuda backend's FFI under Deno (Deno.dlopen)", () => {
  test("no GPU: setBackend('cuda') fails naming the driver; with a libnvrtc, NVRTC under Deno builds the shipped PTX", () => {
    const deno = new URL("../node_modules/.bin/deno", import.meta.url).pathname;
    const r = Bun.spawnSync([deno, "run", "-A", new URL("./runtimes/deno-cuda.ts", import.meta.url).pathname], { stdout: "pipe", stderr: "pipe" });
    const out = r.stdout.toString();
    console.log(out.trim()); // says whether the NVRTC part ran (it needs NUMEDGE_NVRTC or a libnvrtc on ldconfig)
    expect(out, r.stderr.toString()).toContain("deno cuda: ok");
    expect(r.exitCode).toBe(0);
  }, 60_000);
});

// NVRTC itself, where a libnvrtc loads (NUMEDGE_NVRTC or ldconfig; CI has none): a failed compile shows its log.
const ffi = await loadFfi();
const probe = typeof ffi === "string" ? { missing: ffi } : nvrtcCompile(ffi, "extern \"C\" __global__ void k() {}", "compute_75");
if ("missing" in probe) console.log(`skipped: NVRTC compile-error test (${probe.missing})`);
else describe("NVRTC", () => {
  test("a failed compile throws NumedgeError('backend') carrying NVRTC's log (file, line, message)", () => {
    const e = (() => { try { nvrtcCompile(ffi as Ffi, "extern \"C\" __global__ void k() { undeclared_name = 1; }", "compute_75"); } catch (x) { return x; } })();
    expect(e).toBeInstanceOf(NumedgeError);
    expect((e as NumedgeError).code).toBe("backend");
    expect((e as Error).message).toMatch(/numedge\.cu\(1\): error: identifier "undeclared_name" is undefined/);
  });
});
