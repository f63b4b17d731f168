// Where `auto` finds the per-op sizes from which a GPU beats wasm on this machine: measured and saved by
// scripts/gpu-check.ts (npx numedge gpu-check), one entry per engine and device, in the user's cache folder.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";

const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env ?? {};

/** numedge's cache folder: $XDG_CACHE_HOME/numedge or ~/.cache/numedge (compiled kernels, measured thresholds). */
export function cacheDir(): string {
  return `${env.XDG_CACHE_HOME ?? `${homedir()}/.cache`}/numedge`;
}

const file = () => `${cacheDir()}/thresholds.json`;

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
  try {
    if (!existsSync(file())) return null;
    const all = JSON.parse(readFileSync(file(), "utf8")) as Record<string, SavedThresholds>;
    const e = all[key];
    if (!e || typeof e.thresholds !== "object" || !Object.values(e.thresholds).every((v) => typeof v === "number" && v >= 0)) return null;
    return e;
  } catch {
    return null; // unreadable: as if never measured
  }
}

/**
 * Save thresholds for `key` beside the others (what scripts/gpu-check.ts does); returns the file written.
 * @example saveThresholds(backendInfo().thresholdKey!, { thresholds: { gemm: 2 ** 21 }, measured: "by hand" })
 */
export function saveThresholds(key: string, entry: SavedThresholds): string {
  let all: Record<string, SavedThresholds> = {};
  try {
    if (existsSync(file())) all = JSON.parse(readFileSync(file(), "utf8"));
  } catch { /* a corrupt file is replaced */ }
  all[key] = entry;
  mkdirSync(cacheDir(), { recursive: true });
  writeFileSync(file(), JSON.stringify(all, null, 1) + "\n");
  return file();
}
