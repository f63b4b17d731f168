// The dense family through the worker pool: wide GEMMs (split by columns), orthogonalize (fixed chunks, partial sums
// added in chunk order) and maxInto (chunk maxima) give the same bytes on 1, 2, 3 and 4 threads, at sizes around
// the pool's thresholds, with NaN, ±Infinity and -0; and stay within their bounds against the reference.
import { afterAll, describe, expect, test } from "bun:test";
import { matmul, orthogonalize, setBackend, setThreads, softmax, threads } from "numedge";
import { poolStats } from "../src/backends/wasm/pool.ts";
import { maxInto } from "../src/ops/track.ts";
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

describe("orthogonalize over fixed chunks", () => {
  // f32: one chunk below 32768 elements (256 KiB of w and g), else chunks of 8192; f64: 16384, chunks of 4096
  const sizes = { Float32Array: [1, 3, 32767, 32768, 8192 * 5 + 1, (1 << 20) + 3], Float64Array: [1, 5, 16383, 16384, 4096 * 7 - 1, 300001] };
  for (const Ctor of [Float32Array, Float64Array])
    test(`${Ctor.name}: same bytes on 1-4 threads; within the ⊥Grad tests' bound of the reference`, async () => {
      const ns = sizes[Ctor.name as keyof typeof sizes], ws = ns.map((n) => Ctor.from(f32(n))), gs = ns.map((n) => Ctor.from(f32(n)));
      gs.forEach((g, j) => { for (let i = 0; i < g.length; i++) g[i] = g[i]! + 0.3 * ws[j]![i]!; });
      const got = await sameOnEveryPool(() => ws.map((w, j) => { const g = gs[j]!.slice(); orthogonalize(w, g); return g; }));
      const tol = Ctor === Float32Array ? 1e-6 : 1e-13;
      ws.forEach((w, j) => {
        const want = gs[j]!.slice(), g = got[j] as Float32Array | Float64Array;
        underReference(() => orthogonalize(w, want));
        let worst = 0, norm = 0;
        for (let i = 0; i < g.length; i++) [worst, norm] = [Math.max(worst, Math.abs(g[i]! - want[i]!)), norm + want[i]! ** 2];
        norm = Math.sqrt(norm);
        expect(worst).toBeLessThanOrEqual(tol * norm);
        if (g.length < (Ctor === Float32Array ? 32768 : 16384)) expect(bytes(g)).toEqual(bytes(want)); // one chunk: the reference's sums
      });
    }, 60000);

  test("NaN, ±Infinity, -0 and zero weights: the same bytes on every pool", async () => {
    const n = 8192 * 6 + 5, w = f32(n), zero = new Float32Array(n), g = f32(n);
    const cases = SPECIALS.map((v, j) => { const x = w.slice(); x[8192 * (j + 1) - (j % 2)] = v; return x; }); // at chunk edges
    const out = await sameOnEveryPool(() => [...cases, zero].flatMap((x) => {
      const g1 = g.slice(), g2 = x.slice();
      orthogonalize(x, g1); // special in w
      orthogonalize(w, g2); // special in g
      return [g1, g2];
    }));
    expect(Number.isNaN((out[0] as Float32Array)[0])).toBe(true);
    expect(bytes(out[out.length - 2]!)).toEqual(bytes(g)); // zero weights: g unchanged
  });
});

describe("maxInto over chunk maxima", () => {
  /** max over src[from, from + n) into dst[at] in one JS pass, as the kernel defines it (the first NaN, dst's first;
   *  else the first of equal maxima), as f64 bytes; NaN bits come from where the NaN was. */
  function expected(d0: number, src: Float32Array | Float64Array, abs: boolean): number[] {
    const dst = new Float64Array([d0]);
    let at = -1;
    for (let i = 0; i < src.length && dst[0] === dst[0] && at < 0; i++) {
      const v = abs ? Math.abs(src[i]!) : src[i]!;
      if (v !== v) at = i;
      else if (v > dst[0]!) dst[0] = v;
    }
    if (at < 0) return bytes(dst);
    const one = src.subarray(at, at + 1), d = new Float64Array([-Infinity]);
    maxInto(d, 0, one, 0, 1, abs); // the kernel's own f32 -> f64 NaN conversion
    return bytes(d);
  }
  /** A NaN with its sign and payload at s[i] (JS numbers carry only the canonical NaN). */
  const setNaN = (s: Float32Array | Float64Array, i: number, negative: boolean, payload: number) => {
    if (s instanceof Float32Array) new Uint32Array(s.buffer, s.byteOffset)[i] = (negative ? 0xffc00000 : 0x7fc00000) + payload;
    else new BigUint64Array(s.buffer, s.byteOffset)[i] = (negative ? 0xfff8000000000000n : 0x7ff8000000000000n) + BigInt(payload);
  };

  for (const Ctor of [Float32Array, Float64Array])
    test(`${Ctor.name}: same bytes on 1-4 threads, as one sequential pass, specials included`, async () => {
      const n = (1 << 19) + 3, base = Ctor.from(f32(n));
      const srcs: Array<[string, Float32Array | Float64Array]> = [["random", base]];
      const put = (name: string, at: number[], vs: number[]) => { const s = base.slice(); at.forEach((i, j) => (s[i] = vs[j]!)); srcs.push([name, s]); };
      put("two NaNs (different bits), -Inf first", [0], [-Infinity]);
      setNaN(srcs[1]![1], 70000, true, 1);
      setNaN(srcs[1]![1], 300001, false, 2);
      put("NaN last", [n - 1], [NaN]);
      put("+Inf in a late chunk", [n - 5, 17], [Infinity, -Infinity]);
      put("ties: the max twice", [100, 400000], [5, 5]);
      const zeros = new Ctor(n).fill(-Infinity);
      zeros[65537] = -0;
      zeros[300000] = 0;
      srcs.push(["-0 before +0", zeros], ["all -Inf", new Ctor(n).fill(-Infinity)]);
      const dsts = [-Infinity, 0.5, 7, NaN];
      const run = () => srcs.flatMap(([, s]) => [false, true].flatMap((abs) => dsts.map((d) => {
        const dst = new Float64Array([1, d, 2]);
        maxInto(dst, 1, s, 0, s.length, abs);
        return dst;
      })));
      const out = await sameOnEveryPool(run);
      let i = 0;
      for (const [name, s] of srcs) for (const abs of [false, true]) for (const d of dsts) {
        const dst = out[i++] as Float64Array;
        expect([name, abs, d, bytes(dst.subarray(1, 2))]).toEqual([name, abs, d, expected(d, s, abs)]);
        expect([dst[0], dst[2]]).toEqual([1, 2]);
      }
    }, 60000);

  test("short and offset ranges: length 1, 3 and a range that starts and ends mid-array", async () => {
    const s = f32(2000003);
    s[1500000] = -0;
    const out = await sameOnEveryPool(() => [[0, 1], [5, 3], [1001, 1500000], [0, 0]].map(([from, n]) => {
      const dst = new Float64Array([-Infinity]);
      maxInto(dst, 0, s, from!, n!, true);
      return dst;
    }));
    expect((out[0] as Float64Array)[0]).toBe(Math.abs(s[0]!));
    expect((out[3] as Float64Array)[0]).toBe(-Infinity);
  });
});
