// The dense family through the worker pool: wide GEMMs (split by columns) give the same bytes on 1, 2, 3 and 4
// threads, with NaN, ±Infinity and -0, and stay within their bound against the reference.
import { afterAll, describe, expect, test } from "bun:test";
import { matmul, setBackend, setThreads, softmax, threads } from "numedge";
import { poolStats } from "../src/backends/wasm/pool.ts";
import { uniform } from "./helpers.ts";
import { underReference } from "./parity.ts";

await setBackend("wasm");
const initial = threads();
afterAll(() => setThreads(initial));

const r = uniform(11);
const f32 = (n: number) => Float32Array.from({ length: n }, () => r() * 2 - 1);
const bytes = (a: ArrayBufferView) => Array.from(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
const SPECIALS = [NaN, Infinity, -Infinity, -0, 0];

/** Outputs of fn (as bytes) at 1..4 threads, workers up; expects them equal and returns the one-thread ones. Workers
 *  must have run chunks unless `split` is false (on a loaded machine the caller may claim them all: a few tries). */
async function sameOnEveryPool(fn: () => ArrayBufferView[], split = true): Promise<ArrayBufferView[]> {
  setThreads(1);
  const first = fn(), one = first.map(bytes);
  for (const t of [2, 3, 4]) {
    setThreads(t);
    softmax(new Float32Array(1 << 20), { cols: 4096 }); // starts the workers
    for (let i = 0; i < 200 && poolStats().ready < t - 1; i++) await new Promise((res) => setTimeout(res, 10));
    let ran = 0;
    for (let i = 0; i < (split ? 5 : 1) && ran === 0; i++) {
      const c0 = poolStats().workerChunks;
      fn().forEach((o, j) => expect(bytes(o)).toEqual(one[j]!));
      ran = poolStats().workerChunks - c0;
    }
    expect(ran > 0).toBe(split);
  }
  return first;
}

describe("wide GEMMs split by columns", () => {
  /** |got - want| <= (k + 1) 2^-23 (|c0| + Σ|a||b|): the documented matmul bound (docs/numerics.md). */
  function expectGemmBound(got: Float32Array, want: Float64Array, a: Float32Array, b: Float32Array, c0: Float32Array | null,
    m: number, k: number, n: number, ta: boolean, tb: boolean) {
    let bad = 0;
    for (let i = 0; i < m; i++)
      for (let j = 0; j < n; j++) {
        let s = c0 ? Math.abs(c0[i * n + j]!) : 0;
        for (let p = 0; p < k; p++) s += Math.abs(ta ? a[p * m + i]! : a[i * k + p]!) * Math.abs(tb ? b[j * k + p]! : b[p * n + j]!);
        if (!(Math.abs(got[i * n + j]! - want[i * n + j]!) <= (k + 1) * 2 ** -23 * s)) bad++;
      }
    expect(bad).toBe(0);
  }

  // n past one 1024-column block and not a multiple of 8; m = 1 (a vector), 5 (a 4-row tail), 8 (an LM head step)
  for (const [m, k, n] of [[8, 300, 9001], [1, 513, 4099], [5, 64, 20003]] as const)
    test(`[${m},${k}]x[${k},${n}], all transposes, accumulate: same bytes on 1-4 threads, within the bound`, async () => {
      const a = f32(m * k), b = f32(k * n), c0 = f32(m * n);
      const cases = [false, true].flatMap((ta) => [false, true].flatMap((tb) => [false, true].map((acc) => ({ ta, tb, acc }))));
      const run = () => cases.map(({ ta, tb, acc }) => matmul(a, b, { m, k, n, transA: ta, transB: tb, ...(acc ? { accumulate: true, out: c0.slice() } : {}) }));
      const got = await sameOnEveryPool(run);
      for (const [i, { ta, tb, acc }] of [[0, cases[0]!], [7, cases[7]!]] as const) {
        const want = underReference(() => matmul(Float64Array.from(a), Float64Array.from(b),
          { m, k, n, transA: ta, transB: tb, ...(acc ? { accumulate: true, out: Float64Array.from(c0) } : {}) }));
        expectGemmBound(got[i] as Float32Array, want, a, b, acc ? c0 : null, m, k, n, ta, tb);
      }
    }, 60000);

  test("NaN, ±Infinity and -0 land in the same columns on every pool", async () => {
    const [m, k, n] = [4, 40, 6007], a = f32(m * k), b = f32(k * n);
    for (let i = 0; i < b.length; i += 1031) b[i] = SPECIALS[i % 5]!;
    a[3] = -0;
    const [c] = await sameOnEveryPool(() => [matmul(a, b, { m, k, n })]);
    expect(Number.isNaN((c as Float32Array)[0])).toBe(true); // b[0] = NaN
  });

  test("tall GEMMs still split by rows, and a GEMM below the pool's threshold stays on the caller", async () => {
    const a = f32(1030 * 64), b = f32(64 * 257);
    await sameOnEveryPool(() => [matmul(a, b, { m: 1030, k: 64, n: 257 }), matmul(b, a.subarray(0, 257 * 9), { m: 64, k: 257, n: 9, transA: true })]);
    const s = f32(9 * 7);
    await sameOnEveryPool(() => [matmul(s, s, { m: 9, k: 7, n: 9, transB: true })], false);
  });
});
