// A backend is storage plus kernels: one interface every backend implements; a family of kernels per file
// under api/. Kernels receive host typed arrays, or, where the caller passed DeviceArrays, the backend's own
// storage handles in their place (for wasm and reference those handles are typed arrays too).
import type { Storage } from "../device.ts";
import type { DenseKernels } from "./api/dense.ts";
import type { QuantKernels } from "./api/quant.ts";
import type { RoutingKernels } from "./api/routing.ts";
import type { SoftmaxKernels } from "./api/softmax.ts";

export type BackendName = string;

export type Kernels = SoftmaxKernels & RoutingKernels & QuantKernels & DenseKernels;

export interface Backend extends Kernels {
  /** The family: "wasm", "reference", "tfjs", ... (backendInfo().name). */
  readonly name: BackendName;
  /** Unique per loaded backend: the family, or the family and engine ("tfjs-cpu"). DeviceArray.backend. */
  readonly id: string;
  readonly storage: Storage;
}

/** Every kernel name (the keys of Kernels), for wrappers that route or adapt kernels. */
export function kernelNames(b: Backend): string[] {
  return Object.keys(b).filter((k) => k !== "name" && k !== "id" && k !== "storage" && typeof (b as unknown as Record<string, unknown>)[k] === "function");
}
