// The PTX numedge ships for GPUs without NVRTC must come from the current kernels.cu (npm run build:ptx), and must
// define every kernel the cuda backend loads. Runs everywhere: no GPU needed.
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { KERNELS } from "../src/backends/cuda.ts";
import { PTX_HASH_PREFIX, kernelSource } from "../src/backends/cuda/nvrtc.ts";

describe("shipped CUDA PTX", () => {
  const ptx = readFileSync(new URL("../src/backends/cuda/kernels.ptx", import.meta.url), "utf8");
  test("kernels.ptx was built from the current kernels.cu (else: npm run build:ptx)", () => {
    expect(ptx.split("\n")[0]).toBe(`${PTX_HASH_PREFIX}${kernelSource().hash}`);
    expect(ptx).toMatch(/\.target sm_75/);
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
