// The cuda backend's TypeScript where the parity suites do not look, on the CPU device as a GPU has it
// ("cuda-cpu-cublas": pooled buffers, matmul by cuBLAS, the fake one of test/gpu/cpu-cuda/libcublas.cpp): host-array
// calls leave no device allocation behind, kernels run on device buffers (no staging), a steady grok step only queues
// work, backendInfo describes it, auto's measured thresholds, the PTX fallback.
import { describe, expect, test } from "bun:test";
import {
  DeviceArray, GROK_ARMS, GrokRun, NumedgeError, empty, absmaxOf, crossEntropy, dequantizeBlockwise, matmul, quantize4bit, quantizeBlockwise, relu, setBackend, softmax, toDevice,
  combine, route, topk, updateBias,
} from "numedge";
import { expectClose, grokOn } from "./gpu/grok-compare.ts";
import { createCudaBackend, realDeps } from "../src/backends/cuda.ts";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { autoOn, useBackend, type BackendInfo } from "../src/backends/index.ts";
import { saveThresholds } from "../src/backends/thresholds.ts";
import type { Backend } from "../src/backends/types.ts";
import { wasmBackend } from "../src/backends/wasm.ts";
import { uniform } from "./helpers.ts";
import { cpuDriver, cpuImage, fakeLibcuda } from "./gpu/cpu-driver.ts";
import { cpuCudaCublas, cpuCudaUnavailable, underReference } from "./parity.ts";

const dev = cpuCudaUnavailable ? undefined : await cpuCudaCublas();
/** Another driver on the CPU device (same library, memory and launch count), for a backend of a test's own. */
const anotherDevice = async () => { const d = await cpuDriver(); if (typeof d === "string") throw new Error(d); return d; };

if (dev) {
  describe("cuda backend on the CPU device, as on a GPU", () => {
    test("info: gpu, staged ops listed; host-array calls reuse pooled temporaries", async () => {
      const i = await setBackend("cuda-cpu-cublas");
      expect(i).toMatchObject({ name: "cuda", id: "cuda-cpu-cublas", device: "gpu" });
      expect(i.stagedOps).toEqual([]); // every op has a CUDA kernel, for every argument
      for (const op of ["softmax", "crossEntropy", "topk", "routeTokens", "routeExpertChoice", "routeDispatch", "routeGrad", "combine", "updateBias", "gemm", "adamw", "embeddingSum", "embeddingSumBackward", "orthogonalize", "maxInto", "quantizeAffine", "quantizeQ8_0", "quantizeQ4_0", "quantizeBlockwise", "uniforms",
        "absmaxCenter", "absmaxUncenter", "toF32", "adam8bitStep", "adam32Step"]) expect(i.stagedOps).not.toContain(op);
      const x = Float32Array.from({ length: 12 * 33 }, (_, k) => Math.sin(k));
      const calls = () => {
        softmax(x, { cols: 33 });
        softmax(x, { cols: 33, out: x }); // in place on a host array: one temporary, input and output
        relu(x);
        crossEntropy(x, new Int32Array(12), { cols: 33 });
      };
      const before = dev.liveBytes();
      calls(); // temporaries go back to a pool (freeing would synchronize the device) ...
      const pooled = dev.liveBytes() - before;
      expect(pooled).toBeLessThanOrEqual(4 * 2048);
      calls(); // ... and the same calls again reuse them: no new device memory
      calls();
      expect(dev.liveBytes() - before).toBe(pooled);
      await setBackend("wasm");
    });

    test("DeviceArray calls launch cuda kernels: dense, softmax, cross-entropy, topk (k <= 32 and larger), the whole router, combine, updateBias", async () => {
      await setBackend("cuda-cpu-cublas");
      const x = toDevice(Float32Array.from({ length: 8 * 16 }, (_, k) => Math.cos(k)));
      dev.launches.length = 0;
      softmax(x, { cols: 16 });
      relu(x);
      matmul(x, x, { m: 8, k: 16, n: 8, transB: true });
      crossEntropy(x, toDevice(new Int32Array(8)), { cols: 16 });
      topk(x, { cols: 16, k: 2 });
      topk(x, { cols: 16, k: 16 });
      topk(x, { cols: 128, k: 3 }); // a long row: a warp per row
      updateBias(toDevice(new Float32Array(4)), toDevice(new Int32Array(4)), 0.1);
      expect(dev.launches).toEqual(["softmax_f32", "relu_f32", "cublasSgemm_v2", "ce_softmax_f32_warp", "ce_finish", "topk_f32_k4", "topk_f32_k16", "topk_warp_f32_k4", "update_bias"]);
      dev.launches.length = 0;
      const r = route(x, { experts: 16, k: 2, capacityFactor: 1, grad: true });
      const kept = (r.offsets.readSync() as Int32Array)[16]!;
      const y = combine(toDevice(new Float32Array(kept * 4).fill(1)), r, { hidden: 4 }).readSync() as Float32Array;
      const w = r.weights.readSync() as Float32Array; // each token's row is the sum of its kept weights
      for (let t = 0; t < 8; t++) expect(y[t * 4 + 3]).toBeCloseTo(w[2 * t]! + w[2 * t + 1]!, 6);
      route(x, { experts: 16, k: 2, expertChoice: true });
      expect(new Set(dev.launches)).toEqual(new Set(["route_score_f32", "route_psum", "route_select_f32_k4", "dispatch_count", "dispatch_scan", "dispatch_drops", "dispatch_offsets",
        "dispatch_place", "route_losses", "route_grad_f32", "combine_count", "scan_part", "scan_top", "scan_apply", "combine_place", "combine_sort", "combine_gather_f32",
        "route_ec_threshold_f32", "route_ec_select_f32", "route_ec_finish", "route_ec_stats"]));
      x.dispose();
      await setBackend("wasm");
    });

  });

  test("matmul through cuBLAS (row-major onto column-major) and through the NVRTC kernel: every transpose, accumulate, f32 and f64, within the GEMM bound", async () => {
    const noBlas = await createCudaBackend(wasmBackend, { open: anotherDevice, image: cpuImage, blas: () => "no cuBLAS here" }, "cuda-noblas");
    if (typeof noBlas === "string") throw new Error(noBlas);
    expect(noBlas.info.engine).toContain("matmul: NVRTC GEMM kernel (no cuBLAS here)");
    expect((await setBackend("cuda-cpu-cublas")).engine).toMatch(/matmul: cuBLAS \(kernels-\w+\.so, FP32\)/);
    const r = uniform(4);
    let n64 = 0;
    for (const [m, k, n] of [[1, 1, 1], [3, 5, 7], [17, 33, 9], [64, 1, 31], [2, 40, 1]] as const)
      for (const f64 of [false, true]) for (const transA of [false, true]) for (const transB of [false, true]) for (const accumulate of [false, true]) {
        const fill = (len: number) => { const v = Array.from({ length: len }, () => r() - 0.5); return f64 ? Float64Array.from(v) : Float32Array.from(v); };
        const a = fill(m * k), b = fill(k * n), c0 = fill(m * n), o = { m, k, n, transA, transB, accumulate };
        const want = underReference(() => matmul(a, b, { ...o, out: c0.slice() }));
        const bound = (k + 2) * (f64 ? 2 ** -52 : 2 ** -23) * (k + 1);
        for (const use of [() => setBackend("cuda-cpu-cublas"), () => useBackend(noBlas.backend, noBlas.info)]) {
          await use();
          dev.launches.length = 0;
          const got = matmul(a, b, { ...o, out: c0.slice() });
          for (let i = 0; i < m * n; i++) expect(Math.abs(got[i]! - want[i]!)).toBeLessThanOrEqual(bound);
          n64 += f64 ? 1 : 0;
        }
        await setBackend("cuda-cpu-cublas");
        dev.launches.length = 0;
        matmul(a, b, { ...o, out: c0.slice() });
        expect(dev.launches).toEqual([f64 ? "cublasDgemm_v2" : "cublasSgemm_v2"]);
      }
    expect(n64).toBe(80);
    await setBackend("wasm");
  });

  test("cuBLAS in TF32 when asked (NUMEDGE_CUDA_TF32=1): the engine says so, and f32 products lose what a 10-bit mantissa loses, no more", async () => {
    const own = await anotherDevice(), old = [process.env.NUMEDGE_CUDA_TF32, process.env.NUMEDGE_CUBLAS] as const;
    process.env.NUMEDGE_CUDA_TF32 = "1";
    process.env.NUMEDGE_CUBLAS = own.library;
    let tf: Awaited<ReturnType<typeof createCudaBackend>>;
    try { // the backend's own choice of cuBLAS and math mode from the environment
      tf = await createCudaBackend(wasmBackend, { open: async () => own, image: cpuImage, blas: realDeps.blas }, "cuda-tf32");
    } finally {
      for (const [k, v] of [["NUMEDGE_CUDA_TF32", old[0]], ["NUMEDGE_CUBLAS", old[1]]] as const) if (v === undefined) delete process.env[k]; else process.env[k] = v;
    }
    if (typeof tf === "string") throw new Error(tf);
    expect(tf.info.engine).toMatch(/matmul: cuBLAS \(kernels-\w+\.so, TF32\)/);
    const r = uniform(5), [m, k, n] = [32, 96, 24];
    const a = Float32Array.from({ length: m * k }, () => r() * 2 - 1), b = Float32Array.from({ length: k * n }, () => r() * 2 - 1);
    const want = underReference(() => matmul(a, b, { m, k, n }));
    useBackend(tf.backend, tf.info);
    const got = matmul(a, b, { m, k, n });
    await setBackend("wasm");
    let worst = 0; // the error, against the sum of |products| of each output
    for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
      let s = 0;
      for (let q = 0; q < k; q++) s += Math.abs(a[i * k + q]! * b[q * n + j]!);
      worst = Math.max(worst, Math.abs(got[i * n + j]! - want[i * n + j]!) / s);
    }
    expect(worst).toBeGreaterThan((k + 2) * 2 ** -24); // past what FP32 would give
    expect(worst).toBeLessThanOrEqual(2 * 2 ** -11 + (k + 2) * 2 ** -24); // each input within 2^-11, then an FP32 sum
  });

  test("auto on a cuda device: every op on wasm until gpu-check saved thresholds for it, then ops at or above them on the GPU", async () => {
    const own = await anotherDevice(), old = process.env.XDG_CACHE_HOME;
    const c = await createCudaBackend(wasmBackend, { open: async () => own, image: cpuImage, blas: () => own.blas() }, "cuda-auto");
    if (typeof c === "string") throw new Error(c);
    process.env.XDG_CACHE_HOME = mkdtempSync(`${tmpdir()}/numedge-auto-`);
    try {
      const gpu = { backend: c.backend, info: { device: "gpu" as const, ...c.info } };
      expect(gpu.info.thresholdKey).toBe("cuda:fake libcuda over the CPU device sm_90");
      const none = autoOn(gpu, { warn: false });
      expect((none as { backend: Backend }).backend).toBe(wasmBackend);
      expect((none as { info: { reasons: Record<string, string> } }).info.reasons.cuda).toMatch(/no thresholds were measured for it/);
      saveThresholds(gpu.info.thresholdKey, { thresholds: { softmax: 64, gemm: 1000 }, measured: "by this test" });
      const l = autoOn(gpu, {}) as { backend: Backend; info: Partial<BackendInfo> };
      expect(l.info).toMatchObject({ device: "gpu", engine: "auto(wasm-simd + cuda)", gpuThresholds: { softmax: 64, gemm: 1000 } });
      useBackend(l.backend, l.info);
      own.launches.length = 0;
      softmax(new Float32Array(32), { cols: 32 }); // 32 < 64: wasm
      softmax(new Float32Array(64), { cols: 32 });
      matmul(new Float32Array(81), new Float32Array(81), { m: 9, k: 9, n: 9 }); // 729 < 1000: wasm
      matmul(new Float32Array(100), new Float32Array(100), { m: 10, k: 10, n: 10 });
      relu(new Float32Array(1 << 16)); // no threshold: wasm at any size
      expect(own.launches).toEqual(["softmax_f32", "cublasSgemm_v2"]);
    } finally {
      if (old === undefined) delete process.env.XDG_CACHE_HOME; // assigning undefined would set the string "undefined"
      else process.env.XDG_CACHE_HOME = old;
      await setBackend("wasm");
    }
  });

  test("a cubin the driver refuses (NVRTC newer than the driver) falls back to the shipped PTX; a PTX it refuses says which driver it needs", async () => {
    const own = await anotherDevice(), refuse = (img: Uint8Array) => img[0] === 1;
    const picky = { ...own, module: (img: Uint8Array) => { if (refuse(img)) throw new NumedgeError("backend", "cuda: cuModuleLoadData failed (CUDA_ERROR_UNSUPPORTED_PTX_VERSION)"); return own.module(img); } };
    const ptx = () => ({ image: new Uint8Array([2]), how: "shipped PTX (the driver refused the cubin)" });
    const ok = await createCudaBackend(wasmBackend, { open: async () => picky, image: () => ({ image: new Uint8Array([1]), how: "NVRTC cubin", ptx }), blas: () => "none" }, "cuda-picky");
    if (typeof ok === "string") throw new Error(ok);
    expect(ok.info.engine).toContain("shipped PTX (the driver refused the cubin)");
    const bad = await createCudaBackend(wasmBackend, { open: async () => picky, image: () => ({ image: new Uint8Array([1]), how: "shipped PTX" }), blas: () => "none" }, "cuda-old").catch((e) => e);
    expect(bad).toBeInstanceOf(NumedgeError);
    expect((bad as Error).message).toMatch(/UNSUPPORTED_PTX_VERSION.*compute capability 7\.5 or newer and a driver for CUDA 10\.0 or newer.*libnvrtc/);
  });

  describe("a device-resident grok run", () => {
    test("tracks wasm's within 1e-3 (GEMM sums in another order), every kernel of the step on the device", async () => {
      dev.launches.length = 0;
      const [a, b] = await grokOn(["cuda-cpu-cublas", "wasm"]);
      expectClose(a!, b!);
      for (const k of ["cublasSgemm_v2", "embsum_f32", "embsum_backward_f32", "adamw_f32", "orthogonalize_f32", "max_into_f32", "relu_f32", "ce_softmax_f32_warp", "ce_finish"])
        expect(dev.launches).toContain(k);
    });

    test("a step after the first ones only queues work: no cuMemAlloc, no cuMemFree (it waits for the device), no copy, no synchronize", async () => {
      await setBackend("cuda-cpu-cublas");
      for (const arm of ["baseline", "perp", "stablemax"] as const) {
        const run = new GrokRun({ ...GROK_ARMS[arm], p: 13, op: "add", frac: 0.6, hidden: [32, 32], seed: 0, lr: 0.01 });
        for (let t = 0; t < 3; t++) run.train(true, false);
        for (const c of Object.keys(dev.calls)) delete dev.calls[c];
        dev.launches.length = 0;
        for (let t = 0; t < 5; t++) run.train(true, false);
        expect(Object.keys(dev.calls).filter((c) => c !== "zero")).toEqual([]); // zero: cuMemsetD8, queued like a kernel
        expect(dev.launches.length).toBeGreaterThanOrEqual(5 * 19);
        run.train(true, true); // a logged step reads back, and so waits
        expect(dev.calls.dtoh).toBeGreaterThan(0);
      }
      await setBackend("wasm");
    });
  });

  describe("cuda device memory and state records", () => {
    test("a disposed DeviceArray's memory is reused by the next one of its size class: no cuMemFree, no cuMemAlloc", async () => {
      await setBackend("cuda-cpu-cublas");
      toDevice(new Float32Array(1000)).dispose(); // the size class exists in the pool
      for (const c of Object.keys(dev.calls)) delete dev.calls[c];
      const before = dev.liveBytes();
      for (let i = 0; i < 10; i++) {
        const a = toDevice(Float32Array.from({ length: 1000 }, (_, k) => k + i));
        expect(a.readSync()[999]).toBe(999 + i);
        a.dispose();
      }
      const b = empty(900, "f32"); // the same class (4 KiB): handed back zeroed
      expect(b.readSync().every((v) => v === 0)).toBe(true);
      b.dispose();
      expect(dev.calls.alloc ?? 0).toBe(0);
      expect(dev.calls.free ?? 0).toBe(0);
      expect(dev.liveBytes()).toBe(before);
      await setBackend("wasm");
    });

    test("quantize/dequantize pairs do not pile up code tables on the device (one upload per table contents)", async () => {
      await setBackend("cuda-cpu-cublas");
      const x = toDevice(Float32Array.from({ length: 4096 }, (_, k) => Math.sin(k)));
      const round = () => { const q = quantizeBlockwise(x, { blockSize: 64 }); const y = dequantizeBlockwise(q); for (const d of [q.codes, q.absmax, q.bad, y]) d.dispose(); };
      round();
      const base = dev.liveBytes();
      for (let i = 0; i < 50; i++) round();
      expect(dev.liveBytes()).toBe(base);
      x.dispose();
      await setBackend("wasm");
    });

    test("a double-quantized absmax with a numeric offset and DeviceArray codes decodes like the host one", async () => {
      const w = Float32Array.from({ length: 1024 }, (_, k) => Math.cos(k * 0.3) * 3);
      const qh = quantize4bit(w, { blockSize: 64, doubleQuant: true });
      const want = absmaxOf(qh);
      for (const be of ["cuda-cpu-cublas", "wasm"]) {
        await setBackend(be);
        const n = qh.absmax as Exclude<typeof qh.absmax, Float32Array>;
        const nested = { ...n, codes: toDevice(n.codes), absmax: toDevice(n.absmax) }; // offset stays a number
        const got = absmaxOf({ ...qh, packed: toDevice(qh.packed), absmax: nested } as never) as unknown as DeviceArray;
        expect(Array.from(got.readSync())).toEqual(Array.from(want));
      }
      await setBackend("wasm");
    });
  });

  describe("maxInto (one block up to 64K elements, per-block maxima above)", () => {
    test("equals wasm's for lengths across the split, both dtypes, abs, NaN anywhere, -Infinity only", async () => {
      const { maxInto } = await import("../src/ops/track.ts");
      const r = uniform(11);
      dev.launches.length = 0;
      for (const n of [1, 7, 65536, 65537, 300_001]) for (const f64 of [false, true]) for (const abs of [false, true]) for (const fill of ["random", "nan-last", "nan-mid", "-inf"]) {
        const src = f64 ? new Float64Array(n + 3) : new Float32Array(n + 3);
        for (let i = 0; i < src.length; i++) src[i] = fill === "-inf" ? -Infinity : (r() * 2 - 1) * 1e3;
        if (fill === "nan-last") src[n] = NaN; // the last element read (from 1, n of them)
        if (fill === "nan-mid") src[1 + (n >> 1)] = NaN;
        src[0] = 5e3; // outside [from, from + n): must not count
        const got: number[] = [];
        for (const be of ["cuda-cpu-cublas", "wasm"]) {
          await setBackend(be);
          const dst = Float64Array.of(7, -Infinity, 3);
          maxInto(dst, 1, src, 1, n, abs);
          expect([dst[0], dst[2]]).toEqual([7, 3]);
          got.push(dst[1]!);
        }
        expect(Object.is(got[0], got[1]), `n=${n} f64=${f64} abs=${abs} ${fill}: ${got}`).toBe(true);
        if (fill !== "random") expect(got[1], fill).toBe(fill === "-inf" ? (abs ? Infinity : -Infinity) : NaN);
      }
      expect(dev.launches).toContain("max_part_f32");
      expect(dev.launches).toContain("max_into_finish");
      await setBackend("wasm");
    });
  });

  describe("bench/gpu-profile.ts on the fake libcuda (the dry run of what the GPU machine runs)", () => {
    test("profiles a grok step of each arm: every launch passes through its timer, with its arguments and shared memory", () => {
      const fake = fakeLibcuda();
      if (typeof fake === "string") throw new Error(fake);
      const r = Bun.spawnSync([process.execPath, "bench/gpu-profile.ts", "--steps", "1"], {
        cwd: import.meta.dir + "/..", env: { ...process.env, NUMEDGE_LIBCUDA: fake.lib, NUMEDGE_CUBLAS: fake.blas, NUMEDGE_NVRTC: "none" }, stdout: "pipe", stderr: "pipe",
      });
      const out = r.stdout.toString();
      expect(r.exitCode, r.stderr.toString().slice(-2000)).toBe(0);
      for (const k of ["ce_softmax_f32_warp", "ce_stablemax_f32in_f64_warp", "sgemm NN", "adamw_f32", "all timed calls"]) expect(out).toContain(k);
    }, 120_000);
  });
}
