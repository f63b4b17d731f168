// f64 twins of the softmax family: scalar, libm exp/log, for Float64Array inputs. Same row rule as f32.

import { bad_max, fill_nan } from "./exp";

// @ts-ignore: decorator
@inline function rowmax_f64(x: usize, n: i32): f64 {
  let m: f64 = -Infinity;
  for (let i = 0; i < n; i++) m = max(m, load<f64>(x + (<usize>i << 3)));
  return m;
}

/** y = softmax(x * scale) per row in f64. Error <= 4 ulp. */
export function softmax_f64(x: usize, y: usize, rows: i32, cols: i32, scale: f64): void {
  const stride = <usize>cols << 3;
  for (let r = 0; r < rows; r++) {
    const xr = x + <usize>r * stride, yr = y + <usize>r * stride;
    const mx = rowmax_f64(xr, cols);
    if (bad_max<f64>(mx)) { fill_nan<f64>(yr, cols); continue; }
    let s: f64 = 0;
    for (let i = 0; i < cols; i++) {
      const e = Math.exp((load<f64>(xr + (<usize>i << 3)) - mx) * scale);
      store<f64>(yr + (<usize>i << 3), e);
      s += e;
    }
    const inv = 1 / s;
    for (let i = 0; i < cols; i++) store<f64>(yr + (<usize>i << 3), load<f64>(yr + (<usize>i << 3)) * inv);
  }
}

/** y = log softmax(x * scale) per row in f64. */
export function logsoftmax_f64(x: usize, y: usize, rows: i32, cols: i32, scale: f64): void {
  const stride = <usize>cols << 3;
  for (let r = 0; r < rows; r++) {
    const xr = x + <usize>r * stride, yr = y + <usize>r * stride;
    const mx = rowmax_f64(xr, cols);
    if (bad_max<f64>(mx)) { fill_nan<f64>(yr, cols); continue; }
    let s: f64 = 0;
    for (let i = 0; i < cols; i++) s += Math.exp((load<f64>(xr + (<usize>i << 3)) - mx) * scale);
    const ls = Math.log(s);
    for (let i = 0; i < cols; i++) store<f64>(yr + (<usize>i << 3), (load<f64>(xr + (<usize>i << 3)) - mx) * scale - ls);
  }
}

/** y = s(x) / sum s(x) per row in f64. */
export function stablemax_f64(x: usize, y: usize, rows: i32, cols: i32): void {
  const stride = <usize>cols << 3;
  for (let r = 0; r < rows; r++) {
    const xr = x + <usize>r * stride, yr = y + <usize>r * stride;
    let s: f64 = 0;
    for (let i = 0; i < cols; i++) {
      const v = load<f64>(xr + (<usize>i << 3));
      const e = v >= 0 ? v + 1 : 1 / (1 - v);
      store<f64>(yr + (<usize>i << 3), e);
      s += e;
    }
    if (!(s > 0 && s < Infinity)) { fill_nan<f64>(yr, cols); continue; }
    const inv = 1 / s;
    for (let i = 0; i < cols; i++) store<f64>(yr + (<usize>i << 3), load<f64>(yr + (<usize>i << 3)) * inv);
  }
}

/** y = log s(x) - log sum s(x) per row in f64. */
export function logstablemax_f64(x: usize, y: usize, rows: i32, cols: i32): void {
  const stride = <usize>cols << 3;
  for (let r = 0; r < rows; r++) {
    const xr = x + <usize>r * stride, yr = y + <usize>r * stride;
    let s: f64 = 0;
    for (let i = 0; i < cols; i++) {
      const v = load<f64>(xr + (<usize>i << 3));
      s += v >= 0 ? v + 1 : 1 / (1 - v);
    }
    if (!(s > 0 && s < Infinity)) { fill_nan<f64>(yr, cols); continue; }
    const ls = Math.log(s);
    for (let i = 0; i < cols; i++) {
      const v = load<f64>(xr + (<usize>i << 3));
      store<f64>(yr + (<usize>i << 3), (v >= 0 ? Math.log1p(v) : -Math.log1p(-v)) - ls);
    }
  }
}
