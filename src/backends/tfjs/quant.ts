// quant family on tfjs: filled in as the family's interface lands; until then every op falls back to wasm.
import type { QuantKernels } from "../api/quant.ts";
import type { TfCtx } from "./common.ts";

export function quantTfjs(_ctx: TfCtx): Partial<QuantKernels> {
  return {};
}
