// The cuda backend on a real GPU: storage, kernels against the f64 reference, the row rules, device errors, and a
// device-resident training run equal to wasm's. The parity suites (test/*.test.ts) also run on cuda where a GPU is.
// Without one this file says so in one line and defines no test.
import { describe, expect, test } from "bun:test";
import { DeviceArray, NumedgeError, empty, logSoftmax, relu, setBackend, softmax, stablemax, toDevice } from "numedge";
import { cudaUnavailable, underReference } from "../parity.ts";
import { expectClose, grokOn } from "./grok-compare.ts";
import { quantOn } from "./quant-compare.ts";

if (cudaUnavailable !== null) console.log(`skipped: cuda tests (${cudaUnavailable})`);
else {
  describe("cuda backend", () => {
    test("backendInfo: device gpu, the engine names the GPU, how kernels were built and what runs matmul; nothing staged", async () => {
      const i = await setBackend("cuda");
      expect(i).toMatchObject({ name: "cuda", id: "cuda", device: "gpu" });
      expect(i.engine).toMatch(/cuda: .* \(sm_\d+.*; matmul: (cuBLAS|NVRTC GEMM kernel)/);
      expect(i.stagedOps).toEqual([]);
      expect(i.thresholdKey).toMatch(/^cuda:.* sm_\d+$/);
      console.log(`cuda engine: ${i.engine}`);
      await setBackend("wasm");
    });

    test("storage: every dtype round-trips, zero, copy, sizes 0 to 2^24", async () => {
      await setBackend("cuda");
      for (const n of [0, 1, 3, 1 << 12, 1 << 24]) {
        const h = Float32Array.from({ length: n }, (_, i) => Math.sin(i));
        const d = toDevice(h);
        expect(d.backend).toBe("cuda");
        expect(d.readSync()).toEqual(h);
        d.zero();
        expect((await d.read()).every((v) => v === 0)).toBe(true);
        d.dispose();
      }
      for (const h of [Float64Array.of(1.5, -2, 1e300), Int32Array.of(-7, 0, 2 ** 31 - 1), Uint8Array.of(0, 255, 9), Int8Array.of(-128, 127, 0)]) {
        const d = toDevice(h);
        expect(d.readSync()).toEqual(h as never);
        d.dispose();
      }
      await setBackend("wasm");
    });

    test("softmax family on long and short rows within the wasm bounds; NaN, +Infinity and all -Infinity rows NaN", async () => {
      await setBackend("cuda");
      for (const [rows, cols] of [[3, 131072], [1024, 1], [257, 33], [2, 4099]] as const) {
        const x = Float32Array.from({ length: rows * cols }, (_, i) => Math.sin(i * 0.37) * 40);
        for (const op of [softmax, logSoftmax, stablemax] as const) {
          const got = (op(toDevice(x), { cols }) as DeviceArray).readSync() as Float32Array;
          const want = underReference(() => op(Float64Array.from(x), { cols }));
          for (let i = 0; i < got.length; i++) {
            const w = want[i]!, bound = op === logSoftmax ? 4e-7 * Math.max(1, Math.abs(w)) : w >= 1e-30 ? 1e-6 * w : 1e-30;
            if (!(Math.abs(got[i]! - w) <= bound)) throw new Error(`${op.name} [${rows},${cols}] at ${i}: ${got[i]} vs ${w}`);
          }
        }
      }
      const special = Float32Array.of(1, NaN, 2, 1, Infinity, 2, -Infinity, -Infinity, -Infinity, 0, 1, 2);
      const y = softmax(toDevice(special), { cols: 3 }).readSync() as Float32Array;
      expect(Array.from(y.subarray(0, 9)).every((v) => Number.isNaN(v))).toBe(true);
      expect(y[11]).toBeCloseTo(0.665241, 6);
      expect(Array.from(relu(toDevice(Float32Array.of(-1, -0, NaN, 2))).readSync())).toEqual([0, 0, NaN, 2]);
      await setBackend("wasm");
    });

    test("out of device memory: NumedgeError(range) naming the bytes asked and free; the backend stays usable", async () => {
      await setBackend("cuda");
      const held: DeviceArray[] = [];
      let err: unknown;
      try {
        for (let i = 0; i < 64 && !err; i++) {
          try { held.push(empty(2 ** 31 - 1, "f64")); } catch (e) { err = e; }
        }
      } finally {
        for (const d of held) d.dispose();
      }
      expect(err).toBeInstanceOf(NumedgeError);
      expect((err as NumedgeError).code).toBe("range");
      expect((err as NumedgeError).message).toMatch(/asked for \d+ bytes, \d+ free/);
      expect(softmax(toDevice(Float32Array.of(0, Math.log(3))), { cols: 2 }).readSync()[1]).toBeCloseTo(0.75, 6);
      await setBackend("wasm");
    });

    test("affine, ggml, block-wise (nearest, stochastic), 4-bit (double-quantized) quantizers and 8-bit Adam steps equal wasm's bit for bit (host arrays and DeviceArrays, tails, halves, bad groups)", async () => {
      const [a, b] = await quantOn(["cuda", "wasm"]);
      for (const key of Object.keys(b!)) expect(a![key], key).toEqual(b![key]!);
    }, 60_000);

    test("a device-resident grok run on cuda tracks wasm's (GEMM sums in another order: within 1e-3)", async () => {
      const [a, b] = await grokOn(["cuda", "wasm"]);
      expectClose(a!, b!);
    });
  });
}
