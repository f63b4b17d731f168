// The cuda backend's TypeScript over an emulated GPU (test/gpu/emulated-driver.ts), where the parity suites do not
// look: host-array calls leave no device allocation behind, kernels run on device buffers (no staging) where
// cuda has a kernel, the others are staged and listed, and backendInfo describes it.
import { describe, expect, test } from "bun:test";
import { backendInfo, crossEntropy, matmul, relu, setBackend, softmax, toDevice } from "numedge";
import { emulated } from "./parity.ts";

describe("cuda backend over an emulated GPU", () => {
  test("info: gpu, staged ops listed; host-array calls free every temporary device buffer", async () => {
    const i = await setBackend("cuda-emulated");
    expect(i).toMatchObject({ name: "cuda", id: "cuda-emulated", device: "gpu" });
    expect(i.stagedOps).toContain("gemm");
    expect(i.stagedOps).not.toContain("softmax");
    const before = emulated.liveBytes();
    const x = Float32Array.from({ length: 12 * 33 }, (_, k) => Math.sin(k));
    softmax(x, { cols: 33 });
    softmax(x, { cols: 33, out: x }); // in place on a host array: input and output temporaries are separate
    relu(x);
    crossEntropy(x, new Int32Array(12), { cols: 33 });
    expect(emulated.liveBytes()).toBe(before);
    await setBackend("wasm");
  });

  test("DeviceArray calls launch cuda kernels for the softmax family and relu, and stage the rest", async () => {
    await setBackend("cuda-emulated");
    const x = toDevice(Float32Array.from({ length: 8 * 16 }, (_, k) => Math.cos(k)));
    emulated.launches.length = 0;
    softmax(x, { cols: 16 });
    relu(x);
    matmul(x, x, { m: 8, k: 16, n: 8, transB: true }); // no cuda kernel yet: staged through wasm
    expect(emulated.launches).toEqual(["softmax_f32", "relu_f32"]);
    expect(backendInfo().stagedOps).toContain("gemm");
    x.dispose();
    await setBackend("wasm");
  });
});
