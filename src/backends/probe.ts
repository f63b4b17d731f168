// Finds a usable TensorFlow.js engine without ever leaving the process in a bad state.
//
// Order: @tensorflow/tfjs-node-gpu, @tensorflow/tfjs-node, @tensorflow/tfjs-backend-wasm,
// @tensorflow/tfjs-backend-cpu. Rules:
// - A native package is imported only after its binding file (lib/napi-vN/tfjs_binding.node) and its
//   libtensorflow (deps/lib/libtensorflow.so.2 on Linux, the 2.9.1 library; see libtensorflowPath) exist on disk: tfjs-node registers its kernels
//   *before* it loads the binding, so a failed import would leave half-registered kernels behind.
// - At most one native package is imported per process (both register the "tensorflow" backend and its
//   kernels; a second one would clobber the first). Once one has been tried, the other is reported as
//   "not tried" whatever happened.
// - A device is called "gpu" only when tf.backend().isUsingGpuDevice is true: tfjs-node-gpu without the CUDA
//   libraries loads fine and silently runs on the CPU.
// Every step is injectable (ProbeDeps) so tests can simulate absent packages, absent bindings, throwing
// imports and missing GPUs on a machine that has none of them. Nothing here throws: failures become reasons.
import { env } from "../env.ts";
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

/** A tfjs engine numedge can run on, in probe order. */
export type Candidate = "tfjs-node-gpu" | "tfjs-node" | "tfjs-wasm" | "tfjs-cpu";
export const CANDIDATES: readonly Candidate[] = ["tfjs-node-gpu", "tfjs-node", "tfjs-wasm", "tfjs-cpu"];

/** The npm package behind each candidate. */
export const PACKAGES: Record<Candidate, string> = {
  "tfjs-node-gpu": "@tensorflow/tfjs-node-gpu",
  "tfjs-node": "@tensorflow/tfjs-node",
  "tfjs-wasm": "@tensorflow/tfjs-backend-wasm",
  "tfjs-cpu": "@tensorflow/tfjs-backend-cpu",
};
const CORE = "@tensorflow/tfjs-core";
const NATIVE: readonly Candidate[] = ["tfjs-node-gpu", "tfjs-node"];
/** The tfjs backend name each candidate registers. */
const TF_BACKEND: Record<Candidate, string> = {
  "tfjs-node-gpu": "tensorflow", "tfjs-node": "tensorflow", "tfjs-wasm": "wasm", "tfjs-cpu": "cpu",
};
const HOW: Record<Candidate, string> = {
  "tfjs-node-gpu": "on a Linux x86-64 box with CUDA 11.2 and cuDNN 8.1: npm i @tensorflow/tfjs-node-gpu@4.22.0 with its install script allowed (numedge docs/backends.md: The legacy route: tfjs-node-gpu)",
  "tfjs-node": "npm i @tensorflow/tfjs-node@4.22.0 with its install script allowed (numedge docs/backends.md: The legacy route: tfjs-node-gpu)",
  "tfjs-wasm": "npm i @tensorflow/tfjs-core@4.22.0 @tensorflow/tfjs-backend-wasm@4.22.0",
  "tfjs-cpu": "npm i @tensorflow/tfjs-core@4.22.0 @tensorflow/tfjs-backend-cpu@4.22.0",
};

/** The slice of the tfjs namespace numedge uses (tfjs-core's exports; tfjs-node re-exports them). */
export type Tf = typeof import("@tensorflow/tfjs-core");

/** A working engine: the tf namespace, the tfjs backend to switch to, and the device it computes on. */
export interface TfEngine {
  candidate: Candidate;
  tf: Tf;
  /** Name passed to tf.setBackend: "tensorflow", "wasm" or "cpu". */
  tfBackend: string;
  device: "cpu" | "gpu";
}

/** What the probe touches; the defaults use the real file system and dynamic import. */
export interface ProbeDeps {
  /** Directory of an installed package (resolved from numedge), or null when it is not installed. */
  packageDir(pkg: string): string | null;
  exists(path: string): boolean;
  readJson(path: string): unknown;
  /** Import a package for its side effects and namespace. */
  importPackage(pkg: string): Promise<unknown>;
  /** N-API version of this runtime (process.versions.napi). */
  napi: number;
  platform: string;
}

const req = createRequire(import.meta.url);

export const defaultProbeDeps: ProbeDeps = {
  packageDir(pkg) {
    try {
      return dirname(req.resolve(`${pkg}/package.json`));
    } catch {
      return null;
    }
  },
  exists: (p) => existsSync(p),
  readJson: (p) => JSON.parse(readFileSync(p, "utf8")),
  importPackage: (pkg) => import(pkg),
  napi: Number((globalThis as { process?: { versions?: Record<string, string> } }).process?.versions?.napi ?? 0),
  platform: (globalThis as { process?: { platform?: string } }).process?.platform ?? "unknown",
};

/** First line of an error's message, never its stack. */
export function firstLine(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e);
  return (m.split("\n").find((l) => l.trim() !== "") ?? "unknown error").trim().slice(0, 300);
}

/** Where node-pre-gyp looks for the binding: lib/napi-v{N}/tfjs_binding.node, N = highest supported <= ours. */
export function bindingPaths(dir: string, pkgJson: unknown, napi: number): string[] {
  const bin = (pkgJson as { binary?: { module_path?: string; module_name?: string; napi_versions?: number[] } })?.binary;
  const modulePath = bin?.module_path ?? "./lib/napi-v{napi_build_version}";
  const name = `${bin?.module_name ?? "tfjs_binding"}.node`;
  const versions = (bin?.napi_versions ?? [napi]).filter((v) => v <= napi || napi === 0).sort((a, b) => b - a);
  return versions.map((v) => join(dir, modulePath.replace("{napi_build_version}", String(v)), name));
}

/** libtensorflow the binding links against ($ORIGIN/../../deps/lib on Linux). */
export function libtensorflowPath(dir: string, platform: string): string {
  const lib = platform === "win32" ? "tensorflow.dll" : platform === "darwin" ? "libtensorflow.2.dylib" : "libtensorflow.so.2";
  return join(dir, "deps", "lib", lib);
}

const isTf = (m: unknown): m is Tf =>
  !!m && typeof (m as Tf).tensor === "function" && typeof (m as Tf).setBackend === "function";
const nsOf = (m: unknown): Tf | null => (isTf(m) ? m : isTf((m as { default?: unknown })?.default) ? (m as { default: Tf }).default : null);

/**
 * Probes tfjs engines once per process (per TfjsProbe instance: tests make their own with fake deps).
 * `engine(c)` returns a working engine or the reason it cannot be had; results are cached.
 */
export class TfjsProbe {
  private cache = new Map<Candidate, TfEngine | string>();
  /** The native package imported in this process, if any (only one ever is). */
  private native: Candidate | null = null;
  private core: Tf | null = null;

  constructor(private deps: ProbeDeps = defaultProbeDeps) {}

  /** Whether the candidate's package is installed at all (no import). */
  installed(c: Candidate): boolean {
    try {
      return this.deps.packageDir(PACKAGES[c]) !== null;
    } catch {
      return false;
    }
  }

  async engine(c: Candidate): Promise<TfEngine | string> {
    const hit = this.cache.get(c);
    if (hit !== undefined) return hit;
    let r: TfEngine | string;
    try {
      r = NATIVE.includes(c) ? await this.tryNative(c) : await this.tryJs(c);
    } catch (e) {
      r = `probe failed: ${firstLine(e)}`;
    }
    this.cache.set(c, r);
    return r;
  }

  /** A GPU engine, or why there is none (the tfjs-node-gpu reason, with the device rule applied). */
  async gpu(): Promise<TfEngine | string> {
    const e = await this.engine("tfjs-node-gpu");
    if (typeof e === "string") return e;
    if (e.device === "gpu") return e;
    return "@tensorflow/tfjs-node-gpu loaded, but TensorFlow found no usable GPU (tf.backend().isUsingGpuDevice is false): " +
      "the CUDA 11.2 / cuDNN 8.1 libraries are not on LD_LIBRARY_PATH or no NVIDIA driver is loaded (check nvidia-smi); " +
      "run with TF_CPP_MIN_LOG_LEVEL=0 to see TensorFlow's library-loading messages";
  }

  /**
   * The first usable candidate in probe order, with a reason for every candidate before it; candidates after
   * it are not probed (reason: "lower in the probe order").
   */
  async first(order: readonly Candidate[] = CANDIDATES): Promise<{ engine: TfEngine | null; reasons: Record<string, string> }> {
    const reasons: Record<string, string> = {};
    let engine: TfEngine | null = null;
    for (const c of order) {
      if (engine) { reasons[c] = `not probed: ${engine.candidate} comes first in the probe order`; continue; }
      const e = await this.engine(c);
      if (typeof e === "string") reasons[c] = e;
      else engine = e;
    }
    return { engine, reasons };
  }

  private async tryNative(c: Candidate): Promise<TfEngine | string> {
    const pkg = PACKAGES[c];
    const d = this.deps;
    const dir = d.packageDir(pkg);
    if (!dir) return `${pkg} is not installed (${HOW[c]})`;
    if (this.native && this.native !== c)
      return `not tried: ${PACKAGES[this.native]} was already loaded in this process and only one native tfjs package can be`;
    const pj = d.readJson(join(dir, "package.json"));
    const bindings = bindingPaths(dir, pj, d.napi);
    if (!bindings.some((p) => d.exists(p)))
      return `${pkg} is installed without its native binding (${bindings[0] ?? join(dir, "lib")} is missing): its install ` +
        `script, which downloads libtensorflow 2.9.1 and the prebuilt addon, did not run or failed; ` +
        `run it with \`npm rebuild ${pkg} --foreground-scripts\` after allowing it, or from a local mirror (numedge docs/backends.md: The legacy route: tfjs-node-gpu)`;
    const lib = libtensorflowPath(dir, d.platform);
    if (d.platform !== "win32" && !d.exists(lib))
      return `${pkg} has its binding but not libtensorflow (${lib} is missing): rerun its install script ` +
        `(TFJS_NODE_CDN_STORAGE / TFJS_NODE_BASE_URI / scripts/custom-binary.json can point it at a local mirror; numedge docs/backends.md: The legacy route: tfjs-node-gpu)`;
    this.native = c;
    // TensorFlow's C++ loader logs a warning per CUDA library it cannot dlopen; the GPU reason says how to see them.
    if (env.TF_CPP_MIN_LOG_LEVEL === undefined) env.TF_CPP_MIN_LOG_LEVEL = "2";
    // TensorFlow runs float32 matmuls and convolutions in TF32 (10-bit mantissa, ~1e-3 relative error) on
    // Ampere and newer GPUs by default; numedge's GEMM bound is f32's. cuBLAS/cuDNN honour this variable when
    // they load (after this point); set NVIDIA_TF32_OVERRIDE=1 yourself to trade accuracy for TF32 speed.
    if (env.NVIDIA_TF32_OVERRIDE === undefined) env.NVIDIA_TF32_OVERRIDE = "0";
    let mod: unknown;
    try {
      mod = await d.importPackage(pkg);
    } catch (e) {
      return `importing ${pkg} failed: ${firstLine(e)}`;
    }
    const tf = nsOf(mod);
    if (!tf) return `${pkg} loaded but does not export the tfjs API`;
    try {
      if (!(await tf.setBackend("tensorflow"))) return `${pkg} loaded but its "tensorflow" backend did not initialize`;
    } catch (e) {
      return `${pkg} loaded but its "tensorflow" backend did not initialize: ${firstLine(e)}`;
    }
    quiet(tf);
    const gpu = (tf.backend() as { isUsingGpuDevice?: boolean }).isUsingGpuDevice === true;
    return { candidate: c, tf, tfBackend: TF_BACKEND[c], device: gpu ? "gpu" : "cpu" };
  }

  private async tryJs(c: Candidate): Promise<TfEngine | string> {
    const pkg = PACKAGES[c];
    const d = this.deps;
    if (!d.packageDir(CORE)) return `${CORE} is not installed (${HOW[c]})`;
    if (!d.packageDir(pkg)) return `${pkg} is not installed (${HOW[c]})`;
    let tf: Tf | null;
    try {
      tf = this.core ?? nsOf(await d.importPackage(CORE));
      await d.importPackage(pkg);
    } catch (e) {
      return `importing ${pkg} failed: ${firstLine(e)}`;
    }
    if (!tf) return `${CORE} loaded but does not export the tfjs API`;
    this.core = tf;
    try {
      if (!(await tf.setBackend(TF_BACKEND[c]))) return `${pkg} is installed but its "${TF_BACKEND[c]}" backend did not initialize`;
    } catch (e) {
      return `${pkg} is installed but its "${TF_BACKEND[c]}" backend did not initialize: ${firstLine(e)}`;
    }
    quiet(tf);
    return { candidate: c, tf, tfBackend: TF_BACKEND[c], device: "cpu" };
  }
}

/** tfjs-cpu prints a "install tfjs-node" banner on first use in Node; PROD mode turns tfjs warnings off. */
function quiet(tf: Tf): void {
  try {
    tf.env().set("PROD", true);
  } catch {
    /* an older tfjs without the flag: the banner is harmless */
  }
}
