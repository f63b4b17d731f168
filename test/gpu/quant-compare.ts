// The quantizers on given backends over sizes across tails and groups, adversarial values (exact halves, ties,
// zero groups, one-sided and huge ranges, a non-finite group), with host arrays and DeviceArrays: every output
// as bytes, so a test can ask for another backend's results to equal wasm's bit for bit.
import {
  Adam8bit, DeviceArray, Rng, absmaxOf, dequantize4bit, dequantizeAffine, dequantizeBlockwise, dequantizeQ4_0, dequantizeQ8_0, quantize4bit, quantizeAffine,
  quantizeBlockwise, quantizeQ4_0, quantizeQ8_0, setBackend, toDevice,
} from "numedge";

const SIZES = [1, 15, 16, 17, 32, 100, 257, 4099];

/** Inputs of length n: uniform, exact quarter steps (x / scale on halves), one-sided, tiny, huge, with zero groups. */
function inputs(n: number): Record<string, Float32Array> {
  const rng = new Rng(n);
  return {
    uniform: Float32Array.from({ length: n }, () => rng.normal() * 3),
    quarters: Float32Array.from({ length: n }, () => (rng.int(1200) - 600) * 0.25),
    positive: Float32Array.from({ length: n }, () => rng.uniform(1, 2)),
    tiny: Float32Array.from({ length: n }, () => rng.normal() * 1e-39),
    huge: Float32Array.from({ length: n }, (_, i) => (i % 2 ? 1.6e38 : -1.6e38) * rng.uniform(0, 1)),
    zeros: Float32Array.from({ length: n }, (_, i) => (i < 16 || i >= 100 ? (i % 3 ? 0 : -0) : rng.normal())),
    ties: Float32Array.from({ length: n }, (_, i) => (i % 7 === 3 ? -4 : i % 7 === 5 ? 4 : rng.uniform(-3, 3))), // equal magnitudes, both signs
    subnormal: Float32Array.from({ length: n }, (_, i) => (i % 5 === 0 ? 1e-40 : 0) * (i % 2 ? -1 : 1)), // ggml's d subnormal: 1 / d is Inf
  };
}

const bytes = (a: unknown): number[] => {
  const h = a instanceof DeviceArray ? a.readSync() : (a as ArrayBufferView);
  return Array.from(new Uint8Array(h.buffer, h.byteOffset, h.byteLength));
};

/** Every case's outputs as bytes, one record per backend. */
export async function quantOn(backends: string[]): Promise<Record<string, number[]>[]> {
  const all: Record<string, number[]>[] = [];
  for (const be of backends) {
    await setBackend(be);
    const out: Record<string, number[]> = {};
    for (const device of [false, true]) {
      const put = <T extends Float32Array | Float64Array | Int32Array>(a: T) => (device ? toDevice(a) : a) as T;
      for (const n of SIZES) {
        for (const [name, x] of Object.entries(inputs(n))) {
          const key = `${device ? "device" : "host"} ${name} n=${n}`;
          for (const signed of [true, false]) {
            for (const o of [{ axis: "tensor" as const }, { axis: "block" as const, blockSize: 16 }, { axis: "block" as const, blockSize: 100 }]) {
              const q = quantizeAffine(put(x), { bits: 8, signed, ...o });
              out[`${key} affine signed=${signed} ${JSON.stringify(o)}`] = [...bytes(q.q), ...bytes(q.scale), ...bytes(q.zeroPoint), ...bytes(dequantizeAffine(q))];
            }
            const scale = put(new Float32Array([0.5])), zeroPoint = put(new Int32Array([signed ? -3 : 130]));
            out[`${key} affine given signed=${signed}`] = bytes(quantizeAffine(put(x), { bits: 8, signed, scale, zeroPoint }).q);
          }
          if (n % 32 === 0 || n === 4099) {
            const xg = x.subarray(0, n - (n % 32));
            for (const [name, q, dq] of [["q8_0", quantizeQ8_0, dequantizeQ8_0], ["q4_0", quantizeQ4_0, dequantizeQ4_0]] as const) {
              const b = device ? q(toDevice(xg)).bytes : q(xg);
              out[`${key} ${name}`] = [...bytes(b), ...bytes(dq(b as Uint8Array, xg.length))];
            }
          }
          // a block past 4096 ("tensor" at n=4099) is not held in registers on cuda (absmax, then codes: two reads)
          for (const blockSize of ["tensor", 4096] as const) {
            const b = quantizeBlockwise(put(x), { blockSize });
            out[`${key} blockwise bs=${blockSize}`] = [...bytes(b.codes), ...bytes(b.absmax)];
          }
          for (const blockSize of [64, 256]) {
            const b = quantizeBlockwise(put(x), { blockSize });
            out[`${key} blockwise bs=${blockSize}`] = [...bytes(b.codes), ...bytes(b.absmax), ...bytes(dequantizeBlockwise(b))];
            for (const code of [undefined, "linear" as const]) {
              const st = quantizeBlockwise(put(x), { blockSize, rounding: "stochastic", seed: 2 ** 32 - 7, ...(code ? { code } : {}) });
              out[`${key} stochastic ${code ?? "dynamic"} bs=${blockSize}`] = [...bytes(st.codes), ...bytes(st.absmax)];
            }
            const f = quantize4bit(put(x), { blockSize, type: "nf4" });
            out[`${key} nf4 bs=${blockSize}`] = [...bytes(f.packed), ...bytes(f.absmax), ...bytes(dequantize4bit(f))];
            if (n > 300) { // double quantization: absmax centred, quantized, decoded (from f64 x: the cast too)
              const x64 = Float64Array.from(x, (v, i) => v + i * 1e-9);
              const dq = quantize4bit(put(x64), { blockSize, type: "fp4", doubleQuant: true });
              out[`${key} fp4 double-quant bs=${blockSize}`] = [...bytes(dq.packed), ...bytes(absmaxOf(dq)), ...bytes(dequantize4bit(dq))];
            }
          }
        }
      }
      if (!device) { // double quantization past one centring chunk: 4200 absmax values, summed in chunks of 4096
        const rng = new Rng(5), x = Float32Array.from({ length: 64 * 4200 }, () => rng.normal() * 2);
        const dq = quantize4bit(x, { blockSize: 64, type: "nf4", doubleQuant: true });
        out["host nf4 double-quant 4200 blocks"] = [...bytes(dq.packed), ...bytes(absmaxOf(dq)), ...bytes(dequantize4bit(dq))];
      }
      // 8-bit Adam (block-wise states; tensors under minSize8bit on f32 states), NaN and Infinity gradients, decay,
      // blocks past the 4096 moments the CUDA kernel keeps in registers
      for (const o of [{}, { blockSize: 64, weightDecay: 0.1 }, { code: "linear" as const, blockSize: 4096 }, { blockSize: 8192 }]) {
        const rng = new Rng(9), sizes = [5000, 4096, 300, 9001];
        const params = sizes.map((n) => put(Float32Array.from({ length: n }, () => rng.normal())));
        const opt = new Adam8bit(params, { lr: 0.01, minSize8bit: 4096, ...o });
        for (let step = 0; step < 4; step++) {
          const grads = sizes.map((n) => Float32Array.from({ length: n }, (_, i) => (i === 7 * step ? NaN : i === 11 ? Infinity : rng.normal())));
          opt.step(grads.map(put));
        }
        out[`${device ? "device" : "host"} adam8bit ${JSON.stringify(o)}`] = params.flatMap(bytes);
      }
      // a non-finite group: the first bad group's index (DeviceArrays return it; host calls throw)
      const x = inputs(300).uniform;
      x[150] = NaN;
      x[290] = Infinity;
      const wide = Float32Array.from({ length: 300 }, (_, i) => (i === 120 ? 3e38 : i === 130 ? -3e38 : 1)); // unsigned: the range overflows
      if (device) for (const [o, v] of [[{ signed: true }, x], [{ signed: false }, x], [{ signed: false }, wide]] as const) {
        const q = quantizeAffine(put(v), { bits: 8, axis: "block", blockSize: 100, ...o }) as unknown as { bad: DeviceArray };
        out[`device bad affine ${JSON.stringify(o)} ${v === wide ? "wide" : "nan"}`] = bytes(q.bad);
      }
      // given parameters: a finite group whose range would overflow is not bad (only computed unsigned parameters need the range)
      const given = quantizeAffine(put(wide), { bits: 8, signed: false, axis: "block", blockSize: 100, scale: put(new Float32Array([1e36, 1e36, 1e36])),
        zeroPoint: put(new Int32Array([128, 128, 128])) });
      out[`${device ? "device" : "host"} affine given wide`] = [...bytes(given.q), ...(device ? bytes((given as unknown as { bad: DeviceArray }).bad) : [])];
      if (device) for (const [name, q] of [["q8_0", quantizeQ8_0], ["q4_0", quantizeQ4_0]] as const) out[`device bad ${name}`] = bytes(q(toDevice(x.subarray(0, 288))).bad);
      else {
        try {
          quantizeAffine(x, { bits: 8, axis: "block", blockSize: 100 });
          out["host bad affine"] = [0];
        } catch (e) {
          out["host bad affine"] = [...new TextEncoder().encode(String((e as Error).message))];
        }
      }
    }
    all.push(out);
  }
  await setBackend("wasm");
  return all;
}
