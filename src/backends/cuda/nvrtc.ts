// NVRTC through FFI (ffi.ts): CUDA C source -> cubin for one GPU architecture, or -> PTX for a virtual one
// (compute_75, the PTX numedge ships).
import { readFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { env } from "../../env.ts";
import { NumedgeError } from "../../errors.ts";
import { libPaths, openFirst, type Ffi } from "./ffi.ts";

/** The kernels' CUDA C source, and its hash (the key of the cubin cache and of the shipped PTX). */
export function kernelSource(): { src: string; hash: string } {
  const src = readFileSync(new URL("./kernels.cu", import.meta.url), "utf8");
  return { src, hash: createHash("sha256").update(src).digest("hex") };
}

/** The first line of kernels.ptx records the hash of the source it was built from. */
export const PTX_HASH_PREFIX = "// numedge kernels.cu sha256 ";

/**
 * The PTX ISA the shipped PTX declares: 6.3, the first with sm_75 (CUDA 10.0 drivers), instead of NVRTC's own (9.0
 * from NVRTC 13, which only R580+ drivers load). npm run build:ptx checks with ptxas, where present, that the
 * kernels assemble to the same machine code under either declaration.
 */
export const SHIPPED_PTX_ISA = "6.3";
/** NVRTC's compute_75 PTX with its `.version` line set to SHIPPED_PTX_ISA. */
export const portablePtx = (ptx: string) => ptx.replace(/^\.version \d+\.\d+$/m, `.version ${SHIPPED_PTX_ISA}`);

/** An opened libnvrtc: its version ("13.0"), and compile (see nvrtcCompile). */
export interface Nvrtc {
  version: string;
  compile(src: string, arch: string): { bytes: Uint8Array; log: string };
  close(): void;
}

/**
 * The first libnvrtc that loads, most recent first, or why none does. NUMEDGE_NVRTC (a path) is tried first;
 * NUMEDGE_NVRTC=none: never use NVRTC.
 */
export function openNvrtc(ffi: Ffi): Nvrtc | { missing: string } {
  const chosen = env.NUMEDGE_NVRTC;
  if (chosen === "none") return { missing: "NUMEDGE_NVRTC=none" };
  const paths = [...(chosen ? [chosen] : []), ...["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"].flatMap(libPaths)];
  const opened = openFirst(ffi, paths, {
    nvrtcVersion: ["buf", "buf"],
    nvrtcCreateProgram: ["buf", "buf", "buf", "i32", "ptr", "ptr"],
    nvrtcCompileProgram: ["ptr", "i32", "buf"],
    nvrtcGetCUBINSize: ["ptr", "buf"],
    nvrtcGetCUBIN: ["ptr", "buf"],
    nvrtcGetPTXSize: ["ptr", "buf"],
    nvrtcGetPTX: ["ptr", "buf"],
    nvrtcGetProgramLogSize: ["ptr", "buf"],
    nvrtcGetProgramLog: ["ptr", "buf"],
    nvrtcDestroyProgram: ["buf"],
  } as const);
  if ("why" in opened) return { missing: `no libnvrtc found (${opened.why})` };
  const nv = opened.lib;
  const s = nv.fn, cstr = (t: string) => new TextEncoder().encode(t + "\0");
  const major = new Int32Array(1), minor = new Int32Array(1);
  s.nvrtcVersion(major, minor);
  return {
    version: `${major[0]}.${minor[0]}`,
    close: () => nv.close(),
    compile(src, arch) {
      const prog = new BigUint64Array(1);
      if (s.nvrtcCreateProgram(prog, cstr(src), cstr("numedge.cu"), 0, 0n, 0n) !== 0) throw new NumedgeError("backend", "nvrtcCreateProgram failed");
      const p = prog[0]!; // the nvrtcProgram handle
      try {
        // --fmad=false: no fused multiply-adds, so f32 kernels round every operation as the wasm kernels do
        const opts = [cstr(`--gpu-architecture=${arch}`), cstr("--std=c++17"), cstr("--fmad=false")];
        const rc = s.nvrtcCompileProgram(p, opts.length, BigUint64Array.from(opts.map((b) => ffi.addr(b))));
        const ls = new BigUint64Array(1);
        s.nvrtcGetProgramLogSize(p, ls);
        const logBuf = new Uint8Array(Math.max(1, Number(ls[0])));
        s.nvrtcGetProgramLog(p, logBuf);
        const log = new TextDecoder().decode(logBuf).replace(/\0+$/, "").trim();
        if (rc !== 0) throw new NumedgeError("backend", `NVRTC could not compile the kernels for ${arch}:\n${log}`);
        const cubin = arch.startsWith("sm_");
        const size = new BigUint64Array(1);
        (cubin ? s.nvrtcGetCUBINSize : s.nvrtcGetPTXSize)(p, size);
        const bytes = new Uint8Array(Number(size[0]));
        (cubin ? s.nvrtcGetCUBIN : s.nvrtcGetPTX)(p, bytes);
        return { bytes: cubin ? bytes : bytes.subarray(0, bytes.length - 1), log }; // PTX comes NUL-terminated
      } finally {
        s.nvrtcDestroyProgram(prog);
      }
    },
  };
}

/**
 * Compile `src` with NVRTC for `arch` ("sm_90" -> a cubin, "compute_75" -> PTX text). Throws NumedgeError("backend")
 * carrying NVRTC's log when compilation fails; returns { missing } when no libnvrtc loads (with the reason).
 */
export function nvrtcCompile(ffi: Ffi, src: string, arch: string): { bytes: Uint8Array; log: string } | { missing: string } {
  const nv = openNvrtc(ffi);
  if ("missing" in nv) return nv;
  try {
    return nv.compile(src, arch);
  } finally {
    nv.close();
  }
}
