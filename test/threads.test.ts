// The worker pool: every op family gives the same bytes on 1, 2, 3 and 4 threads (shapes above the pool's
// thresholds, so they split); setThreads / NUMEDGE_THREADS checks; the one-thread fallback without shared memory.
import { afterAll, describe, expect, test } from "bun:test";
import {
  Adam8bit, adamwStep, alloc, backendInfo, combine, crossEntropy, dequantize4bit, dequantizeAffine, dequantizeBlockwise, dequantizeQ4_0,
  dequantizeQ8_0, embeddingSum, embeddingSumBackward, logSoftmax, logStablemax, matmul, quantize4bit, quantizeAffine,
  quantizeBlockwise, quantizeQ4_0, quantizeQ8_0, relu, route, setBackend, setThreads, softmax, stablemax, threads, topk,
} from "numedge";
import { poolStats } from "../src/backends/wasm/pool.ts";
import { expectError, uniform } from "./helpers.ts";

await setBackend("wasm");
const initial = threads();
afterAll(() => setThreads(initial));

const r = uniform(7);
const f32 = (n: number, s = 4) => Float32Array.from({ length: n }, () => (r() * 2 - 1) * s);
const f64 = (n: number) => Float64Array.from({ length: n }, () => r() * 8 - 4);
const ints = (n: number, hi: number) => Int32Array.from({ length: n }, () => Math.floor(r() * hi));
const bytes = (a: ArrayBufferView | number) => (typeof a === "number" ? [a] : Array.from(new Uint8Array(a.buffer, a.byteOffset, a.byteLength)));

const X = f32(64 * 4099), X64 = f64(64 * 1031), Z = f32(3001 * 97), L = ints(3001, 97);
const specials = X.slice(); // NaN, infinities and ties in some rows
for (let i = 0; i < specials.length; i += 997) specials[i] = [NaN, Infinity, -Infinity, 0, -0][i % 5]!;
const A = f32(300 * 170), B = f32(170 * 260), B2 = f32(300 * 260);
const big = f32(1 << 20), W = f32(4000 * 64), IDX = ints(2 * 5000, 4000), G = f32(5000 * 64);
const R16 = f32(20000 * 16), EO = f32(40000 * 96), R64 = f32(8000 * 64), BIAS = f32(64, 0.5), T8 = f32(40000 * 8), A64 = f64(120 * 90), B64 = f64(90 * 110), GRADS = [1, 2, 3].map(() => f32(big.length));
const T64 = f32(40003 * 64), T64S = T64.map((v, i) => (i % 61 ? Math.round(v) : [NaN, Infinity, -Infinity, -0][i % 4]!)); // ties, NaN, ±Inf

/** Each family's outputs (every array and scalar it returns), as bytes. */
const families: Record<string, () => Array<ArrayBufferView | number>> = {
  softmax: () => [softmax(X, { cols: 4099 }), softmax(X, { cols: 4099, algorithm: "twopass" }), softmax(specials, { cols: 4099 }), softmax(X64, { cols: 1031 })],
  "log/stablemax": () => [logSoftmax(X, { cols: 4099 }), stablemax(X, { cols: 4099 }), logStablemax(X, { cols: 4099 }), logStablemax(X64, { cols: 1031 })],
  crossEntropy: () => (["softmax", "stablemax"] as const).flatMap((head) => (["f32", "f64"] as const).flatMap((precision) => {
    const c = crossEntropy(Z, L, { cols: 97, head, precision });
    return [c.grad!, c.loss, c.scFraction, c.zeroLossFraction];
  })),
  topk: () => [topk(X, { cols: 4099, k: 40 }), topk(X, { cols: 4099, k: 5 }), topk(Z, { cols: 97, k: 2 }), topk(T8, { cols: 8, k: 2 })]
    .flatMap((t) => [t.values, t.indices]),
  route: () => [
    ...(["softmax", "sigmoid"] as const).flatMap((scoring) => [false, true].map((expertChoice) => route(Z, { experts: 97, k: 4, scoring, expertChoice, grad: true }))),
    route(R16, { experts: 16, k: 2, capacityFactor: 1 }), // four tokens at a time
    route(R64, { experts: 64, k: 6, scoring: "sigmoid", groups: 8, topkGroups: 3, bias: BIAS }), // DeepSeek-V3 groups
    // expert choice (tokens per chunk, experts per chunk, dispatch chunks) and token choice with capacity drops
    route(T64, { experts: 64, k: 2, expertChoice: true }),
    route(T64S, { experts: 64, k: 1, expertChoice: true, bias: BIAS, normalize: true, capacityFactor: 0.5 }),
    route(T8, { experts: 8, k: 2, expertChoice: true, scoring: "sigmoid", capacityFactor: 0.7 }),
    route(T8, { experts: 8, k: 2, capacityFactor: 0.8 }),
    route(T64S, { experts: 64, k: 6, capacityFactor: 1.1, scoring: "sigmoid", bias: BIAS }),
  ].flatMap((o) => [o.experts, o.weights, o.counts, o.offsets, o.order, o.auxLoss, o.zLoss, o.dropped, ...(o.auxGrad ? [o.auxGrad, o.zGrad!] : [])]),
  combine: () => {
    const r = route(R16, { experts: 16, k: 2, capacityFactor: 1.1 });
    return [combine(EO.subarray(0, r.offsets[16]! * 96), r, { hidden: 96 })];
  },
  embeddings: () => {
    const dw = new Float32Array(W.length);
    embeddingSumBackward(G, IDX, dw, { cols: 64, per: 2 });
    return [embeddingSum(W, IDX, { cols: 64, per: 2 }), dw];
  },
  matmul: () => [matmul(A, B, { m: 300, k: 170, n: 260 }), matmul(A, B2, { m: 170, k: 300, n: 260, transA: true }),
    matmul(A64, B64, { m: 120, k: 90, n: 110 }), relu(big)],
  quantize: () => {
    const q = quantizeBlockwise(big, { blockSize: 64 }), qs = quantizeBlockwise(big, { blockSize: 256, rounding: "stochastic", seed: 3 });
    const qc = quantizeBlockwise(big, { blockSize: 128, code: Float32Array.from({ length: 256 }, (_, i) => Math.tanh((i - 127.5) / 30)) });
    const n4 = quantize4bit(big, { type: "nf4", blockSize: 64 }), f4 = quantize4bit(big, { type: "fp4", blockSize: 128 });
    const a = quantizeAffine(big, { bits: 8, axis: "block", blockSize: 512 }), u = quantizeAffine(big, { bits: 8, signed: false, axis: "row", cols: 1024 });
    const q8 = quantizeQ8_0(big), q4 = quantizeQ4_0(big);
    return [q.codes, q.absmax, qs.codes, qc.codes, dequantizeBlockwise(q), n4.packed, f4.packed, dequantize4bit(n4), dequantize4bit(f4),
      a.q, a.scale, u.q, u.zeroPoint, dequantizeAffine(a), dequantizeAffine(u), q8, q4, dequantizeQ8_0(q8, big.length), dequantizeQ4_0(q4, big.length)];
  },
  optimizers: () => {
    const w = big.slice(), m = new Float32Array(big.length), v = new Float32Array(big.length), p = big.slice(), p2 = big.slice(0, 5000);
    const opt = new Adam8bit([p, p2], { lr: 1e-2 });
    for (let t = 1; t <= 3; t++) {
      const g = GRADS[t - 1]!;
      adamwStep(w, g, m, v, { lr: 1e-2, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.01, step: t });
      opt.step([g, g.subarray(0, 5000)]);
    }
    return [w, m, v, p, p2];
  },
};

/** Run each family at `t` threads, once workers are up (so chunks really are shared). */
async function at(t: number): Promise<Record<string, number[][]> & { workerChunks: number }> {
  setThreads(t);
  softmax(X, { cols: 4099 }); // starts the workers
  for (let i = 0; i < 200 && poolStats().ready < t - 1; i++) await new Promise((res) => setTimeout(res, 10));
  expect(poolStats().ready).toBe(t - 1);
  const c0 = poolStats().workerChunks;
  const out = Object.fromEntries(Object.entries(families).map(([k, f]) => [k, f().map(bytes)]));
  return { ...out, workerChunks: poolStats().workerChunks - c0 } as never;
}

describe("worker pool", () => {
  test("every family: the same bytes on 1, 2, 3 and 4 threads; workers ran chunks", async () => {
    const one = await at(1);
    for (const t of [2, 3, 4]) {
      const got = await at(t);
      const diffs = Object.keys(families).flatMap((k) => one[k]!.flatMap((want, i) => {
        const have = got[k]![i]!, j = want.findIndex((b, x) => !Object.is(b, have[x])); // a NaN loss equals itself
        return j < 0 && have.length === want.length ? [] : [`${k} output ${i}: byte ${j} of ${want.length} differs on ${t} threads`];
      }));
      expect(diffs).toEqual([]);
      expect(got.workerChunks).toBeGreaterThan(0);
    }
  }, 120000);

  test("alloc'd arrays split in place too (zero-copy), and agree with host arrays", () => {
    setThreads(3);
    const x = alloc(X.length), y = alloc(X.length);
    x.set(X);
    softmax(x, { cols: 4099, out: y });
    expect(bytes(y)).toEqual(bytes(softmax(X, { cols: 4099 })));
  });

  test("setThreads takes an integer from 1 to 256; backendInfo reports the count", () => {
    for (const bad of [0, -1, 1.5, NaN, 257, "2"]) expectError(() => setThreads(bad as number), "range", "setThreads");
    setThreads(3);
    expect(threads()).toBe(3);
    expect(backendInfo().threads).toBe(3);
    expect(backendInfo().threadsNote).toBeUndefined();
  });

  const src = JSON.stringify(`${import.meta.dir}/../src/index.ts`);
  const run = (code: string, env: Record<string, string> = {}) =>
    Bun.spawnSync([process.execPath, "-e", code], { env: { ...process.env, ...env }, stdout: "pipe", stderr: "pipe", timeout: 60_000 });

  test("NUMEDGE_THREADS sets the default; a bad value exits 1 with one line naming it; a script using the pool exits", () => {
    const ok = run(`import { backendInfo, softmax } from ${src}; softmax(new Float32Array(1 << 20), { cols: 4096 }); console.log(backendInfo().threads);`, { NUMEDGE_THREADS: "3" });
    expect(ok.stderr.toString()).toBe("");
    expect(ok.stdout.toString().trim()).toBe("3");
    expect(ok.exitCode).toBe(0);
    const bad = run(`import ${src};`, { NUMEDGE_THREADS: "many" });
    expect(bad.exitCode).not.toBe(0);
    expect(bad.stderr.toString()).toBe('numedge: NUMEDGE_THREADS must be an integer from 1 to 256, got "many"\n');
  });

  test("without shared memory: one thread, one line in backendInfo(), ops still run", () => {
    const p = run(`globalThis.SharedArrayBuffer = undefined;
      const { backendInfo, setThreads, softmax } = await import(${src});
      setThreads(4);
      const y = softmax(new Float32Array([0, 0]), { cols: 2 });
      console.log(JSON.stringify([backendInfo().threads, backendInfo().threadsNote, y[0]]));`);
    expect(p.stderr.toString()).toBe("");
    const [n, note, y] = JSON.parse(p.stdout.toString());
    expect(n).toBe(1);
    expect(note).toMatch(/^one thread: /);
    expect(y).toBe(0.5);
  });
});
