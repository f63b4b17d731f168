// crossEntropy: loss, gradient and collapse statistics of both heads in both precisions, against the f64
// reference and against finite differences; the Softmax Collapse demonstration; NaN rows.
import { beforeAll, describe, expect, test } from "bun:test";
import { NumedgeError, Rng, alloc, crossEntropy, softmax } from "numedge";
import { crossEntropyGradBound, crossEntropyLossBound, expectError, outsideBound } from "./helpers.ts";
import { parityBackends, underReference } from "./parity.ts";

// ---- Tolerances: loss and gradient as crossEntropy's TSDoc states them (helpers.ts), scaled by pb.tol. ----
/** central finite differences in f64, step 1e-5: truncation + rounding error. */
const FD_TOL = 1e-7;

const HEADS = ["softmax", "stablemax"] as const;
const PRECS = ["f32", "f64"] as const;
const COLS = [1, 2, 3, 4, 5, 8, 9, 17, 33, 113, 1025, 4099, 32000];

function sameBits(a: ArrayBufferView, b: ArrayBufferView): boolean {
  if (a.byteLength !== b.byteLength) return false;
  const u = new Uint8Array(a.buffer, a.byteOffset, a.byteLength), v = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  return u.every((x, i) => x === v[i]);
}

for (const pb of parityBackends) {
  describe(`crossEntropy [${pb.name}]`, () => {
    beforeAll(pb.setup);

    test("loss, gradient and statistics vs reference: both heads, both precisions, f32 and f64 logits", () => {
      const rng = new Rng(21);
      for (const head of HEADS) for (const precision of PRECS) for (const f64in of [false, true]) {
        for (const cols of COLS) for (const spread of [1, 6, 40]) {
          const rows = cols > 1000 ? 3 : 9;
          const vals = Array.from({ length: rows * cols }, () => spread * rng.normal());
          const z = f64in ? Float64Array.from(vals) : Float32Array.from(vals);
          const labels = Int32Array.from({ length: rows }, () => rng.int(cols));
          const zs = z.slice(), ls = labels.slice();
          const got = crossEntropy(z, labels, { cols, head, precision });
          const want = underReference(() => crossEntropy(z, labels, { cols, head, precision }));
          const lbl = `${head} ${precision} ${f64in ? "f64" : "f32"}-in cols=${cols} spread=${spread}`;
          expect(sameBits(z, zs) && sameBits(labels, ls)).toBe(true);
          expect(got.grad).toBeInstanceOf(f64in ? Float64Array : Float32Array);
          const shape = { head, rows, cols, precision, f32Logits: !f64in };
          expect(Math.abs(got.loss - want.loss), `${lbl} loss ${got.loss} vs ${want.loss}`).toBeLessThanOrEqual(pb.tol * crossEntropyLossBound(want.loss, shape));
          const gb = (i: number) => pb.tol * crossEntropyGradBound(want.grad![i]!, i % cols === labels[i / cols | 0], shape);
          expect(outsideBound(got.grad!, want.grad!, gb, lbl)).toBe("");
          expect(got.scFraction, lbl).toBe(want.scFraction);
          expect(got.zeroLossFraction, lbl).toBe(want.zeroLossFraction);
        }
      }
    });

    test("a StableMax row whose sum rounds up at every addition (1024, then terms just over half its ulp): within n = 16 + cols", () => {
      // one f32 running sum errs by (cols - 1) u here, the worst case (the softmax head's f32 sum runs in four lanes, in
      // the reference's order); wasm comes to 0.99 of the gradient bound at 4099 columns
      for (const cols of [1025, 4099]) for (const precision of PRECS) {
        const z = new Float32Array(cols).fill(-16382), labels = new Int32Array([1]);
        z[0] = 1023; // s = 1024; the others s = 1/16383, just over half an ulp of 1024 (2^-14)
        const got = crossEntropy(z, labels, { cols, head: "stablemax", precision });
        const want = underReference(() => crossEntropy(z, labels, { cols, head: "stablemax", precision }));
        const shape = { head: "stablemax", rows: 1, cols, precision, f32Logits: true } as const, lbl = `${precision} cols=${cols}`;
        expect(Math.abs(got.loss - want.loss), `${lbl} loss ${got.loss} vs ${want.loss}`).toBeLessThanOrEqual(pb.tol * crossEntropyLossBound(want.loss, shape));
        expect(outsideBound(got.grad!, want.grad!, (i) => pb.tol * crossEntropyGradBound(want.grad![i]!, i === 1, shape), lbl)).toBe("");
      }
    });

    test("Softmax Collapse: margin 20 gives scFraction 1 and an exactly zero correct-class gradient in f32, not in f64", () => {
      const rows = 16, cols = 10;
      const z = new Float32Array(rows * cols), labels = new Int32Array(rows);
      const rng = new Rng(4);
      for (let r = 0; r < rows; r++) {
        labels[r] = rng.int(cols);
        for (let c = 0; c < cols; c++) z[r * cols + c] = 3 + 0.5 * rng.next(); // others within [3, 3.5)
        z[r * cols + labels[r]!] = 23.5; // margin >= 20
      }
      const f32 = crossEntropy(z, labels, { cols, precision: "f32" });
      expect(f32.scFraction).toBe(1);
      expect(f32.zeroLossFraction).toBe(1);
      expect(f32.loss).toBe(0);
      for (let r = 0; r < rows; r++) {
        expect(f32.grad![r * cols + labels[r]!]).toBe(0); // learning on this row has stopped
        expect(f32.grad![r * cols + ((labels[r]! + 1) % cols)]).toBeGreaterThan(0); // the others still get a push
      }
      for (const logits of [z, Float64Array.from(z)]) {
        const f64 = crossEntropy(logits, labels, { cols, precision: "f64" });
        expect(f64.scFraction).toBe(0);
        expect(f64.zeroLossFraction).toBe(0);
        expect(f64.loss).toBeGreaterThan(0);
        for (let r = 0; r < rows; r++) {
          const g = f64.grad![r * cols + labels[r]!]!;
          expect(g).toBeLessThan(0);
          expect(g).toBeGreaterThan(-1e-8 * 10 / rows);
        }
      }
      // the f32 softmax itself says probability 1 for the correct class: that is the collapse
      const p = softmax(z, { cols });
      for (let r = 0; r < rows; r++) expect(p[r * cols + labels[r]!]).toBe(1);
      // the reference oracle agrees on every statistic
      const ref = underReference(() => crossEntropy(z, labels, { cols, precision: "f32" }));
      expect([ref.scFraction, ref.zeroLossFraction, ref.loss]).toEqual([1, 1, 0]);
    });

    test("collapse statistics count rows: a partly collapsed batch, both heads", () => {
      const cols = 5;
      // rows: collapsed (margin 30), clearly not (margin 1), collapsed but label wrong (loss > 0)
      const z = new Float32Array([30, 0, 0, 0, 0, 1, 0, 0, 0, 0, 30, 0, 0, 0, 0]);
      const labels = new Int32Array([0, 0, 1]);
      const s = crossEntropy(z, labels, { cols });
      expect(s.scFraction).toBeCloseTo(2 / 3, 12);
      expect(s.zeroLossFraction).toBeCloseTo(1 / 3, 12);
      expect(s.grad![0]).toBe(0);
      expect(s.grad![10 + 1]).toBeCloseTo(-1 / 3, 6);
      // stablemax: s(x) = x + 1 grows linearly, so a margin of 30 is far from collapse ...
      const st = crossEntropy(z, labels, { cols, head: "stablemax" });
      expect(st.scFraction).toBe(0);
      // ... and collapses only once the top s(z) absorbs the others' sum in f32 (z ~ 1e8)
      const big = new Float32Array([1e8, 0, 0, 0, 0]);
      expect(crossEntropy(big, new Int32Array([0]), { cols, head: "stablemax" }).scFraction).toBe(1);
      expect(crossEntropy(big, new Int32Array([0]), { cols, head: "stablemax", precision: "f64" }).scFraction).toBe(0);
    });

    test("gradients match central finite differences of the loss (f64, both heads)", () => {
      const rng = new Rng(8);
      for (const head of HEADS) {
        for (const cols of [1, 3, 7, 12]) {
          const rows = 3;
          const z = Float64Array.from({ length: rows * cols }, () => 2 * rng.normal());
          const labels = Int32Array.from({ length: rows }, () => rng.int(cols));
          const { grad } = crossEntropy(z, labels, { cols, head, precision: "f64" });
          const h = 1e-5;
          for (let k = 0; k < z.length; k++) {
            const zp = z.slice(), zm = z.slice();
            zp[k]! += h;
            zm[k]! -= h;
            const fd = (crossEntropy(zp, labels, { cols, head, grad: false }).loss - crossEntropy(zm, labels, { cols, head, grad: false }).loss) / (2 * h);
            expect(Math.abs(grad![k]! - fd), `${head} cols=${cols} k=${k}: ${grad![k]} vs ${fd}`).toBeLessThanOrEqual(FD_TOL * pb.tol);
          }
        }
      }
    });

    test("grad: false returns no gradient and the same loss", () => {
      const z = new Float32Array([1, 2, 3, 4, 5, 6]), labels = new Int32Array([2, 0]);
      const a = crossEntropy(z, labels, { cols: 3 }), b = crossEntropy(z, labels, { cols: 3, grad: false });
      expect(b.grad).toBeUndefined();
      expect(b.loss).toBe(a.loss);
      expect(a.loss).toBeCloseTo(((Math.log(Math.exp(1) + Math.exp(2) + Math.exp(3)) - 3) + (Math.log(Math.exp(4) + Math.exp(5) + Math.exp(6)) - 4)) / 2, 6);
    });

    test("NaN, +Infinity or all -Infinity in a row: its loss is NaN and only its gradient row is NaN", () => {
      for (const head of HEADS) for (const precision of PRECS) {
        const cols = 6;
        const z = new Float32Array(30);
        z.set([1, 2, 3, 4, 5, 6, 1, NaN, 0, 0, 0, 0, 0, 0, Infinity, 0, 0, 0, 1, 1, 1, 1, 1, 2]);
        z.fill(-Infinity, 24, 30);
        const zz = z.slice();
        const labels = new Int32Array([5, 0, 1, 3, 2]);
        const r = crossEntropy(zz, labels, { cols, head, precision });
        expect(Number.isNaN(r.loss)).toBe(true);
        for (const row of [1, 2, 4]) expect(r.grad!.subarray(row * cols, row * cols + cols).every(Number.isNaN), `${head} ${precision} row ${row}`).toBe(true);
        for (const row of [0, 3]) expect(r.grad!.subarray(row * cols, row * cols + cols).some(Number.isNaN)).toBe(false);
        // the clean rows are unaffected: compare with a batch of just those rows (gradients scale by 1/rows)
        const clean = crossEntropy(new Float32Array([...z.subarray(0, 6), ...z.subarray(18, 24)]), new Int32Array([5, 3]), { cols, head, precision });
        for (let i = 0; i < 6; i++) {
          expect(r.grad![i]! * 5).toBeCloseTo(clean.grad![i]! * 2, 6);
          expect(r.grad![18 + i]! * 5).toBeCloseTo(clean.grad![6 + i]! * 2, 6);
        }
      }
    });

    test("-Infinity logits: zero gradient there; an -Infinity correct class gives loss +Infinity", () => {
      const z = new Float32Array([-Infinity, 0, 1, 2, -Infinity, 0]), labels = new Int32Array([1, 1]);
      for (const precision of PRECS) {
        const r = crossEntropy(z, labels, { cols: 3, precision });
        expect(r.grad![0]).toBe(0);
        expect(r.loss).toBe(Infinity);
        expect(r.grad![4]).toBeCloseTo(-0.5, 7);
      }
    });
  });
}

describe("crossEntropy gradOut", () => {
  test("writes the gradient into gradOut (alloc'd: zero-copy) and returns it; equals the fresh-array gradient", () => {
    const cols = 37, rows = 19;
    const z = Float32Array.from({ length: rows * cols }, (_, i) => Math.sin(i * 1.3) * 6);
    const labels = Int32Array.from({ length: rows }, (_, i) => (i * 7) % cols);
    const fresh = crossEntropy(z, labels, { cols }).grad!;
    for (const gradOut of [new Float32Array(rows * cols), alloc(rows * cols)]) {
      const r = crossEntropy(z, labels, { cols, gradOut });
      expect(r.grad === gradOut).toBe(true);
      expect(Array.from(gradOut)).toEqual(Array.from(fresh));
    }
    const z64 = Float64Array.from(z), g64 = new Float64Array(rows * cols);
    expect(crossEntropy(z64, labels, { cols, precision: "f32", gradOut: g64 }).grad).toBe(g64);
    expect(Array.from(g64)).toEqual(Array.from(fresh));
  });
  test("bad gradOut: wrong type, wrong length, overlapping logits, or with grad: false", () => {
    const z = new Float32Array(6), labels = new Int32Array([0, 1]);
    const code = (f: () => unknown) => { try { f(); } catch (e) { return (e as NumedgeError).code; } return "none"; };
    expect(code(() => crossEntropy(z, labels, { cols: 3, gradOut: new Float64Array(6) }))).toBe("dtype");
    expect(code(() => crossEntropy(z, labels, { cols: 3, gradOut: new Float32Array(5) }))).toBe("shape");
    expect(code(() => crossEntropy(z, labels, { cols: 3, gradOut: z }))).toBe("shape");
    expect(code(() => crossEntropy(z, labels, { cols: 3, gradOut: new Float32Array(6), grad: false }))).toBe("range");
  });
});

describe("crossEntropy: gradOut overlapping labels", () => {
  test("gradOut sharing bytes with labels is a shape error naming both", () => {
    const ab = new ArrayBuffer(24);
    const z = new Float32Array([1, 2, 3, 3, 2, 1]);
    const gradOut = new Float32Array(ab), labels = new Int32Array(ab, 16, 2);
    expectError(() => crossEntropy(z, labels, { cols: 3, gradOut }), "shape", "gradOut", "labels");
  });
});
