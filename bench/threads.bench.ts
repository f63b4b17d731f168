// The worker pool: each case at 1 thread and at N threads (default 2, --threads N), in one process, rounds
// interleaved so a noisy neighbour hurts both alike. On a shared machine the minimum over all samples is the
// closest to an idle one: the speedup is min(1 thread) / min(N threads); p50s (median over rounds) are shown too.
// CPU ms per call (this process, all threads) shows what splitting costs in work whatever the load: equal CPU at
// 1 and N threads means the pool adds no work, so the wall-clock speedup is bounded by the cores the machine lends.
// Next to it onnxruntime-node at its default intra-op thread count on the same shape, and what the host-array
// copies cost (the caller makes them; workers cannot see a caller's buffer).
// Run: bun run bench/threads.bench.ts [--threads N] [--quick]
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { measure } from "mitata";
import { MIN_WORK } from "../src/backends/wasm/pool.ts";
import {
  AdamW, MLP, alloc, backendInfo, crossEntropy, dequantizeAffine, matmul, modularData, orthogonalize, quantizeAffine, quantizeBlockwise,
  route, setThreads, softmax, topk, type FloatArray,
} from "numedge";
import { maxInto } from "../src/ops/track.ts";
import { ort, ortSession } from "./onnx.ts";

const arg = (name: string) => { const i = process.argv.indexOf(name); return i > 0 ? process.argv[i + 1] : undefined; };
const N = Number(arg("--threads") ?? 2), quick = process.argv.includes("--quick");
const ROUNDS = quick ? 1 : 3;
const opts = { min_cpu_time: (quick ? 100 : 300) * 1e6, min_samples: quick ? 4 : 8, max_samples: 60 };
const fill = (a: Float32Array, seed: number) => { for (let i = 0; i < a.length; i++) a[i] = Math.sin(i * 0.61803 + seed) * 4; return a; };
const fmt = (v: number, d = 2) => v.toFixed(d);
const median = (a: number[]) => [...a].sort((p, q) => p - q)[a.length >> 1]!;
const collect = () => (globalThis as { Bun?: { gc(f: boolean): void } }).Bun?.gc(true);

interface Case { name: string; target?: string; fn: () => unknown; ort?: () => Promise<unknown> }
const cases: Case[] = [];

// softmax [64,32000] and the small shape, in WASM memory (zero-copy), and [64,32000] from host arrays
for (const [rows, cols] of [[64, 32000], [1, 1024]] as const) {
  const x = fill(alloc(rows * cols), rows), y = alloc(rows * cols);
  const s = await ortSession("Softmax", [{ name: "x", type: "float", dims: [rows, cols] }], [{ name: "y", type: "float", dims: [rows, cols] }], { axis: -1 }, [], 13, "default");
  const feeds = { x: new ort.Tensor("float32", x.slice(), [rows, cols]) };
  cases.push({ name: `softmax [${rows},${cols}]`, target: rows > 1 ? ">= 1.8" : "within 5%", fn: () => softmax(x, { cols, out: y }), ort: () => s.run(feeds) });
}
{
  const xs = fill(new Float32Array(64 * 32000), 3), ys = new Float32Array(xs.length);
  cases.push({ name: "softmax [64,32000] host arrays (copies on the caller)", fn: () => softmax(xs, { cols: 32000, out: ys }) });
}

// quantizeBlockwise 16M (dynamic map, block 4096) and int8 dequantize 16M (absmax int8, block 64), in WASM memory
const M = 1 << 24;
{
  const x = fill(alloc(M), 5), codes = alloc(M, "u8"), absmax = alloc(M / 4096);
  cases.push({ name: "quantizeBlockwise 16M", target: ">= 1.8", fn: () => quantizeBlockwise(x, { out: { codes, absmax } }) });
  const q = quantizeAffine(x, { bits: 8, axis: "block", blockSize: 64 }), y = alloc(M);
  const u8 = alloc(M, "u8"), qa = { ...q, q: new Int8Array(u8.buffer, u8.byteOffset, M), scale: alloc(q.scale.length), zeroPoint: alloc(q.zeroPoint.length, "i32") };
  qa.q.set(q.q as Int8Array);
  qa.scale.set(q.scale);
  qa.zeroPoint.set(q.zeroPoint as Int32Array); // every argument in WASM memory: no piece is copied on the caller
  const d = await ortSession("DequantizeLinear", [{ name: "q", type: "int8", dims: [M] }], [{ name: "y", type: "float", dims: [M] }],
    { axis: 0, block_size: 64 }, [{ name: "s", type: "float", dims: [M / 64], data: q.scale }, { name: "z", type: "int8", dims: [M / 64], data: new Int8Array(M / 64) }], 21, "default")
    .catch(() => null);
  const fq = { q: new ort.Tensor("int8", (q.q as Int8Array).slice(), [M]) };
  cases.push({ name: "dequantize int8 16M", target: ">= 1.8", fn: () => dequantizeAffine(qa, y), ort: d ? () => d.run(fq) : undefined });
}

// matmul 512^3
{
  const n = 512, a = fill(alloc(n * n), 7), b = fill(alloc(n * n), 8), c = alloc(n * n);
  const s = await ortSession("MatMul", [{ name: "a", type: "float", dims: [n, n] }, { name: "b", type: "float", dims: [n, n] }], [{ name: "c", type: "float", dims: [n, n] }], {}, [], 13, "default");
  const feeds = { a: new ort.Tensor("float32", a.slice(), [n, n]), b: new ort.Tensor("float32", b.slice(), [n, n]) };
  cases.push({ name: "matmul 512^3", target: ">= 1.8", fn: () => matmul(a, b, { m: n, k: n, n, out: c }), ort: () => s.run(feeds) });
}

// The ops split this session: MoE expert choice (selection and dispatch), a wide matmul (columns of C), ⊥Grad's
// orthogonalize and the running maximum, on arrays in WASM memory
{
  const T = 65536, E = 64, z = fill(alloc(T * E), 10);
  cases.push({ name: "route expert choice [65536,64] k=2", fn: () => route(z, { experts: E, k: 2, expertChoice: true }) });
  cases.push({ name: "route token choice [65536,64] k=2 cf=1", fn: () => route(z, { experts: E, k: 2, capacityFactor: 1 }) });
  const a = fill(alloc(8 * 512), 11), b = fill(alloc(512 * 65536), 12), c = alloc(8 * 65536);
  cases.push({ name: "matmul [8,512]x[512,65536]", fn: () => matmul(a, b, { m: 8, k: 512, n: 65536, out: c }) });
  const w = fill(alloc(1 << 24), 13), g = fill(alloc(1 << 24), 14), dst = alloc(1, "f64");
  cases.push({ name: "orthogonalize 16M", fn: () => orthogonalize(w, g) });
  cases.push({ name: "maxInto 16M (|x|)", fn: () => maxInto(dst, 0, w, 0, w.length, true) });
}

// topk [4096,8] k=2 (small: stays on the caller)
{
  const x = fill(alloc(4096 * 8), 9), values = alloc(4096 * 2), indices = alloc(4096 * 2, "i32");
  const s = await ortSession("TopK", [{ name: "x", type: "float", dims: [4096, 8] }, { name: "k", type: "int64", dims: [1] }],
    [{ name: "v", type: "float", dims: [4096, 2] }, { name: "i", type: "int64", dims: [4096, 2] }], { axis: -1 }, [], 13, "default");
  const feeds = { x: new ort.Tensor("float32", x.slice(), [4096, 8]), k: new ort.Tensor("int64", BigInt64Array.from([2n]), [1]) };
  cases.push({ name: "topk [4096,8] k=2", target: "within 5%", fn: () => topk(x, { cols: 8, k: 2, out: { values, indices } }), ort: () => s.run(feeds) });
}

// grok paper-size step (p = 113, 40% train, MLP 226 -> 200 -> 200 -> 113), as bench/grok.bench.ts
{
  const P = 113, data = modularData({ p: P, op: "add", frac: 0.4, seed: 0, alloc: (n) => alloc(n, "i32") });
  const { idx, labels, rows } = data.train;
  const net = new MLP({ inputs: 2 * P, hidden: [200, 200], outputs: P, seed: 0, alloc: (n, d) => alloc(n, d as "f32") as FloatArray });
  const opt = new AdamW({ lr: 0.01, beta1: 0.9, beta2: 0.99, eps: 1e-25 }, (x) => alloc(x.length) as FloatArray);
  cases.push({
    name: "grok paper-size step", target: ">= 1.8", fn: () => {
      const z = net.forward(idx, rows);
      net.backward(crossEntropy(z, labels, { cols: P }).grad!, idx);
      opt.step(net.params, net.grads);
    },
  });
}

// The split threshold: softmax [rows,1024] around MIN_WORK (bytes read + written); smaller calls stay on the caller.
const sweep = [8, 16, 32, 64, 128, 256].map((rows) => {
  const x = fill(alloc(rows * 1024), rows), y = alloc(rows * 1024);
  return { name: `threshold: softmax [${rows},1024] (${(rows * 8) | 0} KiB)`, fn: () => softmax(x, { cols: 1024, out: y }) };
});
cases.push(...sweep);

/** What the machine lends now: N copies of a pure-JS busy loop on N threads vs one copy on one; N is ideal. */
async function ceiling(): Promise<number> {
  const src = "let x = 0; for (let i = 0; i < 1e8; i++) x += Math.sqrt(i); require('node:worker_threads').parentPort.postMessage(x);";
  const busy = () => { let x = 0; for (let i = 0; i < 1e8; i++) x += Math.sqrt(i); return x; };
  let t0 = performance.now();
  busy();
  const one = performance.now() - t0;
  // the workers start their loops at once: listen before the clock (a message posted before its listener is lost)
  const ws = Array.from({ length: N - 1 }, () => new Worker(src, { eval: true }));
  const done = ws.map((w) => new Promise((r) => w.on("message", r)));
  t0 = performance.now();
  busy();
  await Promise.all(done);
  const many = performance.now() - t0 + 0;
  for (const w of ws) void w.terminate();
  return (N * one) / many;
}
const lent = [await ceiling()];

type Stat = { p50: number; min: number; cpu: number };
const per: Record<string, { one: Stat[]; many: Stat[]; ort: Stat[] }> = {};
const stat = async (fn: () => unknown): Promise<Stat> => {
  const s = await measure(fn, opts), reps = Math.max(3, Math.ceil(1e8 / s.p50)), u = process.cpuUsage();
  for (let i = 0; i < reps; i++) await fn();
  const d = process.cpuUsage(u);
  return { p50: s.p50, min: s.min, cpu: ((d.user + d.system) * 1e3) / reps };
};
for (let round = 0; round < ROUNDS; round++) {
  if (round > 0) lent.push(await ceiling());
  for (const c of cases) {
    const r = (per[c.name] ??= { one: [], many: [], ort: [] });
    for (const [t, into] of [[1, r.one], [N, r.many]] as const) {
      setThreads(t);
      for (let w = 0; w < 3; w++) c.fn(); // workers up, caches warm
      collect();
      into.push(await stat(c.fn));
    }
    if (c.ort && round === 0) r.ort.push(await stat(c.ort));
  }
}


const out = (s: string) => console.log(s);
out(`numedge worker pool, ${new Date().toISOString().slice(0, 10)}, Bun ${Bun.version}, ${availableParallelism()} cores available, ` +
  `1 vs ${N} threads (backendInfo: ${backendInfo().engine}${backendInfo().threadsNote ? `, ${backendInfo().threadsNote}` : ""}); ${ROUNDS} rounds; ms per call, min / p50`);
out(`What the machine lent (N busy loops on N threads / one on one; ${N} = idle), at the start of each round: ${lent.map((v) => fmt(v)).join(", ")}`);
out("");
out(`| case | 1 thread | ${N} threads | speedup (min) | speedup (p50) | CPU ms/call 1 / ${N} threads | target | onnxruntime default threads |`);
out("|---|---|---|---|---|---|---|---|");
const ms = (v: number) => fmt(v / 1e6, 3);
const mins = (a: Stat[]) => Math.min(...a.map((x) => x.min)), p50s = (a: Stat[]) => median(a.map((x) => x.p50));
const both = (a: Stat[]) => (a.length ? `${ms(mins(a))} / ${ms(p50s(a))}` : "");
const cpu = (a: Stat[]) => ms(median(a.map((x) => x.cpu)));
for (const c of cases) {
  const r = per[c.name]!;
  out(`| ${c.name} | ${both(r.one)} | ${both(r.many)} | ${fmt(mins(r.one) / mins(r.many))}x | ${fmt(p50s(r.one) / p50s(r.many))}x | ${cpu(r.one)} / ${cpu(r.many)} | ${c.target ?? ""} | ${both(r.ort)} |`);
}
out("");
out(`An op splits from ${MIN_WORK >> 10} KiB of data touched (the threshold rows: [32,1024] and up split; below, both columns run the same code on the caller).`);
setThreads(1);
