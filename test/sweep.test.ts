// Sweeps: a sweep file expands into points in one fixed order with stable ids; each runner (a local pool, one index
// from a job runner's environment) writes the same summaries; finished points are skipped, failed ones recorded;
// aggregate gives mean ± std across seeds and lists what is missing or failed; --slurm --dry-run prints the array.
import { describe, expect, test } from "bun:test";
import {
  NumedgeError, aggregateCsv, aggregatePlot, aggregateSweep, aggregateText, arraySpec, checkPointFlags, expandPoints, meanStd, parseSweep,
  runnerIndex, withoutWallClock, writeSweepJson, type FlagSpec,
} from "numedge";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const root = join(import.meta.dir, "..");
const tmp = (p: string) => mkdtempSync(join(tmpdir(), `sweep-${p}-`));
const { SLURM_ARRAY_TASK_ID: _s, JOB_COMPLETION_INDEX: _j, ...outside } = process.env; // in case the suite runs as an array task
const cli = (name: "sweep" | "aggregate", args: string[], env: Record<string, string> = {}) => {
  const r = Bun.spawnSync([process.execPath, join(root, "scripts", `${name}.ts`), ...args], { cwd: root, stdout: "pipe", stderr: "pipe", env: { ...outside, ...env } });
  return { code: r.exitCode, out: r.stdout.toString(), err: r.stderr.toString() };
};
const sweepFile = (dir: string, body: object) => {
  const f = join(dir, "sweep.json");
  writeFileSync(f, JSON.stringify(body));
  return f;
};
const TINY = { name: "tiny", script: "grok", flags: { arms: "perp", steps: 12, p: 11, hidden: "8" }, grid: { frac: [0.5, 0.7] }, seeds: [0, 1] };
const summaries = (dir: string) => Object.fromEntries(readdirSync(dir).filter((d) => existsSync(join(dir, d, "summary.json")))
  .map((d) => [d, withoutWallClock(JSON.parse(readFileSync(join(dir, d, "summary.json"), "utf8")))]));

describe("sweep file and points", () => {
  const sweep = parseSweep(JSON.stringify({
    name: "s", script: "grok", flags: { steps: 10, wd: 0 },
    list: [{ arms: "perp" }, { arms: ["baseline", "perp"], wd: 1 }], grid: { frac: [0.3, 0.5], lr: [0.01, 0.02] }, seeds: [3, 1],
  }));

  test("list × grid × seeds in a fixed order (list outermost, seeds innermost), ids from the varying flags", () => {
    const points = expandPoints(sweep);
    expect(points.length).toBe(2 * 4 * 2);
    expect(points.map((p) => p.index)).toEqual([...Array(16).keys()]);
    expect(points.slice(0, 5).map((p) => p.id)).toEqual([
      "arms=perp_wd=0_frac=0.3_lr=0.01_seed=3", "arms=perp_wd=0_frac=0.3_lr=0.01_seed=1", "arms=perp_wd=0_frac=0.3_lr=0.02_seed=3",
      "arms=perp_wd=0_frac=0.3_lr=0.02_seed=1", "arms=perp_wd=0_frac=0.5_lr=0.01_seed=3",
    ]);
    expect(points[8]!.id).toBe("arms=baseline+perp_wd=1_frac=0.3_lr=0.01_seed=3");
    expect(points[8]!.flags).toEqual({ steps: 10, wd: 1, arms: ["baseline", "perp"], frac: 0.3, lr: 0.01, seed: 3 });
    expect(expandPoints(sweep)).toEqual(points); // deterministic
  });

  test("ids collide -> an error naming both points", () => {
    const s = parseSweep(JSON.stringify({ name: "s", script: "grok", grid: { op: ["a b", "a/b"] }, seeds: [0] }));
    expect(() => expandPoints(s)).toThrow(/points 0 and 1 both get the id op=a-b_seed=0/);
  });

  const bad: [object | string, RegExp][] = [
    ["{", /not valid JSON/],
    [{ ...TINY, sweeps: 1 }, /unknown key "sweeps"/],
    [{ ...TINY, name: "a/b" }, /"name" must be a folder name/],
    [{ ...TINY, seeds: [] }, /"seeds" must be a non-empty list/],
    [{ ...TINY, seeds: [1, 1] }, /distinct/],
    [{ ...TINY, flags: { seed: 1 } }, /top-level "seeds"/],
    [{ ...TINY, flags: { "--steps": 1 } }, /not a flag name/],
    [{ ...TINY, flags: { out: "x" } }, /sets --out/],
    [{ ...TINY, flags: { frac: 0.5 } }, /"frac" is in both "flags" and "grid"/],
    [{ ...TINY, grid: { frac: [] } }, /grid "frac" must be a non-empty list/],
    [{ ...TINY, list: [{ frac: 0.5 }] }, /"frac" is in both "grid" and list\[0\]/],
    [{ ...TINY, flags: { steps: { n: 1 } } }, /"steps" must be a string, number, boolean/],
  ];
  for (const [body, msg] of bad)
    test(`rejects ${typeof body === "string" ? body : JSON.stringify(body).slice(0, 60)}`, () => {
      let err: unknown;
      try {
        parseSweep(typeof body === "string" ? body : JSON.stringify(body), "f.json");
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(NumedgeError);
      expect((err as Error).message).toMatch(msg);
    });

  test("point flags are checked against the script's specs", () => {
    const spec: Record<string, FlagSpec> = { frac: { type: "number", exclusiveMax: 1, help: "" }, seed: { type: "int", help: "" }, out: { type: "string", help: "" } };
    const pts = (grid: object) => expandPoints(parseSweep(JSON.stringify({ name: "s", script: "x", grid, seeds: [0] })));
    expect(() => checkPointFlags(pts({ frac: [0.5] }), spec, "x")).not.toThrow();
    expect(() => checkPointFlags(pts({ frac: [0.5, 1.5] }), spec, "x")).toThrow("point frac=1.5_seed=0 of x: --frac must be a number < 1, got \"1.5\"");
    expect(() => checkPointFlags(pts({ lr: [1] }), spec, "x")).toThrow("point lr=1_seed=0 of x: unknown flag --lr");
    expect(() => checkPointFlags(pts({ frac: [0.5] }), { frac: spec.frac!, out: spec.out! }, "x")).toThrow("takes no --seed");
  });

  test("the index: --index, else JOB_COMPLETION_INDEX, else SLURM_ARRAY_TASK_ID; checked against the point count", () => {
    expect(runnerIndex(undefined, {}, 4)).toBeUndefined();
    expect(runnerIndex(undefined, { SLURM_ARRAY_TASK_ID: "3" }, 4)).toBe(3);
    expect(runnerIndex(undefined, { SLURM_ARRAY_TASK_ID: "3", JOB_COMPLETION_INDEX: "1" }, 4)).toBe(1);
    expect(runnerIndex(2, { JOB_COMPLETION_INDEX: "1" }, 4)).toBe(2);
    expect(() => runnerIndex(undefined, { SLURM_ARRAY_TASK_ID: "4" }, 4)).toThrow("SLURM_ARRAY_TASK_ID is \"4\", not a point index (0 to 3)");
    expect(() => runnerIndex(undefined, { JOB_COMPLETION_INDEX: "x" }, 4)).toThrow(NumedgeError);
  });

  test("Slurm array specs: consecutive runs as a-b, %limit", () => {
    expect(arraySpec([0, 1, 2, 3], 2)).toBe("0-3%2");
    expect(arraySpec([0, 2, 3, 5, 6, 7])).toBe("0,2-3,5-7");
    expect(arraySpec([4])).toBe("4");
  });
});

describe("running a sweep", () => {
  test("--jobs 2, then each point by its index from SLURM_ARRAY_TASK_ID / JOB_COMPLETION_INDEX: the same summaries; a rerun skips", () => {
    const dir = tmp("run");
    const file = sweepFile(dir, TINY);
    const pool = cli("sweep", [file, "--out", join(dir, "pool"), "--jobs", "2"]);
    expect(pool.err).toBe("");
    expect(pool.code).toBe(0);
    expect(pool.out).toContain("tiny: 4 done, 0 skipped, 0 failed");
    const ids = ["frac=0.5_seed=0", "frac=0.5_seed=1", "frac=0.7_seed=0", "frac=0.7_seed=1"];
    const first = summaries(join(dir, "pool", "tiny"));
    expect(Object.keys(first).sort()).toEqual(ids);
    const point = JSON.parse(readFileSync(join(dir, "pool", "tiny", ids[3]!, "point.json"), "utf8"));
    expect(point).toEqual({ index: 3, id: ids[3], flags: { ...TINY.flags, frac: 0.7, seed: 1 } });
    expect((first[ids[3]!] as { config: { arms: { perp: { seed: number; frac: number } } } }).config.arms.perp).toMatchObject({ seed: 1, frac: 0.7 });

    for (const [i, env] of [[2, { SLURM_ARRAY_TASK_ID: "2" }], [1, { JOB_COMPLETION_INDEX: "1" }]] as const) {
      const r = cli("sweep", [file, "--out", join(dir, "indexed")], env);
      expect(r.code).toBe(0);
      expect(r.out).toBe(`${i} ${ids[i]}: done in ${r.out.match(/in ([\d.]+)s/)![1]}s\n`);
    }
    const indexed = summaries(join(dir, "indexed", "tiny"));
    expect(Object.keys(indexed).sort()).toEqual([ids[1], ids[2]]);
    for (const id of Object.keys(indexed)) expect(indexed[id]).toEqual(first[id]);

    const before = statSync(join(dir, "pool", "tiny", ids[0]!, "summary.json")).mtimeMs;
    const again = cli("sweep", [file, "--out", join(dir, "pool"), "--jobs", "2"]);
    expect(again.out).toContain("0 done, 4 skipped, 0 failed");
    expect(statSync(join(dir, "pool", "tiny", ids[0]!, "summary.json")).mtimeMs).toBe(before);
  }, 60000);

  test("a failing point leaves failed.json (exit code, stderr tail), the others run; a rerun retries it", () => {
    const dir = tmp("fail");
    // a script on parseFlags and RunFolder that fails for seed 1 until told not to
    writeFileSync(join(dir, "flaky.ts"), `import { parseFlags, RunFolder } from ${JSON.stringify(join(root, "src", "index.ts"))};
import { existsSync } from "node:fs";
const f = parseFlags(process.argv.slice(2), { seed: { type: "int", default: 0, help: "" }, x: { type: "number", default: 1, help: "" }, out: { type: "string", help: "" } });
if (f.seed === 1 && !existsSync(${JSON.stringify(join(dir, "fixed"))})) { console.error("boom at seed 1"); process.exit(3); }
const run = new RunFolder("flaky", f.out); run.start(f);
run.finish({ log: [], table: "", plot: "", summary: { value: f.x * 10 + f.seed, seconds: performance.now() } });
`);
    const file = sweepFile(dir, { name: "flaky", script: "flaky.ts", grid: { x: [1, 2] }, seeds: [0, 1, 2] });
    const r = cli("sweep", [file, "--out", dir, "--jobs", "2"]);
    expect(r.code).toBe(1);
    expect(r.out).toContain("flaky: 4 done, 0 skipped, 2 failed");
    expect(r.out).toContain("1 x=1_seed=1: FAILED (exit 3; x=1_seed=1/failed.json)");
    const failed = JSON.parse(readFileSync(join(dir, "flaky", "x=1_seed=1", "failed.json"), "utf8"));
    expect(failed).toMatchObject({ index: 1, id: "x=1_seed=1", exitCode: 3, signal: null, stderrTail: "boom at seed 1" });

    const agg = cli("aggregate", [join(dir, "flaky"), "--metric", "value"]);
    expect(agg.code).toBe(0);
    expect(agg.out).toContain("failed: 1 x=1_seed=1 (exit 3); 4 x=2_seed=1 (exit 3)");
    expect(agg.out).toMatch(/\n1 +value +11 +1\.414 +2\/2\n/); // seeds 0 and 2: 10, 12
    expect(readFileSync(join(dir, "flaky", "aggregate.svg"), "utf8")).toContain("<circle");

    writeFileSync(join(dir, "fixed"), "");
    const again = cli("sweep", [file, "--out", dir]);
    expect(again.code).toBe(0);
    expect(again.out).toContain("2 done, 4 skipped, 0 failed");
    expect(existsSync(join(dir, "flaky", "x=1_seed=1", "failed.json"))).toBe(false);
  }, 60000);

  test("--slurm --dry-run prints the sbatch script of the unfinished points; --dry-run lists the points", () => {
    const dir = tmp("slurm");
    const file = sweepFile(dir, { ...TINY, slurm: { time: "00:05:00", partition: "debug" } });
    expect(cli("sweep", [file, "--out", dir, "--index", "1"]).code).toBe(0);
    const r = cli("sweep", [file, "--out", dir, "--slurm", "--dry-run", "--jobs", "2"], { SLURM_ARRAY_TASK_ID: "0" });
    expect(r.code).toBe(0);
    const lines = r.out.split("\n");
    expect(lines.slice(0, 6)).toEqual([
      "#!/bin/bash", "#SBATCH --job-name=tiny", "#SBATCH --array=0,2-3%2", `#SBATCH --output=${join(dir, "tiny")}/slurm-%A_%a.out`,
      "#SBATCH --time=00:05:00", "#SBATCH --partition=debug",
    ]);
    expect(lines).toContain(`cd ${root}`);
    expect(lines).toContain(`exec ${process.execPath} ${join(root, "scripts", "sweep.ts")} ${file} --out ${dir} --index "$SLURM_ARRAY_TASK_ID"`);
    expect(existsSync(join(dir, "tiny", "sweep.sbatch"))).toBe(false); // a dry run writes nothing
    const list = cli("sweep", [file, "--out", dir, "--dry-run", "--index", "0"]);
    expect(list.out).toBe("0 frac=0.5_seed=0\n1 frac=0.5_seed=1 (done)\n2 frac=0.7_seed=0\n3 frac=0.7_seed=1\n");
    expect(existsSync(join(dir, "tiny", "frac=0.5_seed=0"))).toBe(false);
  }, 30000);

  const bad: [string, object | null, string[], RegExp][] = [
    ["an unknown key", { ...TINY, grids: {} }, [], /^error: .*unknown key "grids"/],
    ["an unknown script", { ...TINY, script: "grokk" }, [], /^error: .*script "grokk" is not grok, moe, quant or a file/],
    ["an unknown flag", { ...TINY, grid: { fraction: [0.5] } }, [], /^error: point fraction=0.5_seed=0 of grok: unknown flag --fraction\n$/],
    ["a bad value", { ...TINY, grid: { frac: [0.5, 1.5] } }, [], /^error: point frac=1.5_seed=0 of grok: --frac must be a number < 1, got "1.5"\n$/],
    ["a missing file", null, [], /^error: sweep file .* not found\n$/],
    ["an index out of range", TINY, ["--index", "4"], /^error: --index is "4", not a point index \(0 to 3\)\n$/],
    ["a bad sweep flag", TINY, ["--jobs", "0"], /^error: --jobs must be an integer >= 1/],
  ];
  for (const [what, body, args, msg] of bad)
    test(`${what}: one line, exit 2, nothing run`, () => {
      const dir = tmp("bad");
      const r = cli("sweep", [body ? sweepFile(dir, body) : join(dir, "none.json"), "--out", dir, ...args]);
      expect(r.err).toMatch(msg);
      expect(r.code).toBe(2);
      expect(existsSync(join(dir, "tiny"))).toBe(false);
    });
});

describe("aggregate", () => {
  const dir = tmp("agg");
  const sweep = parseSweep(JSON.stringify({ name: "a", script: "grok", list: [{ arms: "perp" }, { arms: "baseline" }], grid: { frac: [0.3, 0.6] }, seeds: [0, 1, 2] }));
  const points = expandPoints(sweep);
  writeSweepJson(join(dir, "a"), sweep, points);
  // step = 100 * frac * (seed + 1), null ("never") for baseline at 0.3 seed 0; point 5 (perp 0.6 seed 2) failed, 11 missing
  for (const p of points) {
    if (p.index === 11) continue;
    mkdirSync(join(dir, "a", p.id));
    const arm = p.flags.arms as string, frac = p.flags.frac as number, seed = p.flags.seed as number;
    if (p.index === 5) writeFileSync(join(dir, "a", p.id, "failed.json"), JSON.stringify({ exitCode: null, signal: "SIGKILL" }));
    else writeFileSync(join(dir, "a", p.id, "summary.json"), JSON.stringify({
      config: { frac }, arms: { [arm]: { step: arm === "baseline" && frac === 0.3 && seed === 0 ? null : 100 * frac * (seed + 1), seconds: 1 } },
    }));
  }
  const a = aggregateSweep(join(dir, "a"));

  test("mean and sample std across seeds, nulls left out of n; config is not a metric", () => {
    expect(a.varying).toEqual(["arms", "frac"]);
    expect(a.groups.map((g) => g.label)).toEqual(["arms=perp, frac=0.3", "arms=perp, frac=0.6", "arms=baseline, frac=0.3", "arms=baseline, frac=0.6"]);
    expect(a.groups.map((g) => g.seeds)).toEqual([3, 2, 3, 2]);
    const step = (i: number) => a.groups[i]!.metrics[`arms.${i < 2 ? "perp" : "baseline"}.step`]!;
    expect(step(0).mean).toBeCloseTo(60, 10);
    expect(step(0).std).toBeCloseTo(30, 10);
    expect(step(1)).toMatchObject({ n: 2 });
    expect(step(1).mean).toBeCloseTo(90, 10);
    expect(step(1).std).toBeCloseTo(60 / Math.SQRT2, 10);
    expect(step(2).n).toBe(2);
    expect(step(2).mean).toBeCloseTo(75, 10);
    expect(Object.keys(a.groups[0]!.metrics)).toEqual(["arms.perp.step", "arms.perp.seconds"]);
    expect(meanStd([5])).toEqual({ mean: 5, std: null, n: 1 });
    expect(meanStd([null])).toEqual({ mean: null, std: null, n: 0 });
  });

  test("missing and failed points listed; CSV and text tables; --metric by its last part", () => {
    expect(a.missing.map((p) => p.index)).toEqual([11]);
    expect(a.failed).toEqual([{ point: points[5]!, exitCode: null, signal: "SIGKILL" }]);
    const text = aggregateText(a, "step");
    expect(text).toContain("missing: 11 arms=baseline_frac=0.6_seed=2\nfailed: 5 arms=perp_frac=0.6_seed=2 (SIGKILL)\n");
    expect(text.split("\n").slice(0, 3)).toEqual([
      "arms      frac  metric              mean    std  n/seeds",
      "--------  ----  ------------------  ----  -----  -------",
      "perp      0.3   arms.perp.step        60     30      3/3",
    ]);
    expect(text).toMatch(/baseline +0\.3 +arms\.baseline\.step +75 +21\.21 +2\/3/);
    const csv = aggregateCsv(a).split("\n");
    expect(csv[0]).toBe("arms,frac,metric,mean,std,n,seeds");
    expect(csv.length).toBe(1 + 4 * 2 + 1);
    expect(csv).toContain("perp,0.3,arms.perp.seconds,1,0,3,3");
  });

  test("the plot: one line per arm, error bars of ± std", () => {
    const svg = aggregatePlot(a, "step", "frac");
    expect(svg).toContain(">arms=perp</text>");
    expect(svg).toContain(">arms=baseline</text>");
    expect(svg.match(/<circle/g)!.length).toBe(4);
    expect(() => aggregatePlot(a, "step", "arms")).toThrow("--x arms must be a numeric flag");
    expect(() => aggregatePlot(a, "nothing", "frac")).toThrow("no finished point");
  });
});
