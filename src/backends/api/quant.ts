// Quant kernels: the interface every backend implements for this family. Arguments are already checked by
// src/ops/quant.ts (lengths agree, block sizes are powers of two in [32, 4096], codes are 256 or 16 finite
// values, scales are finite and > 0). Kernels write only their outputs (Adam steps: params and states, in place).

/** Hyper-parameters of one Adam step, already folded as bitsandbytes does (all float32 values). */
export interface AdamStepScalars {
  beta1: number;
  /** fround(1 - beta1) */
  oneMinusBeta1: number;
  beta2: number;
  oneMinusBeta2: number;
  /** eps * sqrt(1 - beta2^t) */
  epsC2: number;
  /** -lr * sqrt(1 - beta2^t) / (1 - beta1^t) */
  stepSize: number;
  /** 1 - lr * weightDecay (1 when no decay): p *= decay after the update. */
  decay: number;
}

/** 8-bit Adam state of one tensor: codes of m and v, per-block absmax of each. */
export interface Adam8bitState {
  c1: Uint8Array;
  c2: Uint8Array;
  absmax1: Float32Array;
  absmax2: Float32Array;
  blockSize: number;
  /** code of m (signed, sorted, 256) and of v (unsigned, sorted, 256) */
  code1: Float32Array;
  code2: Float32Array;
}

/**
 * The quantizers as host implementations write them: each returns the index of the first block (group) holding
 * NaN/±Infinity, or -1. backends/host/quant.ts turns them into QuantKernels, which write that index into `bad`.
 */
export interface QuantKernelsReturning {
  /**
   * Block-wise 8-bit quantization. Writes absmax[b] = max |x| of block b, then (unless a block holds NaN or
   * ±Infinity, whose index is returned: nothing is written to caller-visible arrays, except that arrays living in
   * WASM memory may hold partial absmax) codes[i] = the code index nearest to
   * clamp(x[i] * f32(1 / max(absmax, 1e-38)), -1, 1), ties to the lower index; with `rand` (f32 in [0, 1))
   * rounding is stochastic between the two neighbouring code values. Returns -1 on success.
   */
  quantizeBlockwise(x: Float32Array, blockSize: number, code: Float32Array, codes: Uint8Array, absmax: Float32Array, rand: Float32Array | null): number;
  /** out[i] = code[codes[i]] * absmax[i / blockSize] in f32. */
  dequantizeBlockwise(codes: Uint8Array, blockSize: number, code: Float32Array, absmax: Float32Array, out: Float32Array): void;
  /** 4-bit: like quantizeBlockwise with a 16-entry code, two codes a byte, element 2j in the high nibble. */
  quantize4bit(x: Float32Array, blockSize: number, code: Float32Array, packed: Uint8Array, absmax: Float32Array): number;
  dequantize4bit(packed: Uint8Array, blockSize: number, code: Float32Array, absmax: Float32Array, out: Float32Array): void;
  /**
   * Per contiguous group of `group` elements q = saturate(rint(x / scale) + zp), half to even; int8 when q is an
   * Int8Array. With `compute`, scale and zeroPoint are first derived per group (see ops quantizeAffine) and
   * written; a group holding NaN/±Infinity stops the call and its index is returned (nothing written, as for
   * quantizeBlockwise). Returns -1 on success.
   */
  quantizeAffine(x: Float32Array, group: number, compute: boolean, scale: Float32Array, zeroPoint: Int32Array, q: Int8Array | Uint8Array): number;
  /** out = (q - zp) * scale. */
  dequantizeAffine(q: Int8Array | Uint8Array, group: number, scale: Float32Array, zeroPoint: Int32Array, out: Float32Array): void;
  /** ggml blocks of 32 (x.length a multiple of 32). Returns the first block holding NaN/±Infinity, or -1. */
  quantizeQ8_0(x: Float32Array, out: Uint8Array): number;
  dequantizeQ8_0(bytes: Uint8Array, out: Float32Array): void;
  quantizeQ4_0(x: Float32Array, out: Uint8Array): number;
  dequantizeQ4_0(bytes: Uint8Array, out: Float32Array): void;
  /** One 8-bit block-wise Adam step on p (in place) and its state. */
  adam8bitStep(p: Float32Array, g: Float32Array, s: Adam8bitState, h: AdamStepScalars): void;
  /** One Adam step with f32 states m, v (in place). */
  adam32Step(p: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, h: AdamStepScalars): void;
}

type Quantizer = "quantizeBlockwise" | "quantize4bit" | "quantizeAffine" | "quantizeQ8_0" | "quantizeQ4_0";
type WithBad<F> = F extends (...a: infer A) => number ? (...a: [...A, bad: Int32Array]) => void : never;

/**
 * Quantization kernels: QuantKernelsReturning's, with each quantizer writing its bad block (or -1) into
 * bad[0] instead of returning it (so a device call need not wait for it), plus the arithmetic around them.
 * quantizeAffine without `compute` also reports the first group holding NaN/±Infinity in x (and then writes nothing).
 */
export type QuantKernels = Omit<QuantKernelsReturning, Quantizer> & { [K in Quantizer]: WithBad<QuantKernelsReturning[K]> } & {
  /** out[i] = floor(hash01(seed, i) * 2^24) / 2^24: the stochastic-rounding draws of (seed, i), exact in f32. */
  uniforms(out: Float32Array, seed: number): void;
  /** Double quantization's centring: offset[0] = f32(mean of absmax) (f64 sums of chunks of 4096 in order, then of the chunks' sums in order), centered = absmax - offset in f32. */
  absmaxCenter(absmax: Float32Array, centered: Float32Array, offset: Float32Array): void;
  /** x[i] = f32(x[i] + offset[0]), in place (undoing absmaxCenter after dequantization). */
  absmaxUncenter(x: Float32Array, offset: Float32Array): void;
  /** out[i] = f32(x[i]): f64 input rounded to float32, as the formats need. */
  toF32(x: Float64Array, out: Float32Array): void;
};
