// Dense family kernels: GEMM, ReLU, 2-hot embedding gather, AdamW. Pointers are byte addresses, sizes elements.
// Row-major throughout. GEMM: C[m,n] = (acc ? C : 0) + op(A)[m,k] @ op(B)[k,n]; A is stored [k,m] when ta,
// B is stored [n,k] when tb. C must not overlap A or B (checked by the JS side).

// ---------------------------------------------------------------------------------------------------------
// GEMM, scalar generic (first version; the SIMD kernels replace it for f32).

/** Generic f32 GEMM with strides: every transpose combination, scalar. */
export function gemm_f32_scalar(a: usize, b: usize, c: usize, m: i32, k: i32, n: i32, ta: i32, tb: i32, acc: i32): void {
  const sai: usize = ta ? 4 : (<usize>k << 2), sap: usize = ta ? (<usize>m << 2) : 4;
  const sbp: usize = tb ? 4 : (<usize>n << 2), sbj: usize = tb ? (<usize>k << 2) : 4;
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s: f32 = 0;
      let pa = a + <usize>i * sai, pb = b + <usize>j * sbj;
      for (let p = 0; p < k; p++) {
        s += load<f32>(pa) * load<f32>(pb);
        pa += sap;
        pb += sbp;
      }
      const pc = c + ((<usize>i * <usize>n + <usize>j) << 2);
      store<f32>(pc, acc ? load<f32>(pc) + s : s);
    }
  }
}

/** Generic f64 GEMM (the f64 path for finite-difference tests): scalar, any transpose combination. */
export function gemm_f64(a: usize, b: usize, c: usize, m: i32, k: i32, n: i32, ta: i32, tb: i32, acc: i32): void {
  const sai: usize = ta ? 8 : (<usize>k << 3), sap: usize = ta ? (<usize>m << 3) : 8;
  const sbp: usize = tb ? 8 : (<usize>n << 3), sbj: usize = tb ? (<usize>k << 3) : 8;
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s: f64 = 0;
      let pa = a + <usize>i * sai, pb = b + <usize>j * sbj;
      for (let p = 0; p < k; p++) {
        s += load<f64>(pa) * load<f64>(pb);
        pa += sap;
        pb += sbp;
      }
      const pc = c + ((<usize>i * <usize>n + <usize>j) << 3);
      store<f64>(pc, acc ? load<f64>(pc) + s : s);
    }
  }
}

/** The f32 GEMM entry point. */
export function gemm_f32(a: usize, b: usize, c: usize, m: i32, k: i32, n: i32, ta: i32, tb: i32, acc: i32): void {
  gemm_f32_scalar(a, b, c, m, k, n, ta, tb, acc);
}

// ---------------------------------------------------------------------------------------------------------
// ReLU. y may be x; dx may be dy (in place).

/** y = max(x, 0); NaN stays NaN. */
export function relu_f32(x: usize, y: usize, n: i32): void {
  const z = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    v128.store(y + o, f32x4.max(v128.load(x + o), z));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    const v = load<f32>(x + o);
    store<f32>(y + o, v < 0 ? 0 : v + 0); // NaN passes; -0 -> 0
  }
}

export function relu_f64(x: usize, y: usize, n: i32): void {
  for (let i = 0; i < n; i++) {
    const o = <usize>i << 3;
    const v = load<f64>(x + o);
    store<f64>(y + o, v < 0 ? 0 : v + 0);
  }
}

/** dx = x > 0 ? dy : 0 (a select: dy = ±Inf or NaN where x <= 0 gives 0). */
export function relu_backward_f32(dy: usize, x: usize, dx: usize, n: i32): void {
  const z = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    v128.store(dx + o, v128.and(v128.load(dy + o), f32x4.gt(v128.load(x + o), z)));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(dx + o, load<f32>(x + o) > 0 ? load<f32>(dy + o) : 0);
  }
}

export function relu_backward_f64(dy: usize, x: usize, dx: usize, n: i32): void {
  for (let i = 0; i < n; i++) {
    const o = <usize>i << 3;
    store<f64>(dx + o, load<f64>(x + o) > 0 ? load<f64>(dy + o) : 0);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Embedding sum: out[r, :] = sum_j w[idx[r*per + j], :]. Indices are checked by the JS side.

export function embsum_f32(w: usize, idx: usize, out: usize, rows: i32, cols: i32, per: i32): void {
  const stride = <usize>cols << 2;
  for (let r = 0; r < rows; r++) {
    const orow = out + <usize>r * stride;
    const ip = idx + ((<usize>r * <usize>per) << 2);
    const w0 = w + <usize>load<i32>(ip) * stride;
    let i = 0;
    for (; i + 4 <= cols; i += 4) v128.store(orow + (<usize>i << 2), v128.load(w0 + (<usize>i << 2)));
    for (; i < cols; i++) store<f32>(orow + (<usize>i << 2), load<f32>(w0 + (<usize>i << 2)));
    for (let j = 1; j < per; j++) {
      const wj = w + <usize>load<i32>(ip + (<usize>j << 2)) * stride;
      i = 0;
      for (; i + 4 <= cols; i += 4) {
        const o = <usize>i << 2;
        v128.store(orow + o, f32x4.add(v128.load(orow + o), v128.load(wj + o)));
      }
      for (; i < cols; i++) {
        const o = <usize>i << 2;
        store<f32>(orow + o, load<f32>(orow + o) + load<f32>(wj + o));
      }
    }
  }
}

export function embsum_f64(w: usize, idx: usize, out: usize, rows: i32, cols: i32, per: i32): void {
  const stride = <usize>cols << 3;
  for (let r = 0; r < rows; r++) {
    const orow = out + <usize>r * stride;
    const ip = idx + ((<usize>r * <usize>per) << 2);
    for (let i = 0; i < cols; i++) store<f64>(orow + (<usize>i << 3), 0);
    for (let j = 0; j < per; j++) {
      const wj = w + <usize>load<i32>(ip + (<usize>j << 2)) * stride;
      for (let i = 0; i < cols; i++) {
        const o = <usize>i << 3;
        store<f64>(orow + o, load<f64>(orow + o) + load<f64>(wj + o));
      }
    }
  }
}

/** dw[idx[r*per + j], :] += dout[r, :], in row order (deterministic). */
export function embsum_backward_f32(dout: usize, idx: usize, dw: usize, rows: i32, cols: i32, per: i32): void {
  const stride = <usize>cols << 2;
  for (let r = 0; r < rows; r++) {
    const drow = dout + <usize>r * stride;
    const ip = idx + ((<usize>r * <usize>per) << 2);
    for (let j = 0; j < per; j++) {
      const wj = dw + <usize>load<i32>(ip + (<usize>j << 2)) * stride;
      let i = 0;
      for (; i + 4 <= cols; i += 4) {
        const o = <usize>i << 2;
        v128.store(wj + o, f32x4.add(v128.load(wj + o), v128.load(drow + o)));
      }
      for (; i < cols; i++) {
        const o = <usize>i << 2;
        store<f32>(wj + o, load<f32>(wj + o) + load<f32>(drow + o));
      }
    }
  }
}

export function embsum_backward_f64(dout: usize, idx: usize, dw: usize, rows: i32, cols: i32, per: i32): void {
  const stride = <usize>cols << 3;
  for (let r = 0; r < rows; r++) {
    const drow = dout + <usize>r * stride;
    const ip = idx + ((<usize>r * <usize>per) << 2);
    for (let j = 0; j < per; j++) {
      const wj = dw + <usize>load<i32>(ip + (<usize>j << 2)) * stride;
      for (let i = 0; i < cols; i++) {
        const o = <usize>i << 3;
        store<f64>(wj + o, load<f64>(wj + o) + load<f64>(drow + o));
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// AdamW, PyTorch's _single_tensor_adamw op order (scalars precomputed in f64 by the JS side, as Python does):
//   w = w * decay                      (decay = 1 - lr*wd; skipped when wd = 0, i.e. decay = 1)
//   m = lerp(m, g, 1 - b1)             (m + wt*(g - m) for wt < 0.5, else g - (g - m)*(1 - wt))
//   v = v * b2 + (1 - b2) * g * g      (mul_ then addcmul_: v*b2, then + ((1-b2)*g)*g)
//   denom = sqrt(v) / bc2sqrt + eps
//   w = w + (-stepSize) * m / denom    (addcdiv_: ((value*m)/denom), then add)
// f32 arrays: every scalar is rounded to f32 and every operation is f32 (as PyTorch's f32 CPU kernels).

export function adamw_f32(w: usize, g: usize, m: usize, v: usize, n: i32,
  decay: f64, lerpW: f64, b2: f64, omb2: f64, bc2sqrt: f64, eps: f64, negStep: f64): void {
  const lw = <f32>lerpW, lwc = <f32>(1 - <f64><f32>lerpW); // (1 - weight) in opmath f32, as ATen
  const small = lerpW < 0.5;
  const vdec = f32x4.splat(<f32>decay), vlw = f32x4.splat(lw), vlwc = f32x4.splat(lwc);
  const vb2 = f32x4.splat(<f32>b2), vomb2 = f32x4.splat(<f32>omb2), vbc = f32x4.splat(<f32>bc2sqrt);
  const veps = f32x4.splat(<f32>eps), vns = f32x4.splat(<f32>negStep);
  const doDecay = decay != 1;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    let wv = v128.load(w + o);
    if (doDecay) wv = f32x4.mul(wv, vdec);
    const gv = v128.load(g + o);
    let mv = v128.load(m + o);
    const d = f32x4.sub(gv, mv);
    mv = small ? f32x4.add(mv, f32x4.mul(vlw, d)) : f32x4.sub(gv, f32x4.mul(d, vlwc));
    let vv = f32x4.mul(v128.load(v + o), vb2);
    vv = f32x4.add(vv, f32x4.mul(f32x4.mul(vomb2, gv), gv));
    const den = f32x4.add(f32x4.div(f32x4.sqrt(vv), vbc), veps);
    wv = f32x4.add(wv, f32x4.div(f32x4.mul(vns, mv), den));
    v128.store(w + o, wv);
    v128.store(m + o, mv);
    v128.store(v + o, vv);
  }
  const sdec = <f32>decay, sb2 = <f32>b2, somb2 = <f32>omb2, sbc = <f32>bc2sqrt, seps = <f32>eps, sns = <f32>negStep;
  for (; i < n; i++) {
    const o = <usize>i << 2;
    let wv = load<f32>(w + o);
    if (doDecay) wv = wv * sdec;
    const gv = load<f32>(g + o);
    let mv = load<f32>(m + o);
    const d: f32 = gv - mv;
    mv = small ? mv + lw * d : gv - d * lwc;
    let vv: f32 = load<f32>(v + o) * sb2;
    vv = vv + (somb2 * gv) * gv;
    const den: f32 = Mathf.sqrt(vv) / sbc + seps;
    wv = wv + (sns * mv) / den;
    store<f32>(w + o, wv);
    store<f32>(m + o, mv);
    store<f32>(v + o, vv);
  }
}

export function adamw_f64(w: usize, g: usize, m: usize, v: usize, n: i32,
  decay: f64, lerpW: f64, b2: f64, omb2: f64, bc2sqrt: f64, eps: f64, negStep: f64): void {
  const small = lerpW < 0.5, lwc = 1 - lerpW, doDecay = decay != 1;
  for (let i = 0; i < n; i++) {
    const o = <usize>i << 3;
    let wv = load<f64>(w + o);
    if (doDecay) wv = wv * decay;
    const gv = load<f64>(g + o);
    let mv = load<f64>(m + o);
    const d = gv - mv;
    mv = small ? mv + lerpW * d : gv - d * lwc;
    let vv = load<f64>(v + o) * b2;
    vv = vv + (omb2 * gv) * gv;
    const den = Math.sqrt(vv) / bc2sqrt + eps;
    wv = wv + (negStep * mv) / den;
    store<f64>(w + o, wv);
    store<f64>(m + o, mv);
    store<f64>(v + o, vv);
  }
}
