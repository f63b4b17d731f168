// Plain Node >= 20: the package resolves to dist/ (built on install) and finds its wasm beside it. Also: a wasm
// DeviceArray survives WASM memory growth (Node 20 detaches old views; the array re-derives its view); the worker
// pool gives 1 thread's bits on 3, and its idle workers do not keep the process alive (no process.exit on success).
import { poolSame } from "./pool-check.mjs";
const { softmax, crossEntropy, toDevice, alloc, setThreads, backendInfo } = await import("numedge");
const y = softmax(new Float32Array([-2, 0, 0.5]), { cols: 3 });
let ok = Math.abs(y[2] - 0.592201) < 1e-6 && crossEntropy(new Float32Array([20, 0, 0]), new Int32Array([0]), { cols: 3 }).scFraction === 1;
const x = toDevice(new Float32Array([-2, 0, 0.5]));
alloc(16 << 20); // grows WASM memory
const p = softmax(x, { cols: 3 }).readSync();
ok &&= Math.abs(p[2] - 0.592201) < 1e-6 && x.readSync()[0] === -2;
ok &&= await poolSame({ softmax, setThreads, backendInfo });
console.log(ok ? "node smoke: ok" : `node smoke: FAILED ${Array.from(y)} ${Array.from(p)} ${JSON.stringify(backendInfo())}`);
if (!ok) process.exit(1);
