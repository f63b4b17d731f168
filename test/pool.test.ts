// The worker pool's failure path: a worker that dies holding a chunk (out of memory, terminated) must not leave the
// caller waiting forever on it. The supervisor thread sees the exit and wakes the caller, which throws.
import { afterAll, expect, test } from "bun:test";
import { NumedgeError, alloc, backendInfo, setBackend, setThreads, softmax, threads } from "numedge";
import { poolKill, poolStats } from "../src/backends/wasm/pool.ts";
import { uniform } from "./helpers.ts";

await setBackend("wasm");
const initial = threads();
afterAll(() => setThreads(initial));

const r = uniform(11), rows = 64, cols = 32000;
const x = alloc(rows * cols), y = alloc(rows * cols);
for (let i = 0; i < x.length; i++) x[i] = (r() * 2 - 1) * 4;
const bytes = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength).slice();

async function poolUp(): Promise<number> {
  softmax(x, { cols, out: y }); // starts the workers
  for (let i = 0; i < 500 && poolStats().ready < threads() - 1; i++) await new Promise((res) => setTimeout(res, 10));
  expect(poolStats().ready).toBe(threads() - 1);
  return poolStats().workerChunks;
}

test("a worker dying mid-chunk: the caller throws naming it, later calls run on one thread, setThreads() starts a new pool", async () => {
  setThreads(1);
  const want = bytes(softmax(x, { cols, out: y }));
  setThreads(2);
  await poolUp();
  poolKill(1);
  // worker 1 exits as soon as it claims a chunk; a call whose chunks the caller all took first leaves it armed
  let err: unknown;
  for (let i = 0; i < 200 && err === undefined; i++) {
    try {
      softmax(x, { cols, out: y });
    } catch (e) {
      err = e;
    }
  }
  expect(err).toBeInstanceOf(NumedgeError);
  expect((err as NumedgeError).code).toBe("backend");
  expect((err as NumedgeError).message).toContain("pool worker 1 exited");
  expect(threads()).toBe(1);
  expect(backendInfo().threadsNote).toContain("pool worker 1 exited");
  expect(bytes(softmax(x, { cols, out: y }))).toEqual(want);

  setThreads(2);
  expect(backendInfo().threadsNote).toBeUndefined();
  const c0 = await poolUp();
  for (let i = 0; i < 200 && poolStats().workerChunks === c0; i++) expect(bytes(softmax(x, { cols, out: y }))).toEqual(want);
  expect(poolStats().workerChunks).toBeGreaterThan(c0);
}, 60_000);
