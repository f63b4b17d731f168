// What a call on host arrays costs beyond its kernel, per op, one process. Run: npm run bench:hostcall (--quick).
// Three ways to call the same wasm kernel on 4M floats:
//   device      inputs and outputs are DeviceArrays (WASM memory): the kernel alone
//   host, out   plain typed arrays in, caller-given plain output arrays reused across calls: kernel + copies
//   host, new   plain typed arrays in, new output arrays every call (the default): + fresh pages for the outputs
// "copies" is what one copy of each input in and each output out costs at this machine's memcpy rate (measured
// here too), so host-out minus device minus copies is the marshalling overhead. Times are min of mitata samples
// (the machine is shared; min is the closest to idle), in ns per element.
import { measure } from "mitata";
import {
  dequantize4bit, dequantizeAffine, dequantizeBlockwise, empty, quantize4bit, quantizeAffine, quantizeBlockwise, relu, softmax, toDevice,
  type DeviceArray, setThreads,
} from "numedge";

setThreads(1); // one thread, as the peers here (bench/threads.bench.ts measures the worker pool)

const quick = process.argv.includes("--quick");
const opts = { min_cpu_time: (quick ? 80 : 300) * 1e6, min_samples: quick ? 4 : 8, max_samples: quick ? 12 : 40 };
const N = 1 << 22;
const x = Float32Array.from({ length: N }, (_, i) => Math.sin(i * 0.37) * 3);
const xd = toDevice(x);

async function ns(fn: () => unknown): Promise<number> {
  fn();
  return (await measure(fn, opts)).min / N;
}

/** ns per byte of one copy between two existing 16 MB buffers (out of cache: what a host call pays per byte). */
async function copyNsPerByte(): Promise<number> {
  const a = new Uint8Array(N * 4), b = new Uint8Array(N * 4);
  a.fill(1);
  return (await ns(() => b.set(a))) / 4;
}

interface Case {
  name: string;
  /** bytes per element copied in and out by a host call */
  bytes: number;
  device: () => unknown;
  hostOut: () => unknown;
  hostNew: () => unknown;
}

const dispose = (r: object) => { for (const v of Object.values(r)) if (v && typeof v === "object" && "dispose" in v) (v as DeviceArray).dispose(); };
const qb = quantizeBlockwise(x, { blockSize: 4096 }), qbd = quantizeBlockwise(xd, { blockSize: 4096 });
const q4 = quantize4bit(x, { blockSize: 64 }), q4d = quantize4bit(xd, { blockSize: 64 });
const qa = quantizeAffine(x, { bits: 8, axis: "block", blockSize: 64 }), qad = quantizeAffine(xd, { bits: 8, axis: "block", blockSize: 64 });
const y = new Float32Array(N), yd = empty(N, "f32");
const codes = new Uint8Array(N), absmax4096 = new Float32Array(N / 4096), absmax64 = new Float32Array(N / 64), packed = new Uint8Array(N / 2);
const q8 = new Int8Array(N), scale = new Float32Array(N / 64), zp = new Int32Array(N / 64);

const CASES: Case[] = [
  { name: "softmax [4096,1024]", bytes: 8, device: () => softmax(xd, { cols: 1024, out: yd }), hostOut: () => softmax(x, { cols: 1024, out: y }), hostNew: () => softmax(x, { cols: 1024 }) },
  { name: "relu", bytes: 8, device: () => relu(xd, { out: yd }), hostOut: () => relu(x, { out: y }), hostNew: () => relu(x) },
  {
    name: "absmax int8 (quantizeAffine, block 64)", bytes: 5,
    device: () => dispose(quantizeAffine(xd, { bits: 8, axis: "block", blockSize: 64 })),
    hostOut: () => quantizeAffine(x, { bits: 8, axis: "block", blockSize: 64, out: { q: q8, scale, zeroPoint: zp } }),
    hostNew: () => quantizeAffine(x, { bits: 8, axis: "block", blockSize: 64 }),
  },
  { name: "dequantizeAffine", bytes: 5, device: () => dequantizeAffine(qad, yd), hostOut: () => dequantizeAffine(qa, y), hostNew: () => dequantizeAffine(qa) },
  {
    name: "quantizeBlockwise (dynamic, 4096)", bytes: 5,
    device: () => dispose(quantizeBlockwise(xd, { blockSize: 4096 })),
    hostOut: () => quantizeBlockwise(x, { blockSize: 4096, out: { codes, absmax: absmax4096 } }),
    hostNew: () => quantizeBlockwise(x, { blockSize: 4096 }),
  },
  { name: "dequantizeBlockwise", bytes: 5, device: () => dequantizeBlockwise(qbd, yd), hostOut: () => dequantizeBlockwise(qb, y), hostNew: () => dequantizeBlockwise(qb) },
  {
    name: "quantize4bit (nf4, 64)", bytes: 4.5,
    device: () => dispose(quantize4bit(xd, { blockSize: 64 })),
    hostOut: () => quantize4bit(x, { blockSize: 64, out: { packed, absmax: absmax64 } }),
    hostNew: () => quantize4bit(x, { blockSize: 64 }),
  },
  { name: "dequantize4bit", bytes: 4.5, device: () => dequantize4bit(q4d, yd), hostOut: () => dequantize4bit(q4, y), hostNew: () => dequantize4bit(q4) },
];

const copy1 = await copyNsPerByte();
console.log(`host-call bench: bun ${Bun.version}, ${N} floats, ${quick ? "quick" : "full"} sampling; memcpy ${(1 / copy1).toFixed(1)} GB/s`);
console.log("\n| op | device (kernel) | host, out given | host, new outputs | copies | host-out overhead beyond copies |");
console.log("|---|---|---|---|---|---|");
for (const c of CASES) {
  const d = await ns(c.device), ho = await ns(c.hostOut), hn = await ns(c.hostNew), cp = copy1 * c.bytes;
  console.log(`| ${c.name} | ${d.toFixed(3)} | ${ho.toFixed(3)} | ${hn.toFixed(3)} | ${cp.toFixed(3)} | ${(ho - d - cp).toFixed(3)} |`);
}
console.log(`load average at the end: ${(await import("node:os")).loadavg().map((v) => v.toFixed(2)).join(" ")} (2 cores, shared)`);
