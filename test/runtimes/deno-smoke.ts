// Deno: `deno run -A test/runtimes/deno-smoke.ts` imports the TypeScript sources directly. The worker pool gives
// 1 thread's bits on 3, and its idle workers do not keep the process alive.
import { backendInfo, crossEntropy, setThreads, softmax } from "../../src/index.ts";
// @ts-ignore: a plain .mjs helper shared with the Node smoke test
import { poolSame } from "./pool-check.mjs";
const y = softmax(new Float32Array([-2, 0, 0.5]), { cols: 3 });
let ok = Math.abs(y[2]! - 0.592201) < 1e-6 && crossEntropy(new Float32Array([20, 0, 0]), new Int32Array([0]), { cols: 3 }).scFraction === 1;
ok &&= await poolSame({ softmax, setThreads, backendInfo });
console.log(ok ? "deno smoke: ok" : `deno smoke: FAILED ${Array.from(y)}`);
if (!ok) (globalThis as unknown as { Deno: { exit(c: number): never } }).Deno.exit(1);
