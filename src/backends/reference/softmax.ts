// The oracle: plain TypeScript, f64 accumulation, Math.exp/log. Slow and obviously correct.
// Row rule as every backend: NaN or +Inf in a row, or a row of only -Inf, makes the whole row NaN.
import type { FloatArray } from "../../errors.ts";
import type { SoftmaxKernels } from "../api/softmax.ts";

const f32 = Math.fround;
const sOf = (v: number) => (v >= 0 ? v + 1 : 1 / (1 - v));

function rowMax(x: FloatArray, o: number, n: number): number {
  let m = -Infinity;
  for (let i = 0; i < n; i++) {
    const v = x[o + i]!;
    if (Number.isNaN(v)) return NaN;
    if (v > m) m = v;
  }
  return m;
}
const badMax = (m: number) => !(m > -Infinity && m < Infinity);

export const softmaxReference: SoftmaxKernels = {
  softmax(x, y, rows, cols, scale) {
    for (let r = 0, o = 0; r < rows; r++, o += cols) {
      const m = rowMax(x, o, cols);
      if (badMax(m)) { y.fill(NaN, o, o + cols); continue; }
      let s = 0;
      for (let i = 0; i < cols; i++) s += Math.exp((x[o + i]! - m) * scale);
      for (let i = 0; i < cols; i++) y[o + i] = Math.exp((x[o + i]! - m) * scale) / s;
    }
  },
  logSoftmax(x, y, rows, cols, scale) {
    for (let r = 0, o = 0; r < rows; r++, o += cols) {
      const m = rowMax(x, o, cols);
      if (badMax(m)) { y.fill(NaN, o, o + cols); continue; }
      let s = 0;
      for (let i = 0; i < cols; i++) s += Math.exp((x[o + i]! - m) * scale);
      const ls = Math.log(s);
      for (let i = 0; i < cols; i++) y[o + i] = (x[o + i]! - m) * scale - ls;
    }
  },
  stablemax(x, y, rows, cols) {
    for (let r = 0, o = 0; r < rows; r++, o += cols) {
      let s = 0;
      for (let i = 0; i < cols; i++) s += sOf(x[o + i]!);
      if (!(s > 0 && s < Infinity)) { y.fill(NaN, o, o + cols); continue; }
      for (let i = 0; i < cols; i++) y[o + i] = sOf(x[o + i]!) / s;
    }
  },
  logStablemax(x, y, rows, cols) {
    for (let r = 0, o = 0; r < rows; r++, o += cols) {
      let s = 0;
      for (let i = 0; i < cols; i++) s += sOf(x[o + i]!);
      if (!(s > 0 && s < Infinity)) { y.fill(NaN, o, o + cols); continue; }
      const ls = Math.log(s);
      for (let i = 0; i < cols; i++) {
        const v = x[o + i]!;
        y[o + i] = (v >= 0 ? Math.log1p(v) : -Math.log1p(-v)) - ls;
      }
    }
  },
  // Everything in f64, except that precision "f32" rounds where an f32 computation must round for the
  // collapse semantics to hold: the softmax sum S is rounded to f32 before its log (so S == 1 gives loss 0
  // and a correct-class gradient of exactly 0), and the loss is rounded to f32 before the zero-loss count.
  crossEntropy(z, labels, grad, stats, rows, cols, head, precision) {
    const round = precision === "f32" ? f32 : (v: number) => v;
    let lossSum = 0, scRows = 0, zeroLossRows = 0;
    for (let r = 0, o = 0; r < rows; r++, o += cols) {
      const y = labels[r]!;
      const m = rowMax(z, o, cols);
      const terms = new Float64Array(cols);
      let s = 0;
      for (let i = 0; i < cols; i++) s += terms[i] = head === "softmax" ? Math.exp(z[o + i]! - m) : sOf(z[o + i]!);
      if (badMax(m) || !(s > 0 && s < Infinity)) {
        lossSum += NaN;
        grad?.fill(NaN, o, o + cols);
        continue;
      }
      if (head === "softmax") {
        // f32: whether a row collapses depends on the order of the f32 additions (small terms are absorbed
        // by a running sum that already holds the max's 1, or add up among themselves first). The order is
        // fixed to the wasm kernel's: four interleaved f32 partial sums, combined pairwise, then the tail.
        let S = s;
        if (precision === "f32") {
          const term = (i: number) => f32(Math.exp(f32(z[o + i]! - m)));
          const lane = [0, 0, 0, 0], nv = cols & ~3;
          for (let i = 0; i < nv; i++) lane[i & 3] = f32(lane[i & 3]! + term(i));
          S = f32(f32(lane[0]! + lane[1]!) + f32(lane[2]! + lane[3]!));
          for (let i = nv; i < cols; i++) S = f32(S + term(i));
        }
        const ls = Math.log(S);
        if (S === 1) scRows++;
        const loss = round(ls - (z[o + y]! - m));
        if (loss === 0) zeroLossRows++;
        lossSum += loss;
        if (!grad) continue;
        for (let i = 0; i < cols; i++) grad[o + i] = (Math.exp(z[o + i]! - m - ls) - (i === y ? 1 : 0)) / rows;
        continue;
      }
      if (round(s / sOf(m)) === 1) scRows++;
      const loss = round(Math.log(s) - Math.log(terms[y]!));
      if (loss === 0) zeroLossRows++;
      lossSum += loss;
      if (!grad) continue;
      for (let i = 0; i < cols; i++) {
        const v = z[o + i]!;
        const d = v >= 0 ? 1 : 1 / ((1 - v) * (1 - v));
        grad[o + i] = (d / s - (i === y ? d / terms[y]! : 0)) / rows;
      }
    }
    stats.set([lossSum / rows, scRows / rows, zeroLossRows / rows]);
  },
};
