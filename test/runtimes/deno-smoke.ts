// Deno: `deno run -A test/runtimes/deno-smoke.ts` imports the TypeScript sources directly.
import { crossEntropy, softmax } from "../../src/index.ts";
const y = softmax(new Float32Array([-2, 0, 0.5]), { cols: 3 });
const ok = Math.abs(y[2]! - 0.592201) < 1e-6 && crossEntropy(new Float32Array([20, 0, 0]), new Int32Array([0]), { cols: 3 }).scFraction === 1;
console.log(ok ? "deno smoke: ok" : `deno smoke: FAILED ${Array.from(y)}`);
if (!ok) (globalThis as unknown as { Deno: { exit(c: number): never } }).Deno.exit(1);
