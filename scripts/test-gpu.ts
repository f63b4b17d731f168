// npm run test:gpu: the test suite with the cuda backend required. Without a usable GPU it prints one line saying
// why and counts nothing as passed. Extra arguments are passed to bun test (files, -t filters).
import { spawnSync } from "node:child_process";
import { setBackend } from "numedge";

const why = await setBackend("cuda").then(() => null, (e: Error) => e.message);
if (why !== null) {
  console.log(`skipped: ${why}`);
  console.log("0 passed, 0 failed");
  process.exit(0);
}
const r = spawnSync(process.execPath, ["test", "--timeout", "120000", ...(process.argv.length > 2 ? process.argv.slice(2) : [])], { stdio: "inherit" });
process.exit(r.status ?? 1);
