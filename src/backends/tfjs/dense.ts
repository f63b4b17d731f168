// dense family on tfjs: filled in as the family's interface lands; until then every op falls back to wasm.
import type { DenseKernels } from "../api/dense.ts";
import type { TfCtx } from "./common.ts";

export function denseTfjs(_ctx: TfCtx): Partial<DenseKernels> {
  return {};
}
