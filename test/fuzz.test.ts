// Seeded fuzz of the public API on wasm (and cuda-cpu) against the f64 reference. Each case builds a valid call,
// then (half the time) breaks one thing: an argument's type or length, an option's value, an unknown option key, an
// output aliasing an input, null. Arrays are placed as plain arrays, alloc()'d WASM memory, SharedArrayBuffer views
// or views at odd offsets; options are sometimes getters that answer differently after their first read. After each
// call: a NumedgeError with the reference's code, or the reference's result (within 1e-4 relative); never another
// error; and the guard allocations around the call's WASM arrays untouched.
import { afterAll, describe, expect, test } from "bun:test";
import {
  NumedgeError, Rng, alloc, combine, crossEntropy, dequantize4bit, dequantizeAffine, dequantizeBlockwise, dequantizeQ4_0, dequantizeQ8_0,
  embeddingSum, embeddingSumBackward, free, logSoftmax, logStablemax, matmul, orthogonalize, quantize4bit, quantizeAffine,
  quantizeBlockwise, quantizeQ4_0, quantizeQ8_0, relu, reluBackward, route, setBackend, softmax, stablemax, topk, updateBias,
  adamwStep,
} from "numedge";
import { parityBackends, underReference } from "./parity.ts";

type Host = Float32Array | Float64Array | Int32Array | Uint8Array | Int8Array;
const SENTINEL = 0x5a;
const CASES = 40000;
afterAll(() => setBackend("wasm"));

/** One fuzz case: `make` builds the arguments with `put` placing every array; `call` runs the op on them. */
interface Op {
  name: string;
  make(r: Rng): { args: unknown[]; opts?: Record<string, unknown>; optIndex?: number };
  call(...args: unknown[]): unknown;
  /** Numbers within tol * (1 + |want|) of the reference's (default 1e-6, the softmax family's relative bound). */
  tol?: number;
}

const f32 = (r: Rng, n: number, s = 3) => Float32Array.from({ length: n }, () => (r.next() < 0.03 ? [NaN, Infinity, -Infinity, 0, -0][r.int(5)]! : r.normal() * s));
const finite = (r: Rng, n: number, s = 3) => Float32Array.from({ length: n }, () => r.normal() * s);
const ints = (r: Rng, n: number, hi: number) => Int32Array.from({ length: n }, () => r.int(hi));
const pick = <T>(r: Rng, xs: readonly T[]) => xs[r.int(xs.length)]!;

const OPS: Op[] = [
  ...(["softmax", "logSoftmax", "stablemax", "logStablemax"] as const).map((name): Op => ({
    name,
    make: (r) => { const cols = 1 + r.int(70), rows = 1 + r.int(5); return { args: [f32(r, rows * cols, 20)], opts: { cols, ...(name.endsWith("oftmax") && r.next() < 0.5 ? { temperature: r.uniform(0.1, 3) } : {}) }, optIndex: 1 }; },
    call: (x, o) => ({ softmax, logSoftmax, stablemax, logStablemax })[name](x as Float32Array, o as never),
  })),
  // half the cases without specials: a NaN or infinite logit makes the mean loss NaN on every backend, which checks nothing
  { name: "crossEntropy", make: (r) => { const cols = 1 + r.int(40), rows = 1 + r.int(6); return { args: [(r.next() < 0.5 ? finite : f32)(r, rows * cols, 10), ints(r, rows, cols)], opts: { cols, head: pick(r, ["softmax", "stablemax"]), precision: pick(r, ["f32", "f64"]) }, optIndex: 2 }; },
    call: (z, l, o) => crossEntropy(z as Float32Array, l as Int32Array, o as never) },
  { name: "topk", make: (r) => { const cols = 1 + r.int(80), rows = 1 + r.int(4); return { args: [f32(r, rows * cols)], opts: { cols, k: r.int(cols + 1), sorted: r.next() < 0.5 }, optIndex: 1 }; },
    call: (x, o) => topk(x as Float32Array, o as never) },
  { name: "route", make: (r) => { const E = pick(r, [4, 8, 16]), T = 1 + r.int(12); return { args: [finite(r, T * E)], opts: { experts: E, k: 1 + r.int(3), normalize: r.next() < 0.5, scoring: pick(r, ["softmax", "sigmoid", "stablemax"]), ...(r.next() < 0.3 ? { capacityFactor: r.uniform(0.5, 2) } : {}) }, optIndex: 1 }; },
    call: (z, o) => route(z as Float32Array, o as never) },
  { name: "combine", make: (r) => { const T = 1 + r.int(6), E = 4, rt = route(finite(r, T * E), { experts: E, k: 2 }); return { args: [finite(r, rt.offsets[E]! * 3), rt], opts: { hidden: 3 }, optIndex: 2 }; },
    call: (x, rt, o) => combine(x as Float32Array, rt as never, o as never) },
  { name: "updateBias", make: (r) => ({ args: [finite(r, 8), ints(r, 8, 20), r.uniform(-0.1, 0.1)] }), call: (b, c, rate) => { updateBias(b as Float32Array, c as Int32Array, rate as number); return b; } },
  { name: "quantizeBlockwise", make: (r) => ({ args: [f32(r, 1 + r.int(700))], opts: { blockSize: pick(r, [32, 64, 128, 4096, "tensor"]), rounding: pick(r, ["nearest", "stochastic"]), seed: r.int(100) }, optIndex: 1 }),
    call: (x, o) => quantizeBlockwise(x as Float32Array, o as never) },
  { name: "dequantizeBlockwise", make: (r) => ({ args: [quantizeBlockwise(finite(r, 1 + r.int(500)), { blockSize: 64 })] }), call: (q) => dequantizeBlockwise(q as never) },
  { name: "quantize4bit", make: (r) => ({ args: [f32(r, 1 + r.int(500))], opts: { type: pick(r, ["nf4", "fp4"]), blockSize: pick(r, [32, 64, 256]), doubleQuant: r.next() < 0.5 }, optIndex: 1 }),
    call: (x, o) => quantize4bit(x as Float32Array, o as never) },
  { name: "dequantize4bit", make: (r) => ({ args: [quantize4bit(finite(r, 1 + r.int(500)), { doubleQuant: r.next() < 0.5 })] }), call: (q) => dequantize4bit(q as never) },
  { name: "quantizeAffine", make: (r) => { const cols = 1 + r.int(50), rows = 1 + r.int(6); return { args: [f32(r, rows * cols)], opts: { bits: 8, signed: r.next() < 0.5, axis: pick(r, ["tensor", "row", "block"]), cols, blockSize: 1 + r.int(40) }, optIndex: 1 }; },
    call: (x, o) => quantizeAffine(x as Float32Array, o as never) },
  { name: "dequantizeAffine", make: (r) => ({ args: [quantizeAffine(finite(r, 1 + r.int(300)), { bits: 8, axis: "block", blockSize: 16, signed: r.next() < 0.5 })] }), call: (q) => dequantizeAffine(q as never) },
  { name: "quantizeQ8_0", make: (r) => ({ args: [f32(r, 32 * (1 + r.int(8)))] }), call: (x) => quantizeQ8_0(x as Float32Array) },
  { name: "quantizeQ4_0", make: (r) => ({ args: [f32(r, 32 * (1 + r.int(8)))] }), call: (x) => quantizeQ4_0(x as Float32Array) },
  { name: "dequantizeQ8_0", make: (r) => { const n = 32 * (1 + r.int(6)); return { args: [quantizeQ8_0(finite(r, n)), n] }; }, call: (b, n) => dequantizeQ8_0(b as Uint8Array, n as number) },
  { name: "dequantizeQ4_0", make: (r) => { const n = 32 * (1 + r.int(6)); return { args: [quantizeQ4_0(finite(r, n)), n] }; }, call: (b, n) => dequantizeQ4_0(b as Uint8Array, n as number) },
  { name: "matmul", tol: 1e-5, make: (r) => { const m = 1 + r.int(9), k = 1 + r.int(9), n = 1 + r.int(9); return { args: [finite(r, m * k), finite(r, k * n)], opts: { m, k, n, transA: r.next() < 0.5, transB: r.next() < 0.5 }, optIndex: 2 }; },
    call: (a, b, o) => matmul(a as Float32Array, b as Float32Array, o as never) },
  { name: "relu", make: (r) => ({ args: [f32(r, 1 + r.int(100))] }), call: (x) => relu(x as Float32Array) },
  { name: "reluBackward", make: (r) => { const n = 1 + r.int(100); return { args: [f32(r, n), f32(r, n)] }; }, call: (d, x) => reluBackward(d as Float32Array, x as Float32Array) },
  { name: "embeddingSum", make: (r) => { const V = 1 + r.int(10), cols = 1 + r.int(9), rows = 1 + r.int(7); return { args: [finite(r, V * cols), ints(r, rows * 2, V)], opts: { cols, per: 2 }, optIndex: 2 }; },
    call: (w, i, o) => embeddingSum(w as Float32Array, i as Int32Array, o as never) },
  { name: "embeddingSumBackward", make: (r) => { const V = 1 + r.int(10), cols = 1 + r.int(9), rows = 1 + r.int(7); return { args: [finite(r, rows * cols), ints(r, rows * 2, V), finite(r, V * cols)], opts: { cols, per: 2 }, optIndex: 3 }; },
    call: (d, i, w, o) => { embeddingSumBackward(d as Float32Array, i as Int32Array, w as Float32Array, o as never); return w; } },
  { name: "adamwStep", make: (r) => { const n = 1 + r.int(50); return { args: [finite(r, n), finite(r, n), finite(r, n, 0.1), Float32Array.from(finite(r, n, 0.1), Math.abs)], opts: { lr: 0.01, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.01, step: 1 + r.int(5) }, optIndex: 4 }; },
    call: (w, g, m, v, o) => { adamwStep(w as Float32Array, g as Float32Array, m as Float32Array, v as Float32Array, o as never); return [w, m, v]; } },
  { name: "orthogonalize", make: (r) => { const n = 1 + r.int(60); return { args: [finite(r, n), finite(r, n)] }; }, call: (w, g) => { orthogonalize(w as Float32Array, g as Float32Array); return g; } },
];

/** Deep copy of an argument (typed arrays and plain records of them), for the reference run; aliases stay aliases. */
function copy(v: unknown, seen = new Map<unknown, unknown>()): unknown {
  if (seen.has(v)) return seen.get(v);
  let c: unknown = v;
  if (ArrayBuffer.isView(v)) c = (v as Host).slice();
  else if (Array.isArray(v)) c = v.map((x) => copy(x, seen));
  else if (v && typeof v === "object") c = Object.fromEntries(Object.entries(v).map(([k, x]) => [k, copy(x, seen)]));
  if (v && typeof v === "object") seen.set(v, c);
  return c;
}

/** Where an array argument lives for the wasm call. alloc'd copies are collected so they can be freed. */
function place(r: Rng, a: Host, allocs: ArrayBufferView[]): Host {
  const how = r.int(4), C = a.constructor as { new (b: ArrayBufferLike, o: number, n: number): Host; BYTES_PER_ELEMENT: number };
  if (how === 1 && !(a instanceof Int8Array)) {
    const b = alloc(a.length, ({ Float32Array: "f32", Float64Array: "f64", Int32Array: "i32", Uint8Array: "u8" } as const)[a.constructor.name as "Float32Array"]) as Host;
    b.set(a as never);
    allocs.push(b);
    return b;
  }
  if (how === 2) { const s = new C(new SharedArrayBuffer(a.byteLength + 8), 8, a.length); s.set(a as never); return s; }
  if (how === 3) { const s = new C(new ArrayBuffer(a.byteLength + 3 * C.BYTES_PER_ELEMENT), 3 * C.BYTES_PER_ELEMENT, a.length); s.set(a as never); return s; }
  return a;
}

/** Break one thing about a valid call (or nothing): returns a label. */
function mutate(r: Rng, args: unknown[], opts: Record<string, unknown> | undefined): string {
  const arrays = args.map((a, i) => [a, i] as const).filter(([a]) => ArrayBuffer.isView(a));
  switch (r.int(8)) {
    case 0: if (arrays.length) { const [a, i] = pick(r, arrays); args[i] = a instanceof Float32Array ? Float64Array.from(a) : Float32Array.from(a as Host); return "dtype"; } break;
    case 1: if (arrays.length) { const [a, i] = pick(r, arrays); args[i] = (a as Host).subarray(0, Math.max(0, (a as Host).length - 1 - r.int(3))); return "length"; } break;
    case 2: if (opts) { const k = pick(r, Object.keys(opts)); opts[k] = pick(r, [-1, 0, 1.5, NaN, Infinity, 2 ** 31, "x", null, true, {}]); return `option ${k}`; } break;
    case 3: if (opts) { opts[pick(r, ["colz", "temprature", "blocksize", "sortd", "transa", "hiden"])] = 1; return "unknown key"; } break;
    case 4: { const i = r.int(args.length); args[i] = pick(r, [null, undefined, 3, "x", [1, 2]]); return `arg ${i}`; }
    case 5: if (arrays.length >= 2) { const [a] = arrays[0]!, [, j] = arrays[1]!; args[j] = a; return "alias"; } break;
    case 6: if (arrays.length) { const [a, i] = pick(r, arrays); args[i] = (a as Host).subarray(0, 0); return "empty"; } break;
  }
  return "valid";
}

/** An options object whose every key is a getter answering `v` once, then something hostile. */
function flipping(o: Record<string, unknown>, r: Rng): { o: Record<string, unknown>; reads: Map<string, number> } {
  const reads = new Map<string, number>(), out = {};
  for (const [k, v] of Object.entries(o)) {
    const bad = pick(r, [1e9, -1, 0, "x", undefined]);
    Object.defineProperty(out, k, { enumerable: true, get: () => { const n = reads.get(k) ?? 0; reads.set(k, n + 1); return n === 0 ? v : bad; } });
  }
  return { o: out, reads };
}

/** Results compared with the reference: NaN with NaN, numbers within tol (1 + |want|), integers exactly. */
function same(a: unknown, b: unknown, path: string, tol: number): string | null {
  if (ArrayBuffer.isView(a) && ArrayBuffer.isView(b)) {
    const x = a as Host, y = b as Host;
    if (x.length !== y.length) return `${path}: length ${x.length} vs ${y.length}`;
    for (let i = 0; i < x.length; i++) {
      const u = x[i]!, v = y[i]!;
      if (u !== u && v !== v) continue;
      if (!(Math.abs(u - v) <= tol * (1 + Math.abs(v))) && !(u === v)) return `${path}[${i}]: ${u} vs ${v}`;
    }
    return null;
  }
  if (typeof a === "number" && typeof b === "number") return (a !== a && b !== b) || Math.abs(a - b) <= tol * (1 + Math.abs(b)) || a === b ? null : `${path}: ${a} vs ${b}`;
  if (a && b && typeof a === "object" && typeof b === "object") {
    for (const k of Object.keys(b)) { const d = same((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], `${path}.${k}`, tol); if (d) return d; }
    return null;
  }
  return a === b || (a !== a && b !== b) ? null : `${path}: ${String(a)} vs ${String(b)}`;
}

// wasm, the cuda backend running kernels.cu on the CPU (fewer cases, other seeds: it found an int argument wrapping),
// and on a GPU where there is one (npm run test:gpu); NUMEDGE_TEST_BACKENDS narrows the list as for the parity suites
const tested = parityBackends.map((b) => b.name);
const RUNS = [{ be: "wasm", cases: CASES, seed: 20261204 }, { be: "cuda-cpu", cases: CASES / 4, seed: 3 }, { be: "cuda", cases: CASES / 4, seed: 5 }]
  .filter(({ be }) => be === "wasm" || tested.includes(be));
for (const { be, cases, seed } of RUNS) describe(`fuzz: every public op on ${be} against the reference, hostile arguments included`, () => {
  test(`${cases} seeded cases: NumedgeError with the reference's code or its result; guards untouched; options read once`, async () => {
    await setBackend(be);
    const r = new Rng(seed);
    const tally = { ok: 0, errors: 0 };
    for (let iter = 0; iter < cases; iter++) {
      const op = OPS[iter % OPS.length]!;
      const { args, opts, optIndex } = op.make(r);
      if (opts) args[optIndex!] = opts;
      const what = r.next() < 0.5 ? mutate(r, args, opts) : "valid";
      // the reference sees plain copies of everything, options as plain values
      const seen = new Map<unknown, unknown>(), refArgs = args.map((a) => copy(a, seen));
      let want: unknown, wantErr: unknown;
      try { want = underReference(() => op.call(...refArgs)); } catch (e) { wantErr = e; }
      // the wasm call: arrays placed (plain, alloc'd, shared, odd offset) between two guard allocations
      const allocs: ArrayBufferView[] = [];
      const g1 = alloc(64, "u8").fill(SENTINEL);
      const placed = new Map<unknown, unknown>(); // an aliased argument is placed once, so it stays aliased
      const wasmArgs = args.map((a) => {
        if (!ArrayBuffer.isView(a) || (a as Host).length === 0) return a;
        if (!placed.has(a)) placed.set(a, place(r, a as Host, allocs));
        return placed.get(a);
      });
      // options and state records (a quantizer's result, route()'s result) sometimes answer once, then change
      let reads: Map<string, number> | undefined;
      const rec = wasmArgs.findIndex((a) => a !== null && typeof a === "object" && !ArrayBuffer.isView(a) && !Array.isArray(a));
      if (rec >= 0 && r.next() < 0.3) { const f = flipping(wasmArgs[rec] as Record<string, unknown>, r); wasmArgs[rec] = f.o; reads = f.reads; }
      const g2 = alloc(64, "u8").fill(SENTINEL);
      let got: unknown, gotErr: unknown;
      try { got = op.call(...wasmArgs); } catch (e) { gotErr = e; }
      const label = `#${iter} ${op.name} (${what})`;
      if (gotErr !== undefined && !(gotErr instanceof NumedgeError)) throw new Error(`${label}: ${String(gotErr)}`);
      expect(g1.every((v) => v === SENTINEL) && g2.every((v) => v === SENTINEL), `${label}: guard allocation changed`).toBe(true);
      if (reads) for (const [k, n] of reads) expect(n, `${label}: option ${k} read ${n} times`).toBeLessThanOrEqual(1);
      if (wantErr !== undefined) {
        expect(gotErr, `${label}: reference threw ${String(wantErr)}`).toBeInstanceOf(NumedgeError);
        if (wantErr instanceof NumedgeError) expect((gotErr as NumedgeError).code, label).toBe(wantErr.code);
        tally.errors++;
      } else {
        expect(gotErr, `${label}: ${String(gotErr)}`).toBeUndefined();
        expect(same(got, want, op.name, op.tol ?? 1e-6), label).toBeNull();
        tally.ok++;
      }
      for (const a of allocs) free(a);
      free(g1); free(g2);
    }
    expect(tally.ok).toBeGreaterThan(cases / 5);
    expect(tally.errors).toBeGreaterThan(cases / 5);
  }, 60000);
});
