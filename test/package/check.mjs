// numedge as a dependency, as a new user gets it: `npm pack`, `npm install` of the tarball into an empty folder,
// then test/package/use.mjs under Node, Bun and Deno ("npm:numedge" over that node_modules) must print the same
// numbers; the install must hold no tfjs or onnxruntime and stay under 2 MB beside numedge; `npx numedge`
// must run a shipped script into a run folder. Run by .ci/run after `npm ci` (which builds); exits 1 on a failure.
// Usage: node test/package/check.mjs [--keep]   (--keep leaves the temp folder and prints its path)
import { execFileSync, spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const repo = join(import.meta.dirname, "..", "..");
const tmp = mkdtempSync(join(tmpdir(), "numedge-pack-"));
const app = join(tmp, "app");
const env = { ...process.env, ONNXRUNTIME_NODE_INSTALL: "skip", ONNXRUNTIME_NODE_INSTALL_CUDA: "skip", DENO_DIR: join(tmp, "deno"), DENO_NO_UPDATE_CHECK: "1" };
let failed = 0;
const check = (ok, what) => {
  console.log(`${ok ? "ok" : "FAILED"}  ${what}`);
  if (!ok) failed++;
};
const run = (cmd, args, cwd = app) => {
  const r = spawnSync(cmd, args, { cwd, env, encoding: "utf8", timeout: 300_000 });
  return { ok: r.status === 0, out: r.stdout ?? "", err: `${r.stderr ?? ""}${r.error ? r.error.message : ""}` };
};
const duBytes = (p) => {
  const s = statSync(p);
  return s.isDirectory() ? readdirSync(p).reduce((a, f) => a + duBytes(join(p, f)), 0) : s.size;
};

try {
  // 1. Build (what `npm pack` runs as prepare, whose output would mix with --json), pack, and look inside.
  execFileSync("npm", ["run", "--silent", "build"], { cwd: repo, env, stdio: ["ignore", "ignore", "inherit"] });
  const [packed] = JSON.parse(execFileSync("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", tmp], { cwd: repo, env, encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] }));
  const files = new Set(packed.files.map((f) => f.path));
  const want = ["LICENSE", "README.md", "bin/numedge.mjs", "build/numedge.wasm", "dist/index.js", "src/index.ts", "scripts/grok.ts",
    "dist/scripts/grok.js", "dist/scripts/moe.js", "dist/scripts/quant.js", "dist/scripts/gpu-check.js",
    "dist/scripts/sweep.js", "dist/scripts/aggregate.js", "scripts/sweeps/grok-frac.json", "scripts/figures/grok-plot.svg", "docs/backends.md",
    "dist/backends/cuda/kernels.cu", "dist/backends/cuda/kernels.ptx"]; // the cuda backend reads them beside its JS (Deno loads dist/)
  check(want.every((f) => files.has(f)), `tarball ${packed.filename}: ${packed.size} bytes packed, ${packed.unpackedSize} unpacked, ${files.size} files; holds ${want.join(", ")}` +
    (want.some((f) => !files.has(f)) ? ` (missing: ${want.filter((f) => !files.has(f)).join(", ")})` : ""));
  check(![...files].some((f) => /^(test|bench|asm|\.ci)\//.test(f)), "tarball holds no test/, bench/, asm/ or .ci/");

  // 2. Install it into an empty project with npm.
  execFileSync("mkdir", ["-p", app]);
  writeFileSync(join(app, "package.json"), JSON.stringify({ name: "numedge-user", private: true, type: "module" }));
  const inst = run("npm", ["install", "--no-audit", "--no-fund", join(tmp, packed.filename)]);
  check(inst.ok && !/Unknown (project|user) config/.test(inst.out + inst.err), `npm install ./${packed.filename}${inst.ok ? "" : `: ${inst.err}`}`);
  const nm = join(app, "node_modules");
  const top = readdirSync(nm).filter((f) => !f.startsWith("."));
  check(top.join(",") === "numedge", `node_modules holds only numedge (got: ${top.join(", ")})`);
  const pj = JSON.parse(readFileSync(join(nm, "numedge", "package.json"), "utf8"));
  check(!pj.dependencies && !pj.optionalDependencies && pj.peerDependenciesMeta?.["@tensorflow/tfjs-node-gpu"]?.optional === true,
    "no dependencies; @tensorflow/tfjs-node-gpu is an optional peer dependency");
  const own = duBytes(join(nm, "numedge")), rest = duBytes(nm) - own;
  check(rest < 2 << 20, `install size beside numedge's own files: ${rest} bytes (numedge itself: ${own} bytes)`);

  // 3. The same script under three runtimes, through the installed package.
  copyFileSync(join(repo, "test", "package", "use.mjs"), join(app, "use.mjs"));
  writeFileSync(join(app, "use-deno.mjs"), readFileSync(join(app, "use.mjs"), "utf8").replace('from "numedge"', 'from "npm:numedge"'));
  const bin = (name) => join(repo, "node_modules", ".bin", name);
  const outs = {
    node: run(process.execPath, ["use.mjs"]),
    bun: run(bin("bun"), ["use.mjs"]),
    deno: run(bin("deno"), ["run", "-A", "--node-modules-dir=manual", "use-deno.mjs"]),
  };
  for (const [rt, r] of Object.entries(outs)) check(r.ok && r.out.startsWith('{"softmax":'), `${rt}: use.mjs runs${r.ok ? "" : `: ${r.err.trim().split("\n").slice(0, 3).join(" | ")}`}`);
  check(outs.bun.out === outs.node.out && outs.deno.out === outs.node.out && outs.node.out !== "", `node, bun and deno print the same numbers (${outs.node.out.length} bytes: ${outs.node.out.slice(0, 60)}...)`);

  // 4. The command: usage, a script's --help, and a short run writing the run folder (under Node, then Bun).
  const usage = run("npx", ["--no-install", "numedge"]);
  check(usage.ok && /grok/.test(usage.out) && /gpu-check/.test(usage.out), "npx numedge: lists the scripts");
  const help = run("npx", ["--no-install", "numedge", "grok", "--help"]);
  check(help.ok && /baseline/.test(help.out) && /reference/.test(help.out), "npx numedge grok --help: lists the arms and backends");
  for (const [how, cmd, args, runtime] of [["npx numedge", "npx", ["--no-install", "numedge"], "node"], ["bunx --bun numedge", bin("bunx"), ["--bun", "numedge"], "bun"]]) {
    const dir = join(tmp, `moe-${runtime}`);
    const r = run(cmd, [...args, "moe", "--steps", "3", "--batch", "32", "--out", dir]);
    const got = ["config.json", "log.csv", "table.txt", "plot.svg", "summary.json"].filter((f) => existsSync(join(dir, f)));
    check(r.ok && got.length === 5, `${how} moe --steps 3 --out DIR: writes ${got.join(", ")}${r.ok ? "" : `: ${r.err.trim().split("\n").slice(-2).join(" | ")}`}`);
    const g = run(cmd, [...args, "gpu-check", "--sizes", "1e3", "--reps", "1"]);
    check(g.ok && g.out.startsWith(`numedge gpu-check (${runtime} `) && /^cuda: /m.test(g.out), `${how} gpu-check: runs under ${runtime}: ${g.out.split("\n")[0]}${g.ok ? "" : ` ${g.err.trim().split("\n").slice(-1)}`}`);
  }
} catch (e) {
  check(false, `check stopped: ${e instanceof Error ? e.message : String(e)}`);
} finally {
  if (process.argv.includes("--keep")) console.log(`kept ${tmp}`);
  else rmSync(tmp, { recursive: true, force: true });
}
console.log(failed ? `package check: ${failed} failed` : "package check: ok");
process.exit(failed ? 1 : 0);
