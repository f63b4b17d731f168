// Reductions a training step keeps on the device: ⊥Grad's projection and running maxima of step statistics.
// Scalar, sequential f64 accumulation on purpose: the same operations in the same order as the f64 TypeScript
// loops they replace, so results are bit-identical to them (and to the reference backend).

@inline function dot<T>(a: usize, b: usize, n: i32): f64 {
  let s: f64 = 0;
  for (let i = 0; i < n; i++) s += <f64>load<T>(a + (<usize>i << alignof<T>())) * <f64>load<T>(b + (<usize>i << alignof<T>()));
  return s;
}

/**
 * ⊥Grad on one tensor, in place on g (the authors' OrthoGrad): proj = (w·g) / (w·w + 1e-30), g⊥ = g - proj w,
 * g⊥ *= ‖g‖ / (‖g⊥‖ + 1e-30); dot products and the update in f64, stored in T.
 */
@inline function orthogonalize<T>(w: usize, g: usize, n: i32): void {
  const proj = dot<T>(w, g, n) / (dot<T>(w, w, n) + 1e-30);
  const gNorm = Math.sqrt(dot<T>(g, g, n));
  let oo: f64 = 0;
  for (let i = 0; i < n; i++) {
    const o = <usize>i << alignof<T>();
    const r = <f64>load<T>(g + o) - proj * <f64>load<T>(w + o);
    oo += r * r;
  }
  const scale = gNorm / (Math.sqrt(oo) + 1e-30);
  for (let i = 0; i < n; i++) {
    const o = <usize>i << alignof<T>();
    store<T>(g + o, <T>((<f64>load<T>(g + o) - proj * <f64>load<T>(w + o)) * scale));
  }
}

export function orthogonalize_f32(w: usize, g: usize, n: i32): void {
  orthogonalize<f32>(w, g, n);
}

export function orthogonalize_f64(w: usize, g: usize, n: i32): void {
  orthogonalize<f64>(w, g, n);
}

/** dst[0] = max(dst[0], max over src[0..n) of v (|v| when abs)), as f64; a NaN anywhere makes it NaN for good. */
@inline function maxInto<T>(dst: usize, src: usize, n: i32, abs: bool): void {
  let m = load<f64>(dst);
  for (let i = 0; i < n; i++) {
    let v = <f64>load<T>(src + (<usize>i << alignof<T>()));
    if (abs) v = Math.abs(v);
    if (v > m || v != v) m = v;
    if (m != m) break;
  }
  store<f64>(dst, m);
}

export function max_into_f32(dst: usize, src: usize, n: i32, abs: i32): void {
  maxInto<f32>(dst, src, n, abs != 0);
}

export function max_into_f64(dst: usize, src: usize, n: i32, abs: i32): void {
  maxInto<f64>(dst, src, n, abs != 0);
}
