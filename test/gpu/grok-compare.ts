// A short device-resident grok run on given backends, and a comparison of two runs' logs within a tolerance.
import { expect } from "bun:test";
import { GROK_ARMS, GrokRun, setBackend, type StepStats } from "numedge";

/** 8 steps of a small ⊥AdamW run per backend (logging every 4th), then test accuracy and running maxima. */
export async function grokOn(backends: string[]): Promise<unknown[][]> {
  const cfg = { ...GROK_ARMS.perp, p: 13, op: "add" as const, frac: 0.6, hidden: [32, 32], seed: 0, lr: 0.01 };
  const logs: unknown[][] = [];
  for (const be of backends) {
    await setBackend(be);
    const run = new GrokRun(cfg), log: unknown[] = [];
    expect(run.model.backend).toBe(be);
    for (let t = 0; t < 8; t++) { const s = run.train(true, t % 4 === 0); if (s) log.push(s); }
    log.push(run.testAccuracy(), run.maxima());
    logs.push(log);
  }
  await setBackend("wasm");
  return logs;
}

/** Numbers equal within 1e-3 relative (1e-6 absolute), everything else equal. */
export function expectClose(a: unknown, b: unknown, path = "log"): void {
  if (typeof a === "number" && typeof b === "number") {
    if (!(Math.abs(a - b) <= 1e-3 * Math.abs(b) + 1e-6)) throw new Error(`${path}: ${a} vs ${b}`);
    return;
  }
  if (a && b && typeof a === "object" && typeof b === "object") {
    expect(Object.keys(a).sort()).toEqual(Object.keys(b).sort());
    for (const k of Object.keys(b)) expectClose((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], `${path}.${k}`);
    return;
  }
  expect(a).toEqual(b as never);
}

export type { StepStats };
