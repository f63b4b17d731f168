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
  // The tfjs backend on tfjs's own engines (src/backends/tfjs/). Looser where tfjs's f32 math forces it:
  // - every intermediate is an f32 tensor where the wasm kernels work in f64: softmax's exp argument
  //   (x - max) / T is rounded twice, which at arguments down to -69 (outputs >= 1e-30) is up to
  //   2 * 2^-24 * 69 = 8e-6 relative on the output, 8x the wasm bound (tfjs-cpu);
  // - tfjs-wasm also sums rows in f32 (two-level, ~2 sqrt(cols) ulps; the wasm kernels sum in f64 blocks)
  //   and its exp/log are libm's f32 (<= 1 ulp each): 16x.
  // Ops whose tfjs path is exact (dense, topk, quant) pass at any tol.
  { name: "tfjs-wasm", setup: () => setBackend("tfjs-wasm"), tol: 16 },
  { name: "tfjs-cpu", setup: () => setBackend("tfjs-cpu"), tol: 8 },
  // wasm last: bun runs every test file in one process, so the last suite's setup is the backend the next
  // file's non-parity tests start on; it must be the default.
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
