// The tfjs quant kernels (src/backends/tfjs/quant.ts) bit for bit against the reference on both tfjs engines:
// the host-computed decision thresholds + tf.searchSorted must reproduce the reference's linear argmin
// (ties to the lower index) exactly, including values on and next to every midpoint.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  Rng, dequantize4bit, dequantizeAffine, dequantizeBlockwise, dynamicMap, linearMap, quantize4bit, quantizeAffine,
  quantizeBlockwise, setBackend,
} from "numedge";
import { getBackend } from "../src/backends/index.ts";
import { referenceBackend } from "../src/backends/reference.ts";
import { codeSearch } from "../src/backends/tfjs/quant.ts";
import { underReference } from "./parity.ts";

const bits = (a: ArrayBufferView) => Array.from(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));

/** randn, plus exact code midpoints (scaled by an absmax of 1) and their float32 neighbours, zeros, -0. */
function adversarial(code: Float32Array, rng: Rng, n: number): Float32Array {
  const xs: number[] = [1, -1, 0, -0];
  const s = [...code].sort((a, b) => a - b);
  for (let j = 0; j + 1 < s.length; j++) {
    const mid = (s[j]! + s[j + 1]!) / 2, m = Math.fround(mid);
    const up = new Float32Array([m]), ui = new Int32Array(up.buffer);
    ui[0]! += 1; const m1 = up[0]!; ui[0]! -= 2; const m0 = up[0]!;
    for (const c of [m, m0, m1, s[j]!]) if (Number.isFinite(c) && Math.abs(c) <= 1) xs.push(c);
  }
  while (xs.length < n) xs.push(rng.normal() * 0.3);
  return Float32Array.from(xs.slice(0, n));
}

for (const engine of ["tfjs-wasm", "tfjs-cpu"] as const) {
  describe(`tfjs quant kernels [${engine}]`, () => {
    beforeAll(() => setBackend(engine));
    afterAll(() => setBackend("wasm"));

    test("thresholds reproduce the reference argmin for every code (bisection over float32 bits)", () => {
      for (const code of [dynamicMap(true), dynamicMap(false), linearMap(true), new Float32Array([0, -0, 0.5, 0.5, -1, 1])]) {
        const { thresholds, index } = codeSearch(code);
        expect(thresholds.length + 1).toBe(index.length);
        for (let j = 1; j < thresholds.length; j++) expect(thresholds[j]! > thresholds[j - 1]!).toBe(true);
      }
    });

    test("quantizeBlockwise: codes and absmax bit-identical, midpoints and neighbours, partial blocks, every code", () => {
      const rng = new Rng(3);
      for (const code of ["dynamic", "dynamic-unsigned", "linear", "linear-unsigned"] as const) {
        for (const [n, blockSize] of [[1, 64], [700, 64], [5000, 256], [4096, 4096], [33, 32]] as const) {
          const cv = code === "dynamic" ? dynamicMap(true) : code === "dynamic-unsigned" ? dynamicMap(false) : code === "linear" ? linearMap(true) : linearMap(false);
          const x = adversarial(cv, rng, n);
          if (code.endsWith("unsigned")) for (let i = 0; i < n; i++) x[i] = Math.abs(x[i]!);
          const got = quantizeBlockwise(x, { blockSize, code });
          const want = underReference(() => quantizeBlockwise(x, { blockSize, code }));
          expect(bits(got.codes), `${code} n=${n} bs=${blockSize}`).toEqual(bits(want.codes));
          expect(bits(got.absmax)).toEqual(bits(want.absmax));
          const d = dequantizeBlockwise(got), dw = underReference(() => dequantizeBlockwise(want));
          expect(bits(d)).toEqual(bits(dw));
        }
      }
      // scaled blocks: absmax != 1, all-zero block, tiny block (absmax below the 1e-38 floor)
      const x = new Float32Array(256);
      for (let i = 0; i < 64; i++) x[i] = rng.normal() * 1e3;
      for (let i = 128; i < 192; i++) x[i] = 1e-40 * (i - 160);
      const got = quantizeBlockwise(x, { blockSize: 64 }), want = underReference(() => quantizeBlockwise(x, { blockSize: 64 }));
      expect(bits(got.codes)).toEqual(bits(want.codes));
      expect(bits(got.absmax)).toEqual(bits(want.absmax));
    });

    test("quantizeBlockwise with NaN/Infinity still throws nonfinite naming the index", () => {
      const x = new Float32Array(300).fill(0.5);
      x[200] = Infinity;
      expect(() => quantizeBlockwise(x, { blockSize: 64 })).toThrow(/x\[200\]|200/);
    });

    test("quantize4bit / dequantize4bit (nf4, fp4; odd lengths; double quant) bit-identical", () => {
      const rng = new Rng(9);
      for (const type of ["nf4", "fp4"] as const) {
        for (const [n, blockSize] of [[1, 64], [63, 64], [1001, 64], [4096, 128]] as const) {
          const x = Float32Array.from({ length: n }, () => rng.normal());
          if (n > 3) { x[0] = 0; x[1] = -0; x[2] = 1e-30; }
          for (const doubleQuant of [false, true]) {
            const got = quantize4bit(x, { type, blockSize, doubleQuant });
            const want = underReference(() => quantize4bit(x, { type, blockSize, doubleQuant }));
            expect(bits(got.packed), `${type} n=${n}`).toEqual(bits(want.packed));
            expect(bits(dequantize4bit(got))).toEqual(bits(underReference(() => dequantize4bit(want))));
          }
        }
      }
    });

    test("quantizeAffine / dequantizeAffine bit-identical (int8 / uint8, per tensor, row and block, given scales)", () => {
      const rng = new Rng(4);
      const x = Float32Array.from({ length: 1000 }, () => rng.normal() * 3);
      for (let i = 0; i < 50; i++) x[i] = (i - 25) * 0.5; // exact halves: ties to even
      x.fill(0, 200, 300); // an all-zero row/block: scale 1
      for (const o of [{ bits: 8 }, { bits: 8, signed: false }, { bits: 8, axis: "block", blockSize: 64 }, { bits: 8, signed: false, axis: "row", cols: 100 },
        { bits: 8, scale: new Float32Array([0.5]) }, { bits: 8, signed: false, scale: new Float32Array([0.02]), zeroPoint: new Int32Array([128]) }] as const) {
        const got = quantizeAffine(x, o), want = underReference(() => quantizeAffine(x, o));
        expect(bits(got.q), JSON.stringify(o)).toEqual(bits(want.q));
        expect(bits(got.scale)).toEqual(bits(want.scale));
        expect(Array.from(got.zeroPoint)).toEqual(Array.from(want.zeroPoint));
      }
      const bad = x.slice(); bad[321] = NaN;
      expect(() => quantizeAffine(bad, { bits: 8, signed: false })).toThrow(/321/);
      for (const o of [{ bits: 8 }, { bits: 8, signed: false }, { bits: 8, axis: "block", blockSize: 64 }, { bits: 8, signed: false, axis: "row", cols: 100 }] as const) {
        const q = quantizeAffine(x, o);
        expect(bits(dequantizeAffine(q))).toEqual(bits(underReference(() => dequantizeAffine(q))));
      }
    });

    test("dequantizeQ8_0 / dequantizeQ4_0 kernels: every f16 scale (normal, subnormal, ±0, ±Inf, NaN) and code, bit-identical", () => {
      const rng = new Rng(8);
      for (const [size, kernel] of [[34, "dequantizeQ8_0"], [18, "dequantizeQ4_0"]] as const) {
        const blocks = 700;
        const bytes = Uint8Array.from({ length: blocks * size }, () => rng.int(256));
        for (let b = 0; b < blocks; b++) { // scale bits: sweep all 64 sign/exponent pairs, random mantissas
          const h = ((b % 64) << 10) | (b < 64 ? 0 : rng.int(1024));
          bytes[b * size] = h & 255; bytes[b * size + 1] = h >> 8;
        }
        for (const n of [blocks * 32, blocks * 32 - 32]) {
          const got = new Float32Array(n), want = new Float32Array(n);
          getBackend()[kernel](bytes, got);
          referenceBackend[kernel](bytes, want);
          // NaN scales give NaN; a NaN's sign bit is the JS engine's business (the reference's varies), not ours
          const norm = (a: Float32Array) => bits(a.map((v) => (Number.isNaN(v) ? NaN : v)));
          expect(got.some((v) => Number.isNaN(v))).toBe(true);
          expect(norm(got), `${kernel} n=${n}`).toEqual(norm(want));
        }
      }
    });

    test("adam32Step kernel: the reference's f32 op order, non-finite gradients skip their element", () => {
      const rng = new Rng(5), n = 999;
      const mk = () => Float32Array.from({ length: n }, () => rng.normal());
      const p = mk(), g = mk(), m = mk().map((v) => v * 0.1), v = mk().map((u) => u * u * 0.01);
      g[3] = NaN; g[7] = Infinity;
      const f = Math.fround; // AdamStepScalars are float32 values (src/backends/api/quant.ts)
      const h = { beta1: f(0.9), oneMinusBeta1: f(0.1), beta2: f(0.999), oneMinusBeta2: f(0.001), epsC2: f(1e-8 * 0.03), stepSize: f(-1e-3 * 0.03 / 0.1), decay: f(1 - 1e-3 * 0.01) };
      const a = [p.slice(), m.slice(), v.slice()], b = [p.slice(), m.slice(), v.slice()];
      getBackend().adam32Step(a[0]!, g, a[1]!, a[2]!, h);
      referenceBackend.adam32Step(b[0]!, g, b[1]!, b[2]!, h);
      for (let k = 0; k < 3; k++) expect(bits(a[k]!)).toEqual(bits(b[k]!));
      expect(a[0]![3]).toBe(p[3]!);
    });
  });
}
