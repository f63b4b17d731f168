// Single-node ONNX models for benchmarking against onnxruntime-node, encoded by hand (ModelProto is a few
// protobuf fields) so no converter or python is needed. Sessions run one thread unless asked for ort's default.
import * as ort from "onnxruntime-node";

export type OnnxType = "float" | "uint8" | "int8" | "int32" | "int64" | "float16" | "double";
const ELEM: Record<OnnxType, number> = { float: 1, uint8: 2, int8: 3, int32: 6, int64: 7, float16: 10, double: 11 };

export interface OnnxValue { name: string; type: OnnxType; dims: (number | string)[] }
export interface OnnxInit extends OnnxValue { data: ArrayBufferView }
export type OnnxAttr = number | number[] | string | Float32Array;

// ---- protobuf writer ----
const enc = new TextEncoder();
function varint(v: number | bigint): number[] {
  let x = BigInt.asUintN(64, BigInt(v));
  const out: number[] = [];
  do {
    let b = Number(x & 0x7fn);
    x >>= 7n;
    if (x) b |= 0x80;
    out.push(b);
  } while (x);
  return out;
}
const tag = (field: number, wire: number) => varint((field << 3) | wire);
const vInt = (field: number, v: number | bigint) => [...tag(field, 0), ...varint(v)];
const vBytes = (field: number, b: ArrayLike<number>) => [...tag(field, 2), ...varint(b.length), ...Array.from(b)];
const vStr = (field: number, s: string) => vBytes(field, enc.encode(s));
const vF32 = (field: number, f: number) => [...tag(field, 5), ...new Uint8Array(new Float32Array([f]).buffer)];

function valueInfo(v: OnnxValue): number[] {
  const dims = v.dims.flatMap((d) => vBytes(1, typeof d === "number" ? vInt(1, d) : vStr(2, d)));
  const tensorType = [...vInt(1, ELEM[v.type]), ...vBytes(2, dims)];
  return [...vStr(1, v.name), ...vBytes(2, vBytes(1, tensorType))];
}

function tensor(t: OnnxInit): number[] {
  return [
    ...t.dims.flatMap((d) => vInt(1, d as number)),
    ...vInt(2, ELEM[t.type]),
    ...vStr(8, t.name),
    ...vBytes(9, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength)),
  ];
}

function attribute(name: string, a: OnnxAttr): number[] {
  if (typeof a === "string") return [...vStr(1, name), ...vBytes(4, enc.encode(a)), ...vInt(20, 3)];
  if (a instanceof Float32Array) return [...vStr(1, name), ...Array.from(a).flatMap((f) => vF32(7, f)), ...vInt(20, 6)];
  if (Array.isArray(a)) return [...vStr(1, name), ...a.flatMap((i) => vInt(8, i)), ...vInt(20, 7)];
  if (Number.isInteger(a)) return [...vStr(1, name), ...vInt(3, a), ...vInt(20, 2)];
  return [...vStr(1, name), ...vF32(2, a), ...vInt(20, 1)];
}

/** ModelProto bytes for one node `op` reading `inputs` (then initializers) and writing `outputs`. */
export function onnxModel(op: string, inputs: OnnxValue[], outputs: OnnxValue[], attrs: Record<string, OnnxAttr> = {},
  initializers: OnnxInit[] = [], opset = 17): Uint8Array {
  const node = [
    ...[...inputs, ...initializers].flatMap((v) => vStr(1, v.name)),
    ...outputs.flatMap((v) => vStr(2, v.name)),
    ...vStr(3, "node"),
    ...vStr(4, op),
    ...Object.entries(attrs).flatMap(([k, v]) => vBytes(5, attribute(k, v))),
  ];
  const graph = [
    ...vBytes(1, node),
    ...vStr(2, "g"),
    ...initializers.flatMap((t) => vBytes(5, tensor(t))),
    ...inputs.flatMap((v) => vBytes(11, valueInfo(v))),
    ...outputs.flatMap((v) => vBytes(12, valueInfo(v))),
  ];
  return new Uint8Array([...vInt(1, 8), ...vStr(2, "numedge-bench"), ...vBytes(7, graph), ...vBytes(8, [...vStr(1, ""), ...vInt(2, opset)])]);
}

/**
 * An onnxruntime-node session running one op: single-threaded, or with `threads: "default"` its own default
 * intra-op thread count (one per physical core).
 * @example const s = await ortSession("Softmax", [{ name: "x", type: "float", dims: ["r", "c"] }], [{ name: "y", type: "float", dims: ["r", "c"] }], { axis: -1 }, [], 13)
 */
export async function ortSession(op: string, inputs: OnnxValue[], outputs: OnnxValue[], attrs: Record<string, OnnxAttr> = {},
  initializers: OnnxInit[] = [], opset = 17, threads: 1 | "default" = 1): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(onnxModel(op, inputs, outputs, attrs, initializers, opset), {
    ...(threads === 1 ? { intraOpNumThreads: 1, interOpNumThreads: 1 } : {}),
    executionMode: "sequential",
    graphOptimizationLevel: "all",
  });
}

export { ort };
