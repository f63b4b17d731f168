// The experiment scripts' shared pieces: the run folder every script writes (RunFolder), --help with the valid
// choices, tables whose cells stay in their columns, and plots whose legends stay off the data.
import { describe, expect, test } from "bun:test";
import { RunFolder, formatTable, svgPlot } from "numedge";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const root = join(import.meta.dir, "..");
const script = (name: string, args: string[]) =>
  Bun.spawnSync([process.execPath, join(root, "scripts", `${name}.ts`), ...args], { cwd: root, stdout: "pipe", stderr: "pipe" });

/** Each block of a table (split at blank lines): every line has spaces where the rule line has its gaps. */
function expectAligned(text: string) {
  for (const block of text.trimEnd().split("\n\n")) {
    const lines = block.split("\n");
    const rule = lines[1]!;
    expect(rule).toMatch(/^-+( {2}-+)+$/);
    const gaps = [...rule.matchAll(/ {2}/g)].map((m) => m.index!);
    for (const l of lines) {
      expect(l.length).toBeLessThanOrEqual(rule.length);
      for (const g of gaps) expect(l.slice(g, g + 2)).toBe("  ");
    }
  }
}

describe("moe and quant write the same run folder as grok", () => {
  const runs = {
    moe: ["--steps", "5", "--batch", "32", "--experts", "4"],
    quant: ["--steps", "4", "--train", "256", "--test", "128", "--hidden", "16", "--evalEvery", "2"],
  };
  for (const [name, args] of Object.entries(runs))
    test(`${name}: config.json (flags, no "help"), log.csv, aligned table.txt, plot.svg, summary.json`, () => {
      const dir = mkdtempSync(join(tmpdir(), `${name}-`));
      writeFileSync(join(dir, "summary.json"), "{}"); // a stale summary from an earlier run into the same folder
      const r = script(name, [...args, "--out", dir]);
      expect(r.stderr.toString()).not.toContain("error");
      expect(r.exitCode).toBe(0);
      for (const f of RunFolder.FILES) expect(existsSync(join(dir, f))).toBe(true);
      const config = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
      expect(config).not.toHaveProperty("help");
      expect(config.steps).toBe(Number(args[1]));
      expect(config.backend.name).toBe("wasm");
      const summary = JSON.parse(readFileSync(join(dir, "summary.json"), "utf8"));
      expect(summary.config).toEqual(config);
      const csv = readFileSync(join(dir, "log.csv"), "utf8").trim().split("\n");
      expect(csv[0]).toBe(name === "moe" ? "method,step,loss,max_load,aux_loss" : "optimizer,step,loss,test_acc,test_loss");
      expect(csv.length).toBe(1 + 3 * config.steps); // one row per step per method / optimizer
      const table = readFileSync(join(dir, "table.txt"), "utf8");
      expect(r.stdout.toString()).toContain(table.trimEnd());
      expectAligned(table);
      expect(readFileSync(join(dir, "plot.svg"), "utf8")).toStartWith("<svg");
    }, 60000);

  test("quant's table keeps a blown-up loss inside its column", () => {
    const dir = mkdtempSync(join(tmpdir(), "quant-"));
    expect(script("quant", ["--steps", "30", "--train", "256", "--test", "128", "--out", dir]).exitCode).toBe(0);
    const s = JSON.parse(readFileSync(join(dir, "summary.json"), "utf8"));
    expect(s.optimizers["adam8-lin-pt"].testLoss).toBeGreaterThan(1e4); // the linear per-tensor states blow up
    expectAligned(readFileSync(join(dir, "table.txt"), "utf8"));
  }, 60000);
});

describe("--help lists the valid choices", () => {
  test("grok: arms and every registered backend", () => {
    const r = script("grok", ["--help"]);
    expect(r.exitCode).toBe(0);
    const out = r.stdout.toString();
    expect(out).toMatch(/--arms .*any of baseline,perp,stablemax/);
    expect(out).toMatch(/--op .*one of add\|sub\|mul/);
    // the registry of a fresh process (this one has test backends registered too)
    const fresh = Bun.spawnSync([process.execPath, "-e", 'import { backendNames } from "numedge"; console.log(backendNames().join("|"))'], { cwd: root, stdout: "pipe" });
    const names = fresh.stdout.toString().trim();
    expect(names).toContain("wasm|reference|tfjs");
    expect(names).toContain("cuda");
    expect(out).toMatch(new RegExp(`--backend .*one of ${names.replace(/\|/g, "\\|")} *\n`));
  });
  for (const [name, choice] of [["moe", "any of none,aux,bias"], ["quant", "one of wasm|reference"]] as const)
    test(`${name}`, () => {
      const r = script(name, ["--help"]);
      expect(r.exitCode).toBe(0);
      expect(r.stdout.toString()).toContain(choice);
    });
});

describe("formatTable", () => {
  test("columns as wide as their widest cell, right-aligned where asked, nothing cut", () => {
    const t = formatTable(["name", "loss"], [["a", "1.5"], ["longer", "2.26e+6"]], [false, true]);
    expect(t.split("\n")).toEqual(["name       loss", "------  -------", "a           1.5", "longer  2.26e+6"]);
  });
});

describe("svgPlot legends stay off the data", () => {
  test("every legend entry lies right of its panel's plot area", () => {
    const series = ["train acc", "test acc", "a much longer series name"].map((name, i) => ({ name, x: [0, 1, 2], y: [i, 1, 2 - i] }));
    const svg = svgPlot([{ title: "a", series }, { title: "b", series: series.slice(0, 1) }], { cols: 2, width: 400 });
    const frames = [...svg.matchAll(/<rect x="([\d.]+)" y="[\d.]+" width="([\d.]+)" height="[\d.]+" fill="none"/g)].map((m) => [Number(m[1]), Number(m[1]) + Number(m[2])]);
    expect(frames.length).toBe(2);
    const labels = [...svg.matchAll(/<text x="([\d.]+)" y="[\d.]+" font-size="10">([^<]+)<\/text>/g)].filter((m) => series.some((s) => s.name === m[2]));
    expect(labels.length).toBe(4);
    for (const m of labels) {
      const x = Number(m[1]);
      const frame = frames.find(([l, r]) => x > l && x < r + 200)!; // the panel this label belongs to
      expect(x).toBeGreaterThan(frame[1]);
      expect(x + 6 * m[2]!.length).toBeLessThanOrEqual(frame[1] + 200 + 400);
    }
  });
});
