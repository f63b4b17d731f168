// Compiles asm/index.ts (which re-exports every kernel file) to build/numedge.wasm.
// One module so every kernel shares one linear memory and one allocator (see src/backends/wasm/runtime.ts).
// numedge.wasm imports a shared memory (the worker pool's threads each instantiate it over the same memory);
// numedge-st.wasm owns a plain memory, for runtimes without shared memory (one thread).
import { execFileSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const asc = join(root, "node_modules", "assemblyscript", "bin", "asc.js");
mkdirSync(join(root, "build"), { recursive: true });
const common = ["asm/index.ts", "-O3", "--noAssert", "--runtime", "stub", "--use", "abort=",
  "--initialMemory", "256", "--maximumMemory", "65536", "--enable", "simd"];
const build = (flags, out) => {
  execFileSync(process.execPath, [asc, ...common, ...flags, "--outFile", out], { cwd: root, stdio: "inherit" });
  console.log(`${out} written`);
};
// zeroFilledMemory: no zero data segments, so a worker's instantiation rewrites only constant tables
build(["--enable", "threads", "--importMemory", "--sharedMemory", "--zeroFilledMemory"], "build/numedge.wasm");
build([], "build/numedge-st.wasm");
