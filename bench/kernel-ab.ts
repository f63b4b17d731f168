// Kernel-only A/B between two builds of numedge-st.wasm, in one process, interleaved, on the same data: topk_f32
// (indices compared first) and absmax int8 quant_affine_f32 (codes and scales compared first). What a change to
// asm/topk.ts or asm/quant.ts is recorded with.
// Run: git stash && npm run build:asm && cp build/numedge-st.wasm /tmp/a.wasm && git stash pop && npm run build:asm
//      bun bench/kernel-ab.ts /tmp/a.wasm build/numedge-st.wasm
// Prints min ns per element of each build over alternating samples, and A/B (> 1: B is faster).
export {}; // a module: top-level await
const [fileA, fileB] = process.argv.slice(2);
if (!fileA || !fileB) throw new Error("usage: bun bench/kernel-ab.ts A.wasm B.wasm");

async function load(file: string) {
  const { instance } = await WebAssembly.instantiate(await Bun.file(file).arrayBuffer(), {});
  const e = instance.exports as any;
  const mem = e.memory as WebAssembly.Memory;
  const base = (e.heapBase() + 0xffff) & ~0xffff; // data past the kernels' static scratch
  mem.grow(600);
  return { e, mem, base };
}
const A = await load(fileA), B = await load(fileB);

/** Min ns per element of a and b over `rounds` alternating samples of `reps` calls each. */
function race(a: () => void, b: () => void, n: number, reps: number, rounds: number): [number, number] {
  const best: [number, number] = [Infinity, Infinity];
  for (let round = 0; round < rounds; round++) {
    for (const w of round & 1 ? [0, 1] : [1, 0]) {
      const run = w ? b : a, t0 = Bun.nanoseconds();
      for (let r = 0; r < reps; r++) run();
      best[w as 0 | 1] = Math.min(best[w as 0 | 1], (Bun.nanoseconds() - t0) / reps / n);
    }
  }
  return best;
}
const line = (what: string, [a, b]: [number, number]) =>
  console.log(`${what}: A ${a.toFixed(3)} ns/elem, B ${b.toFixed(3)} ns/elem, A/B ${(a / b).toFixed(2)}`);

function data(n: number, seed: number): Float32Array { // uniform in [-4, 4), as bench/topk.bench.ts
  const x = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; x[i] = s / 2 ** 32 * 8 - 4; }
  return x;
}

for (const [rows, cols, k] of [[4096, 8, 2], [4096, 64, 6], [4096, 128, 8], [4096, 256, 4], [4096, 256, 8], [1, 32000, 50], [64, 65536, 2048]]) {
  const x = data(rows * cols, 7);
  const setup = (M: Awaited<ReturnType<typeof load>>) => {
    const xp = M.base, vp = xp + rows * cols * 4, ip = vp + rows * k * 4, big = ip + rows * k * 4;
    new Float32Array(M.mem.buffer, xp, rows * cols).set(x);
    return { run: () => M.e.topk_f32(xp, vp, ip, rows, cols, k, 1, big), indices: () => new Int32Array(M.mem.buffer, ip, rows * k) };
  };
  const a = setup(A), b = setup(B);
  a.run(); b.run();
  const ia = a.indices(), ib = b.indices();
  for (let i = 0; i < ia.length; i++) if (ia[i] !== ib[i]) throw new Error(`[${rows},${cols}] k=${k}: builds differ at ${i}`);
  line(`topk [${rows},${cols}] k=${k}`, race(a.run, b.run, rows * cols, Math.max(1, Math.round(2e6 / (rows * cols))), 60));
}

// quantizeAffine with computed parameters on 1M randn floats: signed (absmax int8), and uint8 (DynamicQuantizeLinear)
const n = 1 << 20, x = new Float32Array(n);
for (let i = 0, s = 7; i < n; i++) {
  s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
  const u = s / 2 ** 32;
  s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
  x[i] = Math.sqrt(-2 * Math.log(u + 1e-12)) * Math.cos((2 * Math.PI * s) / 2 ** 32);
}
for (const [g, signed] of [[64, 1], [4096, 1], [100, 1], [64, 0]]) {
  const setup = (M: Awaited<ReturnType<typeof load>>) => {
    const xp = M.base, ng = Math.ceil(n / g), sc = xp + n * 4, zp = sc + ng * 4 + 64, q = zp + ng * 4 + 64, tmp = q + n + 64;
    new Float32Array(M.mem.buffer, xp, n).set(x);
    return { run: () => M.e.quant_affine_f32(xp, n, g, signed, 1, sc, zp, q, tmp),
      out: () => [...new Int8Array(M.mem.buffer, q, n), ...new Float32Array(M.mem.buffer, sc, Math.ceil(n / g)), ...new Int32Array(M.mem.buffer, zp, Math.ceil(n / g))] };
  };
  const a = setup(A), b = setup(B);
  a.run(); b.run();
  const oa = a.out(), ob = b.out();
  for (let i = 0; i < oa.length; i++) if (!Object.is(oa[i], ob[i])) throw new Error(`quant_affine block ${g}: builds differ at ${i}`);
  line(`${signed ? "absmax int8" : "uint8 affine"} 1M block ${g}`, race(a.run, b.run, n, 1, 100));
}
