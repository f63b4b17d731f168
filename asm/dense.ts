// Dense family kernels: GEMM, ReLU, 2-hot embedding gather, AdamW. Pointers are byte addresses, sizes elements.
// Row-major throughout. GEMM: C[m,n] = (acc ? C : 0) + op(A)[m,k] @ op(B)[k,n]; A is stored [k,m] when ta,
// B is stored [n,k] when tb. C must not overlap A or B (checked by the JS side).

// ---------------------------------------------------------------------------------------------------------
// GEMM f32, BLIS-style: for each NC-wide block of columns and KC-deep slice of k, pack op(B) into 8-column panels
// (NC * KC * 4 bytes: stays in L2 while every row block sweeps it, and bounds the scratch); for each MC-row block
// pack op(A) into 4-row micro-panels whose values are pre-broadcast to all four lanes (so the inner loop has
// only plain v128 loads, no splat shuffles: measured ~25% faster under JSC than load32_splat); then a 4x8
// register-blocked micro-kernel (8 f32x4 accumulators, mul then add: WASM SIMD has no FMA) sweeps the block.
// Packing handles all four transpose combinations and the m/n/k tails (zero padding), so one micro-kernel
// serves every case. Sums over k run in order p = 0..k-1 per output lane, KC at a time, added into C.

// @ts-ignore: decorator
@inline const KC: i32 = 256;
// @ts-ignore: decorator
@inline const MC: i32 = 32;
// @ts-ignore: decorator
@inline const NC: i32 = 1024;

// Edge tiles are staged here: the first 128 bytes of the caller's scratch (a global is per instance, so two
// threads sharing one memory, each with its own instance and scratch, never share it).
let tile: usize = 0;

/** Pack op(A)[i0:i0+mc, p0:p0+kc] into 4-row micro-panels of broadcast values: panel q at ap + q*kc*64, (p, r) at
 *  +p*64 + r*16 (a v128 holding op(A)[i0+4q+r, p0+p] in every lane). Rows past m are zero. */
function pack_a_f32(a: usize, m: i32, k: i32, ta: i32, i0: i32, mc: i32, p0: i32, kc: i32, ap: usize): void {
  for (let q = 0; q * 4 < mc; q++) {
    const r0 = i0 + q * 4, rows = min(4, i0 + mc - r0);
    const dst = ap + (<usize>(q * kc) << 6);
    if (rows == 4 && ta) {
      // A stored [k, m]: the 4 rows at one p are contiguous.
      let src = a + ((<usize>p0 * <usize>m + <usize>r0) << 2);
      const s = <usize>m << 2;
      for (let p = 0; p < kc; p++) {
        const v = v128.load(src), d = dst + (<usize>p << 6);
        v128.store(d, i32x4.shuffle(v, v, 0, 0, 0, 0));
        v128.store(d, i32x4.shuffle(v, v, 1, 1, 1, 1), 16);
        v128.store(d, i32x4.shuffle(v, v, 2, 2, 2, 2), 32);
        v128.store(d, i32x4.shuffle(v, v, 3, 3, 3, 3), 48);
        src += s;
      }
    } else if (rows == 4) {
      // A stored [m, k]: each row contiguous in p.
      for (let r = 0; r < 4; r++) {
        const src = a + ((<usize>(r0 + r) * <usize>k + <usize>p0) << 2), dr = dst + (<usize>r << 4);
        let p = 0;
        for (; p + 4 <= kc; p += 4) {
          const v = v128.load(src + (<usize>p << 2)), d = dr + (<usize>p << 6);
          v128.store(d, i32x4.shuffle(v, v, 0, 0, 0, 0));
          v128.store(d, i32x4.shuffle(v, v, 1, 1, 1, 1), 64);
          v128.store(d, i32x4.shuffle(v, v, 2, 2, 2, 2), 128);
          v128.store(d, i32x4.shuffle(v, v, 3, 3, 3, 3), 192);
        }
        for (; p < kc; p++) v128.store(dr + (<usize>p << 6), v128.load32_splat(src + (<usize>p << 2)));
      }
    } else {
      for (let p = 0; p < kc; p++) {
        const d = dst + (<usize>p << 6);
        for (let r = 0; r < 4; r++) {
          const v: f32 = r >= rows ? 0
            : ta ? load<f32>(a + ((<usize>(p0 + p) * <usize>m + <usize>(r0 + r)) << 2))
            : load<f32>(a + ((<usize>(r0 + r) * <usize>k + <usize>(p0 + p)) << 2));
          v128.store(d + (<usize>r << 4), f32x4.splat(v));
        }
      }
    }
  }
}

// @ts-ignore: decorator
@inline function transpose4_store(x0: v128, x1: v128, x2: v128, x3: v128, dst: usize, step: usize): void {
  const t0 = i32x4.shuffle(x0, x1, 0, 4, 1, 5), t1 = i32x4.shuffle(x2, x3, 0, 4, 1, 5);
  const t2 = i32x4.shuffle(x0, x1, 2, 6, 3, 7), t3 = i32x4.shuffle(x2, x3, 2, 6, 3, 7);
  v128.store(dst, i32x4.shuffle(t0, t1, 0, 1, 4, 5));
  v128.store(dst + step, i32x4.shuffle(t0, t1, 2, 3, 6, 7));
  v128.store(dst + 2 * step, i32x4.shuffle(t2, t3, 0, 1, 4, 5));
  v128.store(dst + 3 * step, i32x4.shuffle(t2, t3, 2, 3, 6, 7));
}

/** Pack op(B)[p0:p0+kc, c0:c0+nc] into 8-column panels: panel jp at bp + jp*kc*32, (p, c) at +p*32 + c*4; zero
 *  past n. */
function pack_b_f32(b: usize, k: i32, n: i32, tb: i32, p0: i32, kc: i32, c0: i32, nc: i32, bp: usize): void {
  for (let jp = 0; jp * 8 < nc; jp++) {
    const j0 = c0 + jp * 8, cols = min(8, n - j0);
    const dst = bp + (<usize>(jp * kc) << 5);
    if (!tb) {
      let src = b + ((<usize>p0 * <usize>n + <usize>j0) << 2);
      const s = <usize>n << 2;
      if (cols == 8) {
        for (let p = 0; p < kc; p++) {
          const d = dst + (<usize>p << 5);
          v128.store(d, v128.load(src));
          v128.store(d, v128.load(src, 16), 16);
          src += s;
        }
      } else {
        for (let p = 0; p < kc; p++) {
          const d = dst + (<usize>p << 5);
          for (let c = 0; c < 8; c++) store<f32>(d + (<usize>c << 2), c < cols ? load<f32>(src + (<usize>c << 2)) : 0);
          src += s;
        }
      }
    } else {
      // B stored [n, k]: column j of op(B) is row j of b, contiguous in p.
      const ldb = <usize>k << 2;
      const s0 = b + ((<usize>j0 * <usize>k + <usize>p0) << 2);
      let p = 0;
      if (cols == 8) {
        for (; p + 4 <= kc; p += 4) {
          const o = <usize>p << 2, d = dst + (<usize>p << 5);
          transpose4_store(v128.load(s0 + o), v128.load(s0 + ldb + o), v128.load(s0 + 2 * ldb + o), v128.load(s0 + 3 * ldb + o), d, 32);
          transpose4_store(v128.load(s0 + 4 * ldb + o), v128.load(s0 + 5 * ldb + o), v128.load(s0 + 6 * ldb + o), v128.load(s0 + 7 * ldb + o), d + 16, 32);
        }
      }
      for (; p < kc; p++)
        for (let c = 0; c < 8; c++)
          store<f32>(dst + (<usize>p << 5) + (<usize>c << 2), c < cols ? load<f32>(s0 + <usize>c * ldb + (<usize>p << 2)) : 0);
    }
  }
}

/** C[mr, nr] (+)= Ap . Bp over kc (mr <= 4, nr <= 8 valid; the packed tails are zero). */
function gemm_f32_4x8(ap: usize, bp: usize, kc: i32, c: usize, ldc: usize, mr: i32, nr: i32, acc: i32): void {
  let c00 = f32x4.splat(0), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00;
  for (let p = 0; p < kc; p++) {
    const b0 = v128.load(bp), b1 = v128.load(bp, 16);
    let a = v128.load(ap);
    c00 = f32x4.add(c00, f32x4.mul(a, b0)); c01 = f32x4.add(c01, f32x4.mul(a, b1));
    a = v128.load(ap, 16);
    c10 = f32x4.add(c10, f32x4.mul(a, b0)); c11 = f32x4.add(c11, f32x4.mul(a, b1));
    a = v128.load(ap, 32);
    c20 = f32x4.add(c20, f32x4.mul(a, b0)); c21 = f32x4.add(c21, f32x4.mul(a, b1));
    a = v128.load(ap, 48);
    c30 = f32x4.add(c30, f32x4.mul(a, b0)); c31 = f32x4.add(c31, f32x4.mul(a, b1));
    ap += 64; bp += 32;
  }
  if (mr == 4 && nr == 8) {
    let r = c;
    if (acc) {
      v128.store(r, f32x4.add(v128.load(r), c00)); v128.store(r, f32x4.add(v128.load(r, 16), c01), 16); r += ldc;
      v128.store(r, f32x4.add(v128.load(r), c10)); v128.store(r, f32x4.add(v128.load(r, 16), c11), 16); r += ldc;
      v128.store(r, f32x4.add(v128.load(r), c20)); v128.store(r, f32x4.add(v128.load(r, 16), c21), 16); r += ldc;
      v128.store(r, f32x4.add(v128.load(r), c30)); v128.store(r, f32x4.add(v128.load(r, 16), c31), 16);
    } else {
      v128.store(r, c00); v128.store(r, c01, 16); r += ldc;
      v128.store(r, c10); v128.store(r, c11, 16); r += ldc;
      v128.store(r, c20); v128.store(r, c21, 16); r += ldc;
      v128.store(r, c30); v128.store(r, c31, 16);
    }
    return;
  }
  v128.store(tile, c00); v128.store(tile, c01, 16);
  v128.store(tile, c10, 32); v128.store(tile, c11, 48);
  v128.store(tile, c20, 64); v128.store(tile, c21, 80);
  v128.store(tile, c30, 96); v128.store(tile, c31, 112);
  for (let i = 0; i < mr; i++) {
    const cr = c + <usize>i * ldc, tr = tile + (<usize>i << 5);
    for (let j = 0; j < nr; j++) {
      const o = <usize>j << 2;
      store<f32>(cr + o, acc ? load<f32>(cr + o) + load<f32>(tr + o) : load<f32>(tr + o));
    }
  }
}

/** C[mr, nr<=4] (+)= Ap . Bp over kc: the right-edge panel when at most 4 columns remain (reads b0 only). */
function gemm_f32_4x4(ap: usize, bp: usize, kc: i32, c: usize, ldc: usize, mr: i32, nr: i32, acc: i32): void {
  let c0 = f32x4.splat(0), c1 = c0, c2 = c0, c3 = c0;
  for (let p = 0; p < kc; p++) {
    const b0 = v128.load(bp);
    c0 = f32x4.add(c0, f32x4.mul(v128.load(ap), b0));
    c1 = f32x4.add(c1, f32x4.mul(v128.load(ap, 16), b0));
    c2 = f32x4.add(c2, f32x4.mul(v128.load(ap, 32), b0));
    c3 = f32x4.add(c3, f32x4.mul(v128.load(ap, 48), b0));
    ap += 64; bp += 32;
  }
  v128.store(tile, c0); v128.store(tile, c1, 32); v128.store(tile, c2, 64); v128.store(tile, c3, 96);
  for (let i = 0; i < mr; i++) {
    const cr = c + <usize>i * ldc, tr = tile + (<usize>i << 5);
    for (let j = 0; j < nr; j++) {
      const o = <usize>j << 2;
      store<f32>(cr + o, acc ? load<f32>(cr + o) + load<f32>(tr + o) : load<f32>(tr + o));
    }
  }
}

/** Scratch bytes gemm_f32 needs (the JS side allocates them; kernels never allocate). */
export function gemm_f32_scratch(m: i32, k: i32, n: i32): i32 {
  const kc = min(k, KC);
  return 128 + ((min(m, MC) + 3) >> 2) * kc * 64 + ((min(n, NC) + 7) >> 3) * kc * 32;
}

/** Rows [r0, r1) and columns [c0, c1) (c0 a multiple of 8) of C[m,n] = (acc ? C : 0) + op(A) @ op(B), f32, SIMD;
 *  `scratch` holds gemm_f32_scratch(m, k, n) bytes (16-aligned). Each output's sum runs in the same order whatever
 *  the block (pool threads split rows or columns). */
export function gemm_f32(a: usize, b: usize, c: usize, m: i32, k: i32, n: i32, ta: i32, tb: i32, acc: i32, scratch: usize,
  r0: i32, r1: i32, c0: i32, c1: i32): void {
  tile = scratch;
  const ap = scratch + 128, bp = ap + (<usize>(((min(m, MC) + 3) >> 2) * min(k, KC)) << 6);
  const ldc = <usize>n << 2;
  for (let jc = c0; jc < c1; jc += NC) {
    const nc = min(NC, c1 - jc);
    for (let p0 = 0; p0 < k; p0 += KC) {
      const kc = min(KC, k - p0);
      const accNow = acc || p0 > 0 ? 1 : 0;
      pack_b_f32(b, k, n, tb, p0, kc, jc, nc, bp);
      for (let i0 = r0; i0 < r1; i0 += MC) {
        const mc = min(MC, r1 - i0);
        pack_a_f32(a, m, k, ta, i0, mc, p0, kc, ap);
        for (let j0 = 0; j0 < nc; j0 += 8) {
          const nr = min(8, nc - j0);
          const bpj = bp + (<usize>((j0 >> 3) * kc) << 5);
          const cj = c + (<usize>(jc + j0) << 2);
          if (nr > 4) {
            for (let ii = 0; ii < mc; ii += 4)
              gemm_f32_4x8(ap + (<usize>((ii >> 2) * kc) << 6), bpj, kc, cj + <usize>(i0 + ii) * ldc, ldc, min(4, mc - ii), nr, accNow);
          } else {
            for (let ii = 0; ii < mc; ii += 4)
              gemm_f32_4x4(ap + (<usize>((ii >> 2) * kc) << 6), bpj, kc, cj + <usize>(i0 + ii) * ldc, ldc, min(4, mc - ii), nr, accNow);
          }
        }
      }
    }
  }
}

/** Rows [r0, r1) of the f64 GEMM (the f64 path for finite-difference tests): scalar, any transpose combination. */
export function gemm_f64(a: usize, b: usize, c: usize, m: i32, k: i32, n: i32, ta: i32, tb: i32, acc: i32, r0: i32, r1: i32): void {
  const sai: usize = ta ? 8 : (<usize>k << 3), sap: usize = ta ? (<usize>m << 3) : 8;
  const sbp: usize = tb ? 8 : (<usize>n << 3), sbj: usize = tb ? (<usize>k << 3) : 8;
  for (let i = r0; i < r1; i++) {
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

/** dw[idx[r*per + j], c0:c1] += dout[r, c0:c1], in row order (deterministic; pool threads split columns). */
export function embsum_backward_f32(dout: usize, idx: usize, dw: usize, rows: i32, cols: i32, per: i32, c0: i32, c1: i32): void {
  const stride = <usize>cols << 2;
  for (let r = 0; r < rows; r++) {
    const drow = dout + <usize>r * stride;
    const ip = idx + ((<usize>r * <usize>per) << 2);
    for (let j = 0; j < per; j++) {
      const wj = dw + <usize>load<i32>(ip + (<usize>j << 2)) * stride;
      let i = c0;
      for (; i + 4 <= c1; i += 4) {
        const o = <usize>i << 2;
        v128.store(wj + o, f32x4.add(v128.load(wj + o), v128.load(drow + o)));
      }
      for (; i < c1; i++) {
        const o = <usize>i << 2;
        store<f32>(wj + o, load<f32>(wj + o) + load<f32>(drow + o));
      }
    }
  }
}

export function embsum_backward_f64(dout: usize, idx: usize, dw: usize, rows: i32, cols: i32, per: i32, c0: i32, c1: i32): void {
  const stride = <usize>cols << 3;
  for (let r = 0; r < rows; r++) {
    const drow = dout + <usize>r * stride;
    const ip = idx + ((<usize>r * <usize>per) << 2);
    for (let j = 0; j < per; j++) {
      const wj = dw + <usize>load<i32>(ip + (<usize>j << 2)) * stride;
      for (let i = c0; i < c1; i++) {
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
