// An emulated CUDA device for testing the cuda backend's TypeScript on a machine without a GPU: device memory is
// a map of host buffers, and each kernel of kernels.cu is mirrored in TypeScript (same f64 arithmetic, same row
// rules). It checks storage, host-array marshalling, staging and dispatch; the CUDA C itself runs only on a GPU.
import type { Driver, KernelArg } from "../../src/backends/cuda/driver.ts";

type Ptr = import("bun:ffi").Pointer;

export interface EmulatedDriver extends Driver {
  /** Device allocations alive now (bytes). */
  liveBytes(): number;
  launches: string[];
}

export function emulatedDriver(): EmulatedDriver {
  const mem = new Map<bigint, Uint8Array>();
  let next = 0x10000n;
  const buf = (p: bigint) => {
    const b = mem.get(p);
    if (!b) throw new Error(`emulated cuda: no allocation at ${p}`);
    return b;
  };
  const f32 = (p: bigint) => new Float32Array(buf(p).buffer), f64 = (p: bigint) => new Float64Array(buf(p).buffer);
  const names: string[] = [];
  const launches: string[] = [];
  const sOf = (x: number) => (x >= 0 ? x + 1 : 1 / (1 - x));
  const logSOf = (x: number) => (x >= 0 ? Math.log1p(x) : -Math.log1p(-x));
  const rowsOf = (y: Float32Array | Float64Array, cols: number) => y.length / cols; // exact: allocations are exact sizes
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
  return {
    ffi: undefined as never,
    device: { name: "emulated GPU", sm: 90, totalBytes: 2 ** 34, driverVersion: 13000 },
    liveBytes: () => [...mem.values()].reduce((a, b) => a + b.byteLength, 0),
    launches,
    alloc(bytes) {
      const p = next;
      next += BigInt(Math.ceil(Math.max(bytes, 1) / 256) * 256 + 256);
      mem.set(p, new Uint8Array(Math.ceil(Math.max(bytes, 1) / 8) * 8));
      return p;
    },
    free(p) { buf(p); mem.delete(p); },
    htod(p, src) { buf(p).set(new Uint8Array(src.buffer, src.byteOffset, src.byteLength)); },
    dtoh(dst, p) { new Uint8Array(dst.buffer, dst.byteOffset, dst.byteLength).set(buf(p).subarray(0, dst.byteLength)); },
    dtod(dst, src, bytes) { buf(dst).set(buf(src).subarray(0, bytes)); },
    zero(p, bytes) { buf(p).fill(0, 0, bytes); },
    module() {
      return (name) => {
        names.push(name);
        return names.length as Ptr;
      };
    },
    launch(fn, grid, _block, args: KernelArg[]) {
      const name = names[(fn as number) - 1]!, t = name.endsWith("f64") ? "f64" : "f32";
      launches.push(name);
      const p = (i: number) => (args[i] as { p: bigint }).p, n = (i: number) => { const a = args[i]!; return "i32" in a ? a.i32 : "i64" in a ? a.i64 : (a as { f64: number }).f64; };
      const x = view(t)(p(0));
      if (name.startsWith("softmax") || name.startsWith("logsoftmax")) softmaxRows(x, view(t)(p(1)), n(2), n(3), name.startsWith("log"), grid);
      else if (name.startsWith("stablemax") || name.startsWith("logstablemax")) stableRows(x, view(t)(p(1)), n(2), name.startsWith("log"), grid);
      else if (name.startsWith("relu_backward")) { const dx = view(t)(p(2)), xx = view(t)(p(1)); for (let i = 0; i < n(3); i++) dx[i] = xx[i]! > 0 ? x[i]! : 0; }
      else if (name.startsWith("relu")) { const y = view(t)(p(1)); for (let i = 0; i < n(2); i++) { const v = x[i]!; y[i] = v < 0 ? 0 : v + 0; } }
      else throw new Error(`emulated cuda: no kernel ${name}`);
      void rowsOf;
    },
    sync() {},
  };
}
