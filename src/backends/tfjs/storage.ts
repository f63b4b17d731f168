// The tfjs backend's storage: each DeviceArray is a tf.Tensor that stays resident in the engine between calls
// (f32 as float32; i32, u8 and i8 as int32, since tfjs has no 8-bit dtype). tfjs has no float64 either: f64
// DeviceArrays hold a Float64Array on the host, and their ops run on the fallback's f64 kernels, as f64 host
// arrays do.
import type { Tensor } from "@tensorflow/tfjs-core";
import { CTORS, type Dtype, type HostArray, type Storage } from "../../device.ts";
import type { TfCtx } from "./common.ts";

/** A tfjs DeviceArray's handle: a tensor owned by it (replaced, not mutated, when written), or an f64 host array. */
export class TfBuf {
  constructor(readonly dtype: Dtype, readonly length: number, public t: Tensor | null, public host: Float64Array | null) {}
}

export const isTfBuf = (v: unknown): v is TfBuf => v instanceof TfBuf;

function toHost(dtype: Dtype, data: ArrayLike<number>): HostArray {
  return dtype === "f32" || dtype === "i32" ? (data as HostArray).slice() : CTORS[dtype].from(data);
}

export function tfjsStorage(ctx: TfCtx): Storage<TfBuf> {
  const tensor = (src: HostArray | null, dtype: Dtype, length: number): Tensor => {
    const tf = ctx.use();
    const kind = dtype === "f32" ? "float32" : "int32";
    if (src === null) return tf.zeros([length], kind);
    // a copy: tfjs-cpu keeps the array it is given as the tensor's storage
    return tf.tensor1d(dtype === "f32" || dtype === "i32" ? src.slice() as Float32Array : Int32Array.from(src as ArrayLike<number>), kind);
  };
  return {
    alloc: (length, dtype) => (dtype === "f64" ? new TfBuf(dtype, length, null, new Float64Array(length)) : new TfBuf(dtype, length, tensor(null, dtype, length), null)),
    free(b) {
      b.t?.dispose();
      b.t = null;
      b.host = null;
    },
    write(b, src) {
      if (b.host) return b.host.set(src as Float64Array);
      const t = tensor(src, b.dtype, b.length);
      b.t?.dispose();
      b.t = t;
    },
    zero(b) {
      if (b.host) return b.host.fill(0);
      const t = tensor(null, b.dtype, b.length);
      b.t?.dispose();
      b.t = t;
    },
    copy(src, dst) {
      if (src.host) return dst.host!.set(src.host);
      const t = src.t!.clone();
      dst.t?.dispose();
      dst.t = t;
    },
    read: (b) => (b.host ? b.host.slice() : toHost(b.dtype, b.t!.dataSync() as ArrayLike<number>)),
    async readAsync(b) {
      return b.host ? b.host.slice() : toHost(b.dtype, (await b.t!.data()) as ArrayLike<number>);
    },
  };
}
