// Reductions a training step keeps on the device: ⊥Grad's projection and running maxima of step statistics.
// Scalar, sequential f64 accumulation on purpose: one chunk's sums are the same operations in the same order as
// the reference backend's f64 loops, so an array below the pool's threshold (one chunk) gets its bits exactly.
// Larger arrays sum fixed chunks (pool threads) whose partial sums the JS side adds in chunk order.

/** w·g, w·w and g·g over [0, n) into out[0..3), as f64. */
@inline function orthoDots<T>(w: usize, g: usize, n: i32, out: usize): void {
  let wg: f64 = 0, ww: f64 = 0, gg: f64 = 0;
  for (let i = 0; i < n; i++) {
    const o = <usize>i << alignof<T>();
    const a = <f64>load<T>(w + o), b = <f64>load<T>(g + o);
    wg += a * b;
    ww += a * a;
    gg += b * b;
  }
  store<f64>(out, wg);
  store<f64>(out, ww, 8);
  store<f64>(out, gg, 16);
}

/** Σ (g - proj w)² over [0, n), as f64. */
@inline function orthoResidual<T>(w: usize, g: usize, n: i32, proj: f64): f64 {
  let oo: f64 = 0;
  for (let i = 0; i < n; i++) {
    const o = <usize>i << alignof<T>();
    const r = <f64>load<T>(g + o) - proj * <f64>load<T>(w + o);
    oo += r * r;
  }
  return oo;
}

/** g = (g - proj w) * scale over [0, n), in f64, stored in T. */
@inline function orthoUpdate<T>(w: usize, g: usize, n: i32, proj: f64, scale: f64): void {
  for (let i = 0; i < n; i++) {
    const o = <usize>i << alignof<T>();
    store<T>(g + o, <T>((<f64>load<T>(g + o) - proj * <f64>load<T>(w + o)) * scale));
  }
}

/**
 * ⊥Grad on one tensor, in place on g (the authors' OrthoGrad): proj = (w·g) / (w·w + 1e-30), g⊥ = g - proj w,
 * g⊥ *= ‖g‖ / (‖g⊥‖ + 1e-30); dot products and the update in f64, stored in T. `scratch`: 24 bytes.
 */
@inline function orthogonalize<T>(w: usize, g: usize, n: i32, scratch: usize): void {
  orthoDots<T>(w, g, n, scratch);
  const proj = load<f64>(scratch) / (load<f64>(scratch, 8) + 1e-30);
  orthoUpdate<T>(w, g, n, proj, Math.sqrt(load<f64>(scratch, 16)) / (Math.sqrt(orthoResidual<T>(w, g, n, proj)) + 1e-30));
}

export function orthogonalize_f32(w: usize, g: usize, n: i32, scratch: usize): void {
  orthogonalize<f32>(w, g, n, scratch);
}
export function orthogonalize_f64(w: usize, g: usize, n: i32, scratch: usize): void {
  orthogonalize<f64>(w, g, n, scratch);
}
// The three passes of one chunk, for the pool.
export function ortho_dots_f32(w: usize, g: usize, n: i32, out: usize): void {
  orthoDots<f32>(w, g, n, out);
}
export function ortho_dots_f64(w: usize, g: usize, n: i32, out: usize): void {
  orthoDots<f64>(w, g, n, out);
}
export function ortho_residual_f32(w: usize, g: usize, n: i32, proj: f64, out: usize): void {
  store<f64>(out, orthoResidual<f32>(w, g, n, proj));
}
export function ortho_residual_f64(w: usize, g: usize, n: i32, proj: f64, out: usize): void {
  store<f64>(out, orthoResidual<f64>(w, g, n, proj));
}
export function ortho_update_f32(w: usize, g: usize, n: i32, proj: f64, scale: f64): void {
  orthoUpdate<f32>(w, g, n, proj, scale);
}
export function ortho_update_f64(w: usize, g: usize, n: i32, proj: f64, scale: f64): void {
  orthoUpdate<f64>(w, g, n, proj, scale);
}

/** dst[0] = max(dst[0], max over src[0..n) of v (|v| when abs)), as f64: the first NaN (dst's own first) or the
 *  first of equal maxima, so maxima of chunks taken in chunk order give the same bits. */
@inline function maxInto<T>(dst: usize, src: usize, n: i32, abs: bool): void {
  let m = load<f64>(dst);
  if (m == m) for (let i = 0; i < n; i++) {
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

/** dst[e] += slots[c * E + e] for c = 0..nch-1 in order, e < E: a pool's per-chunk partial sums (f64) or counts
 * (i32), added in chunk order (each dst[e] the same additions in the same order as a scalar loop, so the same bits). */
// @ts-ignore: decorator
@inline function addSlots<T>(dst: usize, slots: usize, E: i32, nch: i32): void {
  const stride = <usize>E * sizeof<T>(), lanes = 16 / <i32>sizeof<T>();
  let e = 0;
  for (; e + lanes <= E; e += lanes) {
    const o = <usize>e * sizeof<T>();
    let d = v128.load(dst + o);
    for (let c = 0; c < nch; c++) {
      const v = v128.load(slots + <usize>c * stride + o);
      d = isFloat<T>() ? f64x2.add(d, v) : i32x4.add(d, v);
    }
    v128.store(dst + o, d);
  }
  for (; e < E; e++) {
    const o = <usize>e * sizeof<T>();
    let d = load<T>(dst + o);
    for (let c = 0; c < nch; c++) d += load<T>(slots + <usize>c * stride + o);
    store<T>(dst + o, d);
  }
}
export function add_slots_f64(dst: usize, slots: usize, E: i32, nch: i32): void {
  addSlots<f64>(dst, slots, E, nch);
}
export function add_slots_i32(dst: usize, slots: usize, E: i32, nch: i32): void {
  addSlots<i32>(dst, slots, E, nch);
}
