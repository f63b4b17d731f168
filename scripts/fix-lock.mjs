// Run after any `npm install` that rewrites package-lock.json. The registry mirror our machines use carries
// deno's platform binary only for linux-x64, so npm leaves the other @deno/* optional packages out of the
// lock and `npm ci` then refuses it as out of sync. This adds their entries back (os/cpu-gated: they never
// install on a machine they don't match, and install normally from the public registry where they do).
import { readFileSync, writeFileSync } from "node:fs";

const path = new URL("../package-lock.json", import.meta.url);
const lock = JSON.parse(readFileSync(path, "utf8"));
const pk = lock.packages;
const version = pk["node_modules/deno"]?.version;
if (!version) throw new Error("deno is not in package-lock.json");
const platforms = {
  "darwin-arm64": ["darwin", "arm64"], "darwin-x64": ["darwin", "x64"], "linux-arm64-glibc": ["linux", "arm64", "glibc"],
  "linux-x64-glibc": ["linux", "x64", "glibc"], "win32-arm64": ["win32", "arm64"], "win32-x64": ["win32", "x64"],
};
let added = 0;
for (const [name, [os, cpu, libc]] of Object.entries(platforms)) {
  const key = `node_modules/@deno/${name}`;
  if (pk[key]) continue;
  pk[key] = { version, cpu: [cpu], dev: true, ...(libc ? { libc: [libc] } : {}), license: "MIT", optional: true, os: [os] };
  added++;
}
lock.packages = Object.fromEntries(Object.entries(pk).sort(([a], [b]) => (a === "" ? -1 : b === "" ? 1 : a < b ? -1 : a > b ? 1 : 0)));
writeFileSync(path, JSON.stringify(lock, null, 2) + "\n");
console.log(`package-lock.json: ${added} @deno platform entries added`);
