// A sweep's results across seeds: every summary metric per group of flags (the point's flags but the seed), as
// mean ± sample std and counts, the points missing or failed, and a plot of one metric against one flag.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { NumedgeError } from "../errors.ts";
import { svgPlot, type Series } from "./plot.ts";
import { formatTable, toCsv } from "./run.ts";
import type { FlagSet, FlagValue, Point, Sweep } from "./sweep.ts";

/**
 * A summary's numbers as flat dotted names (`arms.perp.stepTo99Test`), arrays by position; the script's `config`
 * is flags, not metrics, and is left out. null stays null (a metric the run never reached).
 */
export function summaryMetrics(summary: unknown): Record<string, number | null> {
  const out: Record<string, number | null> = {};
  const walk = (v: unknown, name: string) => {
    if (typeof v === "number" || v === null) out[name] = v;
    else if (typeof v === "object") for (const [k, x] of Object.entries(v)) if (!(name === "" && k === "config")) walk(x, name ? `${name}.${k}` : k);
  };
  walk(summary, "");
  return out;
}

/** A summary without its wall-clock times (every key named `seconds`): what two runs of one point agree on. */
export function withoutWallClock(summary: unknown): unknown {
  if (Array.isArray(summary)) return summary.map(withoutWallClock);
  if (typeof summary !== "object" || summary === null) return summary;
  return Object.fromEntries(Object.entries(summary).filter(([k]) => k !== "seconds").map(([k, v]) => [k, withoutWallClock(v)]));
}

/** Mean and sample standard deviation (n - 1; null below two values) of the numbers, nulls left out. */
export function meanStd(values: (number | null)[]): { mean: number | null; std: number | null; n: number } {
  const xs = values.filter((v): v is number => v !== null);
  const n = xs.length;
  if (n === 0) return { mean: null, std: null, n };
  const mean = xs.reduce((a, b) => a + b, 0) / n;
  const std = n < 2 ? null : Math.sqrt(xs.reduce((a, x) => a + (x - mean) ** 2, 0) / (n - 1));
  return { mean, std, n };
}

export interface Group {
  /** The group's flags: a point's flags but the seed. */
  flags: FlagSet;
  /** Its varying flags as `k=v, k=v`. */
  label: string;
  /** Points of the group that finished. */
  seeds: number;
  metrics: Record<string, { mean: number | null; std: number | null; n: number }>;
}

export interface Aggregate {
  name: string;
  /** The flags that vary across the sweep, seed aside. */
  varying: string[];
  /** The sweep's grid flags. */
  grid: string[];
  groups: Group[];
  missing: Point[];
  failed: { point: Point; exitCode: number | null; signal: string | null }[];
}

const show = (v: FlagValue | undefined) => (v === undefined ? "" : Array.isArray(v) ? v.join(",") : String(v));

/**
 * Read a sweep's folder (sweep.json and each point's summary.json or failed.json) into groups across seeds.
 * @example const a = aggregateSweep("runs/grok-frac"); console.log(aggregateText(a))
 */
export function aggregateSweep(dir: string): Aggregate {
  const file = join(dir, "sweep.json");
  if (!existsSync(file)) throw new NumedgeError("range", `${dir} is not a sweep folder (no sweep.json; give the folder <out>/<sweep name>)`);
  const sweep = JSON.parse(readFileSync(file, "utf8")) as Sweep & { points: Point[] };
  const varying = [...new Set(sweep.points.flatMap((p) => Object.keys(p.flags)))]
    .filter((k) => k !== "seed" && new Set(sweep.points.map((p) => JSON.stringify(p.flags[k]))).size > 1);
  const groups = new Map<string, Group & { runs: Record<string, number | null>[] }>();
  const missing: Point[] = [], failed: Aggregate["failed"] = [];
  for (const p of sweep.points) {
    const { seed: _, ...flags } = p.flags;
    const key = JSON.stringify(flags);
    if (!groups.has(key)) groups.set(key, { flags, label: varying.map((k) => `${k}=${show(flags[k])}`).join(", "), seeds: 0, metrics: {}, runs: [] });
    const at = join(dir, p.id);
    if (existsSync(join(at, "summary.json"))) groups.get(key)!.runs.push(summaryMetrics(JSON.parse(readFileSync(join(at, "summary.json"), "utf8"))));
    else if (existsSync(join(at, "failed.json"))) {
      const f = JSON.parse(readFileSync(join(at, "failed.json"), "utf8"));
      failed.push({ point: p, exitCode: f.exitCode, signal: f.signal });
    } else missing.push(p);
  }
  const out = [...groups.values()].map(({ runs, ...g }) => {
    const names = [...new Set(runs.flatMap((r) => Object.keys(r)))];
    return { ...g, seeds: runs.length, metrics: Object.fromEntries(names.map((m) => [m, meanStd(runs.map((r) => r[m] ?? null))])) };
  });
  return { name: sweep.name, varying, grid: Object.keys(sweep.grid), groups: out, missing, failed };
}

/** The metric names of a group that `want` names: itself, or any name ending in `.want`. */
const matching = (names: string[], want?: string) => (want === undefined ? names : names.filter((m) => m === want || m.endsWith(`.${want}`)));

/** One row per group and metric: the varying flags, metric, mean, std, n (seeds with a value), seeds. */
function rows(a: Aggregate, metric?: string) {
  return a.groups.flatMap((g) => matching(Object.keys(g.metrics), metric).map((m) => ({ g, m, s: g.metrics[m]! })));
}

export function aggregateCsv(a: Aggregate, metric?: string): string {
  return toCsv(rows(a, metric).map(({ g, m, s }) => ({ ...Object.fromEntries(a.varying.map((k) => [k, show(g.flags[k])])), metric: m, mean: s.mean, std: s.std, n: s.n, seeds: g.seeds })));
}

const num = (v: number | null) => (v === null ? "-" : Number.isInteger(v) ? String(v) : v.toPrecision(4));

/** The table as text, then the missing and failed points, one line each. */
export function aggregateText(a: Aggregate, metric?: string): string {
  const body = rows(a, metric).map(({ g, m, s }) => [...a.varying.map((k) => show(g.flags[k])), m, num(s.mean), num(s.std), `${s.n}/${g.seeds}`]);
  const head = [...a.varying, "metric", "mean", "std", "n/seeds"];
  const lines = [formatTable(head, body, head.map((_, i) => i > a.varying.length))];
  lines.push(`missing: ${a.missing.length ? a.missing.map((p) => `${p.index} ${p.id}`).join("; ") : "none"}`);
  lines.push(`failed: ${a.failed.length ? a.failed.map((f) => `${f.point.index} ${f.point.id} (${f.signal ?? `exit ${f.exitCode}`})`).join("; ") : "none"}`);
  return lines.join("\n") + "\n";
}

/**
 * One metric against one flag, mean with ± std error bars, a line per combination of the other varying flags.
 * @example writeFileSync("aggregate.svg", aggregatePlot(a, "stepTo99Test", "frac"))
 */
export function aggregatePlot(a: Aggregate, metric: string, x: string): string {
  if (!a.varying.includes(x)) throw new NumedgeError("range", `--x ${x} is not a flag that varies in sweep ${a.name} (${a.varying.join(", ") || "none varies"})`);
  const others = a.varying.filter((k) => k !== x);
  const lines = new Map<string, { x: number; y: number; err: number }[]>();
  for (const g of a.groups) {
    const xv = Number(g.flags[x]);
    if (typeof g.flags[x] !== "number") throw new NumedgeError("range", `--x ${x} must be a numeric flag, got ${JSON.stringify(g.flags[x])}`);
    const names = matching(Object.keys(g.metrics), metric);
    if (names.length > 1) throw new NumedgeError("range", `--metric ${metric} names ${names.length} metrics of ${g.label}: ${names.join(", ")}`);
    const s = names.length ? g.metrics[names[0]!]! : { mean: null, std: null };
    const line = others.map((k) => `${k}=${show(g.flags[k])}`).join(", ") || metric;
    if (!lines.has(line)) lines.set(line, []);
    lines.get(line)!.push({ x: xv, y: s.mean ?? NaN, err: s.std ?? 0 });
  }
  if (![...lines.values()].some((l) => l.some((p) => Number.isFinite(p.y)))) throw new NumedgeError("range", `--metric ${metric}: no finished point of sweep ${a.name} has it`);
  const series: Series[] = [...lines].map(([name, ps]) => {
    ps.sort((p, q) => p.x - q.x);
    return { name, x: ps.map((p) => p.x), y: ps.map((p) => p.y), err: ps.map((p) => p.err) };
  });
  const xs = a.groups.map((g) => g.flags[x] as number);
  return svgPlot([{ title: `${metric} vs ${x}: mean ± std over the seeds that have it`, xLabel: x, yLabel: metric, xMin: Math.min(...xs), xMax: Math.max(...xs), series }],
    { title: `sweep ${a.name}`, width: 640, height: 380 });
}
