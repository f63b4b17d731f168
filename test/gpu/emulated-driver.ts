// An emulated CUDA device for testing the cuda backend's TypeScript on a machine without a GPU: device memory is
// a map of host buffers, and each kernel of kernels.cu is mirrored in TypeScript (same f64 arithmetic, same row
// rules). It checks storage, host-array marshalling, staging and dispatch; the CUDA C itself runs only on a GPU.
import type { Cublas, GemmCall } from "../../src/backends/cuda/cublas.ts";
import type { Driver, KernelArg } from "../../src/backends/cuda/driver.ts";
import { quantReference } from "../../src/backends/reference/quant.ts";
import { hash01 } from "../../src/report/rng.ts";


export interface EmulatedDriver extends Driver {
  /** cuBLAS's column-major GEMM over this memory (f64 sums, rounded once to the type). */
  blas(): Cublas;
  /** Device allocations alive now (bytes). */
  liveBytes(): number;
  launches: string[];
  /** How many times each memory and synchronizing call ran (alloc, free, htod, dtoh, dtod, zero, sync). */
  calls: Record<string, number>;
}

export function emulatedDriver(): EmulatedDriver {
  const mem = new Map<bigint, Uint8Array>();
  let next = 0x10000n;
  const buf = (p: bigint) => {
    const b = mem.get(p);
    if (!b) throw new Error(`emulated cuda: no allocation at ${p}`);
    return b;
  };
  /** The bytes from device address p to the end of its allocation (kernels may get pointers into one). */
  const bytesAt = (p: bigint) => {
    for (const [base, b] of mem) if (p >= base && p < base + BigInt(b.byteLength)) return b.subarray(Number(p - base));
    throw new Error(`emulated cuda: no allocation holds ${p}`);
  };
  const f32 = (p: bigint) => { const b = bytesAt(p); return new Float32Array(b.buffer, b.byteOffset, b.byteLength >> 2); };
  const f64 = (p: bigint) => { const b = bytesAt(p); return new Float64Array(b.buffer, b.byteOffset, b.byteLength >> 3); };
  const i32 = (p: bigint) => { const b = bytesAt(p); return new Int32Array(b.buffer, b.byteOffset, b.byteLength >> 2); };
  const fr = Math.fround;
  const u8 = (p: bigint) => bytesAt(p);
  const i8 = (p: bigint) => { const b = bytesAt(p); return new Int8Array(b.buffer, b.byteOffset, b.byteLength); };
  const bitsBuf = new Float32Array(1), bitsInt = new Int32Array(bitsBuf.buffer);
  const absBits = (v: number) => { bitsBuf[0] = v; return bitsInt[0]! & 0x7fffffff; };
  /** kernels.cu affine_param: a group's scale (0 becomes 1) and zero point, or null for a bad group. */
  const affineParam = (m: number, mn: number, mx: number, signed: number): { s: number; z: number } | null => {
    if (m >= 0x7f800000) return null;
    if (signed) { const s = fr(fromBits(m) / 127); return { s: s === 0 ? 1 : s, z: 0 }; }
    const range = fr(mx - mn), s = fr(range / 255);
    if (!(range < Infinity)) return null;
    return { s: s === 0 ? 1 : s, z: s > 0 ? Math.min(255, Math.max(0, rintEven(fr(-mn / s)))) : 0 };
  };
  /** kernels.cu affine_q: saturate(rint(x / scale) + zp), half to even (NaN to the lowest). */
  const affineQ = (x: number, s: number, z: number, signed: number) => {
    const [lo, hi] = signed ? [-128, 127] : [0, 255], v = fr(rintEven(fr(x / s)) + z);
    return v !== v ? lo : Math.min(hi, Math.max(lo, v));
  };
  /** An affine group's max |x| bits, min(0, min x) and max(0, max x) over x[from, to). */
  const affineStats = (x: Float32Array, from: number, to: number): [number, number, number] => {
    let m = 0, mn = 0, mx = 0;
    for (let i = from; i < to; i++) {
      const v = x[i]!;
      m = Math.max(m, absBits(v));
      if (v < mn) mn = v;
      if (v > mx) mx = v;
    }
    return [m, mn, mx];
  };
  const fromBits = (m: number) => { bitsInt[0] = m; return bitsBuf[0]!; };
  /** rintf: round half to even. */
  const rintEven = (v: number) => { const r = Math.round(v); return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r; };
  /** code_of of kernels.cu: #{j : v > thr[j]} by the same search over the thresholds' tree (Eytzinger order), then the code index. */
  const codeOf = (v: number, tree: Float32Array, ranks: Uint8Array) => {
    let i = 1;
    for (let l = 0; l < 8; l++) i = 2 * i + (v > tree[i]! ? 1 : 0);
    return ranks[i - 256]!;
  };
  const scaleClamp = (x: number, inv: number) => { const v = fr(x * inv); return v > 1 ? 1 : v < -1 ? -1 : v; };
  const names: string[] = [];
  const launches: string[] = [];
  const calls: Record<string, number> = {};
  const count = (what: string) => { calls[what] = (calls[what] ?? 0) + 1; };
  /** StableMax's s(x), each operation rounded by R (f32 kernels); sOf: in f64. */
  const sOfR = (x: number, R: (v: number) => number) => (x >= 0 ? R(x + 1) : R(1 / R(1 - x)));
  const sOf = (x: number) => sOfR(x, (v) => v);
  const logSOf = (x: number) => (x >= 0 ? Math.log1p(x) : -Math.log1p(-x));
  function softmaxRows(x: Float32Array | Float64Array, y: Float32Array | Float64Array, cols: number, scale: number, log: boolean, rows: number) {
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      let m = -Infinity, nan = false;
      for (let i = 0; i < cols; i++) { const v = x[o + i]!; if (v !== v) nan = true; else if (v > m) m = v; }
      if (nan) m = NaN;
      let s = 0;
      for (let i = 0; i < cols; i++) s += Math.exp((x[o + i]! - m) * scale);
      const bad = !(s > 0 && s < Infinity) || m !== m, ls = Math.log(s);
      for (let i = 0; i < cols; i++) y[o + i] = bad ? NaN : log ? (x[o + i]! - m) * scale - ls : Math.exp((x[o + i]! - m) * scale) / s;
    }
  }
  function stableRows(x: Float32Array | Float64Array, y: Float32Array | Float64Array, cols: number, log: boolean, rows: number) {
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      let s = 0;
      for (let i = 0; i < cols; i++) s += sOf(x[o + i]!);
      const bad = !(s > 0 && s < Infinity), ls = Math.log(s);
      for (let i = 0; i < cols; i++) y[o + i] = bad ? NaN : log ? logSOf(x[o + i]!) - ls : sOf(x[o + i]!) / s;
    }
  }
  const view = (t: string) => (t === "f64" ? f64 : f32);

  /** exp_rr2p5 of kernels.cu (the wasm kernel's f32 exp), every operation rounded to f32. */
  const F = (u: number) => { const b = new Uint32Array([u]); return new Float32Array(b.buffer)[0]!; };
  const [LOG2E, MAGIC, MLN2HI, MLN2LO, CUTOFF, C5, C4, C3, C2, C1] = [0x3FB8AA3B, 0x4B40007F, 0xBF317200, 0xB5BFBE8E, 0xC2AEAC4F,
    0x3C07CFCE, 0x3D2B9D0D, 0x3E2AAD40, 0x3EFFFEE3, 0x3F7FFFFB].map(F) as number[];
  const fbuf = new Float32Array(1), ibuf = new Int32Array(fbuf.buffer);
  function expRr2p5(x: number): number {
    let n = fr(fr(x * LOG2E!) + MAGIC!);
    fbuf[0] = n;
    ibuf[0] = ibuf[0]! << 23;
    const s = fbuf[0]!;
    n = fr(n - MAGIC!);
    let t = fr(fr(n * MLN2HI!) + x);
    t = fr(fr(n * MLN2LO!) + t);
    let p = fr(fr(C5! * t) + C4!);
    p = fr(fr(p * t) + C3!);
    p = fr(fr(p * t) + C2!);
    p = fr(fr(p * t) + C1!);
    t = fr(t * s);
    const f = fr(fr(t * p) + s);
    return x < CUTOFF! ? 0 : f;
  }
  /** The ce_* kernels of kernels.cu and ce_finish, per row then summed in row order. */
  function ceRows(name: string, p: (i: number) => bigint, n: (i: number) => number) {
    const f64in = name.endsWith("_f64") && !name.includes("f32in"), math64 = name.endsWith("f64"), stable = name.includes("stablemax");
    const z = (f64in ? f64 : f32)(p(0)), labels = i32(p(1)), gp = p(2), grad = gp ? (f64in ? f64 : f32)(gp) : null;
    const rows = n(3), cols = n(4), st = f64(p(5));
    const R = math64 ? (v: number) => v : fr;
    for (let r = 0; r < rows; r++) {
      const o = r * cols, y = labels[r]!;
      const bad = () => { st[3 * r] = NaN; st[3 * r + 1] = 0; st[3 * r + 2] = 0; if (grad) grad.fill(NaN, o, o + cols); };
      if (stable) {
        let S = 0, mx = -Infinity;
        for (let i = 0; i < cols; i++) { const v = R(z[o + i]!); mx = v > mx ? v : mx; S = R(S + sOfR(v, R)); }
        if (!(S > 0 && S < Infinity) || !(mx < Infinity)) { bad(); continue; }
        const sm = sOfR(mx, R), zy = R(z[o + y]!), sy = sOfR(zy, R);
        const l = -R(Math.log(R(sy / S)));
        st[3 * r] = l; st[3 * r + 1] = S === sm ? 1 : 0; st[3 * r + 2] = l === 0 ? 1 : 0;
        if (!grad) continue;
        const invS = R(1 / S), invN = R(1 / rows);
        for (let i = 0; i < cols; i++) {
          const v = R(z[o + i]!), d = v >= 0 ? 1 : R(1 / R(R(1 - v) * R(1 - v)));
          grad[o + i] = i === y ? R(R(R(d * invS) - R(d / sy)) * invN) : R(R(d * invS) * invN);
        }
        continue;
      }
      let mx = -Infinity, nan = false;
      for (let i = 0; i < cols; i++) { const v = z[o + i]!; if (v !== v) nan = true; else if (v > mx) mx = v; }
      if (nan || !(mx > -Infinity && mx < Infinity)) { bad(); continue; }
      if (math64) {
        let s = 0;
        for (let i = 0; i < cols; i++) s += Math.exp(z[o + i]! - mx);
        const ls = Math.log(s), l = -((z[o + y]! - mx) - ls);
        st[3 * r] = l; st[3 * r + 1] = s === 1 ? 1 : 0; st[3 * r + 2] = l === 0 ? 1 : 0;
        const invN = 1 / rows;
        if (grad) for (let i = 0; i < cols; i++) { const q = Math.exp((z[o + i]! - mx) - ls); grad[o + i] = (i === y ? q - 1 : q) * invN; }
        continue;
      }
      const a = [0, 0, 0, 0];
      let i = 0;
      for (; i + 4 <= cols; i += 4) for (let q = 0; q < 4; q++) a[q] = fr(a[q]! + expRr2p5(fr(z[o + i + q]! - mx)));
      let s = fr(fr(a[0]! + a[1]!) + fr(a[2]! + a[3]!));
      for (; i < cols; i++) s = fr(s + expRr2p5(fr(z[o + i]! - mx)));
      const ls = fr(Math.log(s)), l = -fr(fr(z[o + y]! - mx) - ls), invN = fr(1 / rows);
      st[3 * r] = l; st[3 * r + 1] = s === 1 ? 1 : 0; st[3 * r + 2] = l === 0 ? 1 : 0;
      if (!grad) continue;
      for (let k = 0; k < cols; k++) grad[o + k] = fr(expRr2p5(fr(fr(z[o + k]! - mx) - ls)) * invN);
      grad[o + y] = fr(fr(expRr2p5(fr(fr(z[o + y]! - mx) - ls)) - 1) * invN);
    }
  }
  /** The ce_*_wide kernels of kernels.cu: a block of `block` threads per row, strided partial sums, blockSum. */
  function ceWide(name: string, p: (i: number) => bigint, n: (i: number) => number, block: number) {
    const f64in = name.endsWith("_f64") && !name.includes("f32in"), math64 = name.endsWith("f64"), stable = name.includes("stablemax");
    const z = (f64in ? f64 : f32)(p(0)), labels = i32(p(1)), gp = p(2), grad = gp ? (f64in ? f64 : f32)(gp) : null;
    const rows = n(3), cols = n(4), st = f64(p(5));
    const R = math64 ? (v: number) => v : fr, invN = R(1 / rows);
    const term = (v: number, mx: number) => (stable ? sOfR(v, R) : math64 ? Math.exp(v - mx) : expRr2p5(fr(v - mx)));
    for (let r = 0; r < rows; r++) {
      const o = r * cols, y = labels[r]!;
      let m = -Infinity;
      for (let i = 0; i < cols; i++) { const v = z[o + i]!; m = m !== m || v !== v ? NaN : Math.max(m, v); }
      const mx = R(m), part = new Array<number>(block).fill(0);
      if (stable || (m > -Infinity && m < Infinity)) for (let i = 0; i < cols; i++) part[i % block] = R(part[i % block]! + term(R(z[o + i]!), mx));
      const s = blockSum(part, R);
      if (stable ? !(s > 0 && s < Infinity) || !(mx < Infinity) : !(m > -Infinity && m < Infinity)) {
        st[3 * r] = NaN; st[3 * r + 1] = 0; st[3 * r + 2] = 0;
        if (grad) grad.fill(NaN, o, o + cols);
        continue;
      }
      const zy = R(z[o + y]!);
      if (stable) {
        const sy = sOfR(zy, R), l = -R(Math.log(R(sy / s))), invS = R(1 / s);
        st[3 * r] = l; st[3 * r + 1] = s === sOfR(mx, R) ? 1 : 0; st[3 * r + 2] = l === 0 ? 1 : 0;
        if (grad) for (let i = 0; i < cols; i++) {
          const v = R(z[o + i]!), d = v >= 0 ? 1 : R(1 / R(R(1 - v) * R(1 - v)));
          grad[o + i] = i === y ? R(R(R(d * invS) - R(d / sy)) * invN) : R(R(d * invS) * invN);
        }
      } else {
        const ls = R(Math.log(s)), l = -R(R(zy - mx) - ls);
        st[3 * r] = l; st[3 * r + 1] = s === 1 ? 1 : 0; st[3 * r + 2] = l === 0 ? 1 : 0;
        if (grad) for (let i = 0; i < cols; i++) {
          const q = math64 ? Math.exp(R(z[o + i]!) - mx - ls) : expRr2p5(fr(fr(z[o + i]! - mx) - ls));
          grad[o + i] = R((i === y ? R(q - 1) : q) * invN);
        }
      }
    }
  }
  /** adam8bit_f32 of kernels.cu: per block, the new moments and parameters, the NaN-propagating absmax, requantization. */
  function adam8bit(p: (i: number) => bigint, n: (i: number) => number, grid: number) {
    const [pp, g] = [f32(p(0)), f32(p(1))], [c1, c2] = [u8(p(2)), u8(p(3))], [a1, a2] = [f32(p(4)), f32(p(5))], len = n(6), bs = n(7);
    const [code1, tree1, ranks1, code2, tree2, ranks2] = [f32(p(8)), f32(p(9)), u8(p(10)), f32(p(11)), f32(p(12)), u8(p(13))];
    const [b1, omb1, b2, omb2, epsc2, step, decay] = [14, 15, 16, 17, 18, 19, 20].map(n) as number[];
    const maxNan = (a: number, b: number) => (a !== a || b !== b ? NaN : Math.max(a, b));
    const clamp1 = (v: number) => (v > 1 ? 1 : v >= -1 ? v : -1);
    for (let b = 0; b < grid; b++) {
      const s = b * bs, end = Math.min(len, s + bs), am1 = a1[b]!, am2 = a2[b]!, r1: number[] = [], r2: number[] = [];
      let m1 = 0, m2 = 0;
      for (let i = s; i < end; i++) {
        const gv = g[i]!;
        let v1 = 0, v2 = 0;
        if (Math.abs(gv) < Infinity) {
          v2 = fr(code2[c2[i]!]! * am2);
          v2 = fr(fr(v2 * b2!) + fr(fr(omb2! * gv) * gv));
          v1 = fr(code1[c1[i]!]! * am1);
          v1 = fr(fr(v1 * b1!) + fr(omb1! * gv));
          const pv = fr(pp[i]! + fr(step! * fr(v1 / fr(fr(Math.sqrt(v2)) + epsc2!))));
          pp[i] = decay !== 1 ? fr(pv * decay!) : pv;
        }
        m1 = maxNan(m1, Math.abs(v1));
        m2 = maxNan(m2, Math.abs(v2));
        r1.push(v1);
        r2.push(v2);
      }
      a1[b] = m1;
      a2[b] = m2;
      const d1 = maxNan(m1, fr(1e-38)), d2 = maxNan(m2, fr(1e-38));
      for (let i = s; i < end; i++) {
        const v1 = r1[i - s]!;
        let q1 = codeOf(clamp1(fr(v1 / d1)), tree1, ranks1);
        if (v1 === v1 && (code1[q1]! < 0 || Object.is(code1[q1], -0)) !== (v1 < 0 || Object.is(v1, -0))) q1 = v1 > 0 ? q1 + 1 : q1 - 1;
        c1[i] = q1;
        c2[i] = codeOf(clamp1(fr(r2[i - s]! / d2)), tree2, ranks2);
      }
    }
  }
  /** block_sum_t of kernels.cu over one value per thread (each sum rounded by R): xor butterflies in each warp, then over the warps' sums. */
  function blockSum(v: number[], R = (x: number) => x): number {
    const warp = (a: number[]) => { for (let o = 16; o > 0; o >>= 1) a = a.map((x, l) => R(x + a[l ^ o]!)); return a[0]!; };
    const parts: number[] = [];
    for (let w = 0; w < v.length; w += 32) parts.push(warp(v.slice(w, w + 32)));
    return warp([...parts, ...new Array<number>(32 - parts.length).fill(0)]);
  }
  function ceFinish(p: (i: number) => bigint, n: (i: number) => number, block: number) {
    const st = f64(p(0)), rows = n(1), out = f64(p(2)), per = Math.ceil(rows / block);
    const sums = [0, 1, 2].map((j) => blockSum(Array.from({ length: block }, (_, t) => {
      let s = 0;
      for (let r = t * per; r < Math.min(rows, (t + 1) * per); r++) s += st[3 * r + j]!;
      return s;
    })));
    out[0] = sums[0]! / rows; out[1] = sums[1]! / rows; out[2] = sums[2]! / rows;
  }
  /** topk_key of kernels.cu as a BigInt: order-preserving value bits high, ~index low. */
  const topkKey = (v: number, i: number) => {
    let hi: bigint;
    if (v !== v) hi = 0x7fffffffn;
    else { bitsBuf[0] = v; const b = bitsInt[0]!, o = b ^ ((b >> 31) & 0x7fffffff); hi = BigInt(o === -1 ? 0 : o); }
    return (hi << 32n) | BigInt((~i) >>> 0);
  };
  const KEY_MIN = -(1n << 63n);
  const idxOf = (b: bigint) => ~Number(BigInt.asIntN(32, b & 0xffffffffn));
  /** topk_keys of kernels.cu: the keys of the k best of x[o .. o + n), best first. */
  function topkKeys(xx: Float32Array, o: number, len: number, k: number): bigint[] {
    const buf: bigint[] = new Array(k).fill(KEY_MIN);
    for (let i = 0; i < len; i++) {
      const kk = topkKey(xx[o + i]!, i);
      if (kk <= buf[k - 1]!) continue;
      let j = k - 1;
      for (; j > 0 && buf[j - 1]! < kk; j--) buf[j] = buf[j - 1]!;
      buf[j] = kk;
    }
    return buf;
  }
  const sigmoidD = (u: number) => { const e = Math.exp(-Math.abs(u)); return u >= 0 ? 1 / (1 + e) : e / (1 + e); };
  /** route_score_row of kernels.cu: scores of z[o .. o + len) into s[so ..]; returns what p divides them by. */
  function scoreRow(z: Float32Array, o: number, s: Float32Array, so: number, len: number, mode: number, scale: number): number {
    if (mode === 1) {
      let S = 0;
      for (let i = 0; i < len; i++) { const v = fr(sigmoidD(fr(z[o + i]! * scale))); s[so + i] = v; S += v; }
      return S;
    }
    if (mode === 2) {
      let S = 0;
      for (let i = 0; i < len; i++) S += sOf(fr(z[o + i]! * scale));
      const bad = !(S > 0 && S < Infinity);
      for (let i = 0; i < len; i++) s[so + i] = bad ? NaN : sOf(fr(z[o + i]! * scale)) / S;
      return 1;
    }
    const t = mode === 0 ? scale : 1, v = (i: number) => (mode === 0 ? z[o + i]! : fr(fr(sigmoidD(z[o + i]!)) * scale));
    let m = -Infinity, nan = false;
    for (let i = 0; i < len; i++) { const u = v(i); if (u !== u) nan = true; else if (u > m) m = u; }
    if (nan || !(m > -Infinity && m < Infinity)) { for (let i = 0; i < len; i++) s[so + i] = NaN; return 1; }
    let sum = 0;
    for (let i = 0; i < len; i++) sum += Math.exp((v(i) - m) * t);
    for (let i = 0; i < len; i++) s[so + i] = Math.exp((v(i) - m) * t) / sum;
    return 1;
  }
  function routeLse(z: Float32Array, o: number, len: number): number {
    let m = -Infinity, nan = false;
    for (let i = 0; i < len; i++) { const v = z[o + i]!; if (v !== v) nan = true; else if (v > m) m = v; }
    if (nan) return NaN;
    if (!(m > -Infinity && m < Infinity)) return m;
    let s = 0;
    for (let i = 0; i < len; i++) s += Math.exp(z[o + i]! - m);
    return m + Math.log(s);
  }
  /** The router's kernels (route_*, dispatch_*, combine_*, scan_*, update_bias) and the embedding backward's sort (emb_count, radix_hist, radix_scatter), each as kernels.cu computes it. */
  function router(name: string, p: (i: number) => bigint, n: (i: number) => number, args: KernelArg[]) {
    const opt = <T>(i: number, view: (q: bigint) => T) => (p(i) === 0n ? null : view(p(i)));
    const SC = 1024;
    switch (/^route_select_f32_k\d+$/.test(name) ? "route_select_f32" : name) { // the keys in registers or in scratch: the same selection
      case "route_score_f32": {
        const z = f32(p(0)), [T, E, mode, scale] = [n(1), n(2), n(3), n(4)], s = f32(p(5)), inv = f64(p(6)), lse = f64(p(7));
        for (let t = 0; t < T; t++) { inv[t] = 1 / scoreRow(z, t * E, s, t * E, E, mode, scale); lse[t] = routeLse(z, t * E, E); }
        return;
      }
      case "route_psum": {
        const s = f32(p(0)), inv = f64(p(1)), [T, E] = [n(2), n(3)], pSum = f64(p(4));
        for (let e = 0; e < E; e++) { let v = 0; for (let t = 0; t < T; t++) v += s[t * E + e]! * inv[t]!; pSum[e] = pSum[e]! + v; }
        return;
      }
      case "route_select_f32": {
        const z = f32(p(0)), s = f32(p(1)), bias = opt(2, f32), [T, E, k, groups, topkGroups, normalize, rscale] = [3, 4, 5, 6, 7, 8, 9].map(n) as number[];
        const sel = new Float32Array(E), experts = i32(p(14)), weights = f32(p(15)), pre = i32(p(16));
        for (let t = 0; t < T; t++) {
          let src = z, so = t * E!;
          if (bias || groups! > 1) {
            for (let e = 0; e < E!; e++) sel[e] = bias ? s[t * E! + e]! + bias[e]! : s[t * E! + e]!;
            if (groups! > 1) {
              const gs = E! / groups!, two = bias ? Math.min(2, gs) : 1, gsc = new Float32Array(groups!);
              for (let g = 0; g < groups!; g++) {
                const kb = topkKeys(sel, g * gs, gs, two);
                gsc[g] = two === 2 ? sel[g * gs + idxOf(kb[0]!)]! + sel[g * gs + idxOf(kb[1]!)]! : sel[g * gs + idxOf(kb[0]!)]!;
              }
              const keep = new Set(topkKeys(gsc, 0, groups!, topkGroups!).map(idxOf));
              for (let g = 0; g < groups!; g++) if (!keep.has(g)) sel.fill(-Infinity, g * gs, (g + 1) * gs);
            }
            src = sel;
            so = 0;
          }
          const kb = topkKeys(src, so, E!, k!);
          let sum = 0;
          for (const b of kb) sum += s[t * E! + idxOf(b)]!;
          const c = normalize && sum > 0 ? rscale! / sum : rscale!;
          kb.forEach((b, j) => { const e = idxOf(b); experts[t * k! + j] = e; weights[t * k! + j] = s[t * E! + e]! * c; pre[e] = pre[e]! + 1; });
        }
        return;
      }
      case "route_ec_threshold_f32": { // each expert's cap-th largest key (all or none: KEY_MIN)
        const s = f32(p(0)), bias = opt(1, f32), [T, E, cap] = [n(2), n(3), n(4)], b = bytesAt(p(5)), thr = new BigInt64Array(b.buffer, b.byteOffset, E);
        for (let e = 0; e < E; e++) {
          const keys = Array.from({ length: T }, (_, t) => topkKey(fr(s[t * E + e]! + (bias ? bias[e]! : 0)), t)).sort((x, y) => (x > y ? -1 : x < y ? 1 : 0));
          thr[e] = cap <= 0 || cap >= T ? KEY_MIN : keys[cap - 1]!;
        }
        return;
      }
      case "route_ec_select_f32": {
        const s = f32(p(0)), bias = opt(1, f32), [T, E, cap] = [n(2), n(3), n(4)], b = bytesAt(p(5)), thr = new BigInt64Array(b.buffer, b.byteOffset, E);
        const experts = i32(p(6)), weights = f32(p(7));
        for (let t = 0; t < T; t++) for (let e = 0; e < E; e++) {
          const a = t * E + e, chosen = cap > 0 && topkKey(fr(s[a]! + (bias ? bias[e]! : 0)), t) >= thr[e]!;
          experts[a] = chosen ? e : -1;
          weights[a] = chosen ? s[a]! : 0;
        }
        return;
      }
      case "route_ec_finish": {
        const experts = i32(p(0)), weights = f32(p(1)), [T, E, normalize, rscale] = [n(2), n(3), n(4), n(5)], untaken = i32(p(6));
        for (let t = 0; t < T; t++) {
          let sum = 0, cnt = 0;
          for (let e = 0; e < E; e++) if (experts[t * E + e]! >= 0) { sum += weights[t * E + e]!; cnt++; }
          if (cnt === 0) untaken[0]!++;
          const c = normalize && sum > 0 ? rscale / sum : rscale;
          for (let e = 0; e < E; e++) weights[t * E + e] = weights[t * E + e]! * c;
        }
        return;
      }
      case "route_ec_stats": {
        const pre = i32(p(0)), [E, cap] = [n(1), n(2)];
        for (let e = 0; e < E; e++) pre[e] = pre[e]! + cap;
        f64(p(4))[0] = i32(p(3))[0]!;
        return;
      }
      case "dispatch_count": {
        const experts = i32(p(0)), [len, E, CH] = [n(1), n(2), n(3)], hist = i32(p(4)), neg = i32(p(5));
        for (let c = 0; c * CH < len; c++) {
          hist.fill(0, c * E, (c + 1) * E);
          let ng = 0;
          for (let a = c * CH; a < Math.min(len, (c + 1) * CH); a++) { const e = experts[a]!; if (e < 0) ng++; else hist[c * E + e]!++; }
          neg[c] = ng;
        }
        return;
      }
      case "dispatch_scan": {
        const hist = i32(p(0)), [chunks, E, cap] = [n(1), n(2), n(3)], base = i32(p(4)), counts = i32(p(5)), total = i32(p(6));
        for (let e = 0; e < E; e++) {
          let acc = 0;
          for (let c = 0; c < chunks; c++) { base[c * E + e] = acc; acc += hist[c * E + e]!; }
          total[e] = acc;
          counts[e] = cap >= 0 && acc > cap ? cap : acc;
        }
        return;
      }
      case "dispatch_drops": {
        const hist = i32(p(0)), base = i32(p(1)), [chunks, E, cap] = [n(2), n(3), n(4)], neg = i32(p(5));
        for (let c = 0; c < chunks; c++) {
          let dd = 0;
          for (let e = 0; e < E; e++) { const h = hist[c * E + e]!, room = cap - base[c * E + e]!; dd += h - (room < 0 ? 0 : room > h ? h : room); }
          neg[c] = neg[c]! + dd;
        }
        return;
      }
      case "dispatch_offsets": {
        const counts = i32(p(0)), total = i32(p(1)), [E, chunks] = [n(2), n(3)], offsets = i32(p(4)), neg = i32(p(5)), stats = opt(6, f64);
        let acc = 0, dropped = 0;
        for (let e = 0; e < E; e++) { offsets[e] = acc; acc += counts[e]!; dropped += total[e]! - counts[e]!; }
        offsets[E] = acc;
        let tail = acc;
        for (let c = 0; c < chunks; c++) { const v = neg[c]!; neg[c] = tail; tail += v; }
        if (stats) stats[0] = dropped;
        return;
      }
      case "dispatch_place": {
        const experts = i32(p(0)), weights = f32(p(1)), [len, E, CH, cap] = [n(2), n(3), n(4), n(5)], cur = i32(p(6)), base = i32(p(7)), offsets = i32(p(8)), neg = i32(p(9)), order = i32(p(10));
        for (let c = 0; c * CH < len; c++) {
          for (let e = 0; e < E; e++) cur[c * E + e] = base[c * E + e]!;
          let tail = neg[c]!;
          for (let a = c * CH; a < Math.min(len, (c + 1) * CH); a++) {
            const e = experts[a]!;
            if (e < 0) { order[tail++] = a; continue; }
            const r = cur[c * E + e]!++;
            if (cap >= 0 && r >= cap) { experts[a] = -1; weights[a] = 0; order[tail++] = a; } else order[offsets[e]! + r] = a;
          }
        }
        return;
      }
      case "route_losses": {
        const pre = i32(p(0)), pSum = f64(p(1)), lse = f64(p(2)), [T, E, fDen] = [n(3), n(4), n(5)], coef = f64(p(6)), stats = f64(p(7));
        let z = 0, aux = 0;
        for (let t = 0; t < T; t++) z += lse[t]! * lse[t]!;
        for (let e = 0; e < E; e++) { const f = pre[e]! / fDen; aux += f * (pSum[e]! / T); coef[e] = (E * f) / T; }
        stats[1] = aux * E;
        stats[2] = z / T;
        return;
      }
      case "route_grad_f32": {
        const z = f32(p(0)), [T, E, mode, scale] = [n(1), n(2), n(3), n(4)], coef = f64(p(5)), lse = f64(p(6)), aux = opt(7, f32), zg = opt(8, f32);
        for (let t = 0; t < T; t++) {
          const o = t * E;
          if (zg) {
            scoreRow(z, o, zg, o, E, 0, 1);
            const c = fr(2 * lse[t]! * (1 / T));
            for (let e = 0; e < E; e++) zg[o + e] = fr(zg[o + e]! * c);
          }
          if (!aux) continue;
          const S = scoreRow(z, o, aux, o, E, mode, scale), inv = mode === 1 ? 1 / S : 1;
          let gp = 0;
          for (let e = 0; e < E; e++) gp += coef[e]! * aux[o + e]! * inv;
          for (let e = 0; e < E; e++) {
            const sv = aux[o + e]!, dd = coef[e]! - gp;
            const sg = fr(sigmoidD(z[o + e]!));
            const g = mode === 0 ? sv * dd : mode === 1 ? sv * (1 - sv) * dd * inv : mode === 2 ? (sv * dd) / (1 + Math.abs(z[o + e]! * scale)) : sv * dd * sg * (1 - sg);
            aux[o + e] = g * scale;
          }
        }
        return;
      }
      case "update_bias": {
        const bias = f32(p(0)), counts = i32(p(1)), [E, rate] = [n(2), n(3)];
        let sum = 0;
        for (let e = 0; e < E; e++) sum += counts[e]!;
        for (let e = 0; e < E; e++) { const dd = sum / E - counts[e]!; bias[e] = bias[e]! + rate * (dd > 0 ? 1 : dd < 0 ? -1 : 0); }
        return;
      }
      case "combine_count": {
        const order = i32(p(0)), [kept, slots] = [n(1), n(2)], cnt = i32(p(3));
        for (let q = 0; q < kept; q++) cnt[Math.trunc(order[q]! / slots)]!++;
        return;
      }
      case "scan_part": {
        const xx = i32(p(0)), len = n(1), part = i32(p(2));
        for (let c = 0; c * SC < len; c++) { let s = 0; for (let i = c * SC; i < Math.min(len, (c + 1) * SC); i++) s += xx[i]!; part[c] = s; }
        return;
      }
      case "scan_top": {
        const part = i32(p(0)), len = n(1), y = i32(p(2));
        let acc = 0;
        for (let c = 0; c * SC < len; c++) { const v = part[c]!; part[c] = acc; acc += v; }
        y[len] = acc;
        return;
      }
      case "scan_apply": {
        const xx = i32(p(0)), len = n(1), part = i32(p(2)), y = i32(p(3));
        for (let c = 0; c * SC < len; c++) { let s = part[c]!; for (let i = c * SC; i < Math.min(len, (c + 1) * SC); i++) { y[i] = s; s += xx[i]!; } }
        return;
      }
      case "combine_place": {
        // atomics hand out places in any order: reverse order here, so combine_sort must restore it
        const order = i32(p(0)), [kept, slots] = [n(1), n(2)], start = i32(p(3)), cur = i32(p(4)), list = i32(p(5));
        for (let q = kept - 1; q >= 0; q--) { const t = Math.trunc(order[q]! / slots); list[start[t]! + cur[t]!++] = q; }
        return;
      }
      case "emb_count": {
        const idx = i32(p(0)), len = n(1), vocab = n(2), cnt = i32(p(3));
        for (let a = 0; a < len; a++) { const v = idx[a]!; if (v >= 0 && v < vocab) cnt[v]!++; }
        return;
      }
      case "radix_hist": {
        const keys = i32(p(0)), [len, shift] = [n(1), n(2)], hist = i32(p(3)), tiles = Math.ceil(len / 2048);
        hist.fill(0, 0, 256 * tiles);
        for (let e = 0; e < len; e++) hist[((keys[e]! >> shift) & 255) * tiles + Math.floor(e / 2048)]!++;
        return;
      }
      case "radix_scatter": {
        // each tile in order: a stable counting sort on the digit
        const kin = i32(p(0)), vin = opt(1, i32), [len, shift] = [n(2), n(3)], place = i32(p(4)), kout = i32(p(5)), vout = i32(p(6)), tiles = Math.ceil(len / 2048);
        for (let t = 0; t < tiles; t++) {
          const run = Array.from({ length: 256 }, (_, dd) => place[dd * tiles + t]!);
          for (let e = t * 2048; e < Math.min(len, (t + 1) * 2048); e++) {
            const at = run[(kin[e]! >> shift) & 255]!++;
            kout[at] = kin[e]!;
            vout[at] = vin ? vin[e]! : e;
          }
        }
        return;
      }
      case "combine_sort": {
        const start = i32(p(0)), T = n(1), list = i32(p(2));
        for (let t = 0; t < T; t++) list.subarray(start[t]!, start[t + 1]!).sort();
        return;
      }
      case "combine_gather_f32": {
        const eo = f32(p(0)), order = i32(p(1)), weights = f32(p(2)), list = i32(p(3)), start = i32(p(4)), [T, hidden] = [n(5), n(6)], out = f32(p(7));
        for (let t = 0; t < T; t++) for (let h = 0; h < hidden; h++) {
          let acc = 0;
          for (let q = start[t]!; q < start[t + 1]!; q++) acc = fr(acc + fr(eo[list[q]! * hidden + h]! * weights[order[list[q]!]!]!));
          out[t * hidden + h] = acc;
        }
        return;
      }
    }
    throw new Error(`emulated cuda: no kernel ${name} (${args.length} args)`);
  }
  /** cublas?gemm: C = alpha op(A) op(B) + beta C, column-major with leading dimensions (beta 0: C not read). */
  const gemmCM = (name: string, view: typeof f32 | typeof f64, r: (v: number) => number): GemmCall => (opA, opB, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc) => {
    launches.push(name);
    const a = view(A), b = view(B), c = view(C);
    for (let j = 0; j < n; j++) for (let i = 0; i < m; i++) {
      let s = 0;
      for (let l = 0; l < k; l++) s += (opA ? a[l + i * lda]! : a[i + l * lda]!) * (opB ? b[j + l * ldb]! : b[l + j * ldb]!);
      c[i + j * ldc] = r(beta === 0 ? alpha * s : alpha * s + beta * c[i + j * ldc]!);
    }
  };
  return {
    blas: () => ({ engine: "emulated cuBLAS (FP32)", sgemm: gemmCM("cublasSgemm_v2", f32, fr), dgemm: gemmCM("cublasDgemm_v2", f64, (v) => v) }),
    ffi: undefined as never,
    device: { name: "emulated GPU", sm: 90, totalBytes: 2 ** 34, driverVersion: 13000 },
    stream: 0n, // and no capture(): a device that cannot record CUDA graphs
    liveBytes: () => [...mem.values()].reduce((a, b) => a + b.byteLength, 0),
    launches,
    calls,
    alloc(bytes) {
      count("alloc");
      const p = next;
      next += BigInt(Math.ceil(Math.max(bytes, 1) / 256) * 256 + 256);
      mem.set(p, new Uint8Array(Math.ceil(Math.max(bytes, 1) / 8) * 8));
      return p;
    },
    free(p) { count("free"); buf(p); mem.delete(p); },
    htod(p, src) { count("htod"); bytesAt(p).set(new Uint8Array(src.buffer, src.byteOffset, src.byteLength)); },
    dtoh(dst, p) { count("dtoh"); new Uint8Array(dst.buffer, dst.byteOffset, dst.byteLength).set(bytesAt(p).subarray(0, dst.byteLength)); },
    dtod(dst, src, bytes) { count("dtod"); bytesAt(dst).set(bytesAt(src).subarray(0, bytes)); },
    zero(p, bytes) { count("zero"); bytesAt(p).fill(0, 0, bytes); },
    module() {
      return (name) => {
        names.push(name);
        return BigInt(names.length);
      };
    },
    launch(fn, grid0, block0, args: KernelArg[], shared = 0) {
      const name = names[Number(fn) - 1]!, t = name.endsWith("f64") ? "f64" : "f32", grid = typeof grid0 === "number" ? grid0 : grid0[0], block = typeof block0 === "number" ? block0 : block0[0];
      launches.push(name);
      const p = (i: number) => (args[i] as { p: bigint }).p;
      const n = (i: number) => { const a = args[i]!; return "i32" in a ? a.i32 : "i64" in a ? a.i64 : "f32" in a ? a.f32 : (a as { f64: number }).f64; };
      const x = view(t)(p(0)), rnd = t === "f64" ? (v: number) => v : fr; // rounding to the kernel's type
      if (/^(softmax|stablemax)_(part|finish)_/.test(name)) { // P blocks a row: a part's (max, sum), then its outputs
        const stable = name.startsWith("stablemax"), finish = name.includes("finish"), cols = n(finish ? 2 : 1), P = n(finish ? 3 : 2), L = Math.ceil(cols / P);
        const scale = stable ? 1 : n(finish ? 4 : 3), part = f64(p(args.length - 1)), y = finish ? view(t)(p(1)) : x;
        for (let b = 0; b < grid; b++) {
          const r = Math.floor(b / P), c0 = r * cols + (b % P) * L, c1 = Math.min(r * cols + cols, c0 + L);
          if (!finish && stable) {
            let s = 0;
            for (let i = c0; i < c1; i++) s += sOf(x[i]!);
            part[2 * b + 1] = s;
          } else if (!finish) {
            let m = -Infinity, s = 0;
            for (let i = c0; i < c1; i++) m = x[i]! !== x[i]! || m !== m ? NaN : Math.max(m, x[i]!);
            if (m === m && m < Infinity) for (let i = c0; i < c1; i++) s += Math.exp((x[i]! - m) * scale);
            [part[2 * b], part[2 * b + 1]] = [m, m === -Infinity ? 0 : s];
          } else {
            let m = -Infinity, s = 0;
            for (let j = r * P; j < r * P + P; j++) m = m !== m || part[2 * j]! !== part[2 * j]! ? NaN : Math.max(m, part[2 * j]!);
            for (let j = r * P; j < r * P + P; j++) if (stable) s += part[2 * j + 1]!; else if (m > -Infinity && m < Infinity && part[2 * j + 1]! > 0) s += part[2 * j + 1]! * Math.exp((part[2 * j]! - m) * scale);
            const bad = !(s > 0 && s < Infinity) || (!stable && m !== m), ls = Math.log(s), log = n(stable ? 4 : 5);
            for (let i = c0; i < c1; i++) {
              const v = x[i]!;
              y[i] = bad ? NaN : stable ? (log ? logSOf(v) - ls : sOf(v) / s) : log ? (v - m) * scale - ls : Math.exp((v - m) * scale) / s;
            }
          }
        }
      } else if (name.startsWith("softmax") || name.startsWith("logsoftmax")) softmaxRows(x, view(t)(p(1)), n(2), n(3), name.startsWith("log"), grid);
      else if (name.startsWith("stablemax") || name.startsWith("logstablemax")) stableRows(x, view(t)(p(1)), n(2), name.startsWith("log"), grid);
      else if (name.startsWith("adamw")) {
        const r = rnd, [w, g, m, v] = [0, 1, 2, 3].map((a) => view(t)(p(a)));
        const [decay, doDecay, lw, lwc, small, b2, omb2, bc, eps, ns] = [5, 6, 7, 8, 9, 10, 11, 12, 13, 14].map(n) as number[];
        for (let i = 0; i < n(4); i++) {
          let wv = w![i]!;
          if (doDecay) wv = r(wv * decay!);
          const gv = g![i]!, dd = r(gv - m![i]!);
          const mv = small ? r(m![i]! + r(lw! * dd)) : r(gv - r(dd * lwc!));
          const vv = r(r(v![i]! * b2!) + r(r(omb2! * gv) * gv));
          const den = r(r(r(Math.sqrt(vv)) / bc!) + eps!);
          w![i] = r(wv + r(r(ns! * mv) / den));
          m![i] = mv;
          v![i] = vv;
        }
      } else if (name.startsWith("emb_gather")) {
        const dout = view(t)(p(0)), start = i32(p(1)), list = i32(p(2)), dw = view(t)(p(3)), [cols, per, vocab] = [n(4), n(5), n(6)];
        for (let v = 0; v < vocab; v++) for (let col = 0; col < cols; col++) {
          let acc = dw[v * cols + col]!;
          for (let e = start[v]!; e < start[v + 1]!; e++) acc = rnd(acc + dout[Math.floor(list[e]! / per) * cols + col]!);
          dw[v * cols + col] = acc;
        }
      } else if (name.startsWith("embsum_backward")) {
        const dout = view(t)(p(0)), idx = i32(p(1)), dw = view(t)(p(2)), [rows, cols, per, vocab] = [n(3), n(4), n(5), n(6)];
        for (let v = 0; v < vocab; v++) for (let c = 0; c < cols; c++) {
          let acc = dw[v * cols + c]!;
          for (let a = 0; a < rows * per; a++) if (idx[a] === v) acc = rnd(acc + dout[Math.floor(a / per) * cols + c]!);
          dw[v * cols + c] = acc;
        }
      } else if (name.startsWith("embsum")) {
        const w = x, idx = i32(p(1)), out = view(t)(p(2)), [rows, cols, per] = [n(3), n(4), n(5)], zero = t === "f64";
        for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) {
          let s = zero ? 0 : w[idx[r * per]! * cols + c]!;
          for (let j = zero ? 0 : 1; j < per; j++) s = rnd(s + w[idx[r * per + j]! * cols + c]!);
          out[r * cols + c] = s;
        }
      } else if (name.startsWith("ortho_part")) { // one part holding the whole sums: the fold of parts is then exact
        const w = x, g = view(t)(p(1)), len = n(2), part = f64(p(3));
        let wg = 0, ww = 0, gg = 0;
        for (let i = 0; i < len; i++) { wg += w[i]! * g[i]!; ww += w[i]! * w[i]!; gg += g[i]! * g[i]!; }
        part.fill(0, 0, 3 * grid);
        part.set([wg, ww, gg]);
      } else if (name.startsWith("ortho_residual")) {
        const w = x, g = view(t)(p(1)), len = n(2), part = f64(p(3)), part2 = f64(p(5)), proj = part[0]! / (part[1]! + 1e-30);
        let oo = 0;
        for (let i = 0; i < len; i++) { const r = g[i]! - proj * w[i]!; oo += r * r; }
        part2.fill(0, 0, grid);
        part2[0] = oo;
      } else if (name.startsWith("ortho_apply")) {
        const w = x, g = view(t)(p(1)), len = n(2), part = f64(p(3)), part2 = f64(p(4)), r = t === "f32" ? fr : (v: number) => v;
        const proj = part[0]! / (part[1]! + 1e-30), scale = Math.sqrt(part[2]!) / (Math.sqrt(part2[0]!) + 1e-30);
        for (let i = 0; i < len; i++) g[i] = r((g[i]! - proj * w[i]!) * scale);
      } else if (name.startsWith("orthogonalize")) {
        const w = x, g = view(t)(p(1)), len = n(2);
        let wg = 0, ww = 0, gg = 0;
        for (let i = 0; i < len; i++) { wg += w[i]! * g[i]!; ww += w[i]! * w[i]!; gg += g[i]! * g[i]!; }
        const proj = wg / (ww + 1e-30);
        let oo = 0;
        for (let i = 0; i < len; i++) { const r = g[i]! - proj * w[i]!; oo += r * r; }
        const scale = Math.sqrt(gg) / (Math.sqrt(oo) + 1e-30);
        for (let i = 0; i < len; i++) g[i] = (g[i]! - proj * w[i]!) * scale;
      } else if (name.startsWith("max_part")) { // part[b] = block b's maximum over its grid-stride elements
        const src = x, len = n(1), abs = n(2), part = f64(p(3));
        for (let b = 0; b < grid; b++) {
          let m = -Infinity;
          for (let i0 = b * block; i0 < len; i0 += grid * block) for (let i = i0; i < Math.min(len, i0 + block); i++) {
            const v = abs ? Math.abs(src[i]!) : src[i]!;
            if (v !== v || m !== m) m = NaN; else if (v > m) m = v;
          }
          part[b] = m;
        }
      } else if (name === "max_into_finish") {
        const dst = f64(p(0)), part = f64(p(1));
        let m = dst[0]!;
        for (let i = 0; i < n(2); i++) { const v = part[i]!; if (v !== v || m !== m) m = NaN; else if (v > m) m = v; }
        dst[0] = m;
      } else if (name.startsWith("max_into")) {
        const dst = f64(p(0)), src = view(t)(p(1)), len = n(2), abs = n(3);
        let m = dst[0]!;
        for (let i = 0; i < len && m === m; i++) { const v = abs ? Math.abs(src[i]!) : src[i]!; if (v > m || v !== v) m = v; }
        dst[0] = m;
      } else if (/^topk_(warp_)?f32(_k\d+)?$|^topk_block_f32$/.test(name)) { // a thread, a warp or a block per row: the same selection
        const vals = f32(p(1)), idx = i32(p(2)), [rows, cols, k, sorted] = [n(3), n(4), n(5), n(6)];
        for (let r = 0; r < rows; r++) {
          const buf = topkKeys(x as Float32Array, r * cols, cols, k);
          const sel = sorted ? buf : buf.map((b) => b & 0xffffffffn).sort((a, b) => (a > b ? -1 : a < b ? 1 : 0));
          sel.forEach((b, j) => { const i = idxOf(b); idx[r * k + j] = i; vals[r * k + j] = x[r * cols + i]!; });
        }
      } else if (name.startsWith("route_") || name.startsWith("dispatch_") || name.startsWith("combine_") || name.startsWith("scan_") || name === "update_bias" || ["emb_count", "radix_hist", "radix_scatter"].includes(name)) {
        router(name, p, n, args);
      } else if (name === "bad_init") {
        i32(p(0))[0] = 0x7fffffff;
      } else if (name === "bad_finish") {
        const b = i32(p(0));
        if (b[0] === 0x7fffffff) b[0] = -1;
      } else if (name === "quant_absmax_f32") {
        const xx = f32(p(0)), len = n(1), bs = n(2), am = f32(p(3)), inv = f32(p(4)), bad = i32(p(5));
        for (let b = 0; b < grid; b++) {
          let m = 0;
          for (let i = b * bs; i < Math.min(len, (b + 1) * bs); i++) m = Math.max(m, absBits(xx[i]!));
          const a = fromBits(m);
          am[b] = a;
          inv[b] = fr(1 / Math.max(a, fr(1e-38)));
          if (m >= 0x7f800000) bad[0] = Math.min(bad[0]!, b);
        }
      } else if (name === "quant_absmax_part") { // one part: the whole max (the fold takes the max of the parts)
        const xx = f32(p(0)), len = n(1), part = i32(p(2));
        let m = 0;
        for (let i = 0; i < len; i++) m = Math.max(m, absBits(xx[i]!));
        part.fill(0, 0, grid);
        part[0] = m;
      } else if (name === "quant_absmax_fold") {
        const part = i32(p(0)), parts = n(1), am = f32(p(2)), inv = f32(p(3)), bad = i32(p(4));
        let m = 0;
        for (let i = 0; i < parts; i++) m = Math.max(m, part[i]!);
        am[0] = fromBits(m);
        inv[0] = fr(1 / Math.max(am[0]!, fr(1e-38)));
        if (m >= 0x7f800000) bad[0] = Math.min(bad[0]!, 0);
      } else if (name.startsWith("quant_blockwise_f32") || name.startsWith("quant_4bit_blockwise_f32")) { // absmax and codes (or packed) fused
        const four = name.startsWith("quant_4bit"), xx = f32(p(0)), len = n(1), bs = n(2), am = f32(p(3)), tree = f32(p(4)), ranks = u8(p(5));
        const zero = four ? n(6) : 0, out = u8(p(four ? 7 : 6)), bad = i32(p(four ? 8 : 7)), codes = new Uint8Array(len + 1).fill(zero);
        for (let b = 0; b * bs < len; b++) {
          let m = 0;
          for (let i = b * bs; i < Math.min(len, (b + 1) * bs); i++) m = Math.max(m, absBits(xx[i]!));
          am[b] = fromBits(m);
          const inv = fr(1 / Math.max(am[b]!, fr(1e-38)));
          if (m >= 0x7f800000) bad[0] = Math.min(bad[0]!, b);
          for (let i = b * bs; i < Math.min(len, (b + 1) * bs); i++) codes[i] = codeOf(scaleClamp(xx[i]!, inv), tree, ranks);
        }
        if (four) for (let j = 0; 2 * j < len; j++) out[j] = (codes[2 * j]! << 4) | codes[2 * j + 1]!;
        else out.set(codes.subarray(0, len));
      } else if (name === "quant_codes_f32") {
        const xx = f32(p(0)), len = n(1), bs = n(2), inv = f32(p(3)), tree = f32(p(4)), ranks = u8(p(5)), codes = u8(p(6));
        for (let i = 0; i < len; i++) codes[i] = codeOf(scaleClamp(xx[i]!, inv[Math.floor(i / bs)]!), tree, ranks);
      } else if (name === "quant_stochastic_f32") {
        const xx = f32(p(0)), len = n(1), bs = n(2), inv = f32(p(3)), vals = f32(p(4)), ranks = u8(p(5)), nu = n(6), rand = f32(p(7)), codes = u8(p(8));
        for (let i = 0; i < len; i++) {
          const v = scaleClamp(xx[i]!, inv[Math.floor(i / bs)]!);
          let j = -1;
          while (j + 1 < nu && vals[j + 1]! <= v) j++;
          const r = j < 0 ? 0 : j >= nu - 1 ? nu - 1 : vals[j] === v ? j : rand[i]! < fr(fr(v - vals[j]!) / fr(vals[j + 1]! - vals[j]!)) ? j + 1 : j;
          codes[i] = ranks[r]!;
        }
      } else if (name === "uniforms_f32") {
        const out = f32(p(0)), len = n(1), seed = n(2);
        for (let i = 0; i < len; i++) out[i] = Math.floor(hash01(seed, i) * 16777216) / 16777216;
      } else if (name === "absmax_part") {
        const am = f32(p(0)), len = n(1), part = f64(p(2));
        for (let c = 0; c * 4096 < len; c++) { let s = 0; for (let i = c * 4096; i < Math.min(len, (c + 1) * 4096); i++) s += am[i]!; part[c] = s; }
      } else if (name === "absmax_mean") {
        const part = f64(p(0)), len = n(1);
        let sum = 0;
        for (let c = 0; c * 4096 < len; c++) sum += part[c]!;
        f32(p(2))[0] = fr(sum / len);
      } else if (name === "absmax_center_f32") {
        const am = f32(p(0)), len = n(1), o = f32(p(2))[0]!, centered = f32(p(3));
        for (let i = 0; i < len; i++) centered[i] = fr(am[i]! - o);
      } else if (name === "absmax_uncenter_f32") {
        const xx = f32(p(0)), o = f32(p(2))[0]!;
        for (let i = 0; i < n(1); i++) xx[i] = fr(xx[i]! + o);
      } else if (name === "to_f32") {
        const xx = f64(p(0)), out = f32(p(2));
        for (let i = 0; i < n(1); i++) out[i] = xx[i]!;
      } else if (name === "adam8bit_f32") {
        adam8bit(p, n, grid);
      } else if (name === "adam32_f32") {
        const [pp, g, m, v] = [0, 1, 2, 3].map((a) => f32(p(a))) as Float32Array[], [b1, omb1, b2, omb2, epsc2, step, decay] = [5, 6, 7, 8, 9, 10, 11].map(n) as number[];
        for (let i = 0; i < n(4); i++) {
          const gv = g![i]!;
          if (!(Math.abs(gv) < Infinity)) continue;
          const s1 = fr(fr(m![i]! * b1!) + fr(omb1! * gv)), s2 = fr(fr(v![i]! * b2!) + fr(omb2! * fr(gv * gv)));
          m![i] = s1;
          v![i] = s2;
          const pv = fr(pp![i]! + fr(step! * fr(s1 / fr(fr(Math.sqrt(s2)) + epsc2!))));
          pp![i] = decay !== 1 ? fr(pv * decay!) : pv;
        }
      } else if (name === "quant_4bit_f32") {
        const xx = f32(p(0)), len = n(1), bs = n(2), inv = f32(p(3)), tree = f32(p(4)), ranks = u8(p(5)), zero = n(6), packed = u8(p(7));
        for (let j = 0; 2 * j < len; j++) {
          const i = 2 * j, hi = codeOf(scaleClamp(xx[i]!, inv[Math.floor(i / bs)]!), tree, ranks);
          const lo = i + 1 < len ? codeOf(scaleClamp(xx[i + 1]!, inv[Math.floor((i + 1) / bs)]!), tree, ranks) : zero;
          packed[j] = (hi << 4) | lo;
        }
      } else if (name === "dequant_blockwise_u8") {
        const codes = u8(p(0)), len = n(1), bs = n(2), am = f32(p(3)), code = f32(p(4)), out = f32(p(5));
        for (let i = 0; i < len; i++) out[i] = fr(code[codes[i]!]! * am[Math.floor(i / bs)]!);
      } else if (name === "dequant_4bit") {
        const packed = u8(p(0)), len = n(1), bs = n(2), am = f32(p(3)), code = f32(p(4)), out = f32(p(5));
        for (let i = 0; i < len; i++) { const b = packed[i >> 1]!; out[i] = fr(code[i & 1 ? b & 15 : b >> 4]! * am[Math.floor(i / bs)]!); }
      } else if (name === "quant_affine_params_f32" || name === "quant_affine_fold") {
        // per group b: max |x| bits, min(0, min x), max(0, max x); the fold takes them from quant_affine_part's words
        const fold = name === "quant_affine_fold", at = fold ? 2 : 3;
        const signed = n(at), compute = n(at + 1), sc = f32(p(at + 2)), zp = i32(p(at + 3)), bad = i32(p(at + 4));
        const stats = (b: number): [number, number, number] => {
          if (fold) { const part = i32(p(0)), pf = new Float32Array(part.buffer, part.byteOffset, part.length); return [part[0]!, pf[1]!, pf[2]!]; }
          const g = n(2);
          return affineStats(f32(p(0)), b * g, Math.min(n(1), (b + 1) * g));
        };
        for (let b = 0; b < (fold ? 1 : grid); b++) {
          const [m, mn, mx] = stats(b), pm = affineParam(m, mn, mx, signed);
          if (compute && pm) { sc[b] = pm.s; zp[b] = pm.z; }
          if (compute ? !pm : m >= 0x7f800000) bad[0] = Math.min(bad[0]!, b);
        }
      } else if (name.startsWith("quant_affine_blockwise_f32")) { // the parameters and q in one read; a bad group's q at scale 1, zero point 0
        const xx = f32(p(0)), len = n(1), g = n(2), signed = n(3), sc = f32(p(4)), zp = i32(p(5)), q = signed ? i8(p(6)) : u8(p(6)), bad = i32(p(7));
        for (let b = 0; b * g < len; b++) {
          const [m, mn, mx] = affineStats(xx, b * g, Math.min(len, (b + 1) * g)), pm = affineParam(m, mn, mx, signed);
          if (pm) { sc[b] = pm.s; zp[b] = pm.z; } else bad[0] = Math.min(bad[0]!, b);
          for (let i = b * g; i < Math.min(len, (b + 1) * g); i++) q[i] = affineQ(xx[i]!, pm?.s ?? 1, pm?.z ?? 0, signed);
        }
      } else if (name === "quant_affine_part") { // one part: the whole tensor's stats (words: m, mn, mx)
        const part = i32(p(2)), pf = new Float32Array(part.buffer, part.byteOffset, part.length);
        [part[0], pf[1], pf[2]] = affineStats(f32(p(0)), 0, n(1));
      } else if (name === "quant_affine_f32") {
        const xx = f32(p(0)), len = n(1), g = n(2), signed = n(3), sc = f32(p(4)), zp = i32(p(5)), q = signed ? i8(p(6)) : u8(p(6));
        for (let i = 0; i < len; i++) q[i] = affineQ(xx[i]!, sc[Math.floor(i / g)]!, zp[Math.floor(i / g)]!, signed);
      } else if (name === "quant_q8_0_f32" || name === "quant_q4_0_f32") {
        // each block through the reference's ggml quantizer (f32 arithmetic in ggml's order), as one warp would
        const q8 = name === "quant_q8_0_f32", per = q8 ? 34 : 18, nb = n(1), xx = f32(p(0)), out = u8(p(2)), bad = i32(p(3));
        for (let b = 0; b < nb; b++) {
          const fn = q8 ? quantReference.quantizeQ8_0 : quantReference.quantizeQ4_0, one = new Int32Array(1);
          fn(xx.subarray(b * 32, b * 32 + 32), out.subarray(b * per, b * per + per), one);
          if (one[0]! >= 0) bad[0] = Math.min(bad[0]!, b);
        }
      } else if (name === "dequant_q8_0" || name === "dequant_q4_0") {
        const len = n(1);
        (name === "dequant_q8_0" ? quantReference.dequantizeQ8_0 : quantReference.dequantizeQ4_0)(u8(p(0)), f32(p(2)).subarray(0, len));
      } else if (name === "dequant_affine") {
        const len = n(1), g = n(2), sc = f32(p(3)), zp = i32(p(4)), signed = n(5), out = f32(p(6)), q = signed ? i8(p(0)) : u8(p(0));
        for (let i = 0; i < len; i++) { const kk = Math.floor(i / g); out[i] = fr((q[i]! - zp[kk]!) * sc[kk]!); }
      } else if (name === "ce_finish") {
        ceFinish(p, n, block);
      } else if (name.startsWith("ce_") && name.endsWith("_wide")) {
        ceWide(name.slice(0, -5), p, n, block);
      } else if (name.startsWith("ce_")) {
        // a warp kernel's rows of terms in dynamic shared memory: 4 per block, f32 for the f32 heads, else f64
        const need = name.endsWith("_warp") ? 4 * n(4) * (/^ce_(softmax|stablemax)_f32_warp$/.test(name) ? 4 : 8) : 0;
        if (shared < need) throw new Error(`emulated cuda: ${name} launched with ${shared} bytes of dynamic shared memory, needs ${need}`);
        ceRows(name.replace(/_warp$/, ""), p, n); // a warp per row: the same bits as a thread per row
      } else if (name.startsWith("gemm")) {
        const A = x, B = view(t)(p(1)), C = view(t)(p(2)), [m, k, nn, ta, tb, acc] = [3, 4, 5, 6, 7, 8].map(n) as number[];
        const r = t === "f32" ? fr : (v: number) => v;
        for (let i = 0; i < m!; i++) for (let j = 0; j < nn!; j++) {
          let s = 0;
          for (let q = 0; q < k!; q++) s = r(s + r((ta ? A[q * m! + i]! : A[i * k! + q]!) * (tb ? B[j * k! + q]! : B[q * nn! + j]!)));
          C[i * nn! + j] = acc ? r(C[i * nn! + j]! + s) : s;
        }
      }
      else if (name.startsWith("relu_backward")) { const dx = view(t)(p(2)), xx = view(t)(p(1)); for (let i = 0; i < n(3); i++) dx[i] = xx[i]! > 0 ? x[i]! : 0; }
      else if (name.startsWith("relu")) { const y = view(t)(p(1)); for (let i = 0; i < n(2); i++) { const v = x[i]!; y[i] = v < 0 ? 0 : v + 0; } }
      else throw new Error(`emulated cuda: no kernel ${name}`);
    },
    sync() { count("sync"); },
  };
}
