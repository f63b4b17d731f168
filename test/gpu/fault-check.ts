// CUDA errors through the real driver.ts, on the tests' fake libcuda.so.1 (its numedge_fake_fail hook makes a launch
// fail). Run by test/cuda-driver.test.ts with NUMEDGE_LIBCUDA naming the fake; prints "fault check: ok" or what failed.
import { NumedgeError, relu, setBackend, toDevice } from "../../src/index.ts";
import { loadFfi } from "../../src/backends/cuda/ffi.ts";

const fail = (why: string): never => {
  console.log(`fault check: FAILED ${why}`);
  process.exit(1);
};
const ffi = await loadFfi();
if (typeof ffi === "string") fail(ffi);
const info = await setBackend("cuda");
if (!/fake libcuda/.test(info.engine)) fail(`not the fake driver: ${info.engine}`);
// the library the driver opened (the same path: the same loaded copy)
const hook = (ffi as Exclude<typeof ffi, string>).open(process.env.NUMEDGE_LIBCUDA!, { numedge_fake_fail: ["i32", "i32"] }).fn.numedge_fake_fail;
const thrown = (f: () => unknown) => { try { f(); } catch (e) { return e; } return fail("no error thrown"); };
const x = toDevice(Float32Array.of(-1, 2));

// an error that leaves the context usable: NumedgeError("backend") naming the kernel; the next call works
hook(0, 1);
const e1 = thrown(() => relu(x));
if (!(e1 instanceof NumedgeError) || e1.code !== "backend" || !/cuLaunchKernel\(relu_f32\) failed \(CUDA_ERROR_INVALID_VALUE/.test(e1.message) || /context is lost/.test(e1.message))
  fail(`a launch error: ${String(e1)}`);
if (Array.from((relu(x) as typeof x).readSync()).join() !== "0,2") fail("relu after a launch error");
// a sticky one (an illegal address): it says the context is lost, and so does every later call
hook(0, 700);
const e2 = thrown(() => relu(x)), e3 = thrown(() => x.readSync());
for (const e of [e2, e3])
  if (!(e instanceof NumedgeError) || !/CUDA_ERROR_ILLEGAL_ADDRESS.*the CUDA context is lost: restart the process/.test(e.message)) fail(`a sticky error: ${String(e)}`);
console.log("fault check: ok");
