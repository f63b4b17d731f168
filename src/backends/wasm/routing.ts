import type { RoutingKernels } from "../api/routing.ts";

export const routingWasm: RoutingKernels = {};
