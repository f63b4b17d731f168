// Small helpers shared by the test files.
import { expect } from "bun:test";
import { NumedgeError, Rng, type NumedgeErrorCode } from "numedge";

/** fn must throw a NumedgeError (with `code`, when given) whose message contains every mention. */
export function expectError(fn: () => unknown, code: NumedgeErrorCode | undefined, ...mentions: string[]): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(NumedgeError);
  const e = err as NumedgeError;
  if (code !== undefined) expect(e.code).toBe(code);
  for (const m of mentions) expect(e.message).toContain(m);
}

/**
 * "" when every element of got is within bound(i) of want, else the worst element. NaN and ±Infinity must match exactly,
 * and a NaN bound counts as outside.
 */
export function outsideBound(got: ArrayLike<number>, want: ArrayLike<number>, bound: (i: number) => number, label = ""): string {
  if (got.length !== want.length) return `${label}: length ${got.length}, reference ${want.length}`;
  let worst = 1, at = -1;
  for (let i = 0; i < want.length; i++) {
    const g = got[i]!, w = want[i]!;
    if (!Number.isFinite(w) || !Number.isFinite(g)) {
      if (!Object.is(g, w) && !(Number.isNaN(g) && Number.isNaN(w))) return `${label}[${i}] = ${g}, reference ${w}`;
      continue;
    }
    if (g === w) continue;
    const r = Math.abs(g - w) / bound(i);
    if (Number.isNaN(r)) return `${label}[${i}] = ${g}, reference ${w}: the bound is NaN`;
    if (r > worst) { worst = r; at = i; }
  }
  return at < 0 ? "" : `${label}[${at}] = ${got[at]}, reference ${want[at]}: ${worst.toFixed(2)}x the bound`;
}

/** |got - want| <= (k + 1) u (|c0| + sum |a||b|) per element: matmul's documented bound (u = 2^-23 or 2^-52). */
export function gemmBound(a: ArrayLike<number>, b: ArrayLike<number>, c0: ArrayLike<number> | null, m: number, k: number, n: number,
  ta: boolean, tb: boolean, unit: number): Float64Array {
  const bound = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let s = c0 ? Math.abs(c0[i * n + j]!) : 0;
      for (let p = 0; p < k; p++)
        s += Math.abs(ta ? a[p * m + i]! : a[i * k + p]!) * Math.abs(tb ? b[j * k + p]! : b[p * n + j]!);
      bound[i * n + j] = (k + 1) * unit * s;
    }
  return bound;
}

/** A seeded uniform [0, 1) generator as a plain function. */
export function uniform(seed: number): () => number {
  const r = new Rng(seed);
  return () => r.next();
}

/** What crossEntropy's bounds (its TSDoc, docs/numerics.md) depend on: the head, the shape and where the arithmetic is f32. */
export interface CrossEntropyShape { head: "softmax" | "stablemax"; rows: number; cols: number; precision: "f32" | "f64"; f32Logits: boolean }

/**
 * u: 2^-24 where the head computes in f32, 2^-53 in f64; sum: n = 16 + cols / 4 for the f32 softmax head (four running
 * sums), else 16 + cols (one running sum, or another order than the reference's): the row sum's relative error in u.
 */
const ceUnits = (o: CrossEntropyShape) => ({
  u: o.precision === "f32" ? 2 ** -24 : 2 ** -53,
  sum: 16 + (o.head === "softmax" && o.precision === "f32" ? o.cols / 4 : o.cols),
});

/** crossEntropy's documented bound on the error of its mean loss, `want` the f64 reference's. */
export function crossEntropyLossBound(want: number, o: CrossEntropyShape): number {
  const { u, sum } = ceUnits(o);
  return u * (16 * Math.max(1, Math.abs(want)) + sum);
}

/**
 * crossEntropy's documented bound on the error of one gradient element, `want` the f64 reference's:
 * u ((n + 2 |ln p|) |want| + [label] n / rows), p = rows |want|; one f32 ulp more where an f64
 * head's gradient is rounded to f32 logits; and values under the smallest normal may flush to 0.
 */
export function crossEntropyGradBound(want: number, label: boolean, o: CrossEntropyShape): number {
  const { u, sum } = ceUnits(o), w = Math.abs(want), p = o.rows * w;
  const ln = p > 0 ? 2 * Math.abs(Math.log(p)) : 0;
  const rounded = o.f32Logits && o.precision === "f64" ? 2 ** -23 * w : 0;
  return u * ((sum + ln) * w + (label ? sum / o.rows : 0)) + rounded + (o.f32Logits || o.precision === "f32" ? 2 ** -126 : 2 ** -1022);
}
