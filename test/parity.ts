// Which backends the parity suites run on, and how to compute the oracle answer.
// Each family's tests loop over parityBackends; the tfjs issue appends its engines here.
import { setBackend } from "numedge";
import { backendInfo, getBackend, useBackend } from "../src/backends/index.ts";
import { referenceBackend } from "../src/backends/reference.ts";

export interface ParityBackend {
  name: string;
  /** Make this backend current (call in beforeAll). */
  setup: () => Promise<unknown>;
  /** Multiplier on every tolerance (1 for wasm; documented where a backend's f32 math needs more). */
  tol: number;
}

export const parityBackends: ParityBackend[] = [
  { name: "wasm", setup: () => setBackend("wasm"), tol: 1 },
];

/** Run fn with the f64 reference backend current, then restore whatever was current. */
export function underReference<T>(fn: () => T): T {
  const prev = getBackend(), prevInfo = backendInfo();
  useBackend(referenceBackend);
  try {
    return fn();
  } finally {
    useBackend(prev, prevInfo);
  }
}
