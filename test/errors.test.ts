// Bad input to the softmax family: a NumedgeError with the right code whose message names the argument
// (and shows the value); inputs are never modified, even when the call throws.
import { describe, expect, test } from "bun:test";
import { crossEntropy, logSoftmax, logStablemax, softmax, stablemax } from "numedge";
import { expectError } from "./helpers.ts";

const ROWOPS: Array<[string, (x: unknown, o: unknown) => unknown]> = [
  ["softmax", (x, o) => softmax(x as Float32Array, o as never)],
  ["logSoftmax", (x, o) => logSoftmax(x as Float32Array, o as never)],
  ["stablemax", (x, o) => stablemax(x as Float32Array, o as never)],
  ["logStablemax", (x, o) => logStablemax(x as Float32Array, o as never)],
  ["crossEntropy", (x, o) => crossEntropy(x as Float32Array, new Int32Array([0, 1]), o as never)],
];

describe("bad input: every op of the family", () => {
  for (const [name, op] of ROWOPS) {
    test(`${name}: cols, length, array type, options`, () => {
      const x = new Float32Array([1, 2, 3, 4, 5, 6]);
      const snap = x.slice();
      expectError(() => op(x, { cols: 0 }), "range", "cols", "0");
      expectError(() => op(x, { cols: -3 }), "range", "cols", "-3");
      expectError(() => op(x, { cols: 2.5 }), "range", "cols", "2.5");
      expectError(() => op(x, { cols: NaN }), "range", "cols", "NaN");
      expectError(() => op(x, { cols: Infinity }), "range", "cols");
      expectError(() => op(x, { cols: "3" }), "dtype", "cols", '"3"');
      expectError(() => op(x, {}), "dtype", "cols", "undefined");
      expectError(() => op(x, { cols: 4 }), "shape", "length 6", "cols 4");
      expectError(() => op(x, { cols: 7 }), "shape", "length 6", "cols 7");
      expectError(() => op(x, undefined), "shape", "cols");
      expectError(() => op(x, null), "shape", "cols");
      expectError(() => op([1, 2, 3], { cols: 3 }), "dtype", "Float32Array", "Array(3)");
      expectError(() => op(new Int32Array(6), { cols: 3 }), "dtype", "Int32Array(6)");
      expectError(() => op(new Uint8Array(6), { cols: 3 }), "dtype", "Uint8Array(6)");
      expectError(() => op(null, { cols: 3 }), "dtype", "null");
      expectError(() => op("abc", { cols: 3 }), "dtype", '"abc"');
      expectError(() => op(new Float32Array(0), { cols: 3 }), "shape", "empty");
      expect(x).toEqual(snap);
    });
  }

  test("softmax family: out of the wrong type or length, or overlapping x", () => {
    const x = new Float32Array(12).map((_, i) => i / 3);
    const snap = x.slice();
    const ops = [
      (out: unknown) => softmax(x, { cols: 4, out: out as Float32Array }),
      (out: unknown) => logSoftmax(x, { cols: 4, out: out as Float32Array }),
      (out: unknown) => stablemax(x, { cols: 4, out: out as Float32Array }),
      (out: unknown) => logStablemax(x, { cols: 4, out: out as Float32Array }),
    ];
    for (const op of ops) {
      expectError(() => op(new Float64Array(12)), "dtype", "out", "Float32Array", "Float64Array(12)");
      expectError(() => op(new Int32Array(12)), "dtype", "out", "Int32Array(12)");
      expectError(() => op([0, 0]), "dtype", "out");
      expectError(() => op(null), "dtype", "out", "null");
      expectError(() => op(new Float32Array(11)), "shape", "out.length 11", "12");
      expectError(() => op(new Float32Array(13)), "shape", "out.length 13");
      const big = new Float32Array(24);
      big.set(x);
      const xs = big.subarray(0, 12);
      expectError(() => softmax(xs, { cols: 4, out: big.subarray(4, 16) }), "shape", "overlaps");
      expect(x).toEqual(snap);
    }
    // Float64Array in, Float32Array out: refused
    expectError(() => softmax(Float64Array.from(x), { cols: 4, out: new Float32Array(12) as never }), "dtype", "out", "Float64Array");
  });

  test("softmax: temperature <= 0, NaN, Infinity, not a number, or so small 1/T overflows", () => {
    const x = new Float32Array([1, 2, 3]);
    for (const t of [0, -1, -0, NaN, Infinity, -Infinity]) expectError(() => softmax(x, { cols: 3, temperature: t }), "range", "temperature", String(t));
    expectError(() => softmax(x, { cols: 3, temperature: "2" as never }), "dtype", "temperature", '"2"');
    expectError(() => softmax(x, { cols: 3, temperature: 1e-320 }), "range", "temperature");
    expectError(() => logSoftmax(x, { cols: 3, temperature: 0 }), "range", "temperature");
    expectError(() => logSoftmax(x, { cols: 3, temperature: NaN }), "range", "temperature");
    for (const algorithm of ["auto", "twopass", "threepass"] as const) {
      expect(Array.from(softmax(x, { cols: 3, temperature: 1e-300, algorithm }))).toEqual([0, 0, 1]); // tiny but valid: one-hot
      expect(Array.from(softmax(new Float32Array([-1, 0, -2]), { cols: 3, temperature: 1e-300, algorithm }))).toEqual([0, 1, 0]);
    }
  });

  test("softmax: unknown algorithm", () => {
    const x = new Float32Array([1, 2, 3]);
    expectError(() => softmax(x, { cols: 3, algorithm: "fourpass" as never }), "range", "algorithm", '"fourpass"', '"twopass"');
    expectError(() => softmax(x, { cols: 3, algorithm: 2 as never }), "range", "algorithm", "2");
  });

  test("crossEntropy: labels out of range, of the wrong type or length; unknown head/precision; grad not boolean", () => {
    const z = new Float32Array([1, 2, 3, 4, 5, 6]);
    const zs = z.slice();
    const ok = new Int32Array([0, 2]);
    const oks = ok.slice();
    expectError(() => crossEntropy(z, new Int32Array([0, 3]), { cols: 3 }), "range", "labels[1]", "3", "[0, 2]");
    expectError(() => crossEntropy(z, new Int32Array([-1, 0]), { cols: 3 }), "range", "labels[0]", "-1");
    expectError(() => crossEntropy(z, new Int32Array([0]), { cols: 3 }), "shape", "labels.length 1", "rows 2");
    expectError(() => crossEntropy(z, new Int32Array([0, 1, 2]), { cols: 3 }), "shape", "labels.length 3");
    expectError(() => crossEntropy(z, new Float32Array([0, 1]) as never, { cols: 3 }), "dtype", "labels", "Float32Array(2)");
    expectError(() => crossEntropy(z, [0, 1] as never, { cols: 3 }), "dtype", "labels", "Array(2)");
    expectError(() => crossEntropy(z, new Uint32Array([0, 1]) as never, { cols: 3 }), "dtype", "labels", "Uint32Array(2)");
    expectError(() => crossEntropy(z, ok, { cols: 3, head: "sparsemax" as never }), "range", "head", '"sparsemax"');
    expectError(() => crossEntropy(z, ok, { cols: 3, precision: "f16" as never }), "range", "precision", '"f16"');
    expectError(() => crossEntropy(z, ok, { cols: 3, grad: "yes" as never }), "dtype", "grad", '"yes"');
    expectError(() => crossEntropy(new Int32Array(6) as never, ok, { cols: 3 }), "dtype", "logits", "Int32Array(6)");
    expectError(() => crossEntropy(z, ok, { cols: 4 }), "shape", "logits.length 6");
    expect(z).toEqual(zs);
    expect(ok).toEqual(oks);
  });

  test("errors are NumedgeError instances with a name, and never wasm traps", () => {
    try {
      softmax(new Float32Array(5), { cols: 2 });
      throw new Error("did not throw");
    } catch (e) {
      expect(e).toBeInstanceOf(Error);
      expect((e as Error).name).toBe("NumedgeError");
    }
  });
});
