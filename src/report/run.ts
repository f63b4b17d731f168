// Where an experiment writes its outputs (one run-folder layout for every script), set-up errors as one line, and
// CSV and text-table formatting.
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { NumedgeError } from "../errors.ts";
import { FlagError } from "./flags.ts";

/**
 * Create and return `runs/<prefix>-<YYYYMMDD-HHMMSS>` (UTC; suffixed -2, -3... if taken).
 * @example const dir = runDir("grok"); writeFileSync(`${dir}/config.json`, JSON.stringify(cfg))
 */
export function runDir(prefix: string, root = "runs"): string {
  const t = new Date().toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15);
  let dir = `${root}/${prefix}-${t}`;
  for (let i = 2; existsSync(dir); i++) dir = `${root}/${prefix}-${t}-${i}`;
  mkdirSync(dir, { recursive: true });
  return dir;
}

/**
 * The output folder of a run: `dir` (created if needed) or a new runDir(prefix), checked writable with a probe file.
 * An unusable folder is a FlagError naming --out, so orExit() prints one line.
 * @example const dir = outDir("grok", flags.out)
 */
export function outDir(prefix: string, dir?: string): string {
  try {
    const d = dir ?? runDir(prefix);
    mkdirSync(d, { recursive: true });
    const probe = `${d}/.numedge-write-test`;
    writeFileSync(probe, "");
    rmSync(probe);
    return d;
  } catch (e) {
    throw new FlagError(`--out ${JSON.stringify(dir ?? `runs/${prefix}-...`)} is not a writable folder (${e instanceof Error ? e.message.split("\n")[0] : String(e)})`);
  }
}

/**
 * Run a script's set-up (flag checks, backend, runs, output folder): a FlagError or NumedgeError — a bad flag or an
 * impossible configuration — prints one line on stderr and exits 2, before anything is written.
 * @example const run = await orExit(() => new GrokRun(config))
 */
export async function orExit<T>(setup: () => T | Promise<T>): Promise<T> {
  try {
    return await setup();
  } catch (e) {
    if (!(e instanceof FlagError) && !(e instanceof NumedgeError)) throw e;
    const proc = (globalThis as unknown as { process: { exit(c: number): never; stderr: { write(s: string): void } } }).process;
    proc.stderr.write(`error: ${e.message}\n`);
    return proc.exit(2);
  }
}

/**
 * Rows of flat records to CSV (columns from the first row, then any new keys; null/undefined -> empty).
 * @example writeFileSync(`${dir}/log.csv`, toCsv(rows))
 */
export function toCsv(rows: Record<string, number | string | null | undefined>[]): string {
  const cols: string[] = [];
  for (const r of rows) for (const k of Object.keys(r)) if (!cols.includes(k)) cols.push(k);
  const cell = (v: number | string | null | undefined) =>
    v === null || v === undefined ? "" : typeof v === "number" ? String(v) : /[",\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v;
  return [cols.join(","), ...rows.map((r) => cols.map((c) => cell(r[c])).join(","))].join("\n") + "\n";
}

/**
 * Rows of cells as a text table: a header, a rule, columns as wide as their widest cell, two spaces apart; `right`
 * marks the columns padded on the left (numbers). Nothing is cut, so no cell overflows its column.
 * @example console.log(formatTable(["arm", "test"], [["perp", "100.0%"]], [false, true]))
 */
export function formatTable(head: string[], rows: string[][], right: boolean[] = []): string {
  const width = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (r: string[]) => r.map((v, i) => (right[i] ? v.padStart(width[i]!) : v.padEnd(width[i]!))).join("  ");
  return [line(head), line(width.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

/** What an experiment writes when it ends (see RunFolder). */
export interface RunOutputs {
  /** One flat record per logged step (and arm / method): log.csv. */
  log: Record<string, number | string | null | undefined>[];
  /** The table the script printed: table.txt. */
  table: string;
  /** An SVG document (svgPlot): plot.svg. */
  plot: string;
  /** Final numbers: summary.json, written last. */
  summary: unknown;
}

/**
 * The run folder every experiment script writes: config.json when the run starts, then log.csv, table.txt, plot.svg
 * and, last, summary.json: a folder is a finished run once summary.json exists. The folder is `out` or a new
 * `runs/<prefix>-<time>`; an unusable one is a FlagError naming --out (so orExit prints one line).
 * @example const run = await orExit(() => new RunFolder("moe", flags.out)); run.start(flags); ...; run.finish({ log, table, plot, summary })
 */
export class RunFolder {
  static readonly FILES = ["config.json", "log.csv", "table.txt", "plot.svg", "summary.json"] as const;
  readonly dir: string;

  constructor(prefix: string, out?: string) {
    this.dir = outDir(prefix, out);
  }

  /** Write config.json, and drop the summary.json of an earlier run into the same folder. */
  start(config: unknown): void {
    if (existsSync(`${this.dir}/summary.json`)) rmSync(`${this.dir}/summary.json`);
    this.write("config.json", JSON.stringify(config, null, 2) + "\n");
  }

  /** Write the other four files, summary.json last, and print where they went. */
  finish(o: RunOutputs): void {
    this.write("log.csv", toCsv(o.log));
    this.write("table.txt", o.table.endsWith("\n") ? o.table : o.table + "\n");
    this.write("plot.svg", o.plot);
    this.write("summary.json", JSON.stringify(o.summary, null, 2) + "\n");
    console.log(`wrote ${this.dir}/{${RunFolder.FILES.join(",")}}`);
  }

  private write(file: string, text: string): void {
    writeFileSync(`${this.dir}/${file}`, text);
  }
}
