// The cuda backend's kernels on DeviceArrays against numedge's wasm kernels and PyTorch on the same GPU (when python3
// has torch: bench/torch-anchor.py): softmax on the shapes of the GPU figures with its host round trip, relu,
// block-wise quantization, top-k, an LM's cross-entropy and embedding backward, the router, and the grokking step at
// the paper size. Kernel time = wall time of N back-to-back calls, closed by
// reading one value back (the copy waits for the queued kernels), median of 5 batches. Run on a machine with an
// NVIDIA GPU: bun run bench/gpu.bench.ts (writes $OUT/gpu-bench.json when OUT is set).
import { spawnSync } from "node:child_process";
import { registerBackend } from "../src/backends/index.ts";
import { createCudaBackend, realDeps } from "../src/backends/cuda.ts";
import { wasmBackend } from "../src/backends/wasm.ts";
import {
  GROK_ARMS, GrokRun, alloc, backendInfo, combine, crossEntropy, embeddingSumBackward, empty, matmul, quantize4bit, quantizeAffine, quantizeBlockwise, relu, route, setBackend, softmax, toDevice, topk,
  type DeviceArray, type RouteDeviceResult,
} from "numedge";

const info = await setBackend("cuda").catch((e: Error) => e);
if (info instanceof Error) {
  console.log(`skipped: ${info.message}`);
  process.exit(0);
}
console.log(`gpu bench: bun ${Bun.version}, ${backendInfo().engine}`);
const flag = empty(1, "f32");

function usPer(calls: number, fn: () => void, done: () => void): number {
  fn();
  done();
  const times: number[] = [];
  for (let b = 0; b < 5; b++) {
    const t0 = performance.now();
    for (let i = 0; i < calls; i++) fn();
    done();
    times.push(((performance.now() - t0) / calls) * 1000);
  }
  return times.sort((a, c) => a - c)[2]!;
}

// Each row is printed as a JSON line when measured, and each section runs on its own: a failure or a time limit
// on the GPU machine loses that section, not the run.
const rows: Record<string, unknown>[] = [];
function record(row: Record<string, unknown>): void {
  rows.push(row);
  console.log(`row ${JSON.stringify(row)}`);
}
async function section(name: string, body: () => Promise<void> | void): Promise<void> {
  try {
    await body();
  } catch (e) {
    console.log(`section ${name} failed: ${e instanceof Error ? e.message : String(e)}`);
    await setBackend("cuda").catch(() => {});
  }
}
/** n values of f(i), without Float32Array.from's per-element callback (seconds at 134M). */
function fill(n: number, f: (i: number) => number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = f(i);
  return a;
}

// The grokking step at the paper's size first (the issue's headline target), device-resident (forward,
// cross-entropy, backward, AdamW): the f32 softmax head, and the paper's StableMax head in f64; each as launched
// op by op, and with forward and backward replayed as a recorded CUDA graph (GrokRun's graph option).
for (const graph of [false, true]) await section(`grok${graph ? " (graph)" : ""}`, () => {
  for (const [arm, head] of [["baseline", "f32 softmax"], ["stablemax", "f64 StableMax"]] as const) {
    const run = new GrokRun({ ...GROK_ARMS[arm], p: 113, op: "add", frac: 0.4, hidden: [200, 200], seed: 0, lr: 0.01 }, { graph });
    for (let t = 0; t < 5; t++) run.train(true, false);
    const us = usPer(50, () => run.train(true, false), () => flag.readSync());
    // the host's share: 10 steps queued from an idle GPU, not waited for (near the step time: the step is CPU-bound,
    // and a CUDA graph of it would pay; far below: the GPU is the limit)
    flag.readSync();
    const t0 = performance.now();
    for (let t = 0; t < 10; t++) run.train(true, false);
    const enqueueUs = ((performance.now() - t0) / 10) * 1000;
    flag.readSync();
    record({ op: `grok step (p=113, 2x200, 5107 rows, ${head})${graph ? ", graph" : ""}`, shape: "fwd+bwd+AdamW", cuda_us: +us.toFixed(1), enqueue_us: +enqueueUs.toFixed(1), ...(graph ? { graph: run.graphStatus } : {}) });
  }
});
for (const [r, c] of [[64, 32000], [512, 1024], [4096, 1024], [4096, 64], [1024, 131072]] as const) await section(`softmax [${r},${c}]`, async () => {
  const n = r * c, x = fill(n, (i) => Math.sin(i * 0.37) * 8);
  const xd = toDevice(x), yd = empty(n, "f32") as DeviceArray;
  const cudaUs = usPer(n > 1e7 ? 20 : 100, () => softmax(xd, { cols: c, out: yd }), () => flag.readSync());
  const threeUs = usPer(n > 1e7 ? 20 : 100, () => softmax(xd, { cols: c, out: yd, algorithm: "threepass" }), () => flag.readSync());
  const hostUs = usPer(5, () => softmax(x, { cols: c }), () => {});
  await setBackend("wasm");
  const xa = alloc(n), ya = alloc(n);
  xa.set(x);
  const wasmUs = usPer(n > 1e7 ? 1 : 5, () => softmax(xa, { cols: c, out: ya }), () => {});
  await setBackend("cuda");
  record({ op: "softmax", shape: `[${r},${c}]`, cuda_us: +cudaUs.toFixed(1), TBs: +((n * 8) / cudaUs / 1e6).toFixed(2), cuda_host_roundtrip_us: +hostUs.toFixed(0), wasm_us: +wasmUs.toFixed(0), wasm_over_cuda: +(wasmUs / cudaUs).toFixed(1) });
  record({ op: "softmax (threepass; auto is twopass on rows past 16384)", shape: `[${r},${c}]`, cuda_us: +threeUs.toFixed(1), TBs: +((n * 8) / threeUs / 1e6).toFixed(2) });
  xd.dispose(); yd.dispose();
});
await section("relu and quantizers", () => {
  const n = 1 << 26, xd = toDevice(fill(n, (i) => Math.sin(i))), yd = empty(n, "f32");
  const us = usPer(50, () => relu(xd, { out: yd }), () => flag.readSync());
  record({ op: "relu", shape: `${n}`, cuda_us: +us.toFixed(1), TBs: +((n * 8) / us / 1e6).toFixed(2) });
  const q = () => { const r = quantizeBlockwise(xd, { blockSize: 4096 }); for (const d of [r.codes, r.absmax, r.bad]) d.dispose(); };
  const qus = usPer(20, q, () => flag.readSync());
  record({ op: "quantizeBlockwise (dynamic, 4096)", shape: `${n}`, cuda_us: +qus.toFixed(1), TBs: +((n * 5) / qus / 1e6).toFixed(2) });
  const a = () => { const r = quantizeAffine(xd, { bits: 8, axis: "block", blockSize: 128 }); for (const d of [r.q, r.scale, r.zeroPoint, r.bad]) d.dispose(); };
  const aus = usPer(20, a, () => flag.readSync());
  record({ op: "quantizeAffine (int8, 128)", shape: `${n}`, cuda_us: +aus.toFixed(1), TBs: +((n * 5) / aus / 1e6).toFixed(2) });
  xd.dispose(); yd.dispose();
});
// FIGURES.md's absmax int8 shapes (PyTorch: round(x * 127 / absmax) per block), as block-wise 8-bit (bitsandbytes'
// dynamic code: a search per element) and as signed int8 affine (scale absmax / 127: that op exactly); NF4 at 64.
for (const [n, bs] of [[1 << 24, 64], [1 << 24, 4096], [1 << 26, 4096]] as const) await section(`absmax int8 n=${n} bs=${bs}`, () => {
  const xd = toDevice(fill(n, (i) => Math.sin(i * 0.37) * 3)), shape = `n=${n} bs=${bs}`;
  const b = () => { const r = quantizeBlockwise(xd, { blockSize: bs }); for (const d of [r.codes, r.absmax, r.bad]) d.dispose(); };
  const bus = usPer(20, b, () => flag.readSync());
  record({ op: "absmax_int8 as quantizeBlockwise (dynamic)", shape, cuda_us: +bus.toFixed(1), TBs: +((n * 5) / bus / 1e6).toFixed(2) });
  const a = () => { const r = quantizeAffine(xd, { bits: 8, signed: true, axis: "block", blockSize: bs }); for (const d of [r.q, r.scale, r.zeroPoint, r.bad]) d.dispose(); };
  const aus = usPer(20, a, () => flag.readSync());
  record({ op: "absmax_int8 as quantizeAffine (signed)", shape, cuda_us: +aus.toFixed(1), TBs: +((n * 5) / aus / 1e6).toFixed(2) });
  if (bs === 64) {
    const f = () => { const r = quantize4bit(xd, { blockSize: 64, type: "nf4" }); for (const d of [r.packed, r.absmax as DeviceArray, r.bad]) d.dispose(); };
    const fus = usPer(20, f, () => flag.readSync());
    record({ op: "quantize4bit (nf4)", shape, cuda_us: +fus.toFixed(1), TBs: +((n * 4.5) / fus / 1e6).toFixed(2) });
  }
  xd.dispose();
});
for (const [r, c, k] of [[4096, 256, 8], [4096, 64, 6], [4096, 8, 2], [65536, 256, 8], [1024, 4096, 64], [64, 32000, 50]] as const) await section(`topk [${r},${c}]`, () => {
  const xd = toDevice(fill(r * c, (i) => Math.round(Math.sin(i * 0.7) * 50) / 10));
  const us = usPer(100, () => { const t = topk(xd, { cols: c, k }); t.values.dispose(); t.indices.dispose(); }, () => flag.readSync());
  record({ op: "topk", shape: `[${r},${c}] k=${k}`, cuda_us: +us.toFixed(1) });
  xd.dispose();
});
// matmul through cuBLAS and through numedge's GEMM kernel (what a machine with only the driver runs): a second
// cuda backend without cuBLAS, on the same GPU
await section("matmul", async () => {
  const made = await createCudaBackend(wasmBackend, { ...realDeps, blas: () => "no cuBLAS (bench)" }, "cuda-gemm-kernel");
  if (typeof made !== "string") registerBackend("cuda-gemm-kernel", async () => ({ backend: made.backend, info: { device: "gpu", ...made.info } }));
  for (const [m, k, n] of [[5107, 200, 200], [4096, 4096, 4096]] as const) {
    for (const be of ["cuda", ...(typeof made === "string" ? [] : ["cuda-gemm-kernel"])]) {
      await setBackend(be);
      const a = toDevice(fill(m * k, (i) => Math.sin(i) / 8)), b = toDevice(fill(k * n, (i) => Math.cos(i) / 8));
      const c = empty(m * n, "f32"), f = empty(1, "f32");
      const us = usPer(m > 4000 ? 10 : 50, () => matmul(a, b, { m, k, n, out: c }), () => f.readSync());
      record({ op: `matmul f32 (${be === "cuda" ? "cuBLAS" : "GEMM kernel"}, ${((2 * m * k * n) / us / 1e6).toFixed(1)} TFLOP/s)`, shape: `[${m},${k}]x[${k},${n}]`, cuda_us: +us.toFixed(1) });
      a.dispose(); b.dispose(); c.dispose(); f.dispose();
    }
  }
  await setBackend("cuda");
});
// An LM's shapes: cross-entropy over a vocabulary with its gradient (a block per row past 2048 columns; a warp per
// row below), and the embedding's backward over a vocabulary (positions radix-sorted by token)
for (const [r, c] of [[4096, 32000], [8192, 128]] as const) await section(`crossEntropy [${r},${c}]`, () => {
  const z = toDevice(fill(r * c, (i) => Math.sin(i * 0.37) * 4)), g = empty(r * c, "f32");
  const y = toDevice(Int32Array.from({ length: r }, (_, i) => (i * 7919) % c));
  const us = usPer(20, () => crossEntropy(z, y, { cols: c, gradOut: g }).stats.dispose(), () => flag.readSync());
  record({ op: "crossEntropy (f32, with grad)", shape: `[${r},${c}]`, cuda_us: +us.toFixed(1), TBs: +((r * c * 8) / us / 1e6).toFixed(2) });
  z.dispose(); g.dispose(); y.dispose();
});
await section("embeddingSumBackward", () => {
  const V = 50257, n = 16384, H = 768, dout = toDevice(fill(n * H, (i) => Math.sin(i * 0.1)));
  const idx = toDevice(Int32Array.from({ length: n }, (_, i) => (i % 5 === 0 ? 50256 : (i * 7919) % V))), dw = empty(V * H, "f32"); // a padding token: 1 in 5
  const us = usPer(10, () => embeddingSumBackward(dout, idx, dw, { cols: H, per: 1 }), () => flag.readSync());
  record({ op: "embeddingSumBackward", shape: `${n} tokens, vocab ${V}, ${H} wide`, cuda_us: +us.toFixed(1) });
  dout.dispose(); idx.dispose(); dw.dispose();
});
// The MoE router on device-resident logits (scoring, selection, capacity drops, dispatch, losses) and combine.
const free = (r: RouteDeviceResult) => { for (const d of [r.experts, r.weights, r.counts, r.offsets, r.order, r.stats, r.auxGrad, r.zGrad]) d?.dispose(); };
for (const [T, E, k, extra] of [[4096, 64, 6, {}], [65536, 8, 2, { capacityFactor: 1.25 }], [4096, 256, 8, { groups: 8, topkGroups: 4, scoring: "sigmoid" as const }], [65536, 64, 2, { expertChoice: true }]] as const) await section(`route [${T},${E}]`, () => {
  const z = toDevice(fill(T * E, (i) => Math.sin(i * 0.37) * 3));
  const o = { experts: E, k, normalize: true, ...extra };
  const us = usPer(20, () => free(route(z, o)), () => flag.readSync());
  record({ op: "route", shape: `[${T},${E}] k=${k} ${JSON.stringify(extra)}`, cuda_us: +us.toFixed(1) });
  const r = route(z, o), kept = (r.offsets.readSync() as Int32Array)[E]!, H = 1024;
  const eo = toDevice(new Float32Array(kept * H).fill(0.5));
  const cus = usPer(20, () => combine(eo, r, { hidden: H }).dispose(), () => flag.readSync());
  record({ op: "combine", shape: `[${T},${H}] from ${kept} rows`, cuda_us: +cus.toFixed(1), TBs: +((kept * H * 4 + T * H * 4) / cus / 1e6).toFixed(2) });
  free(r); eo.dispose(); z.dispose();
});
// PyTorch on the same GPU, where python3 has torch: the anchor every kernel target is set against.
let torch: Record<string, unknown>[] = [];
if (spawnSync("python3", ["-c", "import torch; assert torch.cuda.is_available()"]).status === 0) {
  const r = spawnSync("python3", [new URL("./torch-anchor.py", import.meta.url).pathname], { encoding: "utf8", env: { ...process.env, OUT: "" }, timeout: 120_000 });
  try { torch = JSON.parse(r.stdout); } catch { console.log(`torch anchor failed${r.error ? ` (${r.error.message})` : ""}: ${(r.stderr ?? "").split("\n").slice(-3).join(" ")}`); }
}
for (const row of rows) {
  // torch-anchor.py's grok step is the f32 softmax arm's (eager)
  const t = torch.find((x) => (x.shape === row.shape && String(row.op).startsWith(String(x.op))) || (String(row.op).startsWith("grok step") && String(row.op).includes("f32 softmax") && String(x.op).startsWith("grok")));
  if (t) row.torch_us = t.kernel_us;
}
console.log("| op | shape | cuda µs | PyTorch µs | TB/s | host round trip µs | wasm µs | wasm / cuda | host µs to queue |\n|---|---|---|---|---|---|---|---|---|");
for (const r of rows) console.log(`| ${r.op} | ${r.shape} | ${r.cuda_us} | ${r.torch_us ?? "-"} | ${r.TBs ?? "-"} | ${r.cuda_host_roundtrip_us ?? "-"} | ${r.wasm_us ?? "-"} | ${r.wasm_over_cuda ?? "-"} | ${r.enqueue_us ?? "-"} |`);
if (process.env.OUT) await Bun.write(`${process.env.OUT}/gpu-bench.json`, JSON.stringify({ engine: backendInfo().engine, date: new Date().toISOString(), rows, torch }, null, 1));
