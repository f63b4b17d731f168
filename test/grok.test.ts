// scripts/grok.ts end to end, as a subprocess with a tmp --out: output files, summary.json shape, determinism,
// ⊥AdamW beating the baseline on test accuracy, and one-line errors for bad flags. GrokRun through the worker
// pool: the same bits on 1, 2 and 3 threads, and a clean exit.
import { describe, expect, spyOn, test } from "bun:test";
import { DeviceArray, GROK_ARMS, GrokRun, setBackend, setThreads, threads, type FloatArray, type GrokConfig, type StepStats, type Tensor } from "numedge";
import { getBackend } from "../src/backends/index.ts";
import { copyStats } from "../src/backends/wasm/runtime.ts";
import { cpuCudaUnavailable } from "./parity.ts"; // registers cuda-cpu-cublas
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const script = join(import.meta.dir, "..", "scripts", "grok.ts");
const grok = (args: string[]) => Bun.spawnSync([process.execPath, script, ...args], { cwd: join(import.meta.dir, ".."), stdout: "pipe", stderr: "pipe" });
const tiny = ["--p", "23", "--frac", "0.7", "--hidden", "64,64", "--steps", "150", "--log-every", "10"];

describe("scripts/grok.ts", () => {
  const dir = mkdtempSync(join(tmpdir(), "grok-"));
  const r = grok([...tiny, "--out", dir]);

  test("tiny run: exits 0 and writes the run folder: config, log, table, plot and summary", () => {
    expect(r.stderr.toString()).toContain("perp");
    expect(r.exitCode).toBe(0);
    for (const f of ["config.json", "log.csv", "table.txt", "plot.svg", "summary.json"]) expect(existsSync(join(dir, f))).toBe(true);
    expect(r.stdout.toString()).toContain("step->99% test");
  });

  test("summary.json has the documented shape", () => {
    const s = JSON.parse(readFileSync(join(dir, "summary.json"), "utf8"));
    expect(Object.keys(s).sort()).toEqual(["arms", "config"]);
    expect(Object.keys(s.arms)).toEqual(["baseline", "perp"]);
    for (const a of Object.values(s.arms) as Record<string, unknown>[]) {
      expect(Object.keys(a).sort()).toEqual(["finalTestAcc", "finalTrainAcc", "finalWeightNorm", "maxLogit", "maxScFraction", "seconds", "stepTo99Test", "steps"]);
      expect(a.steps).toBe(150);
      for (const k of ["seconds", "finalTrainAcc", "finalTestAcc", "maxScFraction", "finalWeightNorm", "maxLogit"]) expect(typeof a[k]).toBe("number");
      expect(a.stepTo99Test === null || typeof a.stepTo99Test === "number").toBe(true);
      expect(a.finalTestAcc as number).toBeGreaterThanOrEqual(0);
      expect(a.finalTestAcc as number).toBeLessThanOrEqual(1);
    }
    expect(s.config.arms.perp.ortho).toBe(true);
    expect(s.config.arms.baseline.beta2).toBe(0.99);
  });

  test("⊥AdamW beats the baseline on test accuracy; the baseline memorizes", () => {
    const s = JSON.parse(readFileSync(join(dir, "summary.json"), "utf8"));
    expect(s.arms.baseline.finalTrainAcc).toBe(1);
    expect(s.arms.perp.finalTestAcc).toBeGreaterThan(s.arms.baseline.finalTestAcc + 0.2);
  });

  test("log.csv: one row per logged step per arm; same seed and backend -> identical log", () => {
    const log = readFileSync(join(dir, "log.csv"), "utf8");
    const lines = log.trim().split("\n");
    expect(lines[0]!.split(",").slice(0, 5)).toEqual(["arm", "step", "loss", "train_acc", "test_acc"]);
    expect(lines.length).toBe(1 + 2 * 16); // steps 0, 10, ..., 150 for each arm
    const dir2 = mkdtempSync(join(tmpdir(), "grok-"));
    expect(grok([...tiny, "--out", dir2]).exitCode).toBe(0);
    expect(readFileSync(join(dir2, "log.csv"), "utf8")).toBe(log);
  });

  for (const [bad, msg] of [[["--arms", "baseline,nope"], /--arms/], [["--p", "1"], /--p/], [["--frac", "1.5"], /--frac/],
    [["--lr", "fast"], /--lr/], [["--hidden", "64,x"], /--hidden/], [["--bogus", "1"], /--bogus/], [["--threads", "0"], /--threads/]] as const)
    test(`bad flag ${bad.join(" ")} exits non-zero with one line and no summary`, () => {
      const out = mkdtempSync(join(tmpdir(), "grok-"));
      const e = grok([...bad, "--out", out]);
      expect(e.exitCode).not.toBe(0);
      const err = e.stderr.toString().trim();
      expect(err.split("\n").length).toBe(1);
      expect(err).toMatch(msg);
      expect(existsSync(join(out, "summary.json"))).toBe(false);
    });
});

describe("scripts exit 2 with one line on an impossible configuration, before writing anything", () => {
  const cases: Array<[string, string[], RegExp]> = [
    ["grok", ["--out", "/proc/numedge-x"], /--out .* is not a writable folder/],
    ["grok", ["--out", `${import.meta.dir}/grok.test.ts/sub`], /--out .* is not a writable folder/],
    ["grok", ["--backend", "tfjs-node"], /tfjs-node/],
    ["grok", ["--p", "2", "--frac", "0.1"], /leaves 0 of 4 pairs/],
    ["grok", ["--hidden", "1000000000"], /cannot allocate/],
    ["moe", ["--out", "/proc/numedge-x"], /--out .* is not a writable folder/],
    ["quant", ["--out", "/proc/numedge-x"], /--out .* is not a writable folder/],
  ];
  for (const [name, args, msg] of cases)
    test(`${name} ${args.join(" ")}`, () => {
      const file = join(import.meta.dir, "..", "scripts", `${name}.ts`);
      const p = Bun.spawnSync([process.execPath, file, ...args], { cwd: join(import.meta.dir, ".."), stdout: "pipe", stderr: "pipe" });
      expect(p.exitCode).toBe(2);
      const err = p.stderr.toString().trim();
      expect(err.split("\n").length).toBe(1);
      expect(err).toMatch(msg);
      expect(p.stdout.toString()).toBe(""); // nothing printed or written before the check
    }, 30000);
});

describe("scripts/grok.ts --threads 2", () => {
  test("the same log as --threads 1; says so in the header, records threads in config.json, exits", () => {
    const dirs = [1, 2].map(() => mkdtempSync(join(tmpdir(), "grok-")));
    const rs = [1, 2].map((t, i) => grok(["--p", "29", "--frac", "0.7", "--hidden", "96,96", "--steps", "20", "--log-every", "5", "--threads", String(t), "--out", dirs[i]!]));
    for (const r of rs) expect(r.exitCode).toBe(0);
    expect(rs[1]!.stdout.toString().split("\n")[0]).toContain("2 threads");
    expect(JSON.parse(readFileSync(join(dirs[1]!, "config.json"), "utf8")).threads).toBe(2);
    expect(readFileSync(join(dirs[1]!, "log.csv"), "utf8")).toBe(readFileSync(join(dirs[0]!, "log.csv"), "utf8"));
    expect(existsSync(join(dirs[1]!, "summary.json"))).toBe(true);
  }, 60000);
});

/** A model array on the host. */
const host = (t: Tensor): FloatArray => (t instanceof DeviceArray ? (t.readSync() as FloatArray) : t);

describe("GrokRun through the worker pool", () => {
  // big enough that the GEMMs split (the pool's thresholds), small enough to run in a second
  const cfg = (arm: "perp" | "stablemax"): GrokConfig => ({ ...GROK_ARMS[arm], p: 31, op: "add", frac: 0.6, hidden: [96, 80], seed: 3, lr: 0.01 });

  for (const arm of ["perp", "stablemax"] as const)
    test(`${arm}: logs, weights and test accuracy are the same bits on 1, 2 and 3 threads`, () => {
      const before = threads();
      try {
        const got = [1, 2, 3].map((t) => {
          setThreads(t);
          const r = new GrokRun(cfg(arm)), log: StepStats[] = [];
          for (let s = 0; s < 6; s++) log.push(r.train());
          return { log, w: r.model.params.map((w) => Array.from(host(w))), acc: r.testAccuracy() };
        });
        for (const g of got.slice(1)) {
          expect(g.log).toEqual(got[0]!.log);
          expect(g.w).toEqual(got[0]!.w);
          expect(g.acc).toBe(got[0]!.acc);
        }
      } finally {
        setThreads(before);
      }
    });

  test("a process that used the pool exits on its own", () => {
    const src = join(import.meta.dir, "..", "src", "index.ts");
    const code = `import { GROK_ARMS, GrokRun, setThreads } from ${JSON.stringify(src)};
      setThreads(2);
      const r = new GrokRun({ ...GROK_ARMS.perp, p: 31, op: "add", frac: 0.6, hidden: [96], seed: 0, lr: 0.01 });
      for (let t = 0; t < 3; t++) r.train();
      console.log("acc", r.testAccuracy());`;
    const p = Bun.spawnSync([process.execPath, "-e", code], { stdout: "pipe", stderr: "pipe", timeout: 60_000 });
    expect(p.stderr.toString()).toBe("");
    expect(p.stdout.toString()).toStartWith("acc ");
    expect(p.exitCode).toBe(0);
  });
});

describe("GrokRun on DeviceArrays (the default)", () => {
  const cfg = (arm: "baseline" | "perp" | "stablemax"): GrokConfig => ({ ...GROK_ARMS[arm], p: 19, op: "add", frac: 0.6, hidden: [32, 24], seed: 1, lr: 0.01 });

  for (const be of ["wasm", "reference", ...(cpuCudaUnavailable ? [] : ["cuda-cpu-cublas"])])
    test(`${be}: 10 unlogged steps read nothing back${be === "wasm" ? " and copy nothing in or out of WASM memory" : ""}; logged steps do`, async () => {
      await setBackend(be);
      try {
        for (const arm of ["baseline", "perp", "stablemax"] as const) {
          const run = new GrokRun(cfg(arm));
          expect(run.model.backend).toBe(be);
          run.train(); // first step: moments allocated, index data checked once
          const storage = getBackend().storage;
          const reads = spyOn(storage, "read"), readsAsync = storage.readAsync ? spyOn(storage, "readAsync") : null;
          const copies = copyStats.inBytes + copyStats.outBytes;
          for (let t = 0; t < 10; t++) expect(run.train(true, false)).toBeUndefined();
          expect(reads).toHaveBeenCalledTimes(0);
          if (readsAsync) expect(readsAsync).toHaveBeenCalledTimes(0);
          if (be === "wasm") expect(copyStats.inBytes + copyStats.outBytes).toBe(copies);
          const s = run.train(false, true);
          expect(reads.mock.calls.length).toBeGreaterThan(0);
          expect(s.step).toBe(11);
          reads.mockRestore();
          readsAsync?.mockRestore();
        }
      } finally {
        await setBackend("wasm");
      }
    });

  test("same bits as the host-array run (device: false), stats and running maxima included", () => {
    for (const arm of ["baseline", "perp", "stablemax"] as const) {
      const dev = new GrokRun(cfg(arm)), hostRun = new GrokRun(cfg(arm), { device: false });
      for (let t = 0; t < 12; t++) {
        const log = t % 4 === 0;
        const a = dev.train(true, log), b = hostRun.train(true, log);
        if (log) expect(a).toEqual(b!);
      }
      expect(dev.maxima()).toEqual(hostRun.maxima());
      expect(dev.maxima().maxLogit).toBeGreaterThan(0);
      expect(dev.testAccuracy()).toBe(hostRun.testAccuracy());
      dev.model.params.forEach((w, l) => expect(host(w)).toEqual(host(hostRun.model.params[l]!)));
    }
  });
});
