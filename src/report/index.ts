// Utilities for experiment scripts: seeded randomness, progress bars, flags, run directories, SVG plots, sweeps.
export { Rng, hash01 } from "./rng.ts";
export { progress } from "./progress.ts";
export { parseFlags, parseFlagsOrThrow, FlagError, type FlagSpec, type Flags } from "./flags.ts";
export { runDir, outDir, orExit, toCsv, formatTable, RunFolder, type RunOutputs } from "./run.ts";
export { svgPlot, type Panel, type Series } from "./plot.ts";
export {
  parseSweep, expandPoints, pointArgs, checkPointFlags, scriptFlagSpec, runnerIndex, writeSweepJson, runPoint, runPool, arraySpec, sbatchScript,
  type Sweep, type Point, type FlagSet, type FlagValue, type SweepRunner, type Outcome,
} from "./sweep.ts";
export { aggregateSweep, aggregateCsv, aggregateText, aggregatePlot, summaryMetrics, withoutWallClock, meanStd, type Aggregate, type Group } from "./aggregate.ts";
