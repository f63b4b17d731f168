// Deno: the cuda backend's FFI through Deno.dlopen. Without a GPU, setBackend("cuda") must fail cleanly naming
// what is missing (the driver), not the runtime; with one (or the tests' fake libcuda.so.1 named by NUMEDGE_LIBCUDA),
// softmax, top-k and grok steps on cuda must match wasm; where a libnvrtc loads (NUMEDGE_NVRTC or ldconfig), NVRTC
// must compile kernels.cu to the same PTX as the shipped kernels.ptx (built under Bun).
// Run: deno run -A test/runtimes/deno-cuda.ts
import { readFileSync } from "node:fs";
import { GROK_ARMS, GrokRun, NumedgeError, setBackend, softmax, toDevice, topk } from "../../src/index.ts";
import { loadFfi } from "../../src/backends/cuda/ffi.ts";
import { PTX_HASH_PREFIX, kernelSource, nvrtcCompile, portablePtx } from "../../src/backends/cuda/nvrtc.ts";

function fail(why: string): never {
  console.log(`deno cuda: FAILED ${why}`);
  return (globalThis as unknown as { Deno: { exit(c: number): never } }).Deno.exit(1);
}
const ffi = await loadFfi();
if (typeof ffi === "string" || ffi.runtime !== "deno") fail(`no Deno FFI: ${String(ffi)}`);
let line = "";
try {
  const info = await setBackend("cuda");
  line = `cuda backend up: ${info.engine}`;
  // softmax, top-k and a short grok run (a recorded CUDA graph) on cuda, then on wasm
  const x = Float32Array.from({ length: 257 * 33 }, (_, i) => Math.sin(i * 0.37) * 40);
  const logs: Array<{ p: Float32Array; idx: Int32Array; stats: number[] }> = [];
  for (const be of ["cuda", "wasm"] as const) {
    await setBackend(be);
    const run = new GrokRun({ ...GROK_ARMS.perp, p: 13, op: "add", frac: 0.6, hidden: [32, 32], seed: 0, lr: 0.01 }, { graph: true });
    const stats = Array.from({ length: 6 }, (_, t) => run.train(true, t % 5 === 0)).filter((s) => s !== undefined).map((s) => s.loss);
    if (be === "cuda" && run.graphStatus !== "in use") fail(`grok's graph on cuda: ${run.graphStatus}`);
    logs.push({ p: softmax(toDevice(x), { cols: 33 }).readSync() as Float32Array, idx: topk(toDevice(x), { cols: 33, k: 5 }).indices.readSync() as Int32Array, stats: [...stats, run.testAccuracy()] });
  }
  const [c, w] = logs as [typeof logs[0], typeof logs[0]];
  if (!c.p.every((v, i) => Math.abs(v - w.p[i]!) <= 1e-6 * w.p[i]! + 1e-30)) fail("softmax on cuda differs from wasm");
  if (c.idx.join() !== w.idx.join()) fail("topk indices on cuda differ from wasm's");
  if (!c.stats.every((v, i) => Math.abs(v - w.stats[i]!) <= 1e-3 * Math.abs(w.stats[i]!) + 1e-6)) fail(`grok on cuda: ${c.stats} vs wasm ${w.stats}`);
  line += "; softmax, topk and grok steps (a recorded graph) match wasm";
  await setBackend("wasm");
} catch (e) {
  if (!(e instanceof NumedgeError) || e.code !== "backend") fail(`setBackend("cuda") threw ${String(e)}`);
  const msg = (e as Error).message;
  if (/Deno|runtime|Bun/i.test(msg) && !/libcuda|driver|device/i.test(msg)) fail(`the reason names the runtime: ${msg}`);
  line = `no GPU here, cleanly: ${msg.split("\n")[0]}`;
}
const { src, hash } = kernelSource();
const r = nvrtcCompile(typeof ffi === "string" ? fail("") : ffi, src, "compute_75");
if ("missing" in r) console.log(`deno cuda: ok (${line}); NVRTC part skipped: ${r.missing}`);
else {
  const shipped = readFileSync(new URL("../../src/backends/cuda/kernels.ptx", import.meta.url), "utf8");
  if (!shipped.startsWith(`${PTX_HASH_PREFIX}${hash}\n`)) fail("kernels.ptx is older than kernels.cu");
  if (shipped.slice(shipped.indexOf("\n") + 1) !== portablePtx(new TextDecoder().decode(r.bytes))) fail("NVRTC under Deno built different PTX");
  console.log(`deno cuda: ok (${line}); NVRTC under Deno built the shipped PTX (${r.bytes.length} bytes)`);
}
