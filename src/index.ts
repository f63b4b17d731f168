// numedge: the public surface. Plain functions over host typed arrays or DeviceArrays; see README.md for a tour.
export { NumedgeError, type NumedgeErrorCode, type FloatArray } from "./errors.ts";
export {
  setBackend, backendInfo, registerBackend, backendNames, type BackendChoice, type BackendInfo, type BackendFactory,
} from "./backends/index.ts";
export type { Backend } from "./backends/types.ts";
export { readThresholds, saveThresholds, type SavedThresholds } from "./backends/thresholds.ts";
export { setThreads, threads } from "./backends/wasm/pool.ts";
export { DeviceArray, type Dtype, type HostOf, type Storage } from "./device.ts";
export { alloc, free, toDevice, empty, releaseMemory, type DeviceOptions } from "./memory.ts";
export * from "./ops/softmax.ts";
export * from "./ops/routing.ts";
export * from "./ops/quant.ts";
export * from "./ops/dense.ts";
export * from "./nn/index.ts";
export * from "./report/index.ts";
