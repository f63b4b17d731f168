// Which backend runs the ops: NUMEDGE_BACKEND at start-up, or setBackend() later.
import { NumedgeError } from "../errors.ts";
import type { Backend } from "./types.ts";
import { referenceBackend } from "./reference.ts";
import { wasmBackend } from "./wasm.ts";

export type BackendChoice = "wasm" | "reference" | "tfjs" | "tfjs-gpu" | "auto";

/** What runs the ops now, and why the other candidates were not picked. */
export interface BackendInfo {
  name: Backend["name"];
  device: "cpu" | "gpu";
  engine: string;
  reasons: Record<string, string>;
}

const CHOICES: readonly BackendChoice[] = ["wasm", "reference", "tfjs", "tfjs-gpu", "auto"];
const ENGINES: Record<string, string> = { wasm: "wasm-simd", reference: "typescript-f64" };

let current: Backend = wasmBackend;
let info: BackendInfo = { name: "wasm", device: "cpu", engine: "wasm-simd", reasons: {} };

/** The backend ops dispatch to. */
export function getBackend(): Backend {
  return current;
}

/** Install a backend object directly (used by the tfjs loader and by tests). */
export function useBackend(b: Backend, i: Partial<BackendInfo> = {}): BackendInfo {
  current = b;
  info = { name: b.name, device: "cpu", engine: ENGINES[b.name] ?? b.name, reasons: {}, ...i };
  return info;
}

/**
 * Pick the backend every op uses from now on.
 * @example await setBackend("reference"); console.log(backendInfo().engine)
 */
export async function setBackend(name: BackendChoice): Promise<BackendInfo> {
  if (!CHOICES.includes(name))
    throw new NumedgeError("backend", `backend must be one of ${CHOICES.join(", ")}, got ${JSON.stringify(name)}`);
  if (name === "wasm" || name === "auto") return useBackend(wasmBackend);
  if (name === "reference") return useBackend(referenceBackend);
  throw new NumedgeError("backend", `backend ${JSON.stringify(name)} is not available in this build`);
}

/** What runs the ops now: `{ name, device, engine, reasons }`. */
export function backendInfo(): BackendInfo {
  return { ...info, reasons: { ...info.reasons } };
}

const fromEnv = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.NUMEDGE_BACKEND;
if (fromEnv) await setBackend(fromEnv as BackendChoice);
