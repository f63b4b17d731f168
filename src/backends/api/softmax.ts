import type { FloatArray } from "../../errors.ts";

/** "auto": the backend's faster algorithm (wasm: threepass; cuda: twopass on rows past its registers). */
export type SoftmaxAlgorithm = "auto" | "twopass" | "threepass";
export type CEHead = "softmax" | "stablemax";
export type Precision = "f32" | "f64";

/**
 * Softmax-family kernels. Arguments are already checked by src/ops: x and y have the same type and
 * length rows * cols, labels are in range, scale = 1 / temperature > 0. Kernels write only their outputs.
 */
export interface SoftmaxKernels {
  softmax(x: FloatArray, y: FloatArray, rows: number, cols: number, scale: number, algorithm: SoftmaxAlgorithm): void;
  logSoftmax(x: FloatArray, y: FloatArray, rows: number, cols: number, scale: number): void;
  stablemax(x: FloatArray, y: FloatArray, rows: number, cols: number): void;
  logStablemax(x: FloatArray, y: FloatArray, rows: number, cols: number): void;
  /**
   * grad (same type as logits, or null) receives dL/dz / rows; stats receives [mean loss, share of rows in
   * Softmax Collapse, share of rows with loss exactly 0], each sum over rows taken in f64 then divided by rows.
   */
  crossEntropy(logits: FloatArray, labels: Int32Array, grad: FloatArray | null, stats: Float64Array, rows: number, cols: number,
    head: CEHead, precision: Precision): void;
}
