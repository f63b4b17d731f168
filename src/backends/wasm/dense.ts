import type { DenseKernels } from "../api/dense.ts";

export const denseWasm: DenseKernels = {};
