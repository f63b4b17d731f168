// The tfjs probe with injected file systems and imports: package absent, binding file absent, libtensorflow
// absent, import throws, GPU device absent / present, one native package per process.
import { describe, expect, test } from "bun:test";
import { TfjsProbe, bindingPaths, firstLine, type ProbeDeps } from "../src/backends/probe.ts";

const NODE_GPU = "@tensorflow/tfjs-node-gpu", NODE = "@tensorflow/tfjs-node";
const PJ = { binary: { module_name: "tfjs_binding", module_path: "./lib/napi-v{napi_build_version}", napi_versions: [3, 4, 5, 6, 7, 8] } };

/** A fake tf namespace whose native backend reports `gpu`. */
function fakeTf(gpu: boolean, backends: string[] = ["tensorflow", "wasm", "cpu"]) {
  let cur = "";
  return {
    tensor() { throw new Error("not for computing"); },
    async setBackend(n: string) { if (!backends.includes(n)) return false; cur = n; return true; },
    getBackend: () => cur,
    backend: () => (cur === "tensorflow" ? { isUsingGpuDevice: gpu } : {}),
    env: () => ({ set() {} }),
  };
}

interface World {
  installed: string[];
  files: string[];
  imports: Record<string, () => unknown>;
}

function deps(w: World, log: string[] = []): ProbeDeps {
  return {
    packageDir: (p) => (w.installed.includes(p) ? `/nm/${p}` : null),
    exists: (p) => w.files.includes(p),
    readJson: () => PJ,
    async importPackage(p) {
      log.push(p);
      const f = w.imports[p];
      if (!f) throw new Error(`Cannot find package '${p}'`);
      return f();
    },
    napi: 9,
    platform: "linux",
  };
}

const binding = (pkg: string) => `/nm/${pkg}/lib/napi-v8/tfjs_binding.node`;
const libtf = (pkg: string) => `/nm/${pkg}/deps/lib/libtensorflow.so.2`;
const fullNative = (pkg: string, tf: unknown): Partial<World> => ({
  files: [binding(pkg), libtf(pkg)],
  imports: { [pkg]: () => tf },
});
const jsEngines = (tf: unknown): World => ({
  installed: ["@tensorflow/tfjs-core", "@tensorflow/tfjs-backend-wasm", "@tensorflow/tfjs-backend-cpu"],
  files: [],
  imports: { "@tensorflow/tfjs-core": () => tf, "@tensorflow/tfjs-backend-wasm": () => ({}), "@tensorflow/tfjs-backend-cpu": () => ({}) },
});
const noStack = (s: string) => expect(s).not.toMatch(/\n\s+at /);

describe("tfjs probe", () => {
  test("binding path follows node-pre-gyp: highest napi version <= the runtime's", () => {
    expect(bindingPaths("/p", PJ, 9)[0]).toBe("/p/lib/napi-v8/tfjs_binding.node");
    expect(bindingPaths("/p", PJ, 6)[0]).toBe("/p/lib/napi-v6/tfjs_binding.node");
  });

  test("package absent: reason says how to install, nothing imported, falls through to tfjs-wasm", async () => {
    const log: string[] = [];
    const p = new TfjsProbe(deps(jsEngines(fakeTf(false)), log));
    const { engine, reasons } = await p.first();
    expect(engine?.candidate).toBe("tfjs-wasm");
    expect(reasons["tfjs-node-gpu"]).toMatch(/@tensorflow\/tfjs-node-gpu is not installed.*CUDA 11\.2.*cuDNN 8\.1/);
    expect(reasons["tfjs-node"]).toMatch(/not installed/);
    expect(reasons["tfjs-cpu"]).toMatch(/not probed: tfjs-wasm comes first/);
    expect(log).not.toContain(NODE_GPU);
    expect(await p.gpu()).toMatch(/not installed/);
    expect(p.installed("tfjs-node-gpu")).toBe(false);
  });

  test("binding file absent: never imported (a failed import would register kernels), reason names the file", async () => {
    const log: string[] = [];
    const w = jsEngines(fakeTf(false));
    w.installed.push(NODE_GPU);
    w.imports[NODE_GPU] = () => fakeTf(true);
    const p = new TfjsProbe(deps(w, log));
    const r = await p.engine("tfjs-node-gpu");
    expect(typeof r).toBe("string");
    expect(r as string).toContain("lib/napi-v8/tfjs_binding.node is missing");
    expect(r as string).toMatch(/install script/);
    expect(log).not.toContain(NODE_GPU);
    expect(p.installed("tfjs-node-gpu")).toBe(true);
    // not a native import, so tfjs-node may still be tried (and is absent here)
    expect(await p.engine("tfjs-node")).toMatch(/not installed/);
  });

  test("libtensorflow absent next to a present binding: not imported either", async () => {
    const log: string[] = [];
    const w = { ...jsEngines(fakeTf(false)) };
    w.installed.push(NODE_GPU);
    w.files = [binding(NODE_GPU)];
    const r = await new TfjsProbe(deps(w, log)).engine("tfjs-node-gpu");
    expect(r as string).toContain("deps/lib/libtensorflow.so.2 is missing");
    expect(log).not.toContain(NODE_GPU);
  });

  test("import throws: first line of the message only, and no second native package in this process", async () => {
    const w = jsEngines(fakeTf(false));
    w.installed.push(NODE_GPU, NODE);
    w.files = [binding(NODE_GPU), libtf(NODE_GPU), binding(NODE), libtf(NODE)];
    w.imports[NODE_GPU] = () => { throw new Error("libcudart.so.11.0: cannot open shared object file\n    at Module._load (node:internal)"); };
    w.imports[NODE] = () => fakeTf(false);
    const log: string[] = [];
    const p = new TfjsProbe(deps(w, log));
    const { engine, reasons } = await p.first();
    expect(reasons["tfjs-node-gpu"]).toBe(`importing ${NODE_GPU} failed: libcudart.so.11.0: cannot open shared object file`);
    noStack(reasons["tfjs-node-gpu"]!);
    expect(reasons["tfjs-node"]).toMatch(/not tried: @tensorflow\/tfjs-node-gpu was already loaded/);
    expect(log.filter((l) => l === NODE)).toEqual([]);
    expect(engine?.candidate).toBe("tfjs-wasm");
  });

  test("GPU device absent: tfjs-node-gpu loads on the CPU; gpu() says so; it still serves the plain tfjs choice", async () => {
    const w = jsEngines(fakeTf(false));
    w.installed.push(NODE_GPU, NODE);
    Object.assign(w, { files: fullNative(NODE_GPU, null).files, imports: { ...w.imports, ...fullNative(NODE_GPU, fakeTf(false)).imports } });
    w.files.push(binding(NODE), libtf(NODE));
    w.imports[NODE] = () => fakeTf(true);
    const p = new TfjsProbe(deps(w));
    const g = await p.gpu();
    expect(g as string).toMatch(/isUsingGpuDevice is false.*CUDA 11\.2 \/ cuDNN 8\.1.*TF_CPP_MIN_LOG_LEVEL=0/);
    const { engine } = await p.first();
    expect(engine?.candidate).toBe("tfjs-node-gpu");
    expect(engine?.device).toBe("cpu");
    expect(await p.engine("tfjs-node")).toMatch(/not tried/);
  });

  test("GPU present: device gpu only when isUsingGpuDevice is true", async () => {
    const w = jsEngines(fakeTf(false));
    w.installed.push(NODE_GPU);
    Object.assign(w, { files: fullNative(NODE_GPU, null).files, imports: { ...w.imports, ...fullNative(NODE_GPU, fakeTf(true)).imports } });
    const g = await new TfjsProbe(deps(w)).gpu();
    expect(typeof g).toBe("object");
    expect((g as { device: string }).device).toBe("gpu");
  });

  test("a JS engine whose backend fails to initialize is skipped with a reason; a module default export is accepted", async () => {
    const w = jsEngines({ default: fakeTf(false, ["cpu"]) });
    const { engine, reasons } = await new TfjsProbe(deps(w)).first();
    expect(reasons["tfjs-wasm"]).toMatch(/"wasm" backend did not initialize/);
    expect(engine?.candidate).toBe("tfjs-cpu");
  });

  test("nothing installed: first() returns no engine and a reason for every candidate", async () => {
    const { engine, reasons } = await new TfjsProbe(deps({ installed: [], files: [], imports: {} })).first();
    expect(engine).toBeNull();
    expect(Object.keys(reasons)).toEqual(["tfjs-node-gpu", "tfjs-node", "tfjs-wasm", "tfjs-cpu"]);
    expect(reasons["tfjs-wasm"]).toMatch(/@tensorflow\/tfjs-core is not installed/);
  });

  test("before a native import: TF32 off and TensorFlow's loader quiet, unless the user set them", async () => {
    const saved = { tf32: process.env.NVIDIA_TF32_OVERRIDE, log: process.env.TF_CPP_MIN_LOG_LEVEL };
    try {
      for (const preset of [undefined, "1"]) {
        if (preset === undefined) { delete process.env.NVIDIA_TF32_OVERRIDE; delete process.env.TF_CPP_MIN_LOG_LEVEL; }
        else { process.env.NVIDIA_TF32_OVERRIDE = preset; process.env.TF_CPP_MIN_LOG_LEVEL = preset; }
        const seen: Array<string | undefined> = [];
        const w = jsEngines(fakeTf(false));
        w.installed.push(NODE_GPU);
        w.files = [binding(NODE_GPU), libtf(NODE_GPU)];
        w.imports[NODE_GPU] = () => { seen.push(process.env.NVIDIA_TF32_OVERRIDE, process.env.TF_CPP_MIN_LOG_LEVEL); return fakeTf(true); };
        await new TfjsProbe(deps(w)).gpu();
        expect(seen).toEqual(preset === undefined ? ["0", "2"] : ["1", "1"]);
      }
    } finally {
      for (const [k, v] of [["NVIDIA_TF32_OVERRIDE", saved.tf32], ["TF_CPP_MIN_LOG_LEVEL", saved.log]] as const)
        if (v === undefined) delete process.env[k]; else process.env[k] = v;
    }
  });

  test("firstLine never returns a stack", () => {
    const e = new Error("top\n    at x (y.js:1:1)");
    expect(firstLine(e)).toBe("top");
    expect(firstLine("plain")).toBe("plain");
  });
});
