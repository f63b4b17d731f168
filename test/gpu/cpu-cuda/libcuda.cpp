// A fake libcuda.so.1 over the CPU device (runtime.cpp), so that the cuda backend's real driver (driver.ts: its FFI
// calls, kernel parameters, stream, CUDA graph capture and error handling) runs where there is no GPU. cpu-driver.ts
// compiles it with runtime.cpp, kernels.cu and the kernels' wrappers (cc_kernels, cc_names, cc_nparams). The
// prototypes are the CUDA driver API's as documented (handles as pointers, CUdeviceptr as a 64-bit integer); this
// checks our use of them, not the real library's binary interface. One device, one stream besides the legacy one;
// a capture records launches and memsets and refuses everything else, as CUDA does.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <vector>

namespace fake {
constexpr uint64_t TOTAL = 8ull << 30; // the device's memory: allocations past it fail, as out of memory
uint64_t used = 0; // bytes allocated (each allocation's size is the runtime's `allocs`)
// one operation on the stream: a launch, a memset (fn 0, host empty) or a cuBLAS call (host: libcublas.cpp)
struct Item { void (*fn)(void**); uint32_t gx, gy, bx, by, shared, n; uint64_t vals[64]; uint64_t dst, bytes; std::function<int()> host; };
struct Graph { std::vector<Item> items; };
Graph* capturing = nullptr;
bool invalidated = false;
uint32_t seed = 0; // blocks and threads run in an order shuffled by it (NUMEDGE_CUDA_CPU_SHUFFLE=0: in order, seed 0)
const bool shuffle = !getenv("NUMEDGE_CUDA_CPU_SHUFFLE") || strcmp(getenv("NUMEDGE_CUDA_CPU_SHUFFLE"), "0");
const char* last = "no error";
int fail(int rc, const char* what) { last = what; return rc; }
// errors on demand (numedge_fake_fail): the launch that fails, and a sticky error (700, 719, ...) every call returns after
long launches = 0, fail_at = -1;
int fail_rc = 0, sticky = 0;
bool recoverable = false; // numedge_fake_recoverable_faults(): a kernel's fault is CUDA_ERROR_UNKNOWN, not sticky
bool is_sticky(int rc) { return rc == 700 || rc == 702 || (rc >= 714 && rc <= 719); }
int nparams(void (*fn)(void**)) {
  for (size_t i = 0; i < sizeof cc_kernels / sizeof cc_kernels[0]; i++) if (cc_kernels[i] == fn) return (int)cc_nparams[i];
  return -1;
}
// a synchronous (legacy-stream) operation while capturing: CUDA ends the capture's validity
int legacy() {
  if (!capturing) return 0;
  invalidated = true;
  return fail(906, "CUDA_ERROR_STREAM_CAPTURE_IMPLICIT: a legacy-stream operation during a capture");
}
int run(const Item& it) {
  if (it.host) return it.host();
  if (!it.fn) return cc_memset(it.dst, 0, it.bytes) ? fail(700, err.c_str()) : 0;
  void* args[64];
  for (uint32_t i = 0; i < it.n; i++) args[i] = (void*)&it.vals[i];
  if (cc_launch(it.fn, it.gx, it.gy, it.bx, it.by, it.shared, args, it.n, shuffle ? ++seed : 0)) {
    last = err.c_str();
    if (strstr(last, "invalid launch")) return 1; // a bad configuration
    if (recoverable) return 999;
    return sticky = 700; // a fault (guard bytes changed): an illegal address, which loses a GPU's context
  }
  return 0;
}
// an operation on `stream`: recorded while capturing (the legacy stream then ends the capture's validity), else run
int enqueue(const Item& it, void* stream) {
  if (!capturing) return run(it);
  if (!stream) return legacy();
  capturing->items.push_back(it);
  return 0;
}
} // namespace fake

extern "C" {
// NUMEDGE_FAKE_CUDA=no-device: a driver that sees no GPU; =init-fails: cuInit fails (CUDA_ERROR_NO_DEVICE)
static bool fake_env(const char* v) { const char* e = getenv("NUMEDGE_FAKE_CUDA"); return e && !strcmp(e, v); }
// CUDA_VISIBLE_DEVICES="" hides every GPU, as the real driver does
int cuInit(unsigned) {
  const char* visible = getenv("CUDA_VISIBLE_DEVICES");
  return fake_env("init-fails") || (visible && !*visible) ? fake::fail(100, "no CUDA-capable device is detected") : 0;
}
int cuDriverGetVersion(int* v) { *v = 13000; return 0; }
int cuDeviceGetCount(int* n) { *n = fake_env("no-device") ? 0 : 1; return 0; }
int cuDeviceGet(int* d, int i) { *d = i; return i == 0 ? 0 : 101; }
int cuDeviceGetName(char* name, int len, int) { snprintf(name, len, "fake libcuda over the CPU device"); return 0; }
int cuDeviceGetAttribute(int* v, int attr, int) { *v = attr == 75 ? 9 : 0; return 0; } // 75, 76: compute capability 9.0
int cuDeviceTotalMem_v2(size_t* bytes, int) { *bytes = fake::TOTAL; return 0; }
int cuDevicePrimaryCtxRetain(void** ctx, int) { *ctx = (void*)0xc0; return 0; }
int cuCtxSetCurrent(void*) { return 0; }
// the test hooks: the launch `after` launches from now fails with rc; kernels' faults leave the context usable (the
// CPU device's tests go on after a kernel they made fault)
int numedge_fake_fail(int after, int rc) { fake::fail_at = fake::launches + after; fake::fail_rc = rc; return 0; }
int numedge_fake_recoverable_faults() { fake::recoverable = true; return 0; }
#define STICKY if (fake::sticky) return fake::fail(fake::sticky, "an earlier error lost the context (fake)")
int cuMemAlloc_v2(uint64_t* p, size_t bytes) {
  STICKY;
  if (fake::used + bytes > fake::TOTAL) return fake::fail(2, "CUDA_ERROR_OUT_OF_MEMORY");
  if (cc_alloc(p, bytes)) return fake::fail(2, "CUDA_ERROR_OUT_OF_MEMORY (host)");
  fake::used += bytes;
  return 0;
}
int cuMemFree_v2(uint64_t p) {
  if (int rc = fake::legacy()) return rc;
  auto it = allocs.find(p);
  const size_t bytes = it == allocs.end() ? 0 : it->second;
  if (cc_free(p)) return fake::fail(1, err.c_str()); // no allocation there, or its guard bytes overwritten
  fake::used -= bytes;
  return 0;
}
int cuMemGetInfo_v2(size_t* free, size_t* total) { *free = fake::TOTAL - fake::used; *total = fake::TOTAL; return 0; }
int cuMemcpyHtoD_v2(uint64_t dst, const void* src, size_t n) { STICKY; if (int rc = fake::legacy()) return rc; return cc_htod(dst, src, n) ? fake::fail(1, err.c_str()) : 0; }
int cuMemcpyDtoH_v2(void* dst, uint64_t src, size_t n) { STICKY; if (int rc = fake::legacy()) return rc; return cc_dtoh(dst, src, n) ? fake::fail(1, err.c_str()) : 0; }
int cuMemcpyDtoD_v2(uint64_t dst, uint64_t src, size_t n) { if (int rc = fake::legacy()) return rc; return cc_dtod(dst, src, n) ? fake::fail(1, err.c_str()) : 0; }
int cuMemsetD8Async(uint64_t dst, unsigned char v, size_t n, void* stream) {
  if (v != 0 || !stream) return fake::fail(1, "fake libcuda: only zero memsets on the created stream");
  fake::Item it{};
  it.dst = dst;
  it.bytes = n;
  return fake::enqueue(it, stream);
}
int cuStreamCreate(void** s, unsigned flags) { *s = (void*)0x57; return flags == 0 ? 0 : 1; }
int cuModuleLoadData(void** m, const void*) { *m = (void*)0x30; return 0; } // the image is not read: the kernels are compiled in
int cuModuleLoadDataEx(void** m, const void*, unsigned, int*, void**) { *m = (void*)0x30; return 0; }
int cuModuleGetFunction(void** f, void*, const char* name) {
  for (size_t i = 0; i < sizeof cc_names / sizeof cc_names[0]; i++)
    if (!strcmp(cc_names[i], name)) { *f = (void*)cc_kernels[i]; return 0; }
  return fake::fail(500, "CUDA_ERROR_NOT_FOUND: no such kernel");
}
int cuLaunchKernel(void* f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, unsigned shared, void* stream,
    void** params, void** extra) {
  STICKY;
  if (fake::launches++ == fake::fail_at) {
    if (fake::is_sticky(fake::fail_rc)) fake::sticky = fake::fail_rc;
    return fake::fail(fake::fail_rc, "an injected launch failure (numedge_fake_fail)");
  }
  int n = fake::nparams((void (*)(void**))f);
  if (n < 0 || gz != 1 || bz != 1 || extra) return fake::fail(1, "CUDA_ERROR_INVALID_VALUE: unknown function, a z dimension or extra");
  fake::Item it{(void (*)(void**))f, gx, gy, bx, by, shared, (uint32_t)n};
  for (int i = 0; i < n; i++) memcpy(&it.vals[i], params[i], 8); // parameters are copied at the call (at capture too)
  return fake::enqueue(it, stream);
}
int cuCtxSynchronize() { STICKY; return fake::legacy(); }
int cuGetErrorName(int rc, const char** s) {
  *s = rc == 0 ? "CUDA_SUCCESS" : rc == 1 ? "CUDA_ERROR_INVALID_VALUE" : rc == 2 ? "CUDA_ERROR_OUT_OF_MEMORY" : rc == 500 ? "CUDA_ERROR_NOT_FOUND"
    : rc == 100 ? "CUDA_ERROR_NO_DEVICE" : rc == 700 ? "CUDA_ERROR_ILLEGAL_ADDRESS" : rc == 906 ? "CUDA_ERROR_STREAM_CAPTURE_IMPLICIT" : rc == 901 ? "CUDA_ERROR_STREAM_CAPTURE_INVALIDATED" : "CUDA_ERROR_UNKNOWN";
  return 0;
}
int cuGetErrorString(int, const char** s) { *s = fake::last; return 0; }
int cuStreamBeginCapture_v2(void* stream, int mode) {
  if (!stream || fake::capturing || mode < 0 || mode > 2) return fake::fail(1, "CUDA_ERROR_INVALID_VALUE: capture of the legacy stream, or twice");
  fake::capturing = new fake::Graph();
  fake::invalidated = false;
  return 0;
}
int cuStreamEndCapture(void*, void** graph) {
  fake::Graph* g = fake::capturing;
  fake::capturing = nullptr;
  if (!g) return fake::fail(1, "CUDA_ERROR_INVALID_VALUE: no capture");
  if (fake::invalidated) { delete g; *graph = nullptr; return fake::fail(901, "CUDA_ERROR_STREAM_CAPTURE_INVALIDATED"); }
  *graph = g;
  return 0;
}
int cuGraphInstantiateWithFlags(void** exec, void* graph, unsigned long long) { *exec = new fake::Graph(*(fake::Graph*)graph); return 0; }
int cuGraphLaunch(void* exec, void*) {
  if (fake::capturing) return fake::legacy();
  for (const auto& it : ((fake::Graph*)exec)->items) if (int rc = fake::run(it)) return rc;
  return 0;
}
int cuGraphExecDestroy(void* exec) { delete (fake::Graph*)exec; return 0; }
int cuGraphDestroy(void* graph) { delete (fake::Graph*)graph; return 0; }
}
