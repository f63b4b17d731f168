// scripts/grok.ts end to end, as a subprocess with a tmp --out: output files, summary.json shape, determinism,
// ⊥AdamW beating the baseline on test accuracy, and one-line errors for bad flags. GrokRun with threads: 2
// (data-parallel over a worker thread): parity with threads 1, determinism, and a clean exit.
import { describe, expect, spyOn, test } from "bun:test";
import { DeviceArray, GROK_ARMS, GrokRun, NumedgeError, setBackend, type FloatArray, type GrokConfig, type StepStats, type Tensor } from "numedge";
import { getBackend } from "../src/backends/index.ts";
import { copyStats } from "../src/backends/wasm/runtime.ts";
import "./parity.ts"; // registers cuda-emulated
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
    [["--lr", "fast"], /--lr/], [["--hidden", "64,x"], /--hidden/], [["--bogus", "1"], /--bogus/], [["--threads", "3"], /--threads/]] as const)
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
  test("runs, says so in the header, records threads in config.json, exits", () => {
    const dir = mkdtempSync(join(tmpdir(), "grok-"));
    const r = grok(["--p", "23", "--frac", "0.7", "--hidden", "32,32", "--steps", "20", "--threads", "2", "--out", dir]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout.toString().split("\n")[0]).toContain("2 threads");
    expect(JSON.parse(readFileSync(join(dir, "config.json"), "utf8")).threads).toBe(2);
    expect(existsSync(join(dir, "summary.json"))).toBe(true);
  });
});

/** A model array on the host: threads 1 keeps DeviceArrays, threads 2 host arrays. */
const host = (t: Tensor): FloatArray => (t instanceof DeviceArray ? (t.readSync() as FloatArray) : t);

describe("GrokRun threads: 2", () => {
  const cfg = (arm: "perp" | "stablemax"): GrokConfig => ({ ...GROK_ARMS[arm], p: 23, op: "add", frac: 0.6, hidden: [48, 40], seed: 3, lr: 0.01 });
  const REL = 1e-5; // combined statistics vs threads 1: f32 rounding of a different summation order
  const close = (a: number, b: number, rel: number) => expect(Math.abs(a - b)).toBeLessThanOrEqual(rel * Math.max(1e-30, Math.abs(a), Math.abs(b)));

  for (const arm of ["perp", "stablemax"] as const)
    test(`${arm}: loss, stats and gradients match threads 1 (an odd row count splits unevenly)`, () => {
      const one = new GrokRun(cfg(arm)), two = new GrokRun(cfg(arm), { threads: 2 });
      try {
        expect(one.data.train.rows % 2).toBe(1);
        for (let t = 0; t < 3; t++) {
          const a = one.train(false), b = two.train(false);
          close(a.loss, b.loss, REL);
          expect(b.trainAcc).toBe(a.trainAcc);
          expect(b.scFraction).toBe(a.scFraction);
          expect(b.zeroLossFraction).toBe(a.zeroLossFraction);
          expect(b.maxLogit).toBe(a.maxLogit);
          close(a.weightNorm, b.weightNorm, REL);
          a.nlmCos.forEach((c, l) => expect(Math.abs(c - b.nlmCos[l]!)).toBeLessThan(1e-4));
          for (let l = 0; l < one.model.layers; l++) {
            const g1 = host(one.model.grads[l]!), g2 = host(two.model.grads[l]!);
            let big = 0, diff = 0;
            for (let i = 0; i < g1.length; i++) { big = Math.max(big, Math.abs(g1[i]!)); diff = Math.max(diff, Math.abs(g1[i]! - g2[i]!)); }
            expect(big).toBeGreaterThan(0);
            expect(diff).toBeLessThanOrEqual(1e-4 * big);
          }
          expect(two.testAccuracy()).toBe(one.testAccuracy());
          one.train(); // then give threads 2 the same weights, so each comparison is one step deep
          two.model.params.forEach((w, l) => (w as FloatArray).set(host(one.model.params[l]!)));
        }
      } finally {
        two.close();
      }
    });

  test("two runs with threads 2 are bit-identical after several steps", () => {
    const runs = [new GrokRun(cfg("perp"), { threads: 2 }), new GrokRun(cfg("perp"), { threads: 2 })];
    try {
      const logs: StepStats[][] = runs.map(() => []);
      for (let t = 0; t < 8; t++) runs.forEach((r, i) => logs[i]!.push(r.train()));
      expect(logs[1]).toEqual(logs[0]!);
      runs[0]!.model.params.forEach((w, l) => expect(Array.from(host(runs[1]!.model.params[l]!))).toEqual(Array.from(host(w))));
      expect(runs[1]!.testAccuracy()).toBe(runs[0]!.testAccuracy());
    } finally {
      runs.forEach((r) => r.close());
    }
  });

  test("after close(): train throws, close is idempotent; threads must be 1 or 2", () => {
    const r = new GrokRun(cfg("perp"), { threads: 2 });
    r.train();
    r.close();
    r.close();
    expect(() => r.train()).toThrow(NumedgeError);
    expect(() => new GrokRun(cfg("perp"), { threads: 3 as 2 })).toThrow(/threads must be 1 or 2/);
  });

  test("a process that used threads 2 exits on its own, with and without close()", () => {
    const src = join(import.meta.dir, "..", "src", "index.ts");
    for (const closeIt of [true, false]) {
      const code = `import { GROK_ARMS, GrokRun } from ${JSON.stringify(src)};
        const r = new GrokRun({ ...GROK_ARMS.perp, p: 11, op: "add", frac: 0.5, hidden: [16], seed: 0, lr: 0.01 }, { threads: 2 });
        for (let t = 0; t < 3; t++) r.train();
        console.log("acc", r.testAccuracy());${closeIt ? " r.close();" : ""}`;
      const p = Bun.spawnSync([process.execPath, "-e", code], { stdout: "pipe", stderr: "pipe", timeout: 60_000 });
      expect(p.stderr.toString()).toBe("");
      expect(p.stdout.toString()).toStartWith("acc ");
      expect(p.exitCode).toBe(0);
    }
  });
});

describe("GrokRun on DeviceArrays (the default)", () => {
  const cfg = (arm: "baseline" | "perp" | "stablemax"): GrokConfig => ({ ...GROK_ARMS[arm], p: 19, op: "add", frac: 0.6, hidden: [32, 24], seed: 1, lr: 0.01 });

  for (const be of ["wasm", "reference", "cuda-emulated"] as const)
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
