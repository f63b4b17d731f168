// Which backends the parity suites run on, and how to compute the oracle answer.
// Each family's tests loop over parityBackends; the tfjs issue appends its engines here.
// setBackend from the source (the same module "numedge" resolves to under Bun), so its types include the tfjs
// engines even when dist/ is stale.
import { backendInfo, getBackend, setBackend, useBackend } from "../src/backends/index.ts";
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
  // The tfjs backend on tfjs's own engines (src/backends/tfjs/). Looser where tfjs's f32 math forces it:
  // - tfjs-wasm reduces rows with a sequential f32 sum (error grows ~ sqrt(cols) ulp, vs the wasm kernels'
  //   f64 block sums), and its exp/log are libm's f32 (<= 1 ulp each);
  // - tfjs-cpu sums in f64 and takes Math.exp/log rounded to f32, but stores every intermediate tensor in f32
  //   (x - max, exp, the sum, the quotient: ~4 roundings where the wasm kernel has 2).
  { name: "tfjs-wasm", setup: () => setBackend("tfjs-wasm"), tol: 16 },
  { name: "tfjs-cpu", setup: () => setBackend("tfjs-cpu"), tol: 4 },
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
