// scripts/grok.ts end to end, as a subprocess with a tmp --out: output files, summary.json shape, determinism,
// ⊥AdamW beating the baseline on test accuracy, and one-line errors for bad flags.
import { describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const script = join(import.meta.dir, "..", "scripts", "grok.ts");
const grok = (args: string[]) => Bun.spawnSync([process.execPath, script, ...args], { cwd: join(import.meta.dir, ".."), stdout: "pipe", stderr: "pipe" });
const tiny = ["--p", "23", "--frac", "0.7", "--hidden", "64,64", "--steps", "150", "--log-every", "10"];

describe("scripts/grok.ts", () => {
  const dir = mkdtempSync(join(tmpdir(), "grok-"));
  const r = grok([...tiny, "--out", dir]);

  test("tiny run: exits 0 and writes config, log, plot and summary", () => {
    expect(r.stderr.toString()).toContain("perp");
    expect(r.exitCode).toBe(0);
    for (const f of ["config.json", "log.csv", "plot.svg", "summary.json"]) expect(existsSync(join(dir, f))).toBe(true);
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
    [["--lr", "fast"], /--lr/], [["--hidden", "64,x"], /--hidden/], [["--bogus", "1"], /--bogus/]] as const)
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
