// The oracle for the quant family: plain loops, a linear argmin over the code for "nearest", float32 rounding
// (Math.fround) wherever the anchor (bitsandbytes, ONNX, ggml) computes in float32, so wasm must match it bit
// for bit. Slow and obviously correct.
import { hostQuant } from "../host/quant.ts";
import type { QuantKernels, QuantKernelsReturning } from "../api/quant.ts";

const f = Math.fround;
const FLOOR = f(1e-38);

const fb = new Float32Array(1), ub = new Uint32Array(fb.buffer);
const bitsOf = (v: number) => ((fb[0] = v), ub[0]!);

/** Round half to even, without Math.round. */
export function rintHalfEven(v: number): number {
  const fl = Math.floor(v), d = v - fl;
  if (d < 0.5) return fl;
  if (d > 0.5) return fl + 1;
  return fl % 2 === 0 ? fl : fl + 1;
}

/** C roundf: half away from zero. */
const roundAway = (v: number) => (v < 0 ? -Math.floor(-v + 0.5) : Math.floor(v + 0.5));

/** IEEE binary16 bits of a float32, round to nearest even (written from the format definition). */
export function f32ToF16Bits(v: number): number {
  const b = bitsOf(f(v));
  const sign = (b >>> 16) & 0x8000;
  const e = (b >>> 23) & 0xff, mant = b & 0x7fffff;
  if (e === 0xff) return sign | (mant ? 0x7e00 : 0x7c00);
  let E = e - 127;
  if (E < -14) {
    // subnormal half: units of 2^-24
    const u = Math.abs(f(v)) * 2 ** 24;
    return sign | rintHalfEven(u); // 1024 rolls into the smallest normal, as the bits should
  }
  let q = mant >>> 13;
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && q & 1)) q++;
  if (q === 1024) { q = 0; E++; }
  if (E > 15) return sign | 0x7c00;
  return sign | ((E + 15) << 10) | q;
}

export function f16BitsToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >>> 10) & 0x1f, m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

function absmaxOf(x: Float32Array, s: number, e: number): number {
  let m = 0;
  for (let i = s; i < e; i++) {
    const a = Math.abs(x[i]!);
    if (Number.isNaN(a)) return NaN;
    if (a > m) m = a;
  }
  return m;
}

/** Index of the code value nearest to v; ties to the lower index. */
function nearest(code: Float32Array, v: number): number {
  let best = 0, bd = Infinity;
  for (let j = 0; j < code.length; j++) {
    const d = Math.abs(v - code[j]!);
    if (d < bd) { bd = d; best = j; }
  }
  return best;
}

/** Stochastic: neighbours lo <= v <= hi among the code values (lowest index among equals). */
function stochastic(code: Float32Array, v: number, u: number): number {
  let lo = -1, hi = -1;
  for (let j = 0; j < code.length; j++) {
    const c = code[j]!;
    if (c <= v && (lo < 0 || c > code[lo]!)) lo = j;
    if (c >= v && (hi < 0 || c < code[hi]!)) hi = j;
  }
  if (lo < 0) return hi;
  if (hi < 0 || code[lo] === v) return lo;
  const a = code[lo]!, c = code[hi]!;
  const p = f(f(v - a) / f(c - a));
  return u < p ? hi : lo;
}

const scaled = (x: number, inv: number) => {
  const v = f(x * inv);
  return v > 1 ? 1 : v < -1 ? -1 : v;
};

function blockAbsmax(x: Float32Array, bs: number, absmax: Float32Array): number {
  let bad = -1;
  for (let b = 0, s = 0; s < x.length; b++, s += bs) {
    const a = absmaxOf(x, s, Math.min(s + bs, x.length));
    absmax[b] = a;
    if (bad < 0 && !(a < Infinity)) bad = b;
  }
  return bad;
}


/** Per group scale and zero point (ops quantizeAffine's rule); returns the first group with NaN/±Infinity, or -1. */
function affineParams(x: Float32Array, g: number, signed: boolean, scale: Float32Array, zp: Int32Array): number {
  let bad = -1;
  for (let k = 0, s = 0; s < x.length; k++, s += g) {
    const e = Math.min(s + g, x.length);
    let sc: number, z = 0;
    if (signed) {
      const a = absmaxOf(x, s, e);
      sc = a < Infinity ? f(a / 127) : NaN;
    } else {
      let mn = 0, mx = 0, nan = false;
      for (let i = s; i < e; i++) {
        const v = x[i]!;
        if (Number.isNaN(v)) nan = true;
        if (v < mn) mn = v;
        if (v > mx) mx = v;
      }
      const range = f(mx - mn);
      sc = nan || !(range < Infinity) ? NaN : f(range / 255);
      if (sc > 0) z = Math.min(255, Math.max(0, rintHalfEven(f(-mn / sc))));
    }
    if (Number.isNaN(sc)) { if (bad < 0) bad = k; }
    else if (!(sc > 0)) sc = 1;
    scale[k] = sc;
    zp[k] = z;
  }
  return bad;
}

const returning: QuantKernelsReturning = {
  quantizeBlockwise(x, bs, code, codes, absmax, rand) {
    const am = new Float32Array(absmax.length); // written to the caller's array only on success
    const bad = blockAbsmax(x, bs, am);
    if (bad >= 0) return bad;
    absmax.set(am);
    for (let i = 0; i < x.length; i++) {
      const inv = f(1 / Math.max(absmax[Math.floor(i / bs)]!, FLOOR));
      const v = scaled(x[i]!, inv);
      codes[i] = rand ? stochastic(code, v, rand[i]!) : nearest(code, v);
    }
    return -1;
  },
  dequantizeBlockwise(codes, bs, code, absmax, out) {
    for (let i = 0; i < out.length; i++) out[i] = code[codes[i]!]! * absmax[Math.floor(i / bs)]!;
  },
  quantize4bit(x, bs, code, packed, absmax) {
    const am = new Float32Array(absmax.length); // written to the caller's array only on success
    const bad = blockAbsmax(x, bs, am);
    if (bad >= 0) return bad;
    absmax.set(am);
    const q = new Uint8Array(x.length + 1);
    q[x.length] = nearest(code, 0);
    for (let i = 0; i < x.length; i++) q[i] = nearest(code, scaled(x[i]!, f(1 / Math.max(absmax[Math.floor(i / bs)]!, FLOOR))));
    for (let j = 0; j < packed.length; j++) packed[j] = (q[2 * j]! << 4) | q[2 * j + 1]!;
    return -1;
  },
  dequantize4bit(packed, bs, code, absmax, out) {
    for (let i = 0; i < out.length; i++) {
      const byte = packed[i >> 1]!;
      out[i] = code[i & 1 ? byte & 15 : byte >> 4]! * absmax[Math.floor(i / bs)]!;
    }
  },
  quantizeAffine(x, g, compute, scale, zp, q) {
    const signed = q instanceof Int8Array;
    if (compute) {
      const sc = new Float32Array(scale.length), z = new Int32Array(zp.length); // written only on success
      const bad = affineParams(x, g, signed, sc, z);
      if (bad >= 0) return bad;
      scale.set(sc);
      zp.set(z);
    }
    const lo = signed ? -128 : 0, hi = signed ? 127 : 255;
    for (let i = 0; i < x.length; i++) {
      const k = Math.floor(i / g);
      const v = f(rintHalfEven(f(x[i]! / scale[k]!)) + zp[k]!);
      q[i] = v > hi ? hi : v < lo ? lo : v;
    }
    return -1;
  },
  dequantizeAffine(q, g, scale, zp, out) {
    for (let i = 0; i < out.length; i++) {
      const k = Math.floor(i / g);
      out[i] = (q[i]! - zp[k]!) * scale[k]!;
    }
  },
  quantizeQ8_0(x, out) {
    const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
    for (let b = 0; b * 32 < x.length; b++) {
      const s = b * 32;
      const amax = absmaxOf(x, s, s + 32);
      if (!(amax < Infinity)) return b;
      const d = f(amax / 127), id = d ? f(1 / d) : 0;
      dv.setUint16(b * 34, f32ToF16Bits(d), true);
      for (let j = 0; j < 32; j++) {
        const v = f(x[s + j]! * id); // non-finite (id = Inf for a subnormal d) -> 0, as ggml on x86
        dv.setInt8(b * 34 + 2 + j, Number.isFinite(v) ? roundAway(v) : 0);
      }
    }
    return -1;
  },
  dequantizeQ8_0(bytes, out) {
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let b = 0; b * 32 < out.length; b++) {
      const d = f16BitsToF32(dv.getUint16(b * 34, true));
      for (let j = 0; j < 32; j++) out[b * 32 + j] = dv.getInt8(b * 34 + 2 + j) * d;
    }
  },
  quantizeQ4_0(x, out) {
    const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
    for (let b = 0; b * 32 < x.length; b++) {
      const s = b * 32;
      let amax = 0, max = 0;
      for (let j = 0; j < 32; j++) {
        const v = x[s + j]!;
        if (!(Math.abs(v) < Infinity)) return b;
        if (amax < Math.abs(v)) { amax = Math.abs(v); max = v; }
      }
      const d = f(max / -8), id = d ? f(1 / d) : 0;
      dv.setUint16(b * 18, f32ToF16Bits(d), true);
      for (let j = 0; j < 16; j++) {
        const x0 = f(x[s + j]! * id), x1 = f(x[s + 16 + j]! * id);
        const t0 = f(x0 + 8.5), t1 = f(x1 + 8.5);
        const q0 = Number.isFinite(t0) ? Math.min(15, Math.trunc(t0)) : 0, q1 = Number.isFinite(t1) ? Math.min(15, Math.trunc(t1)) : 0;
        out[b * 18 + 2 + j] = q0 | (q1 << 4);
      }
    }
    return -1;
  },
  dequantizeQ4_0(bytes, out) {
    for (let b = 0; b * 32 < out.length; b++) {
      const d = f16BitsToF32(bytes[b * 18]! | (bytes[b * 18 + 1]! << 8));
      for (let j = 0; j < 16; j++) {
        const q = bytes[b * 18 + 2 + j]!;
        out[b * 32 + j] = ((q & 15) - 8) * d;
        out[b * 32 + 16 + j] = ((q >> 4) - 8) * d;
      }
    }
  },
  adam8bitStep(p, g, s, h) {
    const { c1, c2, absmax1, absmax2, blockSize: bs, code1, code2 } = s;
    const n = p.length;
    const s1 = new Float32Array(bs), s2 = new Float32Array(bs);
    for (let b = 0, st = 0; st < n; b++, st += bs) {
      const len = Math.min(bs, n - st);
      const a1 = absmax1[b]!, a2 = absmax2[b]!;
      let m1 = 0, m2 = 0;
      for (let j = 0; j < len; j++) {
        const i = st + j, gv = g[i]!;
        let v1 = 0, v2 = 0;
        if (Math.abs(gv) < Infinity) {
          v2 = f(code2[c2[i]!]! * a2);
          v2 = f(f(v2 * h.beta2) + f(f(h.oneMinusBeta2 * gv) * gv));
          v1 = f(code1[c1[i]!]! * a1);
          v1 = f(f(v1 * h.beta1) + f(h.oneMinusBeta1 * gv));
          let pv = f(p[i]! + f(h.stepSize * f(v1 / f(f(Math.sqrt(v2)) + h.epsC2))));
          if (h.decay !== 1) pv = f(pv * h.decay);
          p[i] = pv;
        }
        s1[j] = v1;
        s2[j] = v2;
        m1 = Math.max(m1, Math.abs(v1));
        m2 = Math.max(m2, Math.abs(v2));
      }
      absmax1[b] = m1;
      absmax2[b] = m2;
      const d1 = Math.max(m1, FLOOR), d2 = Math.max(m2, FLOOR);
      for (let j = 0; j < len; j++) {
        const i = st + j, v1 = s1[j]!, v2 = s2[j]!;
        let q1 = nearest(code1, Math.max(-1, Math.min(1, f(v1 / d1))));
        const neg = (v: number) => v < 0 || Object.is(v, -0);
        if (v1 === v1 && neg(code1[q1]!) !== neg(v1)) q1 = v1 > 0 ? q1 + 1 : q1 - 1; // a NaN moment keeps code 0
        c1[i] = q1;
        c2[i] = nearest(code2, Math.max(-1, Math.min(1, f(v2 / d2))));
      }
    }
  },
  adam32Step(p, g, m, v, h) {
    for (let i = 0; i < p.length; i++) {
      const gv = g[i]!;
      if (!(Math.abs(gv) < Infinity)) continue;
      const s1 = f(f(m[i]! * h.beta1) + f(h.oneMinusBeta1 * gv));
      const s2 = f(f(v[i]! * h.beta2) + f(h.oneMinusBeta2 * f(gv * gv)));
      m[i] = s1;
      v[i] = s2;
      let pv = f(p[i]! + f(h.stepSize * f(s1 / f(f(Math.sqrt(s2)) + h.epsC2))));
      if (h.decay !== 1) pv = f(pv * h.decay);
      p[i] = pv;
    }
  },
};

export const quantReference: QuantKernels = hostQuant(returning);
