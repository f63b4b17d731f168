// Utilities for experiment scripts: seeded randomness, progress bars, flags, run directories, SVG plots.
export { Rng, hash01 } from "./rng.ts";
export { progress } from "./progress.ts";
export { parseFlags, parseFlagsOrThrow, FlagError, type FlagSpec, type Flags } from "./flags.ts";
export { runDir, outDir, orExit, toCsv, formatTable, RunFolder, type RunOutputs } from "./run.ts";
export { svgPlot, type Panel, type Series } from "./plot.ts";
