// What the runtime checks (deno-cuda.ts, node-cuda.mjs) run on each cuda device they bring up: softmax, top-k and a
// short grok run replaying a recorded CUDA graph, against wasm. Type annotations only (Node 26 strips them).
import type * as Numedge from "../../src/index.ts";

type Api = Pick<typeof Numedge, "GROK_ARMS" | "GrokRun" | "setBackend" | "softmax" | "toDevice" | "topk">;

/** Why a device differs from wasm (softmax within 1e-6, top-k indices equal, grok within 1e-3), or null. */
export async function compareWithWasm(api: Api, devices: string[]): Promise<string | null> {
  const x = Float32Array.from({ length: 257 * 33 }, (_, i) => Math.sin(i * 0.37) * 40);
  const logs = new Map<string, { p: ArrayLike<number>; idx: string; stats: number[] }>();
  for (const be of ["wasm", ...devices]) {
    await api.setBackend(be);
    const run = new api.GrokRun({ ...api.GROK_ARMS.perp, p: 13, op: "add", frac: 0.6, hidden: [32, 32], seed: 0, lr: 0.01 }, { graph: true });
    const stats = Array.from({ length: 6 }, (_, t) => run.train(true, t % 3 === 0)).flatMap((s) => (s ? [s.loss, s.trainAcc, s.scFraction, s.maxLogit, s.weightNorm] : []));
    if (be !== "wasm" && run.graphStatus !== "in use") return `grok's graph on ${be}: ${run.graphStatus}`;
    const p = (api.softmax(api.toDevice(x), { cols: 33 }) as Numedge.DeviceArray).readSync(), idx = api.topk(api.toDevice(x), { cols: 33, k: 5 }).indices.readSync().join();
    logs.set(be, { p, idx, stats: [...stats, run.testAccuracy()] });
  }
  await api.setBackend("wasm");
  const w = logs.get("wasm")!;
  for (const be of devices) {
    const c = logs.get(be)!;
    if (!Array.from(c.p).every((v, i) => Math.abs(v - w.p[i]!) <= 1e-6 * w.p[i]! + 1e-30)) return `softmax on ${be} differs from wasm`;
    if (c.idx !== w.idx) return `topk indices on ${be} differ from wasm's`;
    const bad = c.stats.findIndex((v, i) => !(Math.abs(v - w.stats[i]!) <= 1e-3 * Math.abs(w.stats[i]!) + 1e-6));
    if (bad >= 0) return `grok on ${be}: value ${bad} is ${c.stats[bad]}, wasm's ${w.stats[bad]}`;
  }
  return null;
}
