// cuBLAS through FFI (ffi.ts), for the cuda backend's matmul: libcublas.so.13 or .12 when the machine has one.
// Column-major, as cuBLAS is: the backend maps its row-major products onto these calls. The handle runs on the
// driver's stream, in order with every kernel numedge launches (and captured with them into a CUDA graph).
// Signatures as verified on an H200 (CUDA 13); cublasSetStream_v2 not yet run on one.
import { NumedgeError } from "../../errors.ts";
import type { Driver } from "./driver.ts";
import { libPaths, openFirst } from "./ffi.ts";

/** C = alpha op(A) op(B) + beta C, column-major; op 0 = as stored, 1 = transposed; pointers are device addresses. */
export type GemmCall = (opA: 0 | 1, opB: 0 | 1, m: number, n: number, k: number, alpha: number, A: bigint, lda: number,
  B: bigint, ldb: number, beta: number, C: bigint, ldc: number) => void;

export interface Cublas {
  /** Which library, and FP32 or TF32 for sgemm. */
  engine: string;
  sgemm: GemmCall;
  dgemm: GemmCall;
}

/**
 * cuBLAS on the driver's context and stream, or why not: `library` (a path) if given, else libcublas.so.13 or .12
 * where ldconfig or the loader finds one. tf32: let sgemm use TF32 tensor cores (CUBLAS_TF32_TENSOR_OP_MATH). Its
 * workspace is a fixed buffer of ours (32 MiB from Hopper on, else 4 MiB, as PyTorch's), so cuBLAS allocates nothing
 * while a CUDA graph is captured and picks the same kernels inside and out.
 */
export function openCublas(d: Driver, tf32: boolean, library?: string): Cublas | string {
  const opened = openFirst(d.ffi, library ? [library] : ["libcublas.so.13", "libcublas.so.12"].flatMap(libPaths), {
    cublasCreate_v2: ["buf"],
    cublasSetMathMode: ["ptr", "i32"],
    cublasSetStream_v2: ["ptr", "ptr"],
    cublasSetWorkspace_v2: ["ptr", "u64", "usize"],
    cublasSgemm_v2: ["ptr", "i32", "i32", "i32", "i32", "i32", "buf", "u64", "i32", "u64", "i32", "buf", "u64", "i32"],
    cublasDgemm_v2: ["ptr", "i32", "i32", "i32", "i32", "i32", "buf", "u64", "i32", "u64", "i32", "buf", "u64", "i32"],
  } as const);
  if ("why" in opened) return library ? `${library} could not be loaded (${opened.why})` : `no libcublas.so.13/.12 (${opened.why})`;
  const { lib, path } = opened;
  const h = new BigUint64Array(1);
  const rc = lib.fn.cublasCreate_v2(h);
  if (rc !== 0) return `cublasCreate failed (cublasStatus ${rc})`;
  if (tf32 && lib.fn.cublasSetMathMode(h[0]!, 3) !== 0) return "cublasSetMathMode(TF32) failed";
  if (lib.fn.cublasSetStream_v2(h[0]!, d.stream) !== 0) return "cublasSetStream failed"; // first: it resets the workspace
  const bytes = (d.device.sm >= 90 ? 32 : 4) * 2 ** 20;
  if (lib.fn.cublasSetWorkspace_v2(h[0]!, d.alloc(bytes), BigInt(bytes)) !== 0) return "cublasSetWorkspace failed";
  const call = (name: "cublasSgemm_v2" | "cublasDgemm_v2", Scalar: Float32ArrayConstructor | Float64ArrayConstructor): GemmCall =>
    (opA, opB, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc) => {
      const s = lib.fn[name](h[0]!, opA, opB, m, n, k, Scalar.of(alpha), A, lda, B, ldb, Scalar.of(beta), C, ldc);
      if (s !== 0) throw new NumedgeError("backend", `cuda: ${name} failed (cublasStatus ${s})`);
    };
  return { engine: `cuBLAS (${path.split("/").pop()}, ${tf32 ? "TF32" : "FP32"})`, sgemm: call("cublasSgemm_v2", Float32Array), dgemm: call("cublasDgemm_v2", Float64Array) };
}
