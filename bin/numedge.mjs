#!/usr/bin/env node
// `npx numedge <script> [flags]` / `bunx numedge ...`: runs a shipped experiment script in the runtime that runs
// this file (Node >= 20, Bun, Deno). The scripts are scripts/*.ts, compiled to dist/scripts/*.js on build, so no
// TypeScript loader is needed; under Bun, "numedge" resolves to the sources and the cuda backend is available.
const SCRIPTS = {
  grok: "grokking at the edge of numerical stability (baseline, perp, stablemax arms)",
  moe: "load balancing in a toy mixture of experts (none, aux loss, bias updates)",
  quant: "8-bit Adam states: 32-bit vs dynamic block-wise vs linear per-tensor",
  "gpu-check": "what GPU backends numedge finds, and each op timed against wasm",
  sweep: "run a sweep file's points: local processes (--jobs), a Slurm job array (--slurm), or one (--index)",
  aggregate: "a sweep's metrics across seeds (mean ± std), missing and failed points, a plot",
};
const [name, ...args] = process.argv.slice(2);
if (!Object.hasOwn(SCRIPTS, name ?? "")) {
  const usage = "usage: numedge <script> [flags]   (numedge <script> --help lists its flags)\nscripts:\n" +
    Object.entries(SCRIPTS).map(([k, v]) => `  ${k.padEnd(10)} ${v}`).join("\n");
  const asked = name === undefined || name === "--help" || name === "-h";
  (asked ? process.stdout : process.stderr).write(`${asked ? "" : `error: unknown script ${JSON.stringify(name)}\n`}${usage}\n`);
  process.exit(asked ? 0 : 2);
}
const file = new URL(`../dist/scripts/${name}.js`, import.meta.url);
process.argv = [process.argv[0], file.pathname, ...args];
await import(file.href);
