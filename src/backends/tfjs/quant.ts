// Quant family on tfjs primitives, bit-exact with the reference:
// - quantizeBlockwise (nearest rounding) and quantize4bit: block absmax = max(|x|) over [blocks, blockSize]
//   (the last block zero-padded), v = clip(x * f32(1 / max(absmax, f32(1e-38))), -1, 1), then the code index
//   from tf.searchSorted over per-code decision thresholds computed on the host: between two neighbouring
//   distinct code values a < b, the threshold is the smallest float32 v that the reference's linear argmin
//   (f64 distances, ties to the lower index) sends to b, found by bisection over float32 bit patterns. The
//   256 (or 16) thresholds cost microseconds; the per-element search runs in tfjs.
// - dequantizeBlockwise / dequantize4bit / dequantizeAffine: gathers and one f32 multiply per element.
// - adam32Step: the reference's f32 op order, elements with a non-finite gradient left unchanged.
// - dequantizeQ8_0 / dequantizeQ4_0: the f16 block scale decoded exactly with integer tensor ops and a
//   2^(e-25) table, the int8 / nibble codes unpacked with floorDiv, one exact f32 multiply.
// - quantizeAffine: per-group parameters (absmax / 127, or ONNX DynamicQuantizeLinear's range / 255 and
//   zero point) and saturate(round(x / scale) + zp); tf.round is half-to-even on every engine, as rint.
// On the fallback (wasm): stochastic rounding (a per-element random draw between two neighbours, no tfjs
// primitive that keeps the reference's exact f32 probability arithmetic), ggml Q8_0 / Q4_0 quantization (f16 rounding of the
// scale and C roundf: byte-format work, not tensor math) and adam8bitStep (dequantize, update and requantize both states per block in one pass).
import type { Tensor } from "@tensorflow/tfjs-core";
import type { QuantKernels, QuantKernelsReturning } from "../api/quant.ts";
import { badIntoArray, returningOf } from "../host/quant.ts";
import { compute, computeInto, tin, type Tf, type TfCtx } from "./common.ts";
import { isTfBuf } from "./storage.ts";

const f = Math.fround;
const FLOOR = f(1e-38);

const fbuf = new Float32Array(1), ubuf = new Uint32Array(fbuf.buffer);
/** Order-preserving int for a float32 (both zeros -> 0). */
function keyOf(v: number): number {
  fbuf[0] = v;
  const u = ubuf[0]!;
  return u & 0x80000000 ? -(u & 0x7fffffff) : u;
}
function valOf(k: number): number {
  ubuf[0] = k >= 0 ? k : ((-k) | 0x80000000) >>> 0;
  return fbuf[0]!;
}

interface Search { thresholds: Float32Array; index: Int32Array }
const searchCache = new WeakMap<Float32Array, { copy: Float32Array; s: Search }>();

/** Decision thresholds of the reference's nearest() for this code, and the code index of each interval. */
export function codeSearch(code: Float32Array): Search {
  const hit = searchCache.get(code);
  if (hit && hit.copy.every((v, i) => Object.is(v, code[i]))) return hit.s;
  const order = Array.from(code, (v, i) => [v, i] as const).sort((p, q) => p[0] - q[0] || p[1] - q[1]);
  const vals: number[] = [], idx: number[] = [];
  for (const [v, i] of order) if (vals.length === 0 || vals[vals.length - 1] !== v) { vals.push(v); idx.push(i); }
  const thresholds = new Float32Array(Math.max(0, vals.length - 1));
  for (let j = 0; j + 1 < vals.length; j++) {
    const a = vals[j]!, b = vals[j + 1]!, ia = idx[j]!, ib = idx[j + 1]!;
    const pick = (v: number) => {
      const da = Math.abs(v - a), db = Math.abs(v - b);
      return db < da || (db === da && ib < ia);
    };
    let lo = keyOf(a), hi = keyOf(b); // pick(lo) false, pick(hi) true
    while (hi - lo > 1) {
      const mid = lo + Math.floor((hi - lo) / 2);
      if (pick(valOf(mid))) hi = mid;
      else lo = mid;
    }
    thresholds[j] = valOf(hi);
  }
  const s = { thresholds, index: Int32Array.from(idx) };
  searchCache.set(code, { copy: code.slice(), s });
  return s;
}

/** absmax [blocks] and the nearest code index of every element (int32 [n]), as tensors. */
function nearestCodes(tf: Tf, x: unknown, n: number, bs: number, code: Float32Array, extraZero: boolean) {
  const nb = Math.ceil(n / bs);
  const { thresholds, index } = codeSearch(code);
  let X: Tensor = tin(tf, x, [n]);
  if (nb * bs > n) X = tf.pad(X, [[0, nb * bs - n]]);
  const B = tf.reshape(X, [nb, bs]);
  const absmax = tf.max(tf.abs(B), 1);
  const inv = tf.div(1, tf.maximum(absmax, FLOOR));
  let v = tf.reshape(tf.clipByValue(tf.mul(B, tf.reshape(inv, [nb, 1])), -1, 1), [nb * bs]);
  v = tf.slice(v, 0, n);
  if (extraZero) v = tf.concat([v, tf.zeros([1])]);
  const pos = thresholds.length ? tf.searchSorted(tf.tensor1d(thresholds), v, "right") : tf.zeros(v.shape, "int32");
  return { absmax, q: tf.gather(tf.tensor1d(index, "int32"), pos) };
}

/** 2^(e - 25) for f16 exponent e (2^-24 for subnormals, e = 0): with mantissa 1024 + m (or m) the value is exact. */
const F16_POW2 = Float32Array.from({ length: 32 }, (_, e) => (e === 0 ? 2 ** -24 : 2 ** (e - 25)));

/** float32 values of little-endian binary16 bytes lo, hi (int32 tensors), exact (as f16BitsToF32). */
function f16Value(tf: Tf, lo: Tensor, hi: Tensor): Tensor {
  const i32 = (v: number) => tf.scalar(v, "int32");
  const h = tf.add(lo, tf.mul(hi, i32(256)));
  const e = tf.mod(tf.floorDiv(h, i32(1024)), i32(32));
  const m = tf.mod(h, i32(1024));
  const mant = tf.cast(tf.where(tf.equal(e, i32(0)), m, tf.add(m, i32(1024))), "float32");
  let v = tf.mul(mant, tf.gather(tf.tensor1d(F16_POW2), e));
  v = tf.where(tf.equal(e, i32(31)), tf.where(tf.equal(m, i32(0)), tf.fill(v.shape, Infinity), tf.fill(v.shape, NaN)), v);
  return tf.where(tf.greaterEqual(h, i32(32768)), tf.neg(v), v);
}

/** NaN results as the one quiet NaN JavaScript stores (the sign and payload of a NaN product vary by engine). */
const canonNaN = (tf: Tf, v: Tensor) => tf.where(tf.isNaN(v), tf.fill(v.shape, NaN), v);

/** ggml block bytes [blocks, size] as int32, the f16 scale of each block [blocks, 1] and the code bytes. */
function ggmlBlocks(tf: Tf, bytes: Uint8Array, size: number, n: number) {
  const nb = Math.ceil(n / 32);
  const B = isTfBuf(bytes) ? tin(tf, bytes, [nb, size], "int32") : tf.tensor2d(Int32Array.from(bytes.subarray(0, nb * size)), [nb, size], "int32");
  const d = tf.reshape(f16Value(tf, tf.slice(B, [0, 0], [nb, 1]), tf.slice(B, [0, 1], [nb, 1])), [nb, 1]);
  return { nb, d, q: tf.slice(B, [0, 2], [nb, size - 2]) };
}

/** out[i] = table[q[i]] * absmax[i / bs] with q int32 [n]. */
function scaleByBlocks(tf: Tf, table: Float32Array, q: Tensor, absmax: Float32Array, bs: number, n: number): Tensor {
  const nb = absmax.length;
  let vals: Tensor = tf.gather(tf.tensor1d(table), q);
  if (nb * bs > n) vals = tf.pad(vals, [[0, nb * bs - n]]);
  const out = tf.mul(tf.reshape(vals, [nb, bs]), tin(tf, absmax, [nb, 1]));
  return tf.slice(tf.reshape(out, [nb * bs]), 0, n);
}

/** u8 / i8 codes as an int32 tensor: a resident TfBuf (already int32) or a host array. */
const codesT = (tf: Tf, c: unknown): Tensor => (isTfBuf(c) ? tin(tf, c, [c.length], "int32") : tf.tensor1d(Int32Array.from(c as Uint8Array), "int32"));

const firstBad = (absmax: Float32Array) => absmax.findIndex((a) => !(a < Infinity));

/** [1] int32: the first block whose absmax is not finite, or -1 (on device: nothing waits for it). */
function badOf(tf: Tf, absmax: Tensor): Tensor {
  const badMask = tf.cast(tf.logicalNot(tf.isFinite(absmax)), "int32");
  return tf.reshape(tf.where(tf.greater(tf.max(badMask), 0), tf.cast(tf.argMax(badMask), "int32"), tf.scalar(-1, "int32")), [1]);
}

/** Write the block absmax and the codes unless a block is non-finite (then nothing): returns its index, else -1. */
function storeBlocks(am: Float32Array, q: Int32Array, absmax: Float32Array, dst: Uint8Array): number {
  const bad = firstBad(am);
  if (bad >= 0) return bad;
  absmax.set(am);
  dst.set(q);
  return -1;
}

export function quantTfjs(ctx: TfCtx): Partial<QuantKernels> {
  const host = badIntoArray(returningTfjs(ctx, returningOf(ctx.fallback))) as QuantKernels;
  // DeviceArray (TfBuf) calls stay in the engine: every output is written (a bad block's outputs are then
  // unspecified, as for every backend's DeviceArrays) and the bad block goes to `bad` as a tensor.
  const device: Partial<QuantKernels> = {
    quantizeBlockwise(x, bs, code, codes, absmax, rand, bad) {
      if (rand) return ctx.fb("quantizeBlockwise")(x, bs, code, codes, absmax, rand, bad);
      computeInto(ctx, [absmax, codes, bad], (tf) => {
        const r = nearestCodes(tf, x, x.length, bs, code, false);
        return [r.absmax, r.q, badOf(tf, r.absmax)];
      });
    },
    quantize4bit(x, bs, code, packed, absmax, bad) {
      computeInto(ctx, [absmax, packed, bad], (tf) => {
        const r = nearestCodes(tf, x, x.length, bs, code, x.length % 2 === 1);
        const [hi, lo] = tf.split(tf.reshape(r.q, [packed.length, 2]), 2, 1);
        return [r.absmax, tf.reshape(tf.add(tf.mul(hi!, tf.scalar(16, "int32")), lo!), [packed.length]), badOf(tf, r.absmax)];
      });
    },
    quantizeAffine(x, g, computeParams, scale, zp, q, bad) {
      const signed = q instanceof Int8Array || (q as unknown as { dtype?: string }).dtype === "i8";
      computeInto(ctx, computeParams ? [q, bad, scale, zp] : [q, bad], (tf) => {
        const r = affine(tf, x, x.length, g, computeParams, scale, zp, signed);
        // a NaN scale (computed) or a non-finite x (given scales) marks a bad group
        const badGroup = computeParams ? tf.isNaN(r.S) : tf.logicalNot(tf.all(tf.isFinite(r.B), 1));
        const mask = tf.cast(badGroup, "int32");
        const b = tf.reshape(tf.where(tf.greater(tf.max(mask), 0), tf.cast(tf.argMax(mask), "int32"), tf.scalar(-1, "int32")), [1]);
        return computeParams ? [r.Q, b, r.S, r.Z] : [r.Q, b];
      });
    },
  };
  const out: Partial<QuantKernels> = { ...host };
  for (const [k, fn] of Object.entries(device) as Array<[keyof QuantKernels, (...a: unknown[]) => void]>) {
    const h = host[k] as (...a: unknown[]) => void;
    (out as Record<string, unknown>)[k] = (...a: unknown[]) => (isTfBuf(a[0]) ? fn(...a) : h(...a));
  }
  return out;
}

/** ONNX QuantizeLinear over groups of g: per-group scale S, zero point Z (computed or given) and codes Q. */
function affine(tf: Tf, x: unknown, n: number, g: number, computeParams: boolean, scale: unknown, zp: unknown, signed: boolean) {
  const ng = Math.ceil(n / g);
  const [lo, hi] = signed ? [-128, 127] : [0, 255];
  let X: Tensor = tin(tf, x, [n]);
  if (ng * g > n) X = tf.pad(X, [[0, ng * g - n]]); // zero pads change neither absmax nor min(0, .) / max(0, .)
  const B = tf.reshape(X, [ng, g]);
  let S: Tensor, Z: Tensor;
  if (computeParams) {
    let sc: Tensor;
    if (signed) {
      sc = tf.div(tf.max(tf.abs(B), 1), 127);
      sc = tf.where(tf.isFinite(sc), sc, tf.fill([ng], NaN));
      Z = tf.zeros([ng], "int32");
    } else {
      const mn = tf.minimum(tf.min(B, 1), 0), mx = tf.maximum(tf.max(B, 1), 0);
      const range = tf.sub(mx, mn);
      sc = tf.where(tf.isFinite(range), tf.div(range, 255), tf.fill([ng], NaN));
      const z = tf.clipByValue(tf.round(tf.div(tf.neg(mn), sc)), 0, 255);
      Z = tf.cast(tf.where(tf.greater(sc, 0), z, tf.zerosLike(z)), "int32");
    }
    // a NaN scale marks a bad group; a zero scale (all-zero group) becomes 1
    S = tf.where(tf.logicalOr(tf.greater(sc, 0), tf.isNaN(sc)), sc, tf.onesLike(sc));
  } else {
    S = tin(tf, scale, [ng]);
    Z = tin(tf, zp, [ng], "int32");
  }
  const r = tf.add(tf.round(tf.div(B, tf.reshape(S, [ng, 1]))), tf.cast(tf.reshape(Z, [ng, 1]), "float32"));
  const Q = tf.slice(tf.reshape(tf.cast(tf.clipByValue(r, lo, hi), "int32"), [ng * g]), 0, n);
  return { B, S, Z, Q };
}

function returningTfjs(ctx: TfCtx, fb: Pick<QuantKernelsReturning, "quantizeBlockwise">): Partial<QuantKernelsReturning> {
  return {
    quantizeBlockwise(x, bs, code, codes, absmax, rand) {
      if (rand) return fb.quantizeBlockwise(x, bs, code, codes, absmax, rand);
      const [am, q] = compute(ctx, (tf) => {
        const r = nearestCodes(tf, x, x.length, bs, code, false);
        return [r.absmax, r.q];
      });
      return storeBlocks(am as Float32Array, q as Int32Array, absmax, codes);
    },
    dequantizeBlockwise(codes, bs, code, absmax, out) {
      computeInto(ctx, [out], (tf) => [scaleByBlocks(tf, code, codesT(tf, codes), absmax, bs, out.length)]);
    },
    quantize4bit(x, bs, code, packed, absmax) {
      const odd = x.length % 2 === 1;
      const [am, p] = compute(ctx, (tf) => {
        const r = nearestCodes(tf, x, x.length, bs, code, odd);
        const pairs = tf.reshape(r.q, [packed.length, 2]);
        const [hi, lo] = tf.split(pairs, 2, 1);
        return [r.absmax, tf.reshape(tf.add(tf.mul(hi!, tf.scalar(16, "int32")), lo!), [packed.length])];
      });
      return storeBlocks(am as Float32Array, p as Int32Array, absmax, packed);
    },
    dequantize4bit(packed, bs, code, absmax, out) {
      const n = out.length;
      computeInto(ctx, [out], (tf) => {
        const b = codesT(tf, packed);
        const sixteen = tf.scalar(16, "int32");
        const hi = tf.floorDiv(b, sixteen);
        const lo = tf.sub(b, tf.mul(hi, sixteen));
        const q = tf.slice(tf.reshape(tf.stack([hi, lo], 1), [packed.length * 2]), 0, n);
        return [scaleByBlocks(tf, code, q, absmax, bs, n)];
      });
    },
    dequantizeAffine(q, g, scale, zp, out) {
      const n = out.length, ng = scale.length;
      computeInto(ctx, [out], (tf) => {
        let Q: Tensor = codesT(tf, q);
        if (ng * g > n) Q = tf.pad(Q, [[0, ng * g - n]]);
        const d = tf.cast(tf.sub(tf.reshape(Q, [ng, g]), tin(tf, zp, [ng, 1], "int32")), "float32");
        return [tf.slice(tf.reshape(tf.mul(d, tin(tf, scale, [ng, 1])), [ng * g]), 0, n)];
      });
    },
    quantizeAffine(x, g, computeParams, scale, zp, q) {
      const out = compute(ctx, (tf) => {
        const r = affine(tf, x, x.length, g, computeParams, scale, zp, q instanceof Int8Array);
        return [r.S, r.Z, r.Q];
      });
      if (computeParams) {
        const bad = (out[0] as Float32Array).findIndex((v) => Number.isNaN(v));
        if (bad >= 0) return bad; // nothing written
        scale.set(out[0] as Float32Array);
        zp.set(out[1] as Int32Array);
      }
      q.set(out[2] as Int32Array);
      return -1;
    },
    dequantizeQ8_0(bytes, out) {
      const n = out.length;
      computeInto(ctx, [out], (tf) => {
        const { nb, d, q } = ggmlBlocks(tf, bytes, 34, n);
        const s8 = tf.cast(tf.where(tf.greaterEqual(q, tf.scalar(128, "int32")), tf.sub(q, tf.scalar(256, "int32")), q), "float32");
        return [canonNaN(tf, tf.slice(tf.reshape(tf.mul(s8, d), [nb * 32]), 0, n))];
      });
    },
    dequantizeQ4_0(bytes, out) {
      const n = out.length;
      computeInto(ctx, [out], (tf) => {
        const { nb, d, q } = ggmlBlocks(tf, bytes, 18, n);
        const sixteen = tf.scalar(16, "int32");
        const hi = tf.floorDiv(q, sixteen), lo = tf.sub(q, tf.mul(hi, sixteen));
        const codes = tf.cast(tf.sub(tf.concat([lo, hi], 1), tf.scalar(8, "int32")), "float32"); // element j low, j+16 high
        return [canonNaN(tf, tf.slice(tf.reshape(tf.mul(codes, d), [nb * 32]), 0, n))];
      });
    },
    adam32Step(p, g, m, v, h) {
      const n = p.length;
      computeInto(ctx, [p, m, v], (tf) => {
        const sc = (x: number) => tf.scalar(f(x));
        const P = tin(tf, p, [n]), G = tin(tf, g, [n]), M = tin(tf, m, [n]), V = tin(tf, v, [n]);
        const ok = tf.isFinite(G);
        const s1 = tf.add(tf.mul(M, sc(h.beta1)), tf.mul(sc(h.oneMinusBeta1), G));
        const s2 = tf.add(tf.mul(V, sc(h.beta2)), tf.mul(sc(h.oneMinusBeta2), tf.mul(G, G)));
        let pv = tf.add(P, tf.mul(sc(h.stepSize), tf.div(s1, tf.add(tf.sqrt(s2), sc(h.epsC2)))));
        if (h.decay !== 1) pv = tf.mul(pv, sc(h.decay));
        return [tf.where(ok, pv, P), tf.where(ok, s1, M), tf.where(ok, s2, V)];
      });
    },
  };
}
