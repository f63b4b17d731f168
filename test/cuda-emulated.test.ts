// The cuda backend's TypeScript over an emulated GPU (test/gpu/emulated-driver.ts), where the parity suites do not
// look: host-array calls leave no device allocation behind, kernels run on device buffers (no staging), nothing is
// staged through wasm, and backendInfo describes it.
import { describe, expect, test } from "bun:test";
import {
  DeviceArray, GROK_ARMS, GrokRun, NumedgeError, empty, absmaxOf, backendInfo, crossEntropy, dequantizeBlockwise, matmul, quantize4bit, quantizeBlockwise, relu, setBackend, softmax, toDevice,
  logSoftmax, stablemax, logStablemax, adamwStep, combine, embeddingSum, embeddingSumBackward, route, topk, updateBias,
} from "numedge";
import { expectClose, grokOn } from "./gpu/grok-compare.ts";
import { quantOn } from "./gpu/quant-compare.ts";
import { createCudaBackend } from "../src/backends/cuda.ts";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { autoOn, useBackend, type BackendInfo } from "../src/backends/index.ts";
import { saveThresholds } from "../src/backends/thresholds.ts";
import type { Backend } from "../src/backends/types.ts";
import { wasmBackend } from "../src/backends/wasm.ts";
import { emulatedDriver } from "./gpu/emulated-driver.ts";
import { uniform } from "./helpers.ts";
import { emulated, underReference } from "./parity.ts";

describe("cuda backend over an emulated GPU", () => {
  test("info: gpu, staged ops listed; host-array calls reuse pooled temporaries", async () => {
    const i = await setBackend("cuda-emulated");
    expect(i).toMatchObject({ name: "cuda", id: "cuda-emulated", device: "gpu" });
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
    const before = emulated.liveBytes();
    calls(); // temporaries go back to a pool (freeing would synchronize the device) ...
    const pooled = emulated.liveBytes() - before;
    expect(pooled).toBeLessThanOrEqual(4 * 2048);
    calls(); // ... and the same calls again reuse them: no new device memory
    calls();
    expect(emulated.liveBytes() - before).toBe(pooled);
    await setBackend("wasm");
  });

  test("DeviceArray calls launch cuda kernels: dense, softmax, cross-entropy, topk (k <= 32 and larger), the whole router, combine, updateBias", async () => {
    await setBackend("cuda-emulated");
    const x = toDevice(Float32Array.from({ length: 8 * 16 }, (_, k) => Math.cos(k)));
    emulated.launches.length = 0;
    softmax(x, { cols: 16 });
    relu(x);
    matmul(x, x, { m: 8, k: 16, n: 8, transB: true });
    crossEntropy(x, toDevice(new Int32Array(8)), { cols: 16 });
    topk(x, { cols: 16, k: 2 });
    topk(x, { cols: 16, k: 16 });
    topk(x, { cols: 128, k: 3 }); // a long row: a warp per row
    updateBias(toDevice(new Float32Array(4)), toDevice(new Int32Array(4)), 0.1);
    expect(emulated.launches).toEqual(["softmax_f32", "relu_f32", "cublasSgemm_v2", "ce_softmax_f32_warp", "ce_finish", "topk_f32_k4", "topk_f32_k16", "topk_warp_f32_k4", "update_bias"]);
    emulated.launches.length = 0;
    const r = route(x, { experts: 16, k: 2, capacityFactor: 1, grad: true });
    const kept = (r.offsets.readSync() as Int32Array)[16]!;
    const y = combine(toDevice(new Float32Array(kept * 4).fill(1)), r, { hidden: 4 }).readSync() as Float32Array;
    const w = r.weights.readSync() as Float32Array; // each token's row is the sum of its kept weights
    for (let t = 0; t < 8; t++) expect(y[t * 4 + 3]).toBeCloseTo(w[2 * t]! + w[2 * t + 1]!, 6);
    route(x, { experts: 16, k: 2, expertChoice: true });
    expect(new Set(emulated.launches)).toEqual(new Set(["route_score_f32", "route_psum", "route_select_f32_k4", "dispatch_count", "dispatch_scan", "dispatch_drops", "dispatch_offsets",
      "dispatch_place", "route_losses", "route_grad_f32", "combine_count", "scan_part", "scan_top", "scan_apply", "combine_place", "combine_sort", "combine_gather_f32",
      "route_ec_threshold_f32", "route_ec_select_f32", "route_ec_finish", "route_ec_stats"]));
    x.dispose();
    await setBackend("wasm");
  });

  test("a few rows past a block's registers run over several blocks a row (a part kernel, then a finish kernel): the softmax family within the bounds of wasm's", async () => {
    const r = uniform(37), cols = 20001, x = Float32Array.from({ length: 3 * cols }, () => (r() * 2 - 1) * 20), x64 = Float64Array.from(x);
    x.fill(-Infinity, cols, cols + 4096); // row 1's first part holds only -Infinity
    x64[2 * cols + 5] = NaN;
    const run = () => [logSoftmax, softmax, stablemax, logStablemax].flatMap((f) => [f(x, { cols }), f(x64, { cols })]);
    await setBackend("cuda-emulated");
    emulated.launches.length = 0;
    const got = run();
    expect(new Set(emulated.launches)).toEqual(new Set(["softmax_part_f32", "softmax_finish_f32", "softmax_part_f64", "softmax_finish_f64", "stablemax_part_f32", "stablemax_finish_f32", "stablemax_part_f64", "stablemax_finish_f64"]));
    await setBackend("wasm");
    const want = run();
    got.forEach((g, j) => g.forEach((v, i) => {
      const w = want[j]![i]!;
      if (!(Object.is(v, w) || Math.abs(v - w) <= 2.5e-6 * Math.abs(w) + 1e-30)) throw new Error(`output ${j} [${i}]: ${v} vs ${w}`);
    }));
  });
});

test("f64 AdamW and embeddings run their f64 kernels and equal wasm's bit for bit", async () => {
  const run = async (be: string) => {
    await setBackend(be);
    const w = Float64Array.from({ length: 37 }, (_, i) => Math.sin(i)), g = Float64Array.from({ length: 37 }, (_, i) => Math.cos(3 * i) / 7);
    const m = new Float64Array(37), v = new Float64Array(37);
    for (let step = 1; step <= 3; step++) adamwStep(w, g, m, v, { lr: 0.01, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1, step });
    const idx = new Int32Array([0, 3, 2, 2, 4, 1]), table = Float64Array.from({ length: 5 * 7 }, (_, i) => Math.tan(i) / 3);
    const e = embeddingSum(table, idx, { cols: 7, per: 2 }), dw = new Float64Array(35).fill(-0.5);
    embeddingSumBackward(e, idx, dw, { cols: 7, per: 2 });
    await setBackend("wasm");
    return [w, m, v, e, dw].map((a) => Array.from(a));
  };
  emulated.launches.length = 0;
  const got = await run("cuda-emulated");
  expect(emulated.launches).toEqual(["adamw_f64", "adamw_f64", "adamw_f64", "embsum_f64", "embsum_backward_f64"]);
  expect(got).toEqual(await run("wasm"));
});

test("matmul through cuBLAS (row-major onto column-major) and through the NVRTC kernel: every transpose, accumulate, f32 and f64, within the GEMM bound", async () => {
  const noBlas = await createCudaBackend(wasmBackend, { open: async () => emulatedDriver(), image: () => ({ image: new Uint8Array(0), how: "emulated" }), blas: () => "no cuBLAS here" }, "cuda-noblas");
  if (typeof noBlas === "string") throw new Error(noBlas);
  expect(noBlas.info.engine).toContain("matmul: NVRTC GEMM kernel (no cuBLAS here)");
  expect((await setBackend("cuda-emulated")).engine).toContain("matmul: emulated cuBLAS (FP32)");
  const r = uniform(4);
  let n64 = 0;
  for (const [m, k, n] of [[1, 1, 1], [3, 5, 7], [17, 33, 9], [64, 1, 31], [2, 40, 1]] as const)
    for (const f64 of [false, true]) for (const transA of [false, true]) for (const transB of [false, true]) for (const accumulate of [false, true]) {
      const fill = (len: number) => { const v = Array.from({ length: len }, () => r() - 0.5); return f64 ? Float64Array.from(v) : Float32Array.from(v); };
      const a = fill(m * k), b = fill(k * n), c0 = fill(m * n), o = { m, k, n, transA, transB, accumulate };
      const want = underReference(() => matmul(a, b, { ...o, out: c0.slice() }));
      const bound = (k + 2) * (f64 ? 2 ** -52 : 2 ** -23) * (k + 1);
      for (const use of [() => setBackend("cuda-emulated"), () => useBackend(noBlas.backend, noBlas.info)]) {
        await use();
        emulated.launches.length = 0;
        const got = matmul(a, b, { ...o, out: c0.slice() });
        for (let i = 0; i < m * n; i++) expect(Math.abs(got[i]! - want[i]!)).toBeLessThanOrEqual(bound);
        n64 += f64 ? 1 : 0;
      }
      await setBackend("cuda-emulated");
      emulated.launches.length = 0;
      matmul(a, b, { ...o, out: c0.slice() });
      expect(emulated.launches).toEqual([f64 ? "cublasDgemm_v2" : "cublasSgemm_v2"]);
    }
  expect(n64).toBe(80);
  await setBackend("wasm");
});

test("auto on a cuda device: every op on wasm until gpu-check saved thresholds for it, then ops at or above them on the GPU", async () => {
  const dev = emulatedDriver(), old = process.env.XDG_CACHE_HOME;
  const c = await createCudaBackend(wasmBackend, { open: async () => dev, image: () => ({ image: new Uint8Array(0), how: "emulated" }), blas: () => dev.blas() }, "cuda-auto");
  if (typeof c === "string") throw new Error(c);
  process.env.XDG_CACHE_HOME = mkdtempSync(`${tmpdir()}/numedge-auto-`);
  try {
    const gpu = { backend: c.backend, info: { device: "gpu" as const, ...c.info } };
    expect(gpu.info.thresholdKey).toBe("cuda:emulated GPU sm_90");
    const none = autoOn(gpu, { warn: false });
    expect((none as { backend: Backend }).backend).toBe(wasmBackend);
    expect((none as { info: { reasons: Record<string, string> } }).info.reasons.cuda).toMatch(/no thresholds were measured for it/);
    saveThresholds(gpu.info.thresholdKey, { thresholds: { softmax: 64, gemm: 1000 }, measured: "by this test" });
    const l = autoOn(gpu, {}) as { backend: Backend; info: Partial<BackendInfo> };
    expect(l.info).toMatchObject({ device: "gpu", engine: "auto(wasm-simd + cuda)", gpuThresholds: { softmax: 64, gemm: 1000 } });
    useBackend(l.backend, l.info);
    dev.launches.length = 0;
    softmax(new Float32Array(32), { cols: 32 }); // 32 < 64: wasm
    softmax(new Float32Array(64), { cols: 32 });
    matmul(new Float32Array(81), new Float32Array(81), { m: 9, k: 9, n: 9 }); // 729 < 1000: wasm
    matmul(new Float32Array(100), new Float32Array(100), { m: 10, k: 10, n: 10 });
    relu(new Float32Array(1 << 16)); // no threshold: wasm at any size
    expect(dev.launches).toEqual(["softmax_f32", "cublasSgemm_v2"]);
  } finally {
    if (old === undefined) delete process.env.XDG_CACHE_HOME; // assigning undefined would set the string "undefined"
    else process.env.XDG_CACHE_HOME = old;
    await setBackend("wasm");
  }
});

test("a cubin the driver refuses (NVRTC newer than the driver) falls back to the shipped PTX; a PTX it refuses says which driver it needs", async () => {
  const dev = emulatedDriver(), refuse = (img: Uint8Array) => img[0] === 1;
  const picky = { ...dev, module: (img: Uint8Array) => { if (refuse(img)) throw new NumedgeError("backend", "cuda: cuModuleLoadData failed (CUDA_ERROR_UNSUPPORTED_PTX_VERSION)"); return dev.module(img); } };
  const ptx = () => ({ image: new Uint8Array([2]), how: "shipped PTX (the driver refused the cubin)" });
  const ok = await createCudaBackend(wasmBackend, { open: async () => picky, image: () => ({ image: new Uint8Array([1]), how: "NVRTC cubin", ptx }), blas: () => "none" }, "cuda-picky");
  if (typeof ok === "string") throw new Error(ok);
  expect(ok.info.engine).toContain("shipped PTX (the driver refused the cubin)");
  const bad = await createCudaBackend(wasmBackend, { open: async () => picky, image: () => ({ image: new Uint8Array([1]), how: "shipped PTX" }), blas: () => "none" }, "cuda-old").catch((e) => e);
  expect(bad).toBeInstanceOf(NumedgeError);
  expect((bad as Error).message).toMatch(/UNSUPPORTED_PTX_VERSION.*compute capability 7\.5 or newer and a driver for CUDA 10\.0 or newer.*libnvrtc/);
});

describe("quantizers on the emulated GPU", () => {
  test("affine, ggml, block-wise (nearest, stochastic), 4-bit (double-quantized) outputs and 8-bit Adam steps equal wasm's bit for bit (host arrays and DeviceArrays, tails, halves, bad groups)", async () => {
    emulated.launches.length = 0;
    const [a, b] = await quantOn(["cuda-emulated", "wasm"]);
    for (const kn of ["quant_affine_params_f32", "quant_affine_f32", "quant_q8_0_f32", "quant_q4_0_f32", "dequant_q8_0", "dequant_q4_0", "quant_stochastic_f32", "uniforms_f32",
      "absmax_center_f32", "absmax_uncenter_f32", "to_f32", "adam8bit_f32", "adam32_f32"]) expect(emulated.launches).toContain(kn);
    expect(Object.keys(a!).length).toBeGreaterThan(1000);
    for (const key of Object.keys(b!)) expect(a![key], key).toEqual(b![key]!);
  }, 60_000);
});

describe("a device-resident grok run on the emulated GPU", () => {
  test("tracks wasm's within 1e-3 (GEMM sums in another order), every kernel of the step on the device", async () => {
    emulated.launches.length = 0;
    const [a, b] = await grokOn(["cuda-emulated", "wasm"]);
    expectClose(a!, b!);
    for (const k of ["cublasSgemm_v2", "embsum_f32", "embsum_backward_f32", "adamw_f32", "orthogonalize_f32", "max_into_f32", "relu_f32", "ce_softmax_f32_warp", "ce_finish"])
      expect(emulated.launches).toContain(k);
  });

  test("a step after the first ones only queues work: no cuMemAlloc, no cuMemFree (it waits for the device), no copy, no synchronize", async () => {
    await setBackend("cuda-emulated");
    for (const arm of ["baseline", "perp", "stablemax"] as const) {
      const run = new GrokRun({ ...GROK_ARMS[arm], p: 13, op: "add", frac: 0.6, hidden: [32, 32], seed: 0, lr: 0.01 });
      for (let t = 0; t < 3; t++) run.train(true, false);
      for (const c of Object.keys(emulated.calls)) delete emulated.calls[c];
      emulated.launches.length = 0;
      for (let t = 0; t < 5; t++) run.train(true, false);
      expect(Object.keys(emulated.calls).filter((c) => c !== "zero")).toEqual([]); // zero: cuMemsetD8, queued like a kernel
      expect(emulated.launches.length).toBeGreaterThanOrEqual(5 * 19);
      run.train(true, true); // a logged step reads back, and so waits
      expect(emulated.calls.dtoh).toBeGreaterThan(0);
    }
    await setBackend("wasm");
  });
});

describe("cuda device memory and state records", () => {
  test("a disposed DeviceArray's memory is reused by the next one of its size class: no cuMemFree, no cuMemAlloc", async () => {
    await setBackend("cuda-emulated");
    toDevice(new Float32Array(1000)).dispose(); // the size class exists in the pool
    for (const c of Object.keys(emulated.calls)) delete emulated.calls[c];
    const before = emulated.liveBytes();
    for (let i = 0; i < 10; i++) {
      const a = toDevice(Float32Array.from({ length: 1000 }, (_, k) => k + i));
      expect(a.readSync()[999]).toBe(999 + i);
      a.dispose();
    }
    const b = empty(900, "f32"); // the same class (4 KiB): handed back zeroed
    expect(b.readSync().every((v) => v === 0)).toBe(true);
    b.dispose();
    expect(emulated.calls.alloc ?? 0).toBe(0);
    expect(emulated.calls.free ?? 0).toBe(0);
    expect(emulated.liveBytes()).toBe(before);
    await setBackend("wasm");
  });

  test("quantize/dequantize pairs do not pile up code tables on the device (one upload per table contents)", async () => {
    await setBackend("cuda-emulated");
    const x = toDevice(Float32Array.from({ length: 4096 }, (_, k) => Math.sin(k)));
    const round = () => { const q = quantizeBlockwise(x, { blockSize: 64 }); const y = dequantizeBlockwise(q); for (const d of [q.codes, q.absmax, q.bad, y]) d.dispose(); };
    round();
    const base = emulated.liveBytes();
    for (let i = 0; i < 50; i++) round();
    expect(emulated.liveBytes()).toBe(base);
    x.dispose();
    await setBackend("wasm");
  });

  test("a double-quantized absmax with a numeric offset and DeviceArray codes decodes like the host one", async () => {
    const w = Float32Array.from({ length: 1024 }, (_, k) => Math.cos(k * 0.3) * 3);
    const qh = quantize4bit(w, { blockSize: 64, doubleQuant: true });
    const want = absmaxOf(qh);
    for (const be of ["cuda-emulated", "wasm"]) {
      await setBackend(be);
      const n = qh.absmax as Exclude<typeof qh.absmax, Float32Array>;
      const nested = { ...n, codes: toDevice(n.codes), absmax: toDevice(n.absmax) }; // offset stays a number
      const got = absmaxOf({ ...qh, packed: toDevice(qh.packed), absmax: nested } as never) as unknown as DeviceArray;
      expect(Array.from(got.readSync())).toEqual(Array.from(want));
    }
    await setBackend("wasm");
  });
});

describe("maxInto on the emulated GPU (one block up to 64K elements, per-block maxima above)", () => {
  test("equals wasm's for lengths across the split, both dtypes, abs, NaN anywhere, -Infinity only", async () => {
    const { maxInto } = await import("../src/ops/track.ts");
    const r = uniform(11);
    for (const n of [1, 7, 65536, 65537, 300_001]) for (const f64 of [false, true]) for (const abs of [false, true]) for (const fill of ["random", "nan-last", "nan-mid", "-inf"]) {
      const src = f64 ? new Float64Array(n + 3) : new Float32Array(n + 3);
      for (let i = 0; i < src.length; i++) src[i] = fill === "-inf" ? -Infinity : (r() * 2 - 1) * 1e3;
      if (fill === "nan-last") src[n + 2] = NaN;
      if (fill === "nan-mid") src[1 + (n >> 1)] = NaN;
      src[0] = 5e3; // outside [from, from + n): must not count
      const got: number[] = [];
      for (const be of ["cuda-emulated", "wasm"]) {
        await setBackend(be);
        const dst = Float64Array.of(7, -Infinity, 3);
        maxInto(dst, 1, src, 1, n, abs);
        expect([dst[0], dst[2]]).toEqual([7, 3]);
        got.push(dst[1]!);
      }
      expect(Object.is(got[0], got[1]), `n=${n} f64=${f64} abs=${abs} ${fill}: ${got}`).toBe(true);
    }
    expect(emulated.launches).toContain("max_part_f32");
    expect(emulated.launches).toContain("max_into_finish");
    await setBackend("wasm");
  });
});

describe("orthogonalize on the emulated GPU (one block up to 256K elements, three passes over many blocks above)", () => {
  test("matches wasm's within 1e-6 relative on both sides of the split, f32 and f64; the result is orthogonal to w", async () => {
    const { orthogonalize } = await import("numedge");
    const r = uniform(12);
    for (const n of [5, 262_144, 262_145, 400_003]) for (const f64 of [false, true]) {
      const make = (f: (i: number) => number) => (f64 ? Float64Array.from({ length: n }, (_, i) => f(i)) : Float32Array.from({ length: n }, (_, i) => f(i)));
      const w = make(() => r() * 2 - 1), g0 = make((i) => w[i]! * 0.5 + r() - 0.5);
      const out: Array<Float32Array | Float64Array> = [];
      for (const be of ["cuda-emulated", "wasm"]) {
        await setBackend(be);
        const g = g0.slice();
        orthogonalize(w as Float32Array, g as Float32Array);
        out.push(g);
      }
      let dot = 0, worst = 0;
      for (let i = 0; i < n; i++) { dot += w[i]! * out[0]![i]!; worst = Math.max(worst, Math.abs(out[0]![i]! - out[1]![i]!) / (Math.abs(out[1]![i]!) + 1e-3)); }
      expect(worst, `n=${n} f64=${f64}`).toBeLessThan(1e-6);
      expect(Math.abs(dot) / n).toBeLessThan(1e-6);
    }
    expect(emulated.launches).toContain("ortho_apply_f32");
    expect(emulated.launches).toContain("ortho_residual_f64");
    await setBackend("wasm");
  });
});

describe("bench/gpu-profile.ts over the emulated GPU (the dry run of what the GPU machine runs)", () => {
  test("profiles a grok step of each arm: every launch passes through its timer, with its arguments and shared memory", () => {
    const r = Bun.spawnSync([process.execPath, "bench/gpu-profile.ts", "--emulated", "--steps", "1"], { cwd: import.meta.dir + "/..", stdout: "pipe", stderr: "pipe" });
    const out = r.stdout.toString();
    expect(r.exitCode, r.stderr.toString().slice(-2000)).toBe(0);
    for (const k of ["ce_softmax_f32_warp", "ce_stablemax_f32in_f64_warp", "sgemm NN", "adamw_f32", "all timed calls"]) expect(out).toContain(k);
  }, 120_000);
});
