// The PTX numedge ships for GPUs without NVRTC must come from the current kernels.cu (npm run build:ptx), and must
// define every kernel the cuda backend loads. Runs everywhere: no GPU needed.
import { describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KERNELS, kernelImage } from "../src/backends/cuda.ts";
import type { Driver } from "../src/backends/cuda/driver.ts";
import { env } from "../src/env.ts";
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

// Deno from npm ci (the GPU machine, which gets no node_modules, has none)
const deno = new URL("../node_modules/.bin/deno", import.meta.url).pathname;
if (!existsSync(deno)) console.log(`skipped: the Deno FFI test (no ${deno}: npm ci installs it)`);
else describe("the cuda backend's FFI under Deno (Deno.dlopen)", () => {
  test("no GPU: setBackend('cuda') fails naming the driver; with a libnvrtc, NVRTC under Deno builds the shipped PTX", () => {
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
  test("the cubin cache: compiled once per source and architecture, read back whole; a refused cached cubin is removed", () => {
    const dir = mkdtempSync(join(tmpdir(), "numedge-cache-")), was = env.XDG_CACHE_HOME;
    env.XDG_CACHE_HOME = dir;
    try {
      const d = { ffi, device: { sm: 75 } } as unknown as Driver;
      const first = kernelImage(d), cached = kernelImage(d);
      expect(first.how).toMatch(/^NVRTC \S+ cubin for sm_75$/);
      expect(cached.how).toBe(`${first.how} (cached)`);
      expect(Buffer.from(cached.image).equals(Buffer.from(first.image))).toBe(true);
      expect(readdirSync(`${dir}/numedge`).filter((f) => f.endsWith(".tmp"))).toEqual([]); // renamed into place
      expect(cached.ptx!().how).toMatch(/shipped compute_75 PTX .*the driver refused the cached cubin/);
      expect(readdirSync(`${dir}/numedge`)).toEqual([]);
    } finally {
      env.XDG_CACHE_HOME = was;
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
