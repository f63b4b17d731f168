// The tfjs backend as a whole: no tensor leaks across every family, fallbackOps reported, engines switch back
// and forth in one process, inputs untouched.
import { afterAll, describe, expect, test } from "bun:test";
import * as tf from "@tensorflow/tfjs-core";
import {
  adamwStep, backendInfo, combine, crossEntropy, dequantize4bit, dequantizeBlockwise, embeddingSum, embeddingSumBackward,
  logSoftmax, logStablemax, matmul, quantize4bit, quantizeAffine, quantizeBlockwise, relu, reluBackward, route, setBackend,
  softmax, stablemax, topk,
} from "numedge";
import { wasmBackend } from "../src/backends/wasm.ts";

afterAll(() => setBackend("wasm"));

function workload(): void {
  const x = Float32Array.from({ length: 6 * 40 }, (_, i) => Math.sin(i) * 4);
  softmax(x, { cols: 40 }); logSoftmax(x, { cols: 40, temperature: 0.5 }); stablemax(x, { cols: 40 }); logStablemax(x, { cols: 40 });
  crossEntropy(x, new Int32Array([1, 2, 3, 4, 5, 6]), { cols: 40 });
  crossEntropy(x, new Int32Array([1, 2, 3, 4, 5, 6]), { cols: 40, head: "stablemax" });
  topk(x, { cols: 40, k: 3 });
  const r = route(x, { experts: 40, k: 2, normalize: true });
  combine(new Float32Array(r.offsets[40]! * 3).fill(1), r, { hidden: 3 });
  matmul(x, x, { m: 6, k: 40, n: 6, transB: true });
  const y = relu(x); reluBackward(y, x);
  const idx = new Int32Array([0, 1, 2, 3]);
  embeddingSum(x, idx, { cols: 40, per: 2 });
  embeddingSumBackward(new Float32Array(80), idx, new Float32Array(240), { cols: 40, per: 2 });
  adamwStep(x.slice(), x, new Float32Array(240), new Float32Array(240), { lr: 1e-3, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1, step: 1 });
  dequantizeBlockwise(quantizeBlockwise(x, { blockSize: 64 }));
  dequantize4bit(quantize4bit(x, { type: "nf4", blockSize: 64 }));
  quantizeAffine(x, { bits: 8, signed: false });
}

describe("tfjs backend", () => {
  test("every family runs on both engines without leaking tensors; inputs untouched", async () => {
    for (const engine of ["tfjs-wasm", "tfjs-cpu", "tfjs-wasm"] as const) {
      await setBackend(engine);
      workload(); // warm-up: engine-level caches
      const before = tf.memory().numTensors;
      workload();
      expect(tf.memory().numTensors).toBe(before);
      expect(tf.getBackend()).toBe(engine === "tfjs-wasm" ? "wasm" : "cpu");
    }
  });

  test("backendInfo lists the ops that stay on wasm kernels, and only those", async () => {
    const i = await setBackend("tfjs-cpu");
    expect(i).toMatchObject({ name: "tfjs", engine: "tfjs-cpu", device: "cpu" });
    // documented fallbacks (docs/backends.md, "What runs where under the tfjs backend"); a kernel added to a family later also shows up here until ported
    const kernels = Object.keys(wasmBackend);
    for (const op of ["adam8bitStep", "quantizeQ8_0", "quantizeQ4_0", "routeDispatch", "routeTokens"])
      if (kernels.includes(op)) expect(i.fallbackOps).toContain(op);
    for (const op of i.fallbackOps!) expect(kernels).toContain(op);
    for (const op of ["softmax", "crossEntropy", "gemm", "adamw", "topk", "combine", "quantizeBlockwise", "quantize4bit", "quantizeAffine", "adam32Step", "dequantizeQ8_0", "dequantizeQ4_0"])
      expect(i.fallbackOps).not.toContain(op);
    expect(backendInfo().fallbackOps).toEqual(i.fallbackOps);
  });
});
