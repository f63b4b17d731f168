// Softmax family: every backend in parityBackends against the f64 reference, on random and adversarial rows,
// across every SIMD tail and fold boundary; golden vectors; the NaN / Infinity row rules; in-place and `out`.
import { beforeAll, describe, expect, test } from "bun:test";
import { Rng, alloc, free, logSoftmax, logStablemax, softmax, stablemax } from "numedge";
import { outsideBound } from "./helpers.ts";
import { parityBackends, underReference } from "./parity.ts";

// ---- Tolerances: the bounds stated in each op's TSDoc (src/ops/softmax.ts), scaled by pb.tol. ----
const TOL = {
  /** softmax, both algorithms: relative error for outputs >= TINY; outputs below TINY may flush to 0. */
  softmaxRel: 1e-6,
  /** logSoftmax: |err| <= 2^-24 |y| + logSoftmaxAbs against the f64 reference of the same f32 inputs (the output's rounding and the log-sum's error). */
  logSoftmaxAbs: 4e-7,
  /** stablemax: relative error for outputs >= TINY. */
  stablemaxRel: 3e-7,
  /** logStablemax: |err| <= logStablemaxAbs * max(1, |y|). */
  logStablemaxAbs: 1.2e-7,
  /** Float64Array path (every op): relative / absolute-scaled error. */
  f64: 1e-12,
  TINY: 1e-30,
};

// Every SIMD tail (1..9), vector/unroll boundaries (8, 16, 32, 64 elements), f64 fold blocks, big rows.
const COLS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 1023, 1024, 1025, 4095, 4096, 4097, 4098, 4099];
const rowsFor = (cols: number) => (cols <= 9 ? 37 : cols <= 129 ? 9 : 2);

type Gen = (rng: Rng, n: number) => Float32Array;
const GENS: Record<string, Gen> = {
  normal: (rng, n) => Float32Array.from({ length: n }, () => 3 * rng.normal()),
  // wide spread: outputs down to 1e-30 where x - max must be exact to 1e-8 (f32 rounds it to 4e-6)
  wide: (rng, n) => Float32Array.from({ length: n }, () => rng.uniform(-60, 60)),
  huge: (rng, n) => Float32Array.from({ length: n }, () => (rng.next() < 0.5 ? -1 : 1) * 10 ** rng.uniform(-3, 30)),
  // near-ties around a large value: every ulp of 1e30 matters
  nearTies: (rng, n) => Float32Array.from({ length: n }, () => Math.fround(1e30) * (1 - rng.int(4) * 2 ** -23)),
  // the three-pass kernel picks its exp formula per row from max and min (asm/softmax.ts): cover each
  //   max in [-18, 60]: exp(x) directly (normal, wide, masked); otherwise exact x - max by
  negative: (rng, n) => Float32Array.from({ length: n }, () => rng.uniform(-100, -20)), // max < -18: Fast2Sum (|x| >= |max|)
  positive: (rng, n) => Float32Array.from({ length: n }, () => rng.uniform(20, 100)), // max > 60, min >= -max: Fast2Sum
  maskedHigh: (rng, n) => Float32Array.from({ length: n }, () => (rng.next() < 0.3 ? -Infinity : 100 + 5 * rng.normal())), // TwoSum + mask
  edges: (rng, n) => Float32Array.from({ length: n }, () => [60, -18, 59.99, -18.01, -87, -87.5, 0][rng.int(7)]! + rng.uniform(-70, 0) * (rng.next() < 0.5 ? 1 : 0)),
  masked: (rng, n) => Float32Array.from({ length: n }, () => (rng.next() < 0.3 ? -Infinity : 5 * rng.normal())),
};

/** "" when every element of got is within bound(want) of want, else a description of the worst element. */
function compare(got: ArrayLike<number>, want: ArrayLike<number>, bound: (w: number) => number, label = ""): string {
  return outsideBound(got, want, (i) => bound(want[i]!), label);
}

/** Bit-for-bit equality (toEqual does not treat NaN as equal inside typed arrays). */
function sameBits(a: ArrayBufferView, b: ArrayBufferView): boolean {
  if (a.byteLength !== b.byteLength) return false;
  const u = new Uint8Array(a.buffer, a.byteOffset, a.byteLength), v = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  for (let i = 0; i < u.length; i++) if (u[i] !== v[i]) return false;
  return true;
}

/** logSoftmax of f32 inputs by the f64 reference, not rounded to f32 (what the bound is stated against) unless it overflows f32. */
const logSoftmaxExact = (x: Float32Array, o: { cols: number; temperature?: number }) =>
  underReference(() => logSoftmax(Float64Array.from(x), o)).map((v) => (Number.isFinite(Math.fround(v)) ? v : Math.fround(v)));

const relBound = (rel: number) => (w: number) => (Math.abs(w) >= TOL.TINY ? rel * Math.abs(w) : TOL.TINY);
const absBound = (abs: number) => (w: number) => abs * Math.max(1, Math.abs(w));

/** Max observed relative error (outputs >= TINY): printed in the stats test so the TSDoc bounds stay honest. */
function maxRel(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < want.length; i++) {
    const w = want[i]!;
    if (Math.abs(w) >= TOL.TINY && Number.isFinite(w)) m = Math.max(m, Math.abs(got[i]! - w) / Math.abs(w));
  }
  return m;
}

const ALGOS = ["twopass", "threepass", "auto"] as const;

for (const pb of parityBackends) {
  describe(`softmax family [${pb.name}]`, () => {
    beforeAll(pb.setup);
    const sRel = relBound(TOL.softmaxRel * pb.tol);
    const lAbs = (w: number) => pb.tol * (2 ** -24 * Math.abs(w) + TOL.logSoftmaxAbs);
    const stRel = relBound(TOL.stablemaxRel * pb.tol);
    const lsAbs = absBound(TOL.logStablemaxAbs * pb.tol);

    test("golden vectors", () => {
      const x = new Float32Array([-2, 0, 0.5]);
      for (const algorithm of ALGOS) {
        expect(Array.from(softmax(x, { cols: 3, algorithm }), (v) => +v.toFixed(6))).toEqual([0.048611, 0.359188, 0.592201]);
        expect(Array.from(softmax(x, { cols: 3, algorithm, temperature: 2 }), (v) => +v.toFixed(6))).toEqual([0.138723, 0.377087, 0.48419]);
      }
      expect(Array.from(logSoftmax(x, { cols: 3 }), (v) => +v.toFixed(6))).toEqual([-3.023909, -1.023909, -0.523909]);
      expect(Array.from(stablemax(x, { cols: 3 }), (v) => +v.toFixed(6))).toEqual([0.117647, 0.352941, 0.529412]);
      const x64 = Float64Array.from(x);
      expect(Array.from(softmax(x64, { cols: 3 }), (v) => +v.toFixed(6))).toEqual([0.048611, 0.359188, 0.592201]);
      // s = [1/3, 1, 3/2], sum 17/6
      expect(Array.from(logStablemax(x64, { cols: 3 }), (v) => +v.toFixed(6))).toEqual([-2.140066, -1.041454, -0.635989]);
      expect(Array.from(logStablemax(x, { cols: 3 }), (v) => +v.toFixed(6))).toEqual([-2.140066, -1.041454, -0.635989]);
    });

    for (const [gname, gen] of Object.entries(GENS)) {
      test(`parity vs reference, ${gname} logits, cols 1..4099 (every tail), all ops and algorithms`, () => {
        const rng = new Rng(COLS.length + gname.length);
        for (const cols of COLS) {
          const x = gen(rng, rowsFor(cols) * cols);
          const snapshot = x.slice();
          const lbl = `${gname} cols=${cols}`;
          const wantS = underReference(() => softmax(x, { cols }));
          for (const algorithm of ALGOS) expect(compare(softmax(x, { cols, algorithm }), wantS, sRel, `${lbl} ${algorithm}`)).toBe("");
          expect(compare(logSoftmax(x, { cols }), logSoftmaxExact(x, { cols }), lAbs, `${lbl} logSoftmax`)).toBe("");
          expect(compare(stablemax(x, { cols }), underReference(() => stablemax(x, { cols })), stRel, `${lbl} stablemax`)).toBe("");
          expect(compare(logStablemax(x, { cols }), underReference(() => logStablemax(x, { cols })), lsAbs, `${lbl} logStablemax`)).toBe("");
          expect(sameBits(x, snapshot)).toBe(true);
        }
      });
    }

    test("temperature != 1 (0.001, 0.37, 2, 3.1, 1e6), both algorithms and logSoftmax", () => {
      const rng = new Rng(7);
      for (const T of [0.001, 0.37, 2, 3.1, 1e6]) {
        for (const cols of [1, 3, 7, 17, 64, 65, 1025]) {
          // edge: outputs from e^-64 down to the 1e-30 the bound holds to, each x - max (64 to 69 T) a large f32
          const edge: Gen = (r, n) => Float32Array.from({ length: n }, (_, i) => 160.3 - (i % cols === 0 ? 0 : T * r.uniform(64, 69)));
          for (const gen of [GENS.normal!, GENS.wide!, GENS.huge!, edge]) {
            const x = gen(rng, 5 * cols);
            const want = underReference(() => softmax(x, { cols, temperature: T }));
            for (const algorithm of ALGOS)
              expect(compare(softmax(x, { cols, temperature: T, algorithm }), want, sRel, `T=${T} cols=${cols} ${algorithm}`)).toBe("");
            expect(compare(logSoftmax(x, { cols, temperature: T }), logSoftmaxExact(x, { cols, temperature: T }), lAbs, `T=${T} log`)).toBe("");
          }
        }
      }
    });

    test("rows 1..513 with small and odd cols", () => {
      const rng = new Rng(11);
      for (const rows of [1, 2, 3, 4, 5, 31, 64, 127, 257, 512, 513]) {
        for (const cols of [1, 5, 33]) {
          const x = GENS.wide!(rng, rows * cols);
          const want = underReference(() => softmax(x, { cols }));
          for (const algorithm of ALGOS) expect(compare(softmax(x, { cols, algorithm }), want, sRel, `rows=${rows} cols=${cols} ${algorithm}`)).toBe("");
        }
      }
    });

    test("error statistics stay inside the stated bounds (and are worth stating)", () => {
      // 200k wide-range samples: the observed maxima are what the TSDoc bounds were set from.
      const rng = new Rng(99);
      const cols = 1000, x = GENS.wide!(rng, 200 * cols);
      const want = underReference(() => softmax(x, { cols }));
      const r3 = maxRel(softmax(x, { cols, algorithm: "threepass" }), want);
      const r2 = maxRel(softmax(x, { cols, algorithm: "twopass" }), want);
      const rs = maxRel(stablemax(x, { cols }), underReference(() => stablemax(x, { cols })));
      expect(r3).toBeLessThanOrEqual(TOL.softmaxRel * pb.tol);
      expect(r2).toBeLessThanOrEqual(TOL.softmaxRel * pb.tol);
      expect(rs).toBeLessThanOrEqual(TOL.stablemaxRel * pb.tol);
      // and they are not vacuous: the f32 result is not the f64 one (cuda computes in f64 and rounds once, so it
      // may well equal the reference)
      if (!pb.name.startsWith("cuda")) expect(r3).toBeGreaterThan(0);
    });

    test("adversarial rows: all equal, ties, -Infinity entries, huge magnitudes, f32 extremes", () => {
      const F = 3.4028234663852886e38;
      const rows: number[][] = [
        [5, 5, 5, 5, 5, 5, 5],
        [1e30, 1e30, 1e30, 1e30, 1e30, 1e30, 1e30],
        [-1e30, -1e30, -1e30, -1e30, -1e30, -1e30, -1e30],
        [-Infinity, 0, -Infinity, 1, -Infinity, -Infinity, 2],
        [1e30, -1e30, 0, 1e-30, -1e-30, 1e30, 3],
        [F, -F, F, 0, -F, 1, -1],
        [-F, -F, -F, -F, -F, -F, -F + 2e31],
        [0, -87.3, -87.4, -103, -104, -150, -60],
        [88.7, 88.8, 89, 0, -88, 100, 50],
        [1e-38, -1e-38, 1e-45, 0, -0, 1.17e-38, 2e-38],
      ];
      const x = Float32Array.from(rows.flat());
      for (const T of [1, 0.5, 3]) {
        const want = underReference(() => softmax(x, { cols: 7, temperature: T }));
        for (const algorithm of ALGOS) expect(compare(softmax(x, { cols: 7, algorithm, temperature: T }), want, sRel, `T=${T} ${algorithm}`)).toBe("");
        expect(compare(logSoftmax(x, { cols: 7, temperature: T }), logSoftmaxExact(x, { cols: 7, temperature: T }), lAbs, "log")).toBe("");
      }
      expect(compare(stablemax(x, { cols: 7 }), underReference(() => stablemax(x, { cols: 7 })), stRel, "stablemax")).toBe("");
      expect(compare(logStablemax(x, { cols: 7 }), underReference(() => logStablemax(x, { cols: 7 })), lsAbs, "logStablemax")).toBe("");
      // exact expectations that need no oracle
      for (const algorithm of ALGOS) {
        const y = softmax(x, { cols: 7, algorithm });
        for (let i = 0; i < 7; i++) expect(y[i]).toBeCloseTo(1 / 7, 7);
        for (let i = 7; i < 21; i++) expect(Math.abs(y[i]! - 1 / 7)).toBeLessThan(1e-7);
        expect([y[21], y[23], y[25], y[26]]).toEqual([0, 0, 0, 0]);
        expect([y[28], y[33]]).toEqual([0.5, 0.5]);
        expect([y[35], y[37]]).toEqual([0.5, 0.5]);
      }
      // stablemax of two f32 maxima: 1/2 each (an f32 running sum would overflow to Infinity)
      const st = stablemax(x, { cols: 7 });
      expect(st[35]).toBe(0.5);
      expect(st[37]).toBe(0.5);
    });

    test("row rules: NaN, +Infinity and all -Infinity make only their own row NaN", () => {
      for (const cols of [1, 3, 4, 9, 33, 65, 1025]) {
        const rng = new Rng(cols);
        const x = GENS.normal!(rng, 5 * cols);
        x[cols + (cols >> 1)] = NaN; // row 1
        x[2 * cols + cols - 1] = Infinity; // row 2
        x.fill(-Infinity, 3 * cols, 4 * cols); // row 3
        const snapshot = x.slice();
        const outs: Record<string, Float32Array> = {
          twopass: softmax(x, { cols, algorithm: "twopass" }),
          threepass: softmax(x, { cols, algorithm: "threepass" }),
          auto: softmax(x, { cols }),
          tempered: softmax(x, { cols, temperature: 0.3 }),
          logSoftmax: logSoftmax(x, { cols }),
          stablemax: stablemax(x, { cols }),
          logStablemax: logStablemax(x, { cols }),
        };
        expect(sameBits(x, snapshot)).toBe(true);
        for (const [name, y] of Object.entries(outs)) {
          for (const r of [1, 2, 3]) expect(y.subarray(r * cols, (r + 1) * cols).every(Number.isNaN), `${name} row ${r} cols=${cols}`).toBe(true);
          for (const r of [0, 4]) expect(y.subarray(r * cols, (r + 1) * cols).some(Number.isNaN), `${name} row ${r} cols=${cols}`).toBe(false);
        }
        // the clean rows still match the reference exactly as in the parity tests
        const want = underReference(() => softmax(x, { cols }));
        expect(compare(outs.auto!, want, sRel, `rows cols=${cols}`)).toBe("");
      }
    });

    test("-Infinity entries give exact zeros (log: -Infinity); a row's only finite entry gets 1", () => {
      const x = new Float32Array([-Infinity, 2, -Infinity, -Infinity, 7, -Infinity, -Infinity, -Infinity, -Infinity]);
      const top = 1 / (1 + Math.exp(-5)), second = Math.exp(-5) / (1 + Math.exp(-5));
      for (const algorithm of ALGOS) {
        const y = softmax(x, { cols: 9, algorithm });
        expect(y[4]).toBeCloseTo(top, 7);
        expect(y[1]).toBeCloseTo(second, 7);
        for (const i of [0, 2, 3, 5, 6, 7, 8]) expect(y[i]).toBe(0);
      }
      const l = logSoftmax(x, { cols: 9 });
      expect(l[0]).toBe(-Infinity);
      expect(l[4]).toBeCloseTo(-Math.log1p(Math.exp(-5)), 6);
      const s = stablemax(x, { cols: 9 });
      expect(s[0]).toBe(0);
      expect(logStablemax(x, { cols: 9 })[0]).toBe(-Infinity);
    });

    test("Float64Array path: every op, against the reference at 1e-12", () => {
      const rng = new Rng(64);
      const f64Rel = relBound(TOL.f64), f64Abs = absBound(TOL.f64);
      for (const cols of [1, 3, 8, 17, 129, 1025]) {
        const x = Float64Array.from({ length: 4 * cols }, () => rng.uniform(-100, 100));
        x[0] = -Infinity;
        const snapshot = x.slice();
        for (const T of [1, 0.7]) {
          for (const algorithm of ALGOS) {
            const y = softmax(x, { cols, temperature: T, algorithm });
            expect(y).toBeInstanceOf(Float64Array);
            expect(compare(y, underReference(() => softmax(x, { cols, temperature: T })), f64Rel, `f64 cols=${cols}`)).toBe("");
          }
          expect(compare(logSoftmax(x, { cols, temperature: T }), underReference(() => logSoftmax(x, { cols, temperature: T })), f64Abs, "f64 log")).toBe("");
        }
        expect(compare(stablemax(x, { cols }), underReference(() => stablemax(x, { cols })), f64Rel, "f64 stablemax")).toBe("");
        expect(compare(logStablemax(x, { cols }), underReference(() => logStablemax(x, { cols })), f64Abs, "f64 logStablemax")).toBe("");
        expect(sameBits(x, snapshot)).toBe(true);
      }
      const bad = new Float64Array([1, NaN, 2, 3, 4, 5]);
      const y = softmax(bad, { cols: 3 });
      expect(y.subarray(0, 3).every(Number.isNaN)).toBe(true);
      expect(y.subarray(3).some(Number.isNaN)).toBe(false);
    });

    test("out: written and returned; in place (out === x) for every op, plain and alloc() arrays", () => {
      const rng = new Rng(5);
      const cols = 37, n = 11 * cols;
      const src = GENS.wide!(rng, n);
      const ops: Array<[string, (x: Float32Array, out?: Float32Array) => Float32Array]> = [
        ["twopass", (x, out) => softmax(x, { cols, algorithm: "twopass", out })],
        ["threepass", (x, out) => softmax(x, { cols, algorithm: "threepass", out })],
        ["tempered", (x, out) => softmax(x, { cols, temperature: 1.7, out })],
        ["logSoftmax", (x, out) => logSoftmax(x, { cols, out })],
        ["stablemax", (x, out) => stablemax(x, { cols, out })],
        ["logStablemax", (x, out) => logStablemax(x, { cols, out })],
      ];
      for (const [name, op] of ops) {
        const want = op(src.slice());
        const out = new Float32Array(n);
        expect(op(src, out)).toBe(out);
        expect(sameBits(out, want)).toBe(true);
        const inPlace = src.slice();
        expect(op(inPlace, inPlace)).toBe(inPlace);
        expect(sameBits(inPlace, want), name).toBe(true);
        const a = alloc(n);
        a.set(src);
        expect(op(a, a)).toBe(a);
        expect(sameBits(a, want), `${name} alloc in place`).toBe(true);
        const b = alloc(n);
        b.set(src);
        const c = alloc(n);
        expect(op(b, c)).toBe(c);
        expect(sameBits(c, want), `${name} alloc -> alloc`).toBe(true);
        expect(sameBits(b, src)).toBe(true);
        const d = new Float32Array(n);
        expect(op(b, d)).toBe(d); // alloc -> plain
        expect(sameBits(d, want)).toBe(true);
        free(a); free(b); free(c);
      }
      // f64 in place
      const x64 = Float64Array.from(src);
      const want64 = softmax(x64, { cols });
      expect(softmax(x64, { cols, out: x64 })).toBe(x64);
      expect(sameBits(x64, want64)).toBe(true);
    });

    test("rows that do and do not allow the fused max pass, in any order: out of place == in place == reference", () => {
      const rng = new Rng(17);
      const kinds: Array<(n: number) => Float32Array> = [
        (n) => GENS.normal!(rng, n), // fused
        (n) => GENS.huge!(rng, n), // max outside [-18, 60]: redone
        (n) => GENS.masked!(rng, n), // -Infinity: redone with the mask
        (n) => GENS.negative!(rng, n),
        (n) => { const v = GENS.normal!(rng, n); v[n >> 1] = NaN; return v; },
        (n) => GENS.edges!(rng, n),
      ];
      for (const cols of [3, 64, 67, 1030]) {
        for (let trial = 0; trial < 6; trial++) {
          const rows = 6, x = new Float32Array(rows * cols);
          for (let r = 0; r < rows; r++) x.set(kinds[(trial + r * (trial + 1)) % kinds.length]!(cols), r * cols);
          const want = underReference(() => softmax(x, { cols }));
          for (const algorithm of ALGOS) {
            const y = softmax(x, { cols, algorithm });
            expect(compare(y, want, sRel, `mixed cols=${cols} trial=${trial} ${algorithm}`)).toBe("");
            const z = x.slice();
            softmax(z, { cols, algorithm, out: z });
            expect(sameBits(y, z), `in place vs out of place cols=${cols} trial=${trial} ${algorithm}`).toBe(true);
          }
        }
      }
    });

    test("results are deterministic and independent of the other rows", () => {
      const rng = new Rng(3);
      const cols = 1027, x = GENS.wide!(rng, 6 * cols);
      for (const algorithm of ALGOS) {
        const all = softmax(x, { cols, algorithm });
        expect(softmax(x, { cols, algorithm })).toEqual(all);
        for (let r = 0; r < 6; r++) expect(softmax(x.slice(r * cols, (r + 1) * cols), { cols, algorithm })).toEqual(all.slice(r * cols, (r + 1) * cols));
      }
    });
  });
}
