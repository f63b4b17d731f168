// The oracle for the dense family: plain TypeScript, f64 accumulation, one rounding per output element.
import type { DenseKernels } from "../api/dense.ts";

const f32 = Math.fround;

export const denseReference: DenseKernels = {
  gemm(a, b, c, m, k, n, transA, transB, accumulate) {
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = accumulate ? c[i * n + j]! : 0;
        for (let p = 0; p < k; p++) {
          const av = transA ? a[p * m + i]! : a[i * k + p]!;
          const bv = transB ? b[j * k + p]! : b[p * n + j]!;
          s += av * bv;
        }
        c[i * n + j] = s;
      }
    }
  },
  relu(x, y) {
    for (let i = 0; i < x.length; i++) {
      const v = x[i]!;
      y[i] = v < 0 ? 0 : v + 0;
    }
  },
  reluBackward(dy, x, dx) {
    for (let i = 0; i < x.length; i++) dx[i] = x[i]! > 0 ? dy[i]! : 0;
  },
  embeddingSum(w, idx, out, cols, per) {
    const rows = idx.length / per;
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) {
        let s = 0;
        for (let j = 0; j < per; j++) s += w[idx[r * per + j]! * cols + c]!;
        out[r * cols + c] = s;
      }
    }
  },
  embeddingSumBackward(dout, idx, dw, cols, per) {
    const rows = idx.length / per;
    for (let r = 0; r < rows; r++)
      for (let j = 0; j < per; j++) {
        const o = idx[r * per + j]! * cols;
        for (let c = 0; c < cols; c++) dw[o + c] = dw[o + c]! + dout[r * cols + c]!;
      }
  },
  // Same op order as PyTorch; for f32 arrays every intermediate is rounded to f32 (Math.fround), so this is the
  // exact f32 answer of that op order, not an f64 approximation of it.
  adamw(w, g, m, v, s) {
    const r = w instanceof Float32Array ? f32 : (x: number) => x;
    const decay = r(s.decay), lw = r(s.lerpW), lwc = r(1 - lw), b2 = r(s.beta2), omb2 = r(s.oneMinusBeta2);
    const bc = r(s.bc2sqrt), eps = r(s.eps), ns = r(s.negStep), small = s.lerpW < 0.5;
    for (let i = 0; i < w.length; i++) {
      let wv = w[i]!;
      if (s.decay !== 1) wv = r(wv * decay);
      const gv = g[i]!;
      let mv = m[i]!;
      const d = r(gv - mv);
      mv = small ? r(mv + r(lw * d)) : r(gv - r(d * lwc));
      let vv = r(v[i]! * b2);
      vv = r(vv + r(r(omb2 * gv) * gv));
      const den = r(r(r(Math.sqrt(vv)) / bc) + eps);
      wv = r(wv + r(r(ns * mv) / den));
      w[i] = wv;
      m[i] = mv;
      v[i] = vv;
    }
  },
  orthogonalize(w, g) {
    const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => {
      let s = 0;
      for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
      return s;
    };
    const proj = dot(w, g) / (dot(w, w) + 1e-30);
    const gNorm = Math.sqrt(dot(g, g));
    let oo = 0;
    for (let i = 0; i < g.length; i++) {
      const r = g[i]! - proj * w[i]!;
      oo += r * r;
    }
    const scale = gNorm / (Math.sqrt(oo) + 1e-30);
    for (let i = 0; i < g.length; i++) g[i] = (g[i]! - proj * w[i]!) * scale;
  },
  maxInto(dst, at, src, from, n, abs) {
    let m = dst[at]!;
    for (let i = from; i < from + n && m === m; i++) {
      const v = abs ? Math.abs(src[i]!) : src[i]!;
      if (v > m || v !== v) m = v;
    }
    dst[at] = m;
  },
};
