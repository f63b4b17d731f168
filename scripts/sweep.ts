// Run a sweep file (docs/sweeps.md): every point of its list × grid × seeds as a local pool of processes (--jobs),
// as one Slurm job array (--slurm), or one point (--index, or the index a job runner sets: SLURM_ARRAY_TASK_ID,
// JOB_COMPLETION_INDEX). Usage: numedge sweep FILE [flags]  (in a checkout: bun run scripts/sweep.ts FILE).
// Writes <out>/<name>/sweep.json and a folder per point; finished points (summary.json) are skipped.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, extname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import {
  NumedgeError, arraySpec, checkPointFlags, expandPoints, orExit, parseFlags, parseSweep, runPoint, runPool, runnerIndex, sbatchScript,
  scriptFlagSpec, writeSweepJson, type Outcome, type Point,
} from "numedge";

const USAGE = "usage: numedge sweep FILE [flags]  (FILE: a sweep file, docs/sweeps.md)";
const argv = process.argv.slice(2);
const file = argv[0] !== undefined && !argv[0].startsWith("-") ? argv.shift()! : undefined;
const flags = parseFlags(argv, {
  out: { type: "string", default: "runs", help: "root folder: each point runs in <out>/<name>/<id>/" },
  jobs: { type: "int", min: 1, help: "points at once: local processes (default 1), or the Slurm array's %limit (default none)" },
  slurm: { type: "bool", default: false, help: "submit the unfinished points as one Slurm job array (writes <out>/<name>/sweep.sbatch)" },
  "dry-run": { type: "bool", default: false, help: "print the sbatch script (with --slurm) or the points, and run nothing" },
  index: { type: "int", min: 0, help: "run point I only (default: JOB_COMPLETION_INDEX or SLURM_ARRAY_TASK_ID when set and no --jobs/--slurm)" },
}, USAGE);
if (file === undefined) {
  process.stderr.write(`error: no sweep file\n${USAGE}\n`);
  process.exit(2);
}

// The shipped scripts sit beside this one (scripts/*.ts under Bun, dist/scripts/*.js under Node); a path is
// relative to the sweep file. Every point's flags are checked against the script's before anything runs.
const self = fileURLToPath(import.meta.url);
const runtime = [process.execPath, ...("Deno" in globalThis ? ["run", "-A"] : [])]; // Deno runs a file with `run`
const { sweep, points, script, index } = await orExit(() => {
  if (!existsSync(file)) throw new NumedgeError("range", `sweep file ${file} not found`);
  const sweep = parseSweep(readFileSync(file, "utf8"), file);
  const builtin = ["grok", "moe", "quant"].includes(sweep.script);
  const script = builtin ? resolve(dirname(self), sweep.script + extname(self)) : resolve(dirname(file), sweep.script);
  if (!existsSync(script)) throw new NumedgeError("range", `${file}: script "${sweep.script}" is not grok, moe, quant or a file (no ${script})`);
  const points = expandPoints(sweep);
  const spec = scriptFlagSpec(runtime, script);
  if (spec) checkPointFlags(points, spec, sweep.script);
  else console.log(`note: ${sweep.script} does not print --flags-json, so bad flags show only when a point runs`);
  if (flags.slurm && flags.index !== undefined) throw new NumedgeError("range", "--index runs one point here; --slurm submits them all: give one");
  const index = runnerIndex(flags.index, flags.slurm || flags.jobs !== undefined ? {} : process.env, points.length);
  return { sweep, points, script, index };
});
const dir = resolve(flags.out, sweep.name);
const runner = { runtime, script, dir };
const said = (p: Point, o: Outcome) => `${p.index} ${p.id}: ` + (o.status === "done" ? `done in ${o.seconds.toFixed(1)}s`
  : o.status === "skipped" ? "skipped (has summary.json)" : `FAILED (${o.signal ?? `exit ${o.exitCode}`}; ${p.id}/failed.json)`);

if (index !== undefined && !flags["dry-run"]) {
  writeSweepJson(dir, sweep, points);
  const o = await runPoint(points[index]!, runner);
  console.log(said(points[index]!, o));
  process.exit(o.status === "failed" ? o.exitCode || 1 : 0);
}

if (flags.slurm) {
  const todo = points.filter((p) => !existsSync(`${dir}/${p.id}/summary.json`)).map((p) => p.index);
  if (todo.length === 0) {
    console.log(`sweep ${sweep.name}: all ${points.length} points have a summary.json in ${dir}; nothing to submit`);
    process.exit(0);
  }
  const array = arraySpec(todo, flags.jobs);
  const command = [...runtime, self, resolve(file), "--out", resolve(flags.out)];
  const text = sbatchScript({ sweep, array, dir, cwd: process.cwd(), command, points: points.length });
  if (flags["dry-run"]) {
    process.stdout.write(text);
    process.exit(0);
  }
  writeSweepJson(dir, sweep, points);
  writeFileSync(`${dir}/sweep.sbatch`, text);
  const r = spawnSync("sbatch", ["--parsable", `${dir}/sweep.sbatch`], { encoding: "utf8" });
  if (r.status !== 0) {
    process.stderr.write(`error: sbatch ${dir}/sweep.sbatch failed: ${r.error?.message ?? r.stderr.trim()}\n`);
    process.exit(1);
  }
  console.log(`submitted Slurm job ${r.stdout.trim()}: ${todo.length} of ${points.length} points (--array=${array}); afterwards: numedge aggregate ${dir}`);
  process.exit(0);
}

if (flags["dry-run"]) {
  for (const p of points) console.log(`${p.index} ${p.id}${existsSync(`${dir}/${p.id}/summary.json`) ? " (done)" : ""}`);
  process.exit(0);
}
writeSweepJson(dir, sweep, points);
const jobs = flags.jobs ?? 1;
console.log(`sweep ${sweep.name}: ${points.length} points of ${sweep.script}, ${jobs} at a time, in ${dir}`);
const t0 = performance.now();
const outcomes = await runPool(points, jobs, runner, (p, o) => console.log(said(p, o)));
const count = (s: Outcome["status"]) => outcomes.filter((o) => o.status === s).length;
console.log(`sweep ${sweep.name}: ${count("done")} done, ${count("skipped")} skipped, ${count("failed")} failed in ${((performance.now() - t0) / 1000).toFixed(0)}s; ` +
  `numedge aggregate ${dir}`);
process.exit(count("failed") ? 1 : 0);
