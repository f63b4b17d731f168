// Training metrics over plain typed arrays, accumulated in f64.
import type { FloatArray } from "../errors.ts";

/** Share of rows whose argmax (first maximum on ties) equals the label. @example accuracy(logits, labels, 97) */
export function accuracy(logits: FloatArray, labels: Int32Array, cols: number): number {
  const rows = labels.length;
  let hit = 0;
  for (let r = 0, o = 0; r < rows; r++, o += cols) {
    let best = 0, bv = logits[o]!;
    for (let c = 1; c < cols; c++) {
      const v = logits[o + c]!;
      if (v > bv) { bv = v; best = c; }
    }
    if (best === labels[r]) hit++;
  }
  return rows ? hit / rows : 0;
}

/** max |x_i| (NaN if any element is NaN). @example maxAbs(logits) */
export function maxAbs(x: FloatArray): number {
  let m = 0;
  for (let i = 0; i < x.length; i++) {
    const a = Math.abs(x[i]!);
    if (a > m || a !== a) m = a;
  }
  return m;
}

/** f64 dot product (sum of a[i] * b[i] accumulated in f64). @example dot(w, g) / (l2norm(w) * l2norm(g)) // cosine */
export function dot(a: FloatArray, b: FloatArray): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

/** L2 norm over several tensors taken together (f64). @example l2norm(model.params) */
export function l2norm(xs: FloatArray | FloatArray[]): number {
  let s = 0;
  for (const x of Array.isArray(xs) ? xs : [xs]) s += dot(x, x);
  return Math.sqrt(s);
}

/**
 * Cosine between -grad and the weights, cos(-g, w): the grokking paper's naive-loss-minimization (NLM)
 * alignment; near 1 when the gradient mostly scales the weights up. 0 when either is all zero.
 * @example nlmCosine(model.params[1], model.grads[1])
 */
export function nlmCosine(w: FloatArray, g: FloatArray): number {
  const ww = dot(w, w), gg = dot(g, g);
  return ww > 0 && gg > 0 ? -dot(w, g) / Math.sqrt(ww * gg) : 0;
}
