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
  /**
   * Record the device work `body` queues (on DeviceArrays of this backend) as one replayable unit, without running
   * it: cuda's CUDA graphs. Throws NumedgeError where body does what cannot be recorded (a copy, a read). Absent
   * on backends that cannot.
   */
  readonly capture?: (body: () => void) => Captured;
}

/** Recorded device work: replay() queues it again, on the same arrays; dispose() frees it. */
export interface Captured {
  replay(): void;
  dispose(): void;
}

/** Every kernel name (the keys of Kernels), for wrappers that route or adapt kernels. */
export function kernelNames(b: Backend): string[] {
  return Object.keys(b).filter((k) => k !== "name" && k !== "id" && k !== "storage" && k !== "capture" && typeof (b as unknown as Record<string, unknown>)[k] === "function");
}
