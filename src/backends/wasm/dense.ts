import type { FloatArray } from "../../errors.ts";
import type { DenseKernels } from "../api/dense.ts";
import { asm, call, stream } from "./runtime.ts";

const is64 = (x: FloatArray) => x instanceof Float64Array;

export const denseWasm: DenseKernels = {
  gemm(a, b, c, m, k, n, transA, transB, accumulate) {
    const ta = transA ? 1 : 0, tb = transB ? 1 : 0, acc = accumulate ? 1 : 0;
    if (is64(a)) {
      call((f) => [f.input(a), f.input(b), accumulate ? f.inout(c) : f.output(c)] as const,
        ([pa, pb, pc]) => asm.gemm_f64!(pa, pb, pc, m, k, n, ta, tb, acc));
      return;
    }
    const scratch = asm.gemm_f32_scratch!(m, k, n);
    call((f) => [f.input(a), f.input(b), accumulate ? f.inout(c) : f.output(c), f.scratch(scratch)] as const,
      ([pa, pb, pc, ps]) => asm.gemm_f32!(pa, pb, pc, m, k, n, ta, tb, acc, ps));
  },
  // elementwise: streamed in cache-sized pieces (in place works: each piece is read before it is written back)
  relu(x, y) {
    const kern = is64(x) ? asm.relu_f64! : asm.relu_f32!;
    stream(x.length, [[x, 1]], [[y, 1]], false, ([px], [py], _s, _u0, n) => (kern(px!, py!, n), -1));
  },
  reluBackward(dy, x, dx) {
    const kern = is64(x) ? asm.relu_backward_f64! : asm.relu_backward_f32!;
    stream(x.length, [[dy, 1], [x, 1]], [[dx, 1]], false, ([pd, px], [po], _s, _u0, n) => (kern(pd!, px!, po!, n), -1));
  },
  embeddingSum(w, idx, out, cols, per) {
    const kern = is64(w) ? asm.embsum_f64! : asm.embsum_f32!;
    call((f) => [f.input(w), f.input(idx), f.output(out)] as const,
      ([pw, pi, po]) => kern(pw, pi, po, idx.length / per, cols, per));
  },
  embeddingSumBackward(dout, idx, dw, cols, per) {
    const kern = is64(dw) ? asm.embsum_backward_f64! : asm.embsum_backward_f32!;
    call((f) => [f.input(dout), f.input(idx), f.inout(dw)] as const,
      ([pd, pi, pw]) => kern(pd, pi, pw, idx.length / per, cols, per));
  },
  orthogonalize(w, g) {
    const kern = is64(w) ? asm.orthogonalize_f64! : asm.orthogonalize_f32!;
    call((f) => [f.input(w), f.inout(g)] as const, ([pw, pg]) => kern(pw, pg, w.length));
  },
  maxInto(dst, at, src, from, n, abs) {
    const kern = is64(src) ? asm.max_into_f64! : asm.max_into_f32!;
    const d = dst.subarray(at, at + 1), s = src.subarray(from, from + n); // views: zero-copy inside WASM memory
    call((f) => [f.inout(d), f.input(s)] as const, ([pd, ps]) => kern(pd, ps, n, abs ? 1 : 0));
  },
  adamw(w, g, m, v, s) {
    const kern = is64(w) ? asm.adamw_f64! : asm.adamw_f32!;
    call((f) => [f.inout(w), f.input(g), f.inout(m), f.inout(v)] as const,
      ([pw, pg, pm, pv]) => kern(pw, pg, pm, pv, w.length, s.decay, s.lerpW, s.beta2, s.oneMinusBeta2, s.bc2sqrt, s.eps, s.negStep));
  },
};
