/** What went wrong, machine-readable. */
export type NumedgeErrorCode = "shape" | "range" | "dtype" | "nonfinite" | "backend" | "unsupported";

/**
 * The only error numedge throws on bad input. `code` says the kind, the message names the argument and value.
 * @example try { softmax(x, { cols: 0 }) } catch (e) { if (e instanceof NumedgeError && e.code === "shape") ... }
 */
export class NumedgeError extends Error {
  readonly code: NumedgeErrorCode;
  constructor(code: NumedgeErrorCode, message: string) {
    super(message);
    this.name = "NumedgeError";
    this.code = code;
  }
}

export type FloatArray = Float32Array | Float64Array;

/** A short description of a value for error messages: numbers and strings as such, arrays as Type(length). */
export const show = (v: unknown): string =>
  typeof v === "number" || typeof v === "boolean" || v === undefined || v === null ? String(v)
  : typeof v === "string" ? JSON.stringify(v)
  : ArrayBuffer.isView(v) ? `${v.constructor.name}(${(v as unknown as { length: number }).length})`
  : (v as object).constructor?.name === "DeviceArray" ? String(v)
  : Array.isArray(v) ? `Array(${v.length})` : typeof v;



/** `arg` must be an integer in [lo, hi]. */
export function checkInt(arg: string, v: unknown, lo: number, hi = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== "number" || !Number.isInteger(v))
    throw new NumedgeError(typeof v === "number" ? "range" : "dtype", `${arg} must be an integer, got ${show(v)}`);
  if (v < lo || v > hi) throw new NumedgeError("range", `${arg} must be in [${lo}, ${hi}], got ${v}`);
  return v;
}

/** `arg` must be a finite number > 0. */
export function checkPositive(arg: string, v: unknown): number {
  if (typeof v !== "number") throw new NumedgeError("dtype", `${arg} must be a number, got ${show(v)}`);
  if (!(v > 0) || !Number.isFinite(v)) throw new NumedgeError("range", `${arg} must be a finite number > 0, got ${v}`);
  return v;
}

/** The largest finite float32. */
export const F32_MAX = 3.4028234663852886e38;

/**
 * 1 / temperature for a kernel (1 when undefined): the temperature must be a finite number > 0 whose reciprocal
 * is finite, and with `f32` (kernels taking the scale as float32) at most the float32 maximum.
 */
export function scaleOf(t: unknown, f32 = false): number {
  if (t === undefined) return 1;
  const s = 1 / checkPositive("temperature", t);
  if (f32 && !(s <= F32_MAX)) throw new NumedgeError("range", `temperature must be >= 2.94e-39 (1/T must fit in float32), got ${t}`);
  if (!Number.isFinite(s)) throw new NumedgeError("range", `temperature must be >= 1e-300, got ${t}`);
  return s;
}

/**
 * rows of a row-major array whose last axis is `cols` (an integer >= 1, named `colsArg` in messages); throws
 * "shape" unless cols divides the length.
 */
export function rowsOf(arg: string, x: { length: number }, cols: unknown, colsArg = "cols"): number {
  const c = checkInt(colsArg, cols, 1);
  if (x.length % c !== 0)
    throw new NumedgeError("shape", `${arg}.length ${x.length} is not a multiple of ${colsArg} ${c}`);
  return x.length / c;
}

/** Bounds for checkNumber, each inclusive unless marked open; absent bounds are ±Infinity. */
export interface NumberRange {
  lo?: number;
  hi?: number;
  loOpen?: boolean;
  hiOpen?: boolean;
}

/**
 * `arg` must be a finite number within the bounds; `dflt` (when given) stands in for undefined. A non-number
 * is a "dtype" error, anything else out of range a "range" error.
 */
export function checkNumber(arg: string, v: unknown, r: NumberRange = {}, dflt?: number): number {
  if (v === undefined && dflt !== undefined) return dflt;
  if (typeof v !== "number") throw new NumedgeError("dtype", `${arg} must be a number, got ${show(v)}`);
  const { lo = -Infinity, hi = Infinity, loOpen = false, hiOpen = false } = r;
  if (Number.isFinite(v) && (loOpen ? v > lo : v >= lo) && (hiOpen ? v < hi : v <= hi)) return v;
  // infinite bounds print open: "[0, Infinity)"
  const want = lo === -Infinity && hi === Infinity ? "a finite number"
    : `in ${loOpen || lo === -Infinity ? "(" : "["}${lo}, ${hi}${hiOpen || hi === Infinity ? ")" : "]"}`;
  throw new NumedgeError("range", `${arg} must be ${want}, got ${v}`);
}

/** An optional boolean: `dflt` when undefined, else it must be a boolean ("dtype"). */
export function checkBool(arg: string, v: unknown, dflt: boolean): boolean {
  if (v === undefined) return dflt;
  if (typeof v !== "boolean") throw new NumedgeError("dtype", `${arg} must be a boolean, got ${show(v)}`);
  return v;
}

/** `v` must be a non-null object (an options bag, a result record); else `code` with "`expected`, got ...". */
function checkObject(v: unknown, expected: string, code: NumedgeErrorCode = "shape"): Record<string, unknown> {
  if (v === null || typeof v !== "object") throw new NumedgeError(code, `${expected}, got ${show(v)}`);
  return v as Record<string, unknown>;
}

/** The options object of a call; `fields` lists the required ones for the message ("" when all are optional). */
export function checkOptions(o: unknown, fields: string, code: NumedgeErrorCode = "shape"): Record<string, unknown> {
  return checkObject(o, fields ? `options { ${fields} } are required` : "options must be an object", code);
}

/** Edit distance between two short strings (for "did you mean"). */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length]!;
}

/** NumedgeError("range") for an unknown option key, naming the nearest known one. */
function unknownKey(key: string, known: readonly string[]): NumedgeError {
  const near = [...known].sort((a, b) => distance(key.toLowerCase(), a.toLowerCase()) - distance(key.toLowerCase(), b.toLowerCase()))[0];
  return new NumedgeError("range", `unknown option ${JSON.stringify(key)}${near !== undefined ? ` (did you mean ${JSON.stringify(near)}?` : " ("}${known.length ? ` known: ${known.join(", ")})` : ")"}`);
}

/**
 * An options object read once: each known key's value copied into a plain snapshot (a getter or a Proxy is
 * consulted once per key, so what is checked is what the kernel gets), any other own key a "range" error naming it
 * and the nearest known key. `required` lists the required fields for the message when `o` is not an object;
 * with required "" an undefined `o` reads as {}.
 */
export function readOptions<K extends string>(o: unknown, known: readonly K[], required = "", code: NumedgeErrorCode = "shape"): { [P in K]?: unknown } {
  if (o === undefined && required === "") return {};
  const obj = checkOptions(o, required, code);
  for (const key of Object.keys(obj)) if (!(known as readonly string[]).includes(key)) throw unknownKey(key, known);
  const snap: { [P in K]?: unknown } = {};
  for (const key of known) {
    const v = obj[key];
    if (v !== undefined) snap[key] = v;
  }
  return snap;
}

/** A record (a quantizer's result, route()'s result) read once: the fields a call uses, copied; others ignored. */
export function readRecord<K extends string>(r: unknown, fields: readonly K[], expected: string, code: NumedgeErrorCode = "dtype"): { [P in K]?: unknown } {
  const obj = checkObject(r, expected, code);
  const snap: { [P in K]?: unknown } = {};
  for (const key of fields) snap[key] = obj[key];
  return snap;
}


/** A value from a fixed set of strings. */
export function checkEnum<T extends string>(arg: string, v: unknown, allowed: readonly T[]): T {
  if (!allowed.includes(v as T))
    throw new NumedgeError("range", `${arg} must be one of ${allowed.map((a) => JSON.stringify(a)).join(", ")}, got ${show(v)}`);
  return v as T;
}

/** Whether two buffers are one memory: the wasm runtime widens it (a shared memory's growth hands out a new buffer
 *  object over the same bytes, and views made before stay valid). */
let oneMemory = (a: ArrayBufferLike, b: ArrayBufferLike) => a === b;
export function setOneMemory(f: (a: ArrayBufferLike, b: ArrayBufferLike) => boolean): void {
  oneMemory = f;
}

/** True when two views share any byte of the same memory. */
export function overlaps(x: ArrayBufferView, y: ArrayBufferView): boolean {
  return oneMemory(x.buffer, y.buffer) && x.byteOffset < y.byteOffset + y.byteLength && y.byteOffset < x.byteOffset + x.byteLength;
}

