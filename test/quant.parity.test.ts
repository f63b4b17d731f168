// Quant family: every backend in parityBackends against the reference on random and adversarial inputs, across
// SIMD tails (16-element steps, 32-element 4-bit dequant steps), block edges and partial blocks. The wasm kernels
// round like the float32 reference, so codes, absmax, scales and bytes must match exactly (pb.tol = 1); a
// backend with tol > 1 may differ by one code step on a fraction tol * 1e-4 of the elements.
import { beforeAll, describe, expect, test } from "bun:test";
import {
  Adam8bit, FP4, NF4, Rng, alloc, dequantize4bit, dequantizeAffine, dequantizeBlockwise, dequantizeQ4_0,
  dequantizeQ8_0, dynamicMap, linearMap, quantize4bit, quantizeAffine, quantizeBlockwise, quantizeQ4_0, quantizeQ8_0,
  type QuantizeBlockwiseOptions,
} from "numedge";
import { searchKind } from "../src/backends/wasm/quant.ts";
import { parityBackends, underReference } from "./parity.ts";

// ---- Tolerances ----
const TOL = {
  /** share of elements whose code may differ (by at most one step) for tol > 1 backends, per unit of tol */
  codeMismatchPerTol: 1e-4,
};

const SIZES = [1, 2, 3, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 255, 257, 1000, 4097, 9000];
/** tfjs engines run the same checks on fewer sizes (their quant paths are slower) */
const SIZES_SHORT = [1, 17, 33, 65, 257, 4097];
const T = 120_000;
const BLOCKS: Array<number | "tensor"> = [32, 64, 256, 4096, "tensor"];

type Gen = (rng: Rng, n: number) => Float32Array;
const code8 = dynamicMap();
const GENS: Record<string, Gen> = {
  normal: (rng, n) => Float32Array.from({ length: n }, () => rng.normal()),
  huge: (rng, n) => Float32Array.from({ length: n }, () => (rng.next() < 0.5 ? -1 : 1) * 10 ** rng.uniform(-30, 30)),
  subnormal: (rng, n) => Float32Array.from({ length: n }, () => (rng.next() < 0.5 ? -1 : 1) * rng.next() * 1e-39),
  // exact code values and midpoints of the dynamic map, with a 1 in front so absmax is 1
  ties: (rng, n) => Float32Array.from({ length: n }, (_, i) => {
    if (i % 32 === 0) return 1;
    const j = rng.int(255);
    return rng.next() < 0.5 ? code8[j]! : Math.fround((code8[j]! + code8[j + 1]!) / 2);
  }),
  zeros: (rng, n) => Float32Array.from({ length: n }, (_, i) => (Math.floor(i / 64) % 2 ? rng.normal() : rng.next() < 0.5 ? 0 : -0)),
  constant: (_rng, n) => new Float32Array(n).fill(-0.3),
  heavy: (rng, n) => Float32Array.from({ length: n }, () => rng.normal() / Math.max(1e-3, rng.next()) ** 2),
};

function mismatches(a: ArrayLike<number>, b: ArrayLike<number>, maxStep: number): number {
  expect(a.length).toBe(b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) {
    if (Object.is(a[i], b[i])) continue;
    d++;
    if (maxStep >= 0) expect(Math.abs(a[i]! - b[i]!)).toBeLessThanOrEqual(maxStep);
  }
  return d;
}

for (const pb of parityBackends) {
  describe(`quant parity [${pb.name}]`, () => {
    beforeAll(pb.setup);
    const sizes = pb.tol === 1 ? SIZES : SIZES_SHORT;
    const allowed = (n: number) => (pb.tol === 1 ? 0 : Math.ceil(n * TOL.codeMismatchPerTol * pb.tol));

    test("quantizeBlockwise / dequantizeBlockwise: dynamic, unsigned, linear, custom codes; every size and block", () => {
      const rng = new Rng(1);
      const custom = Float32Array.from({ length: 256 }, (_, i) => { const t = (i - 127) / 128; return Math.sign(t) * Math.abs(t) ** 1.5; });
      const tanh = Float32Array.from({ length: 256 }, (_, i) => Math.tanh((i - 127.5) / 40) / Math.tanh(127.5 / 40)); // crowded ends: search
      const dense = linearMap().map((v, i, a) => (i > 200 && i < 206 ? a[200]! : v)); // a run of 6 equal values: no bucket table, the search kernel
      expect(searchKind(dense)).toBe("search");
      expect(searchKind(custom)).toBe("lut");
      expect(searchKind(tanh)).toBe("search");
      const codes: Array<[string, QuantizeBlockwiseOptions]> = [
        ["dynamic", {}], ["dynamic-unsigned", { code: "dynamic-unsigned" }], ["linear", { code: "linear" }],
        ["custom", { code: custom }], ["search", { code: dense }], ["tanh", { code: tanh }],
      ];
      for (const [gname, gen] of Object.entries(GENS)) {
        for (const n of sizes) {
          const x = gen(rng, n);
          const src = gname === "normal" || gname === "heavy" ? codes : codes.slice(0, 1);
          for (const [cname, o] of src) {
            for (const blockSize of BLOCKS) {
              const oo = { ...o, blockSize };
              const a = quantizeBlockwise(x, oo), b = underReference(() => quantizeBlockwise(x, oo));
              const label = `${gname} n=${n} ${cname} bs=${blockSize}`;
              expect(mismatches(a.absmax, b.absmax, -1), label).toBe(0);
              expect(mismatches(a.codes, b.codes, 1), label).toBeLessThanOrEqual(allowed(n));
              const ya = dequantizeBlockwise(b), yb = underReference(() => dequantizeBlockwise(b));
              expect(mismatches(ya, yb, -1), label).toBe(0);
            }
          }
        }
      }
    }, T);

    test("stochastic rounding: same draws, same codes", () => {
      const rng = new Rng(2);
      for (const n of [1, 17, 100, 4097]) {
        const x = GENS.normal!(rng, n);
        for (const seed of [0, 1, 123456789]) {
          const o = { blockSize: 64, rounding: "stochastic" as const, seed };
          const a = quantizeBlockwise(x, o), b = underReference(() => quantizeBlockwise(x, o));
          expect(mismatches(a.codes, b.codes, 1)).toBeLessThanOrEqual(allowed(n));
        }
      }
    }, T);

    test("4-bit NF4 / FP4 (plain and double-quantized), odd lengths", () => {
      const rng = new Rng(3);
      for (const [gname, gen] of Object.entries(GENS)) {
        for (const n of sizes) {
          const x = gen(rng, n);
          for (const type of ["nf4", "fp4"] as const) {
            for (const blockSize of [32, 64, 4096, "tensor" as const]) {
              for (const doubleQuant of n > 300 ? [false, true] : [false]) {
                const o = { type, blockSize, doubleQuant };
                const a = quantize4bit(x, o), b = underReference(() => quantize4bit(x, o));
                const label = `${gname} n=${n} ${type} bs=${blockSize} dq=${doubleQuant}`;
                expect(mismatches(a.packed, b.packed, -1), label).toBeLessThanOrEqual(allowed(n));
                const ya = dequantize4bit(b), yb = underReference(() => dequantize4bit(b));
                expect(mismatches(ya, yb, -1), label).toBe(0);
              }
            }
          }
        }
      }
      expect(NF4.length + FP4.length).toBe(32);
    }, T);

    test("affine: computed and given scales, signed and unsigned, tensor / row / block", () => {
      const rng = new Rng(4);
      for (const [gname, gen] of Object.entries(GENS)) {
        for (const n of sizes) {
          const x = gen(rng, n);
          for (const signed of [true, false]) {
            // a block past 2^31 - 1 elements is the whole array (cuda wrapped it into a negative int; wasm ran out of memory)
            const opts = [{ axis: "tensor" as const }, { axis: "block" as const, blockSize: 16 }, { axis: "block" as const, blockSize: 100 }, { axis: "block" as const, blockSize: 2 ** 31 },
              ...(n % 5 === 0 ? [{ axis: "row" as const, cols: 5 }] : [])];
            for (const o of opts) {
              const oo = { bits: 8 as const, signed, ...o };
              const a = quantizeAffine(x, oo), b = underReference(() => quantizeAffine(x, oo));
              const label = `${gname} n=${n} signed=${signed} ${JSON.stringify(o)}`;
              expect(mismatches(a.scale, b.scale, -1), label).toBe(0);
              expect(mismatches(a.zeroPoint, b.zeroPoint, -1), label).toBe(0);
              expect(mismatches(a.q, b.q, 1), label).toBeLessThanOrEqual(allowed(n));
              expect(mismatches(dequantizeAffine(b), underReference(() => dequantizeAffine(b)), -1), label).toBe(0);
            }
          }
          // given scales that put x / scale on exact halves
          const scale = new Float32Array([0.5]);
          const xs = Float32Array.from({ length: n }, () => (rng.int(1200) - 600) * 0.25);
          for (const signed of [true, false]) {
            const oo = { bits: 8 as const, signed, scale, zeroPoint: new Int32Array([signed ? -3 : 130]) };
            expect(mismatches(quantizeAffine(xs, oo).q, underReference(() => quantizeAffine(xs, oo)).q, 1)).toBeLessThanOrEqual(allowed(n));
          }
        }
      }
    }, T);

    test("ggml Q8_0 / Q4_0 bytes and dequantization", () => {
      const rng = new Rng(5);
      for (const [gname, gen] of Object.entries(GENS)) {
        for (const blocks of [1, 2, 7, 40]) {
          const x = gen(rng, blocks * 32);
          for (const [q, dq] of [[quantizeQ8_0, dequantizeQ8_0], [quantizeQ4_0, dequantizeQ4_0]] as const) {
            const a = q(x), b = underReference(() => q(x));
            expect(mismatches(a, b, -1), `${gname} ${blocks}`).toBeLessThanOrEqual(allowed(x.length));
            expect(mismatches(dq(b, x.length), underReference(() => dq(b, x.length)), -1)).toBe(0);
          }
        }
      }
    }, T);

    test("Adam8bit: dynamic and linear, block-wise and per tensor, NaN gradients, weight decay — 6 steps", () => {
      const rng = new Rng(6);
      const sizes = [5000, 4096, 300, 9001];
      for (const o of [{}, { code: "linear" as const }, { blockSize: "tensor" as const }, { weightDecay: 0.1, blockSize: 64 }]) {
        const init = sizes.map((n) => Float32Array.from({ length: n }, () => rng.normal()));
        const pa = init.map((p) => p.slice()), pr = init.map((p) => p.slice());
        const oa = new Adam8bit(pa, { lr: 0.01, ...o }), orf = new Adam8bit(pr, { lr: 0.01, ...o });
        for (let s = 0; s < 6; s++) {
          const g = sizes.map((n) => Float32Array.from({ length: n }, (_, i) => (i % 997 === 3 && s === 2 ? NaN : i % 1999 === 5 && s === 4 ? -Infinity : rng.normal() * (1 + (i % 7)))));
          const gk = g.map((v) => v.slice());
          oa.step(g);
          underReference(() => orf.step(g));
          g.forEach((v, k) => expect(mismatches(v, gk[k]!, -1)).toBe(0)); // grads untouched
        }
        pa.forEach((p, k) => {
          // every backend's 8-bit Adam is exact (tfjs engines run wasm's kernel for it)
          expect(mismatches(p, pr[k]!, -1), `${JSON.stringify(o)} tensor ${k}`).toBe(0);
          const ma = oa.moments(k), mr = orf.moments(k);
          expect(mismatches(ma.m, mr.m, -1)).toBeLessThanOrEqual(allowed(p.length) * 10);
          expect(mismatches(ma.v, mr.v, -1)).toBeLessThanOrEqual(allowed(p.length) * 10);
        });
      }
    }, T);

    test("arrays in WASM memory (alloc) give the same results; inputs are not written", () => {
      const rng = new Rng(7);
      const n = 5000;
      const x = alloc(n);
      x.set(GENS.normal!(rng, n));
      const keep = x.slice();
      const a = quantizeBlockwise(x, { blockSize: 128 }), b = quantizeBlockwise(keep, { blockSize: 128 });
      expect(a.codes).toEqual(b.codes);
      expect(quantize4bit(x).packed).toEqual(quantize4bit(keep).packed);
      expect(quantizeAffine(x, { bits: 8, axis: "block", blockSize: 64 }).q).toEqual(quantizeAffine(keep, { bits: 8, axis: "block", blockSize: 64 }).q);
      const out = alloc(n);
      dequantizeBlockwise(a, out);
      expect(out).toEqual(dequantizeBlockwise(b));
      expect(x).toEqual(keep);
    }, T);
  });
}
