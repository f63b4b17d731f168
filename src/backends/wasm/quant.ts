import type { QuantKernels } from "../api/quant.ts";
import { buildLut, prepareCode, DYNAMIC_SIGNED, DYNAMIC_UNSIGNED, LINEAR_SIGNED, LINEAR_UNSIGNED, type CodeLut, type PreparedCode } from "../../ops/quant/codes.ts";
import { asm, call, malloc, type Frame } from "./runtime.ts";

interface Digest {
  snapshot: Float32Array;
  prep: PreparedCode;
  lut: CodeLut | null;
  /** 255 thresholds padded with +Inf, for the search kernel */
  thr255: Float32Array;
  ranks256: Uint8Array;
  /** resident copies in WASM memory (built-in codes only): byte pointers */
  resident?: { lut: number; code: number };
}

const BUILTIN = new Set<Float32Array>([DYNAMIC_SIGNED, DYNAMIC_UNSIGNED, LINEAR_SIGNED, LINEAR_UNSIGNED]);
const cache = new WeakMap<Float32Array, Digest>();

const same = (a: Float32Array, b: Float32Array) => a.length === b.length && a.every((v, i) => Object.is(v, b[i]));

/** Thresholds and bucket table of a code, cached per array (re-derived if its contents changed). */
function digest(code: Float32Array): Digest {
  const hit = cache.get(code);
  if (hit && same(hit.snapshot, code)) return hit;
  const prep = prepareCode(code);
  const thr255 = new Float32Array(255).fill(Infinity);
  thr255.set(prep.thr);
  const ranks256 = new Uint8Array(256).fill(prep.ranks[prep.ranks.length - 1]!);
  ranks256.set(prep.ranks);
  const d: Digest = { snapshot: code.slice(), prep, lut: code.length === 256 ? buildLut(prep) : null, thr255, ranks256 };
  if (BUILTIN.has(code) && d.lut) {
    const lp = malloc(d.lut.table.byteLength), cp = malloc(1024);
    new Uint8Array(asm.memory.buffer, lp, d.lut.table.byteLength).set(d.lut.table);
    new Float32Array(asm.memory.buffer, cp, 256).set(code);
    d.resident = { lut: lp, code: cp };
  }
  cache.set(code, d);
  return d;
}

const lutPtr = (f: Frame, d: Digest) => (d.resident ? d.resident.lut : f.input(d.lut!.table));
const codePtr = (f: Frame, d: Digest, code: Float32Array) => (d.resident ? d.resident.code : f.input(code));

/** Which 8-bit search kernel a code gets (exported for tests and the benchmark). */
export function searchKind(code: Float32Array): "lut" | "search" {
  return digest(code).lut ? "lut" : "search";
}

export const quantWasm: QuantKernels = {
  quantizeBlockwise(x, bs, code, codes, absmax, rand) {
    const n = x.length;
    const d = digest(code);
    if (rand) {
      return call((f) => [f.input(x), f.output(codes), f.output(absmax), f.input(d.prep.vals), f.input(d.prep.ranks), f.input(rand)] as const,
        ([px, pc, pa, pv, pr, pu]) => {
          const bad = asm.quant_absmax_f32!(px, n, bs, pa);
          if (bad < 0) asm.quant_blockwise_stochastic_f32!(px, n, bs, pa, pv, pr, d.prep.vals.length, pu, pc);
          return bad;
        });
    }
    if (d.lut) {
      const { sh, k0, nk } = d.lut;
      return call((f) => [f.input(x), f.output(codes), f.output(absmax), lutPtr(f, d)] as const,
        ([px, pc, pa, pl]) => {
          const bad = asm.quant_absmax_f32!(px, n, bs, pa);
          if (bad < 0) asm.quant_blockwise_lut_f32!(px, n, bs, pa, pl, sh, k0, nk, pc);
          return bad;
        });
    }
    return call((f) => [f.input(x), f.output(codes), f.output(absmax), f.input(d.thr255), f.input(d.ranks256)] as const,
      ([px, pc, pa, pt, pr]) => {
        const bad = asm.quant_absmax_f32!(px, n, bs, pa);
        if (bad < 0) asm.quant_blockwise_search_f32!(px, n, bs, pa, pt, pr, pc);
        return bad;
      });
  },
  dequantizeBlockwise(codes, bs, code, absmax, out) {
    const d = cache.get(code);
    call((f) => [f.input(codes), d?.resident && same(d.snapshot, code) ? d.resident.code : f.input(code), f.input(absmax), f.output(out)] as const,
      ([pc, pk, pa, po]) => asm.dequant_blockwise_u8!(pc, out.length, bs, pa, pk, po));
  },
  quantize4bit(x, bs, code, packed, absmax) {
    const d = digest(code);
    const thr = new Float32Array(15).fill(Infinity);
    thr.set(d.prep.thr);
    const perm = new Uint8Array(16).fill(d.prep.ranks[d.prep.ranks.length - 1]!);
    perm.set(d.prep.ranks);
    return call((f) => [f.input(x), f.output(packed), f.output(absmax), f.input(thr), f.input(perm)] as const,
      ([px, pp, pa, pt, pm]) => {
        const bad = asm.quant_absmax_f32!(px, x.length, bs, pa);
        if (bad < 0) asm.quant_4bit_f32!(px, x.length, bs, pa, pt, pm, d.prep.zeroCode, pp);
        return bad;
      });
  },
  dequantize4bit(packed, bs, code, absmax, out) {
    call((f) => [f.input(packed), f.input(code), f.input(absmax), f.output(out)] as const,
      ([pp, pk, pa, po]) => asm.dequant_4bit!(pp, out.length, bs, pa, pk, po));
  },
  affineParams(x, g, signed, scale, zp) {
    return call((f) => [f.input(x), f.output(scale), f.output(zp)] as const,
      ([px, ps, pz]) => asm.quant_affine_params_f32!(px, x.length, g, signed ? 1 : 0, ps, pz));
  },
  quantizeAffine(x, g, scale, zp, q) {
    const signed = q instanceof Int8Array ? 1 : 0;
    call((f) => [f.input(x), f.input(scale), f.input(zp), f.output(q)] as const,
      ([px, ps, pz, pq]) => asm.quant_affine_f32!(px, x.length, g, ps, pz, signed, pq));
  },
  dequantizeAffine(q, g, scale, zp, out) {
    const signed = q instanceof Int8Array ? 1 : 0;
    call((f) => [f.input(q), f.input(scale), f.input(zp), f.output(out)] as const,
      ([pq, ps, pz, po]) => asm.dequant_affine!(pq, out.length, g, ps, pz, signed, po));
  },
  quantizeQ8_0(x, out) {
    return call((f) => [f.input(x), f.output(out)] as const, ([px, po]) => asm.quant_q8_0_f32!(px, x.length / 32, po));
  },
  dequantizeQ8_0(bytes, out) {
    call((f) => [f.input(bytes), f.output(out)] as const, ([pb, po]) => asm.dequant_q8_0!(pb, out.length / 32, po));
  },
  quantizeQ4_0(x, out) {
    return call((f) => [f.input(x), f.output(out)] as const, ([px, po]) => asm.quant_q4_0_f32!(px, x.length / 32, po));
  },
  dequantizeQ4_0(bytes, out) {
    call((f) => [f.input(bytes), f.output(out)] as const, ([pb, po]) => asm.dequant_q4_0!(pb, out.length / 32, po));
  },
  adam8bitStep(p, g, s, h) {
    const d1 = digest(s.code1), d2 = digest(s.code2);
    if (!d1.lut || !d2.lut) throw new Error("adam8bitStep: state codes must admit a lookup table");
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
