// Where an experiment writes its outputs, and CSV formatting.
import { existsSync, mkdirSync } from "node:fs";

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
