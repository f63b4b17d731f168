// Load balancing in a toy mixture of experts, three ways: none, the Switch/Mixtral auxiliary loss, and
// DeepSeek-V3's aux-loss-free bias updates. Linear experts and a linear router are trained with AdamW on a
// synthetic regression task whose inputs all lean towards the same two experts at initialisation, so without
// balancing the early winners keep most of the tokens. Run: npx numedge moe [--steps 600 --alpha 0.05] (in a checkout:
// npm run moe -- [flags]). Writes the run folder (RunFolder: config.json ... summary.json) to --out or runs/moe-<time>.
import {
  AdamW, Rng, RunFolder, backendInfo, backendNames, combine, formatTable, matmul, orExit, parseFlags, progress, route, setBackend,
  svgPlot, updateBias,
} from "numedge";

const cfg = parseFlags(process.argv.slice(2), {
  steps: { type: "int", default: 400, min: 1, help: "training steps per method" },
  experts: { type: "int", default: 8, min: 2, max: 64, help: "number of experts E" },
  k: { type: "int", default: 2, min: 1, max: 8, help: "experts per token" },
  batch: { type: "int", default: 512, min: 8, help: "tokens per step" },
  dim: { type: "int", default: 16, min: 2, help: "input width" },
  outputs: { type: "int", default: 4, min: 1, help: "output width" },
  lr: { type: "number", default: 0.01, exclusiveMin: 0, help: "AdamW learning rate" },
  alpha: { type: "number", default: 0.05, min: 0, help: "aux loss weight (method aux)" },
  biasRate: { type: "number", default: 0.005, min: 0, help: "bias update rate (method bias)" },
  seed: { type: "int", default: 0, min: 0, help: "seed for data and initialisation" },
  methods: { type: "list", default: ["none", "aux", "bias"], choices: ["none", "aux", "bias"], help: "methods to compare" },
  backend: { type: "string", choices: backendNames(), help: "numedge backend (or NUMEDGE_BACKEND)" },
  out: { type: "string", help: "output directory (default runs/moe-<timestamp>)" },
}, "usage: numedge moe [flags]  (MoE load balancing: none, aux loss, bias updates)");
if (cfg.backend) await orExit(() => setBackend(cfg.backend!));
const { steps, experts: E, k, batch: B, dim: D, outputs: O } = cfg;
if (k > E) { console.error(`error: --k must be <= --experts (${E}), got ${k}`); process.exit(2); }
const folder = await orExit(() => new RunFolder("moe", cfg.out));

// ---- The task: E clusters with Zipf frequencies, each with its own linear map. Every input also carries a
// shared offset m, and the router starts aligned with m for experts 0 and 1: all tokens favour them at first.
const rng = new Rng(cfg.seed);
const randn = (n: number, s = 1) => Float32Array.from({ length: n }, () => rng.normal() * s);
const m = randn(D, 2 / Math.sqrt(D));
const centres = Array.from({ length: E }, () => randn(D, 1));
const maps = Array.from({ length: E }, () => randn(D * O, 1 / Math.sqrt(D))); // [D, O] per cluster
const freq = Array.from({ length: E }, (_, j) => 1 / (j + 1));
const cum = freq.map((_, j) => freq.slice(0, j + 1).reduce((a, b) => a + b) / freq.reduce((a, b) => a + b));

function batchOf(r: Rng) {
  const x = new Float32Array(B * D), y = new Float32Array(B * O);
  for (let t = 0; t < B; t++) {
    const u = r.next(), c = cum.findIndex((v) => u < v);
    for (let d = 0; d < D; d++) x[t * D + d] = m[d]! + centres[c]![d]! + 0.3 * r.normal();
    y.set(matmul(x.subarray(t * D, t * D + D), maps[c]!, { m: 1, k: D, n: O }), t * O);
  }
  return { x, y };
}

function initModel() {
  const r = new Rng(cfg.seed + 1);
  const router = Float32Array.from({ length: D * E }, () => r.normal() * 0.1); // [D, E]
  for (let d = 0; d < D; d++) { router[d * E] += m[d]!; router[d * E + 1] += 0.8 * m[d]!; }
  const w = Array.from({ length: E }, () => Float32Array.from({ length: D * O }, () => r.normal() / Math.sqrt(D)));
  return { router, w };
}

// ---- One method: forward (router -> route -> experts on their dispatched rows -> combine), backward, AdamW.
function train(method: "none" | "aux" | "bias") {
  const { router, w } = initModel();
  const bias = new Float32Array(E);
  const opt = new AdamW({ lr: cfg.lr });
  const data = new Rng(cfg.seed + 2);
  const log = { maxLoad: [] as number[], loss: [] as number[], aux: [] as number[], load: new Float64Array(E) };
  const bar = progress(method.padEnd(4), steps);
  for (let step = 0; step < steps; step++) {
    const { x, y } = batchOf(data);
    const logits = matmul(x, router, { m: B, k: D, n: E });
    const r = route(logits, { experts: E, k, normalize: true, bias: method === "bias" ? bias : undefined, grad: method === "aux" });
    // Experts run on their contiguous rows of the dispatched batch: rows offsets[e]..offsets[e+1].
    const kept = r.offsets[E]!, xd = new Float32Array(kept * D), eo = new Float32Array(kept * O);
    for (let p = 0; p < kept; p++) xd.set(x.subarray(((r.order[p]! / k) | 0) * D, (((r.order[p]! / k) | 0) + 1) * D), p * D);
    for (let e = 0; e < E; e++) {
      const a = r.offsets[e]!, n = r.offsets[e + 1]! - a;
      if (n > 0) matmul(xd.subarray(a * D, (a + n) * D), w[e]!, { m: n, k: D, n: O, out: eo.subarray(a * O, (a + n) * O) });
    }
    const yhat = combine(eo, r, { hidden: O });
    let loss = 0;
    const dy = new Float32Array(B * O);
    for (let i = 0; i < dy.length; i++) { const d = yhat[i]! - y[i]!; loss += (0.5 * d * d) / B; dy[i] = d / B; }
    // Backward. Expert p's row got weight w_a: dW_e = xd^T (w_a dy_t); the router sees g_a = dy_t . eo_p.
    const g = new Float32Array(B * k), dyd = new Float32Array(kept * O);
    for (let p = 0; p < kept; p++) {
      const a = r.order[p]!, t = (a / k) | 0;
      for (let o = 0; o < O; o++) { g[a] += dy[t * O + o]! * eo[p * O + o]!; dyd[p * O + o] = r.weights[a]! * dy[t * O + o]!; }
    }
    const dw = w.map((_, e) => {
      const a = r.offsets[e]!, n = r.offsets[e + 1]! - a;
      return n > 0 ? matmul(xd.subarray(a * D, (a + n) * D), dyd.subarray(a * O, (a + n) * O), { m: D, k: n, n: O, transA: true }) : new Float32Array(D * O);
    });
    // Normalized top-k weights are a softmax over the selected logits: dz_i = w_i (g_i - sum_j w_j g_j).
    const dz = method === "aux" ? r.auxGrad!.map((v) => v * cfg.alpha) : new Float32Array(B * E);
    for (let t = 0; t < B; t++) {
      let wg = 0;
      for (let j = 0; j < k; j++) wg += r.weights[t * k + j]! * g[t * k + j]!;
      for (let j = 0; j < k; j++) if (r.experts[t * k + j]! >= 0) dz[t * E + r.experts[t * k + j]!] += r.weights[t * k + j]! * (g[t * k + j]! - wg);
    }
    opt.step([router, ...w], [matmul(x, dz, { m: D, k: B, n: E, transA: true }), ...dw]);
    if (method === "bias") updateBias(bias, r.counts, cfg.biasRate);
    const maxLoad = Math.max(...r.counts) / ((B * k) / E);
    log.maxLoad.push(maxLoad);
    log.loss.push(loss);
    log.aux.push(r.auxLoss);
    if (step >= steps - 50) r.counts.forEach((c, e) => (log.load[e] += c / (B * k) / Math.min(50, steps)));
    bar.tick(1, `loss ${loss.toFixed(4)} max/mean load ${maxLoad.toFixed(2)}`);
  }
  bar.done();
  return log;
}

const config = { ...cfg, backend: backendInfo() };
folder.start(config);
const runs = Object.fromEntries(cfg.methods.map((mth) => [mth, train(mth as "none" | "aux" | "bias")]));
const xs = Array.from({ length: steps }, (_, i) => i + 1);
const tail = (a: number[]) => a.slice(-50).reduce((s, v) => s + v, 0) / Math.min(50, a.length);
const sortedLoad = (l: (typeof runs)[string]) => Array.from(l.load).sort((a, b) => b - a).map((v) => v * E); // x uniform
const table = formatTable(["method", "max/mean load (last 50)", "task loss (last 50)", "final load per expert (sorted, x uniform)"],
  Object.entries(runs).map(([mth, l]) => [mth, tail(l.maxLoad).toFixed(2), tail(l.loss).toFixed(5), sortedLoad(l).map((v) => v.toFixed(2)).join(" ")]),
  [false, true, true, false]);
console.log(`\n${table}`);
const series = (pick: (l: (typeof runs)[string]) => ArrayLike<number>, x: ArrayLike<number> = xs) =>
  Object.entries(runs).map(([name, l]) => ({ name, x, y: pick(l) }));
const plot = svgPlot([
  { title: "max / mean expert load", xLabel: "step", yLabel: "max load / uniform", yMin: 1, series: series((l) => l.maxLoad) },
  { title: "task loss (MSE)", xLabel: "step", logY: true, series: series((l) => l.loss) },
  { title: "final load per expert, sorted (last 50 steps)", xLabel: "expert rank", yLabel: "load / uniform",
    yMin: 0, series: series(sortedLoad, Array.from({ length: E }, (_, i) => i + 1)) },
], { title: `toy MoE: E=${E}, k=${k}, ${steps} steps, seed ${cfg.seed}`, cols: 3 });
const log = Object.entries(runs).flatMap(([method, l]) => l.loss.map((loss, i) => ({ method, step: i + 1, loss, max_load: l.maxLoad[i], aux_loss: l.aux[i] })));
const summary = Object.fromEntries(Object.entries(runs).map(([mth, l]) => [mth, { maxLoadLast50: tail(l.maxLoad), lossLast50: tail(l.loss), loadSorted: sortedLoad(l) }]));
folder.finish({ log, table, plot, summary: { config, methods: summary } });
