import type { QuantKernels } from "../api/quant.ts";

export const quantWasm: QuantKernels = {};
