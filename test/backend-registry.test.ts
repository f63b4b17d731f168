// The registry: setBackend choices, backendInfo, tfjs-gpu errors, auto's fallback and size routing,
// NUMEDGE_BACKEND at import (in a subprocess), all without a GPU: where there is one (or the tests' fake libcuda),
// this file hides it (the cuda load in process, CUDA_VISIBLE_DEVICES="" in subprocesses).
import { afterAll, afterEach, describe, expect, spyOn, test } from "bun:test";
import { NumedgeError, backendInfo, setBackend, softmax } from "numedge";
import {
  autoOn, getBackend, opSize, routedBackend, swapCudaLoad, useProbe,
} from "../src/backends/index.ts";
import { TfjsProbe, type ProbeDeps } from "../src/backends/probe.ts";
import type { Backend } from "../src/backends/types.ts";
import { wasmBackend } from "../src/backends/wasm.ts";

const real = useProbe(new TfjsProbe());
useProbe(real);
const realCuda = swapCudaLoad(Promise.resolve("the NVIDIA driver is hidden from this test file (it checks the registry without a GPU)"));
const noGpu = { ...process.env, CUDA_VISIBLE_DEVICES: "" };
afterEach(async () => {
  useProbe(real);
  await setBackend("wasm");
});
afterAll(async () => { useProbe(real); swapCudaLoad(realCuda); await setBackend("wasm"); });

/** Probe deps with only tfjs-node-gpu "installed": its binding present or not, its GPU present or not. */
function gpuWorld(o: { binding: boolean; gpu: boolean }): ProbeDeps {
  let cur = "";
  const tf = {
    tensor() { throw new Error("fake"); },
    async setBackend(n: string) { cur = n; return n === "tensorflow"; },
    getBackend: () => cur,
    backend: () => ({ isUsingGpuDevice: o.gpu }),
    env: () => ({ set() {} }),
  };
  const dir = "/nm/@tensorflow/tfjs-node-gpu";
  return {
    packageDir: (p) => (p === "@tensorflow/tfjs-node-gpu" ? dir : null),
    exists: (p) => o.binding && (p === `${dir}/lib/napi-v8/tfjs_binding.node` || p === `${dir}/deps/lib/libtensorflow.so.2`),
    readJson: () => ({ binary: { module_path: "./lib/napi-v{napi_build_version}", napi_versions: [8] } }),
    importPackage: async () => tf,
    napi: 9,
    platform: "linux",
  };
}

function captureStderr<T>(fn: () => Promise<T>): Promise<{ value: T; lines: string[] }> {
  const lines: string[] = [];
  const spy = spyOn(process.stderr, "write").mockImplementation(((s: string) => { lines.push(String(s)); return true; }) as never);
  return fn().then((value) => ({ value, lines })).finally(() => spy.mockRestore());
}

describe("backend registry", () => {
  test("wasm and reference: engine names, empty reasons", async () => {
    expect((await setBackend("reference")).engine).toBe("typescript-f64");
    expect(backendInfo()).toMatchObject({ name: "reference", device: "cpu" });
    expect((await setBackend("wasm")).engine).toBe("wasm-simd");
  });

  test("unknown name: NumedgeError(backend) listing the choices", async () => {
    const e = await setBackend("cudaa" as never).catch((x) => x);
    expect(e).toBeInstanceOf(NumedgeError);
    expect(e.code).toBe("backend");
    expect(e.message).toMatch(/wasm, reference, tfjs, tfjs-gpu.*cuda.*got "cudaa"/);
  });

  test("tfjs on this machine: first usable engine, reasons for the ones before it, fallback ops listed", async () => {
    const i = await setBackend("tfjs");
    expect(i.name).toBe("tfjs");
    expect(["tfjs-node-gpu", "tfjs-node", "tfjs-wasm", "tfjs-cpu"]).toContain(i.engine);
    if (i.engine === "tfjs-wasm") {
      expect(i.reasons["tfjs-node-gpu"]).toBeString();
      expect(i.reasons["tfjs-node"]).toBeString();
    }
    expect(i.fallbackOps).toBeArray();
    expect(i.fallbackOps).not.toContain("softmax");
    expect(i.fallbackOps).not.toContain("gemm");
    const y = softmax(new Float32Array([-2, 0, 0.5]), { cols: 3 });
    expect(y[2]).toBeCloseTo(0.592201, 6);
    expect(getBackend().name).toBe("tfjs");
  });

  test("tfjs-gpu without a GPU package: NumedgeError(backend) naming the package and how to get it, no stack in the message", async () => {
    useProbe(new TfjsProbe({ ...gpuWorld({ binding: false, gpu: false }), packageDir: () => null }));
    const e = await setBackend("tfjs-gpu").catch((x) => x);
    expect(e).toBeInstanceOf(NumedgeError);
    expect(e.code).toBe("backend");
    expect(e.message).toMatch(/@tensorflow\/tfjs-node-gpu is not installed.*CUDA 11\.2 and cuDNN 8\.1: npm i @tensorflow\/tfjs-node-gpu@4\.22\.0 .*docs\/backends\.md: The legacy route: tfjs-node-gpu/);
    expect(e.message).not.toMatch(/\n/);
    expect(backendInfo().engine).toBe("wasm-simd"); // unchanged
  });

  test("tfjs-gpu with the binding file absent, and with no GPU device: each says what is missing", async () => {
    useProbe(new TfjsProbe(gpuWorld({ binding: false, gpu: true })));
    const a = await setBackend("tfjs-gpu").catch((x) => x);
    expect(a.code).toBe("backend");
    expect(a.message).toMatch(/tfjs_binding\.node is missing/);
    useProbe(new TfjsProbe(gpuWorld({ binding: true, gpu: false })));
    const b = await setBackend("tfjs-gpu").catch((x) => x);
    expect(b.code).toBe("backend");
    expect(b.message).toMatch(/isUsingGpuDevice is false/);
  });

  test("auto without a GPU never throws: wasm, the reason in backendInfo, one stderr line when the GPU package is installed", async () => {
    useProbe(new TfjsProbe(gpuWorld({ binding: false, gpu: false })));
    const { value, lines } = await captureStderr(() => setBackend("auto"));
    expect(value).toMatchObject({ name: "wasm", device: "cpu", engine: "wasm-simd" });
    expect(value.reasons["tfjs-gpu"]).toMatch(/tfjs_binding\.node is missing/);
    expect(lines.length).toBe(1);
    expect(lines[0]).toMatch(/^numedge: no usable GPU, running on wasm \(.*\)\n$/);
    expect(lines[0]!.trimEnd()).not.toMatch(/\n/);
  });

  test("auto without any GPU package is silent unless asked to warn", async () => {
    useProbe(new TfjsProbe({ ...gpuWorld({ binding: false, gpu: false }), packageDir: () => null }));
    const quiet = await captureStderr(() => setBackend("auto"));
    expect(quiet.lines).toEqual([]);
    expect(quiet.value.engine).toBe("wasm-simd");
    const loud = await captureStderr(() => setBackend("auto", { warn: true }));
    expect(loud.lines.length).toBe(1);
    expect(loud.lines[0]).toMatch(/not installed/);
  });

  test("auto with a GPU but no measured thresholds keeps every op on wasm and says how to measure them, in one line", async () => {
    useProbe(new TfjsProbe(gpuWorld({ binding: true, gpu: true })));
    const { value, lines } = await captureStderr(() => setBackend("auto"));
    expect(value).toMatchObject({ name: "wasm", device: "cpu" });
    expect(value.reasons.tfjs).toMatch(/no thresholds were measured for it: run `npx numedge gpu-check`/);
    expect(value.reasons.cuda).toMatch(/libcuda|FFI|driver/);
    expect(lines.length).toBe(1);
  });

  test("auto with a GPU: routed backend, device gpu, thresholds reported; small ops stay on wasm", async () => {
    useProbe(new TfjsProbe(gpuWorld({ binding: true, gpu: true })));
    const i = await setBackend("auto", { thresholds: { softmax: 1 << 20 } });
    expect(i).toMatchObject({ device: "gpu", engine: "auto(wasm-simd + tfjs-node-gpu)", thresholdKey: "tfjs-gpu:tfjs-node-gpu" });
    expect(i.gpuThresholds).toEqual({ softmax: 1 << 20 });
    // the fake GPU engine cannot compute: a small softmax proves it went to wasm
    const y = softmax(new Float32Array([-2, 0, 0.5]), { cols: 3 });
    expect(y[0]).toBeCloseTo(0.048611, 6);
    expect((await setBackend("tfjs-gpu")).device).toBe("gpu");
  });

  test("routedBackend: per-op thresholds on the op's size (gemm: m*k*n), Infinity never routes", () => {
    const calls: string[] = [];
    const mk = (tag: string) => new Proxy({} as Backend, {
      get: (_t, op) => (op === "name" ? tag : () => calls.push(`${tag}:${String(op)}`)),
      ownKeys: () => Object.keys(wasmBackend),
      getOwnPropertyDescriptor: () => ({ enumerable: true, configurable: true }),
    });
    const small = mk("small"), big = mk("big");
    const r = routedBackend({ ...wasmBackend, ...Object.fromEntries(Object.keys(wasmBackend).map((k) => [k, (small as never)[k]])) } as Backend,
      big, { gemm: 1000, softmax: 8 });
    const f = new Float32Array(4);
    r.softmax(f, f, 1, 4, 1, "threepass");
    r.softmax(new Float32Array(8), new Float32Array(8), 1, 8, 1, "threepass");
    r.gemm(f, f, f, 10, 10, 9, false, false, false);
    r.gemm(f, f, f, 10, 10, 10, false, false, false);
    r.relu(new Float32Array(1e6), new Float32Array(1e6));
    expect(calls).toEqual(["small:softmax", "big:softmax", "small:gemm", "big:gemm", "small:relu"]);
    expect(opSize("gemm", [f, f, f, 2, 3, 4])).toBe(24);
    expect(opSize("topk", [new Float32Array(10), new Float32Array(3), new Int32Array(3), 1, 10, 3, true])).toBe(10);
  });
});

describe("NUMEDGE_BACKEND at import", () => {
  const run = (env: string, code: string) => {
    const p = Bun.spawnSync([process.execPath, "-e", code], {
      cwd: import.meta.dir + "/..",
      env: { ...noGpu, NUMEDGE_BACKEND: env },
      stderr: "pipe",
      stdout: "pipe",
    });
    return { code: p.exitCode, out: p.stdout.toString(), err: p.stderr.toString() };
  };
  const show = `import { backendInfo } from "numedge"; console.log(JSON.stringify(backendInfo()));`;

  test("tfjs-gpu on a machine without a GPU: one line on stderr, exit 1, no stack trace", () => {
    const r = run("tfjs-gpu", show);
    expect(r.code).toBe(1);
    expect(r.out).toBe("");
    const lines = r.err.trim().split("\n").filter((l) => !/^npm warn/.test(l));
    expect(lines.length).toBe(1);
    expect(lines[0]).toMatch(/^numedge: NUMEDGE_BACKEND=tfjs-gpu: backend "tfjs-gpu" needs @tensorflow\/tfjs-node-gpu/);
    expect(r.err).not.toMatch(/\n\s+at /);
  }, 30000);

  test("auto: runs (on wasm here), at most one line on stderr, exit 0; tfjs-cpu selects that engine", () => {
    const a = run("auto", show);
    expect(a.code).toBe(0);
    expect(JSON.parse(a.out).reasons["tfjs-gpu"]).toBeString();
    expect(a.err.trim().split("\n").filter((l) => l.trim() && !/^npm warn/.test(l)).length).toBeLessThanOrEqual(1);
    expect(a.err).not.toMatch(/\n\s+at /);
    const c = run("tfjs-cpu", show);
    expect(c.code).toBe(0);
    expect(JSON.parse(c.out)).toMatchObject({ name: "tfjs", engine: "tfjs-cpu" });
  }, 30000);

  test("a bad value: one line naming the choices, exit 1", () => {
    const r = run("gpu", show);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/numedge: NUMEDGE_BACKEND=gpu: backend must be one of/);
    expect(r.err).not.toMatch(/\n\s+at /);
  }, 30000);
});

describe("scripts/gpu-check.ts without a GPU", () => {
  test("prints what was found and why tfjs-gpu is not usable, exits 0, no stack trace", () => {
    const env: Record<string, string | undefined> = { ...noGpu };
    delete env.NUMEDGE_BACKEND;
    const p = Bun.spawnSync([process.execPath, "scripts/gpu-check.ts"], { cwd: import.meta.dir + "/..", env, stdout: "pipe", stderr: "pipe" });
    const out = p.stdout.toString(), err = p.stderr.toString();
    expect(p.exitCode).toBe(0);
    expect(out).toMatch(/^tfjs: picks tfjs-(node|wasm|cpu)/m);
    expect(out).toMatch(/^tfjs-gpu: (not usable: backend "tfjs-gpu" needs|usable)/m);
    expect(out).toMatch(/^cuda: (not usable: backend "cuda" is not usable|usable)/m);
    expect(out + err).not.toMatch(/\n\s+at /);
  }, 60000);
});
