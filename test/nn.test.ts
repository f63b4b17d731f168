// The training stack of the grokking experiment: MLP gradient by finite differences (f64), ⊥Grad, AdamW,
// the modular-arithmetic split, and Softmax Collapse measured through the MLP path. Runs on every backend.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  AdamW, DeviceArray, GROK_ARMS, GrokRun, MLP, NumedgeError, crossEntropy, dot, l2norm, modularData, nlmCosine, orthoGrad,
  orthogonalize, setBackend, type FloatArray, type Optimizer,
} from "numedge";
import { parityBackends } from "./parity.ts";

const backends = [...parityBackends, { name: "reference", setup: () => setBackend("reference"), tol: 1 }];
afterAll(() => setBackend("wasm"));

function randn(n: number, seed: number, Ctor: new (n: number) => FloatArray = Float64Array): FloatArray {
  const a = new Ctor(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = (s / 2 ** 32) * 2 - 1;
  }
  return a;
}

for (const pb of backends) {
  describe(`MLP gradient by finite differences, f64 [${pb.name}]`, () => {
    beforeAll(pb.setup);
    for (const head of ["softmax", "stablemax"] as const) {
      test(`${head} head: every parameter's dL/dw matches central differences`, () => {
        const p = 5, rows = 9;
        const net = new MLP({ inputs: 2 * p, hidden: [7, 6], outputs: p, seed: 3, dtype: "f64" });
        for (const w of net.params) for (let i = 0; i < w.length; i++) w[i]! *= 3; // larger logits: a less trivial loss
        const idx = new Int32Array(2 * rows), labels = new Int32Array(rows);
        for (let r = 0; r < rows; r++) { idx[2 * r] = (r * 3) % p; idx[2 * r + 1] = p + ((r * 2 + 1) % p); labels[r] = (r * 4) % p; }
        const lossOf = () => crossEntropy(net.forward(idx, rows), labels, { cols: p, head, precision: "f64", grad: false }).loss;
        const ce = crossEntropy(net.forward(idx, rows), labels, { cols: p, head, precision: "f64" });
        net.backward(ce.grad!, idx);
        const h = 1e-6;
        let checked = 0;
        net.params.forEach((w, l) => {
          const g = net.grads[l]!;
          for (let i = 0; i < w.length; i++) {
            const w0 = w[i]!;
            w[i] = w0 + h; const up = lossOf();
            w[i] = w0 - h; const dn = lossOf();
            w[i] = w0;
            const fd = (up - dn) / (2 * h);
            expect(Math.abs(g[i]! - fd)).toBeLessThan(1e-7 + 1e-6 * Math.abs(fd));
            checked++;
          }
        });
        expect(checked).toBe(2 * p * 7 + 7 * 6 + 6 * p);
        expect(l2norm(net.grads)).toBeGreaterThan(1e-3); // not vacuous
      });
    }

    test("f32 MLP gradient agrees with the f64 one to f32 accuracy", () => {
      const p = 11, rows = 40;
      const d = modularData({ p, frac: 0.5, seed: 1 });
      const n64 = new MLP({ inputs: 2 * p, hidden: [13, 9], outputs: p, seed: 5, dtype: "f64" });
      const n32 = new MLP({ inputs: 2 * p, hidden: [13, 9], outputs: p, seed: 5 });
      const idx = d.train.idx.slice(0, 2 * rows), labels = d.train.labels.slice(0, rows);
      for (const n of [n32, n64]) {
        const ce = crossEntropy(n.forward(idx, rows), labels, { cols: p });
        n.backward(ce.grad!, idx);
      }
      n64.grads.forEach((g, l) => {
        const diff = Float64Array.from(g, (v, i) => v - n32.grads[l]![i]!);
        expect(l2norm(diff)).toBeLessThan(1e-5 * l2norm(g));
      });
    });
  });

  describe(`Softmax Collapse through the MLP path [${pb.name}]`, () => {
    beforeAll(pb.setup);
    test("constructed logits: margin 30 collapses in f32 but not f64; margin 5 never", () => {
      // A linear model (no hidden layer): logits = W[a] + W[p + b]; W[p + b] puts margin 30 (b even) or 5 (b odd) on class b.
      const p = 13;
      const mk = (precision: "f32" | "f64") => {
        const run = new GrokRun({ ...GROK_ARMS.baseline, precision, p, op: "add", frac: 0.5, hidden: [], seed: 2, lr: 0.01 });
        const w = new Float32Array((run.model.params[0] as DeviceArray).length);
        for (let b = 0; b < p; b++) w[(p + b) * p + b] = b % 2 === 0 ? 30 : 5;
        (run.model.params[0] as DeviceArray).write(w); // the run keeps its model on the backend
        return run;
      };
      const tr = modularData({ p, frac: 0.5, seed: 2 }).train;
      let even = 0, zero = 0;
      for (let r = 0; r < tr.rows; r++) {
        const a = tr.idx[2 * r]!, b = tr.idx[2 * r + 1]! - p;
        if (b % 2 === 0) { even++; if (a === 0) zero++; }
      }
      expect(even).toBeGreaterThan(0);
      const s32 = mk("f32").train(false);
      expect(s32.scFraction).toBeCloseTo(even / tr.rows, 12);
      // Collapsed rows whose label is the top class have loss exactly 0 in f32 (the reference sums in f32 too).
      expect(s32.zeroLossFraction).toBeCloseTo(zero / tr.rows, 12);
      expect(s32.maxLogit).toBe(30);
      expect(mk("f64").train(false).scFraction).toBe(0);
    });
  });
}

describe("⊥Grad (OrthoGrad)", () => {
  for (const Ctor of [Float32Array, Float64Array]) {
    test(`${Ctor.name}: w·g⊥ ≈ 0 and ‖g⊥‖ = ‖g‖`, () => {
      const w = randn(1001, 1, Ctor), g = randn(1001, 2, Ctor);
      for (let i = 0; i < g.length; i++) g[i]! += 0.3 * w[i]!; // a real component along w to remove
      const nw = l2norm(w), ng = l2norm(g), before = dot(w, g);
      expect(Math.abs(before)).toBeGreaterThan(0.1 * nw * ng);
      // independently: g⊥ = (g - p w) * ‖g‖ / ‖g - p w‖ with p = (w·g)/(w·w)
      const p = before / (nw * nw), r = Float64Array.from(g, (v, i) => v - p * w[i]!), want = r.map((v) => (v * ng) / l2norm(r));
      orthogonalize(w, g);
      const tol = Ctor === Float32Array ? 1e-6 : 1e-13;
      g.forEach((v, i) => expect(Math.abs(v - want[i]!)).toBeLessThan(tol * ng));
      expect(Math.abs(dot(w, g)) / (nw * ng)).toBeLessThan(tol);
      expect(Math.abs(l2norm(g) / ng - 1)).toBeLessThan(tol);
    });
  }
  test("zero weights leave the gradient unchanged; length mismatch throws", () => {
    const g = Float32Array.from([1, -2, 3]), w = new Float32Array(3);
    orthogonalize(w, g);
    expect(Array.from(g)).toEqual([1, -2, 3]);
    expect(() => orthogonalize(new Float32Array(2), g)).toThrow(NumedgeError);
  });
  test("orthoGrad(base) hands the base optimizer only g⊥, per tensor", () => {
    const seen: FloatArray[][] = [];
    const spy: Optimizer = { step: (_p, g) => void seen.push(g.map((x) => (x as FloatArray).slice())) };
    const params = [randn(50, 3), randn(20, 4)], grads = [randn(50, 5), randn(20, 6)];
    const norms = grads.map((g) => l2norm(g));
    orthoGrad(spy).step(params, grads);
    expect(seen.length).toBe(1);
    seen[0]!.forEach((g, i) => {
      expect(Math.abs(dot(params[i]!, g))).toBeLessThan(1e-12);
      expect(l2norm(g)).toBeCloseTo(norms[i]!, 12);
    });
  });
  test("NLM cosine is cos(-g, w)", () => {
    const w = Float64Array.from([1, 2, 2]);
    expect(nlmCosine(w, Float64Array.from([-2, -4, -4]))).toBeCloseTo(1, 15);
    expect(nlmCosine(w, Float64Array.from([2, -1, 0]))).toBeCloseTo(0, 15);
    expect(nlmCosine(w, new Float64Array(3))).toBe(0);
  });
});

describe("AdamW", () => {
  for (const pb of backends) {
    test(`[${pb.name}] two steps against hand-computed values (PyTorch AdamW)`, async () => {
      await pb.setup();
      const lr = 0.01, b1 = 0.9, b2 = 0.99, eps = 1e-8, wd = 0.1;
      const w0 = [1, -2, 0.5], g1 = [0.1, -0.3, 2], g2 = [-0.2, 0.1, 1];
      // Step 1 by hand: m̂ = g, v̂ = g², so w1 = w0 (1 - lr wd) - lr g / (|g| + eps).
      const step1 = [0.989000001, -1.9880000003333333, 0.48950000005];
      // Step 2 from the formula.
      const m = g1.map((g, i) => 0.9 * 0.1 * g + 0.1 * g2[i]!), v = g1.map((g, i) => 0.99 * 0.01 * g * g + 0.01 * g2[i]! ** 2);
      const step2 = step1.map((w, i) => w * (1 - lr * wd) - (lr / (1 - b1 ** 2)) * m[i]! / (Math.sqrt(v[i]!) / Math.sqrt(1 - b2 ** 2) + eps));
      for (const Ctor of [Float64Array, Float32Array]) {
        const tol = Ctor === Float64Array ? 1e-12 : 2e-7;
        const params = [Ctor.from(w0)], opt = new AdamW({ lr, beta1: b1, beta2: b2, eps, weightDecay: wd });
        opt.step(params, [Ctor.from(g1)]);
        params[0]!.forEach((x, i) => expect(Math.abs(x - step1[i]!)).toBeLessThan(tol * Math.max(1, Math.abs(step1[i]!))));
        opt.step(params, [Ctor.from(g2)]);
        params[0]!.forEach((x, i) => expect(Math.abs(x - step2[i]!)).toBeLessThan(tol * Math.max(1, Math.abs(step2[i]!))));
        expect(opt.t).toBe(2);
      }
      await setBackend("wasm");
    });
  }
  test("mismatched params/grads lists throw", () => {
    expect(() => new AdamW({ lr: 0.1 }).step([new Float32Array(2)], [])).toThrow(NumedgeError);
  });
});

describe("modular-arithmetic data", () => {
  test("same seed -> identical split; another seed -> another split", () => {
    const a = modularData({ p: 31, op: "add", frac: 0.4, seed: 7 }), b = modularData({ p: 31, op: "add", frac: 0.4, seed: 7 });
    expect(a.train.idx).toEqual(b.train.idx);
    expect(a.test.labels).toEqual(b.test.labels);
    const c = modularData({ p: 31, op: "add", frac: 0.4, seed: 8 });
    expect(c.train.idx).not.toEqual(a.train.idx);
  });
  for (const [op, f] of [["add", (x: number, y: number, p: number) => (x + y) % p], ["sub", (x: number, y: number, p: number) => (x - y + p) % p], ["mul", (x: number, y: number, p: number) => (x * y) % p]] as const) {
    test(`${op}: train and test partition all p^2 pairs; labels are (a ${op} b) mod p; 2-hot positions a, p + b`, () => {
      const p = 17, d = modularData({ p, op, frac: 0.3, seed: 1 });
      expect(d.train.rows).toBe(Math.floor(0.3 * p * p));
      expect(d.train.rows + d.test.rows).toBe(p * p);
      const seen = new Set<number>();
      for (const s of [d.train, d.test])
        for (let r = 0; r < s.rows; r++) {
          const a = s.idx[2 * r]!, b = s.idx[2 * r + 1]! - p;
          expect(a >= 0 && a < p && b >= 0 && b < p).toBe(true);
          expect(s.labels[r]).toBe(f(a, b, p));
          seen.add(a * p + b);
        }
      expect(seen.size).toBe(p * p);
    });
  }
  test("bad arguments throw NumedgeError naming them", () => {
    expect(() => modularData({ p: 1, frac: 0.5, seed: 0 })).toThrow(/p must be/);
    expect(() => modularData({ p: 7, frac: 1, seed: 0 })).toThrow(/frac/);
    expect(() => modularData({ p: 7, frac: 0.5, seed: 0, op: "div" as never })).toThrow(/op/);
    expect(() => modularData({ p: 2, frac: 0.1, seed: 0 })).toThrow(/frac/);
  });
});

describe("MLP", () => {
  test("PyTorch default init: U(±1/sqrt(fan_in)) per layer, seeded", () => {
    const a = new MLP({ inputs: 50, hidden: [40], outputs: 10, seed: 1 }), b = new MLP({ inputs: 50, hidden: [40], outputs: 10, seed: 1 });
    expect(a.params[0]).toEqual(b.params[0]!);
    a.params.forEach((w, l) => {
      const bound = 1 / Math.sqrt(a.sizes[l]!);
      let mx = 0, sum2 = 0;
      for (const v of w) { mx = Math.max(mx, Math.abs(v)); sum2 += v * v; }
      expect(mx).toBeLessThanOrEqual(bound);
      expect(mx).toBeGreaterThan(0.95 * bound);
      expect(sum2 / w.length).toBeCloseTo(bound * bound / 3, 2); // variance of U(-b, b)
    });
  });
  test("bad shapes throw", () => {
    const net = new MLP({ inputs: 10, hidden: [4], outputs: 5, seed: 0 });
    expect(() => net.forward(new Int32Array(3), 2)).toThrow(NumedgeError);
    expect(() => net.backward(new Float32Array(10), new Int32Array(4))).toThrow(/no matching forward/);
    expect(() => new MLP({ inputs: 10, hidden: [0], outputs: 5, seed: 0 })).toThrow(/hidden\[0\]/);
  });
});

describe("AdamW: argument checks before any update", () => {
  test("bad hyperparameters throw in the constructor", () => {
    for (const o of [{ lr: -1 }, { lr: NaN }, { lr: 0.1, beta1: 1 }, { lr: 0.1, beta2: -0.1 }, { lr: 0.1, eps: 0 }, { lr: 0.1, weightDecay: -1 }, { lr: "1" as never }]) {
      let err: unknown;
      try { new AdamW(o); } catch (e) { err = e; }
      expect(err).toBeInstanceOf(NumedgeError);
    }
  });
  test("a bad tensor pair throws before any tensor is updated or the step count advances", () => {
    const w1 = new Float32Array([1, 2]), w2 = new Float32Array([3, 4, 5]);
    const opt = new AdamW({ lr: 0.1 });
    expect(() => opt.step([w1, w2], [new Float32Array([1, 1]), new Float32Array(2)])).toThrow(NumedgeError);
    expect(Array.from(w1)).toEqual([1, 2]);
    expect(opt.t).toBe(0);
    expect(() => opt.step([w1], [new Float64Array(2) as never])).toThrow(NumedgeError);
    expect(opt.t).toBe(0);
    opt.step([w1, w2], [new Float32Array([1, 1]), new Float32Array([1, 1, 1])]);
    expect(opt.t).toBe(1);
    expect(w1[0]).toBeCloseTo(0.9, 6); // first step: w - lr * sign(g)
  });
});
