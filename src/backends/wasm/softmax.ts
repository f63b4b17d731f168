import type { FloatArray } from "../../errors.ts";
import type { SoftmaxKernels } from "../api/softmax.ts";
import { asm, call, stream, view } from "./runtime.ts";

type RowKernel = (x: number, y: number, rows: number, cols: number, ...rest: number[]) => number;

/** x -> y through an f32 or f64 kernel, rows streamed through cache-sized pieces unless both live in WASM memory. */
function rowwise(k32: RowKernel, k64: RowKernel, x: FloatArray, y: FloatArray, rows: number, cols: number, ...rest: number[]) {
  const k = x instanceof Float64Array ? k64 : k32;
  stream(rows, [[x, cols]], [[y, cols]], false, ([px], [py], _s, _u0, n) => (k(px!, py!, n, cols, ...rest), -1));
}

export const softmaxWasm: SoftmaxKernels = {
  softmax(x, y, rows, cols, scale, algorithm) {
    const k32 = algorithm === "twopass" ? asm.softmax_f32_twopass! : asm.softmax_f32_threepass!;
    rowwise(k32, asm.softmax_f64!, x, y, rows, cols, scale);
  },
  logSoftmax(x, y, rows, cols, scale) {
    rowwise(asm.logsoftmax_f32!, asm.logsoftmax_f64!, x, y, rows, cols, scale);
  },
  stablemax(x, y, rows, cols) {
    rowwise(asm.stablemax_f32!, asm.stablemax_f64!, x, y, rows, cols);
  },
  logStablemax(x, y, rows, cols) {
    rowwise(asm.logstablemax_f32!, asm.logstablemax_f64!, x, y, rows, cols);
  },
  crossEntropy(z, labels, grad, stats, rows, cols, head, precision) {
    const f64in = z instanceof Float64Array;
    const name = `ce_${head}_${f64in ? "f64" : precision === "f64" ? "f32in_f64" : "f32"}`;
    call(
      (f) => [f.input(z), f.input(labels), grad ? f.output(grad) : 0, f.output(stats)] as const,
      ([pz, pl, pg, ps]) => {
        asm[name]!(pz, pl, pg, rows, cols, ps); // writes the three sums
        const st = view(Float64Array, ps, 3);
        for (let i = 0; i < 3; i++) st[i] = st[i]! / rows;
      },
    );
  },
};
