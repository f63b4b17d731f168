// The cuda backend's real driver (src/backends/cuda/driver.ts: its FFI calls, kernel parameters, stream, CUDA graph
// capture, out-of-memory and error paths) where there is no GPU: a fake libcuda.so.1 (test/gpu/cpu-cuda/libcuda.cpp)
// serves the CUDA driver API from the CPU device (NUMEDGE_LIBCUDA names it, so a machine with a GPU uses it too), and
// the GPU suites run against it in a child process. What this cannot check is the real library's binary interface.
import { expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { fakeLibcuda } from "./gpu/cpu-driver.ts";

const fake = fakeLibcuda();
if (typeof fake === "string") console.log(`skipped: the cuda backend's driver over a fake libcuda (${fake})`);
else test("the GPU suite and the kernel checks run on `cuda` through driver.ts and a fake libcuda.so.1, all passing", () => {
  const r = Bun.spawnSync([process.execPath, "test", "--timeout", "120000", "test/gpu", "test/cuda-cpu.test.ts"], {
    cwd: fileURLToPath(new URL("..", import.meta.url)),
    env: { ...process.env, NUMEDGE_LIBCUDA: fake.lib, NUMEDGE_CUBLAS: fake.blas, NUMEDGE_NVRTC: "none", NUMEDGE_TEST_BACKENDS: "cuda,wasm" },
    stdout: "pipe", stderr: "pipe",
  });
  const out = r.stdout.toString() + r.stderr.toString(), count = (what: string) => Number(new RegExp(`^ *(\\d+) ${what}$`, "m").exec(out)?.[1] ?? -1);
  expect(out).toMatch(/^cuda engine: cuda: fake libcuda over the CPU device \(sm_90.*matmul: cuBLAS \(libcublas\.so\.13, FP32\)/m);
  expect(out).not.toMatch(/skipped: cuda tests/);
  expect(count("fail"), out.split("\n").filter((l) => l.startsWith("(fail)") || /error/i.test(l)).slice(0, 20).join("\n")).toBe(0);
  expect(count("pass")).toBeGreaterThanOrEqual(27);
  expect(r.exitCode).toBe(0);
}, 600_000);

if (typeof fake !== "string") test("CUDA errors: a launch failure names its kernel and the backend goes on; a sticky one says the context is lost, on every later call", () => {
  const r = Bun.spawnSync([process.execPath, fileURLToPath(new URL("./gpu/fault-check.ts", import.meta.url))], {
    env: { ...process.env, NUMEDGE_LIBCUDA: fake.lib, NUMEDGE_NVRTC: "none" }, stdout: "pipe", stderr: "pipe",
  });
  expect(r.stdout.toString(), r.stderr.toString()).toContain("fault check: ok");
  expect(r.exitCode).toBe(0);
}, 120_000);

if (typeof fake !== "string") test("a driver that finds no GPU: setBackend('cuda') throws NumedgeError('backend') saying so, and wasm goes on", () => {
  for (const [mode, want] of [["no-device", /the NVIDIA driver reports no CUDA device/], ["init-fails", /cuInit failed \(CUDA_ERROR_NO_DEVICE: .*\): the driver found no usable GPU/]] as const) {
    const r = Bun.spawnSync([process.execPath, "-e", `import { setBackend, softmax } from "numedge";
      const e = await setBackend("cuda").then(() => null, (x) => x);
      console.log(e?.name, e?.code, e?.message, softmax(Float32Array.of(0, 0), { cols: 2 })[0]);`], {
      cwd: fileURLToPath(new URL("..", import.meta.url)), env: { ...process.env, NUMEDGE_LIBCUDA: fake.lib, NUMEDGE_FAKE_CUDA: mode }, stdout: "pipe", stderr: "pipe",
    });
    const out = r.stdout.toString();
    expect(out, r.stderr.toString()).toMatch(/^NumedgeError backend backend "cuda" is not usable: /);
    expect(out).toMatch(want);
    expect(out.trim().endsWith(" 0.5")).toBe(true);
  }
}, 60_000);

// Deno from npm ci: the same driver through Deno.dlopen
const deno = fileURLToPath(new URL("../node_modules/.bin/deno", import.meta.url));
if (typeof fake !== "string" && existsSync(deno)) test("under Deno too: setBackend('cuda') comes up on the fake libcuda, softmax, topk and grok (a recorded graph) match wasm", () => {
  const r = Bun.spawnSync([deno, "run", "-A", fileURLToPath(new URL("./runtimes/deno-cuda.ts", import.meta.url))], {
    env: { ...process.env, NUMEDGE_LIBCUDA: fake.lib, NUMEDGE_CUBLAS: fake.blas, NUMEDGE_NVRTC: "none" }, stdout: "pipe", stderr: "pipe",
  });
  const out = r.stdout.toString();
  expect(out, r.stderr.toString()).toMatch(/^deno cuda: ok \(cuda backend up: cuda: fake libcuda.*matmul: cuBLAS \(libcublas\.so\.13.*; softmax, topk and grok steps \(a recorded graph\) match wasm/m);
  expect(r.exitCode).toBe(0);
}, 120_000);
