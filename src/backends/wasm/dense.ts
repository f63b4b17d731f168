import type { FloatArray } from "../../errors.ts";
import type { DenseKernels } from "../api/dense.ts";
import { CHUNK_SLOT, COUNT, END, START, THREAD, UNIT, chunkOf, fixedChunk, par, threads, type Arg } from "./pool.ts";
import { asm, call, stream, view } from "./runtime.ts";

const is64 = (x: FloatArray) => x instanceof Float64Array;

export const denseWasm: DenseKernels = {
  gemm(a, b, c, m, k, n, transA, transB, accumulate) {
    const ta = transA ? 1 : 0, tb = transB ? 1 : 0, acc = accumulate ? 1 : 0;
    if (is64(a)) {
      call((f) => [f.input(a), f.input(b), accumulate ? f.inout(c) : f.output(c)] as const,
        ([pa, pb, pc]) => par("gemm_f64", m, chunkOf(m, 8 * k * n), [pa, pb, pc, m, k, n, ta, tb, acc, [0, START, 0], [0, END, 0]]));
      return;
    }
    // rows or columns of C split over the pool (never k: every output's sum runs in one order, whatever the block).
    // Each thread packs into its own scratch. A row chunk packs all of op(B) (4 bytes an element), a column chunk all
    // of op(A) (16: broadcast): rows, two chunks a thread (measured: 10% less work than four on 2 threads), unless
    // C is wide enough (n > 8m: an LM head, a few rows) that column chunks pack less per unit of work.
    const scratch = Math.ceil(asm.gemm_f32_scratch!(m, k, n) / 16) * 16;
    const cols = n > 8 * m, units = cols ? n : m;
    const chunk = cols ? Math.ceil(chunkOf(n, 4 * k * m) / 8) * 8 : Math.ceil(chunkOf(m, 4 * k * n, 2) / 4) * 4;
    const range = (split: boolean, all: number): Arg[] => (split ? [[0, START, 0], [0, END, 0]] : [0, all]);
    call((f) => [f.input(a), f.input(b), accumulate ? f.inout(c) : f.output(c), f.staging(scratch * (chunk < units ? threads() : 1))] as const,
      ([pa, pb, pc, ps]) => par("gemm_f32", units, chunk, [pa, pb, pc, m, k, n, ta, tb, acc, [ps, THREAD, scratch], ...range(!cols, m), ...range(cols, n)]));
  },
  // elementwise: streamed in cache-sized pieces (in place works: each piece is read before it is written back)
  relu(x, y) {
    const kern = is64(x) ? "relu_f64" : "relu_f32", b = x.BYTES_PER_ELEMENT;
    stream(x.length, [[x, 1]], [[y, 1]], false, ([px], [py], _s, _u0, n) =>
      par(kern, n, chunkOf(n, 2 * b), [[px!, UNIT, b], [py!, UNIT, b], [n, COUNT, 1]]));
  },
  reluBackward(dy, x, dx) {
    const kern = is64(x) ? "relu_backward_f64" : "relu_backward_f32", b = x.BYTES_PER_ELEMENT;
    stream(x.length, [[dy, 1], [x, 1]], [[dx, 1]], false, ([pd, px], [po], _s, _u0, n) =>
      par(kern, n, chunkOf(n, 3 * b), [[pd!, UNIT, b], [px!, UNIT, b], [po!, UNIT, b], [n, COUNT, 1]]));
  },
  embeddingSum(w, idx, out, cols, per) {
    const kern = is64(w) ? "embsum_f64" : "embsum_f32", rows = idx.length / per, rb = cols * w.BYTES_PER_ELEMENT;
    call((f) => [f.input(w), f.input(idx), f.output(out)] as const,
      ([pw, pi, po]) => par(kern, rows, chunkOf(rows, (per + 1) * rb), [pw, [pi, UNIT, 4 * per], [po, UNIT, rb], [rows, COUNT, 1], cols, per]));
  },
  embeddingSumBackward(dout, idx, dw, cols, per) {
    // columns split over the pool: rows scatter into shared rows of dw, a column's sums run in row order
    const kern = is64(dw) ? "embsum_backward_f64" : "embsum_backward_f32", rows = idx.length / per;
    const chunk = Math.ceil(chunkOf(cols, 2 * rows * per * dw.BYTES_PER_ELEMENT) / 16) * 16;
    call((f) => [f.input(dout), f.input(idx), f.inout(dw)] as const,
      ([pd, pi, pw]) => par(kern, cols, chunk, [pd, pi, pw, rows, cols, per, [0, START, 0], [0, END, 0]]));
  },
  orthogonalize(w, g) {
    const t = is64(w) ? "f64" : "f32", b = w.BYTES_PER_ELEMENT, n = w.length;
    // fixed chunks whose partial sums are added in chunk order: the same bits on any thread count
    const chunk = fixedChunk(n, 2 * b), nch = Math.ceil(n / chunk);
    call((f) => [f.input(w), f.inout(g), f.staging(24 * Math.max(nch, 1))] as const, ([pw, pg, pp]) => {
      if (nch <= 1) return void asm[`orthogonalize_${t}`]!(pw, pg, n, pp);
      const per = [[pw, UNIT, b], [pg, UNIT, b], [n, COUNT, 1]] as Arg[];
      const sum = (i: number, stride: number) => {
        const part = view(Float64Array, pp, stride * nch);
        let s = 0;
        for (let c = 0; c < nch; c++) s += part[stride * c + i]!;
        return s;
      };
      par(`ortho_dots_${t}`, n, chunk, [...per, [pp, CHUNK_SLOT, 24]]);
      const proj = sum(0, 3) / (sum(1, 3) + 1e-30), gNorm = Math.sqrt(sum(2, 3));
      par(`ortho_residual_${t}`, n, chunk, [...per, proj, [pp, CHUNK_SLOT, 8]]);
      par(`ortho_update_${t}`, n, chunkOf(n, 3 * b), [...per, proj, gNorm / (Math.sqrt(sum(0, 1)) + 1e-30)]);
    });
  },
  maxInto(dst, at, src, from, n, abs) {
    const t = is64(src) ? "f64" : "f32", b = src.BYTES_PER_ELEMENT, chunk = chunkOf(n, b), nch = Math.ceil(n / chunk);
    const d = dst.subarray(at, at + 1), s = src.subarray(from, from + n); // views: zero-copy inside WASM memory
    call((f) => [f.inout(d), f.input(s), nch > 1 ? f.staging(8 * nch) : 0] as const, ([pd, ps, pp]) => {
      if (nch <= 1) return void asm[`max_into_${t}`]!(pd, ps, n, abs ? 1 : 0);
      // each chunk's maximum (the first NaN, else the first of equal maxima), then the maximum of those in order
      view(Float64Array, pp, nch).fill(-Infinity);
      par(`max_into_${t}`, n, chunk, [[pp, CHUNK_SLOT, 8], [ps, UNIT, b], [n, COUNT, 1], abs ? 1 : 0]);
      asm.max_into_f64!(pd, pp, nch, 0);
    });
  },
  adamw(w, g, m, v, s) {
    const kern = is64(w) ? "adamw_f64" : "adamw_f32", b = w.BYTES_PER_ELEMENT, n = w.length;
    // blocks of elements over the pool, a multiple of 4 (the SIMD body's step)
    const chunk = Math.ceil(chunkOf(n, 7 * b) / 4) * 4;
    call((f) => [f.inout(w), f.input(g), f.inout(m), f.inout(v)] as const,
      ([pw, pg, pm, pv]) => par(kern, n, chunk, [[pw, UNIT, b], [pg, UNIT, b], [pm, UNIT, b], [pv, UNIT, b], [n, COUNT, 1],
        s.decay, s.lerpW, s.beta2, s.oneMinusBeta2, s.bc2sqrt, s.eps, s.negStep]));
  },
};
