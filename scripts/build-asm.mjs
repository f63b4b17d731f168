// Compiles asm/index.ts (which re-exports every kernel file) to build/numedge.wasm.
// One module so every kernel shares one linear memory and one allocator (see src/backends/wasm/runtime.ts).
import { execFileSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const asc = join(root, "node_modules", "assemblyscript", "bin", "asc.js");
mkdirSync(join(root, "build"), { recursive: true });
const common = ["asm/index.ts", "-O3", "--noAssert", "--runtime", "stub", "--use", "abort=",
  "--initialMemory", "256", "--maximumMemory", "65536"];
execFileSync(process.execPath, [asc, ...common, "--enable", "simd", "--outFile", "build/numedge.wasm"],
  { cwd: root, stdio: "inherit" });
console.log("build/numedge.wasm written");
