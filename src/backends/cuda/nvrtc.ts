// NVRTC through FFI: CUDA C source -> cubin for one GPU architecture, or -> PTX for a virtual one (compute_75, the
// PTX numedge ships). Bun only for now (bun:ffi); the caller passes bun:ffi in so that importing this file never
// loads it elsewhere.
import { readFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { libPaths } from "./driver.ts";

/** The kernels' CUDA C source, and its hash (the key of the cubin cache and of the shipped PTX). */
export function kernelSource(): { src: string; hash: string } {
  const src = readFileSync(new URL("./kernels.cu", import.meta.url), "utf8");
  return { src, hash: createHash("sha256").update(src).digest("hex") };
}

/** The first line of kernels.ptx records the hash of the source it was built from. */
export const PTX_HASH_PREFIX = "// numedge kernels.cu sha256 ";

type Ffi = typeof import("bun:ffi");

/** libnvrtc candidates, most recent first; NUMEDGE_NVRTC (a path) goes first when set ("none": never use NVRTC). */
function nvrtcCandidates(): string[] {
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.NUMEDGE_NVRTC;
  return [...(env ? [env] : []), ...["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"].flatMap(libPaths)];
}

/**
 * Compile `src` with NVRTC for `arch` ("sm_90" -> a cubin, "compute_75" -> PTX text). Throws an Error carrying
 * NVRTC's log when compilation fails; returns null when no libnvrtc loads (with the reason).
 */
export function nvrtcCompile(ffi: Ffi, src: string, arch: string): { bytes: Uint8Array; log: string } | { missing: string } {
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.NUMEDGE_NVRTC;
  if (env === "none") return { missing: "NUMEDGE_NVRTC=none" };
  let nv: ReturnType<typeof open> | undefined, why = "";
  function open(path: string) {
    return ffi.dlopen(path, {
      nvrtcCreateProgram: { args: ["ptr", "cstring", "cstring", "i32", "ptr", "ptr"], returns: "i32" },
      nvrtcCompileProgram: { args: ["ptr", "i32", "ptr"], returns: "i32" },
      nvrtcGetCUBINSize: { args: ["ptr", "ptr"], returns: "i32" },
      nvrtcGetCUBIN: { args: ["ptr", "ptr"], returns: "i32" },
      nvrtcGetPTXSize: { args: ["ptr", "ptr"], returns: "i32" },
      nvrtcGetPTX: { args: ["ptr", "ptr"], returns: "i32" },
      nvrtcGetProgramLogSize: { args: ["ptr", "ptr"], returns: "i32" },
      nvrtcGetProgramLog: { args: ["ptr", "ptr"], returns: "i32" },
      nvrtcDestroyProgram: { args: ["ptr"], returns: "i32" },
    });
  }
  for (const path of nvrtcCandidates()) {
    try {
      nv = open(path);
      break;
    } catch (e) {
      why ||= `${path}: ${e instanceof Error ? e.message.split("\n")[0] : String(e)}`;
    }
  }
  if (!nv) return { missing: `no libnvrtc found (${why})` };
  const s = nv.symbols, cstr = (t: string) => Buffer.from(t + "\0", "utf8");
  const prog = new BigUint64Array(1);
  if (s.nvrtcCreateProgram(prog, cstr(src), cstr("numedge.cu"), 0, null, null) !== 0) throw new Error("nvrtcCreateProgram failed");
  const p = Number(prog[0]) as import("bun:ffi").Pointer; // the nvrtcProgram handle, passed back as a pointer
  try {
    // --fmad=false: no fused multiply-adds, so f32 kernels round every operation as the wasm kernels do
    const opts = [cstr(`--gpu-architecture=${arch}`), cstr("--std=c++17"), cstr("--fmad=false")];
    const rc = s.nvrtcCompileProgram(p, opts.length, BigUint64Array.from(opts.map((b) => BigInt(ffi.ptr(b)))));
    const ls = new BigUint64Array(1);
    s.nvrtcGetProgramLogSize(p, ls);
    const logBuf = Buffer.alloc(Math.max(1, Number(ls[0])));
    s.nvrtcGetProgramLog(p, logBuf);
    const log = logBuf.toString("utf8").replace(/\0+$/, "").trim();
    if (rc !== 0) throw new Error(`NVRTC could not compile the kernels for ${arch}:\n${log}`);
    const cubin = arch.startsWith("sm_");
    const size = new BigUint64Array(1);
    (cubin ? s.nvrtcGetCUBINSize : s.nvrtcGetPTXSize)(p, size);
    const bytes = new Uint8Array(Number(size[0]));
    (cubin ? s.nvrtcGetCUBIN : s.nvrtcGetPTX)(p, bytes);
    return { bytes: cubin ? bytes : bytes.subarray(0, bytes.length - 1), log }; // PTX comes NUL-terminated
  } finally {
    s.nvrtcDestroyProgram(prog);
    nv.close();
  }
}
