// topk: tf.topk semantics, exact parity with the f64 reference on random and adversarial rows, bad input.
import { beforeAll, describe, expect, test } from "bun:test";
import { alloc, setBackend, topk, type NumedgeErrorCode } from "numedge";
import { expectError, uniform } from "./helpers.ts";
import { parityBackends, underReference } from "./parity.ts";

const rng = uniform;

const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

/** Rows of several kinds: random, few distinct values (ties), specials (NaN, ±Inf, ±0), all equal, sorted runs. */
function makeRows(rows: number, cols: number, kind: number, r: () => number): Float32Array {
  const x = new Float32Array(rows * cols);
  const specials = [NaN, Infinity, -Infinity, 0, -0, 1, -1, 3.4e38, -3.4e38, 1e-45];
  for (let i = 0; i < x.length; i++) {
    const c = i % cols;
    switch (kind) {
      case 0: x[i] = r() * 2 - 1; break;
      case 1: x[i] = Math.floor(r() * 4); break;
      case 2: x[i] = r() < 0.3 ? specials[Math.floor(r() * specials.length)]! : r() * 10 - 5; break;
      case 3: x[i] = 0.5; break;
      case 4: x[i] = c; break; // ascending: every element beats the threshold (worst case for the scan)
      case 5: x[i] = -c; break;
      default: x[i] = r() < 0.5 ? NaN : Math.floor(r() * 3); break;
    }
  }
  return x;
}

function expectSame(got: { values: Float32Array; indices: Int32Array }, want: { values: Float32Array; indices: Int32Array }) {
  expect(Array.from(got.indices)).toEqual(Array.from(want.indices));
  expect(bits(got.values)).toEqual(bits(want.values));
}

for (const pb of parityBackends) {
  describe(`topk [${pb.name}]`, () => {
    beforeAll(pb.setup);

    test("golden: ties lower index first, NaN above +Infinity, -0 equals +0, k = 0", () => {
      const x = new Float32Array([1, 3, 3, NaN, -0, /**/ 0, 2, 5, 5, 5, /**/ -Infinity, 7, 1, 2, 3, /**/ -0, 0, Infinity, -Infinity, NaN]);
      const r = topk(x, { cols: 5, k: 3 });
      expect(Array.from(r.indices)).toEqual([3, 1, 2, 2, 3, 4, 1, 4, 3, 4, 2, 0]);
      expect(Array.from(r.values.subarray(3))).toEqual([5, 5, 5, 7, 3, 2, NaN, Infinity, -0].map((v) => v));
      expect(Number.isNaN(r.values[0]!)).toBe(true);
      expect(Object.is(r.values[11], -0)).toBe(true); // -0 at index 0 ties +0 at index 1 and wins by index
      const u = topk(x, { cols: 5, k: 3, sorted: false });
      expect(Array.from(u.indices)).toEqual([1, 2, 3, 2, 3, 4, 1, 3, 4, 0, 2, 4]);
      const z = topk(x, { cols: 5, k: 0 });
      expect(z.values.length).toBe(0);
      expect(z.indices.length).toBe(0);
      expectError(() => topk(new Float32Array(0), { cols: 4, k: 2 }), "shape", "x is empty"); // as softmax: an empty (or detached) x is an error, not an empty result
      const all = topk(new Float32Array([2, 1, 3]), { cols: 3, k: 3 });
      expect(Array.from(all.indices)).toEqual([2, 0, 1]);
    });

    test("parity: cols 1..300, k in 0..cols, random and adversarial rows (exact)", () => {
      const r = rng(7);
      for (let cols = 1; cols <= 300; cols += cols < 40 ? 1 : 7) {
        const ks = new Set([0, 1, Math.min(cols, 2), Math.min(cols, 8), Math.min(cols, 32), Math.min(cols, 33), cols, Math.floor(r() * (cols + 1))]);
        for (const kind of [0, 1, 2, 3, 4, 5, 6]) {
          const x = makeRows(cols <= 32 ? 9 : 3, cols, kind, r); // 9 rows: two 4-row SIMD groups and a tail
          for (const k of ks) {
            for (const sorted of [true, false]) {
              const got = topk(x, { cols, k, sorted });
              const want = underReference(() => topk(x, { cols, k, sorted }));
              expectSame(got, want);
            }
          }
        }
      }
    });

    test("parity: long rows and large k (buffered quickselect with refills)", () => {
      const r = rng(11);
      // [4000, 8] / [2000, 32] with few distinct values or all equal: > 512 candidates reach the k <= 32 bounded
      // scan, which must quickselect its candidate buffer and raise the bound mid-row.
      for (const [cols, k] of [[32000, 50], [40000, 100], [5000, 1000], [4099, 4099], [70000, 33], [3000, 2999], [4000, 8], [2000, 32], [1000, 1]] as const) {
        for (const kind of [0, 1, 2, 3, 4, 5]) {
          const x = makeRows(1, cols, kind, r);
          for (const sorted of [true, false]) expectSame(topk(x, { cols, k, sorted }), underReference(() => topk(x, { cols, k, sorted })));
        }
      }
    });

    test("T = 65536 rows of 8, k = 2 and rows of 256, k = 8", () => {
      const r = rng(3);
      const a = makeRows(65536, 8, 2, r);
      expectSame(topk(a, { cols: 8, k: 2 }), underReference(() => topk(a, { cols: 8, k: 2 })));
      const b = makeRows(2048, 256, 0, r);
      expectSame(topk(b, { cols: 256, k: 8 }), underReference(() => topk(b, { cols: 256, k: 8 })));
    });

    test("out: writes into given arrays (plain or alloc'd), checks them", () => {
      const x = makeRows(9, 40, 2, rng(6));
      const want = underReference(() => topk(x, { cols: 40, k: 5 }));
      for (const mk of [(n: number) => ({ values: new Float32Array(n), indices: new Int32Array(n) }), (n: number) => ({ values: alloc(n), indices: alloc(n, "i32") })]) {
        const out = mk(45);
        const got = topk(x, { cols: 40, k: 5, out });
        expect(got.values).toBe(out.values);
        expect(got.indices).toBe(out.indices);
        expectSame(got, want);
      }
      expectError(() => topk(x, { cols: 40, k: 5, out: { values: new Float32Array(44), indices: new Int32Array(45) } }), "shape", "out.values");
      expectError(() => topk(x, { cols: 40, k: 5, out: { values: new Float32Array(45), indices: new Float32Array(45) as never } }), "dtype", "out.indices");
      expectError(() => topk(x, { cols: 40, k: 5, out: { values: x.subarray(0, 45), indices: new Int32Array(45) } }), "shape", "overlaps");
    });

    test("does not mutate its input", () => {
      const x = makeRows(4, 77, 2, rng(5));
      const before = bits(x);
      topk(x, { cols: 77, k: 40, sorted: false });
      topk(x, { cols: 77, k: 5 });
      expect(bits(x)).toEqual(before);
    });

    test("bad input throws NumedgeError naming the argument", () => {
      const x = new Float32Array(12);
      const bad: Array<[() => unknown, string, string]> = [
        [() => topk(x, { cols: 4, k: 5 }), "range", "k"],
        [() => topk(x, { cols: 4, k: -1 }), "range", "k"],
        [() => topk(x, { cols: 4, k: 1.5 }), "range", "k"],
        [() => topk(x, { cols: 5, k: 1 }), "shape", "cols"],
        [() => topk(x, { cols: 0, k: 0 }), "range", "cols"],
        [() => topk(new Float64Array(4) as never, { cols: 4, k: 1 }), "dtype", "x"],
        [() => topk([1, 2] as never, { cols: 2, k: 1 }), "dtype", "x"],
        [() => topk(x, undefined as never), "shape", "cols"],
        [() => topk(x, { cols: 4, k: 1, sorted: 1 as never }), "dtype", "sorted"],
      ];
      for (const [f, code, arg] of bad) expectError(f, code as NumedgeErrorCode, arg);
    });
  });
}

describe("topk: overlapping outputs", () => {
  test("out.values overlapping out.indices is a shape error (plain buffer or alloc())", () => {
    const x = new Float32Array([1, 4, 2, 3, 8, 5, 7, 6]);
    const ab = new ArrayBuffer(32);
    expectError(() => topk(x, { cols: 4, k: 2, out: { values: new Float32Array(ab, 0, 4), indices: new Int32Array(ab, 8, 4) } }),
      "shape", "out.values", "out.indices");
    const buf = alloc(8, "i32");
    const values = new Float32Array(buf.buffer, buf.byteOffset, 4);
    expectError(() => topk(x, { cols: 4, k: 2, out: { values, indices: buf.subarray(3, 7) } }), "shape", "overlaps");
    // disjoint halves of one buffer are fine
    const r = topk(x, { cols: 4, k: 2, out: { values: new Float32Array(ab, 0, 4), indices: new Int32Array(ab, 16, 4) } });
    expect(Array.from(r.values)).toEqual([4, 3, 8, 7]);
    expect(Array.from(r.indices)).toEqual([1, 3, 0, 2]);
  });
});

describe("topk selection work stays linear in cols on adversarial rows", () => {
  test("interleaved NaN / +Infinity, ties, sorted rows, k = cols/2: keys visited per column bounded", async () => {
    await setBackend("wasm");
    const { asm } = await import("../src/backends/wasm/runtime.ts");
    const cols = 1 << 18;
    const make: Record<string, (i: number) => number> = {
      nanInterleaved: (i) => (i % 2 ? NaN : Math.sin(i)), infInterleaved: (i) => (i % 2 ? Infinity : Math.sin(i)),
      allEqual: () => 1, ascending: (i) => i, descending: (i) => -i, fewDistinct: (i) => i % 3, random: (i) => Math.sin(i * 12.9898) * 43758.5453 % 1,
    };
    for (const [name, f] of Object.entries(make)) {
      const x = Float32Array.from({ length: cols }, (_, i) => f(i));
      for (const sorted of [false, true]) {
        asm.topk_work!();
        const r = topk(x, { cols, k: cols / 2, sorted });
        const perCol = asm.topk_work!() / cols;
        expect(perCol, `${name} sorted=${sorted}`).toBeLessThan(sorted ? 120 : 30); // a quadratic selection visits ~cols keys per column
        expect(r.indices.length).toBe(cols / 2);
      }
    }
  });
});
