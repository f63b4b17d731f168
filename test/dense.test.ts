// Dense family: GEMM, ReLU, embedding gather, AdamW vs the f64 reference, golden values, bad input.
import { beforeAll, describe, expect, test } from "bun:test";
import {
  NumedgeError, adamwStep, alloc, embeddingSum, embeddingSumBackward, matmul, relu, reluBackward,
} from "numedge";
import { gemmBound, outsideBound } from "./helpers.ts";
import { parityBackends, underReference } from "./parity.ts";

function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
function randArr<T extends Float32Array | Float64Array>(C: new (n: number) => T, n: number, seed: number, scale = 1): T {
  const r = rng(seed), a = new C(n);
  for (let i = 0; i < n; i++) a[i] = (r() * 2 - 1) * scale;
  return a;
}

function expectWithin(got: ArrayLike<number>, want: ArrayLike<number>, bound: ArrayLike<number>, tol: number, what: string) {
  expect(outsideBound(got, want, (i) => tol * bound[i]!, what)).toBe("");
}

const SIZES = [1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65];

for (const pb of parityBackends) {
  describe(`dense [${pb.name}]`, () => {
    beforeAll(pb.setup);

    test("matmul golden 2x3 @ 3x2, all transpose combos", () => {
      const A = [1, 2, 3, 4, 5, 6], AT = [1, 4, 2, 5, 3, 6]; // [2,3] and its [3,2] storage
      const B = [7, 8, 9, 10, 11, 12], BT = [7, 9, 11, 8, 10, 12]; // [3,2] and its [2,3] storage
      const want = [58, 64, 139, 154];
      for (const ta of [false, true])
        for (const tb of [false, true]) {
          const y = matmul(new Float32Array(ta ? AT : A), new Float32Array(tb ? BT : B), { m: 2, k: 3, n: 2, transA: ta, transB: tb });
          expect(Array.from(y)).toEqual(want);
        }
    });

    for (const ta of [false, true])
      for (const tb of [false, true])
        test(`matmul f32 vs reference, transA=${ta} transB=${tb}, sizes across SIMD tails`, () => {
          let seed = 1;
          const cases: [number, number, number][] = [];
          for (const m of SIZES) for (const n of [1, 3, 4, 5, 8, 9, 16, 17, 33]) cases.push([m, (m * 7 + n) % 19 + 1, n]);
          for (const k of SIZES) cases.push([5, k, 9], [9, k, 17]); // every k tail with both edge tiles
          for (const n of [2, 6, 7, 12, 15, 31, 32, 63, 64, 65]) cases.push([7, 11, n]);
          // Grok-like shapes, k past the 256-deep k-slice (accumulation across slices), m past the 32-row block.
          cases.push([65, 64, 65], [33, 200, 113], [17, 113, 200], [9, 200, 200], [70, 600, 13], [200, 300, 113], [3, 513, 9]);
          for (const [m, k, n] of cases) {
            const a = randArr(Float32Array, m * k, seed++), b = randArr(Float32Array, k * n, seed++);
            const c0 = randArr(Float32Array, m * n, seed++);
            for (const acc of [false, true]) {
              const out = acc ? c0.slice() : undefined;
              const got = matmul(a, b, { m, k, n, transA: ta, transB: tb, accumulate: acc, out });
              const want = underReference(() => matmul(Float64Array.from(a), Float64Array.from(b),
                { m, k, n, transA: ta, transB: tb, accumulate: acc, out: acc ? Float64Array.from(c0) : undefined }));
              expectWithin(got, want, gemmBound(a, b, acc ? c0 : null, m, k, n, ta, tb, 2 ** -23), pb.tol, `m${m} k${k} n${n} acc${acc}`);
            }
          }
        });

    test("matmul is exact where every partial sum is an integer the type holds: a dropped or repeated term, or inputs rounded to TF32, fail it", () => {
      // 12-bit integers up to 4094 times {-1, 0, 1} over k = 4097, plus |c0| <= 1000: every partial sum is below 2^24, so
      // any order of f32 additions is exact, while TF32 (10 stored mantissa bits) rounds the odd values above 2048; f64:
      // 30-bit integers
      const r = rng(31);
      for (const f64 of [false, true]) {
        const make = (len: number, f: (i: number) => number) => { const x = f64 ? new Float64Array(len) : new Float32Array(len); for (let i = 0; i < len; i++) x[i] = f(i); return x as Float32Array; };
        const m = 3, k = 4097, n = 5, amax = f64 ? 2 ** 30 - 1 : 4094;
        const a = make(m * k, () => Math.round((r() * 2 - 1) * amax)), b = make(k * n, () => Math.floor(r() * 3) - 1);
        const c0 = make(m * n, () => Math.round((r() * 2 - 1) * 1000));
        const want = Array.from({ length: m * n }, (_, q) => {
          let sum = c0[q]!;
          for (let p = 0; p < k; p++) sum += a[Math.floor(q / n) * k + p]! * b[p * n + (q % n)]!;
          return sum;
        });
        for (const ta of [false, true]) for (const tb of [false, true]) {
          const A = ta ? make(m * k, (i) => a[(i % m) * k + Math.floor(i / m)]!) : a; // [k, m] storage of the same matrix
          const B = tb ? make(k * n, (i) => b[(i % k) * n + Math.floor(i / k)]!) : b; // [n, k] storage
          const got = matmul(A, B, { m, k, n, transA: ta, transB: tb, accumulate: true, out: c0.slice() });
          expect(Array.from(got), `${f64 ? "f64" : "f32"} transA=${ta} transB=${tb}`).toEqual(want);
        }
      }
    });

    test("matmul f64 path within the f64 bound, all transpose combos", () => {
      const m = 17, k = 33, n = 9;
      const a = randArr(Float64Array, m * k, 5), b = randArr(Float64Array, k * n, 6);
      for (const ta of [false, true])
        for (const tb of [false, true]) {
          const got = matmul(a, b, { m, k, n, transA: ta, transB: tb });
          const want = underReference(() => matmul(a, b, { m, k, n, transA: ta, transB: tb }));
          expectWithin(got, want, gemmBound(a, b, null, m, k, n, ta, tb, 2 ** -52), pb.tol, `f64 ${ta} ${tb}`);
        }
    });

    test("matmul does not mutate inputs; works on alloc() arrays", () => {
      const m = 9, k = 17, n = 5;
      const a = randArr(Float32Array, m * k, 7), b = randArr(Float32Array, k * n, 8);
      const a0 = a.slice(), b0 = b.slice();
      const y = matmul(a, b, { m, k, n });
      expect(a).toEqual(a0);
      expect(b).toEqual(b0);
      const wa = alloc(m * k), wb = alloc(k * n), wy = alloc(m * n);
      wa.set(a); wb.set(b);
      matmul(wa, wb, { m, k, n, out: wy });
      expect(Array.from(wy)).toEqual(Array.from(y));
    });

    test("matmul propagates NaN and Inf", () => {
      const a = new Float32Array([NaN, 1, Infinity, 0]), b = new Float32Array([1, 1, 1, 1]);
      const y = matmul(a, b, { m: 2, k: 2, n: 2 });
      expect(Number.isNaN(y[0])).toBe(true);
      expect(y[2]).toBe(Infinity);
    });

    test("matmul with tiny operands (products in the f32 denormal range) stays within the bound", () => {
      const m = 9, k = 37, n = 13;
      const a = randArr(Float32Array, m * k, 21, 1e-20), b = randArr(Float32Array, k * n, 22, 1e-20);
      for (const [ta, tb] of [[false, false], [true, true]] as const) {
        const got = matmul(a, b, { m, k, n, transA: ta, transB: tb });
        const want = underReference(() => matmul(Float64Array.from(a), Float64Array.from(b), { m, k, n, transA: ta, transB: tb }));
        // Denormal results carry an absolute error of up to k * 2^-150 on top of the relative bound.
        const bound = gemmBound(a, b, null, m, k, n, ta, tb, 2 ** -23).map((v) => v + k * 2 ** -150);
        expectWithin(got, want, bound, pb.tol, "tiny");
      }
    });

    test("ops leave their read-only inputs unchanged", () => {
      const x = randArr(Float32Array, 37, 31), dy = randArr(Float32Array, 37, 32);
      const x0 = x.slice(), dy0 = dy.slice();
      relu(x); reluBackward(dy, x);
      expect(x).toEqual(x0); expect(dy).toEqual(dy0);
      const w = randArr(Float32Array, 5 * 3, 33), w0 = w.slice(), idx = new Int32Array([0, 4, 2, 2]), idx0 = idx.slice();
      const h = embeddingSum(w, idx, { cols: 3, per: 2 });
      expect(w).toEqual(w0); expect(idx).toEqual(idx0);
      const dw = new Float32Array(15);
      embeddingSumBackward(h, idx, dw, { cols: 3, per: 2 });
      expect(idx).toEqual(idx0);
      const g = randArr(Float32Array, 15, 34), g0 = g.slice();
      adamwStep(w, g, new Float32Array(15), new Float32Array(15), { lr: 0.1, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0, step: 1 });
      expect(g).toEqual(g0);
      expect(w).not.toEqual(w0); // in place on w, as documented
    });

    test("matmul bad input", () => {
      const a = new Float32Array(6), b = new Float32Array(6);
      const bad = (f: () => unknown, code: string, re: RegExp) => {
        try { f(); throw new Error("no throw"); } catch (e) {
          expect(e).toBeInstanceOf(NumedgeError);
          expect((e as NumedgeError).code).toBe(code as never);
          expect((e as Error).message).toMatch(re);
        }
      };
      bad(() => matmul(a, b, { m: 2, k: 2, n: 3 }), "shape", /a\.length 6/);
      bad(() => matmul(a, b, { m: 2, k: 3, n: 3 }), "shape", /b\.length 6/);
      bad(() => matmul(a, new Float64Array(6) as unknown as Float32Array, { m: 2, k: 3, n: 2 }), "dtype", /b must be a Float32Array/);
      bad(() => matmul(a, b, { m: 0, k: 3, n: 2 }), "range", /m must be/);
      bad(() => matmul(a, b, { m: 2, k: 3, n: 2.5 }), "range", /n must be an integer/);
      bad(() => matmul(a, b, { m: 2, k: 3, n: 2, accumulate: true }), "shape", /accumulate/);
      bad(() => matmul(a, b, { m: 2, k: 3, n: 2, out: new Float32Array(3) }), "shape", /out\.length 3/);
      bad(() => matmul(a, b, { m: 2, k: 3, n: 2, out: a.subarray(0, 4) }), "shape", /out overlaps a/);
      bad(() => matmul(a, b, { m: 2, k: 3, n: 2, transA: 1 as never }), "dtype", /transA must be a boolean/);
      bad(() => matmul([1] as never, b, { m: 1, k: 1, n: 1 }), "dtype", /a must be a Float32Array/);
      bad(() => matmul(a, b, undefined as never), "shape", /options/);
    });

    test("relu and reluBackward: values, in place, tails, special values", () => {
      for (const n of [1, 3, 4, 5, 17, 1001]) {
        const x = randArr(Float32Array, n, n);
        x[0] = NaN;
        if (n > 3) { x[1] = -0; x[2] = Infinity; x[3] = -Infinity; }
        const y = relu(x);
        const want = underReference(() => relu(x));
        expect(Array.from(y)).toEqual(Array.from(want));
        expect(Number.isNaN(y[0])).toBe(true);
        if (n > 3) { expect(Object.is(y[1], 0)).toBe(true); expect(y[2]).toBe(Infinity); expect(y[3]).toBe(0); }
        const dy = randArr(Float32Array, n, n + 100);
        if (n > 3) dy[3] = Infinity;
        const dx = reluBackward(dy, x);
        expect(Array.from(dx)).toEqual(Array.from(underReference(() => reluBackward(dy, x))));
        for (let i = 0; i < n; i++) expect(dx[i]).toBe(x[i]! > 0 ? dy[i]! : 0);
        const x2 = x.slice(); relu(x2, { out: x2 });
        expect(Array.from(x2)).toEqual(Array.from(y));
        const dy2 = dy.slice(); reluBackward(dy2, x, { out: dy2 });
        expect(Array.from(dy2)).toEqual(Array.from(dx));
      }
      const x64 = new Float64Array([-1, 2, -3]);
      expect(Array.from(relu(x64))).toEqual([0, 2, 0]);
      expect(() => reluBackward(new Float32Array(3), new Float32Array(4))).toThrow(/x\.length 4/);
      expect(() => relu(new Float32Array(4), { out: new Float64Array(4) as never })).toThrow(NumedgeError);
    });

    test("embeddingSum / backward vs reference, golden, repeated indices", () => {
      const w = new Float32Array([1, 2, 10, 20, 100, 200]); // [3, 2]
      const idx = new Int32Array([0, 2, 1, 1]);
      expect(Array.from(embeddingSum(w, idx, { cols: 2, per: 2 }))).toEqual([101, 202, 20, 40]);
      const dw = new Float32Array(6);
      embeddingSumBackward(new Float32Array([1, 2, 3, 4]), idx, dw, { cols: 2, per: 2 });
      expect(Array.from(dw)).toEqual([1, 2, 6, 8, 1, 2]);
      for (const cols of [1, 3, 4, 7, 200]) {
        const V = 13, per = 2, rows = 37;
        const wr = randArr(Float32Array, V * cols, cols);
        const r = rng(cols), ix = new Int32Array(rows * per);
        for (let i = 0; i < ix.length; i++) ix[i] = Math.floor(r() * V);
        const got = embeddingSum(wr, ix, { cols, per });
        const want = underReference(() => embeddingSum(wr, ix, { cols, per }));
        // per = 2: a single f32 rounding of the exact sum, so it equals the reference rounded to f32.
        expect(Array.from(got)).toEqual(Array.from(want));
        const dout = randArr(Float32Array, rows * cols, cols + 1);
        const g1 = new Float32Array(V * cols), g2 = new Float32Array(V * cols);
        embeddingSumBackward(dout, ix, g1, { cols, per });
        underReference(() => embeddingSumBackward(dout, ix, g2, { cols, per }));
        // Same order of f32 additions (rows in order) in both: bit-identical.
        expect(Array.from(g1)).toEqual(Array.from(g2));
      }
    });

    test("embeddingSumBackward matches reference within the summation bound", () => {
      const V = 11, cols = 9, per = 3, rows = 50;
      const r = rng(3), ix = new Int32Array(rows * per);
      for (let i = 0; i < ix.length; i++) ix[i] = Math.floor(r() * V);
      const dout = randArr(Float32Array, rows * cols, 4);
      const got = new Float32Array(V * cols), want = new Float64Array(V * cols), bound = new Float64Array(V * cols);
      embeddingSumBackward(dout, ix, got, { cols, per });
      underReference(() => embeddingSumBackward(Float64Array.from(dout), ix, want, { cols, per }));
      const cnt = new Float64Array(V);
      for (const v of ix) cnt[v]! += 1;
      for (let v = 0; v < V; v++) for (let c = 0; c < cols; c++) bound[v * cols + c] = cnt[v]! * 2 ** -24 * cnt[v]!;
      expectWithin(got, want, bound, 1, "embsum backward");
    });

    test("embedding bad input", () => {
      const w = new Float32Array(6);
      expect(() => embeddingSum(w, new Int32Array([0, 3]), { cols: 2, per: 2 })).toThrow(/idx\[1\] = 3 is outside \[0, 2\]/);
      expect(() => embeddingSum(w, new Int32Array([0, -1]), { cols: 2, per: 2 })).toThrow(/idx\[1\] = -1/);
      expect(() => embeddingSum(w, new Int32Array([0, 1, 2]), { cols: 2, per: 2 })).toThrow(/multiple of per 2/);
      expect(() => embeddingSum(w, [0, 1] as never, { cols: 2, per: 2 })).toThrow(/idx must be an Int32Array/);
      expect(() => embeddingSum(w, new Int32Array([0, 1]), { cols: 4, per: 2 })).toThrow(/multiple of cols 4/);
      expect(() => embeddingSumBackward(new Float32Array(3), new Int32Array([0, 1]), w, { cols: 2, per: 2 })).toThrow(/dout\.length 3/);
    });

    test("adamwStep: bit-exact vs the f32 op-order reference, several steps, wd on/off, tails", () => {
      for (const [n, wd, b2, eps] of [[1, 0, 0.99, 1e-25], [7, 0.1, 0.999, 1e-8], [1001, 1, 0.99, 1e-25]] as const) {
        const w1 = randArr(Float32Array, n, 1), w2 = w1.slice();
        const m1 = new Float32Array(n), v1 = new Float32Array(n), m2 = new Float32Array(n), v2 = new Float32Array(n);
        for (let step = 1; step <= 5; step++) {
          const g = randArr(Float32Array, n, 10 + step, 10 ** (step - 3));
          const o = { lr: 0.01, beta1: 0.9, beta2: b2, eps, weightDecay: wd, step };
          adamwStep(w1, g, m1, v1, o);
          underReference(() => adamwStep(w2, g, m2, v2, o));
        }
        expect(Array.from(w1)).toEqual(Array.from(w2));
        expect(Array.from(m1)).toEqual(Array.from(m2));
        expect(Array.from(v1)).toEqual(Array.from(v2));
      }
    });

    test("adamwStep: hand-computed first step (step 1 moves each weight by ~lr*sign(g))", () => {
      const w = new Float64Array([1, -2, 0.5]), g = new Float64Array([0.3, -0.1, 0]);
      const m = new Float64Array(3), v = new Float64Array(3);
      adamwStep(w, g, m, v, { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.5, step: 1 });
      // w = w*(1 - 0.05); m = 0.1 g; v = 0.001 g^2; mhat = g, vhat = g^2: w -= 0.1 * g / (|g| + 1e-8)
      const want = [1 * 0.95 - 0.1 * 0.3 / (0.3 + 1e-8), -2 * 0.95 + 0.1 * 0.1 / (0.1 + 1e-8), 0.5 * 0.95];
      for (let i = 0; i < 3; i++) expect(Math.abs(w[i]! - want[i]!)).toBeLessThan(1e-12);
      expect(m[0]).toBeCloseTo(0.03, 15);
      expect(v[1]).toBeCloseTo(1e-5, 15);
    });

    test("adamwStep bad input", () => {
      const a = () => new Float32Array(4);
      const o = { lr: 0.01, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0, step: 1 };
      expect(() => adamwStep(a(), a(), a(), a(), { ...o, step: 0 })).toThrow(/step must be in \[1/);
      expect(() => adamwStep(a(), a(), a(), a(), { ...o, beta1: 1 })).toThrow(/beta1 must be in \[0, 1\)/);
      expect(() => adamwStep(a(), a(), a(), a(), { ...o, eps: 0 })).toThrow(/eps must be in \(0/);
      expect(() => adamwStep(a(), a(), a(), a(), { ...o, lr: NaN })).toThrow(/lr must be/);
      expect(() => adamwStep(a(), new Float32Array(3), a(), a(), o)).toThrow(/g\.length 3/);
      const w = a();
      expect(() => adamwStep(w, a(), w, a(), o)).toThrow(/w overlaps m/);
      expect(() => adamwStep(a(), a(), a(), new Float64Array(4) as never, o)).toThrow(/v must be a Float32Array/);
    });
  });
}

describe("embeddingSum: out overlapping idx", () => {
  test("out sharing bytes with idx is a shape error naming both", () => {
    const w = Float32Array.from({ length: 8 }, (_, i) => i); // [4, 2]
    const ab = new ArrayBuffer(16);
    const idx = new Int32Array(ab, 0, 2), out = new Float32Array(ab, 4, 2);
    idx.set([1, 2]);
    let err: unknown;
    try { embeddingSum(w, idx, { cols: 2, per: 2, out }); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(NumedgeError);
    expect((err as NumedgeError).code).toBe("shape");
    expect((err as NumedgeError).message).toContain("idx");
    expect(Array.from(idx)).toEqual([1, 2]);
  });
});
