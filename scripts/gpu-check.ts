// Run this first on a CUDA machine: what numedge found (the cuda backend, the tfjs engines, and why the others
// were not usable), then every op on the GPU against the wasm result (max error) and timed on both at a few sizes,
// with the size from which the GPU wins at every larger size measured. For a GPU backend (cuda, tfjs-gpu) those
// sizes are saved in numedge's cache folder, where setBackend("auto") finds them for this device (--no-save: not).
//
// Usage: npx numedge gpu-check [--engine cuda|tfjs-gpu|tfjs-node|tfjs-wasm|tfjs-cpu] [--sizes 1e3,1e5,1e6] [--reps 5] [--no-save]
// Without a usable engine it prints the reasons and exits 0 (nothing here needs a GPU to run).
import {
  NumedgeError, adamwStep, backendInfo, combine, formatTable, crossEntropy, dequantize4bit, dequantizeBlockwise, embeddingSum,
  logSoftmax, matmul, parseFlags, quantize4bit, quantizeBlockwise, relu, route, setBackend, softmax, stablemax, topk,
  saveThresholds, type BackendChoice,
} from "numedge";

const flags = parseFlags(process.argv.slice(2), {
  engine: { type: "string", default: "cuda", choices: ["cuda", "tfjs-gpu", "tfjs-node", "tfjs-wasm", "tfjs-cpu"], help: "backend to compare with wasm" },
  sizes: { type: "list", default: ["1e3", "1e4", "1e5", "1e6", "4e6"], help: "problem sizes in elements (gemm: m*k*n is about size^1.5)" },
  reps: { type: "int", default: 5, min: 1, max: 100, help: "timed repetitions per case (median reported)" },
  "no-save": { type: "bool", help: "do not save the measured thresholds for auto" },
}, "usage: numedge gpu-check [flags]  (the GPU backends numedge finds, and each op against wasm)");
const sizes = flags.sizes.map(Number);
if (sizes.some((s) => !Number.isFinite(s) || s < 16)) {
  process.stderr.write(`error: --sizes must be numbers >= 16, got "${flags.sizes.join(",")}"\n`);
  process.exit(2);
}

// 1. What was found.
console.log(`numedge gpu-check (${typeof Bun !== "undefined" ? `bun ${Bun.version}` : `node ${process.version}`}, ${process.platform}-${process.arch})`);
const cuda = await setBackend("cuda").catch((e: unknown) => e);
console.log(cuda instanceof NumedgeError ? `cuda: not usable: ${cuda.message}` : `cuda: usable (${backendInfo().engine}); on wasm through host copies: ${backendInfo().stagedOps?.join(", ") || "none"}`);
const tfjs = await setBackend("tfjs").catch((e: unknown) => e);
if (tfjs instanceof NumedgeError) console.log(`tfjs: none usable: ${tfjs.message}`);
else {
  const i = backendInfo();
  console.log(`tfjs: picks ${i.engine} (device ${i.device})`);
  for (const [c, why] of Object.entries(i.reasons)) console.log(`  ${c.padEnd(14)} ${why}`);
  if (i.fallbackOps?.length) console.log(`  on wasm kernels under tfjs: ${i.fallbackOps.join(", ")} (and every Float64Array call)`);
}
const gpu = await setBackend("tfjs-gpu").catch((e: unknown) => e);
console.log(gpu instanceof NumedgeError ? `tfjs-gpu: not usable: ${gpu.message}` : `tfjs-gpu: usable (${backendInfo().engine}, device ${backendInfo().device}); ` +
  `NVIDIA_TF32_OVERRIDE=${process.env.NVIDIA_TF32_OVERRIDE} (0: float32 GEMM, 1: TF32)`);
await setBackend("wasm");

const target = flags.engine as BackendChoice;
const got = await setBackend(target).catch((e: unknown) => e);
const thresholdKey = got instanceof NumedgeError ? undefined : backendInfo().thresholdKey;
if (got instanceof NumedgeError) {
  console.log(`\nno usable ${target} here, so no device comparison was run. To compare on a CPU tfjs engine: --engine tfjs-wasm`);
  process.exit(0);
}
await setBackend("wasm");

// 2. Each op on both backends: max abs error vs wasm, median times, crossover.
function rand(n: number, seed: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = ((s >>> 8) / 16777216 * 2 - 1) * scale;
  }
  return a;
}
type Out = ArrayLike<number>;
/** op: label; kernel: the Backend kernel it calls (the key setBackend("auto", { thresholds }) takes). */
interface Case { op: string; kernel: string; shape: string; run: () => Out }

function cases(size: number): Case[] {
  const cols = 1024, rows = Math.max(1, Math.round(size / cols)), n = rows * cols;
  const x = rand(n, 1, 8);
  const labels = Int32Array.from({ length: rows }, (_, i) => (i * 7) % cols);
  const d = Math.max(2, Math.round(Math.sqrt(size))); // gemm d x d x d: size^1.5 multiply-adds
  const a = rand(d * d, 2), b = rand(d * d, 3);
  const V = 256, per = 2, ecols = 256, erows = Math.max(1, Math.round(size / ecols));
  const w = rand(V * ecols, 4), idx = Int32Array.from({ length: erows * per }, (_, i) => (i * 37) % V);
  const pw = rand(n, 5), pg = rand(n, 6, 0.01);
  const q = quantizeBlockwise(x, { blockSize: 256 });
  const q4 = quantize4bit(x, { type: "nf4", blockSize: 64 });
  const H = 256, T = Math.max(1, Math.round(size / H)), E = 8;
  const r = route(rand(T * E, 7), { experts: E, k: 2, normalize: true });
  const eo = rand(r.offsets[E]! * H, 8);
  return [
    { op: "softmax", kernel: "softmax", shape: `${rows}x${cols}`, run: () => softmax(x, { cols }) },
    { op: "logSoftmax", kernel: "logSoftmax", shape: `${rows}x${cols}`, run: () => logSoftmax(x, { cols }) },
    { op: "stablemax", kernel: "stablemax", shape: `${rows}x${cols}`, run: () => stablemax(x, { cols }) },
    { op: "crossEntropy", kernel: "crossEntropy", shape: `${rows}x${cols}`, run: () => crossEntropy(x, labels, { cols }).grad! },
    { op: "topk k=8", kernel: "topk", shape: `${rows}x${cols}`, run: () => topk(x, { cols, k: 8 }).values },
    { op: "relu", kernel: "relu", shape: `${n}`, run: () => relu(x) },
    { op: "gemm", kernel: "gemm", shape: `${d}^3`, run: () => matmul(a, b, { m: d, k: d, n: d }) },
    { op: "embeddingSum", kernel: "embeddingSum", shape: `${erows}x${ecols}`, run: () => embeddingSum(w, idx, { cols: ecols, per }) },
    { op: "adamwStep", kernel: "adamw", shape: `${n}`, run: () => { const p = pw.slice(), m = new Float32Array(n), v = new Float32Array(n); adamwStep(p, pg, m, v, { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, step: 1 }); return p; } },
    { op: "quantizeBlockwise", kernel: "quantizeBlockwise", shape: `${n}`, run: () => quantizeBlockwise(x, { blockSize: 256 }).codes },
    { op: "dequantizeBlockwise", kernel: "dequantizeBlockwise", shape: `${n}`, run: () => dequantizeBlockwise(q) },
    { op: "dequantize4bit nf4", kernel: "dequantize4bit", shape: `${n}`, run: () => dequantize4bit(q4) },
    { op: "route k=2 of 8", kernel: "routeTokens", shape: `${T}x${E}`, run: () => route(rand(T * E, 9), { experts: E, k: 2, normalize: true }).weights },
    { op: "combine k=2", kernel: "combine", shape: `${T}x${H}`, run: () => combine(eo, r, { hidden: H }) },
  ];
}

function time(f: () => Out, reps: number): { ms: number; out: Out } {
  let out = f(); // warm-up (and the result)
  const t: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    out = f();
    t.push(performance.now() - t0);
  }
  t.sort((p, q) => p - q);
  return { ms: t[t.length >> 1]!, out };
}

function maxErr(p: Out, q: Out): number {
  let e = 0;
  for (let i = 0; i < p.length; i++) {
    const u = p[i]!, v = q[i]!;
    if (Number.isNaN(u) !== Number.isNaN(v)) return Infinity;
    if (u !== v && !Number.isNaN(u)) e = Math.max(e, Math.abs(u - v));
  }
  return p.length === q.length ? e : Infinity;
}

console.log(`\n${target} vs wasm, median of ${flags.reps} (ms); err = max |${target} - wasm|`);
const header = ["op", "shape", "wasm ms", `${target} ms`, "speedup", "max err"];
const rows: string[][] = [];
const wins = new Map<string, Array<[number, boolean]>>(); // kernel -> (size, GPU faster) per size measured
for (const size of sizes) {
  const cs = cases(size);
  for (const c of cs) {
    await setBackend("wasm");
    const w = time(c.run, flags.reps);
    await setBackend(target);
    let g: { ms: number; out: Out };
    try {
      g = time(c.run, flags.reps);
    } catch (e) {
      rows.push([c.op, c.shape, w.ms.toFixed(3), "failed", "", e instanceof Error ? e.message.split("\n")[0]! : String(e)]);
      continue;
    }
    const speedup = w.ms / g.ms;
    wins.set(c.kernel, [...(wins.get(c.kernel) ?? []), [c.kernel === "gemm" ? Math.round(Math.sqrt(size)) ** 3 : size, speedup > 1]]);
    rows.push([c.op, c.shape, w.ms.toFixed(3), g.ms.toFixed(3), `${speedup.toFixed(2)}x`, maxErr(g.out, w.out).toExponential(2)]);
  }
}
await setBackend("wasm");
console.log(formatTable(header, rows, header.map((_, j) => j >= 2)));

// The threshold of a kernel: the smallest size measured from which the GPU won at every larger size measured.
const crossover = new Map<string, number>();
for (const [k, w] of wins) {
  const sorted = w.sort((p, q) => p[0] - q[0]);
  let from: number | undefined;
  for (let i = sorted.length - 1; i >= 0 && sorted[i]![1]; i--) from = sorted[i]![0];
  if (from !== undefined) crossover.set(k, from);
}
console.log(`\nthresholds (smallest size measured from which ${target} beat wasm at every larger size; gemm counts m*k*n):`);
for (const k of wins.keys()) console.log(`  ${k.padEnd(20)} ${crossover.has(k) ? crossover.get(k)!.toExponential(1) : "none (wasm faster at the largest size measured)"}`);
const th = Object.fromEntries(crossover);
if (thresholdKey && !flags["no-save"]) {
  const file = saveThresholds(thresholdKey, { thresholds: th, measured: `${new Date().toISOString()} by gpu-check, sizes ${sizes.join(",")}` });
  console.log(`\nsaved for ${thresholdKey} in ${file}: setBackend("auto") now sends these ops to ${target} from those sizes` +
    `${Object.keys(th).length ? "" : " (none: every op stays on wasm)"}`);
} else if (Object.keys(th).length) console.log(`\nto route by these: await setBackend("auto", { thresholds: ${JSON.stringify(th)} })`);
