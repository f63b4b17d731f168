import type { RoutingKernels } from "../api/routing.ts";

export const routingReference: RoutingKernels = {};
