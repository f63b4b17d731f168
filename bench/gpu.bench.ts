// The cuda backend's kernels on DeviceArrays against numedge's wasm kernels, one process: softmax on the shapes of
// the GPU figures, relu, and a host-array round trip. Kernel time = wall time of N back-to-back calls, closed by
// reading one value back (the copy waits for the queued kernels), median of 5 batches. Run on a machine with an
// NVIDIA GPU: bun run bench/gpu.bench.ts (writes $OUT/gpu-bench.json when OUT is set).
import { alloc, backendInfo, empty, relu, setBackend, softmax, toDevice, type DeviceArray } from "numedge";

const info = await setBackend("cuda").catch((e: Error) => e);
if (info instanceof Error) {
  console.log(`skipped: ${info.message}`);
  process.exit(0);
}
console.log(`gpu bench: bun ${Bun.version}, ${backendInfo().engine}`);
const flag = empty(1, "f32");

function usPer(calls: number, fn: () => void, done: () => void): number {
  fn();
  done();
  const times: number[] = [];
  for (let b = 0; b < 5; b++) {
    const t0 = performance.now();
    for (let i = 0; i < calls; i++) fn();
    done();
    times.push(((performance.now() - t0) / calls) * 1000);
  }
  return times.sort((a, c) => a - c)[2]!;
}

const rows: Record<string, unknown>[] = [];
for (const [r, c] of [[64, 32000], [512, 1024], [4096, 1024], [4096, 64], [1024, 131072]] as const) {
  const n = r * c, x = Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37) * 8);
  const xd = toDevice(x), yd = empty(n, "f32") as DeviceArray;
  const cudaUs = usPer(n > 1e7 ? 20 : 100, () => softmax(xd, { cols: c, out: yd }), () => flag.readSync());
  const hostUs = usPer(5, () => softmax(x, { cols: c }), () => {});
  await setBackend("wasm");
  const xa = alloc(n), ya = alloc(n);
  xa.set(x);
  const wasmUs = usPer(n > 1e7 ? 1 : 5, () => softmax(xa, { cols: c, out: ya }), () => {});
  await setBackend("cuda");
  rows.push({ op: "softmax", shape: `[${r},${c}]`, cuda_us: +cudaUs.toFixed(1), TBs: +((n * 8) / cudaUs / 1e6).toFixed(2), cuda_host_roundtrip_us: +hostUs.toFixed(0), wasm_us: +wasmUs.toFixed(0), wasm_over_cuda: +(wasmUs / cudaUs).toFixed(1) });
  xd.dispose(); yd.dispose();
}
{
  const n = 1 << 26, xd = toDevice(Float32Array.from({ length: n }, (_, i) => Math.sin(i))), yd = empty(n, "f32");
  const us = usPer(50, () => relu(xd, { out: yd }), () => flag.readSync());
  rows.push({ op: "relu", shape: `${n}`, cuda_us: +us.toFixed(1), TBs: +((n * 8) / us / 1e6).toFixed(2) });
}
console.log("| op | shape | cuda µs | TB/s | host round trip µs | wasm µs | wasm / cuda |\n|---|---|---|---|---|---|---|");
for (const r of rows) console.log(`| ${r.op} | ${r.shape} | ${r.cuda_us} | ${r.TBs} | ${r.cuda_host_roundtrip_us ?? "-"} | ${r.wasm_us ?? "-"} | ${r.wasm_over_cuda ?? "-"} |`);
if (process.env.OUT) await Bun.write(`${process.env.OUT}/gpu-bench.json`, JSON.stringify({ engine: backendInfo().engine, date: new Date().toISOString(), rows }, null, 1));
