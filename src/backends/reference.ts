// The reference backend: f64 TypeScript, the oracle every test compares to; storage is plain typed arrays.
import type { Backend } from "./types.ts";
import { denseReference } from "./reference/dense.ts";
import { quantReference } from "./reference/quant.ts";
import { routingReference } from "./reference/routing.ts";
import { softmaxReference } from "./reference/softmax.ts";
import { referenceStorage } from "./reference/storage.ts";

export const referenceBackend: Backend = {
  name: "reference",
  id: "reference",
  storage: referenceStorage,
  ...softmaxReference,
  ...routingReference,
  ...quantReference,
  ...denseReference,
};
