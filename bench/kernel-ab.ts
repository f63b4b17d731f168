// Kernel-only A/B of topk_f32 between two builds of numedge-st.wasm, in one process, interleaved, on the same
// data; the indices of both builds are compared before timing. What a change to asm/topk.ts is recorded with.
// Run: git stash && npm run build:asm && cp build/numedge-st.wasm /tmp/a.wasm && git stash pop && npm run build:asm
//      bun bench/kernel-ab.ts /tmp/a.wasm build/numedge-st.wasm
// Prints min ns per element of each build over 60 alternating samples, and A/B (> 1: B is faster).
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
  const reps = Math.max(1, Math.round(2e6 / (rows * cols)));
  const best = [Infinity, Infinity];
  for (let round = 0; round < 60; round++) {
    for (const w of round & 1 ? [0, 1] : [1, 0]) {
      const run = w ? b.run : a.run, t0 = Bun.nanoseconds();
      for (let r = 0; r < reps; r++) run();
      best[w] = Math.min(best[w]!, (Bun.nanoseconds() - t0) / reps / (rows * cols));
    }
  }
  console.log(`topk [${rows},${cols}] k=${k}: A ${best[0]!.toFixed(3)} ns/elem, B ${best[1]!.toFixed(3)} ns/elem, A/B ${(best[0]! / best[1]!).toFixed(2)}`);
}
