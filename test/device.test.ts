// DeviceArrays: storage on every backend (toDevice / empty / read / readSync / dispose), every op run with host
// arrays and with DeviceArrays giving the same bits, results staying on the inputs' backend, and the errors for
// mixing backends, mixing host and device arrays, and using a disposed array.
import { afterAll, describe, expect, spyOn, test } from "bun:test";
import {
  DeviceArray, NumedgeError, adamwStep, backendInfo, crossEntropy, embeddingSum, embeddingSumBackward, empty, logSoftmax, logStablemax,
  AdamW, MLP, modularData, Adam8bit, absmaxOf, combine, dequantize4bit, dequantizeAffine, dequantizeBlockwise, dequantizeQ4_0, dequantizeQ8_0, matmul, quantize4bit,
  quantizeAffine, quantizeBlockwise, quantizeQ4_0, quantizeQ8_0, relu, reluBackward, route, setBackend, softmax, stablemax, toDevice, topk,
  updateBias, type HostOf, type RouteOptions,
} from "numedge";
import { getBackend } from "../src/backends/index.ts";
import { expectError, uniform } from "./helpers.ts";
import { parityBackends } from "./parity.ts";

// every parity backend (tfjs engines, cuda where a GPU is, wasm) and the reference
const BACKENDS = [...parityBackends.map((b) => b.name), "reference"];
afterAll(() => setBackend("wasm"));

type Host = HostOf[keyof HostOf];
/** Turns a host array into the kind of argument a run uses. */
type Put = (x: Host) => unknown;

/** Everything an op returned, as host arrays and numbers, for a bitwise comparison. */
async function flatten(v: unknown): Promise<unknown> {
  if (v instanceof DeviceArray) return Array.from(await v.read());
  if (ArrayBuffer.isView(v)) return Array.from(v as Float32Array);
  if (typeof v === "number") return [v];
  if (v && typeof v === "object") {
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) o[k] = await flatten(x);
    return o;
  }
  return v;
}

/** Scalars a host call returns as numbers come back in a device call's f64 `stats` array: compare those. */
function hostStats(r: Record<string, unknown>, keys: string[]): Record<string, unknown> {
  const rest = { ...r };
  for (const k of keys) delete rest[k];
  return { ...rest, stats: Float64Array.from(keys.map((k) => r[k] as number)) };
}

const rnd = uniform(7);
const floats = (n: number, s = 6) => Float32Array.from({ length: n }, () => (rnd() - 0.5) * s);

/** Each case runs an op with `put` applied to every array argument. */
const CASES: Record<string, { run: (put: Put) => unknown; stats?: string[] }> = {};
const X = floats(7 * 37), X64 = Float64Array.from(floats(5 * 9)), LAB = Int32Array.from({ length: 7 }, (_, i) => (i * 5) % 37);
for (const [name, op] of Object.entries({ softmax, logSoftmax, stablemax, logStablemax })) {
  CASES[`${name} f32`] = { run: (put) => (op as (x: unknown, o: object) => unknown)(put(X), { cols: 37 }) };
  CASES[`${name} f64`] = { run: (put) => (op as (x: unknown, o: object) => unknown)(put(X64), { cols: 9 }) };
}
CASES["softmax out, temperature"] = { run: (put) => { const out = put(new Float32Array(X.length)); softmax(put(X) as Float32Array, { cols: 37, out: out as Float32Array, temperature: 0.5 }); return out; } };
CASES["crossEntropy softmax f32"] = { run: (put) => crossEntropy(put(X) as Float32Array, put(LAB) as Int32Array, { cols: 37 }), stats: ["loss", "scFraction", "zeroLossFraction"] };
CASES["crossEntropy stablemax f64 precision, gradOut"] = {
  run: (put) => {
    const g = put(new Float32Array(X.length));
    const r = crossEntropy(put(X) as Float32Array, put(LAB) as Int32Array, { cols: 37, head: "stablemax", precision: "f64", gradOut: g as Float32Array });
    return { ...r, gradOutSame: r.grad === g };
  },
  stats: ["loss", "scFraction", "zeroLossFraction"],
};

// inputs drawn once: run() is called twice (host, device) and must see the same data
const A = floats(5 * 7), B = floats(7 * 3), C = floats(5 * 3), IDX = Int32Array.from([0, 4, 3, 1, 4, 4]);
const R35 = [floats(35), floats(35), floats(35, 0.1), Float32Array.from(floats(35), Math.abs)], R9 = floats(9);
const F = (v: unknown) => v as Float32Array;
CASES["matmul"] = { run: (put) => matmul(F(put(A)), F(put(B)), { m: 5, k: 7, n: 3 }) };
CASES["matmul transA transB accumulate"] = {
  run: (put) => { const out = F(put(C)); matmul(F(put(A)), F(put(B)), { m: 5, k: 7, n: 3, transA: true, transB: true, accumulate: true, out }); return out; },
};
CASES["matmul f64"] = { run: (put) => matmul(put(Float64Array.from(A)) as Float64Array, put(Float64Array.from(B)) as Float64Array, { m: 5, k: 7, n: 3 }) };
CASES["relu, in place"] = { run: (put) => { const x = F(put(A)); return [relu(x), relu(x, { out: x }), x]; } };
CASES["reluBackward"] = { run: (put) => reluBackward(F(put(A)), F(put(R35[0]!))) };
CASES["embeddingSum"] = { run: (put) => embeddingSum(F(put(A)), put(IDX) as Int32Array, { cols: 7, per: 2 }) };
CASES["embeddingSumBackward (in place on dw)"] = {
  run: (put) => { const dw = F(put(C)); embeddingSumBackward(F(put(R9)), put(IDX) as Int32Array, dw, { cols: 3, per: 2 }); return dw; },
};
CASES["adamwStep (in place on w, m, v)"] = {
  run: (put) => {
    const [w, g, m, v] = [A, R35[1]!, R35[2]!, R35[3]!].map(put) as Float32Array[];
    for (let step = 1; step <= 3; step++) adamwStep(w!, g!, m!, v!, { lr: 0.01, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1, step });
    return [w, m, v];
  },
};

const Z = floats(33 * 8, 4), BIAS = floats(8, 0.5), COUNTS = Int32Array.from([5, 0, 9, 3, 3, 7, 1, 4]);
CASES["topk sorted"] = { run: (put) => topk(F(put(X)), { cols: 37, k: 5 }) };
CASES["topk unsorted into out"] = {
  run: (put) => { const out = { values: F(put(new Float32Array(14))), indices: put(new Int32Array(14)) as Int32Array }; topk(F(put(X)), { cols: 37, k: 2, sorted: false, out }); return out; },
};
const ROUTES: Record<string, Partial<RouteOptions>> = {
  "mixtral, capacity, grads": { k: 2, normalize: true, capacityFactor: 1, grad: true },
  "deepseek: sigmoid, bias, groups": { k: 3, scoring: "sigmoid", groups: 4, topkGroups: 2, normalize: true, scale: 2.5 },
  "expert choice, stablemax": { k: 2, expertChoice: true, scoring: "stablemax", normalize: true, auxConvention: "normalized", grad: true },
};
for (const [name, ro] of Object.entries(ROUTES)) {
  const withBias = name.includes("bias");
  CASES[`route ${name}`] = {
    run: (put) => route(F(put(Z)), { experts: 8, ...ro, ...(withBias ? { bias: F(put(BIAS)) } : {}) } as RouteOptions),
    stats: ["dropped", "auxLoss", "zLoss"],
  };
}
CASES["route then combine"] = {
  run: (put) => {
    const r = route(F(put(Z)), { experts: 8, k: 2, capacityFactor: 0.75 });
    const kept = r.offsets instanceof Int32Array ? r.offsets[8]! : (r.offsets as unknown as DeviceArray).readSync()[8]!;
    return combine(F(put(Float32Array.from({ length: kept * 5 }, (_, i) => Math.sin(i)))), r, { hidden: 5 });
  },
};
CASES["updateBias (in place)"] = { run: (put) => { const b = F(put(BIAS)); updateBias(b, put(COUNTS) as Int32Array, 1e-3); return b; } };

const W = floats(1000, 3), W64 = Float64Array.from(floats(320)), SC = Float32Array.from([0.02, 0.05, 0.01, 0.03]), ZP = Int32Array.from([0, 3, -5, 127]);
const q8 = (x: unknown) => x as never; // quantizers are overloaded on host/device: the runs mix them freely
CASES["quantizeBlockwise nearest, dequantize"] = { run: (put) => { const q = quantizeBlockwise(q8(put(W)), { blockSize: 64 }); return { q, y: dequantizeBlockwise(q8(q)) }; } };
CASES["quantizeBlockwise stochastic, f64 input, tensor block"] = { run: (put) => quantizeBlockwise(q8(put(W64)), { blockSize: "tensor", rounding: "stochastic", seed: 9 }) };
CASES["quantizeBlockwise into out"] = {
  run: (put) => { const out = { codes: put(new Uint8Array(1000)), absmax: put(new Float32Array(8)) }; quantizeBlockwise(q8(put(W)), { blockSize: 128, code: "linear", out: q8(out) }); return out; },
};
CASES["quantize4bit nf4 double quant, absmaxOf, dequantize"] = {
  run: (put) => { const q = quantize4bit(q8(put(W)), { type: "nf4", blockSize: 32, doubleQuant: true }); return { packed: q.packed, nested: q.absmax, am: absmaxOf(q8(q)), y: dequantize4bit(q8(q)) }; },
};
CASES["quantize4bit fp4, dequantize"] = { run: (put) => { const q = quantize4bit(q8(put(W)), { type: "fp4" }); return { q, y: dequantize4bit(q8(q)) }; } };
CASES["quantizeAffine row int8, dequantize"] = { run: (put) => { const q = quantizeAffine(q8(put(W)), { bits: 8, axis: "row", cols: 250 }); return { q, y: dequantizeAffine(q8(q)) }; } };
CASES["quantizeAffine uint8 block"] = { run: (put) => quantizeAffine(q8(put(W)), { bits: 8, signed: false, axis: "block", blockSize: 96 }) };
CASES["quantizeAffine given scale and zero point"] = {
  run: (put) => { const q = quantizeAffine(q8(put(W)), { bits: 8, axis: "row", cols: 250, scale: q8(put(SC)), zeroPoint: q8(put(ZP)) }); return { q, y: dequantizeAffine(q8(q)) }; },
};
CASES["Q8_0 and Q4_0 both ways"] = {
  run: (put) => {
    const x = put(W64.subarray(0, 320));
    const b8 = quantizeQ8_0(q8(x)) as unknown, b4 = quantizeQ4_0(q8(x)) as unknown;
    const bytes = (b: unknown) => (b instanceof Uint8Array ? b : (b as { bytes: DeviceArray }).bytes);
    return { b8: bytes(b8), b4: bytes(b4), y8: dequantizeQ8_0(q8(bytes(b8)), 320), y4: dequantizeQ4_0(q8(bytes(b4)), 320) };
  },
};
const A8 = [floats(5000), floats(100), floats(5000, 0.1), floats(100, 0.1)];
CASES["Adam8bit: 8-bit and f32 states, 3 steps"] = {
  run: (put) => {
    const ps = [put(A8[0]!), put(A8[1]!)] as Float32Array[], gs = [A8[2]!, A8[3]!].map(put) as Float32Array[];
    const opt = new Adam8bit(ps, { lr: 1e-2, weightDecay: 0.01 });
    for (let t = 0; t < 3; t++) opt.step(gs);
    return { ps, m0: opt.moments(0), m1: opt.moments(1) };
  },
};

for (const be of BACKENDS) {
  describe(`DeviceArray on ${be}`, () => {
    test("storage: toDevice / read / readSync / empty / dispose, every dtype", async () => {
      await setBackend(be);
      const id = backendInfo().id;
      for (const h of [floats(5), Float64Array.from([1.5, -2, 1e300]), Int32Array.from([-7, 0, 2 ** 31 - 1]), Uint8Array.from([0, 255, 9]), Int8Array.from([-128, 127, 0])]) {
        const d = toDevice(h);
        expect(d.backend).toBe(id);
        expect(d.length).toBe(h.length);
        expect(d.readSync()).toEqual(h as never);
        expect(await d.read()).toEqual(h as never);
        expect(d.readSync()).not.toBe(h); // a copy
        h.fill(0 as never);
        expect(d.readSync()).not.toEqual(h as never); // toDevice copied too
        d.dispose();
        d.dispose(); // idempotent
        expect(d.disposed).toBe(true);
        expectError(() => d.readSync(), "backend", "disposed");
      }
      const e = empty(9, "i32");
      expect(Array.from(e.readSync())).toEqual(new Array(9).fill(0));
      expect(empty(0, "f32").readSync().length).toBe(0);
      e.write(Int32Array.from({ length: 9 }, (_, i) => i));
      expect(e.version).toBe(1);
      expect(Array.from(await e.read())).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
      expectError(() => e.write(new Float32Array(9) as never), "shape", "Int32Array(9)");
      expectError(() => empty(-1, "f32"), "range", "length");
      expectError(() => empty(3, "f16" as never), "dtype", "dtype");
      expectError(() => toDevice([1, 2] as never), "dtype", "x must be");
      expectError(() => toDevice(new Float32Array(2), { backend: "nope" }), "backend", "not loaded");
      expectError(() => toDevice(new Float32Array(2), { bakend: "wasm" } as never), "range", "bakend");
    });

    for (const [name, c] of Object.entries(CASES)) {
      test(`${name}: DeviceArrays in give DeviceArrays out on ${be}, same bits as host arrays`, async () => {
        await setBackend(be);
        const id = backendInfo().id;
        const raw = c.run((x) => x.slice()) as Record<string, unknown>; // a copy: some ops work in place
        const host = await flatten(c.stats ? hostStats(raw, c.stats) : raw);
        const withBad = (v: unknown): unknown => {
          // device quantizers report their bad block (-1: none) where host ones would have thrown
          if (!v || typeof v !== "object" || Array.isArray(v)) return v;
          const o = Object.fromEntries(Object.entries(v).map(([k, x]) => [k, withBad(x)]));
          return "blockSize" in o || "group" in o ? { ...o, bad: [-1] } : o;
        };
        const made: DeviceArray[] = [];
        const dev = c.run((x) => { const d = toDevice(x); made.push(d); return d; });
        const outs: unknown[] = [];
        const collect = (v: unknown): void => {
          if (v instanceof DeviceArray) outs.push(v);
          else if (v && typeof v === "object" && !ArrayBuffer.isView(v)) Object.values(v).forEach(collect);
        };
        collect(dev);
        for (const o of outs) if (!made.includes(o as DeviceArray)) made.push(o as DeviceArray);
        expect(outs.length).toBeGreaterThan(0);
        for (const o of outs) expect((o as DeviceArray).backend).toBe(id);
        expect(await flatten(dev)).toEqual(withBad(host) as never);
        for (const d of made) d.dispose();
      });
    }
  });
}

describe("golden vectors on the DeviceArray path", () => {
  for (const be of BACKENDS)
    test(`${be}: softmax family (golden x = [-2, 0, 0.5]) and MegaBlocks dispatch`, async () => {
      await setBackend(be);
      const x = toDevice(Float32Array.from([-2, 0, 0.5]));
      const close = async (d: DeviceArray, want: number[], digits = 6) => (await d.read() as Float32Array).forEach((v, i) => expect(v).toBeCloseTo(want[i]!, digits));
      await close(softmax(x, { cols: 3 }), [0.048611, 0.359188, 0.592201]);
      await close(softmax(x, { cols: 3, temperature: 2 }), [0.138723, 0.377087, 0.48419]);
      await close(logSoftmax(x, { cols: 3 }), [-3.023909, -1.023909, -0.523909]);
      await close(stablemax(x, { cols: 3 }), [0.117647, 0.352941, 0.529412]);
      const top = [[2, 0], [1, 2], [0, 2], [3, 1]], z = new Float32Array(16);
      top.forEach(([a, b], t) => { z[t * 4 + a!] = 5; z[t * 4 + b!] = 4; });
      const r = route(toDevice(z), { experts: 4, k: 2 });
      expect(Array.from(await r.experts.read())).toEqual(top.flat());
      expect(Array.from(await r.order.read())).toEqual([1, 4, 2, 7, 0, 3, 5, 6]);
      expect(Array.from(await r.counts.read())).toEqual([2, 2, 3, 1]);
      expect(Array.from(await r.offsets.read())).toEqual([0, 2, 4, 7, 8]);
      expect((await r.stats.read())[0]).toBe(0); // nothing dropped
      await setBackend("wasm");
    });
});

describe("quantizers on DeviceArrays report a non-finite block in `bad` instead of throwing", () => {
  for (const be of BACKENDS)
    test(be, async () => {
      await setBackend(be);
      const h = floats(1000);
      h[300] = NaN;
      h[999] = Infinity;
      const x = toDevice(h);
      expect(quantizeBlockwise(x, { blockSize: 64 }).bad.readSync()[0]).toBe(4);
      expect(quantizeBlockwise(x, { blockSize: 64, rounding: "stochastic" }).bad.readSync()[0]).toBe(4);
      expect(quantize4bit(x, { blockSize: 128 }).bad.readSync()[0]).toBe(2);
      expect(quantizeAffine(x, { bits: 8, axis: "block", blockSize: 100 }).bad.readSync()[0]).toBe(3);
      expect(quantizeAffine(x, { bits: 8, axis: "row", cols: 250, scale: toDevice(SC) }).bad.readSync()[0]).toBe(1);
      const ok = toDevice(h.subarray(0, 256));
      expect(quantizeBlockwise(ok, { blockSize: 64 }).bad.readSync()[0]).toBe(-1);
      expect(quantizeQ8_0(toDevice(h.subarray(0, 320))).bad.readSync()[0]).toBe(9);
      // host arrays still throw, naming the element
      expectError(() => quantizeBlockwise(h, { blockSize: 64 }), "nonfinite", "x[300] = NaN");
      await setBackend("wasm");
    });
});

describe("DeviceArray errors", () => {
  test("host and device arrays in one call: NumedgeError(backend) naming both", async () => {
    await setBackend("wasm");
    const x = toDevice(floats(8));
    expectError(() => softmax(x, { cols: 4, out: new Float32Array(8) as never }), "backend", "x is a DeviceArray on wasm", "out is a host Float32Array");
    expectError(() => crossEntropy(new Float32Array(8), toDevice(new Int32Array(2)) as never, { cols: 4 }), "backend", "labels", "logits");
  });

  test("DeviceArrays of two backends in one call: NumedgeError(backend) naming both", async () => {
    await setBackend("reference");
    const r = toDevice(floats(8));
    await setBackend("wasm");
    const w = toDevice(floats(8));
    expectError(() => softmax(w, { cols: 4, out: r }), "backend", "x is on backend wasm", "out is on reference");
    // the DeviceArrays' backend runs the op, whatever is current
    const y = softmax(r, { cols: 4 });
    expect(y.backend).toBe("reference");
  });

  test("a disposed argument and a wrong dtype are NumedgeErrors", async () => {
    await setBackend("wasm");
    const x = toDevice(floats(8));
    x.dispose();
    expectError(() => softmax(x, { cols: 4 }), "backend", "x is a disposed DeviceArray");
    expectError(() => softmax(toDevice(new Int32Array(8)), { cols: 4 }), "dtype", "x must be a Float32Array or Float64Array", "DeviceArray(i32[8] on wasm)");
    expect(() => crossEntropy(toDevice(floats(8)), toDevice(Int32Array.from([0, 4])), { cols: 4 })).toThrow(NumedgeError);
    expectError(() => crossEntropy(toDevice(floats(8)), toDevice(Int32Array.from([0, 4])), { cols: 4 }), "range", "labels[1] = 4");
  });
});

describe("docs/device-arrays.md: the training loop", () => {
  test("runs as written on every backend, the loss falls, and unlogged steps read nothing", async () => {
    for (const be of BACKENDS) {
      await setBackend(be);
      const d = modularData({ p: 13, frac: 0.5, seed: 0 });
      const idx = toDevice(d.train.idx), labels = toDevice(d.train.labels);
      const net = new MLP<DeviceArray>({ inputs: 26, hidden: [32, 32], outputs: 13, seed: 0, device: true });
      const opt = new AdamW({ lr: 1e-2 });
      const storage = getBackend().storage, reads = spyOn(storage, "read");
      const losses: number[] = [];
      let unloggedReads = 0;
      for (let step = 0; step < 60; step++) {
        const before = reads.mock.calls.length;
        const { stats, grad } = crossEntropy(net.forward(idx, d.train.rows), labels, { cols: 13 });
        net.backward(grad!, idx);
        opt.step(net.params, net.grads);
        if (step % 20 === 0 || step === 59) losses.push((await stats.read())[0]!);
        else if (be === "wasm" || be === "reference") unloggedReads += reads.mock.calls.length - before;
        stats.dispose(); grad!.dispose();
      }
      reads.mockRestore();
      expect(unloggedReads).toBe(0);
      expect(losses.at(-1)!).toBeLessThan(0.5 * losses[0]!);
    }
    await setBackend("wasm");
  });
});
