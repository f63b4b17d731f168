// The cuda backend running kernels.cu itself on the CPU ("cuda-cpu": test/gpu/cpu-driver.ts; the parity suites run
// on it too). Here: the CPU device's own CUDA semantics, then what the parity suites do not reach (multi-block
// splits, routing past one dispatch block, an LM's cross-entropy, embedding backward and top-k, GEMM row tiles past
// gridDim.y, the quantizers and a grok run) against wasm and the f64 reference, on the CPU device and on a GPU
// where there is one, and every kernel of the backend launched on the CPU device.
import { describe, expect, test } from "bun:test";
import {
  GROK_ARMS, GrokRun, NumedgeError, adamwStep, combine, crossEntropy, embeddingSum, embeddingSumBackward, logSoftmax, logStablemax, matmul, orthogonalize, quantize4bit, quantizeAffine, quantizeBlockwise, relu, reluBackward, route, setBackend, softmax,
  stablemax, toDevice, topk, updateBias, type DeviceArray,
} from "numedge";
import { KERNELS, createCudaBackend } from "../src/backends/cuda.ts";
import { getBackend, loadedBackend, registerBackend } from "../src/backends/index.ts";
import { wasmBackend } from "../src/backends/wasm.ts";
import { recordOn } from "../src/device.ts";
import { maxInto } from "../src/ops/track.ts";
import { cpuDriver, cpuImage } from "./gpu/cpu-driver.ts";
import { expectClose, grokOn } from "./gpu/grok-compare.ts";
import { quantOn } from "./gpu/quant-compare.ts";
import { crossEntropyGradBound, crossEntropyLossBound, gemmBound, outsideBound, uniform } from "./helpers.ts";
import { routeBounds } from "./route-bounds.ts";
import { cpuCuda, parityBackends, underReference } from "./parity.ts";

/** fn's result on each backend, as plain arrays (typed arrays copied out), wasm current afterwards. */
async function on<T>(backends: string[], fn: () => T): Promise<T[]> {
  const out: T[] = [];
  for (const be of backends) {
    await setBackend(be);
    out.push(fn());
  }
  await setBackend("wasm");
  return out;
}
const floats = (f64: boolean, n: number, f: (i: number) => number) => (f64 ? Float64Array.from({ length: n }, (_, i) => f(i)) : Float32Array.from({ length: n }, (_, i) => f(i)));
/** Every number of a within rel (relative, 1e-30 absolute) of b's, integers and NaNs equal. */
function near(a: unknown, b: unknown, rel: number, path = ""): void {
  if (ArrayBuffer.isView(a) || typeof a === "number") {
    const x = typeof a === "number" ? [a] : Array.from(a as Float32Array), y = typeof b === "number" ? [b] : Array.from(b as Float32Array);
    expect(x.length, path).toBe(y.length);
    x.forEach((v, i) => { if (!(Object.is(v, y[i]) || Math.abs(v - y[i]!) <= rel * Math.abs(y[i]!) + 1e-30)) throw new Error(`${path}[${i}]: ${v} vs ${y[i]}`); });
  } else if (a && typeof a === "object") for (const k of Object.keys(a)) near((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], rel, `${path}.${k}`);
  else expect(a, path).toEqual(b);
}

/**
 * Each output against the f64 reference's (rounded to the output's type) within the documented bounds: softmax and
 * stablemax relative 1e-6 (f32; 1e-12 f64) for outputs >= 1e-30 (smaller ones may be 0), the log variants absolute
 * 4e-7 * max(1, |y|) (f32; 1e-12 f64), NaNs where the reference has them; plus half an ulp for the reference's rounding.
 */
function withinBounds(got: ArrayLike<number>[], want: ArrayLike<number>[], log: boolean[], f64: boolean, path: string): void {
  got.forEach((g, j) => {
    const rel = f64 ? 1e-12 : log[j] ? 4e-7 : 1e-6, ulp = f64 ? 0 : 6e-8;
    for (let i = 0; i < g.length; i++) {
      const v = g[i]!, w = want[j]![i]!;
      const ok = Object.is(v, w) || (log[j] ? Math.abs(v - w) <= (rel + ulp) * Math.max(1, Math.abs(w)) : Math.abs(w) < 1e-30 ? Math.abs(v) < 1e-30 + 1e-36 : Math.abs(v - w) <= (rel + ulp) * Math.abs(w));
      if (!ok) throw new Error(`${path}: output ${j} [${i}] = ${v}, reference ${w}`);
    }
  });
}

// The kernel checks run on the CPU device (unless NUMEDGE_TEST_BACKENDS leaves it out, as the GPU machine's run
// does) and on a GPU where there is one (npm run test:gpu): a GPU runs blocks at once, which the CPU device cannot
const KERNEL_DEVICES = parityBackends.map((b) => b.name).filter((n) => n === "cuda-cpu" || n === "cuda");
const onCpuDevice = KERNEL_DEVICES.includes("cuda-cpu");

// Before the suites below: their last test checks every kernel has run, and the thread kernels run here (the backend
// takes the warp kernels for rows of up to 2048 / 1024)
if (onCpuDevice) describe("cross-entropy's warp kernels on the CPU device", () => {
  test("each ce_*_warp writes the bytes its thread kernel writes: gradient and per-row stats, adversarial rows, cols 1 to its limit", async () => {
    const d = await cpuCuda(), k = d.module(new Uint8Array(0)), r = uniform(31);
    const heads = [["ce_softmax_f32", false, 2048], ["ce_softmax_f64", true, 1024], ["ce_softmax_f32in_f64", false, 1024],
      ["ce_stablemax_f32", false, 1024], ["ce_stablemax_f64", true, 1024], ["ce_stablemax_f32in_f64", false, 1024]] as const;
    for (const [head, f64, limit] of heads) for (const cols of [1, 3, 4, 5, 31, 33, 113, limit]) {
      const rows = 11, z = f64 ? new Float64Array(rows * cols) : new Float32Array(rows * cols), labels = Int32Array.from({ length: rows }, () => Math.floor(r() * cols));
      for (let i = 0; i < z.length; i++) z[i] = (r() * 2 - 1) * 30;
      const row = (q: number, f: (i: number) => number) => { for (let i = 0; i < cols; i++) z[q * cols + i] = f(i); };
      row(0, () => 7); // ties
      row(1, (i) => (i === 0 ? NaN : 1));
      row(2, (i) => (i === cols - 1 ? Infinity : 0));
      row(3, () => -Infinity);
      row(4, (i) => (i % 2 ? -0 : 0)); // the max is a zero of either sign: the sequential loop's pick decides
      row(5, (i) => (i === labels[5] ? 80 : -80)); // softmax collapsed: the sum is exactly 1
      row(6, (i) => i * 1e-3);
      row(7, (i) => (i === labels[7] ? 1e9 : -1e9)); // StableMax collapsed: S == s(max)
      row(8, (i) => (i % 3 === 0 ? -0 : i % 3 === 1 ? 0 : -1e30));
      row(9, (i) => (i === cols - 1 ? -Infinity : -(i % 5))); // the max at several indices on several lanes
      const pz = d.alloc(z.byteLength), pl = d.alloc(labels.byteLength);
      d.htod(pz, z);
      d.htod(pl, labels);
      const out: Uint8Array[] = [];
      for (const [name, grid] of [[head, 1], [`${head}_warp`, 3]] as const) {
        const pg = d.alloc(z.byteLength), ps = d.alloc(rows * 24);
        const term = head === "ce_softmax_f32" || head === "ce_stablemax_f32" ? 4 : 8; // the warp kernels' shared row
        d.launch(k(name), grid, 128, [{ p: pz }, { p: pl }, { p: pg }, { i32: rows }, { i32: cols }, { p: ps }], name === head ? 0 : 4 * cols * term);
        const g = new Uint8Array(z.byteLength), st = new Uint8Array(rows * 24);
        d.dtoh(g, pg);
        d.dtoh(st, ps);
        out.push(g, st);
        d.free(pg);
        d.free(ps);
      }
      expect(out[2], `${head} grad, cols ${cols}`).toEqual(out[0]!);
      expect(out[3], `${head} stats, cols ${cols}`).toEqual(out[1]!);
      d.free(pz);
      d.free(pl);
    }
  }, 60_000);
});

if (onCpuDevice) {
  describe("the CPU device (test/gpu/cpu-cuda)", () => {
    test("warp ops, barriers and shared memory as CUDA defines them; misuse CUDA leaves undefined is reported, not run", async () => {
      const d = await cpuDriver(new URL("./gpu/cpu-cuda/shim-check.cu", import.meta.url));
      if (typeof d === "string") throw new Error(d);
      const k = d.module(new Uint8Array(0)), out = d.alloc(128 * 6 * 8);
      d.launch(k("warp_ops"), 2, 64, [{ p: out }]);
      const got = new BigInt64Array(128 * 6);
      d.dtoh(got, out);
      for (let t = 0; t < 128; t++) {
        const l = t & 31, base = t - l, ballot = 0x49249249; // lanes 0, 3, ..., 30
        const want = [t ^ 5, base + 5, l < 25 ? t + 7 : t, ballot, (t ^ 1) * 2 ** 33, (t & ~63) + ((t + 1) & 63)];
        expect(Array.from(got.subarray(6 * t, 6 * t + 6), Number), `thread ${t}`).toEqual(want);
      }
      const ints = new Int32Array(64);
      d.launch(k("exit_then_barrier"), 1, 64, [{ p: out }]);
      d.dtoh(ints, out);
      expect(Array.from(ints.subarray(0, 40))).toEqual(Array(40).fill(7));
      const f = new Float32Array(3);
      d.launch(k("shared_unwritten"), 3, 32, [{ p: out }]);
      d.dtoh(f, out);
      expect(Array.from(f)).toEqual([1, NaN, NaN]);
      expect(() => d.launch(k("shfl_after_exit"), 1, 32, [{ p: out }])).toThrow(/mask names a lane that exited/);
      expect(() => d.launch(k("divergent_barrier"), 1, 32, [{ p: out }])).toThrow(/a warp op and at __syncthreads/);
      expect(() => d.launch(k("write_past"), 1, 32, [{ p: out }, { i64: 4 }])).toThrow(/write_past\(int\*, int\) launched with arguments p, i64/);
      expect(() => d.launch(k("write_past"), 1, 2048, [{ p: out }, { i32: 0 }])).toThrow(/invalid launch configuration/);
      expect(() => k("nope")).toThrow(/cuModuleGetFunction\(nope\).*NOT_FOUND/);
      d.launch(k("dynamic_shared"), 2, 32, [{ p: out }, { i32: 32 }], 32 * 4);
      d.dtoh(ints, out);
      expect(Array.from(ints.subarray(0, 33))).toEqual([...Array.from({ length: 32 }, (_, i) => 31 - i), -1]);
      expect(() => d.launch(k("dynamic_shared"), 1, 32, [{ p: out }, { i32: 33 }], 32 * 4)).toThrow(/dynamic_shared.*wrote outside its dynamic shared memory/);
      expect(() => d.launch(k("dynamic_shared"), 1, 32, [{ p: out }, { i32: 32 }], 48 * 1024 + 4)).toThrow(/invalid launch configuration/);
      expect(() => d.launch(k("write_past"), 1, 32, [{ p: out }, { i32: 128 * 12 }])).toThrow(/write_past.*wrote outside an allocation/);
    });
    test("the GEMM kernel's row-tile loop: 5 tiles of 64 rows on a grid of 2, every transpose, within the GEMM bound", async () => {
      const d = await cpuCuda(), k = d.module(new Uint8Array(0)), r = uniform(32), [m, kk, n] = [300, 20, 50];
      for (const [ta, tb] of [[0, 0], [1, 0], [0, 1], [1, 1]]) {
        const a = Float32Array.from({ length: m * kk }, () => r() - 0.5), b = Float32Array.from({ length: kk * n }, () => r() - 0.5);
        const want = underReference(() => matmul(a, b, { m, k: kk, n, transA: ta === 1, transB: tb === 1 }));
        const [pa, pb, pc] = [a, b, new Float32Array(m * n)].map((h) => { const p = d.alloc(h.byteLength); d.htod(p, h); return p; });
        d.launch(k("gemm_f32"), [1, 2], [16, 16], [{ p: pa! }, { p: pb! }, { p: pc! }, { i32: m }, { i32: kk }, { i32: n }, { i32: ta! }, { i32: tb! }, { i32: 0 }]);
        const got = new Float32Array(m * n);
        d.dtoh(got, pc!);
        for (const p of [pa, pb, pc]) d.free(p!);
        const bound = gemmBound(a, b, null, m, kk, n, ta === 1, tb === 1, 2 ** -23);
        expect(outsideBound(got, want, (i) => bound[i]!, `ta ${ta} tb ${tb}`)).toBe("");
      }
    });
  });
}

for (const dev of KERNEL_DEVICES) describe(`kernels.cu on ${dev}`, () => {
  test("maxInto across its split (one block up to 64K elements, per-block maxima above): equals wasm's, both dtypes, NaN anywhere", async () => {
    const r = uniform(21);
    for (const n of [65536, 65537, 300_001]) for (const f64 of [false, true]) for (const nan of [-1, 0, n >> 1]) {
      const src = floats(f64, n + 1, () => r() * 2e3 - 1e3);
      if (nan >= 0) src[1 + nan] = NaN;
      const [a, b] = await on([dev, "wasm"], () => { const dst = Float64Array.of(-Infinity); maxInto(dst, 0, src, 1, n, true); return dst[0]; });
      expect(Object.is(a, b), `n=${n} f64=${f64} nan at ${nan}: ${a} vs ${b}`).toBe(true);
    }
  });

  test("orthogonalize across its split (one block up to 256K elements, three passes above): within 1e-6 of wasm; the result orthogonal to w", async () => {
    const r = uniform(22);
    for (const n of [262_144, 262_145, 400_003]) for (const f64 of [false, true]) {
      const w = floats(f64, n, () => r() * 2 - 1), g0 = floats(f64, n, (i) => w[i]! * 0.5 + r() - 0.5);
      const [a, b] = await on([dev, "wasm"], () => { const g = g0.slice(); orthogonalize(w as Float32Array, g as Float32Array); return g; });
      near(a, b, 1e-6, `wasm n=${n}`);
      let dot = 0;
      for (let i = 0; i < n; i++) dot += w[i]! * a![i]!;
      expect(Math.abs(dot) / n, `n=${n}`).toBeLessThan(1e-6);
    }
  });

  test("routing past one dispatch block (547 chunks of 256) and expert choice, with capacity drops and ties: the f64 reference's and wasm's experts, order and drops; combine", async () => {
    const r = uniform(23), T = 70_000, E = 8, z = Float32Array.from({ length: T * E }, () => Math.round(r() * 8) / 4);
    for (const o of [{ experts: E, k: 2, capacityFactor: 1.1 }, { experts: E, k: 2, expertChoice: true, capacityFactor: 0.7 }]) {
      const run = () => {
        const res = route(z, o), kept = res.offsets[E]!;
        return { ...res, combined: combine(Float32Array.from({ length: kept * 4 }, (_, i) => Math.sin(i)), res, { hidden: 4 }) };
      };
      // tied scores (logits on a quarter grid, in every order) must tie on every backend: expert choice takes the lower token
      const [a, wa] = await on([dev, "wasm"], run), w = underReference(run);
      expect(a!.dropped).toBeGreaterThan(0);
      for (const key of ["experts", "order", "offsets", "counts", "dropped", "capacity"] as const) {
        expect(a![key], key).toEqual(w[key] as never);
        expect(wa![key], `wasm ${key}`).toEqual(w[key] as never);
      }
      const bound = routeBounds(z, o, w); // route's documented bounds
      expect(outsideBound(a!.weights, w.weights, (i) => bound.weights[i]!, "weights")).toBe("");
      expect(Math.abs(a!.auxLoss - w.auxLoss)).toBeLessThanOrEqual(bound.auxLoss);
      expect(Math.abs(a!.zLoss - w.zLoss)).toBeLessThanOrEqual(bound.zLoss);
      // combine: 2 ulp of the sum of |terms| (at most 1 here: |outputs| <= 1, each token's weights sum to 1 at most), plus
      // the weights' bound (under 2e-6: scores of logits in [0, 2] over 8 experts are above 1/60)
      a!.combined.forEach((v, i) => expect(Math.abs(v - w.combined[i]!), `combined[${i}]`).toBeLessThanOrEqual(2 ** -22 + 2e-6));
    }
  });

  test("expert choice at 256 experts: dispatch in chunks of 512 (256 would need 2^20+ histogram entries), as wasm; capacity 0 with a NaN score at token 0 takes nothing", async () => {
    const r = uniform(29), T = 5000, E = 256, z = Float32Array.from({ length: T * E }, () => Math.round(r() * 16) / 4);
    expect(Math.ceil((T * E) / 256) * E).toBeGreaterThan(2 ** 20);
    const [a, w] = await on([dev, "wasm"], () => route(z, { experts: E, k: 2, expertChoice: true, capacityFactor: 1.5 }));
    for (const key of ["experts", "order", "offsets", "counts", "dropped", "capacity"] as const) expect(a![key], key).toEqual(w![key] as never);
    near(a!.weights, w!.weights, 1e-6);
    // capacity 0 takes no token, not even one whose NaN score at token 0 has the largest key there is
    const zn = z.slice(0, 40 * 8);
    zn[0] = NaN;
    for (const scoring of ["softmax", "sigmoid"] as const) {
      const [c0, w0] = await on([dev, "wasm"], () => route(zn, { experts: 8, k: 2, expertChoice: true, capacityFactor: 0, scoring }));
      expect(c0!.experts, scoring).toEqual(w0!.experts);
      expect(c0!.experts.every((x) => x === -1), scoring).toBe(true);
    }
  }, 60_000);

  test("outputs get no memset unless the kernels add into them: combine with no kept rows and route's accumulators are zeros, an affine zero point not given is 0, even where the device memory held garbage", async () => {
    await setBackend(dev);
    const dirty = (n: number, dtype: "i32" | "f32" | "f64") => { // arrays of 7s freed to the pool, which the next outputs of that size reuse
      const a = Array.from({ length: 4 }, () => toDevice(dtype === "i32" ? new Int32Array(n).fill(7) : dtype === "f32" ? new Float32Array(n).fill(7) : new Float64Array(n).fill(7)));
      for (const d of a) d.dispose();
    };
    const x = toDevice(Float32Array.from({ length: 64 }, (_, i) => Math.sin(i)));
    const r = route(x, { experts: 8, k: 2, capacityFactor: 0 }); // every assignment dropped: kept = 0
    dirty(8 * 4, "f32");
    const y = combine(toDevice(new Float32Array(0)), r, { hidden: 4 }).readSync();
    dirty(1, "i32");
    const q = quantizeAffine(x, { bits: 8, signed: false, scale: toDevice(Float32Array.of(0.01)) }) as unknown as { q: DeviceArray; zeroPoint: DeviceArray };
    dirty(8, "i32"); dirty(8, "f64"); dirty(3, "f64");
    const r2 = route(x, { experts: 8, k: 2, grad: true });
    const out = [y, q.q.readSync(), q.zeroPoint.readSync(), r2.counts.readSync(), r2.stats.readSync(), r2.auxGrad!.readSync()];
    await setBackend("wasm");
    const h = route(x.readSync() as Float32Array, { experts: 8, k: 2, grad: true });
    const want = [new Float32Array(32), quantizeAffine(x.readSync() as Float32Array, { bits: 8, signed: false, scale: Float32Array.of(0.01) }).q, new Int32Array(1), h.counts,
      Float64Array.of(h.dropped, h.auxLoss, h.zLoss), h.auxGrad];
    expect(out.slice(0, 4)).toEqual(want.slice(0, 4) as never);
    near(out.slice(4), want.slice(4), 1e-5); // the router's sums in another order: wasm's bounds, not its bits
  });

  test("route's selection with its keys in registers (k, or the groups kept, up to 4, 8, 16, 32) or in scratch (past 32): wasm's experts, with and without bias and groups; weights within 1e-6", async () => {
    const r = uniform(38), T = 300, E = 48, z = Float32Array.from({ length: T * E }, () => (r() * 2 - 1) * 4), bias = Float32Array.from({ length: E }, () => r() - 0.5);
    for (const o of [{ k: 2 }, { k: 6 }, { k: 12 }, { k: 24 }, { k: 40 }, { k: 3, bias, groups: 8, topkGroups: 3 }, { k: 20, bias, groups: 4, topkGroups: 4 }, { k: 8, groups: 16, topkGroups: 12, scoring: "sigmoid" as const }]) {
      const [a, b] = await on([dev, "wasm"], () => { const q = route(z, { experts: E, ...o }); return [q.experts, q.weights, q.counts] as const; });
      expect([a![0], a![2]], JSON.stringify({ ...o, bias: !!o.bias })).toEqual([b![0], b![2]]);
      near(a![1], b![1], 1e-6);
    }
  });

  test("routeDispatch on the backend: any negative expert is none (not only -1), over several chunks and warps, 3 experts or 2500 (runs of experts a thread in the offsets scan): the reference's dispatch", async () => {
    const r = uniform(33), n = 3000;
    for (const [E, cap] of [[3, -1], [3, 0], [3, 7], [3, 700], [2500, -1], [2500, 1]]) {
      const experts0 = Int32Array.from({ length: n }, () => { const u = r(); return u < 0.1 ? -1 : u < 0.2 ? -2 - Math.floor(r() * 9) : Math.floor(r() * E); });
      const [a, b] = await on([dev, "reference"], () => {
        const ex = experts0.slice(), w = Float32Array.from(ex, (e) => e + 0.5), c = new Int32Array(E), off = new Int32Array(E + 1), ord = new Int32Array(n), st = new Float64Array(1);
        getBackend().routeDispatch(ex, w, n, E, cap, c, off, ord, st);
        return [ex, w, c, off, ord, st[0]];
      });
      expect(a, `${E} experts, capacity ${cap}`).toEqual(b!);
    }
  });

  test("matmul (the GEMM kernel on the CPU device; cuBLAS where found on a GPU): every transpose and accumulate, f32 and f64, several tiles each way, row tiles past gridDim.y on a GPU, within the GEMM bound", async () => {
    const r = uniform(24);
    // past gridDim.y (65535 row tiles of 64) on a GPU; the CPU device checks the row-tile loop on a small grid instead
    const shapes = [[17, 33, 9], [70, 40, 130], ...(dev === "cuda" ? [[65535 * 64 + 17, 2, 1]] : [])] as const;
    for (const [m, k, n] of shapes) for (const f64 of [false, true]) for (const [transA, transB, accumulate] of [[false, false, false], [true, false, true], [false, true, false], [true, true, true]]) {
      if (m > 1000 && (transA || f64 || !transB)) continue; // one large case
      const fill = (len: number) => floats(f64, len, () => r() - 0.5);
      const a = fill(m * k), b = fill(k * n), c0 = fill(m * n), o = { m, k, n, transA, transB, accumulate };
      const want = underReference(() => matmul(a, b, { ...o, out: c0.slice() }));
      const [got] = await on([dev], () => matmul(a, b, { ...o, out: c0.slice() }));
      const bound = gemmBound(a, b, accumulate ? c0 : null, m, k, n, transA, transB, f64 ? 2 ** -52 : 2 ** -23);
      expect(outsideBound(got!, want, (i) => bound[i]!, `[${m},${k},${n}] ${JSON.stringify(o)}`)).toBe("");
    }
  });

  test("f64 AdamW, embeddings (two column tiles, indices over three scan rounds of 1024, up to 60 matches a row per round) and the softmax family, ce heads, reluBackward, route gradients, updateBias: as wasm", async () => {
    const run = () => {
      const w = Float64Array.from({ length: 37 }, (_, i) => Math.sin(i)), g = Float64Array.from({ length: 37 }, (_, i) => Math.cos(3 * i) / 7), m = new Float64Array(37), v = new Float64Array(37);
      for (let step = 1; step <= 3; step++) adamwStep(w, g, m, v, { lr: 0.01, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1, step });
      const cols = 300, idx = Int32Array.from({ length: 2601 }, (_, i) => (i % 17 === 0 ? 40 : (i * 7919) % 41)), table = Float64Array.from({ length: 41 * cols }, (_, i) => Math.tan(i) / 3);
      const e = embeddingSum(table, idx, { cols, per: 3 }), dw = new Float64Array(41 * cols).fill(-0.5);
      embeddingSumBackward(e, idx, dw, { cols, per: 3 });
      const x = Float32Array.from({ length: 9 * 130 }, (_, i) => Math.sin(i * 0.7) * 9), x64 = Float64Array.from(x), labels = Int32Array.from({ length: 9 }, (_, i) => (i * 31) % 130);
      const fam = [softmax, logSoftmax, stablemax, logStablemax].flatMap((f) => [f(x, { cols: 130 }), f(x64, { cols: 130 })]);
      const ce = (["softmax", "stablemax"] as const).flatMap((head) => [crossEntropy(x, labels, { cols: 130, head, grad: true }), crossEntropy(x, labels, { cols: 130, head, precision: "f64", grad: true }),
        crossEntropy(x64, labels, { cols: 130, head, grad: true })]);
      const rt = route(x, { experts: 130, k: 3, grad: true }), bias = new Float32Array(130);
      updateBias(bias, rt.counts, 0.01);
      return { w, m, v, e, dw, fam, ce, rg: [rt.auxGrad, rt.zGrad], bias, dx: [reluBackward(x, x.map((q) => q - 1)), reluBackward(x64, x64.map((q) => q - 1)), relu(x64)] };
    };
    const [a, b] = await on([dev, "wasm"], run);
    for (const key of ["w", "m", "v", "e", "dw", "bias", "dx"] as const) expect(a![key], key).toEqual(b![key] as never);
    near(a, b, 1e-5); // the f64 exp/log sums and libm: within the wasm bounds
  });

  test("the softmax family either side of the register rows (16384 f32 / 8192 f64 columns read once; longer rows over several blocks when fewer than 256, else a loop, both algorithms), NaN, +Infinity, all -Infinity rows and a part of only -Infinity, in place: within the documented bounds of the f64 reference", async () => {
    const r = uniform(36);
    for (const [f64, cols, rows] of [[false, 16383, 5], [false, 16384, 5], [false, 16385, 5], [false, 40000, 5], [false, 16385, 256], [true, 8192, 5], [true, 8193, 5], [true, 20000, 5], [true, 8193, 256]] as const) {
      const x = floats(f64, rows * cols, () => (r() * 2 - 1) * 30);
      x[cols + 7] = NaN; // row 1
      x[2 * cols + cols - 1] = Infinity; // row 2
      x.fill(-Infinity, 3 * cols, 4 * cols); // row 3
      x.fill(-Infinity, 4 * cols, 4 * cols + 4096); // row 4: its first part (split rows) is only -Infinity
      const [a, b] = await on([dev, "reference"], () => {
        const fam = [softmax, logSoftmax, stablemax, logStablemax].map((f) => f(x, { cols }));
        const alg = (["twopass", "threepass"] as const).map((algorithm) => softmax(x, { cols, algorithm, temperature: 0.7 }));
        const inPlace = x.slice();
        softmax(inPlace, { cols, out: inPlace });
        return [...fam, ...alg, inPlace];
      });
      withinBounds(a!, b!, [false, true, false, true, false, false, false], f64, `f64=${f64} cols=${cols} rows=${rows}`);
    }
    // past 256 parts a row (parts of more than 4096 columns); a part of only -Infinity and a NaN: the row is NaN
    const cols = 1_100_003, x = Float32Array.from({ length: 2 * cols }, () => (r() * 2 - 1) * 30);
    x.fill(-Infinity, cols + 5000, cols + 20000);
    x[cols + 9000] = NaN;
    const [a, b] = await on([dev, "reference"], () => [softmax, logSoftmax, stablemax].map((f) => f(x, { cols })));
    withinBounds(a!, b!, [false, true, false], false, `cols=${cols}`);
    expect(Number.isNaN(a![0]![cols + 1]!) && !Number.isNaN(a![0]![1]!)).toBe(true);
  }, 120_000);

  test("crossEntropy past the warp kernels (a block per row, LM-head widths): wasm's collapse counts on collapsed and spread rows, loss and gradient within the bounds of the f64 reference", async () => {
    const r = uniform(27);
    for (const cols of [1025, 2049, 4099, 9000, 32003]) for (const f64 of [false, true]) {
      const rows = 6, z = floats(f64, rows * cols, () => (r() * 2 - 1) * 12), labels = Int32Array.from({ length: rows }, () => Math.floor(r() * cols));
      const row = (q: number, f: (i: number) => number) => { for (let i = 0; i < cols; i++) z[q * cols + i] = f(i); };
      row(0, (i) => (i === labels[0] ? 200 : -5)); // collapsed in every head
      row(1, (i) => (i === 7 ? NaN : 1));
      row(2, () => -Infinity);
      row(3, (i) => (i === labels[3] ? 1e15 : -1e9)); // StableMax collapsed too, in any summation order
      const heads = (["softmax", "stablemax"] as const).flatMap((head) => (["f32", "f64"] as const).map((precision) => ({ cols, head, precision, grad: true })));
      const [a, w] = await on([dev, "wasm"], () => heads.map((o) => crossEntropy(z, labels, o)));
      const ref = underReference(() => heads.map((o) => crossEntropy(z, labels, o)));
      // the mean loss over the rows without a NaN or only -Infinity (with them it is NaN everywhere)
      const finite = [0, 3, 4, 5], zf = floats(f64, finite.length * cols, (i) => z[finite[Math.floor(i / cols)]! * cols + (i % cols)]!);
      const lf = Int32Array.from(finite, (q) => labels[q]!);
      const [af] = await on([dev], () => heads.map((o) => crossEntropy(zf, lf, o).loss)), rf = underReference(() => heads.map((o) => crossEntropy(zf, lf, o).loss));
      heads.forEach((o, h) => {
        const at = `${cols} ${f64 ? "f64" : "f32"} ${o.head} ${o.precision}`;
        expect(a![h]!.scFraction, at).toBe(w![h]!.scFraction);
        expect(a![h]!.zeroLossFraction, at).toBe(w![h]!.zeroLossFraction);
        // crossEntropy's documented bounds (helpers.ts)
        const g = a![h]!.grad!, want = ref[h]!.grad!, shape = { head: o.head, rows, cols, precision: o.precision, f32Logits: !f64 };
        expect(outsideBound(g, want, (i) => crossEntropyGradBound(want[i]!, i % cols === labels[i / cols | 0], shape), `${at} grad`)).toBe("");
        expect(Number.isNaN(a![h]!.loss), at).toBe(true);
        const lossErr = Math.abs(af![h]! - rf[h]!);
        expect(lossErr, `${at} loss ${af![h]} vs ${rf[h]}`).toBeLessThanOrEqual(crossEntropyLossBound(rf[h]!, { ...shape, rows: finite.length }));
      });
    }
  }, 60_000);

  test("embeddingSumBackward past 2^26 vocabulary x indices (positions radix-sorted by index, 2 and 3 passes, tiles of 2048): wasm's bits, a row matched 2500 times", async () => {
    const r = uniform(28);
    for (const [vocab, rows, per, f64, cols] of [[8200, 4100, 2, false, 3], [8200, 4100, 2, true, 257], [70_000, 1500, 1, false, 5]] as const) {
      const n = rows * per, idx = Int32Array.from({ length: n }, () => 7 + Math.floor(r() * (vocab - 7)));
      for (let a = 0; a < Math.min(2500, n / 3); a++) idx[(a * 3) % n] = 5; // a frequent token
      idx[0] = 3; idx[per - 1] = 3; // one row's indices the same row of w
      idx[n - 1] = vocab - 1;
      expect(vocab * n).toBeGreaterThan(2 ** 26);
      const dout = floats(f64, rows * cols, (i) => Math.sin(i * 0.37) * 3), dw0 = floats(f64, vocab * cols, (i) => (i % 7) - 3);
      const [a, w] = await on([dev, "wasm"], () => { const dw = dw0.slice(); embeddingSumBackward(dout, idx, dw, { cols, per }); return dw; });
      expect(a, `cols ${cols}`).toEqual(w!);
    }
  }, 120_000);

  test("random shapes on the paths the fuzz test's small shapes never take: top-k by a block, cross-entropy by a block, the embedding backward's radix sort: as wasm", async () => {
    const r = uniform(30), int = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
    for (let c = 0; c < 12; c++) {
      const rows = int(1, 9), cols = int(128, 3000), k = int(33, Math.min(1024, cols)), sorted = r() < 0.5;
      const x = Float32Array.from({ length: rows * cols }, () => (r() < 0.02 ? NaN : Math.round((r() - 0.5) * 64) / 8));
      const [a, b] = await on([dev, "wasm"], () => { const t = topk(x, { cols, k, sorted }); return [new Uint32Array(t.values.buffer), t.indices]; });
      expect(a, `topk [${rows},${cols}] k=${k} sorted=${sorted}`).toEqual(b!);
    }
    for (let c = 0; c < 8; c++) {
      const rows = int(1, 5), cols = int(1025, 5000), head = r() < 0.5 ? "softmax" as const : "stablemax" as const, precision = r() < 0.5 ? "f32" as const : "f64" as const;
      const z = Float32Array.from({ length: rows * cols }, () => (r() - 0.5) * 30), labels = Int32Array.from({ length: rows }, () => int(0, cols - 1));
      const [a, b] = await on([dev, "wasm"], () => crossEntropy(z, labels, { cols, head, precision }));
      const at = `crossEntropy [${rows},${cols}] ${head} ${precision}`;
      expect(a!.scFraction, at).toBe(b!.scFraction);
      near(a!.loss, b!.loss, precision === "f32" ? 1e-6 : 1e-12, at);
      near(a!.grad, b!.grad, precision === "f32" ? 1e-5 : 1e-12, at);
    }
    for (let c = 0; c < 6; c++) {
      const vocab = int(2 ** 13, 2 ** 17), per = int(1, 3), rows = Math.ceil(int(2 ** 26 / vocab + 1, 2 ** 26 / vocab + 3000) / per), cols = int(1, 4);
      const idx = Int32Array.from({ length: rows * per }, () => (r() < 0.3 ? 0 : int(0, vocab - 1)));
      const dout = Float32Array.from({ length: rows * cols }, () => r() - 0.5), dw0 = Float32Array.from({ length: vocab * cols }, () => r() - 0.5);
      const [a, b] = await on([dev, "wasm"], () => { const dw = dw0.slice(); embeddingSumBackward(dout, idx, dw, { cols, per }); return dw; });
      expect(a, `embeddingSumBackward vocab ${vocab} rows ${rows} per ${per} cols ${cols}`).toEqual(b!);
    }
  }, 120_000);

  test("quantizers and 8-bit Adam equal wasm's bit for bit; a device-resident grok run tracks wasm's", async () => {
    const [a, b] = await quantOn([dev, "wasm"]);
    for (const key of Object.keys(b!)) expect(a![key], key).toEqual(b![key]!);
    const [g, h] = await grokOn([dev, "wasm"]);
    expectClose(g!, h!);
  }, 60_000);

  test("a \"tensor\" block past 4096 elements: its absmax or affine stats over many CUDA blocks (parts, then a fold), 8-bit nearest and stochastic, 4-bit, affine signed and unsigned, a NaN or Infinity in the last part: as wasm", async () => {
    const r = uniform(34), n = 9 * 4096 + 7, x0 = Float32Array.from({ length: n }, () => r() * 4 - 2);
    // the largest magnitude in each part's share (blocks of 256 threads striding by 10 * 256), the bad values near the end
    const cases = [...Array.from({ length: 10 }, (_, b) => [-7.5, b * 256 + 17] as const), [NaN, n - 2], [-Infinity, n - 2]] as const;
    for (const [tail, at] of cases) {
      const x = x0.slice();
      x[at] = tail;
      const [a, b] = await on([dev, "wasm"], () => {
        const out: unknown[] = [];
        for (const f of [() => quantizeBlockwise(x, { blockSize: "tensor" }), () => quantizeBlockwise(x, { blockSize: "tensor", rounding: "stochastic", seed: 5 }),
          () => quantize4bit(x, { blockSize: "tensor", type: "nf4" }), () => quantizeAffine(x, { bits: 8, signed: true }), () => quantizeAffine(x, { bits: 8, signed: false })]) {
          try {
            const q = f() as { absmax?: Float32Array; scale?: Float32Array; codes?: Uint8Array; packed?: Uint8Array; q?: Uint8Array; zeroPoint?: Int32Array };
            const s = q.absmax ?? q.scale!;
            out.push(new Uint32Array(s.buffer, s.byteOffset, s.length), q.codes ?? q.packed ?? q.q, q.zeroPoint);
          } catch (e) {
            out.push(e instanceof NumedgeError ? `${e.code}: ${e.message}` : e);
          }
        }
        return out;
      });
      expect(a, `${tail} at ${at}`).toEqual(b!);
    }
  });

  test("block-wise 8-bit, 4-bit and int8 / uint8 affine in one read (a warp per 512 elements for power-of-two groups up to 512, a CUDA block per group up to 4096): every block size, groups of 100, lengths across warps and CUDA blocks, odd lengths, lone blocks, NaN or Infinity in one block: as wasm", async () => {
    const r = uniform(35), lengths = [1, 31, 33, 511, 512, 513, 4095, 4097, 3 * 4096 + 517];
    for (const n of lengths) {
      const x0 = Float32Array.from({ length: n }, () => (r() - 0.5) * 2 ** (r() * 20 - 10));
      for (const bs of [32, 64, 128, 256, 512, 1024, 4096, "tensor"] as const) {
        const nb = Math.ceil(n / (bs === "tensor" ? n : bs));
        // clean, then a bad value in a middle block and one in the last (the first is reported), then a huge block
        for (const bad of [[], [[NaN, (nb >> 1) * (bs === "tensor" ? 0 : bs) + 3]], [[Infinity, n - 1], [-Infinity, n >> 1]], [[3e38, n >> 2]]] as [number, number][][]) {
          const x = x0.slice();
          for (const [v, at] of bad) x[Math.min(at, n - 1)] = v;
          const [a, b] = await on([dev, "wasm"], () => {
            const out: unknown[] = [];
            const affine = (signed: boolean) => () => quantizeAffine(x, { bits: 8, signed, ...(bs === "tensor" ? {} : { axis: "block" as const, blockSize: bs === 4096 ? 100 : bs }) });
            for (const f of [() => quantizeBlockwise(x, { blockSize: bs }), () => quantize4bit(x, { blockSize: bs, type: "nf4" }), () => quantize4bit(x, { blockSize: bs, type: "fp4" }), affine(true), affine(false)]) {
              try {
                const q = f() as { absmax?: Float32Array; scale?: Float32Array; zeroPoint?: Int32Array; codes?: Uint8Array; packed?: Uint8Array; q?: Int8Array | Uint8Array };
                const a = q.absmax ?? q.scale!;
                out.push(new Uint32Array(a.buffer, a.byteOffset, a.length), q.codes ?? q.packed ?? q.q, q.zeroPoint);
              } catch (e) {
                out.push(e instanceof NumedgeError ? `${e.code}: ${e.message}` : e);
              }
            }
            return out;
          });
          expect(a, `n=${n} blockSize=${bs} bad ${JSON.stringify(bad)}`).toEqual(b!);
        }
      }
    }
  }, 120_000);

  test("topk: long rows by a warp (k <= 32) or a block (k <= 1024, radix select), short rows by a thread (k <= 32 in registers, past that device scratch), ties, NaN, ±Infinity, unsorted: as wasm; then every kernel the backend loads has run here", async () => {
    const r = uniform(26), x = Float32Array.from({ length: 50 * 2100 }, (_, i) => (i % 97 === 5 ? NaN : i % 89 === 3 ? -Infinity : i % 83 === 1 ? Infinity : Math.round(r() * 40)));
    // k across the register kernels' sizes (up to 4, 8, 16, 32) for a warp per row and a thread per row
    const inRegisters = [1, 4, 5, 8, 9, 16, 17, 32].flatMap((k) => [[700, { k }], [100, { k, sorted: false }], [100, { k }], [700, { k, sorted: false }]] as const);
    for (const [cols, o] of [...inRegisters, [700, { k: 40 }], [700, { k: 40, sorted: false }], [700, { k: 700 }], [700, { k: 699, sorted: false }],
      [2100, { k: 1024 }], [2100, { k: 1000, sorted: false }], [100, { k: 40 }], [100, { k: 33, sorted: false }]] as const) {
      // values as bits: toEqual calls typed arrays holding NaN unequal
      const [a, b] = await on([dev, "wasm"], () => { const t = topk(x.subarray(0, 50 * cols), { cols, ...o }); return [new Uint32Array(t.values.buffer), t.indices]; });
      expect(a, `${cols} ${JSON.stringify(o)}`).toEqual(b!);
    }
    if (dev !== "cuda-cpu") return;
    const launched = new Set((await cpuCuda()).launches);
    expect(KERNELS.filter((k) => !launched.has(k))).toEqual([]);
  });
});

// CUDA graphs (GrokRun's graph option): on the CPU device the driver records launches and memsets and replays them,
// and refuses copies and syncs while recording, as the CUDA driver does; on a GPU, cuStreamBeginCapture and friends
for (const dev of KERNEL_DEVICES) describe(`recorded steps (CUDA graphs) on ${dev}`, () => {
  const cfg = (arm: "baseline" | "perp" | "stablemax") => ({ ...GROK_ARMS[arm], p: 13, op: "add" as const, frac: 0.6, hidden: [32, 32], seed: 1, lr: 0.01 });
  /** Steps 0..9 (every third logged), then test accuracy and the running maxima. */
  const steps = (run: GrokRun) => [...Array.from({ length: 10 }, (_, t) => run.train(true, t % 3 === 0)).filter(Boolean), run.testAccuracy(), run.maxima()];

  test("a grok run replaying its recorded step gives the same bits as one without, each arm; the step is one graph launch", async () => {
    await setBackend(dev);
    for (const arm of ["baseline", "perp", "stablemax"] as const) {
      const plain = new GrokRun(cfg(arm)), graphed = new GrokRun(cfg(arm), { graph: true });
      expect(plain.graphStatus).toBe("off");
      expect(graphed.graphStatus).toBe("not recorded yet");
      const a = steps(plain), b = steps(graphed);
      expect(graphed.graphStatus).toBe("in use");
      expect(b).toEqual(a); // toEqual on numbers: NaN equals NaN, but nothing here is NaN
      expect(graphed.step).toBe(10);
    }
    const first = new GrokRun(cfg("baseline"), { graph: true });
    first.train(true, false); // a first step runs as usual (its label check reads back), the second is recorded
    expect(first.graphStatus).toBe("not recorded yet");
    first.train(true, false);
    expect(first.graphStatus).toBe("in use");
    if (dev === "cuda-cpu") { // an unlogged step: one graph launch (its kernels follow it on the CPU device), then AdamW's 3
      const d = await cpuCuda(), before = d.launches.length;
      first.train(true, false);
      const step = d.launches.slice(before);
      expect(step[0]).toBe("(graph launch)");
      expect(step.filter((n) => n === "(graph launch)").length).toBe(1);
      expect(step.slice(-3)).toEqual(["adamw_f32", "adamw_f32", "adamw_f32"]);
      expect(step.filter((n) => n.startsWith("adamw")).length).toBe(3);
    }
    await setBackend("wasm");
  }, 120_000);

  test("memory a recorded step uses is never handed to anyone else while it lives; a replay marks what it writes changed; a disposed one is replay()-proof", async () => {
    await setBackend(dev);
    const run = new GrokRun(cfg("baseline"), { graph: true });
    run.train(true, false);
    run.train(true, false);
    expect(run.graphStatus).toBe("in use");
    // small arrays land in the size classes the step's scratch and loss statistics came from
    const mine = Array.from({ length: 64 }, (_, i) => toDevice(Float64Array.of(i, -i, i + 0.5)));
    for (let t = 0; t < 3; t++) run.train(true, false);
    mine.forEach((a, i) => expect(Array.from(a.readSync())).toEqual([i, -i, i + 0.5]));
    // an array made while recording and disposed after: its memory stays the graph's, which writes it each replay
    const x = toDevice(Float32Array.of(-1, 1));
    let y: DeviceArray | undefined;
    const g = loadedBackend(dev).capture!(() => { y = relu(x) as DeviceArray; });
    y!.dispose();
    const other = toDevice(Float32Array.of(7, 7)); // the size y had
    g.replay();
    expect(Array.from(other.readSync())).toEqual([7, 7]);
    g.dispose();
    // arrays made before recording, disposed while the graph lives: theirs too; and each replay bumps what it writes
    const a = toDevice(Float32Array.of(-5, 5)), b = toDevice(Float32Array.of(0, 0));
    const g2 = recordOn(loadedBackend(dev), () => void relu(a, { out: b }));
    const v = b.version;
    g2.replay();
    expect(b.version).toBe(v + 1);
    expect(Array.from(b.readSync())).toEqual([0, 5]);
    a.dispose();
    b.dispose();
    const c1 = toDevice(Float32Array.of(7, 7)), c2 = toDevice(Float32Array.of(8, 8)); // the sizes a and b had
    g2.replay();
    expect([...c1.readSync(), ...c2.readSync()]).toEqual([7, 7, 8, 8]);
    g2.dispose();
    g.dispose(); // twice: a no-op
    expect(() => g.replay()).toThrow(/disposed/);
    await setBackend("wasm");
  }, 120_000);

  test("a copy or a read while recording throws NumedgeError; the backend goes on working, a graph recorded after too", async () => {
    await setBackend(dev);
    const x = toDevice(Float32Array.of(-1, 2, -3, 4)), cap = loadedBackend(dev).capture!;
    for (const body of [() => toDevice(Float32Array.of(1)), () => x.readSync(), () => softmax(Float32Array.of(1, 2), { cols: 2 })]) {
      const e = (() => { try { cap(body); } catch (err) { return err; } })();
      expect(e).toBeInstanceOf(NumedgeError);
      expect((e as NumedgeError).code).toBe("unsupported");
      expect((e as Error).message).toMatch(/while capturing a CUDA graph/);
    }
    expect(Array.from((relu(x) as DeviceArray).readSync())).toEqual([0, 2, 0, 4]);
    const run = new GrokRun(cfg("perp"), { graph: true }), plain = new GrokRun(cfg("perp"));
    expect(steps(run)).toEqual(steps(plain));
    await setBackend("wasm");
  }, 120_000);
});

describe("GrokRun's graph option where no graph can be recorded", () => {
  test("on a backend that cannot record (cuda on a driver without graphs, wasm) or on host arrays: says why and steps as without", async () => {
    const backends = ["wasm"];
    if (onCpuDevice) { // the CPU device behind a driver older than CUDA 11.4: no capture()
      const own = await cpuDriver();
      if (typeof own === "string") throw new Error(own);
      const { capture: _, ...noGraphs } = own;
      const made = await createCudaBackend(wasmBackend, { open: async () => noGraphs, image: cpuImage, blas: () => "none" }, "cuda-nograph");
      if (typeof made === "string") throw new Error(made);
      registerBackend("cuda-nograph", async () => ({ backend: made.backend, info: { device: "gpu", ...made.info } }));
      backends.unshift("cuda-nograph");
    }
    for (const be of backends) {
      await setBackend(be);
      const cfg = { ...GROK_ARMS.baseline, p: 11, op: "add" as const, frac: 0.6, hidden: [16], seed: 0, lr: 0.01 };
      const a = new GrokRun(cfg, { graph: true }), b = new GrokRun(cfg);
      expect(a.graphStatus).toBe(`no graph: backend ${be} cannot record its work`);
      for (let t = 0; t < 4; t++) expect(a.train(true, t === 3)).toEqual(b.train(true, t === 3));
      expect(new GrokRun(cfg, { graph: true, device: false }).graphStatus).toMatch(/^no graph: the run is on host arrays/);
    }
    await setBackend("wasm");
    expect(() => new GrokRun({ ...GROK_ARMS.baseline, p: 11, op: "add", frac: 0.6, hidden: [16], seed: 0, lr: 0.01 }, { graph: "yes" as never })).toThrow(/graph must be a boolean/);
  });
});
