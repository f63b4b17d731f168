// One full-batch grokking training step (paper size: p = 113, 40% train = 5107 rows, MLP 226 -> 200 -> 200 -> 113,
// no biases, 2-hot input as a gather, softmax cross-entropy, AdamW): numedge vs tfjs-wasm vs tfjs-cpu, one process.
// Run: npm run bench:grok  (add --quick for fewer samples). Single thread everywhere. Times are medians (p50).
// The numedge step is the training stack's own (MLP.forward, crossEntropy, MLP.backward, AdamW.step) with its
// buffers in WASM memory (alloc), as scripts/grok.ts runs it. The tfjs step is the same model written with
// tf.gather + tf.matMul + tf.relu, gradients by tf.variableGrads, and tf.train.adam (= AdamW with no weight decay).
import { measure } from "mitata";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-wasm";
import "@tensorflow/tfjs-backend-cpu";
import "@tensorflow/tfjs-core/dist/register_all_gradients"; // tfjs-core alone registers no gradients
import { AdamW, MLP, alloc, crossEntropy, matmul, modularData, setThreads, type FloatArray } from "numedge";

setThreads(1); // one thread, as the peers here (bench/threads.bench.ts measures the worker pool)

const quick = process.argv.includes("--quick");
const opts = { min_cpu_time: (quick ? 300 : 1500) * 1e6, min_samples: quick ? 5 : 12 };
const P = 113, FRAC = 0.4, HIDDEN = [200, 200], LR = 0.01;

const data = modularData({ p: P, op: "add", frac: FRAC, seed: 0, alloc: (n) => alloc(n, "i32") });
const { idx, labels, rows } = data.train;
const macs = 3 * rows * (HIDDEN[0]! * HIDDEN[1]! + HIDDEN[1]! * P); // GEMM multiply-adds per step (layer 1 is a gather)

// ---- numedge ----
const net = new MLP({ inputs: 2 * P, hidden: HIDDEN, outputs: P, seed: 0, alloc: (n, d) => alloc(n, d as "f32") as FloatArray });
const init = net.params.map((w) => Float32Array.from(w)); // tfjs starts from the same weights
const opt = new AdamW({ lr: LR, beta1: 0.9, beta2: 0.99, eps: 1e-25 }, (x) => alloc(x.length) as FloatArray);
function stepNumedge(): number {
  const z = net.forward(idx, rows);
  const ce = crossEntropy(z, labels, { cols: P });
  net.backward(ce.grad!, idx);
  opt.step(net.params, net.grads);
  return ce.loss;
}

/** Mean CPU ms of this process per call of fn over reps calls (after one warm-up). On a shared machine CPU time
 *  is steadier than wall time; on an idle one it exceeds wall time, since it also counts Bun's GC/JIT threads. */
function cpuMs(fn: () => unknown, reps: number): number {
  fn();
  const t0 = process.cpuUsage();
  for (let i = 0; i < reps; i++) fn();
  const d = process.cpuUsage(t0);
  return (d.user + d.system) / 1000 / reps;
}

// ---- tfjs (same init values, same data) ----
function tfStep(engine: "wasm" | "cpu") {
  const W = init.map((w, l) => tf.variable(tf.tensor2d(w, [net.sizes[l]!, net.sizes[l + 1]!])));
  const a = tf.tensor1d(Int32Array.from({ length: rows }, (_, r) => idx[2 * r]!), "int32");
  const b = tf.tensor1d(Int32Array.from({ length: rows }, (_, r) => idx[2 * r + 1]!), "int32");
  const y = tf.oneHot(tf.tensor1d(Int32Array.from(labels), "int32"), P);
  const ab = tf.reshape(tf.concat([a, b]), [2 * rows, 1]);
  const adam = tf.train.adam(LR, 0.9, 0.99, 1e-25);
  // The 2-hot first layer as a gather, as numedge does. tfjs-wasm has no UnsortedSegmentSum (tf.gather's
  // gradient), so the gradient is given explicitly as the scatter-add it is (tf.scatterND sums duplicates).
  const embed = tf.customGrad((w, _save) => ({
    value: tf.add(tf.gather(w as tf.Tensor2D, a), tf.gather(w as tf.Tensor2D, b)),
    gradFunc: (dy) => tf.scatterND(ab, tf.concat([dy as tf.Tensor2D, dy as tf.Tensor2D]), [2 * P, HIDDEN[0]!]),
  }));
  const loss = () => {
    const h1 = tf.relu(embed(W[0]!) as tf.Tensor2D);
    const h2 = tf.relu(tf.matMul(h1, W[1]!));
    const z = tf.matMul(h2, W[2]!);
    return tf.losses.softmaxCrossEntropy(y, z) as tf.Scalar;
  };
  return {
    name: `tfjs-${engine}`,
    step(): number {
      const cost = adam.minimize(loss, true, W)!;
      const v = cost.dataSync()[0]!; // outside any tidy: forces the step to finish
      cost.dispose();
      return v;
    },
    dispose() {
      W.forEach((w) => w.dispose());
      a.dispose(); b.dispose(); ab.dispose(); y.dispose(); adam.dispose();
    },
  };
}

const fmt = (v: number, d = 1) => (Number.isFinite(v) ? v.toFixed(d) : "-");
console.log(`grok step bench: bun ${Bun.version}, p = ${P}, ${rows} train rows, hidden ${HIDDEN.join("x")}, ${quick ? "quick" : "full"} sampling`);

const l0 = stepNumedge();
const statsOurs = await measure(stepNumedge, opts);
const tOurs = statsOurs.p50 / 1e6, minOurs = statsOurs.min / 1e6;
// Per-phase breakdown (mean over a few calls; the optimizer state keeps advancing, which does not change its cost).
const reps = quick ? 5 : 15;
const tFwd = cpuMs(() => net.forward(idx, rows), reps);
const z = net.forward(idx, rows);
const tCe = cpuMs(() => crossEntropy(z, labels, { cols: P }), reps);
const g = crossEntropy(z, labels, { cols: P }).grad!;
const tBwd = cpuMs(() => net.backward(g, idx), reps);
const tOpt = cpuMs(() => opt.step(net.params, net.grads), reps);

const cOurs = cpuMs(stepNumedge, reps);
// The six GEMMs of a step, alone (operands in WASM memory): where the step's time goes.
const gemmRows: string[] = [];
{
  const H = HIDDEN[0]!, fill = (n: number) => { const a = alloc(n); for (let i = 0; i < n; i++) a[i] = Math.sin(i) * 0.5; return a; };
  const shapes: [string, number, number, number, boolean, boolean][] = [
    ["forward h1·W2", rows, H, H, false, false], ["forward h2·W3", rows, H, P, false, false],
    ["dW3 = h2ᵀ·dz", H, rows, P, true, false], ["dh2 = dz·W3ᵀ", rows, P, H, false, true],
    ["dW2 = h1ᵀ·dh2", H, rows, H, true, false], ["dh1 = dh2·W2ᵀ", rows, H, H, false, true],
  ];
  for (const [name, m, k, n, transA, transB] of shapes) {
    const a = fill(m * k), b = fill(k * n), out = alloc(m * n);
    const ms = Math.min(...[0, 1, 2].map(() => cpuMs(() => matmul(a, b, { m, k, n, transA, transB, out }), quick ? 3 : 8)));
    gemmRows.push(`| ${name} | [${m},${k}]·[${k},${n}]${transA ? " transA" : ""}${transB ? " transB" : ""} | ${fmt(ms, 2)} | ${fmt((m * k * n) / ms / 1e6, 1)} |`);
  }
}

const results: { name: string; ms: number; min: number; cpu: number; loss: number }[] = [{ name: "numedge (wasm)", ms: tOurs, min: minOurs, cpu: cOurs, loss: l0 }];
for (const engine of ["wasm", "cpu"] as const) {
  await tf.setBackend(engine);
  await tf.ready();
  const s = tfStep(engine);
  const loss = s.step();
  const st = await measure(() => s.step(), { ...opts, min_samples: engine === "cpu" ? 3 : opts.min_samples, min_cpu_time: engine === "cpu" ? 2e8 : opts.min_cpu_time });
  const ms = st.p50 / 1e6, min = st.min / 1e6;
  const cpu = cpuMs(() => s.step(), engine === "cpu" ? 2 : reps);
  s.dispose();
  results.push({ name: s.name, ms, min, cpu, loss });
}

console.log(`\n| engine | wall ms/step (p50) | wall min | CPU ms/step (mean) | GMAC/s (CPU time) | step-1 loss | wall / numedge | CPU / numedge |`);
console.log(`|---|---|---|---|---|---|---|---|`);
for (const r of results)
  console.log(`| ${r.name} | ${fmt(r.ms)} | ${fmt(r.min)} | ${fmt(r.cpu)} | ${fmt(macs / r.cpu / 1e6, 1)} | ${r.loss.toFixed(4)} | ${fmt(r.ms / tOurs, 2)} | ${fmt(r.cpu / cOurs, 2)} |`);
console.log(`load average at the end: ${(await import("node:os")).loadavg().map((v) => v.toFixed(2)).join(" ")} (2 cores, shared)`);
console.log(`numedge phases (CPU ms): forward ${fmt(tFwd, 2)}, cross-entropy ${fmt(tCe, 2)}, backward ${fmt(tBwd, 2)}, AdamW ${fmt(tOpt, 2)}`);
console.log(`\n| GEMM | shape | CPU ms (best of 3 means) | GMAC/s |\n|---|---|---|---|\n${gemmRows.join("\n")}`);
console.log(`GEMM work per step: ${(macs / 1e6).toFixed(0)} M multiply-adds (the GMAC/s column divides it by the whole step time)`);
const tw = results[1]!.ms;
console.log(`target <= 60 ms/step (wall p50, single thread): ${tOurs <= 60 ? "met" : "NOT met"} (${fmt(tOurs)} ms, min ${fmt(minOurs)} ms; CPU ${fmt(cOurs)} ms incl. GC/JIT threads); ` +
  `>= 2x faster than tfjs-wasm: ${tw / tOurs >= 2 ? "met" : "NOT met"} (${fmt(tw / tOurs, 2)}x wall, ${fmt(results[1]!.cpu / cOurs, 2)}x CPU). ` +
  `Judge wall times only when the load average above is below ~2.`);
