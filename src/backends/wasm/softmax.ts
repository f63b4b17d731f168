import type { FloatArray } from "../../errors.ts";
import type { SoftmaxKernels } from "../api/softmax.ts";
import { CHUNK_SLOT, COUNT, UNIT, chunkOf, fixedChunk, par } from "./pool.ts";
import { call, stream, view } from "./runtime.ts";

/** x -> y through an f32 or f64 kernel, rows streamed through cache-sized pieces unless both live in WASM memory;
 *  each piece's rows split over the pool. */
function rowwise(k32: string, k64: string, x: FloatArray, y: FloatArray, rows: number, cols: number, ...rest: number[]) {
  const k = x instanceof Float64Array ? k64 : k32, rb = cols * x.BYTES_PER_ELEMENT;
  stream(rows, [[x, cols]], [[y, cols]], false, ([px], [py], _s, _u0, n) =>
    par(k, n, chunkOf(n, 2 * rb), [[px!, UNIT, rb], [py!, UNIT, rb], [n, COUNT, 1], cols, ...rest]));
}

export const softmaxWasm: SoftmaxKernels = {
  softmax(x, y, rows, cols, scale, algorithm) {
    // auto: three-pass, the faster at every row length measured (src/ops/softmax.ts)
    rowwise(algorithm === "twopass" ? "softmax_f32_twopass" : "softmax_f32_threepass", "softmax_f64", x, y, rows, cols, scale);
  },
  logSoftmax(x, y, rows, cols, scale) {
    rowwise("logsoftmax_f32", "logsoftmax_f64", x, y, rows, cols, scale);
  },
  stablemax(x, y, rows, cols) {
    rowwise("stablemax_f32", "stablemax_f64", x, y, rows, cols);
  },
  logStablemax(x, y, rows, cols) {
    rowwise("logstablemax_f32", "logstablemax_f64", x, y, rows, cols);
  },
  crossEntropy(z, labels, grad, stats, rows, cols, head, precision) {
    const f64in = z instanceof Float64Array;
    const name = `ce_${head}_${f64in ? "f64" : precision === "f64" ? "f32in_f64" : "f32"}`;
    const rb = cols * z.BYTES_PER_ELEMENT, gb = grad ? cols * grad.BYTES_PER_ELEMENT : 0;
    // Fixed chunks (a function of the size only) whose sums are added in order: the same bits on any thread count.
    const chunk = fixedChunk(rows, rb);
    const nch = Math.max(1, Math.ceil(rows / chunk));
    call(
      (f) => [f.input(z), f.input(labels), grad ? f.output(grad) : 0, f.output(stats), f.scratch(nch * 24)] as const,
      ([pz, pl, pg, ps, pp]) => {
        par(name, rows, chunk, [[pz, UNIT, rb], [pl, UNIT, 4], [pg, UNIT, gb], [rows, COUNT, 1], cols, [pp, CHUNK_SLOT, 24], rows]);
        const part = view(Float64Array, pp, 3 * nch), st = view(Float64Array, ps, 3);
        for (let i = 0; i < 3; i++) {
          let s = 0;
          for (let c = 0; c < nch; c++) s += part[3 * c + i]!;
          st[i] = s / rows;
        }
      },
    );
  },
};
