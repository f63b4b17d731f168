import { hostQuant } from "../host/quant.ts";
import type { QuantKernels, QuantKernelsReturning } from "../api/quant.ts";
import {
  buildLut, prepareCode, DYNAMIC_SIGNED, DYNAMIC_UNSIGNED, FP4_TABLE, LINEAR_SIGNED, LINEAR_UNSIGNED, NF4_TABLE, type CodeLut, type PreparedCode,
} from "../../ops/quant/codes.ts";
import { NumedgeError } from "../../errors.ts";
import { COUNT, THREAD, UNIT, chunkOf, par, threads, type Arg } from "./pool.ts";
import { asm, call, malloc, onMemoryReset, stream, type Frame, type Part } from "./runtime.ts";

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
let cache = new WeakMap<Float32Array, Digest>();
onMemoryReset(() => { cache = new WeakMap(); }); // resident tables lived in the old memory

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
/** log2 of the block size for the kernels' i >> lbs; one block (per-tensor, any size) -> 31. */
const log2 = (bs: number, n: number) => (bs >= n ? 31 : 31 - Math.clz32(bs));

/** Which search kernel a code gets (exported for tests and the benchmark). */
export function searchKind(code: Float32Array): "lut" | "search" {
  return digest(code).lut ? "lut" : "search";
}

// Every quantizer streams its units (blocks, groups) through stream(): host arrays are copied in and out one
// cache-sized piece at a time; outputs of the quantizers are atomic (copied back only when no block is bad).
// Each piece's units split over the pool (blk): argument [pointer, bytes per unit]; a unit's result never
// depends on the others, so any split gives the same bits.
const at = (p: number, per: number): Arg => [p, UNIT, per];
/** Run kernel `k` over `units` units of `cost` bytes each, split over the pool. */
const blk = (k: string, units: number, cost: number, args: Arg[]) => par(k, units, chunkOf(units, cost), args);
const returning: QuantKernelsReturning = {
  quantizeBlockwise(x, bs, code, codes, absmax, rand) {
    const n = x.length, lbs = log2(bs, n), d = digest(code);
    const ins: Part[] = rand ? [[x, bs], [rand, bs]] : [[x, bs]];
    return stream(absmax.length, ins, [[codes, bs], [absmax, 1]], true, ([px, pu], [pc, pa], [pi, p1, p2], u0, k) => {
      const m: Arg = [Math.min(k * bs, n - u0 * bs), COUNT, bs], X = at(px!, 4 * bs), inv = at(pi!, 4), C = at(pc!, bs);
      const bad = blk("quant_absmax_f32", k, 4 * bs, [X, m, bs, at(pa!, 4), inv]);
      if (bad >= 0) return bad;
      if (rand) blk("quant_blockwise_stochastic_f32", k, 9 * bs, [X, m, lbs, inv, p1!, p2!, d.prep.vals.length, at(pu!, 4 * bs), C]);
      else if (d.lut) blk("quant_blockwise_lut_f32", k, 5 * bs, [X, m, lbs, inv, p1!, d.lut.sh, d.lut.k0, d.lut.nk, C]);
      else blk("quant_blockwise_search_f32", k, 5 * bs, [X, m, lbs, inv, p1!, p2!, C]);
      return -1;
    }, (f, step) => [f.scratch(step * 4),
      rand ? f.input(d.prep.vals) : d.lut ? lutPtr(f, d) : f.input(d.thr255),
      rand ? f.input(d.prep.ranks) : d.lut ? 0 : f.input(d.ranks256)]);
  },
  dequantizeBlockwise(codes, bs, code, absmax, out) {
    const n = out.length, lbs = log2(bs, n), d = cache.get(code);
    stream(absmax.length, [[codes, bs], [absmax, 1]], [[out, bs]], false,
      ([pc, pa], [po], [pk], u0, k) =>
        blk("dequant_blockwise_u8", k, 5 * bs, [at(pc!, bs), [Math.min(k * bs, n - u0 * bs), COUNT, bs], lbs, at(pa!, 4), pk!, at(po!, 4 * bs)]),
      (f) => [d?.resident && same(d.snapshot, code) ? d.resident.code : f.input(code)]);
  },
  quantize4bit(x, bs, code, packed, absmax) {
    const n = x.length, lbs = log2(bs, n), d = digest(code), lut = d.lut!;
    return stream(absmax.length, [[x, bs]], [[packed, Math.ceil(bs / 2)], [absmax, 1]], true, ([px], [pp, pa], [pi, pl, pm], u0, k) => {
      const m: Arg = [Math.min(k * bs, n - u0 * bs), COUNT, bs], X = at(px!, 4 * bs), inv = at(pi!, 4);
      const bad = blk("quant_absmax_f32", k, 4 * bs, [X, m, bs, at(pa!, 4), inv]);
      if (bad < 0) blk("quant_4bit_f32", k, 5 * bs, [X, m, lbs, inv, pl!, lut.sh, lut.k0, lut.nk, pm!, d.prep.zeroCode, at(pp!, Math.ceil(bs / 2))]);
      return bad;
    }, (f, step) => [f.scratch(step * 4), lutPtr(f, d), f.input(d.perm16)]);
  },
  dequantize4bit(packed, bs, code, absmax, out) {
    const n = out.length, lbs = log2(bs, n);
    stream(absmax.length, [[packed, Math.ceil(bs / 2)], [absmax, 1]], [[out, bs]], false,
      ([pp, pa], [po], [pk], u0, k) =>
        blk("dequant_4bit", k, 5 * bs, [at(pp!, Math.ceil(bs / 2)), [Math.min(k * bs, n - u0 * bs), COUNT, bs], lbs, at(pa!, 4), pk!, at(po!, 4 * bs)]),
      (f) => [f.input(code)]);
  },
  quantizeAffine(x, g, compute, scale, zp, q) {
    const n = x.length, signed = q instanceof Int8Array ? 1 : 0, params: Part[] = [[scale, 1], [zp, 1]];
    return stream(scale.length, compute ? [[x, g]] : [[x, g], ...params], compute ? [[q, g], ...params] : [[q, g]], true,
      (ins, outs, [pt], u0, k) => {
        const [ps, pz] = compute ? outs.slice(1) : ins.slice(1);
        return blk("quant_affine_f32", k, 5 * g, [at(ins[0]!, 4 * g), [Math.min(k * g, n - u0 * g), COUNT, g], g, signed, compute ? 1 : 0,
          at(ps!, scale.BYTES_PER_ELEMENT), at(pz!, zp.BYTES_PER_ELEMENT), at(outs[0]!, g), [pt!, THREAD, 16]]);
      }, (f) => [f.scratch(16 * threads())]);
  },
  dequantizeAffine(q, g, scale, zp, out) {
    const n = out.length, signed = q instanceof Int8Array ? 1 : 0;
    stream(scale.length, [[q, g], [scale, 1], [zp, 1]], [[out, g]], false,
      ([pq, ps, pz], [po], _s, u0, k) => blk("dequant_affine", k, 5 * g, [at(pq!, g), [Math.min(k * g, n - u0 * g), COUNT, g], g,
        at(ps!, scale.BYTES_PER_ELEMENT), at(pz!, zp.BYTES_PER_ELEMENT), signed, at(po!, 4 * g)]));
  },
  quantizeQ8_0(x, out) {
    return stream(x.length / 32, [[x, 32]], [[out, 34]], true, ([px], [po], _s, _u0, k) => blk("quant_q8_0_f32", k, 162, [at(px!, 128), [k, COUNT, 1], at(po!, 34)]));
  },
  dequantizeQ8_0(bytes, out) {
    stream(out.length / 32, [[bytes, 34]], [[out, 32]], false, ([pb], [po], _s, _u0, k) => blk("dequant_q8_0", k, 162, [at(pb!, 34), [k, COUNT, 1], at(po!, 128)]));
  },
  quantizeQ4_0(x, out) {
    return stream(x.length / 32, [[x, 32]], [[out, 18]], true, ([px], [po], _s, _u0, k) => blk("quant_q4_0_f32", k, 146, [at(px!, 128), [k, COUNT, 1], at(po!, 18)]));
  },
  dequantizeQ4_0(bytes, out) {
    stream(out.length / 32, [[bytes, 18]], [[out, 32]], false, ([pb], [po], _s, _u0, k) => blk("dequant_q4_0", k, 146, [at(pb!, 18), [k, COUNT, 1], at(po!, 128)]));
  },
  adam8bitStep(p, g, s, h) {
    const d1 = digest(s.code1), d2 = digest(s.code2);
    if (!d1.lut || !d2.lut) throw new NumedgeError("unsupported", "adam8bitStep: the state codes must admit a bucket lookup table (the built-in ones do)");
    const l1 = d1.lut, l2 = d2.lut, bs = s.blockSize, blocks = Math.ceil(p.length / bs), chunk = chunkOf(blocks, 12 * bs);
    // each thread its own two blocks of f32 moments (one tensor-wide block: the caller's only)
    call((f) => [f.inout(p), f.input(g), f.inout(s.c1), f.inout(s.c2), f.inout(s.absmax1), f.inout(s.absmax2),
      codePtr(f, d1, s.code1), lutPtr(f, d1), codePtr(f, d2, s.code2), lutPtr(f, d2), f.scratch(bs * 8 * (chunk < blocks ? threads() : 1))] as const,
    ([pp, pg, pc1, pc2, pa1, pa2, pk1, pl1, pk2, pl2, ps]) =>
      par("adam8bit_blockwise_f32", blocks, chunk, [at(pp, 4 * bs), at(pg, 4 * bs), at(pc1, bs), at(pc2, bs), at(pa1, 4), at(pa2, 4),
        [p.length, COUNT, bs], bs, pk1, pl1, l1.sh, l1.k0, l1.nk, pk2, pl2, l2.sh, l2.k0, l2.nk, [ps, THREAD, 8 * bs], [ps + bs * 4, THREAD, 8 * bs],
        h.beta1, h.oneMinusBeta1, h.beta2, h.oneMinusBeta2, h.epsC2, h.stepSize, h.decay]));
  },
  adam32Step(p, g, m, v, h) {
    const n = p.length, chunk = Math.ceil(chunkOf(n, 28) / 4) * 4; // a multiple of the SIMD step
    call((f) => [f.inout(p), f.input(g), f.inout(m), f.inout(v)] as const,
      ([pp, pg, pm, pv]) => par("adam32_f32", n, chunk, [at(pp, 4), at(pg, 4), at(pm, 4), at(pv, 4), [n, COUNT, 1],
        h.beta1, h.oneMinusBeta1, h.beta2, h.oneMinusBeta2, h.epsC2, h.stepSize, h.decay]));
  },
};

export const quantWasm: QuantKernels = hostQuant(returning);
