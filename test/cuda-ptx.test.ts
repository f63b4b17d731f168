// The PTX numedge ships for GPUs without NVRTC must come from the current kernels.cu (npm run build:ptx), and must
// define every kernel the cuda backend loads. Runs everywhere: no GPU needed.
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { PTX_HASH_PREFIX, kernelSource } from "../src/backends/cuda/nvrtc.ts";

describe("shipped CUDA PTX", () => {
  const ptx = readFileSync(new URL("../src/backends/cuda/kernels.ptx", import.meta.url), "utf8");
  test("kernels.ptx was built from the current kernels.cu (else: npm run build:ptx)", () => {
    expect(ptx.split("\n")[0]).toBe(`${PTX_HASH_PREFIX}${kernelSource().hash}`);
    expect(ptx).toMatch(/\.target sm_75/);
  });
  test("every kernel the backend looks up is defined, for f32 and f64", () => {
    const backend = readFileSync(new URL("../src/backends/cuda.ts", import.meta.url), "utf8");
    const names = backend.match(/\["softmax"[^\]]*\]/)![0].match(/"(\w+)"/g)!.map((q) => q.slice(1, -1));
    expect(names.length).toBeGreaterThan(4);
    for (const n of names) for (const t of ["f32", "f64"]) expect(ptx).toContain(`.entry ${n}_${t}(`);
  });
});
