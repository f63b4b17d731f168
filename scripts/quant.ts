// 8-bit optimizer states, the point of Dettmers et al. (2022, "8-bit Optimizers via Block-wise Quantization"):
// Adam whose moments are stored in 8 bits trains like 32-bit Adam when the states are quantized block-wise with
// the *dynamic* code, while a *linear* code with one scale per tensor loses the small second moments (they round
// to 0, and m / (sqrt(0) + eps) blows up). One seeded MLP classifier on one seeded dataset is trained three times:
//   adam32        Adam with float32 moments
//   adam8-dyn-bw  Adam8bit: m and v in 8 bits, signed / unsigned dynamic code, absmax per block of 256
//   adam8-lin-pt  the same update with 8-bit linear codes and one absmax per tensor
// Input features have very different scales (as raw, unnormalized features do), so gradient magnitudes spread
// over orders of magnitude within each weight tensor. Also printed: the quantization error of linear vs dynamic
// codes, per tensor vs block-wise, on randn and on a heavy-tailed tensor, and each optimizer's state bytes.
// Run: npx numedge quant [--steps 800 --lr 0.002] (in a checkout: npm run quant -- [flags]). Writes the run folder
// (RunFolder: config.json ... summary.json) to --out or runs/quant-<time>.
import {
  Adam8bit, Rng, RunFolder, backendInfo, backendNames, crossEntropy, dequantizeBlockwise, formatTable, matmul, orExit, parseFlags,
  progress, quantizeBlockwise, relu, reluBackward, setBackend, svgPlot,
} from "numedge";

const cfg = parseFlags(process.argv.slice(2), {
  steps: { type: "int", default: 800, min: 1, help: "training steps per optimizer" },
  batch: { type: "int", default: 128, min: 8, help: "examples per step" },
  dim: { type: "int", default: 64, min: 2, help: "input features" },
  hidden: { type: "int", default: 256, min: 8, help: "hidden width (two hidden layers)" },
  classes: { type: "int", default: 10, min: 2, help: "classes" },
  train: { type: "int", default: 16384, min: 64, help: "training examples" },
  test: { type: "int", default: 2048, min: 64, help: "test examples" },
  featureSpread: { type: "number", default: 1.0, min: 0, help: "feature scales are exp(spread * N(0,1))" },
  lr: { type: "number", default: 0.002, exclusiveMin: 0, help: "Adam learning rate (all three)" },
  evalEvery: { type: "int", default: 25, min: 1, help: "steps between test evaluations" },
  seed: { type: "int", default: 0, min: 0, help: "seed for data, initialisation and batches" },
  backend: { type: "string", choices: backendNames(), help: "numedge backend (or NUMEDGE_BACKEND)" },
  out: { type: "string", help: "output directory (default runs/quant-<timestamp>)" },
}, "usage: numedge quant [flags]  (Adam with 32-bit vs 8-bit states)");
if (cfg.backend) await orExit(() => setBackend(cfg.backend!));
const folder = await orExit(() => new RunFolder("quant", cfg.out));
const { dim: D, hidden: H, classes: C, batch: B } = cfg;

// ---- Data: a random teacher MLP labels Gaussian inputs; the model sees them with per-feature scales. ----
const rng = new Rng(cfg.seed);
const randn = (n: number, s = 1) => Float32Array.from({ length: n }, () => rng.normal() * s);
const featureScale = Float32Array.from({ length: D }, () => Math.exp(cfg.featureSpread * rng.normal()));
const teacher1 = randn(D * 64, 1 / Math.sqrt(D)), teacher2 = randn(64 * C, 1 / Math.sqrt(64));

function dataset(n: number) {
  const z = randn(n * D);
  const logits = matmul(relu(matmul(z, teacher1, { m: n, k: D, n: 64 })), teacher2, { m: n, k: 64, n: C });
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let c = 1; c < C; c++) if (logits[i * C + c]! > logits[i * C + best]!) best = c;
    y[i] = best;
  }
  const x = z.map((v, i) => v * featureScale[i % D]!);
  return { x, y, n };
}
const trainSet = dataset(cfg.train), testSet = dataset(cfg.test);

// ---- Model: x -> relu(x W1) -> relu(. W2) -> . W3 -> softmax cross-entropy (no biases). ----
type Params = [Float32Array, Float32Array, Float32Array];
function initParams(): Params {
  const r = new Rng(cfg.seed + 1);
  const he = (fanIn: number, n: number) => Float32Array.from({ length: n }, () => r.normal() * Math.sqrt(2 / fanIn));
  return [he(D, D * H), he(H, H * H), he(H, H * C)];
}

function forward(p: Params, x: Float32Array, m: number) {
  const h1 = relu(matmul(x, p[0], { m, k: D, n: H }));
  const h2 = relu(matmul(h1, p[1], { m, k: H, n: H }));
  return { h1, h2, logits: matmul(h2, p[2], { m, k: H, n: C }) };
}

/** Mean loss and dL/dW for one batch (backprop through the three matmuls and two ReLUs). */
function lossAndGrads(p: Params, x: Float32Array, y: Int32Array, m: number) {
  const { h1, h2, logits } = forward(p, x, m);
  const ce = crossEntropy(logits, y, { cols: C });
  const dz = ce.grad!;
  const g3 = matmul(h2, dz, { m: H, k: m, n: C, transA: true });
  const dh2 = reluBackward(matmul(dz, p[2], { m, k: C, n: H, transB: true }), h2);
  const g2 = matmul(h1, dh2, { m: H, k: m, n: H, transA: true });
  const dh1 = reluBackward(matmul(dh2, p[1], { m, k: H, n: H, transB: true }), h1);
  const g1 = matmul(x, dh1, { m: D, k: m, n: H, transA: true });
  return { loss: ce.loss, grads: [g1, g2, g3] as Params };
}

function evaluate(p: Params) {
  const { logits } = forward(p, testSet.x, testSet.n);
  let correct = 0;
  for (let i = 0; i < testSet.n; i++) {
    let best = 0;
    for (let c = 1; c < C; c++) if (logits[i * C + c]! > logits[i * C + best]!) best = c;
    correct += best === testSet.y[i] ? 1 : 0;
  }
  return { acc: correct / testSet.n, loss: crossEntropy(logits, testSet.y, { cols: C, grad: false }).loss };
}

// ---- The three optimizers: same update rule (bitsandbytes' Adam), different state storage. ----
const VARIANTS = {
  "adam32": { minSize8bit: Infinity },
  "adam8-dyn-bw": { code: "dynamic", blockSize: 256 },
  "adam8-lin-pt": { code: "linear", blockSize: "tensor" },
} as const;
type Variant = keyof typeof VARIANTS;

function train(name: Variant) {
  const p = initParams();
  const opt = new Adam8bit(p, { lr: cfg.lr, ...VARIANTS[name] });
  const batches = new Rng(cfg.seed + 2); // same batches for every optimizer
  const xb = new Float32Array(B * D), yb = new Int32Array(B);
  const log = { loss: [] as number[], evalStep: [] as number[], testAcc: [] as number[], testLoss: [] as number[], stateBytes: opt.stateBytes(), seconds: 0 };
  const bar = progress(name.padEnd(12), cfg.steps);
  const t0 = performance.now();
  for (let step = 1; step <= cfg.steps; step++) {
    for (let b = 0; b < B; b++) {
      const i = batches.int(trainSet.n);
      xb.set(trainSet.x.subarray(i * D, i * D + D), b * D);
      yb[b] = trainSet.y[i]!;
    }
    const { loss, grads } = lossAndGrads(p, xb, yb, B);
    log.loss.push(loss);
    if (Number.isFinite(loss)) opt.step(grads);
    if (step % cfg.evalEvery === 0 || step === cfg.steps) {
      const e = evaluate(p);
      log.evalStep.push(step);
      log.testAcc.push(e.acc);
      log.testLoss.push(e.loss);
    }
    bar.tick(1, `loss ${loss.toFixed(4)}`);
  }
  bar.done();
  log.seconds = (performance.now() - t0) / 1000;
  return log;
}

const config = { ...cfg, backend: backendInfo() };
folder.start(config);
const runs = Object.fromEntries((Object.keys(VARIANTS) as Variant[]).map((v) => [v, train(v)])) as Record<Variant, ReturnType<typeof train>>;

// ---- Results: final metrics, state bytes ----
const tail = (a: number[], k = 50) => a.slice(-k).reduce((s, v) => s + v, 0) / Math.min(k, a.length);
const maxLoss = (a: number[]) => a.reduce((m, v) => (Number.isFinite(v) ? Math.max(m, v) : Infinity), 0);
const num = (v: number, digits: number) => (Math.abs(v) >= 1e4 ? v.toExponential(2) : v.toFixed(digits)); // a blown-up loss stays narrow
const results = Object.fromEntries(Object.entries(runs).map(([name, l]) => [name, {
  trainLossLast50: tail(l.loss), maxBatchLoss: maxLoss(l.loss), testLoss: l.testLoss.at(-1)!, testAcc: l.testAcc.at(-1)!, stateBytes: l.stateBytes, seconds: l.seconds,
}]));
const optText = formatTable(["optimizer", "train loss (last 50)", "max batch loss", "test loss", "test acc", "state bytes", "s"],
  Object.entries(results).map(([name, r]) => [name, num(r.trainLossLast50, 4), num(r.maxBatchLoss, 3), num(r.testLoss, 4), `${(100 * r.testAcc).toFixed(1)}%`,
    String(r.stateBytes), r.seconds.toFixed(1)]), [false, true, true, true, true, true, true]);

// ---- Quantization error of the codes themselves: linear vs dynamic x per tensor vs block-wise ----
const N = 1 << 20;
const tensors = {
  randn: randn(N),
  "heavy-tailed": Float32Array.from({ length: N }, () => rng.normal() * Math.exp(1.5 * rng.normal())), // log-normal scale mixture
};
const errTable: Array<{ tensor: string; code: string; blocks: string; absErr: number; relErr: number }> = [];
for (const [tname, x] of Object.entries(tensors)) {
  for (const code of ["linear", "dynamic"] as const) {
    for (const blockSize of ["tensor", 256] as const) {
      const y = dequantizeBlockwise(quantizeBlockwise(x, { code, blockSize }));
      let abs = 0, rel = 0;
      for (let i = 0; i < N; i++) {
        const d = Math.abs(x[i]! - y[i]!);
        abs += d;
        rel += d / (Math.abs(x[i]!) + 1e-8);
      }
      errTable.push({ tensor: tname, code, blocks: blockSize === "tensor" ? "per tensor" : "block 256", absErr: abs / N, relErr: rel / N });
    }
  }
}
const errText = formatTable(["tensor", "code", "scales", "mean abs err", "mean rel err"],
  errTable.map((r) => [r.tensor, r.code, r.blocks, r.absErr.toExponential(3), r.relErr.toExponential(3)]), [false, false, false, true, true]);
const table = `${optText}\n\n${errText}`;
console.log(`\n${table}`);

// ---- Plot and log ----
// adam8-dyn-bw trains like adam32, so their curves overlap: it is drawn wide and first, adam32 dashed on top of it.
const smooth = (a: number[], k = 20) => a.map((_, i) => { const s = a.slice(Math.max(0, i - k + 1), i + 1).filter(Number.isFinite); return s.length ? s.reduce((u, v) => u + v, 0) / s.length : NaN; });
const steps = Array.from({ length: cfg.steps }, (_, i) => i + 1);
const STYLE: Record<Variant, { width?: number; dash?: boolean }> = { "adam8-lin-pt": {}, "adam8-dyn-bw": { width: 3.5 }, adam32: { dash: true } };
const series = (names: Variant[], pick: (l: (typeof runs)[Variant]) => { x: number[]; y: number[] }) => names.map((name) => ({ name, ...STYLE[name], ...pick(runs[name]) }));
const ALL: Variant[] = ["adam8-lin-pt", "adam8-dyn-bw", "adam32"];
const plot = svgPlot([
  { title: "training loss (20-step mean)", xLabel: "step", logY: true, series: series(ALL, (l) => ({ x: steps, y: smooth(l.loss) })) },
  { title: "test accuracy", xLabel: "step", yMin: 0, yMax: 1, series: series(ALL, (l) => ({ x: l.evalStep, y: l.testAcc })) },
  { title: "test loss", xLabel: "step", logY: true, series: series(ALL, (l) => ({ x: l.evalStep, y: l.testLoss })) },
  { title: "zoom: 32-bit vs 8-bit dynamic block-wise", xLabel: "step", yLabel: "training loss (20-step mean)",
    series: series(["adam8-dyn-bw", "adam32"], (l) => ({ x: steps, y: smooth(l.loss) })) },
], { title: `Adam state precision: MLP ${D}-${H}-${H}-${C}, ${cfg.steps} steps, lr ${cfg.lr}, seed ${cfg.seed}`, cols: 2, width: 500 });
const evalAt = (l: (typeof runs)[Variant], step: number) => l.evalStep.indexOf(step);
const log = (Object.keys(VARIANTS) as Variant[]).flatMap((optimizer) => runs[optimizer].loss.map((loss, i) => {
  const e = evalAt(runs[optimizer], i + 1);
  return { optimizer, step: i + 1, loss, test_acc: e < 0 ? null : runs[optimizer].testAcc[e], test_loss: e < 0 ? null : runs[optimizer].testLoss[e] };
}));
folder.finish({ log, table, plot, summary: { config, optimizers: results, quantError: errTable } });
