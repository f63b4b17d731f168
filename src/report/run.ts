// Where an experiment writes its outputs, set-up errors as one line, and CSV formatting.
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
