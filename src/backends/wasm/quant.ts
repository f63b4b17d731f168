import { hostQuant } from "../host/quant.ts";
import type { QuantKernels, QuantKernelsReturning } from "../api/quant.ts";
import {
  buildLut, prepareCode, DYNAMIC_SIGNED, DYNAMIC_UNSIGNED, FP4_TABLE, LINEAR_SIGNED, LINEAR_UNSIGNED, NF4_TABLE, type CodeLut, type PreparedCode,
} from "../../ops/quant/codes.ts";
import { NumedgeError } from "../../errors.ts";
import { asm, call, malloc, type Frame } from "./runtime.ts";

interface Digest {
  snapshot: Float32Array;
  prep: PreparedCode;
  /** bucket table: 8-bit codes give code indices, 4-bit codes ranks (then perm16) */
  lut: CodeLut | null;
  /** 255 thresholds padded with +Inf and rank -> index (256), for the search kernel */
  thr255: Float32Array;
  ranks256: Uint8Array;
  /** 4-bit: rank -> code index, 16 bytes */
  perm16: Uint8Array;
  /** resident copies in WASM memory (built-in codes only): byte pointers */
  resident?: { lut: number; code: number };
}

const BUILTIN = new Set<Float32Array>([DYNAMIC_SIGNED, DYNAMIC_UNSIGNED, LINEAR_SIGNED, LINEAR_UNSIGNED, NF4_TABLE, FP4_TABLE]);
const cache = new WeakMap<Float32Array, Digest>();

const same = (a: Float32Array, b: Float32Array) => a.length === b.length && a.every((v, i) => Object.is(v, b[i]));

/** Thresholds and bucket table of a code, cached per array (re-derived if its contents changed). */
function digest(code: Float32Array): Digest {
  const hit = cache.get(code);
  if (hit && same(hit.snapshot, code)) return hit;
  const prep = prepareCode(code);
  const last = prep.ranks[prep.ranks.length - 1]!;
  const thr255 = new Float32Array(255).fill(Infinity);
  thr255.set(prep.thr);
  const ranks256 = new Uint8Array(256).fill(last);
  ranks256.set(prep.ranks);
  const perm16 = new Uint8Array(16).fill(last);
  if (code.length === 16) perm16.set(prep.ranks);
  const d: Digest = { snapshot: code.slice(), prep, lut: buildLut(prep, code.length === 16), thr255, ranks256, perm16 };
  if (BUILTIN.has(code) && d.lut) {
    const lp = malloc(d.lut.table.byteLength), cp = malloc(code.byteLength);
    new Uint32Array(asm.memory.buffer, lp, d.lut.table.length).set(d.lut.table);
    new Float32Array(asm.memory.buffer, cp, code.length).set(code);
    d.resident = { lut: lp, code: cp };
  }
  cache.set(code, d);
  return d;
}

const lutPtr = (f: Frame, d: Digest) => (d.resident ? d.resident.lut : f.input(d.lut!.table));
const codePtr = (f: Frame, d: Digest, code: Float32Array) => (d.resident ? d.resident.code : f.input(code));
/** Kernels returning a bad block's index: copy outputs back only on success (-1), so a failed call writes nothing. */
const ok = (bad: number) => bad < 0;
/** log2 of the block size for the kernels' i >> lbs; one block (per-tensor, any size) -> 31. */
const log2 = (bs: number, n: number) => (bs >= n ? 31 : 31 - Math.clz32(bs));

/** Which search kernel a code gets (exported for tests and the benchmark). */
export function searchKind(code: Float32Array): "lut" | "search" {
  return digest(code).lut ? "lut" : "search";
}

const returning: QuantKernelsReturning = {
  quantizeBlockwise(x, bs, code, codes, absmax, rand) {
    const n = x.length, lbs = log2(bs, n), nb = absmax.length;
    const d = digest(code);
    return call((f) => [f.input(x), f.output(codes), f.output(absmax), f.scratch(nb * 4),
      rand ? f.input(d.prep.vals) : d.lut ? lutPtr(f, d) : f.input(d.thr255),
      rand ? f.input(d.prep.ranks) : d.lut ? 0 : f.input(d.ranks256),
      rand ? f.input(rand) : 0] as const,
    ([px, pc, pa, pi, p1, p2, pu]) => {
      const bad = asm.quant_absmax_f32!(px, n, bs, pa, pi);
      if (bad >= 0) return bad;
      if (rand) asm.quant_blockwise_stochastic_f32!(px, n, lbs, pi, p1, p2, d.prep.vals.length, pu, pc);
      else if (d.lut) asm.quant_blockwise_lut_f32!(px, n, lbs, pi, p1, d.lut.sh, d.lut.k0, d.lut.nk, pc);
      else asm.quant_blockwise_search_f32!(px, n, lbs, pi, p1, p2, pc);
      return -1;
    }, ok);
  },
  dequantizeBlockwise(codes, bs, code, absmax, out) {
    const d = cache.get(code);
    call((f) => [f.input(codes), d?.resident && same(d.snapshot, code) ? d.resident.code : f.input(code), f.input(absmax), f.output(out)] as const,
      ([pc, pk, pa, po]) => asm.dequant_blockwise_u8!(pc, out.length, log2(bs, out.length), pa, pk, po));
  },
  quantize4bit(x, bs, code, packed, absmax) {
    const n = x.length, d = digest(code), lut = d.lut!;
    return call((f) => [f.input(x), f.output(packed), f.output(absmax), f.scratch(absmax.length * 4), lutPtr(f, d), f.input(d.perm16)] as const,
      ([px, pp, pa, pi, pl, pm]) => {
        const bad = asm.quant_absmax_f32!(px, n, bs, pa, pi);
        if (bad < 0) asm.quant_4bit_f32!(px, n, log2(bs, n), pi, pl, lut.sh, lut.k0, lut.nk, pm, d.prep.zeroCode, pp);
        return bad;
      }, ok);
  },
  dequantize4bit(packed, bs, code, absmax, out) {
    call((f) => [f.input(packed), f.input(code), f.input(absmax), f.output(out)] as const,
      ([pp, pk, pa, po]) => asm.dequant_4bit!(pp, out.length, log2(bs, out.length), pa, pk, po));
  },
  quantizeAffine(x, g, compute, scale, zp, q) {
    const signed = q instanceof Int8Array ? 1 : 0;
    return call((f) => [f.input(x), compute ? f.output(scale) : f.input(scale), compute ? f.output(zp) : f.input(zp), f.output(q), f.scratch(16)] as const,
      ([px, ps, pz, pq, pt]) => asm.quant_affine_f32!(px, x.length, g, signed, compute ? 1 : 0, ps, pz, pq, pt), ok);
  },
  dequantizeAffine(q, g, scale, zp, out) {
    const signed = q instanceof Int8Array ? 1 : 0;
    call((f) => [f.input(q), f.input(scale), f.input(zp), f.output(out)] as const,
      ([pq, ps, pz, po]) => asm.dequant_affine!(pq, out.length, g, ps, pz, signed, po));
  },
  quantizeQ8_0(x, out) {
    return call((f) => [f.input(x), f.output(out)] as const, ([px, po]) => asm.quant_q8_0_f32!(px, x.length / 32, po), ok);
  },
  dequantizeQ8_0(bytes, out) {
    call((f) => [f.input(bytes), f.output(out)] as const, ([pb, po]) => asm.dequant_q8_0!(pb, out.length / 32, po));
  },
  quantizeQ4_0(x, out) {
    return call((f) => [f.input(x), f.output(out)] as const, ([px, po]) => asm.quant_q4_0_f32!(px, x.length / 32, po), ok);
  },
  dequantizeQ4_0(bytes, out) {
    call((f) => [f.input(bytes), f.output(out)] as const, ([pb, po]) => asm.dequant_q4_0!(pb, out.length / 32, po));
  },
  adam8bitStep(p, g, s, h) {
    const d1 = digest(s.code1), d2 = digest(s.code2);
    if (!d1.lut || !d2.lut) throw new NumedgeError("unsupported", "adam8bitStep: the state codes must admit a bucket lookup table (the built-in ones do)");
    const l1 = d1.lut, l2 = d2.lut;
    call((f) => [f.inout(p), f.input(g), f.inout(s.c1), f.inout(s.c2), f.inout(s.absmax1), f.inout(s.absmax2),
      codePtr(f, d1, s.code1), lutPtr(f, d1), codePtr(f, d2, s.code2), lutPtr(f, d2), f.scratch(s.blockSize * 8)] as const,
    ([pp, pg, pc1, pc2, pa1, pa2, pk1, pl1, pk2, pl2, ps]) =>
      asm.adam8bit_blockwise_f32!(pp, pg, pc1, pc2, pa1, pa2, p.length, s.blockSize,
        pk1, pl1, l1.sh, l1.k0, l1.nk, pk2, pl2, l2.sh, l2.k0, l2.nk, ps, ps + s.blockSize * 4,
        h.beta1, h.oneMinusBeta1, h.beta2, h.oneMinusBeta2, h.epsC2, h.stepSize, h.decay));
  },
  adam32Step(p, g, m, v, h) {
    call((f) => [f.inout(p), f.input(g), f.inout(m), f.inout(v)] as const,
      ([pp, pg, pm, pv]) => asm.adam32_f32!(pp, pg, pm, pv, p.length, h.beta1, h.oneMinusBeta1, h.beta2, h.oneMinusBeta2, h.epsC2, h.stepSize, h.decay));
  },
};

export const quantWasm: QuantKernels = hostQuant(returning);
