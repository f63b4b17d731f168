// Softmax along the last axis: numedge (two-pass, three-pass, auto) vs a naive JS three-pass loop vs
// @tensorflow/tfjs-backend-wasm vs @tensorflow/tfjs-backend-cpu vs onnxruntime-node (1 thread), one process.
// Run: npm run bench  (add --quick for fewer samples). All single-threaded. Times are medians (p50).
// numedge's input and output live in WASM memory (alloc(), zero-copy: no marshalling in the timed call).
// Peers get the same courtesy where they have it: the tfjs input tensor and the ort input tensor are made
// once outside the timed call. tfjs is timed twice: kernel only (tf.softmax + dispose; the wasm/cpu backends
// run it synchronously) and with the result read back to JS (dataSync), which numedge never needs.
// GB/s counts 8 bytes per element (4 read, 4 written), whatever the algorithm re-reads.
import { measure } from "mitata";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-wasm";
import "@tensorflow/tfjs-backend-cpu";
import { alloc, free, softmax } from "numedge";
import { ort, ortSession } from "./onnx.ts";
import { cpus } from "node:os";

const quick = process.argv.includes("--quick");
const opts = { min_cpu_time: (quick ? 30 : 80) * 1e6, min_samples: quick ? 4 : 8 };
const ROUNDS = quick ? 2 : 4;

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
  `${quick ? "quick" : "full"} sampling, best p50 of ${ROUNDS} interleaved rounds, 1 thread`);
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
  cases.push({ name: "onnxruntime-node", fn: async () => { await sess.run(feeds); } });

  // rounds interleave the engines so a noisy neighbour hurts all of them alike; best p50 of the rounds
  const t: Record<string, number> = {};
  for (let round = 0; round < ROUNDS; round++) {
    for (const c of cases) {
      if (c.backend) await tf.setBackend(c.backend);
      const v = await time(c.fn);
      t[c.name] = Math.min(t[c.name] ?? Infinity, v);
    }
  }
  xw.dispose();
  xc.dispose();
  await sess.release();

  const ours = t["numedge auto"]!;
  for (const [engine, v] of Object.entries(t))
    out(`| [${rows},${cols}] | ${engine} | ${fmt(v / 1e3, 1)} | ${fmt(v / n, 3)} | ${fmt((8 * n) / v, 2)} | ${engine === "numedge auto" ? "1" : fmt(v / ours)} |`);
  summary.push(`[${rows},${cols}]: tfjs-wasm kernel / numedge = ${fmt(t["tfjs-wasm kernel"]! / ours)} (target >= 1.5), onnxruntime / numedge = ${fmt(t["onnxruntime-node"]! / ours)} (target >= 1), threepass/twopass = ${fmt(t["numedge threepass"]! / t["numedge twopass"]!)}`);
  free(x);
  free(y);
}

console.log("\n" + lines.join("\n") + "\n\n" + summary.join("\n"));
