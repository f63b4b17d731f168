// Top-k and MoE routing: numedge vs naive JS vs tfjs-wasm tf.topk vs onnxruntime-node TopK, one process.
// Run: npm run bench:topk  [--quick: 1 round, fewer samples] [--cpu: time with this process's CPU clock instead of the
// wall clock, for a shared, overloaded machine]. Every engine gets the same plain Float32Array input (numedge
// copies it into WASM memory each call, and allocates its outputs like the others); "numedge (alloc)" is the
// allocation-free variant: input from alloc(), and for topk `out` arrays from alloc() as well.
// Bun reads typed arrays over WASM memory markedly slower from JS, so naive JS never gets an alloc'd array.
// Outputs are new JS arrays. Each engine's time is its minimum over samples (--p50 for medians: on a shared
// machine the minimum is the least disturbed estimate), taken in 5 interleaved rounds; the table shows the
// median over rounds, and each ratio is the median of the per-round ratios.
import { measure } from "mitata";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-wasm";
import "@tensorflow/tfjs-backend-cpu";
import { alloc, route, setThreads, topk } from "numedge";
import { ort, ortSession } from "./onnx.ts";

setThreads(1); // one thread, as the peers here (bench/threads.bench.ts measures the worker pool)

const quick = process.argv.includes("--quick"), cpuClock = process.argv.includes("--cpu"), p50 = process.argv.includes("--p50");
const cpuNow = () => { const u = process.cpuUsage(); return (u.user + u.system) * 1e3; };
const opts = { min_cpu_time: (quick ? 60 : 120) * 1e6, min_samples: 8, ...(cpuClock ? { now: cpuNow } : {}) };
await tf.setBackend("wasm");

function data(n: number, seed: number): Float32Array {
  const x = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    x[i] = s / 2 ** 32 * 8 - 4;
  }
  return x;
}

/** The partial selection one writes in plain JS: a sorted top-k buffer per row, insertion when beaten. */
function naiveTopk(x: Float32Array, cols: number, k: number) {
  const rows = x.length / cols, values = new Float32Array(rows * k), indices = new Int32Array(rows * k);
  const bv = new Float64Array(k), bi = new Int32Array(k);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let n = 0;
    for (let i = 0; i < cols; i++) {
      const v = x[o + i]!;
      if (n === k && !(v > bv[k - 1]!)) continue;
      let j = n < k ? n++ : k - 1;
      for (; j > 0 && bv[j - 1]! < v; j--) { bv[j] = bv[j - 1]!; bi[j] = bi[j - 1]!; }
      bv[j] = v;
      bi[j] = i;
    }
    for (let j = 0; j < k; j++) { values[r * k + j] = bv[j]!; indices[r * k + j] = bi[j]!; }
  }
  return { values, indices };
}

/** route() in plain JS: softmax, top-k, histogram + offsets + stable order, aux and z losses. */
function naiveRoute(z: Float32Array, E: number, k: number) {
  const T = z.length / E;
  const p = new Float64Array(E), P = new Float64Array(E), counts = new Int32Array(E);
  const experts = new Int32Array(T * k), weights = new Float32Array(T * k);
  const bv = new Float64Array(k), bi = new Int32Array(k);
  let zLoss = 0;
  for (let t = 0; t < T; t++) {
    const o = t * E;
    let m = -Infinity;
    for (let e = 0; e < E; e++) m = Math.max(m, z[o + e]!);
    let s = 0;
    for (let e = 0; e < E; e++) s += p[e] = Math.exp(z[o + e]! - m);
    zLoss += (m + Math.log(s)) ** 2;
    let n = 0;
    for (let e = 0; e < E; e++) {
      const v = (p[e]! /= s);
      P[e] += v;
      if (n === k && !(v > bv[k - 1]!)) continue;
      let j = n < k ? n++ : k - 1;
      for (; j > 0 && bv[j - 1]! < v; j--) { bv[j] = bv[j - 1]!; bi[j] = bi[j - 1]!; }
      bv[j] = v;
      bi[j] = e;
    }
    for (let j = 0; j < k; j++) { experts[t * k + j] = bi[j]!; weights[t * k + j] = bv[j]!; counts[bi[j]!]++; }
  }
  const offsets = new Int32Array(E + 1);
  for (let e = 0; e < E; e++) offsets[e + 1] = offsets[e]! + counts[e]!;
  const cur = offsets.slice(0, E), order = new Int32Array(T * k);
  for (let a = 0; a < T * k; a++) order[cur[experts[a]!]!++] = a;
  let aux = 0;
  for (let e = 0; e < E; e++) aux += (counts[e]! / T) * (P[e]! / T);
  return { experts, weights, counts, offsets, order, auxLoss: aux * E, zLoss: zLoss / T };
}

const rowsOut: string[] = [];
const fmt = (v: number, d = 2) => (Number.isFinite(v) ? v.toFixed(d) : "-");
const ROUNDS = quick ? 1 : 5;
const median = (a: number[]) => [...a].sort((p, q) => p - q)[a.length >> 1]!;

async function time(fn: () => unknown): Promise<number> {
  const st = await measure(fn, opts);
  return p50 ? st.p50 : st.min;
}

/** Every engine once per round, rounds interleaved; times = median over rounds, ratios = median of per-round ratios. */
async function rounds(engines: Record<string, () => unknown>): Promise<{ t: Record<string, number>; r: Record<string, number> }> {
  const all: Record<string, number[]> = {};
  for (let i = 0; i < ROUNDS; i++) for (const [name, fn] of Object.entries(engines)) (all[name] ??= []).push(await time(fn));
  const t: Record<string, number> = {}, r: Record<string, number> = {};
  for (const name of Object.keys(engines)) {
    t[name] = median(all[name]!);
    r[name] = median(all[name]!.map((v, i) => v / all.ours![i]!));
  }
  return { t, r };
}

console.log(`numedge topk/route bench: bun ${Bun.version}, ${ROUNDS} interleaved round(s), ${p50 ? "p50" : "min"} ${cpuClock ? "CPU" : "wall"} times`);
const header = "| case | numedge µs | numedge (alloc) µs | ns/elem | GB/s | naive JS µs | tfjs-wasm µs | ort µs | naive/ours | tfjs/ours | ort/ours |";
rowsOut.push(header, "|---|---|---|---|---|---|---|---|---|---|---|");

for (const [rows, cols, k] of [[4096, 8, 2], [4096, 64, 6], [4096, 256, 8], [1, 32000, 50]] as const) {
  const n = rows * cols, x = data(n, rows * 31 + cols);
  // correctness guard: the engines agree on the indices
  const ours = topk(x, { cols, k }), naive = naiveTopk(x, cols, k);
  if (ours.indices.join() !== naive.indices.join()) throw new Error(`topk mismatch vs naive at [${rows},${cols}] k=${k}`);
  const xt = tf.tensor2d(x.slice(), [rows, cols]);
  const sess = await ortSession("TopK", [{ name: "x", type: "float", dims: [rows, cols] }, { name: "k", type: "int64", dims: [1] }],
    [{ name: "v", type: "float", dims: [rows, k] }, { name: "i", type: "int64", dims: [rows, k] }], { axis: -1, largest: 1, sorted: 1 }, [], 11);
  const feeds = { x: new ort.Tensor("float32", x.slice(), [rows, cols]), k: new ort.Tensor("int64", BigInt64Array.from([BigInt(k)]), [1]) };
  const ortIdx = (await sess.run(feeds)).i!.data as BigInt64Array;
  if (Number(ortIdx[0]) !== ours.indices[0] || Number(ortIdx[k - 1]) !== ours.indices[k - 1]) throw new Error("ort disagrees");
  const tfIdx = tf.topk(xt, k, true).indices.dataSync();
  if (tfIdx[0] !== ours.indices[0]) throw new Error("tfjs disagrees");

  const xw = alloc(n);
  xw.set(x);
  const out = { values: alloc(rows * k), indices: alloc(rows * k, "i32") };
  const { t, r } = await rounds({
    ours: () => topk(x, { cols, k }),
    alloc: () => topk(xw, { cols, k, out }),
    naive: () => naiveTopk(x, cols, k),
    tfjs: () => {
      const res = tf.topk(xt, k, true);
      res.values.dataSync();
      res.indices.dataSync();
      res.values.dispose();
      res.indices.dispose();
    },
    ort: async () => { await sess.run(feeds); },
  });
  xt.dispose();
  const name = `topk [${rows},${cols}] k=${k}`;
  rowsOut.push(`| ${name} | ${fmt(t.ours! / 1e3, 1)} | ${fmt(t.alloc! / 1e3, 1)} | ${fmt(t.ours! / n, 3)} | ${fmt((n * 4) / t.ours!, 2)} | ${fmt(t.naive! / 1e3, 1)} | ${fmt(t.tfjs! / 1e3, 1)} | ${fmt(t.ort! / 1e3, 1)} | ${fmt(r.naive!)} | ${fmt(r.tfjs!)} | ${fmt(r.ort!)} |`);
  console.log(rowsOut[rowsOut.length - 1]);
}

for (const [T, E, k] of [[4096, 8, 2], [4096, 64, 6], [4096, 256, 8]] as const) {
  const n = T * E, z = data(n, E * 7 + 1);
  const a = route(z, { experts: E, k }), b = naiveRoute(z, E, k);
  if (a.order.join() !== b.order.join() || Math.abs(a.auxLoss - b.auxLoss) > 1e-5 * b.auxLoss) throw new Error("route mismatch vs naive");
  const zw = alloc(n);
  zw.set(z);
  const { t, r } = await rounds({
    ours: () => route(z, { experts: E, k }),
    alloc: () => route(zw, { experts: E, k }),
    naive: () => naiveRoute(z, E, k),
  });
  const name = `route [${T},${E}] k=${k} (softmax+topk+dispatch+aux+z)`;
  rowsOut.push(`| ${name} | ${fmt(t.ours! / 1e3, 1)} | ${fmt(t.alloc! / 1e3, 1)} | ${fmt(t.ours! / n, 3)} | ${fmt((n * 4) / t.ours!, 2)} | ${fmt(t.naive! / 1e3, 1)} | - | - | ${fmt(r.naive!)} | - | - |`);
  console.log(rowsOut[rowsOut.length - 1]);
}

// Calibration: how fast this machine runs a plain JS read of the [4096,256] input (compare ns/elem across machines).
{
  const x = data(4096 * 256, 5);
  const sum = () => { let t = 0; for (let i = 0; i < x.length; i++) t += x[i]!; return t; };
  const t = await time(sum);
  const xw = alloc(x.length);
  xw.set(x);
  const sumw = () => { let t = 0; for (let i = 0; i < xw.length; i++) t += xw[i]!; return t; };
  const tw = await time(sumw);
  rowsOut.push("", `calibration: plain JS sum over 4096*256 f32 = ${fmt(t / x.length, 3)} ns/elem (${fmt(tw / x.length, 3)} over an alloc'd array)`);
}

console.log("\n" + rowsOut.join("\n"));
