// Cross-entropy over [rows, cols] logits with int32 labels: mean loss, gradient dL/dz (already / total), and
// collapse counts. stats (f64[3]) receives: sum of row losses, rows whose top probability is exactly 1 in
// the working precision (Softmax Collapse: sum_k exp(z_k - max) == 1), rows whose loss is exactly 0.
// `total`: the batch's rows (a pool thread runs a chunk of them). grad = 0 means "no gradient".
// A row with NaN/+Inf (or all -Inf) gets loss NaN and a NaN gradient row.
import { bad_max, exp_f32, exp_f32x4, fill_nan, rowmax_f32 } from "./exp";


/** Softmax head in true f32 arithmetic, as an f32 PyTorch log_softmax + nll would round it. */
export function ce_softmax_f32(z: usize, labels: usize, grad: usize, rows: i32, cols: i32, stats: usize, total: i32): void {
  const stride = <usize>cols << 2;
  const invN = <f32>1 / <f32>total;
  let loss: f64 = 0, sc: f64 = 0, zero: f64 = 0;
  for (let r = 0; r < rows; r++) {
    const zr = z + <usize>r * stride, gr = grad ? grad + <usize>r * stride : 0;
    const y = load<i32>(labels + (<usize>r << 2));
    const mx = rowmax_f32(zr, cols);
    if (bad_max<f32>(mx)) { loss += NaN; if (gr) fill_nan<f32>(gr, cols); continue; }
    const vm = f32x4.splat(mx);
    let acc = f32x4.splat(0);
    let i = 0;
    for (; i + 4 <= cols; i += 4) acc = f32x4.add(acc, exp_f32x4(f32x4.sub(v128.load(zr + (<usize>i << 2)), vm)));
    let s: f32 = (f32x4.extract_lane(acc, 0) + f32x4.extract_lane(acc, 1)) + (f32x4.extract_lane(acc, 2) + f32x4.extract_lane(acc, 3));
    for (; i < cols; i++) s += exp_f32(load<f32>(zr + (<usize>i << 2)) - mx);
    if (s == 1) sc++;
    const ls = Mathf.log(s);
    const l = -((load<f32>(zr + (<usize>y << 2)) - mx) - ls);
    if (l == 0) zero++;
    loss += <f64>l;
    if (!gr) continue;
    const vl = f32x4.splat(ls), vn = f32x4.splat(invN);
    i = 0;
    for (; i + 4 <= cols; i += 4) {
      const o = <usize>i << 2;
      v128.store(gr + o, f32x4.mul(exp_f32x4(f32x4.sub(f32x4.sub(v128.load(zr + o), vm), vl)), vn));
    }
    for (; i < cols; i++) {
      const o = <usize>i << 2;
      store<f32>(gr + o, exp_f32((load<f32>(zr + o) - mx) - ls) * invN);
    }
    const oy = <usize>y << 2;
    store<f32>(gr + oy, (exp_f32((load<f32>(zr + oy) - mx) - ls) - 1) * invN);
  }
  store<f64>(stats, loss);
  store<f64>(stats, sc, 8);
  store<f64>(stats, zero, 16);
}

/** Softmax head in f64 (libm exp/log); logits of type TIn, gradient stored as TOut. */
// @ts-ignore: decorator
@inline function ce_softmax_f64_impl<TIn, TOut>(z: usize, labels: usize, grad: usize, rows: i32, cols: i32, stats: usize, total: i32): void {
  const stride = <usize>cols * sizeof<TIn>(), gstride = <usize>cols * sizeof<TOut>();
  const invN = 1.0 / <f64>total;
  let loss: f64 = 0, sc: f64 = 0, zero: f64 = 0;
  for (let r = 0; r < rows; r++) {
    const zr = z + <usize>r * stride, gr = grad ? grad + <usize>r * gstride : 0;
    const y = load<i32>(labels + (<usize>r << 2));
    let mx: f64 = -Infinity;
    for (let i = 0; i < cols; i++) mx = max(mx, <f64>load<TIn>(zr + <usize>i * sizeof<TIn>()));
    if (bad_max<f64>(mx)) { loss += NaN; if (gr) fill_nan<TOut>(gr, cols); continue; }
    let s: f64 = 0;
    for (let i = 0; i < cols; i++) s += Math.exp(<f64>load<TIn>(zr + <usize>i * sizeof<TIn>()) - mx);
    if (s == 1) sc++;
    const ls = Math.log(s);
    const l = -((<f64>load<TIn>(zr + <usize>y * sizeof<TIn>()) - mx) - ls);
    if (l == 0) zero++;
    loss += l;
    if (!gr) continue;
    for (let i = 0; i < cols; i++) {
      const p = Math.exp((<f64>load<TIn>(zr + <usize>i * sizeof<TIn>()) - mx) - ls);
      store<TOut>(gr + <usize>i * sizeof<TOut>(), <TOut>((i == y ? p - 1 : p) * invN));
    }
  }
  store<f64>(stats, loss);
  store<f64>(stats, sc, 8);
  store<f64>(stats, zero, 16);
}

export function ce_softmax_f64(z: usize, labels: usize, grad: usize, rows: i32, cols: i32, stats: usize, total: i32): void {
  ce_softmax_f64_impl<f64, f64>(z, labels, grad, rows, cols, stats, total);
}

/** f32 logits, f64 math, f32 gradient: an f32 model with its loss head in f64. */
export function ce_softmax_f32in_f64(z: usize, labels: usize, grad: usize, rows: i32, cols: i32, stats: usize, total: i32): void {
  ce_softmax_f64_impl<f32, f32>(z, labels, grad, rows, cols, stats, total);
}

/**
 * StableMax head, s(x) = x + 1 (x >= 0), 1/(1 - x) (x < 0), in precision T (f32 or f64) with logits TIn and
 * gradient TOut. loss = -log(s(z_y) / S); dL/dz_k = s'(z_k)/S - [k = y] s'(z_y)/s(z_y), s' = 1 or 1/(1-x)^2.
 * Collapse count: S == s(max z), the top probability is exactly 1.
 */
// @ts-ignore: decorator
@inline function ce_stablemax_impl<T, TIn, TOut>(z: usize, labels: usize, grad: usize, rows: i32, cols: i32, stats: usize, total: i32): void {
  const stride = <usize>cols * sizeof<TIn>(), gstride = <usize>cols * sizeof<TOut>();
  const invN = <T>1 / <T>total;
  let loss: f64 = 0, sc: f64 = 0, zero: f64 = 0;
  for (let r = 0; r < rows; r++) {
    const zr = z + <usize>r * stride, gr = grad ? grad + <usize>r * gstride : 0;
    const y = load<i32>(labels + (<usize>r << 2));
    let S: T = 0, mx: T = <T>-Infinity;
    for (let i = 0; i < cols; i++) {
      const v = <T>load<TIn>(zr + <usize>i * sizeof<TIn>());
      mx = max(mx, v);
      S += v >= 0 ? v + 1 : <T>1 / (<T>1 - v);
    }
    if (!(S > 0 && S < <T>Infinity) || !(mx < <T>Infinity)) { loss += NaN; if (gr) fill_nan<TOut>(gr, cols); continue; }
    const sm: T = mx >= 0 ? mx + 1 : <T>1 / (<T>1 - mx);
    if (S == sm) sc++;
    const zy = <T>load<TIn>(zr + <usize>y * sizeof<TIn>());
    const sy: T = zy >= 0 ? zy + 1 : <T>1 / (<T>1 - zy);
    const l: T = -(sizeof<T>() == 4 ? <T>Mathf.log(<f32>(sy / S)) : <T>Math.log(<f64>(sy / S)));
    if (l == 0) zero++;
    loss += <f64>l;
    if (!gr) continue;
    const invS = <T>1 / S;
    for (let i = 0; i < cols; i++) {
      const v = <T>load<TIn>(zr + <usize>i * sizeof<TIn>());
      const d: T = v >= 0 ? <T>1 : <T>1 / ((<T>1 - v) * (<T>1 - v));
      store<TOut>(gr + <usize>i * sizeof<TOut>(), <TOut>(i == y ? (d * invS - d / sy) * invN : d * invS * invN));
    }
  }
  store<f64>(stats, loss);
  store<f64>(stats, sc, 8);
  store<f64>(stats, zero, 16);
}

export function ce_stablemax_f32(z: usize, labels: usize, grad: usize, rows: i32, cols: i32, stats: usize, total: i32): void {
  ce_stablemax_impl<f32, f32, f32>(z, labels, grad, rows, cols, stats, total);
}
export function ce_stablemax_f64(z: usize, labels: usize, grad: usize, rows: i32, cols: i32, stats: usize, total: i32): void {
  ce_stablemax_impl<f64, f64, f64>(z, labels, grad, rows, cols, stats, total);
}
export function ce_stablemax_f32in_f64(z: usize, labels: usize, grad: usize, rows: i32, cols: i32, stats: usize, total: i32): void {
  ce_stablemax_impl<f64, f32, f32>(z, labels, grad, rows, cols, stats, total);
}
