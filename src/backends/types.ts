// One interface every backend implements; a family of kernels per file under api/.
import type { DenseKernels } from "./api/dense.ts";
import type { QuantKernels } from "./api/quant.ts";
import type { RoutingKernels } from "./api/routing.ts";
import type { SoftmaxKernels } from "./api/softmax.ts";

export type BackendName = "wasm" | "reference" | "tfjs";

export interface Backend extends SoftmaxKernels, RoutingKernels, QuantKernels, DenseKernels {
  readonly name: BackendName;
}
