// Where the grokking step's GPU time goes, kernel by kernel: the cuda backend over a driver whose every launch (and
// cuBLAS call) is followed by a synchronize and timed, for the paper-size step (p=113, 2x200, 5107 rows) with each
// head. A timed call = launch + run + synchronize; "sync only" (an empty synchronize) is the floor to subtract.
// The step's real time (no synchronizes) is in bench/gpu.bench.ts. Where there is no GPU, NUMEDGE_LIBCUDA and
// NUMEDGE_CUBLAS naming the tests' fake driver (test/gpu/cpu-driver.ts) make a dry run of it: times meaningless there.
// Run: bun run bench/gpu-profile.ts [--steps N]
import { GROK_ARMS, GrokRun } from "numedge";
import { registerBackend, setBackend } from "../src/backends/index.ts";
import { createCudaBackend, realDeps, type CudaDeps } from "../src/backends/cuda.ts";
import type { Cublas, GemmCall } from "../src/backends/cuda/cublas.ts";
import type { Driver } from "../src/backends/cuda/driver.ts";
import { wasmBackend } from "../src/backends/wasm.ts";

const at = process.argv.indexOf("--steps"), steps = at < 0 ? 30 : Number(process.argv[at + 1]);
if (!(Number.isInteger(steps) && steps > 0)) throw new Error("--steps takes a positive integer");
const now = () => performance.now() * 1e3; // µs
const times = new Map<string, number[]>(); // name -> µs of each timed call
let on = false, driver: Driver | undefined;
const timed = <A extends unknown[], R>(name: string, sync: () => void, f: (...a: A) => R) => (...a: A): R => {
  if (!on) return f(...a);
  const t0 = now();
  const r = f(...a);
  sync();
  const t = times.get(name) ?? [];
  t.push(now() - t0);
  times.set(name, t);
  return r;
};

function profiled(base: CudaDeps): CudaDeps {
  return {
    async open() {
      const d = await base.open();
      if (typeof d === "string") return d;
      driver = d;
      const names = new Map<bigint, string>();
      const w: Driver = Object.create(d);
      w.module = (img) => { const get = d.module(img); return (n) => { const f = get(n); names.set(f, n); return f; }; };
      // memory calls too: a steady step should make none but cuMemsetD8 (a cuMemFree would wait for the device)
      for (const m of ["alloc", "free", "htod", "dtoh", "dtod", "zero"] as const) (w as unknown as Record<string, unknown>)[m] = (...a: unknown[]) => timed(`driver ${m}`, () => d.sync(), (d[m] as (...x: unknown[]) => unknown).bind(d))(...a);
      w.launch = (fn, grid, block, args, shared) => timed(`${names.get(fn)} grid ${JSON.stringify(grid)}x${JSON.stringify(block)}`, () => d.sync(), d.launch.bind(d))(fn, grid, block, args, shared);
      return w;
    },
    image: base.image,
    blas(d) {
      const b = base.blas(Object.getPrototypeOf(d) as Driver);
      if (typeof b === "string") return b;
      const g = (name: string, f: GemmCall): GemmCall => (opA, opB, m, n, k, ...rest) =>
        timed(`${name} ${opA ? "T" : "N"}${opB ? "T" : "N"} m=${m} n=${n} k=${k}`, () => d.sync(), f)(opA, opB, m, n, k, ...rest);
      return { ...b, sgemm: g("sgemm", b.sgemm), dgemm: g("dgemm", b.dgemm) } satisfies Cublas;
    },
  };
}

const made = await createCudaBackend(wasmBackend, profiled(realDeps), "cuda-profile");
if (typeof made === "string") { console.log(`skipped: no GPU (${made})`); process.exit(0); }
registerBackend("cuda-profile", async () => ({ backend: made.backend, info: { device: "gpu", ...made.info } }));
await setBackend("cuda-profile");
console.log(made.info.engine);

for (const [arm, head] of [["baseline", "f32 softmax"], ["perp", "f32 softmax, ⊥AdamW"], ["stablemax", "f64 StableMax"]] as const) {
  const run = new GrokRun({ ...GROK_ARMS[arm], p: 113, op: "add", frac: 0.4, hidden: [200, 200], seed: 0, lr: 0.01 });
  for (let t = 0; t < 3; t++) run.train(true, false);
  times.clear();
  on = true;
  const syncs: number[] = [];
  for (let t = 0; t < steps; t++) {
    run.train(true, false);
    const t0 = now();
    driver!.sync();
    syncs.push(now() - t0);
  }
  on = false;
  const med = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1]!;
  const rows = [...times].map(([name, t]) => ({ name, calls: t.length / steps, us: med(t) * (t.length / steps) }));
  rows.sort((a, b) => b.us - a.us);
  const total = rows.reduce((s, r) => s + r.us, 0), calls = rows.reduce((s, r) => s + r.calls, 0);
  console.log(`\ngrok step, ${head} (${steps} steps; median µs per step of launch + run + synchronize):`);
  console.log("| kernel / call | calls per step | µs per step |\n|---|---|---|");
  for (const r of rows) console.log(`| ${r.name} | ${r.calls} | ${r.us.toFixed(1)} |`);
  console.log(`| all timed calls | ${calls} | ${total.toFixed(1)} |`);
  console.log(`| sync only (floor per call) | 1 | ${med(syncs).toFixed(1)} |`);
}
