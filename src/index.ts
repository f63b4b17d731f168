// numedge: the public surface. Plain functions over typed arrays; see README.md for a tour.
export { NumedgeError, type NumedgeErrorCode, type FloatArray } from "./errors.ts";
export { setBackend, backendInfo, type BackendChoice, type BackendInfo } from "./backends/index.ts";
export { alloc, free } from "./memory.ts";
export * from "./ops/softmax.ts";
export * from "./ops/routing.ts";
export * from "./ops/quant.ts";
export * from "./ops/dense.ts";
export * from "./nn/index.ts";
export * from "./report/index.ts";
