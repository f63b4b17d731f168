// The default backend: AssemblyScript kernels compiled to WASM SIMD (build/numedge.wasm).
import type { Backend } from "./types.ts";
import { denseWasm } from "./wasm/dense.ts";
import { quantWasm } from "./wasm/quant.ts";
import { routingWasm } from "./wasm/routing.ts";
import { softmaxWasm } from "./wasm/softmax.ts";

export const wasmBackend: Backend = {
  name: "wasm",
  ...softmaxWasm,
  ...routingWasm,
  ...quantWasm,
  ...denseWasm,
};
