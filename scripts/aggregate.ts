// A sweep's results across seeds (docs/sweeps.md): every summary metric per group of flags as mean ± std with the
// count of seeds, the missing and failed points, and with --metric a plot of that metric against one flag.
// Usage: numedge aggregate DIR [--metric NAME] [--x FLAG]   (DIR: <out>/<sweep name>, the folder with sweep.json).
// Writes DIR/aggregate.csv, DIR/aggregate.txt and, with --metric, DIR/aggregate.svg.
import { writeFileSync } from "node:fs";
import { NumedgeError, aggregateCsv, aggregatePlot, aggregateSweep, aggregateText, orExit, parseFlags } from "numedge";

const USAGE = "usage: numedge aggregate DIR [flags]  (DIR: a sweep's folder, <out>/<name>)";
const argv = process.argv.slice(2);
const dir = argv[0] !== undefined && !argv[0].startsWith("-") ? argv.shift()! : undefined;
const flags = parseFlags(argv, {
  metric: { type: "string", help: "only this metric (a summary name, or its last part: stepTo99Test), and plot it" },
  x: { type: "string", help: "the flag on the plot's x axis (default: the one numeric grid flag, or numeric flag, that varies)" },
}, USAGE);
if (dir === undefined) {
  process.stderr.write(`error: no sweep folder\n${USAGE}\n`);
  process.exit(2);
}

const { a, plot } = await orExit(() => {
  const a = aggregateSweep(dir);
  if (flags.metric === undefined) return { a, plot: undefined };
  const numeric = a.varying.filter((k) => a.groups.every((g) => typeof g.flags[k] === "number"));
  const inGrid = numeric.filter((k) => a.grid.includes(k));
  const x = flags.x ?? (inGrid.length === 1 ? inGrid[0]! : numeric.length === 1 ? numeric[0]! : undefined);
  if (x === undefined) throw new NumedgeError("range", `give --x, the flag to plot against (varying: ${a.varying.join(", ") || "none"})`);
  return { a, plot: aggregatePlot(a, flags.metric, x) };
});
const text = aggregateText(a, flags.metric);
process.stdout.write(text);
writeFileSync(`${dir}/aggregate.txt`, text);
writeFileSync(`${dir}/aggregate.csv`, aggregateCsv(a, flags.metric));
if (plot) writeFileSync(`${dir}/aggregate.svg`, plot);
console.log(`wrote ${dir}/aggregate.{txt,csv${plot ? ",svg" : ""}}`);
