// Running maxima of step statistics, kept where the data lives (GrokRun's max SC and max |logit| over every
// step, read back only when asked). Internal: not part of the public surface.
import { NumedgeError, checkInt, type FloatArray } from "../errors.ts";
import { OpCall, floatArg, typedArg, type Arr } from "./call.ts";

/** dst[at] = max(dst[at], max over src[from, from + n) of src (|src| when abs)) in f64; NaN sticks. */
export function maxInto(dst: Arr<Float64Array>, at: number, src: Arr<FloatArray>, from: number, n: number, abs: boolean): void {
  const c = new OpCall();
  const D = typedArg(c, "dst", dst, "f64");
  const S = floatArg(c, "src", src);
  checkInt("at", at, 0, D.length - 1);
  checkInt("from", from, 0, S.length);
  checkInt("n", n, 0, S.length - from);
  if (D.da && D.da === S.da) throw new NumedgeError("shape", "dst and src must be separate arrays");
  c.be.maxInto(D.k as Float64Array, at, S.k as FloatArray, from, n, abs);
  c.wrote(D);
}
