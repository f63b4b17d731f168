// Quant family conformance: bitsandbytes code tables and error oracles, the nearest/ties rule, block edge cases,
// 4-bit packing and double quantization, ONNX affine rounding (checked against onnxruntime itself), ggml Q8_0/Q4_0
// bytes on hand-made vectors (fp16 bits included), stochastic rounding's unbiasedness, bad input.
import { describe, expect, test } from "bun:test";
import {
  FP4, NF4, NumedgeError, Rng, codeHalfGap, dequantize4bit, dequantizeAffine, dequantizeBlockwise, dequantizeQ4_0,
  dequantizeQ8_0, dynamicMap, linearMap, quantize4bit, quantizeAffine, quantizeBlockwise, quantizeQ4_0, quantizeQ8_0,
  absmaxOf, type NestedAbsmax,
} from "numedge";
import { expectError } from "./helpers.ts";
import { asm } from "../src/backends/wasm/runtime.ts";
import { f32ToF16Bits } from "../src/backends/reference/quant.ts";
import { searchKind } from "../src/backends/wasm/quant.ts";

const f = Math.fround;

// ---- Tolerances and oracle figures (bitsandbytes tests/test_functional.py, randn 1024x1024) ----
const SLOW = 60_000; // heavy tests get their own timeout (the machine is shared)

const ORACLE = {
  dyn8Abs: 0.011,
  dyn8Rel: 0.018,
  nf4: { abs: 0.0728, rel: 0.203 },
  fp4: { abs: 0.0965, rel: 0.26 },
  /** "within 2%" */
  fourBitSlack: 0.02,
  /** per-element bounds: absmax * (halfGap + f32Slack), the slack covering the float32 scale and products */
  f32Slack: 2 ** -21,
};

const RANDN = (() => {
  const rng = new Rng(20240611);
  return Float32Array.from({ length: 1024 * 1024 }, () => rng.normal());
})();

function errors(x: Float32Array, y: Float32Array) {
  let abs = 0, rel = 0;
  for (let i = 0; i < x.length; i++) {
    const d = Math.abs(x[i]! - y[i]!);
    abs += d;
    rel += d / Math.abs(x[i]! + 1e-8); // bitsandbytes: diff / |A + 1e-8|
  }
  return { abs: abs / x.length, rel: rel / x.length };
}

const nextUp = (v: number) => {
  const b = new Float32Array([v]), u = new Int32Array(b.buffer);
  u[0] = v >= 0 ? u[0]! + 1 : u[0]! - 1;
  return b[0]!;
};
const nextDown = (v: number) => -nextUp(-v);

describe("code tables", () => {
  test("dynamicMap() is bitsandbytes' signed dynamic map", () => {
    const d = dynamicMap();
    expect(d.length).toBe(256);
    for (let i = 1; i < 256; i++) expect(d[i]!).toBeGreaterThan(d[i - 1]!);
    expect(d.filter((v) => v < 0).length).toBe(127);
    expect(d.filter((v) => v === 0).length).toBe(1);
    expect(d.filter((v) => v > 0).length).toBe(128);
    expect(d[0]).toBeCloseTo(-0.9929688, 6);
    expect(d[0]).toBe(f(-0.99296875));
    expect(d[127]).toBe(0);
    expect(d[255]).toBe(1);
    expect(d[254]).toBe(f(0.99296875));
    expect(d[128]).toBe(f(f(1e-6) * f(f(f(0.1) + 1) / 2))); // 10^-6 * mean(0.1, 1) in float32: the smallest magnitude
    // symmetric apart from the extra 1.0
    for (let i = 0; i < 127; i++) expect(d[i]).toBe(-d[254 - i]!);
    // float64 construction agrees to float32 rounding (the float32 emulation does not drift)
    const want: number[] = [0, 1];
    for (let i = 0; i < 7; i++) {
      const k = 2 ** i, b = Array.from({ length: k + 1 }, (_, j) => 0.1 + (0.9 * j) / k);
      for (let j = 0; j < k; j++) want.push(10 ** (i - 6) * (b[j]! + b[j + 1]!) / 2, -(10 ** (i - 6)) * (b[j]! + b[j + 1]!) / 2);
    }
    want.sort((a, b) => a - b);
    for (let i = 0; i < 256; i++) expect(Math.abs(d[i]! - want[i]!)).toBeLessThanOrEqual(Math.abs(want[i]!) * 3e-7);
  }, SLOW);

  test("dynamicMap(false) is the unsigned map; copies are fresh", () => {
    const u = dynamicMap(false);
    expect(u.length).toBe(256);
    expect(u[0]).toBe(0);
    expect(u[255]).toBe(1);
    expect(u[1]).toBe(f(f(1e-6) * f(f(f(0.1) + f(0.55)) / 2)));
    for (let i = 1; i < 256; i++) expect(u[i]!).toBeGreaterThan(u[i - 1]!);
    const a = dynamicMap();
    a[0] = 42;
    expect(dynamicMap()[0]).toBe(f(-0.99296875));
  }, SLOW);

  test("linearMap: signed = linspace(-1, 1, 255) plus a second 0; unsigned = linspace(0, 1, 256)", () => {
    const s = linearMap(), u = linearMap(false);
    expect(s[0]).toBe(-1);
    expect(s[255]).toBe(1);
    expect(s[127]).toBe(0);
    expect(Math.abs(s[128]!)).toBeLessThan(1e-6);
    expect(u[0]).toBe(0);
    expect(u[255]).toBe(1);
    expect(u[51]).toBeCloseTo(0.2, 6);
  }, SLOW);

  test("NF4 and FP4 are bitsandbytes' tables; FP4 in bit-pattern order with the sign in bit 3", () => {
    expect(NF4.length).toBe(16);
    expect(NF4[0]).toBe(-1);
    expect(NF4[7]).toBe(0);
    expect(NF4[15]).toBe(1);
    expect(NF4[8]).toBe(f(0.07958029955625534));
    expect(NF4[1]).toBe(f(-0.6961928009986877));
    const mag = [0, 0.0625, 8, 12, 4, 6, 2, 3];
    for (let i = 0; i < 8; i++) {
      expect(FP4[i]).toBe(f(mag[i]! / 12));
      expect(Object.is(FP4[i | 8], -FP4[i]!)).toBe(true);
    }
    expect(FP4[0b0011]).toBe(1);
    expect(FP4[0b1011]).toBe(-1);
  }, SLOW);

  test("every built-in table gets the SIMD bucket-table kernel", () => {
    for (const c of [dynamicMap(), dynamicMap(false), linearMap(), linearMap(false), NF4, FP4]) expect(searchKind(c)).toBe("lut");
  }, SLOW);

  test("codeHalfGap: the per-absmax error bound of a table", () => {
    expect(codeHalfGap(dynamicMap())).toBeCloseTo(0.00703125, 6);
    expect(codeHalfGap(NF4)).toBeCloseTo((1 - 0.6961928009986877) / 2, 6);
    expect(codeHalfGap(FP4)).toBeCloseTo((1 - 8 / 12) / 2, 6);
  }, SLOW);
});

describe("quantizeBlockwise (8-bit)", () => {
  test("randn 1024x1024: mean abs < 0.011, mean rel < 0.018 at every block size; every element within its bound", () => {
    const gap = codeHalfGap(dynamicMap());
    for (const blockSize of [32, 64, 128, 256, 512, 1024, 2048, 4096]) {
      const q = quantizeBlockwise(RANDN, { blockSize });
      const y = dequantizeBlockwise(q);
      const e = errors(RANDN, y);
      expect(e.abs).toBeLessThan(ORACLE.dyn8Abs);
      expect(e.rel).toBeLessThan(ORACLE.dyn8Rel);
      let worst = 0;
      for (let i = 0; i < RANDN.length; i++) {
        const a = q.absmax[Math.floor(i / blockSize)]!;
        worst = Math.max(worst, Math.abs(RANDN[i]! - y[i]!) / (a * (gap + ORACLE.f32Slack)));
      }
      expect(worst).toBeLessThanOrEqual(1);
    }
  }, SLOW);

  test("nearest code, ties to the lower index: exact midpoints go down, one ulp above goes up", () => {
    for (const code of [dynamicMap(), dynamicMap(false), linearMap()]) {
      const xs: number[] = [], want: number[] = [];
      for (let j = 0; j + 1 < 256; j++) {
        const a = code[j]!, b = code[j + 1]!;
        if (a === b) continue;
        const m = (a + b) / 2;
        if (f(m) !== m) continue;
        xs.push(m, nextUp(m), nextDown(m));
        const lowA = code.indexOf(a);
        want.push(lowA, j + 1, lowA);
      }
      expect(xs.length).toBeGreaterThan(100);
      // blocks of 32 whose first element is 1 (absmax 1: x is its own scaled value)
      const x = new Float32Array(Math.ceil(xs.length / 31) * 32), w: number[] = [];
      let k = 0;
      for (let i = 0; i < x.length; i++) {
        if (i % 32 === 0) { x[i] = 1; w.push(255); continue; }
        x[i] = k < xs.length ? xs[k]! : 0;
        w.push(k < xs.length ? want[k]! : code.indexOf(0));
        k++;
      }
      const q = quantizeBlockwise(x, { blockSize: 32, code });
      expect(Array.from(q.codes)).toEqual(w);
    }
  }, SLOW);

  test("partial last block and block sizes 32..4096", () => {
    const rng = new Rng(7);
    for (const blockSize of [32, 64, 128, 256, 512, 1024, 2048, 4096]) {
      const n = 2 * blockSize + 17;
      const x = Float32Array.from({ length: n }, () => rng.normal());
      x[n - 5] = 9; // the partial block's own absmax
      const q = quantizeBlockwise(x, { blockSize });
      expect(q.absmax.length).toBe(3);
      expect(q.absmax[2]).toBe(9);
      let m = 0;
      for (let i = 0; i < blockSize; i++) m = Math.max(m, Math.abs(x[i]!));
      expect(q.absmax[0]).toBe(m);
      const y = dequantizeBlockwise(q);
      expect(y[n - 5]).toBe(9);
      for (let i = 2 * blockSize; i < n; i++) expect(Math.abs(y[i]! - x[i]!)).toBeLessThanOrEqual(9 * 0.0071);
    }
  }, SLOW);

  test("blockSize \"tensor\": one absmax for any length", () => {
    const x = RANDN.subarray(0, 100_003);
    const q = quantizeBlockwise(x, { blockSize: "tensor" });
    expect(q.blockSize).toBe(x.length);
    expect(q.absmax.length).toBe(1);
    let m = 0;
    for (const v of x) m = Math.max(m, Math.abs(v));
    expect(q.absmax[0]).toBe(m);
    const y = dequantizeBlockwise(q);
    for (let i = 0; i < x.length; i++) expect(Math.abs(x[i]! - y[i]!)).toBeLessThanOrEqual(m * (0.00703125 + ORACLE.f32Slack));
    const q4 = quantize4bit(x, { blockSize: "tensor" });
    expect((q4.absmax as Float32Array).length).toBe(1);
    expect(dequantize4bit(q4).length).toBe(x.length);
  }, SLOW);

  test("all-zero block: absmax 0 (1e-38 floor inside), codes = the code of 0, dequantizes to exactly 0", () => {
    const x = new Float32Array(96);
    for (let i = 64; i < 96; i++) x[i] = i - 80;
    const q = quantizeBlockwise(x, { blockSize: 32 });
    expect(q.absmax[0]).toBe(0);
    expect(q.absmax[1]).toBe(0);
    expect(Array.from(q.codes.subarray(0, 64)).every((c) => c === 127)).toBe(true);
    const y = dequantizeBlockwise(q);
    for (let i = 0; i < 64; i++) expect(Object.is(y[i], 0)).toBe(true);
    // subnormal block (absmax below the 1e-38 floor): scaled by the floor, so shrunk toward 0 by absmax / 1e-38, the
    // documented exception: each value's sign kept, |y| <= |x| (a code near x / 1e-38 times absmax)
    const t = new Float32Array(32).fill(f(1e-40));
    t[3] = f(-3e-41);
    const qt = quantizeBlockwise(t, { blockSize: 32 }), yt = dequantizeBlockwise(qt), code = dynamicMap();
    expect(qt.absmax[0]).toBe(f(1e-40));
    for (let i = 0; i < 32; i++) {
      expect(Math.sign(yt[i]!), `${i}`).toBe(Math.sign(t[i]!));
      expect(Math.abs(yt[i]!)).toBeLessThanOrEqual(Math.abs(t[i]!));
      // the code the floor's scale picks, times absmax
      const v = Math.fround(t[i]! * Math.fround(1 / Math.fround(1e-38))), want = code.reduce((b, c) => (Math.abs(c - v) < Math.abs(b - v) ? c : b), 0);
      expect(Math.abs(yt[i]! - Math.fround(want * qt.absmax[0]!))).toBeLessThanOrEqual(2 ** -149);
    }
  }, SLOW);

  test("stochastic rounding is unbiased: 10^5 seeded draws within 3 standard errors", () => {
    const code = dynamicMap();
    const lo = code[230]!, hi = code[231]!;
    for (const frac of [0.3, 0.5, 0.9]) {
      const v = f(lo + frac * (hi - lo));
      const N = 100_000, bs = 1024;
      const x = new Float32Array(N + Math.ceil(N / (bs - 1))).fill(v);
      for (let i = 0; i < x.length; i += bs) x[i] = 1; // absmax 1 in every block
      const y = dequantizeBlockwise(quantizeBlockwise(x, { blockSize: bs, rounding: "stochastic", seed: 11 }));
      let s = 0, cnt = 0, ups = 0;
      for (let i = 0; i < x.length; i++) {
        if (i % bs === 0) continue;
        expect(y[i] === lo || y[i] === hi).toBe(true);
        s += y[i]!;
        ups += y[i] === hi ? 1 : 0;
        cnt++;
      }
      const p = (v - lo) / (hi - lo);
      const se = (hi - lo) * Math.sqrt((p * (1 - p)) / cnt);
      expect(Math.abs(s / cnt - v)).toBeLessThan(3 * se);
      expect(ups).toBeGreaterThan(0);
    }
  }, SLOW);

  test("stochastic rounding is deterministic per seed and differs across seeds", () => {
    const x = RANDN.subarray(0, 8192);
    const a = quantizeBlockwise(x, { rounding: "stochastic", seed: 5 });
    const b = quantizeBlockwise(x, { rounding: "stochastic", seed: 5 });
    const c = quantizeBlockwise(x, { rounding: "stochastic", seed: 6 });
    expect(a.codes).toEqual(b.codes);
    expect(a.codes).not.toEqual(c.codes);
    // each code is one of the two neighbours of the nearest-rounded value
    const nr = quantizeBlockwise(x);
    for (let i = 0; i < x.length; i++) expect(Math.abs(a.codes[i]! - nr.codes[i]!)).toBeLessThanOrEqual(1);
  }, SLOW);

  test("bad input throws NumedgeError naming the argument; inputs are not mutated", () => {
    const x = RANDN.slice(0, 300), keep = x.slice();
    for (const bs of [16, 48, 100, 8192, 3.5]) expectError(() => quantizeBlockwise(x, { blockSize: bs }), "range", "blockSize");
    expectError(() => quantizeBlockwise(x, { blockSize: "64" as never }), "dtype", "blockSize");
    const nan = x.slice();
    nan[77] = NaN;
    expectError(() => quantizeBlockwise(nan, { blockSize: 64 }), "nonfinite", "x[77] = NaN");
    nan[77] = -Infinity;
    expectError(() => quantizeBlockwise(nan, { blockSize: 64 }), "nonfinite", "x[77] = -Infinity");
    const unsorted = dynamicMap();
    [unsorted[10], unsorted[11]] = [unsorted[11]!, unsorted[10]!];
    expectError(() => quantizeBlockwise(x, { code: unsorted }), "range", "code must be sorted");
    expectError(() => quantizeBlockwise(x, { code: new Float32Array(255) }), "shape", "code.length");
    expectError(() => quantizeBlockwise(x, { code: "dynamic8" as never }), "range", "code");
    expectError(() => quantizeBlockwise(x, { rounding: "up" as never }), "range", "rounding");
    expectError(() => quantizeBlockwise(new Int32Array(4) as never), "dtype", "x");
    expectError(() => quantizeBlockwise(new Float32Array(0)), "shape", "x");
    const q = quantizeBlockwise(x, { blockSize: 64 });
    const codesKeep = q.codes.slice(), absKeep = q.absmax.slice();
    dequantizeBlockwise(q);
    expect(q.codes).toEqual(codesKeep);
    expect(q.absmax).toEqual(absKeep);
    expectError(() => dequantizeBlockwise({ ...q, absmax: q.absmax.subarray(1) }), "shape", "q.absmax.length");
    expectError(() => dequantizeBlockwise({ ...q, codes: q.codes.subarray(1) }), "shape", "q.codes.length");
    expectError(() => dequantizeBlockwise({ ...q, blockSize: 60 }), "range", "q.blockSize");
    expectError(() => dequantizeBlockwise(q, new Float32Array(5)), "shape", "out.length");
    expect(x).toEqual(keep);
  }, SLOW);
});

describe("4-bit NF4 / FP4", () => {
  test("randn 1024x1024 at block 64: NF4 abs 0.0728 rel 0.203, FP4 abs 0.0965 rel 0.260, each within 2%", () => {
    for (const type of ["nf4", "fp4"] as const) {
      const y = dequantize4bit(quantize4bit(RANDN, { type, blockSize: 64 }));
      const e = errors(RANDN, y);
      const want = ORACLE[type];
      expect(Math.abs(e.abs - want.abs)).toBeLessThanOrEqual(ORACLE.fourBitSlack * want.abs);
      expect(Math.abs(e.rel - want.rel)).toBeLessThanOrEqual(ORACLE.fourBitSlack * want.rel);
    }
  }, SLOW);

  test("packing: element 2j in the high nibble; odd length pads with the code of 0", () => {
    const x = new Float32Array([1, -1, 0]);
    const nf = quantize4bit(x, { type: "nf4", blockSize: 32 });
    expect(Array.from(nf.packed)).toEqual([0xf0, 0x77]);
    const fp = quantize4bit(x, { type: "fp4", blockSize: 32 });
    expect(Array.from(fp.packed)).toEqual([0x3b, 0x00]);
    expect(Array.from(dequantize4bit(nf))).toEqual([1, -1, 0]);
    expect(Array.from(dequantize4bit(fp))).toEqual([1, -1, 0]);
    // a longer hand vector through the SIMD path: element i = NF4[i % 16] (absmax 1)
    const y = Float32Array.from({ length: 64 }, (_, i) => NF4[i % 16]!);
    const p = quantize4bit(y, { type: "nf4", blockSize: 64 }).packed;
    for (let j = 0; j < 32; j++) expect(p[j]).toBe((((2 * j) % 16) << 4) | ((2 * j + 1) % 16));
  }, SLOW);

  test("ties go to the lower index (FP4's bit order: 0.25 at 7 vs 1/3 at 4 picks 4)", () => {
    for (const [type, table] of [["nf4", NF4], ["fp4", FP4]] as const) {
      const order = Array.from(table.keys()).sort((a, b) => table[a]! - table[b]! || a - b);
      for (let k = 0; k + 1 < order.length; k++) {
        const ia = order[k]!, ib = order[k + 1]!, a = table[ia]!, b = table[ib]!;
        if (a === b) continue;
        const m = (a + b) / 2;
        if (f(m) !== m) continue;
        const x = new Float32Array(32);
        x[0] = 1;
        x[2] = m;
        const q = quantize4bit(x, { type, blockSize: 32 });
        expect(q.packed[1]! >> 4).toBe(Math.min(table.findIndex((v) => v === a), table.findIndex((v) => v === b)));
      }
    }
  }, SLOW);

  test("per-element bound |x - x'| <= absmax * halfGap, partial block, all-zero block", () => {
    const rng = new Rng(3);
    const x = Float32Array.from({ length: 64 * 3 + 17 }, () => rng.normal());
    x.fill(0, 64, 128);
    for (const type of ["nf4", "fp4"] as const) {
      const q = quantize4bit(x, { type, blockSize: 64 });
      const a = q.absmax as Float32Array, y = dequantize4bit(q);
      const gap = codeHalfGap(type === "nf4" ? NF4 : FP4);
      expect(a[1]).toBe(0);
      for (let i = 0; i < x.length; i++) expect(Math.abs(x[i]! - y[i]!)).toBeLessThanOrEqual(a[Math.floor(i / 64)]! * (gap + ORACLE.f32Slack));
      for (let i = 64; i < 128; i++) expect(y[i]).toBe(0);
    }
  }, SLOW);

  test("double quantization: offset = mean(absmax), block 256 dynamic; absmax and data round-trip within the bound", () => {
    const x = RANDN.subarray(0, 64 * 1000 + 10);
    const plain = quantize4bit(x, { type: "nf4", blockSize: 64 });
    const dq = quantize4bit(x, { type: "nf4", blockSize: 64, doubleQuant: true });
    expect(dq.packed).toEqual(plain.packed);
    const a = plain.absmax as Float32Array, nested = dq.absmax as NestedAbsmax;
    let s = 0;
    for (const v of a) s += v;
    expect(nested.offset).toBeCloseTo(s / a.length, 6);
    expect(nested.blockSize).toBe(256);
    expect(nested.code).toEqual(dynamicMap());
    expect(nested.codes.length).toBe(a.length);
    const ah = absmaxOf(dq);
    const gap = codeHalfGap(dynamicMap());
    for (let i = 0; i < a.length; i++) {
      const b = Math.floor(i / 256);
      let m = 0;
      for (let k = b * 256; k < Math.min(a.length, b * 256 + 256); k++) m = Math.max(m, Math.abs(f(a[k]! - nested.offset)));
      expect(Math.abs(ah[i]! - a[i]!)).toBeLessThanOrEqual(m * (gap + ORACLE.f32Slack) + 1e-7);
    }
    const y = dequantize4bit(dq), gap4 = codeHalfGap(NF4);
    for (let i = 0; i < x.length; i++) {
      const k = Math.floor(i / 64);
      expect(Math.abs(x[i]! - y[i]!)).toBeLessThanOrEqual(a[k]! * (gap4 + ORACLE.f32Slack) + Math.abs(ah[k]! - a[k]!) + 1e-6);
    }
  }, SLOW);

  test("bad input", () => {
    const x = RANDN.slice(0, 100), keep = x.slice();
    expectError(() => quantize4bit(x, { type: "int4" as never }), "range", "type");
    expectError(() => quantize4bit(x, { blockSize: 24 }), "range", "blockSize");
    const nan = x.slice();
    nan[99] = NaN;
    expectError(() => quantize4bit(nan), "nonfinite", "x[99] = NaN");
    const q = quantize4bit(x);
    expectError(() => dequantize4bit({ ...q, packed: q.packed.subarray(1) }), "shape", "q.packed.length");
    expectError(() => dequantize4bit({ ...q, absmax: (q.absmax as Float32Array).subarray(1) }), "shape", "q.absmax.length");
    expect(x).toEqual(keep);
  }, SLOW);
});

describe("affine int8/uint8 (ONNX QuantizeLinear)", () => {
  test("round half to even, never Math.round; saturation", () => {
    const one = new Float32Array([1]);
    const x = new Float32Array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 3.5, 1000, -1000, 126.5, -127.5]);
    const q = quantizeAffine(x, { bits: 8, scale: one });
    expect(Array.from(q.q)).toEqual([0, 2, 2, 0, -2, -2, 4, 127, -128, 126, -128]);
    const u = quantizeAffine(new Float32Array([-1000, 1000, 0.5, -0.5, 1.5, -128.5]), { bits: 8, signed: false, scale: one, zeroPoint: new Int32Array([128]) });
    expect(Array.from(u.q)).toEqual([0, 255, 128, 128, 130, 0]);
    // scale 2: x / 2 lands on halves
    const s2 = quantizeAffine(new Float32Array([1, 3, 5, 7, -3]), { bits: 8, scale: new Float32Array([2]) });
    expect(Array.from(s2.q)).toEqual([0, 2, 2, 4, -2]);
  }, SLOW);

  test("symmetric absmax int8 and ONNX DynamicQuantizeLinear uint8 parameters", () => {
    const s = quantizeAffine(new Float32Array([-127, 63.5, 31.75, 0.5]), { bits: 8 });
    expect(s.scale[0]).toBe(1);
    expect(s.zeroPoint[0]).toBe(0);
    expect(Array.from(s.q)).toEqual([-127, 64, 32, 0]);
    const x = new Float32Array([-1, 0, 2, 3]);
    const u = quantizeAffine(x, { bits: 8, signed: false });
    const sc = f(f(3 - -1) / 255);
    expect(u.scale[0]).toBe(sc);
    expect(u.zeroPoint[0]).toBe(64); // rint(1 / scale) = rint(63.75)
    // all-positive data: min(0, min x) = 0 so zp = 0; all-zero group: scale 1
    const p = quantizeAffine(new Float32Array([1, 2, 4]), { bits: 8, signed: false });
    expect(p.zeroPoint[0]).toBe(0);
    expect(p.q[2]).toBe(255);
    const z = quantizeAffine(new Float32Array(5), { bits: 8 });
    expect(z.scale[0]).toBe(1);
    expect(Array.from(dequantizeAffine(z))).toEqual([0, 0, 0, 0, 0]);
  }, SLOW);

  test("per row and per block groups; |x - x'| <= scale / 2", () => {
    const x = RANDN.subarray(0, 64 * 50 + 9);
    for (const signed of [true, false]) {
      for (const o of [{ axis: "block" as const, blockSize: 64 }, { axis: "tensor" as const }, { axis: "block" as const, blockSize: 1000 }]) {
        const q = quantizeAffine(x, { bits: 8, signed, ...o });
        const g = q.group;
        expect(q.scale.length).toBe(Math.ceil(x.length / g));
        const y = dequantizeAffine(q);
        for (let i = 0; i < x.length; i++) expect(Math.abs(x[i]! - y[i]!)).toBeLessThanOrEqual((q.scale[Math.floor(i / g)]! / 2) * (1 + 2 ** -20));
      }
      const r = quantizeAffine(RANDN.subarray(0, 128 * 30), { bits: 8, signed, axis: "row", cols: 128 });
      expect(r.scale.length).toBe(30);
      expect(r.group).toBe(128);
    }
  }, SLOW);

  test("bytes equal onnxruntime's QuantizeLinear / DequantizeLinear (per tensor, ties included)", async () => {
    const { ort, ortSession } = await import("../bench/onnx.ts");
    const rng = new Rng(9);
    const n = 1000;
    const x = Float32Array.from({ length: n }, (_, i) => (i % 5 === 0 ? (rng.int(200) - 100) * 0.5 : rng.normal() * 40));
    for (const signed of [true, false]) {
      const q = quantizeAffine(x, { bits: 8, signed });
      const type = signed ? "int8" : "uint8";
      const zpData = signed ? Int8Array.from([q.zeroPoint[0]!]) : Uint8Array.from([q.zeroPoint[0]!]);
      const sess = await ortSession("QuantizeLinear", [{ name: "x", type: "float", dims: [n] }], [{ name: "y", type, dims: [n] }], {},
        [{ name: "s", type: "float", dims: [], data: q.scale }, { name: "z", type, dims: [], data: zpData }], 13);
      const got = (await sess.run({ x: new ort.Tensor("float32", x, [n]) })).y!.data as Int8Array | Uint8Array;
      expect(Array.from(q.q)).toEqual(Array.from(got));
      const dsess = await ortSession("DequantizeLinear", [{ name: "q", type, dims: [n] }], [{ name: "y", type: "float", dims: [n] }], {},
        [{ name: "s", type: "float", dims: [], data: q.scale }, { name: "z", type, dims: [], data: zpData }], 13);
      const dgot = (await dsess.run({ q: new ort.Tensor(type, q.q, [n]) })).y!.data as Float32Array;
      expect(Array.from(dequantizeAffine(q))).toEqual(Array.from(dgot));
      await sess.release();
      await dsess.release();
    }
  }, SLOW);

  test("bad input", () => {
    const x = RANDN.slice(0, 100), keep = x.slice();
    expectError(() => quantizeAffine(x, { bits: 4 as never }), "unsupported", "bits");
    expectError(() => quantizeAffine(x, { bits: 8, axis: "row", cols: 7 }), "shape", "cols 7");
    expectError(() => quantizeAffine(x, { bits: 8, axis: "col" as never }), "range", "axis");
    expectError(() => quantizeAffine(x, { bits: 8, scale: new Float32Array([0]) }), "range", "scale[0]");
    expectError(() => quantizeAffine(x, { bits: 8, scale: new Float32Array(2) }), "shape", "scale.length");
    expectError(() => quantizeAffine(x, { bits: 8, scale: new Float32Array([1]), zeroPoint: new Int32Array([300]) }), "range", "zeroPoint[0]");
    const nan = x.slice();
    nan[42] = NaN;
    expectError(() => quantizeAffine(nan, { bits: 8, axis: "block", blockSize: 10 }), "nonfinite", "x[42]");
    expectError(() => quantizeAffine(nan, { bits: 8, signed: false }), "nonfinite", "x[42]");
    expectError(() => quantizeAffine(nan, { bits: 8, scale: new Float32Array([1]) }), "nonfinite", "x[42]");
    const q = quantizeAffine(x, { bits: 8 });
    expectError(() => dequantizeAffine({ ...q, scale: new Float32Array(3) }), "shape", "q.scale");
    expect(x).toEqual(keep);
  }, SLOW);
});

describe("ggml Q8_0 / Q4_0", () => {
  const dv = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);

  test("Q8_0 bytes: fp16 d then int8 roundf(x / d), half away from zero", () => {
    const x = Float32Array.from({ length: 32 }, (_, j) => j * 4 - 64);
    x[31] = 127;
    x[1] = 2.5;
    x[2] = -2.5;
    x[3] = 0.5;
    x[4] = -0.4;
    const b = quantizeQ8_0(x);
    expect(b.length).toBe(34);
    expect(dv(b).getUint16(0, true)).toBe(0x3c00); // d = 1
    const q = Array.from(new Int8Array(b.buffer, 2, 32));
    expect(q[1]).toBe(3);
    expect(q[2]).toBe(-3);
    expect(q[3]).toBe(1);
    expect(q[4]).toBe(0);
    expect(q[31]).toBe(127);
    for (let j = 5; j < 31; j++) expect(q[j]).toBe(j * 4 - 64);
    expect(Array.from(dequantizeQ8_0(b, 32))).toEqual(q.map((v) => v + 0));
  }, SLOW);

  test("fp16 scale bits round to nearest even (ties), subnormal d", () => {
    const block = (amax: number) => {
      const x = new Float32Array(32);
      x[5] = amax;
      return dv(quantizeQ8_0(x)).getUint16(0, true);
    };
    expect(block(260223 / 2048)).toBe(0x3c00); // d = 1 + 2^-11: tie -> even 1.0
    expect(block(260477 / 2048)).toBe(0x3c02); // d = 1 + 3 * 2^-11: tie -> even 1 + 2^-9
    expect(block(127 * 2 ** -20)).toBe(0x0010); // d = 2^-20: fp16 subnormal
    expect(block(0)).toBe(0);
  }, SLOW);

  test("the kernel's fp16 conversion (ggml's bit trick) equals IEEE round-to-nearest-even everywhere", () => {
    const rng = new Rng(4);
    const vals = [0, -0, 1, -1, 65504, 65519.996, 65520, 1e9, -1e9, 2 ** -24, 2 ** -25, 3 * 2 ** -26, 2 ** -14, 2 ** -14 - 2 ** -25, 1e-10, NaN, Infinity, -Infinity];
    for (let i = 0; i < 20000; i++) vals.push((rng.next() < 0.5 ? -1 : 1) * 2 ** rng.uniform(-30, 17));
    for (const v of vals) expect(asm.f32_to_f16!(f(v))).toBe(f32ToF16Bits(v));
  }, SLOW);

  test("Q4_0 bytes: d = signed max / -8 (first on ties), q = min(15, trunc(x / d + 8.5)), j low / j+16 high", () => {
    const x = new Float32Array(32);
    x[0] = -8;
    x[1] = 8; // same magnitude later: d stays -8 / -8 = 1
    x[2] = 7.5; // 16 -> clipped to 15
    x[3] = -0.5; // trunc(8.0) = 8
    x[4] = 0.49;
    x[5] = 0.5;
    x[16] = 3;
    x[17] = -7.9;
    const b = quantizeQ4_0(x);
    expect(b.length).toBe(18);
    expect(dv(b).getUint16(0, true)).toBe(0x3c00);
    const q = (j: number) => (j < 16 ? b[2 + j]! & 15 : b[2 + j - 16]! >> 4);
    expect([q(0), q(1), q(2), q(3), q(4), q(5), q(6), q(16), q(17)]).toEqual([0, 15, 15, 8, 8, 9, 8, 11, 0]);
    const y = new Float32Array(32);
    y[0] = 8;
    y[1] = -8;
    const c = quantizeQ4_0(y);
    expect(dv(c).getUint16(0, true)).toBe(0xbc00); // d = 8 / -8 = -1
    expect(c[2]! & 15).toBe(0);
    expect(c[3]! & 15).toBe(15);
    expect(Array.from(dequantizeQ4_0(c, 32)).slice(0, 3)).toEqual([8, -7, -0]);
  }, SLOW);

  test("round trips within the stated bounds; bad input", () => {
    const x = RANDN.subarray(0, 32 * 100);
    const y8 = dequantizeQ8_0(quantizeQ8_0(x), x.length), y4 = dequantizeQ4_0(quantizeQ4_0(x), x.length);
    for (let b = 0; b < 100; b++) {
      let amax = 0;
      for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b * 32 + j]!));
      for (let j = 0; j < 32; j++) {
        const i = b * 32 + j;
        expect(Math.abs(x[i]! - y8[i]!)).toBeLessThanOrEqual(amax * (1 / 254 + 2 ** -11));
        expect(Math.abs(x[i]! - y4[i]!)).toBeLessThanOrEqual((amax / 8) * (1 + 2 ** -9) + amax * 2 ** -10);
      }
    }
    expectError(() => quantizeQ8_0(new Float32Array(33)), "shape", "multiple of 32");
    expectError(() => dequantizeQ8_0(new Uint8Array(33), 32), "shape", "bytes.length");
    expectError(() => dequantizeQ4_0(new Uint8Array(18), 31), "shape", "length 31");
    const nan = new Float32Array(64);
    nan[40] = NaN;
    expectError(() => quantizeQ4_0(nan), "nonfinite", "x[40]");
    expectError(() => quantizeQ8_0(nan), "nonfinite", "x[40]");
  }, SLOW);
});

describe("review fixes: failed calls write nothing, overlaps, out with a given scale", () => {
  test("a non-finite block leaves caller-given out arrays untouched", () => {
    const x = RANDN.slice(0, 192);
    x[100] = NaN;
    const codes = new Uint8Array(192).fill(7), absmax = new Float32Array(3).fill(3);
    expectError(() => quantizeBlockwise(x, { blockSize: 64, out: { codes, absmax } }), "nonfinite", "x[100]");
    expect(codes.every((c) => c === 7)).toBe(true);
    expect(absmax.every((a) => a === 3)).toBe(true);
    const packed = new Uint8Array(96).fill(7), am4 = new Float32Array(3).fill(3);
    expectError(() => quantize4bit(x, { blockSize: 64, out: { packed, absmax: am4 } }), "nonfinite", "x[100]");
    expect(packed.every((c) => c === 7)).toBe(true);
    expect(am4.every((a) => a === 3)).toBe(true);
    const q = new Int8Array(192).fill(7), scale = new Float32Array(3).fill(3), zeroPoint = new Int32Array(3).fill(3);
    expectError(() => quantizeAffine(x, { bits: 8, axis: "block", blockSize: 64, out: { q, scale, zeroPoint } }), "nonfinite", "x[100]");
    expect(q.every((c) => c === 7)).toBe(true);
    expect(scale.every((a) => a === 3)).toBe(true);
    expect(zeroPoint.every((a) => a === 3)).toBe(true);
  });

  test("outputs overlapping the input or each other are shape errors", () => {
    const ab = new ArrayBuffer(256 * 4 + 64);
    const x = new Float32Array(ab, 0, 256);
    x.set(RANDN.subarray(0, 256));
    const keep = x.slice();
    expectError(() => quantizeBlockwise(x, { blockSize: 64, out: { codes: new Uint8Array(ab, 0, 256) } }), "shape", "out.codes", "x");
    expectError(() => quantizeBlockwise(x, { blockSize: 64, out: { absmax: new Float32Array(ab, 1020, 4) } }), "shape", "out.absmax", "x");
    const sep = new ArrayBuffer(512);
    expectError(() => quantizeBlockwise(x, { blockSize: 64, out: { codes: new Uint8Array(sep, 0, 256), absmax: new Float32Array(sep, 240, 4) } }),
      "shape", "out.absmax", "out.codes");
    expectError(() => quantize4bit(x, { blockSize: 64, out: { packed: new Uint8Array(ab, 0, 128) } }), "shape", "out.packed", "x");
    expectError(() => quantizeAffine(x, { bits: 8, out: { q: new Int8Array(ab, 512, 256) } }), "shape", "out.q", "x");
    expect(x).toEqual(keep);
  });

  test("quantizeAffine with a given scale writes scale / zeroPoint into out.scale / out.zeroPoint", () => {
    const x = RANDN.slice(0, 64);
    const s = new Float32Array([0.05, 0.1]), z = new Int32Array([3, -2]);
    const outScale = new Float32Array(2), outZp = new Int32Array(2);
    const r = quantizeAffine(x, { bits: 8, axis: "block", blockSize: 32, scale: s, zeroPoint: z, out: { scale: outScale, zeroPoint: outZp } });
    expect(r.scale).toBe(outScale);
    expect(r.zeroPoint).toBe(outZp);
    expect(Array.from(outScale)).toEqual(Array.from(s));
    expect(Array.from(outZp)).toEqual([3, -2]);
    const plain = quantizeAffine(x, { bits: 8, axis: "block", blockSize: 32, scale: s, zeroPoint: z });
    expect(Array.from(r.q)).toEqual(Array.from(plain.q));
    expectError(() => quantizeAffine(x, { bits: 8, scale: new Float32Array([1]), out: { scale: new Float32Array(2) } }), "shape", "out.scale");
  });
});
