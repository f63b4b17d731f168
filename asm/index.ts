// The one WASM module: every kernel file re-exported here, sharing one linear memory.
export * from "./softmax";
export * from "./softmax_f64";
export * from "./crossentropy";
export * from "./topk";
export * from "./quant";
export * from "./dense";
export * from "./reduce";

/** First free byte after static data: the JS allocator (src/backends/wasm/runtime.ts) starts here. */
export function heapBase(): usize {
  return __heap_base;
}
