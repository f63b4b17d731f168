// route / combine / updateBias: golden semantics (MegaBlocks, Mixtral, DeepSeek-V3, Switch capacity, expert
// choice), losses and their gradients by finite differences, parity with the f64 reference, bad input.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { combine, route, setBackend, setThreads, threads, updateBias, type RouteOptions, type RouteResult } from "numedge";
import { hostRouting } from "../src/backends/host/routing.ts";
import { lseRow, routingReference } from "../src/backends/reference/routing.ts";
import { routingWasm } from "../src/backends/wasm/routing.ts";
import { expectError, outsideBound, uniform } from "./helpers.ts";
import { parityBackends, underReference } from "./parity.ts";
import { routeBounds } from "./route-bounds.ts";

// Tolerance of the finite-difference checks; the parity bounds are route's own (route-bounds.ts), times the backend's tol.
const FD_REL = 2e-4; // finite differences (f64 reference losses, f32-rounded perturbations)

const rng = uniform;
function randn(r: () => number) {
  return Math.sqrt(-2 * Math.log(r() + 1e-300)) * Math.cos(2 * Math.PI * r());
}
function logitsOf(T: number, E: number, r: () => number, sd = 1): Float32Array {
  return Float32Array.from({ length: T * E }, () => randn(r) * sd);
}
const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));
const maxAbs = (a: ArrayLike<number>) => Array.from(a).reduce((m, v) => Math.max(m, Math.abs(v)), 0);

/** Dispatch recomputed from experts: counts, offsets and the stable order (MegaBlocks indices_and_bins). */
function checkDispatch(r: RouteResult, E: number) {
  const n = r.experts.length;
  const counts = new Array(E).fill(0);
  for (const e of r.experts) if (e >= 0) counts[e]++;
  expect(Array.from(r.counts)).toEqual(counts);
  const offsets = [0];
  for (let e = 0; e < E; e++) offsets.push(offsets[e]! + counts[e]!);
  expect(Array.from(r.offsets)).toEqual(offsets);
  const order: number[] = [];
  for (let e = 0; e < E; e++) for (let a = 0; a < n; a++) if (r.experts[a] === e) order.push(a);
  for (let a = 0; a < n; a++) if (r.experts[a]! < 0) order.push(a);
  expect(Array.from(r.order)).toEqual(order);
}

/** Compare a backend's route() against the reference's: the same selections (token choice ranks the logits, expert
 *  choice scores that tie exactly on every backend), weights, losses and gradients within route's bounds (route-bounds.ts). */
function compareRoute(z: Float32Array, o: RouteOptions, tol: number) {
  const got = route(z, o), want = underReference(() => route(z, o)), bound = routeBounds(z, o, want);
  const E = o.experts, k = got.slots, T = z.length / E;
  checkDispatch(got, E);
  for (let t = 0; t < T; t++)
    expect(Array.from(got.experts.subarray(t * k, (t + 1) * k)), `token ${t}: experts`).toEqual(Array.from(want.experts.subarray(t * k, (t + 1) * k)));
  expect(outsideBound(got.weights, want.weights, (i) => tol * bound.weights[i]!, "weights")).toBe("");
  expect(Array.from(got.counts)).toEqual(Array.from(want.counts));
  expect(Array.from(got.order)).toEqual(Array.from(want.order));
  expect(got.dropped).toBe(want.dropped);
  expect(Math.abs(got.auxLoss - want.auxLoss)).toBeLessThanOrEqual(tol * bound.auxLoss);
  expect(Math.abs(got.zLoss - want.zLoss)).toBeLessThanOrEqual(tol * bound.zLoss);
  if (o.grad) for (const key of ["auxGrad", "zGrad"] as const) expect(outsideBound(got[key]!, want[key]!, (i) => tol * bound[key][i]!, key)).toBe("");
  return { got, want };
}

for (const pb of parityBackends) {
  describe(`route [${pb.name}]`, () => {
    beforeAll(pb.setup);

    test("golden MegaBlocks: top experts [[2,0],[1,2],[0,2],[3,1]] -> order, counts, bins", () => {
      const top = [[2, 0], [1, 2], [0, 2], [3, 1]];
      const z = new Float32Array(16);
      top.forEach(([a, b], t) => { z[t * 4 + a!] = 5; z[t * 4 + b!] = 4; });
      const r = route(z, { experts: 4, k: 2 });
      expect(Array.from(r.experts)).toEqual(top.flat());
      expect(Array.from(r.order)).toEqual([1, 4, 2, 7, 0, 3, 5, 6]);
      expect(Array.from(r.counts)).toEqual([2, 2, 3, 1]);
      expect(Array.from(r.offsets.subarray(1))).toEqual([2, 4, 7, 8]);
      expect(r.dropped).toBe(0);
      expect(r.capacity).toBe(Infinity);
    });

    test("Mixtral: softmax -> top-k -> renormalize equals top-k -> softmax of the selected logits", () => {
      const r0 = rng(1), T = 64, E = 8, k = 2;
      const z = logitsOf(T, E, r0);
      const r = route(z, { experts: E, k, normalize: true });
      for (let t = 0; t < T; t++) {
        const row = Array.from(z.subarray(t * E, (t + 1) * E));
        const idx = row.map((v, i) => [v, i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]).slice(0, k).map((p) => p[1]);
        expect(Array.from(r.experts.subarray(t * k, t * k + k))).toEqual(idx);
        const m = Math.max(...idx.map((i) => row[i]!)), e = idx.map((i) => Math.exp(row[i]! - m)), s = e[0]! + e[1]!;
        for (let j = 0; j < k; j++) expect(r.weights[t * k + j]!).toBeCloseTo(e[j]! / s, 6);
      }
      // without normalize the weights are the softmax probabilities themselves
      const raw = route(z, { experts: E, k });
      const row = Array.from(z.subarray(0, E)), m = Math.max(...row), S = row.reduce((a, v) => a + Math.exp(v - m), 0);
      expect(raw.weights[0]!).toBeCloseTo(Math.exp(row[raw.experts[0]!]! - m) / S, 6);
    });

    test("DeepSeek-V3: sigmoid, bias for selection only, group top-2-sum limit, normalize, scale 2.5", () => {
      const r0 = rng(2), T = 200, E = 16, G = 4, TG = 2, k = 4;
      const z = logitsOf(T, E, r0);
      const bias = Float32Array.from({ length: E }, () => (r0() - 0.5) * 0.6);
      const r = route(z, { experts: E, k, scoring: "sigmoid", bias, groups: G, topkGroups: TG, normalize: true, scale: 2.5 });
      let flips = 0;
      for (let t = 0; t < T; t++) {
        // HF DeepseekV3TopkRouter / DeepSeek-V3 inference/model.py Gate.forward, written out directly:
        const s = Array.from(z.subarray(t * E, (t + 1) * E)).map(sigmoid);
        const sel = s.map((v, e) => v + bias[e]!);
        const gs = E / G;
        const gScore = Array.from({ length: G }, (_, g) => sel.slice(g * gs, (g + 1) * gs).sort((a, b) => b - a).slice(0, 2).reduce((a, b) => a + b));
        const keep = gScore.map((v, g) => [v, g] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]).slice(0, TG).map((p) => p[1]);
        const masked = sel.map((v, e) => (keep.includes(Math.floor(e / gs)) ? v : -Infinity));
        const idx = masked.map((v, e) => [v, e] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]).slice(0, k).map((p) => p[1]);
        const got = Array.from(r.experts.subarray(t * k, t * k + k));
        if (got.join() !== idx.join()) { flips++; continue; }
        const sum = idx.reduce((a, e) => a + s[e]!, 0);
        for (let j = 0; j < k; j++) expect(r.weights[t * k + j]!).toBeCloseTo((s[idx[j]!]! / sum) * 2.5, 5);
        // every selected expert is in one of the topkGroups groups
        for (const e of got) expect(keep).toContain(Math.floor(e / gs));
      }
      expect(flips).toBeLessThanOrEqual(2);
      // without a bias, a group's score is its max (model.py's amax branch): group 0 = {9, 0}, group 1 = {5, 5}
      const zg = new Float32Array([9, 0, 5, 5]);
      expect(Array.from(route(zg, { experts: 4, k: 1, groups: 2, topkGroups: 1, scoring: "sigmoid" }).experts)).toEqual([0]);
      // with a bias the sum of the top 2 decides: sigmoid(5) * 2 > sigmoid(9) + sigmoid(0)
      expect(Array.from(route(zg, { experts: 4, k: 1, groups: 2, topkGroups: 1, scoring: "sigmoid", bias: new Float32Array(4) }).experts)).toEqual([2]);
      // the bias changes selection but never the weights' source: with a huge bias on expert 0 it is always picked
      const b2 = new Float32Array(E); b2[0] = 100;
      const r2 = route(z, { experts: E, k, scoring: "sigmoid", bias: b2 });
      for (let t = 0; t < T; t++) {
        expect(r2.experts[t * k]).toBe(0);
        expect(r2.weights[t * k]!).toBeCloseTo(sigmoid(z[t * E]!), 6);
      }
    });

    test("Switch capacity: ceil(cf*T*k/E) per expert, overflow dropped in token order", () => {
      // 6 tokens, 2 experts, k = 1, cf = 1 -> capacity 3; tokens 0,1,3,4,5 prefer expert 0.
      const pref = [0, 0, 1, 0, 0, 0];
      const z = new Float32Array(pref.flatMap((e) => (e === 0 ? [2, 0] : [0, 2])));
      const r = route(z, { experts: 2, k: 1, capacityFactor: 1 });
      expect(r.capacity).toBe(3);
      expect(Array.from(r.experts)).toEqual([0, 0, 1, 0, -1, -1]);
      expect(Array.from(r.weights.subarray(4))).toEqual([0, 0]);
      expect(r.weights[3]!).toBeGreaterThan(0.8);
      expect(r.dropped).toBe(2);
      expect(Array.from(r.counts)).toEqual([3, 1]);
      expect(Array.from(r.offsets)).toEqual([0, 3, 4]);
      expect(Array.from(r.order)).toEqual([0, 1, 3, 2, 4, 5]);
      // k = 2: assignment order is (token, slot) row-major; capacity ceil(1.25*4*2/4) = 3
      const z2 = new Float32Array([4, 3, 0, 0, 4, 3, 0, 0, 4, 3, 0, 0, 0, 4, 3, 0]);
      const r2 = route(z2, { experts: 4, k: 2, capacityFactor: 1.25 });
      expect(r2.capacity).toBe(3);
      expect(Array.from(r2.experts)).toEqual([0, 1, 0, 1, 0, 1, -1, 2]); // token 3's expert 1 is full
      expect(r2.dropped).toBe(1);
      const r3 = route(z2, { experts: 4, k: 2, capacityFactor: 0.5 }); // capacity 1
      expect(Array.from(r3.experts)).toEqual([0, 1, -1, -1, -1, -1, -1, 2]);
      expect(r3.dropped).toBe(5);
      checkDispatch(r3, 4);
      // the aux loss counts assignments before the drop
      expect(r3.auxLoss).toBeCloseTo(route(z2, { experts: 4, k: 2 }).auxLoss, 12);
    });

    test("expert choice: each expert takes its top ceil(cf*T/E) tokens by score", () => {
      const r0 = rng(4), T = 12, E = 3;
      const z = logitsOf(T, E, r0);
      const r = route(z, { experts: E, k: 1, expertChoice: true }); // capacity ceil(1*12/3) = 4
      expect(r.slots).toBe(E);
      expect(r.capacity).toBe(4);
      const p = Array.from({ length: T }, (_, t) => { const row = Array.from(z.subarray(t * E, t * E + E)); const m = Math.max(...row); const e = row.map((v) => Math.exp(v - m)); const s = e.reduce((a, b) => a + b); return e.map((v) => v / s); });
      let covered = 0;
      for (let t = 0; t < T; t++) covered += r.experts.subarray(t * E, t * E + E).some((e) => e >= 0) ? 1 : 0;
      for (let e = 0; e < E; e++) {
        const best = Array.from({ length: T }, (_, t) => t).sort((a, b) => p[b]![e]! - p[a]![e]! || a - b).slice(0, 4).sort((a, b) => a - b);
        const got = Array.from(r.order.subarray(r.offsets[e]!, r.offsets[e + 1]!)).map((a) => Math.floor(a / E));
        expect(got).toEqual(best);
        for (const t of best) {
          expect(r.experts[t * E + e]).toBe(e);
          expect(r.weights[t * E + e]!).toBeCloseTo(p[t]![e]!, 6);
        }
      }
      expect(Array.from(r.counts)).toEqual([4, 4, 4]);
      expect(r.dropped).toBe(T - covered);
      checkDispatch(r, E);
      const r2 = route(z, { experts: E, k: 1, expertChoice: true, capacityFactor: 0.5, normalize: true });
      expect(r2.capacity).toBe(2);
      for (let t = 0; t < T; t++) {
        const w = Array.from(r2.weights.subarray(t * E, t * E + E));
        const s = w.reduce((a, b) => a + b);
        if (s > 0) expect(s).toBeCloseTo(1, 6);
      }
    });

    test("expert choice: tokens whose logits are the same values in another order tie exactly, and the lower tokens win", () => {
      // each token's logits a shuffle of one set of values, so a token's score for expert e depends only on
      // z[t, e]: the tokens holding the largest value in column e tie, more of them than the capacity
      const r0 = rng(6), T = 4099, E = 12, values = Array.from({ length: E }, (_, j) => j * 0.75 - 4);
      const z = new Float32Array(T * E);
      for (let t = 0; t < T; t++) {
        const row = [...values];
        for (let j = E - 1; j > 0; j--) { const q = Math.floor(r0() * (j + 1)); [row[j], row[q]] = [row[q]!, row[j]!]; }
        z.set(row, t * E);
      }
      for (const scoring of ["softmax", "stablemax"] as const) {
        const r = route(z, { experts: E, k: 1, expertChoice: true, capacityFactor: 0.5, scoring });
        for (let e = 0; e < E; e++) {
          const top = Array.from({ length: T }, (_, t) => t).filter((t) => z[t * E + e] === values[E - 1]).slice(0, r.capacity);
          expect(top.length, `expert ${e}`).toBe(r.capacity); // the tie is larger than the capacity
          const got = Array.from(r.order.subarray(r.offsets[e]!, r.offsets[e + 1]!)).map((a) => Math.floor(a / E));
          expect(got, `${scoring}: expert ${e}`).toEqual(top);
        }
      }
    });

    test("aux and z losses: values and conventions", () => {
      // Balanced assignments with near-uniform probabilities: mixtral gives ~k, normalized ~1.
      const T = 64, E = 8, k = 2;
      const z = new Float32Array(T * E);
      for (let t = 0; t < T; t++) { z[t * E + (t % E)] = 1e-3; z[t * E + ((t + 1) % E)] = 5e-4; }
      const r = route(z, { experts: E, k });
      expect(r.auxLoss).toBeCloseTo(k, 3);
      expect(route(z, { experts: E, k, auxConvention: "normalized" }).auxLoss).toBeCloseTo(1, 3);
      // Exact formula on random logits: E * sum_e (count_e / T) * mean_t p[t, e], zLoss = mean lse^2
      const r0 = rng(9), T2 = 100, E2 = 6, k2 = 3;
      const z2 = logitsOf(T2, E2, r0, 3);
      const q = route(z2, { experts: E2, k: k2 });
      let aux = 0, zl = 0;
      const P = new Array(E2).fill(0);
      for (let t = 0; t < T2; t++) {
        const row = Array.from(z2.subarray(t * E2, t * E2 + E2)), m = Math.max(...row), S = row.reduce((a, v) => a + Math.exp(v - m), 0);
        row.forEach((v, e) => (P[e] += Math.exp(v - m) / S / T2));
        zl += (m + Math.log(S)) ** 2 / T2;
      }
      for (let e = 0; e < E2; e++) aux += (q.counts[e]! / T2) * P[e]!;
      expect(q.auxLoss).toBeCloseTo(aux * E2, 6);
      expect(Math.abs(q.zLoss - zl)).toBeLessThan(1e-6 * zl);
    });

    test("gradients of auxLoss and zLoss match finite differences (every scoring, temperature)", () => {
      const r0 = rng(12), T = 6, E = 7, k = 2;
      const cases: RouteOptions[] = [
        { experts: E, k }, { experts: E, k, temperature: 0.7 }, { experts: E, k, scoring: "sigmoid", temperature: 1.3 },
        { experts: E, k, scoring: "stablemax", temperature: 2 }, { experts: E, k, scoring: "activation", temperature: 0.5 },
        { experts: E, k, auxConvention: "normalized", bias: Float32Array.from({ length: E }, (_, e) => e * 0.01) },
      ];
      for (const o of cases) {
        const z = logitsOf(T, E, r0, 2);
        const g = route(z, { ...o, grad: true });
        const loss = (zz: Float32Array) => underReference(() => route(zz, o));
        const mA = maxAbs(g.auxGrad!), mZ = maxAbs(g.zGrad!);
        let checked = 0;
        for (let i = 0; i < z.length; i++) {
          const zp = z.slice(), zm = z.slice();
          zp[i] = Math.fround(z[i]! + 1e-3); zm[i] = Math.fround(z[i]! - 1e-3);
          const lp = loss(zp), lm = loss(zm), h = zp[i]! - zm[i]!;
          expect(Math.abs((lp.zLoss - lm.zLoss) / h - g.zGrad![i]!)).toBeLessThanOrEqual(FD_REL * mZ);
          if (lp.experts.join() !== lm.experts.join()) continue; // selection flipped: aux is not differentiable here
          checked++;
          expect(Math.abs((lp.auxLoss - lm.auxLoss) / h - g.auxGrad![i]!)).toBeLessThanOrEqual(FD_REL * mA);
        }
        expect(checked).toBeGreaterThan(z.length * 0.8);
      }
    });

    test("parity with the reference: scorings, bias, groups, capacity, expert choice, tails", () => {
      const r0 = rng(21);
      const shapes: Array<[number, number, number]> = [[37, 1, 1], [50, 3, 2], [64, 8, 2], [33, 13, 5], [40, 64, 6], [20, 256, 8], [9, 300, 40], [16, 160, 33]];
      for (const [T, E, k] of shapes) {
        const z = logitsOf(T, E, r0, 2);
        const bias = Float32Array.from({ length: E }, () => (r0() - 0.5) * 0.2);
        const groups = E % 4 === 0 && E >= 8 ? 4 : 1;
        const opts: RouteOptions[] = [
          { experts: E, k, grad: true },
          { experts: E, k, scoring: "sigmoid", bias, normalize: true, scale: 2.5, grad: true },
          { experts: E, k, scoring: "stablemax", temperature: 0.5, grad: true },
          { experts: E, k, scoring: "activation", temperature: 2, normalize: true, grad: true },
          { experts: E, k, temperature: 1.5, capacityFactor: 1.1 },
          { experts: E, k, expertChoice: true, capacityFactor: 2 },
        ];
        if (groups > 1) opts.push({ experts: E, k: Math.min(k, E / 2), scoring: "sigmoid", bias, groups, topkGroups: 2, normalize: true },
          { experts: E, k: Math.min(k, E / 2), groups, topkGroups: 2 });
        for (const o of opts) compareRoute(z, o, pb.tol);
      }
      // many groups: the group selection itself takes the k > 32 path (topkGroups 40 of 64)
      const z = logitsOf(20, 256, r0, 2), bias = Float32Array.from({ length: 256 }, () => (r0() - 0.5) * 0.2);
      compareRoute(z, { experts: 256, k: 8, scoring: "sigmoid", bias, groups: 64, topkGroups: 40, normalize: true }, pb.tol);
      compareRoute(z, { experts: 256, k: 8, groups: 64, topkGroups: 40 }, pb.tol);
    });

    test("spread logits at low temperature (weights down to e^-80, where f32's (z - max) / T errs by 3 |ln s| ulps) and logsumexps near 0", () => {
      const r0 = rng(31), E = 64;
      const z = Float32Array.from({ length: 1024 * E }, () => 16 * randn(r0));
      for (const scoring of ["softmax", "sigmoid", "stablemax", "activation"] as const)
        for (const o of [{ experts: E, k: 6, temperature: 0.7 }, { experts: E, k: 2, expertChoice: true }]) compareRoute(z, { ...o, scoring, grad: true }, pb.tol);
      // one token whose weights span 50 to 62 below its top, at T = 0.9
      compareRoute(Float32Array.from({ length: E }, (_, i) => (i ? 0.7 - 0.9 * (50 + (i * 12) / E) : 0.7)), { experts: E, k: E, temperature: 0.9 }, pb.tol);
      // every token's logsumexp near 0: the z-loss and its gradient by an absolute error each
      const near0 = Float32Array.from({ length: 64 * 256 }, () => 2 * randn(r0));
      for (let t = 0; t < 64; t++) {
        const row = near0.subarray(t * 256, (t + 1) * 256), lse = lseRow(Array.from(row));
        for (let e = 0; e < 256; e++) row[e] = row[e]! - lse + 1e-4 * (t - 32);
      }
      compareRoute(near0, { experts: 256, k: 8, grad: true }, pb.tol);
    });

    test("adversarial rows: ±Infinity, NaN, all-equal, huge logits; NaN stays in its token", () => {
      const E = 5, k = 2;
      const z = new Float32Array([
        0, 0, 0, 0, 0, // all equal: experts 0, 1 (ties by index)
        -Infinity, -Infinity, -Infinity, -Infinity, -Infinity, // softmax: a NaN row (as softmax)
        -Infinity, 1, -Infinity, 2, -Infinity,
        NaN, 1, 2, 3, 4, // NaN ranks first
        Infinity, 0, 0, 0, 0,
        80, 81, -80, 0, 3e38,
      ]);
      for (const scoring of ["softmax", "sigmoid", "stablemax", "activation"] as const) {
        const o = { experts: E, k, scoring, grad: true };
        const got = route(z, o), want = underReference(() => route(z, o));
        expect(Array.from(got.experts)).toEqual(Array.from(want.experts));
        expect(Array.from(got.experts.subarray(0, 2))).toEqual([0, 1]);
        expect(Array.from(got.experts.subarray(2, 4))).toEqual([0, 1]);
        expect(got.experts[6]).toBe(0);
        const bound = routeBounds(z, o, want).weights;
        expect(outsideBound(got.weights, want.weights, (i) => pb.tol * bound[i]!, "weights")).toBe("");
        // NaN/Inf tokens do not poison the others (tokens 0 and 5 share 4-token vectors with them)
        for (const i of [0, 1, 4, 5, 10, 11]) expect(Number.isNaN(got.weights[i]!)).toBe(false);
        expect(Number.isNaN(got.weights[2]!)).toBe(scoring === "softmax" || scoring === "stablemax");
        checkDispatch(got, E);
      }
    });

    test("T = 65536 tokens [65536, 8] k = 2, and [4096, 64] k = 6 against the reference", () => {
      const r0 = rng(33);
      const a = logitsOf(65536, 8, r0);
      const { got } = compareRoute(a, { experts: 8, k: 2, normalize: true, capacityFactor: 1.25 }, pb.tol);
      expect(got.offsets[8]! + got.dropped).toBe(65536 * 2);
      compareRoute(logitsOf(4096, 64, r0), { experts: 64, k: 6, grad: true }, pb.tol);
    });

    test("combine: weighted scatter back to token order, identity experts, drops", () => {
      const r0 = rng(5), T = 50, E = 6, k = 2, H = 7;
      const z = logitsOf(T, E, r0);
      const x = logitsOf(T, H, r0);
      for (const o of [{ experts: E, k, normalize: true }, { experts: E, k, normalize: true, capacityFactor: 0.6 }, { experts: E, k: 1, expertChoice: true, normalize: true }] as RouteOptions[]) {
        const r = route(z, o);
        const kept = r.offsets[E]!;
        const eo = new Float32Array(kept * H);
        for (let p = 0; p < kept; p++) eo.set(x.subarray(Math.floor(r.order[p]! / r.slots) * H, Math.floor(r.order[p]! / r.slots) * H + H), p * H);
        const y = combine(eo, r, { hidden: H });
        const yr = underReference(() => combine(eo, r, { hidden: H }));
        for (let t = 0; t < T; t++) {
          let wsum = 0;
          for (let j = 0; j < r.slots; j++) wsum += r.weights[t * r.slots + j]!;
          for (let h = 0; h < H; h++) {
            expect(y[t * H + h]!).toBeCloseTo(wsum * x[t * H + h]!, 5);
            expect(Math.abs(y[t * H + h]! - yr[t * H + h]!)).toBeLessThanOrEqual(1e-6 * (1 + Math.abs(yr[t * H + h]!)));
          }
        }
        expectError(() => combine(eo.subarray(1), r, { hidden: H }), "shape", "expertOut");
        expectError(() => combine(eo, r, { hidden: 0 }), "range", "hidden");
      }
    });

    test("updateBias: b_e += rate * sign(mean - count_e), in place", () => {
      const b = new Float32Array([0, 0.5, -0.5, 1]);
      const counts = new Int32Array([10, 2, 4, 4]); // mean 5
      expect(updateBias(b, counts, 0.25)).toBeUndefined();
      expect(Array.from(b)).toEqual([-0.25, 0.75, -0.25, 1.25]);
      updateBias(b, new Int32Array([3, 3, 3, 3]), 1);
      expect(Array.from(b)).toEqual([-0.25, 0.75, -0.25, 1.25]);
      expectError(() => updateBias(b, new Int32Array(3), 1), "shape", "counts");
      expectError(() => updateBias(b, counts, NaN), "range", "rate");
      expectError(() => updateBias(new Float64Array(4) as never, counts, 1), "dtype", "bias");
      expectError(() => updateBias(b, new Float32Array(4) as never, 1), "dtype", "counts");
    });

    test("no input is mutated", () => {
      const r0 = rng(8), z = logitsOf(30, 16, r0), bias = Float32Array.from({ length: 16 }, () => r0());
      const z0 = z.slice(), b0 = bias.slice();
      const r = route(z, { experts: 16, k: 3, bias, groups: 4, topkGroups: 2, scoring: "sigmoid", capacityFactor: 0.8, grad: true });
      route(z, { experts: 16, k: 3, bias, expertChoice: true });
      const eo = new Float32Array(r.offsets[16]! * 3).fill(1);
      const snap = [r.order.slice(), r.weights.slice(), r.offsets.slice()];
      combine(eo, r, { hidden: 3 });
      expect(Array.from(z)).toEqual(Array.from(z0));
      expect(Array.from(bias)).toEqual(Array.from(b0));
      expect(Array.from(r.order)).toEqual(Array.from(snap[0]!));
      expect(Array.from(r.weights)).toEqual(Array.from(snap[1]!));
      expect(Array.from(eo)).toEqual(new Array(eo.length).fill(1));
    });

    test("bad input throws NumedgeError naming the argument", () => {
      const z = new Float32Array(32);
      expectError(() => route(z, { experts: 8, k: 9 }), "range", "k");
      expectError(() => route(z, { experts: 8, k: 0 }), "range", "k");
      expectError(() => route(z, { experts: 5, k: 1 }), "shape", "experts");
      expectError(() => route(z, { experts: 0, k: 1 }), "range", "experts");
      expectError(() => route(z, { experts: 8, k: 2, groups: 3 }), "range", "groups");
      expectError(() => route(z, { experts: 8, k: 2, groups: 4, topkGroups: 5 }), "range", "topkGroups");
      expectError(() => route(z, { experts: 8, k: 5, groups: 4, topkGroups: 2 }), "range", "k");
      expectError(() => route(z, { experts: 8, k: 2, bias: new Float32Array(7) }), "shape", "bias");
      expectError(() => route(z, { experts: 8, k: 2, bias: new Float32Array(8).fill(NaN) }), "nonfinite", "bias");
      expectError(() => route(z, { experts: 8, k: 2, capacityFactor: -1 }), "range", "capacityFactor");
      expectError(() => route(z, { experts: 8, k: 2, capacityFactor: NaN }), "range", "capacityFactor");
      expectError(() => route(z, { experts: 8, k: 2, temperature: NaN }), "range", "temperature");
      expectError(() => route(z, { experts: 8, k: 2, temperature: 0 }), "range", "temperature");
      expectError(() => route(z, { experts: 8, k: 2, scoring: "relu" as never }), "range", "scoring");
      expectError(() => route(z, { experts: 8, k: 2, scale: Infinity }), "range", "scale");
      expectError(() => route(z, { experts: 8, k: 2, auxConvention: "x" as never }), "range", "auxConvention");
      expectError(() => route(z, { experts: 8, k: 2, groups: 2, expertChoice: true }), "unsupported", "expertChoice");
      expectError(() => route(new Float64Array(32) as never, { experts: 8, k: 2 }), "dtype", "logits");
      expectError(() => route(z, { experts: 8, k: 2, normalize: "yes" as never }), "dtype", "normalize");
      expectError(() => route(z, null as never), "shape", "experts");
      expectError(() => route(new Float32Array(0), { experts: 8, k: 2 }), "shape", "logits");
    });
  });
}

describe("route: review fixes", () => {
  test("a capacity beyond i32 is passed clamped: no wrap-around drops, the real capacity is reported", async () => {
    for (const be of ["wasm", "reference"] as const) {
      await setBackend(be);
      // T = 4 tokens, E = 8, k = 2: every token picks experts 0 and 1, so capacity >= 4 keeps everything.
      const z = new Float32Array(32);
      for (let t = 0; t < 4; t++) { z[t * 8] = 5; z[t * 8 + 1] = 4; }
      const cf = 2 ** 32 + 1; // ceil(cf * T * k / E) = 2^32 + 1, which wraps to 1 as an i32
      const r = route(z, { experts: 8, k: 2, capacityFactor: cf });
      expect(r.capacity).toBe(2 ** 32 + 1);
      expect(r.dropped).toBe(0);
      expect(Array.from(r.counts.subarray(0, 2))).toEqual([4, 4]);
    }
    await setBackend("wasm");
  });

  test("temperature whose 1/T overflows float32, and |scale| beyond float32, are range errors (not NaN weights)", () => {
    const z = new Float32Array(32).map((_, i) => (i % 5) - 2);
    for (const expertChoice of [false, true]) {
      expectError(() => route(z, { experts: 8, k: 2, temperature: 1e-40, expertChoice }), "range", "temperature", "1e-40");
      expectError(() => route(z, { experts: 8, k: 2, scale: 1e39, expertChoice }), "range", "scale", "1e+39");
      expectError(() => route(z, { experts: 8, k: 2, scale: -1e39, expertChoice }), "range", "scale");
    }
    // the smallest temperature whose reciprocal is a finite float32 still works
    const r = route(z, { experts: 8, k: 2, temperature: 1e-38 });
    for (const w of r.weights) expect(Number.isFinite(w)).toBe(true);
  });
});

describe("route on the wasm pool: the split kernels give the one-thread definitions' bytes", () => {
  // Expert choice as it was composed on the host (scores, a transposed copy, a top-k per expert, JS scatter and
  // normalize); dispatch as the reference defines it. NaN weights compare as NaN: the host version's bits depend
  // on the JS engine's tier.
  const host = hostRouting(routingWasm);
  const bits = (a: Float32Array | Int32Array) => Array.from(a instanceof Float32Array ? a.map((v) => (Number.isNaN(v) ? NaN : v)) : a);
  const initial = threads();
  afterAll(() => setThreads(initial));

  test("expert choice: NaN/±Inf, ties, T not a multiple of 4, capacity 0 and T, E = 1, bias, normalize, scale < 0", () => {
    const r0 = rng(41);
    const cases: Array<[number, number, string]> = [[1, 1, "rand"], [7, 1, "ties"], [41, 3, "special"], [1003, 8, "ties"], [20003, 8, "special"], [9001, 64, "rand"], [3000, 97, "zeros"]];
    for (const t of [1, 3]) {
      setThreads(t);
      for (const [T, E, kind] of cases) {
        const z = logitsOf(T, E, r0, 2);
        if (kind === "ties") for (let i = 0; i < z.length; i++) z[i] = Math.round(z[i]!);
        if (kind === "special") for (let i = 0; i < z.length; i += 7) z[i] = [NaN, Infinity, -Infinity, 0, -0, 1e30][(i / 7) % 6]!;
        if (kind === "zeros") z.fill(0);
        const bias = Float32Array.from({ length: E }, () => (r0() - 0.5) * 0.3);
        for (const [capacity, o] of [[Math.ceil(T / E), {}], [0, { bias }], [T, { scoring: "sigmoid", normalize: true, routeScale: -1.7 }],
          [Math.ceil(0.3 * T / E), { bias, scoring: "stablemax", routeScale: 0.1, normalize: true }]] as const) {
          const p = { rows: T, experts: E, scoring: "softmax" as const, scale: 1, bias: null, capacity, normalize: false, routeScale: 1, ...o };
          const run = (k: typeof host) => {
            const ex = new Int32Array(T * E), w = new Float32Array(T * E), pre = new Int32Array(E), pSum = new Float64Array(E), lse = new Float64Array(T), st = new Float64Array(3);
            k.routeExpertChoice(z, p, ex, w, pre, pSum, lse, st);
            return [bits(ex), bits(w), bits(pre), Array.from(pSum), Array.from(lse), st[0]];
          };
          expect(run(routingWasm)).toEqual(run(host));
        }
      }
    }
  });

  test("dispatch: capacity drops in assignment order, unused slots, capacity 0, 1 and beyond", () => {
    const r0 = rng(42);
    for (const t of [1, 3]) {
      setThreads(t);
      for (const [n, E] of [[1, 1], [4001, 3], [160003, 8], [300000, 64]] as const) {
        const experts0 = Int32Array.from({ length: n }, () => (r0() < 0.2 ? -1 : Math.floor(r0() ** 2 * E)));
        for (const cap of [-1, 0, 1, Math.ceil(n / E / 2), n]) {
          const run = (k: typeof routingWasm) => {
            const ex = experts0.slice(), w = Float32Array.from(ex, (e) => e + 0.5), c = new Int32Array(E), off = new Int32Array(E + 1), ord = new Int32Array(n), st = new Float64Array(1);
            k.routeDispatch(ex, w, n, E, cap, c, off, ord, st);
            return [bits(ex), bits(w), bits(c), bits(off), bits(ord), st[0]];
          };
          expect(run(routingWasm)).toEqual(run(routingReference));
        }
      }
    }
  });
});
