// Deno: the cuda backend's FFI through Deno.dlopen. Without a GPU, setBackend("cuda") must fail cleanly naming
// what is missing (the driver), not the runtime; with one (or the tests' fake libcuda.so.1 named by NUMEDGE_LIBCUDA),
// softmax, top-k and grok steps on cuda must match wasm; where a libnvrtc loads (NUMEDGE_NVRTC or ldconfig), NVRTC
// must compile kernels.cu to the same PTX as the shipped kernels.ptx (built under Bun).
// Run: deno run -A test/runtimes/deno-cuda.ts
import { readFileSync } from "node:fs";
import * as numedge from "../../src/index.ts";
import { NumedgeError, setBackend } from "../../src/index.ts";
import { compareWithWasm } from "./cuda-compare.ts";
import { loadFfi } from "../../src/backends/cuda/ffi.ts";
import { PTX_HASH_PREFIX, kernelSource, nvrtcCompile, portablePtx } from "../../src/backends/cuda/nvrtc.ts";

function fail(why: string): never {
  console.log(`deno cuda: FAILED ${why}`);
  return (globalThis as unknown as { Deno: { exit(c: number): never } }).Deno.exit(1);
}
const ffi = await loadFfi();
if (typeof ffi === "string" || ffi.runtime !== "deno") fail(`no Deno FFI: ${String(ffi)}`);
let line = "";
try {
  const info = await setBackend("cuda");
  line = `cuda backend up: ${info.engine}`;
  const why = await compareWithWasm(numedge, ["cuda"]);
  if (why) fail(why);
  line += "; softmax, topk and grok steps (a recorded graph) match wasm";
  await setBackend("wasm");
} catch (e) {
  if (!(e instanceof NumedgeError) || e.code !== "backend") fail(`setBackend("cuda") threw ${String(e)}`);
  const msg = (e as Error).message;
  if (/Deno|runtime|Bun/i.test(msg) && !/libcuda|driver|device/i.test(msg)) fail(`the reason names the runtime: ${msg}`);
  line = `no GPU here, cleanly: ${msg.split("\n")[0]}`;
}
const { src, hash } = kernelSource();
const r = nvrtcCompile(typeof ffi === "string" ? fail("") : ffi, src, "compute_75");
if ("missing" in r) console.log(`deno cuda: ok (${line}); NVRTC part skipped: ${r.missing}`);
else {
  const shipped = readFileSync(new URL("../../src/backends/cuda/kernels.ptx", import.meta.url), "utf8");
  if (!shipped.startsWith(`${PTX_HASH_PREFIX}${hash}\n`)) fail("kernels.ptx is older than kernels.cu");
  if (shipped.slice(shipped.indexOf("\n") + 1) !== portablePtx(new TextDecoder().decode(r.bytes))) fail("NVRTC under Deno built different PTX");
  console.log(`deno cuda: ok (${line}); NVRTC under Deno built the shipped PTX (${r.bytes.length} bytes)`);
}
