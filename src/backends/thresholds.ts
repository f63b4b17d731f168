// Where `auto` finds the per-op sizes from which a GPU beats wasm on this machine: measured and saved by
// scripts/gpu-check.ts (npx numedge gpu-check), one entry per engine and device, in the user's cache folder.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { env } from "../env.ts";

/** numedge's cache folder: $XDG_CACHE_HOME/numedge or ~/.cache/numedge (compiled kernels, measured thresholds). */
export function cacheDir(): string {
  return `${env.XDG_CACHE_HOME ?? `${homedir()}/.cache`}/numedge`;
}

const file = () => `${cacheDir()}/thresholds.json`;
/** Every saved entry; none when the file is missing or unreadable (as if never measured). */
function readAll(): Record<string, SavedThresholds> {
  try {
    return JSON.parse(readFileSync(file(), "utf8"));
  } catch {
    return {};
  }
}

export interface SavedThresholds {
  /** Kernel name -> smallest size (elements of the largest array; gemm: m*k*n) sent to the GPU. */
  thresholds: Record<string, number>;
  /** When and with what they were measured. */
  measured: string;
}

/**
 * The thresholds saved for `key` (backendInfo().thresholdKey: "cuda:<device> sm_<cc>", "tfjs-gpu:<engine>"), or null
 * when none were measured. @example readThresholds(backendInfo().thresholdKey!)?.thresholds // { softmax: 1e5, ... }
 */
export function readThresholds(key: string): SavedThresholds | null {
  const e = readAll()[key];
  if (!e || typeof e.thresholds !== "object" || e.thresholds === null || !Object.values(e.thresholds).every((v) => typeof v === "number" && v >= 0)) return null;
  return e;
}

/**
 * Save thresholds for `key` beside the others (what scripts/gpu-check.ts does); returns the file written.
 * @example saveThresholds(backendInfo().thresholdKey!, { thresholds: { gemm: 2 ** 21 }, measured: "by hand" })
 */
export function saveThresholds(key: string, entry: SavedThresholds): string {
  const all = readAll(); // a corrupt file is replaced
  all[key] = entry;
  mkdirSync(cacheDir(), { recursive: true });
  writeFileSync(file(), JSON.stringify(all, null, 1) + "\n");
  return file();
}
