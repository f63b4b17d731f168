// routing family on tfjs: filled in as the family's interface lands; until then every op falls back to wasm.
import type { RoutingKernels } from "../api/routing.ts";
import type { TfCtx } from "./common.ts";

export function routingTfjs(_ctx: TfCtx): Partial<RoutingKernels> {
  return {};
}
