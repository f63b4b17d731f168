// Sweeps: one JSON file names a script, fixed flags, a grid and/or a list of flag sets, and seeds. Each point is one
// run of the script in its own folder <out>/<name>/<id>/, run by a local pool of processes, by one task of a Slurm
// job array, or by any agent that passes an index (Kubernetes Indexed Jobs). A point is its index in one fixed
// order, so every runner of the same file agrees on which point an index means.
import { spawn, spawnSync } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { NumedgeError } from "../errors.ts";
import { FlagError, parseFlagsOrThrow, type FlagSpec } from "./flags.ts";

export type FlagValue = string | number | boolean | (string | number)[];
export type FlagSet = Record<string, FlagValue>;

/** A sweep file, checked: `list` is [] when the file has none. */
export interface Sweep {
  name: string;
  /** grok, moe, quant, or a path to a script. */
  script: string;
  flags: FlagSet;
  grid: Record<string, FlagValue[]>;
  list: FlagSet[];
  seeds: number[];
  /** Extra `#SBATCH --key=value` lines (partition, time, cpus-per-task...). */
  slurm: Record<string, string | number>;
}

/** One run: `flags` are every flag the script gets but --out, seed included. */
export interface Point {
  index: number;
  id: string;
  flags: FlagSet;
}

const KEYS = ["name", "script", "flags", "grid", "list", "seeds", "slurm"];
const bad = (msg: string): never => {
  throw new NumedgeError("range", msg);
};
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

function flagValue(v: unknown, where: string): FlagValue {
  if (typeof v === "string" || typeof v === "boolean" || (typeof v === "number" && Number.isFinite(v))) return v;
  if (Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === "string" || (typeof x === "number" && Number.isFinite(x))))
    return v as (string | number)[];
  return bad(`${where} must be a string, number, boolean or non-empty list of them, got ${JSON.stringify(v)}`);
}

function flagSet(v: unknown, where: string): FlagSet {
  if (!isObject(v)) bad(`${where} must be an object of flags`);
  const out: FlagSet = {};
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) out[checkName(k, where)] = flagValue(x, `${where} "${k}"`);
  return out;
}

function checkName(k: string, where: string): string {
  if (!/^[A-Za-z][A-Za-z0-9-]*$/.test(k)) bad(`${where}: "${k}" is not a flag name (write flags without the leading --)`);
  if (k === "seed") bad(`${where}: set seeds with the top-level "seeds" key, not a "seed" flag`);
  if (k === "out") bad(`${where}: the sweep sets --out (each point's folder); run the sweep with --out instead`);
  return k;
}

/**
 * Check a sweep file's text; any problem is a NumedgeError naming the key.
 * @example const sweep = parseSweep(readFileSync("scripts/sweeps/grok-frac.json", "utf8"), "grok-frac.json")
 */
export function parseSweep(text: string, origin = "sweep file"): Sweep {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    bad(`${origin} is not valid JSON (${(e as Error).message})`);
  }
  if (!isObject(raw)) return bad(`${origin} must hold a JSON object`);
  for (const k of Object.keys(raw)) if (!KEYS.includes(k)) bad(`${origin}: unknown key "${k}" (keys: ${KEYS.join(", ")})`);
  const { name, script } = raw;
  if (typeof name !== "string" || !/^[A-Za-z0-9._-]+$/.test(name) || /^\.+$/.test(name))
    bad(`${origin}: "name" must be a folder name (letters, digits, . _ -), got ${JSON.stringify(name)}`);
  if (typeof script !== "string" || script === "") bad(`${origin}: "script" must be grok, moe, quant or a path to a script`);
  const flags = flagSet(raw.flags ?? {}, `${origin}: "flags"`);
  if (!isObject(raw.grid ?? {})) bad(`${origin}: "grid" must be an object of flag -> list of values`);
  const grid: Record<string, FlagValue[]> = {};
  for (const [k, vs] of Object.entries(raw.grid ?? {})) {
    checkName(k, `${origin}: "grid"`);
    if (!Array.isArray(vs) || vs.length === 0) bad(`${origin}: grid "${k}" must be a non-empty list of values`);
    grid[k] = (vs as unknown[]).map((x, i) => flagValue(x, `${origin}: grid "${k}"[${i}]`));
    if (k in flags) bad(`${origin}: "${k}" is in both "flags" and "grid"`);
  }
  if (raw.list !== undefined && (!Array.isArray(raw.list) || raw.list.length === 0)) bad(`${origin}: "list" must be a non-empty list of flag objects`);
  const list = ((raw.list ?? []) as unknown[]).map((e, i) => flagSet(e, `${origin}: list[${i}]`));
  for (const [i, e] of list.entries()) for (const k of Object.keys(e)) if (k in grid) bad(`${origin}: "${k}" is in both "grid" and list[${i}]`);
  const seeds = raw.seeds;
  if (!Array.isArray(seeds) || seeds.length === 0 || !seeds.every((s) => Number.isInteger(s) && s >= 0) || new Set(seeds).size !== seeds.length)
    bad(`${origin}: "seeds" must be a non-empty list of distinct integers >= 0 (they fill --seed), got ${JSON.stringify(seeds)}`);
  const slurm = raw.slurm ?? {};
  if (!isObject(slurm) || !Object.entries(slurm).every(([k, v]) => /^[a-z][a-z-]*$/.test(k) && (typeof v === "string" || typeof v === "number")))
    bad(`${origin}: "slurm" must be an object of sbatch options without the leading -- ({ "time": "00:30:00" }), got ${JSON.stringify(slurm)}`);
  return { name: name as string, script: script as string, flags, grid, list, seeds: seeds as number[], slurm: slurm as Record<string, string | number> };
}

/** How a value reads in an id: lists joined by +, anything but letters, digits and . + - as -. */
const idValue = (v: FlagValue) => (Array.isArray(v) ? v.join("+") : String(v)).replace(/[^A-Za-z0-9.+-]/g, "-");

/**
 * Every point of a sweep, in a fixed order: list entries, then the grid (its first key slowest), then seeds. The id
 * names the flags that vary across the sweep, then the seed: `arms=perp_frac=0.3_seed=0`.
 * @example expandPoints(sweep).map((p) => p.id)
 */
export function expandPoints(s: Sweep): Point[] {
  const varying = [...new Set([...s.list.flatMap((e) => Object.keys(e)), ...Object.keys(s.grid)])];
  const combos = Object.entries(s.grid).reduce<FlagSet[]>((acc, [k, vs]) => acc.flatMap((c) => vs.map((v) => ({ ...c, [k]: v }))), [{}]);
  const points: Point[] = [];
  const ids = new Map<string, number>();
  for (const entry of s.list.length ? s.list : [{}])
    for (const combo of combos)
      for (const seed of s.seeds) {
        const flags: FlagSet = { ...s.flags, ...entry, ...combo, seed };
        const id = [...varying.filter((k) => k in flags), "seed"].map((k) => `${k}=${idValue(flags[k]!)}`).join("_");
        if (ids.has(id)) bad(`sweep "${s.name}": points ${ids.get(id)} and ${points.length} both get the id ${id}`);
        ids.set(id, points.length);
        points.push({ index: points.length, id, flags });
      }
  return points;
}

/** A point's flags as command-line arguments, each `--name=value` (lists comma-separated). */
export const pointArgs = (flags: FlagSet): string[] =>
  Object.entries(flags).map(([k, v]) => `--${k}=${Array.isArray(v) ? v.join(",") : String(v)}`);

/**
 * Check every point's flags against the script's flag specs (what `script --flags-json` prints): an unknown flag or
 * a bad value is a NumedgeError naming the point, before anything runs.
 */
export function checkPointFlags(points: Point[], spec: Record<string, FlagSpec>, script: string): void {
  for (const k of ["seed", "out"]) if (!spec[k]) bad(`script ${script} takes no --${k}, so it cannot run in a sweep`);
  for (const p of points)
    try {
      parseFlagsOrThrow(pointArgs(p.flags), spec);
    } catch (e) {
      if (e instanceof FlagError) bad(`point ${p.id} of ${script}: ${e.message.replace(" (try --help)", "")}`);
      throw e;
    }
}

/** The flag specs a script built on parseFlags prints with --flags-json, or null when it prints none. */
export function scriptFlagSpec(runtime: string[], script: string): Record<string, FlagSpec> | null {
  const r = spawnSync(runtime[0]!, [...runtime.slice(1), script, "--flags-json"], { encoding: "utf8", timeout: 60_000 });
  try {
    return r.status === 0 ? JSON.parse(r.stdout) : null;
  } catch {
    return null;
  }
}

/**
 * The index a job runner gives this process: --index, else JOB_COMPLETION_INDEX (Kubernetes Indexed Jobs), else
 * SLURM_ARRAY_TASK_ID; undefined when none is set. It must name one of `count` points.
 */
export function runnerIndex(flag: number | undefined, env: Record<string, string | undefined>, count: number): number | undefined {
  const [from, raw] = flag !== undefined ? ["--index", String(flag)]
    : env.JOB_COMPLETION_INDEX !== undefined ? ["JOB_COMPLETION_INDEX", env.JOB_COMPLETION_INDEX]
    : env.SLURM_ARRAY_TASK_ID !== undefined ? ["SLURM_ARRAY_TASK_ID", env.SLURM_ARRAY_TASK_ID] : [];
  if (raw === undefined) return undefined;
  const i = Number(raw);
  if (!/^\d+$/.test(raw.trim()) || i >= count) bad(`${from} is ${JSON.stringify(raw)}, not a point index (0 to ${count - 1})`);
  return i;
}

/** How to run a sweep's points: `runtime... script --flag=value... --out=.` in each point's folder under `dir`. */
export interface SweepRunner {
  /** The runtime and its arguments: [process.execPath], or [deno, "run", "-A"]. */
  runtime: string[];
  script: string;
  /** The sweep's folder, <out>/<name>. */
  dir: string;
}

export interface Outcome {
  status: "done" | "skipped" | "failed";
  seconds: number;
  exitCode?: number | null;
  signal?: string | null;
}

/** Write `file` whole or not at all (several array tasks may write the same sweep.json at once). */
function writeAtomic(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}

/** Write <dir>/sweep.json: the checked sweep and its points, which `aggregate` reads. Same file -> same bytes. */
export function writeSweepJson(dir: string, sweep: Sweep, points: Point[]): void {
  mkdirSync(dir, { recursive: true });
  writeAtomic(join(dir, "sweep.json"), JSON.stringify({ ...sweep, points }, null, 2) + "\n");
}

/**
 * Run one point in <dir>/<id>/ (point.json, the script's run folder, stdout.txt, stderr.txt). A folder with a
 * summary.json is skipped; a run that fails (exit code, signal, or no summary.json) leaves failed.json with its
 * exit code and the tail of its stderr. The script runs in the point's folder with --out=., so its recorded
 * command is the same wherever the sweep's folder is.
 */
export async function runPoint(p: Point, r: SweepRunner): Promise<Outcome> {
  const dir = join(r.dir, p.id);
  if (existsSync(join(dir, "summary.json"))) return { status: "skipped", seconds: 0 };
  mkdirSync(dir, { recursive: true });
  rmSync(join(dir, "failed.json"), { force: true });
  writeFileSync(join(dir, "point.json"), JSON.stringify(p, null, 2) + "\n");
  const out = openSync(join(dir, "stdout.txt"), "w"), err = openSync(join(dir, "stderr.txt"), "w");
  const t0 = performance.now();
  const end = await new Promise<{ code: number | null; signal: string | null; error?: string }>((done) => {
    const child = spawn(r.runtime[0]!, [...r.runtime.slice(1), r.script, ...pointArgs(p.flags), "--out=."], { cwd: dir, stdio: ["ignore", out, err] });
    child.on("error", (e) => done({ code: null, signal: null, error: e.message }));
    child.on("close", (code, signal) => done({ code, signal }));
  });
  closeSync(out);
  closeSync(err);
  const seconds = (performance.now() - t0) / 1000;
  if (end.code === 0 && existsSync(join(dir, "summary.json"))) return { status: "done", seconds };
  const stderr = readFileSync(join(dir, "stderr.txt"), "utf8").trimEnd().split("\n").slice(-20).join("\n");
  const stderrTail = end.error ?? (stderr || (end.code === 0 ? "exited 0 without writing summary.json" : ""));
  writeFileSync(join(dir, "failed.json"), JSON.stringify({ index: p.index, id: p.id, exitCode: end.code, signal: end.signal, seconds, stderrTail }, null, 2) + "\n");
  return { status: "failed", seconds, exitCode: end.code, signal: end.signal };
}

/**
 * Run points as `jobs` processes at a time; `onEnd` hears of each point as it ends.
 * @example await runPool(points, 2, runner, (p, o) => console.log(p.id, o.status))
 */
export async function runPool(points: Point[], jobs: number, r: SweepRunner, onEnd: (p: Point, o: Outcome) => void = () => {}): Promise<Outcome[]> {
  const results: Outcome[] = new Array(points.length);
  let next = 0;
  const worker = async () => {
    while (next < points.length) {
      const i = next++;
      results[i] = await runPoint(points[i]!, r);
      onEnd(points[i]!, results[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(jobs, points.length)) }, worker));
  return results;
}

/** Slurm's --array value for these indices: runs of consecutive ones as a-b, `%parallel` at most at once. */
export function arraySpec(indices: number[], parallel?: number): string {
  const parts: string[] = [];
  for (let i = 0; i < indices.length; ) {
    let j = i;
    while (j + 1 < indices.length && indices[j + 1] === indices[j]! + 1) j++;
    parts.push(j === i ? String(indices[i]) : `${indices[i]}-${indices[j]}`);
    i = j + 1;
  }
  return parts.join(",") + (parallel ? `%${parallel}` : "");
}

const shq = (s: string) => (/^[A-Za-z0-9_./=:%+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

/**
 * The sbatch script of a sweep: a job array whose task i runs `command... --index i` from `cwd`; Slurm's own log
 * of each task goes to <dir>/slurm-<job>_<task>.out.
 */
export function sbatchScript(o: { sweep: Sweep; array: string; dir: string; cwd: string; command: string[]; points: number }): string {
  return [
    "#!/bin/bash",
    `#SBATCH --job-name=${shq(o.sweep.name)}`,
    `#SBATCH --array=${o.array}`,
    `#SBATCH --output=${shq(`${o.dir}/slurm-%A_%a.out`)}`,
    ...Object.entries(o.sweep.slurm).map(([k, v]) => `#SBATCH --${k}=${shq(String(v))}`),
    `# numedge sweep ${o.sweep.name}: ${o.points} points; array task i runs point i`,
    `cd ${shq(o.cwd)}`,
    `exec ${o.command.map(shq).join(" ")} --index "$SLURM_ARRAY_TASK_ID"`,
    "",
  ].join("\n");
}
