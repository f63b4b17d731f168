// Softmax along the last axis: numedge (two-pass, three-pass, auto) vs a naive JS three-pass loop vs
// @tensorflow/tfjs-backend-wasm vs @tensorflow/tfjs-backend-cpu vs onnxruntime-node (1 thread), one process.
// Run: npm run bench  (add --quick for fewer samples). All single-threaded. Times are medians (p50).
// numedge's input and output live in WASM memory (alloc(), zero-copy: no marshalling in the timed call).
// Peers get the same courtesy where they have it: the tfjs input tensor and the ort input tensor are made
// once outside the timed call, and ort is also timed writing into a preallocated output tensor. tfjs is timed twice: kernel only (tf.softmax + dispose; the wasm/cpu backends
// run it synchronously) and with the result read back to JS (dataSync), which numedge never needs.
// Ratios are medians over interleaved rounds of peer time / numedge auto time measured in the same round.
// GB/s counts 8 bytes per element (4 read, 4 written), whatever the algorithm re-reads.
import { measure } from "mitata";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-wasm";
import "@tensorflow/tfjs-backend-cpu";
import { alloc, free, setThreads, softmax } from "numedge";
import { ort, ortSession } from "./onnx.ts";
import { cpus } from "node:os";

setThreads(1); // one thread, as the peers here (bench/threads.bench.ts measures the worker pool)

const quick = process.argv.includes("--quick");
const opts = { min_cpu_time: (quick ? 30 : 80) * 1e6, min_samples: quick ? 4 : 8 };
const ROUNDS = quick ? 3 : 5;

const SHAPES: Array<[number, number]> = [[1, 1024], [1, 65536], [1, 1048576], [512, 1024], [4096, 64], [64, 32000]];

function data(x: Float32Array, seed: number): Float32Array {
  let s = seed >>> 0;
  for (let i = 0; i < x.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    x[i] = (s / 2 ** 32) * 16 - 8;
  }
  return x;
}

/** What one writes in plain JS: max, exp and sum, scale. */
function naiveSoftmax(x: Float32Array, y: Float32Array, cols: number): void {
  for (let o = 0; o < x.length; o += cols) {
    let m = -Infinity;
    for (let i = 0; i < cols; i++) if (x[o + i]! > m) m = x[o + i]!;
    let s = 0;
    for (let i = 0; i < cols; i++) s += y[o + i] = Math.exp(x[o + i]! - m);
    const inv = 1 / s;
    for (let i = 0; i < cols; i++) y[o + i]! *= inv;
  }
}

const collect = () => (globalThis as { Bun?: { gc(force: boolean): void } }).Bun?.gc(true);

async function time(fn: () => unknown): Promise<number> {
  return (await measure(fn, opts)).p50;
}

const fmt = (v: number, d = 2) => (Number.isFinite(v) ? v.toFixed(d) : "-");
const lines: string[] = [];
const out = (s: string) => {
  lines.push(s);
  console.log(s);
};

console.log(`numedge softmax bench ${new Date().toISOString()}: bun ${typeof Bun !== "undefined" ? Bun.version : "?"}, ${cpus()[0]?.model} x${cpus().length}, ` +
  `${quick ? "quick" : "full"} sampling, median p50 of ${ROUNDS} interleaved rounds, 1 thread`);
out("| shape | engine | µs | ns/elem | GB/s | peer / numedge auto |");
out("|---|---|---|---|---|---|");
const summary: string[] = [];

for (const [rows, cols] of SHAPES) {
  const n = rows * cols;
  const x = data(alloc(n), rows * 7 + cols), y = alloc(n);
  const xs = x.slice(), ys = new Float32Array(n);

  // correctness guard: every engine agrees with the naive loop
  naiveSoftmax(xs, ys, cols);
  // (peers sum in f32: tfjs-wasm drifts ~1e-5 relative at 64k elements, so they get 1e-3)
  const check = (name: string, got: ArrayLike<number>, rel = 1e-3) => {
    for (let i = 0; i < n; i += 97) if (Math.abs(got[i]! - ys[i]!) > rel * ys[i]! + 1e-12) throw new Error(`${name} disagrees at [${rows},${cols}] i=${i}: ${got[i]} vs ${ys[i]}`);
  };
  for (const algorithm of ["twopass", "threepass", "auto"] as const) check(algorithm, softmax(x, { cols, out: y, algorithm }), 1e-5);

  // tfjs tensors and the ort session/feeds, made once
  await tf.setBackend("wasm");
  const xw = tf.tensor2d(xs, [rows, cols]);
  await tf.setBackend("cpu");
  const xc = tf.tensor2d(xs, [rows, cols]);
  const sess = await ortSession("Softmax", [{ name: "x", type: "float", dims: ["r", "c"] }], [{ name: "y", type: "float", dims: ["r", "c"] }], { axis: -1 }, [], 13);
  const feeds = { x: new ort.Tensor("float32", xs, [rows, cols]) };
  check("onnxruntime", (await sess.run(feeds)).y!.data as Float32Array);

  type Case = { name: string; backend?: "wasm" | "cpu"; fn: () => unknown };
  const cases: Case[] = [
    { name: "numedge auto", fn: () => softmax(x, { cols, out: y }) },
    { name: "numedge threepass", fn: () => softmax(x, { cols, out: y, algorithm: "threepass" }) },
    { name: "numedge twopass", fn: () => softmax(x, { cols, out: y, algorithm: "twopass" }) },
    { name: "naive JS", fn: () => naiveSoftmax(xs, ys, cols) },
  ];
  for (const [be, xt] of [["wasm", xw], ["cpu", xc]] as const) {
    await tf.setBackend(be);
    const r0 = tf.softmax(xt);
    check(`tfjs-${be}`, r0.dataSync());
    r0.dispose();
    cases.push({ name: `tfjs-${be} kernel`, backend: be, fn: () => tf.softmax(xt).dispose() });
    cases.push({
      name: `tfjs-${be} +dataSync`, backend: be, fn: () => {
        const r = tf.softmax(xt);
        r.dataSync();
        r.dispose();
      },
    });
  }
  const yt = new ort.Tensor("float32", new Float32Array(n), [rows, cols]); // ort writes into it (checked below)
  check("onnxruntime prealloc", ((await sess.run(feeds, { y: yt })).y!.data as Float32Array));
  if ((yt.data as Float32Array)[n >> 1] !== ys[n >> 1] && Math.abs((yt.data as Float32Array)[n >> 1]! / ys[n >> 1]! - 1) > 1e-3) throw new Error("ort ignored the preallocated output");
  cases.push({ name: "onnxruntime-node", fn: async () => { await sess.run(feeds); } });
  cases.push({ name: "onnxruntime-node prealloc y", fn: async () => { await sess.run(feeds, { y: yt }); } });

  // Rounds interleave the engines so a noisy neighbour hurts all of them alike. Reported: each engine's
  // median p50 over the rounds, and the median over rounds of (peer / numedge auto) from the same round.
  // tfjs-cpu (100-300x slower) runs in the first round only.
  const per: Record<string, number[]> = {};
  for (let round = 0; round < ROUNDS; round++) {
    for (const c of cases) {
      if (c.backend === "cpu" && round > 0) continue;
      if (c.backend) await tf.setBackend(c.backend);
      for (let w = 0; w < 3; w++) await c.fn(); // warm caches and JIT after the previous engine
      collect(); // so no engine pays for the previous one's garbage
      (per[c.name] ??= []).push(await time(c.fn));
    }
  }
  const median = (a: number[]) => [...a].sort((p, q) => p - q)[a.length >> 1]!;
  const t: Record<string, number> = {}, ratio: Record<string, number> = {};
  for (const [name, v] of Object.entries(per)) {
    t[name] = median(v);
    ratio[name] = median(v.map((x, r) => x / per["numedge auto"]![r]!));
  }
  xw.dispose();
  xc.dispose();
  await sess.release();

  for (const [engine, v] of Object.entries(t))
    out(`| [${rows},${cols}] | ${engine} | ${fmt(v / 1e3, 1)} | ${fmt(v / n, 3)} | ${fmt((8 * n) / v, 2)} | ${engine === "numedge auto" ? "1" : fmt(ratio[engine]!)} |`);
  summary.push(`[${rows},${cols}]: tfjs-wasm kernel / numedge = ${fmt(ratio["tfjs-wasm kernel"]!)} (target >= 1.5), ` +
    `tfjs-wasm +dataSync / numedge = ${fmt(ratio["tfjs-wasm +dataSync"]!)}, onnxruntime / numedge = ${fmt(ratio["onnxruntime-node"]!)} ` +
    `(prealloc y: ${fmt(ratio["onnxruntime-node prealloc y"]!)}; target >= 1), ` +
    `twopass / threepass = ${fmt(t["numedge twopass"]! / t["numedge threepass"]!)}`);
  free(x);
  free(y);
}

console.log("\n" + lines.join("\n") + "\n\n" + summary.join("\n"));
