// Reproduce "Grokking at the Edge of Numerical Stability" (Prieto et al., ICLR 2025) on a CPU, in minutes:
//   baseline   AdamW + float32 softmax cross-entropy: memorizes, logits grow until Softmax Collapse (SC), stalls
//   perp       ⊥AdamW (gradient orthogonal to the weights): generalizes fast without weight decay
//   stablemax  AdamW + StableMax cross-entropy in f64: no SC, groks without weight decay (slowly; opt-in)
// Usage: npx numedge grok [--paper] [--arms baseline,perp,stablemax] [--p 113] ... (--help lists all; in a checkout:
// npm run grok -- [flags]). Writes the run folder (RunFolder: config.json ... summary.json) to --out or runs/grok-<time>.
import {
  GROK_ARMS, GrokRun, RunFolder, backendInfo, backendNames, formatTable, orExit, parseFlags, progress, setBackend, setThreads, svgPlot,
  type ArmName, type BackendChoice, type GrokConfig,
} from "numedge";

const ARMS: ArmName[] = ["baseline", "perp", "stablemax"];
const WHAT: Record<ArmName, string> = { baseline: "AdamW, f32 softmax CE", perp: "⊥AdamW, f32 softmax CE", stablemax: "AdamW, f64 StableMax CE" };
const flags = parseFlags(process.argv.slice(2), {
  arms: { type: "list", default: ["baseline", "perp"], choices: ARMS, help: "arms to run, comma-separated" },
  paper: { type: "bool", default: false, help: "the paper's exact settings (p 113, 40% train, 2x200, lr 0.01)" },
  p: { type: "int", min: 2, max: 2000, help: "modulus (default 47, stablemax 59; 113 with --paper)" },
  op: { type: "string", default: "add", choices: ["add", "sub", "mul"], help: "(a op b) mod p" },
  frac: { type: "number", exclusiveMin: 0, exclusiveMax: 1, help: "train share of the p^2 pairs (default 0.6, stablemax 0.8; 0.4 with --paper)" },
  hidden: { type: "list", help: "hidden widths (default 128,128; 200,200 with --paper)" },
  steps: { type: "int", min: 1, help: "full-batch steps per arm (default 4000 / 300 / 6000; --paper 3000 / 300 / 80000)" },
  lr: { type: "number", exclusiveMin: 0, help: "AdamW learning rate (default 0.01)" },
  beta2: { type: "number", min: 0, exclusiveMax: 1, help: "AdamW beta2 (default per arm: 0.99 baseline, 0.999 others)" },
  wd: { type: "number", default: 0, min: 0, help: "decoupled weight decay (the paper's arms use none)" },
  seed: { type: "int", default: 0, help: "data split and init seed" },
  threads: { type: "int", min: 1, max: 256, help: "threads the wasm kernels split over (default NUMEDGE_THREADS, else every core); same bits on any count" },
  "log-every": { type: "int", min: 1, help: "log (and measure test accuracy) every N steps (default: ~300 rows per arm)" },
  backend: { type: "string", choices: backendNames(), help: "numedge backend (or NUMEDGE_BACKEND)" },
  out: { type: "string", help: "output directory (default runs/grok-<timestamp>)" },
}, "usage: numedge grok [flags]  (grokking at the edge of numerical stability, on numedge's kernels)");
const hidden = flags.hidden?.map((h) => Number(h));
if (hidden?.some((h) => !Number.isInteger(h) || h < 1)) {
  process.stderr.write(`error: --hidden must be positive integers separated by commas, got "${flags.hidden!.join(",")}"\n`);
  process.exit(2);
}
if (flags.backend) await orExit(() => setBackend(flags.backend as BackendChoice));
if (flags.threads) setThreads(flags.threads as number);
const threads = backendInfo().threads;

// The paper's settings (from its public code), and our defaults: scaled down so that both default arms finish in
// under 3 minutes on 2 CPU cores and still show SC passing 50% (baseline) and ⊥AdamW reaching 99% test (perp).
type Setting = { p: number; frac: number; hidden: number[]; lr: number; steps: number; beta2?: number };
const PAPER: Record<ArmName, Setting> = {
  baseline: { p: 113, frac: 0.4, hidden: [200, 200], lr: 0.01, steps: 3000 },
  perp: { p: 113, frac: 0.4, hidden: [200, 200], lr: 0.01, steps: 300 },
  stablemax: { p: 113, frac: 0.4, hidden: [200, 200], lr: 0.01, steps: 80000 },
};
const SCALED: Record<ArmName, Setting> = {
  baseline: { p: 47, frac: 0.6, hidden: [128, 128], lr: 0.01, steps: 4000 },
  perp: { p: 47, frac: 0.6, hidden: [128, 128], lr: 0.01, steps: 300 },
  stablemax: { p: 59, frac: 0.8, hidden: [128, 128], lr: 0.01, steps: 6000 },
};

const arms = flags.arms as ArmName[];
const configs = {} as Record<ArmName, GrokConfig & { steps: number; logEvery: number }>;
for (const arm of arms) {
  const s = (flags.paper ? PAPER : SCALED)[arm];
  const steps = flags.steps ?? s.steps;
  configs[arm] = {
    ...GROK_ARMS[arm],
    p: flags.p ?? s.p, op: flags.op as GrokConfig["op"], frac: flags.frac ?? s.frac, hidden: hidden ?? s.hidden, seed: flags.seed,
    lr: flags.lr ?? s.lr, beta2: flags.beta2 ?? s.beta2 ?? GROK_ARMS[arm].beta2, weightDecay: flags.wd,
    steps, logEvery: flags["log-every"] ?? Math.max(1, Math.round(steps / 300)),
  };
}

// Every arm's run is built (data, model, optimizer) and the output folder checked before anything is written: an
// impossible configuration exits 2 with one line.
const runs = await orExit(() => Object.fromEntries(arms.map((a) => [a, new GrokRun(configs[a])])) as Record<ArmName, GrokRun>);
const folder = await orExit(() => new RunFolder("grok", flags.out));
const scaledDown = arms.some((a) => configs[a].p < 113 || configs[a].hidden.some((h) => h < 200));
const task = (c: GrokConfig) => `p=${c.p} ${c.op}, ${Math.round(c.frac * 100)}% train, MLP ${c.hidden.join("x")}`;
console.log(`numedge grok on ${backendInfo().engine}: ${arms.map((a) => `${a} (${task(configs[a])}, lr ${configs[a].lr}, ${configs[a].steps} steps)`).join("; ")}${threads > 1 ? ` [${threads} threads]` : ""}`);
if (scaledDown) console.log("note: scaled down from the paper's p=113, 40% train, 2x200 to fit minutes on a CPU; --paper runs the paper's settings");

const config = { command: `numedge grok ${process.argv.slice(2).join(" ")}`.trim(), paper: flags.paper, scaledDown, threads, backend: backendInfo(), arms: configs };
folder.start(config);

type Row = Record<string, number | string | null>;
const log: Row[] = [];
const summary: Record<string, { steps: number; seconds: number; finalTrainAcc: number; finalTestAcc: number; stepTo99Test: number | null; maxScFraction: number; finalWeightNorm: number; maxLogit: number }> = {};
const finalNlm: Record<string, number[]> = {};
const pct = (v: number) => `${(100 * v).toFixed(1)}%`;

for (const arm of arms) {
  const c = configs[arm];
  const run = runs[arm];
  const bar = progress(arm.padEnd(9), c.steps);
  const t0 = performance.now();
  let stepTo99: number | null = null, testAcc = 0, label = "";
  for (let t = 0; t <= c.steps; t++) {
    const last = t === c.steps, logNow = last || t % c.logEvery === 0;
    if (logNow) testAcc = run.testAccuracy(); // the weights after t updates...
    const s = run.train(!last, logNow); // ...measured on the train set (read back only when logging), then one update
    if (s) {
      if (stepTo99 === null && testAcc >= 0.99) stepTo99 = t;
      const nlm = Object.fromEntries(s.nlmCos.map((v, l) => [`nlm_cos_${l + 1}`, v]));
      log.push({ arm, step: t, loss: s.loss, train_acc: s.trainAcc, test_acc: testAcc, sc_fraction: s.scFraction, zero_loss_fraction: s.zeroLossFraction, max_logit: s.maxLogit, weight_norm: s.weightNorm, ...nlm });
      label = `train ${pct(s.trainAcc)} test ${pct(testAcc)} SC ${s.scFraction.toFixed(2)} |z| ${s.maxLogit.toFixed(0)}`;
    }
    if (last && s) {
      const max = run.maxima(); // over every step, kept on the backend
      summary[arm] = { steps: c.steps, seconds: (performance.now() - t0) / 1000, finalTrainAcc: s.trainAcc, finalTestAcc: testAcc, stepTo99Test: stepTo99, maxScFraction: max.scFraction, finalWeightNorm: s.weightNorm, maxLogit: max.maxLogit };
      finalNlm[arm] = s.nlmCos;
      bar.done(`train ${pct(s.trainAcc)} test ${pct(testAcc)} SC ${s.scFraction.toFixed(2)}`);
    } else bar.tick(1, label);
  }
}

// The end table: one row per arm.
const head = ["arm", "steps", "train", "test", "step->99% test", "max SC", "|W|", "max |logit|", "NLM cos per layer", "seconds"];
const rows = arms.map((a) => {
  const s = summary[a]!;
  return [a, String(s.steps), pct(s.finalTrainAcc), pct(s.finalTestAcc), s.stepTo99Test === null ? "never" : String(s.stepTo99Test),
    s.maxScFraction.toFixed(3), s.finalWeightNorm.toFixed(1), s.maxLogit.toPrecision(3), finalNlm[a]!.map((v) => v.toFixed(2)).join(" "), s.seconds.toFixed(1)];
});
const table = formatTable(head, rows);
console.log(`\n${table}\n`);

const series = (arm: string, key: string) => {
  const r = log.filter((row) => row.arm === arm);
  return { x: r.map((row) => row.step as number), y: r.map((row) => row[key] as number) };
};
const shared = arms.length > 1 && new Set(arms.map((a) => task(configs[a]))).size === 1; // one task: say it once, in the title
const plot = svgPlot(arms.map((a) => ({
  title: `${a}: ${WHAT[a]}${shared ? "" : ` (${task(configs[a])})`}`, xLabel: "step", yMin: 0, yMax: 1,
  series: [
    { name: "train acc", ...series(a, "train_acc") },
    { name: "test acc", ...series(a, "test_acc") },
    { name: "SC fraction", ...series(a, "sc_fraction"), dash: true },
  ],
})), { title: `Grokking at the edge of numerical stability${shared ? `: ${task(configs[arms[0]!])}` : ""}`, cols: Math.min(arms.length, 3), width: arms.length === 1 ? 600 : 480 });
folder.finish({ log, table, plot, summary: { config, arms: summary } });
