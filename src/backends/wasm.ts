// The default backend: AssemblyScript kernels compiled to WASM SIMD (build/numedge.wasm), storage in WASM memory.
import type { Backend } from "./types.ts";
import { denseWasm } from "./wasm/dense.ts";
import { quantWasm } from "./wasm/quant.ts";
import { routingWasm } from "./wasm/routing.ts";
import { softmaxWasm } from "./wasm/softmax.ts";
import { wasmStorage } from "./wasm/storage.ts";

export const wasmBackend: Backend = {
  name: "wasm",
  id: "wasm",
  storage: wasmStorage,
  ...softmaxWasm,
  ...routingWasm,
  ...quantWasm,
  ...denseWasm,
};
