// What a new user's first script does with the installed package; test/package/check.mjs runs it under Node, Bun
// and Deno (there with "npm:numedge") and compares what they print.
import { crossEntropy, quantizeBlockwise, route, softmax, topk } from "numedge";

const x = Float32Array.from({ length: 32 }, (_, i) => Math.sin(i * 1.7) * 3); // 4 rows of 8
const r = route(x, { experts: 8, k: 2, normalize: true });
const t = topk(x, { cols: 8, k: 3 });
const q = quantizeBlockwise(x, { blockSize: 32 });
const ce = crossEntropy(x, new Int32Array([0, 3, 5, 7]), { cols: 8 });
const out = {
  softmax: Array.from(softmax(x, { cols: 8 })),
  topk: [Array.from(t.values), Array.from(t.indices)],
  route: [Array.from(r.experts), Array.from(r.weights), Array.from(r.counts), r.auxLoss],
  quantizeBlockwise: [Array.from(q.codes), Array.from(q.absmax)],
  crossEntropy: [ce.loss, Array.from(ce.grad)],
};
console.log(JSON.stringify(out));
