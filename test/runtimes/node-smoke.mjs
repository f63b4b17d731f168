// Plain Node >= 20: the package resolves to dist/ (built on install) and finds its wasm beside it.
const { softmax, crossEntropy } = await import("numedge");
const y = softmax(new Float32Array([-2, 0, 0.5]), { cols: 3 });
const ok = Math.abs(y[2] - 0.592201) < 1e-6 && crossEntropy(new Float32Array([20, 0, 0]), new Int32Array([0]), { cols: 3 }).scFraction === 1;
console.log(ok ? "node smoke: ok" : `node smoke: FAILED ${Array.from(y)}`);
process.exit(ok ? 0 : 1);
