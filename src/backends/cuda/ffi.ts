// One small FFI over the runtime's own: bun:ffi under Bun, Deno.dlopen under Deno, node:ffi under Node 26+. Every
// function bound here (CUDA driver, NVRTC, cuBLAS) returns an int status, and takes arguments of these kinds:
//   "buf"  a typed array, passed as the address of its bytes (out-parameters, host memory, C strings)
//   "ptr"  an opaque handle or address as a bigint (0n: NULL)
//   "u64" / "usize" a bigint; "i32" / "u32" / "u8" a number; "f32" / "f64" a number
// Signatures as verified on an H200 with Bun 1.4.5 and Deno 2.9.6 (handles read back from 64-bit out-parameters);
// node:ffi (Node 26.12) so far only against the CPU device of the tests (test/runtimes/node-cuda.mjs), not on a GPU.
import { execFileSync } from "node:child_process";

export type Kind = "buf" | "ptr" | "u64" | "usize" | "i32" | "u32" | "u8" | "f32" | "f64";
export type Signatures = Record<string, readonly Kind[]>;
export type Bound<S extends Signatures> = { [K in keyof S]: (...args: unknown[]) => number };

export interface Ffi {
  runtime: "bun" | "deno" | "node";
  /** dlopen `path` with these functions; throws when the library or a symbol is missing. */
  open<S extends Signatures>(path: string, sigs: S): { fn: Bound<S>; close(): void };
  /** The address of a typed array's first byte (valid while the array is alive and not resized). */
  addr(a: ArrayBufferView): bigint;
  /** The NUL-terminated string at an address. */
  cstring(p: bigint): string;
}

/** Where `ldconfig -p` puts each library (read once), for libPaths. */
let ldconfig: Map<string, string[]> | undefined;
/**
 * Paths to try for a shared library: where `ldconfig -p` says it is (a bare name may not be searched for by every
 * runtime's dlopen), then the bare name.
 */
export function libPaths(name: string): string[] {
  if (!ldconfig) {
    ldconfig = new Map();
    try {
      const out = execFileSync("ldconfig", ["-p"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
      for (const line of out.split("\n")) {
        const m = line.match(/^\s*(\S+) .*=> (\S+)$/);
        if (m && !ldconfig.get(m[1]!)?.includes(m[2]!)) ldconfig.set(m[1]!, [...(ldconfig.get(m[1]!) ?? []), m[2]!]);
      }
    } catch { /* no ldconfig: bare names only */ }
  }
  return [...(ldconfig.get(name) ?? []), name];
}

/** The first of `paths` that opens with these functions, or why none did (the first failure, with its path). */
export function openFirst<S extends Signatures>(ffi: Ffi, paths: string[], sigs: S): { lib: ReturnType<Ffi["open"]> & { fn: Bound<S> }; path: string } | { why: string } {
  let why = "";
  for (const path of paths) {
    try {
      return { lib: ffi.open(path, sigs), path };
    } catch (e) {
      why ||= `${path}: ${e instanceof Error ? e.message.split("\n")[0] : String(e)}`;
    }
  }
  return { why };
}

/** Wrap f so the arguments at `at` (handles as bigints) reach it as the runtime's pointers; f itself when none. */
function convert(f: (...a: unknown[]) => number, at: number[], toPtr: (v: unknown) => unknown) {
  if (at.length === 0) return f;
  return (...a: unknown[]) => {
    for (const i of at) a[i] = toPtr(a[i]);
    return f(...a);
  };
}
const indicesOf = (kinds: readonly Kind[], want: (k: Kind) => boolean) => kinds.flatMap((k, i) => (want(k) ? [i] : []));

type DenoFfi = {
  dlopen(path: string, s: Record<string, { parameters: string[]; result: string }>): { symbols: Record<string, (...a: unknown[]) => number>; close(): void };
  UnsafePointer: { create(v: bigint): unknown; of(a: ArrayBufferView): unknown; value(p: unknown): bigint | number };
  UnsafePointerView: new (p: unknown) => { getCString(): string };
};

const bytes = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

async function bunFfi(): Promise<Ffi> {
  const b = await import("bun:ffi");
  const TYPE: Record<Kind, string> = { buf: "ptr", ptr: "ptr", u64: "u64", usize: "u64", i32: "i32", u32: "u32", u8: "u8", f32: "f32", f64: "f64" };
  return {
    runtime: "bun",
    open(path, sigs) {
      const lib = b.dlopen(path, Object.fromEntries(Object.entries(sigs).map(([n, k]) => [n, { args: k.map((t) => TYPE[t]), returns: "i32" }])) as never);
      const syms = lib.symbols as Record<string, (...a: unknown[]) => number>;
      const fn = Object.fromEntries(Object.entries(sigs).map(([n, kinds]) =>
        [n, convert(syms[n]!, indicesOf(kinds, (k) => k === "ptr"), (v) => (v === 0n ? null : Number(v)))]));
      return { fn: fn as never, close: () => lib.close() };
    },
    addr: (a) => BigInt(b.ptr(a as Uint8Array)),
    cstring: (p) => (p ? String(new b.CString(Number(p) as import("bun:ffi").Pointer)) : ""),
  };
}

function denoFfi(D: DenoFfi): Ffi {
  const TYPE: Record<Kind, string> = { buf: "buffer", ptr: "pointer", u64: "u64", usize: "usize", i32: "i32", u32: "u32", u8: "u8", f32: "f32", f64: "f64" };
  return {
    runtime: "deno",
    open(path, sigs) {
      const lib = D.dlopen(path, Object.fromEntries(Object.entries(sigs).map(([n, k]) => [n, { parameters: k.map((t) => TYPE[t]), result: "i32" }])));
      // handles become pointer objects; typed arrays pass as bytes (Deno's "buffer" takes a Uint8Array)
      const fn = Object.fromEntries(Object.entries(sigs).map(([n, kinds]) => {
        const ptrs = convert(lib.symbols[n]!, indicesOf(kinds, (k) => k === "ptr"), (v) => (v === 0n ? null : D.UnsafePointer.create(v as bigint)));
        return [n, convert(ptrs, indicesOf(kinds, (k) => k === "buf"), (v) => (v === null ? null : bytes(v as ArrayBufferView)))];
      }));
      return { fn: fn as never, close: () => lib.close() };
    },
    addr: (a) => BigInt(D.UnsafePointer.value(D.UnsafePointer.of(bytes(a)))),
    cstring: (p) => (p ? new D.UnsafePointerView(D.UnsafePointer.create(p)).getCString() : ""),
  };
}

type NodeFfi = {
  dlopen(path: string, defs: Record<string, { arguments: string[]; return: string }>): { lib: { close(): void }; functions: Record<string, (...a: unknown[]) => number> };
  getRawPointer(a: ArrayBufferView): bigint;
  toString(p: bigint): string | null;
};

// node:ffi takes this module's values as they are: handles as bigints (0n: NULL), typed arrays as their bytes' address
function nodeFfi(N: NodeFfi): Ffi {
  const TYPE: Record<Kind, string> = { buf: "pointer", ptr: "pointer", u64: "uint64", usize: "uint64", i32: "int32", u32: "uint32", u8: "uint8", f32: "float32", f64: "float64" };
  return {
    runtime: "node",
    open(path, sigs) {
      const { lib, functions } = N.dlopen(path, Object.fromEntries(Object.entries(sigs).map(([n, k]) => [n, { arguments: k.map((t) => TYPE[t]), return: "int32" }])));
      return { fn: functions as never, close: () => lib.close() };
    },
    addr: (a) => N.getRawPointer(a),
    cstring: (p) => (p ? N.toString(p) ?? "" : ""),
  };
}

/** This runtime's FFI, or the one-line reason it has none. */
export async function loadFfi(): Promise<Ffi | string> {
  const g = globalThis as { Bun?: unknown; Deno?: DenoFfi & { version?: { deno?: string } }; process?: { versions?: { node?: string } } };
  if (g.Bun) return await bunFfi();
  if (g.Deno) {
    if (typeof g.Deno.dlopen !== "function") return "Deno.dlopen is unavailable: run Deno with --allow-ffi (or -A)";
    return denoFfi(g.Deno);
  }
  const node = g.process?.versions?.node ?? "?", spec = "node:ffi"; // a variable: bundlers and tsc leave it alone
  try {
    return nodeFfi(await import(spec) as NodeFfi);
  } catch {
    return `Node ${node} has no node:ffi (Node 26.1 or later has it; run with --experimental-ffi where it is behind that flag), or run under Bun or Deno to use the cuda backend`;
  }
}
