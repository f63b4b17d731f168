// The CPU device under the fake libcuda.so.1 (libcuda.cpp; cpu-driver.ts builds them): "device memory" is malloc'd
// host memory, and a launch runs the grid's blocks one after another, each thread of a block a fiber on this OS thread (a 30-line x86-64 context switch, or ucontext
// elsewhere). A fiber runs until __syncthreads, a warp op, or its return; when every fiber has stopped, the scheduler
// resolves what can be (a warp whose live lanes all reached the same op, else a barrier every live thread reached),
// and reports what CUDA leaves undefined instead of guessing: lanes of a warp split between a warp op and a barrier,
// a warp op naming a lane that exited, different ops in one warp. Blocks, and the fibers within each pass, run in a
// shuffled order (seeded per launch: deterministic), so a kernel that relies on an order CUDA does not promise
// (between blocks, or between threads between barriers) has a chance to fail here as it may on a GPU.
#include "cuda_shim.h"
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>
#include <sys/mman.h>

cc_uint3 threadIdx, blockIdx, blockDim, gridDim;

namespace {
enum State { NEW, READY, AT_BARRIER, AT_WARP, EXITED };
struct Fiber {
  void* sp;
  char* stack;
  int state, op, size, arg;
  unsigned mask;
  uint64_t val, out;
};
constexpr size_t STACK = 64 << 10, GUARD = 4096;
void* sched_sp;
Fiber* cur;
void (*kernel)(void**);
void** kargs;
std::vector<Fiber> fibers(1024);
std::vector<char*> spare; // stacks of exited fibers, reused (a kernel without barriers runs every thread on one)
std::string err;
uint64_t rng;
bool shuffled;
unsigned next_rand() { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return (unsigned)(rng >> 11); }
void shuffle(std::vector<int>& v) { for (size_t i = v.size(); i > 1; i--) std::swap(v[i - 1], v[next_rand() % i]); }
} // namespace

#if defined(__x86_64__) && !defined(CC_UCONTEXT)
// cc_switch(save, to): push the callee-saved registers and the FP control words, store rsp in *save, load `to`, pop, ret.
extern "C" void cc_switch(void** save, void* to);
asm(R"(
.text
.globl cc_switch
.hidden cc_switch
.type cc_switch,@function
cc_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
.size cc_switch, .-cc_switch
)");
[[noreturn]] void fiber_main();
// a fresh stack as cc_switch leaves one: FP control words, six zero registers, then fiber_main as the return address
void* fiber_init(char* top) {
  uint64_t* s = (uint64_t*)top;
  s[-1] = 0;                     // fiber_main's own "return address": it never returns
  s[-2] = (uint64_t)&fiber_main; // 16-byte aligned slot, so fiber_main starts with rsp = 8 mod 16 as after a call
  for (int i = 3; i <= 8; i++) s[-i] = 0;
  s[-9] = 0x1F80 | (uint64_t)0x037F << 32; // default MXCSR, x87 control word
  return &s[-9];
}
#else
#include <ucontext.h>
// elsewhere (or with -DCC_UCONTEXT) ucontext (slower: a signal-mask syscall per switch); sp points at the fiber's ucontext
static ucontext_t sched_uc, fiber_uc[1024];
[[noreturn]] void fiber_main();
static void cc_switch(void** save, void* to) {
  ucontext_t* from = save == &sched_sp ? &sched_uc : (ucontext_t*)*save;
  *save = from;
  swapcontext(from, (ucontext_t*)to);
}
void* fiber_init(char* top) {
  ucontext_t* uc = &fiber_uc[cur - fibers.data()];
  getcontext(uc);
  uc->uc_stack.ss_sp = top - STACK;
  uc->uc_stack.ss_size = STACK;
  uc->uc_link = nullptr;
  makecontext(uc, (void (*)())fiber_main, 0);
  return uc;
}
#endif

[[noreturn]] void fiber_main() {
  kernel(kargs);
  cur->state = EXITED;
  cc_switch(&cur->sp, sched_sp);
  __builtin_unreachable();
}
static void wait(int state) {
  cur->state = state;
  cc_switch(&cur->sp, sched_sp);
}
void __syncthreads() { wait(AT_BARRIER); }
uint64_t cc_warp(int op, unsigned mask, uint64_t bits, int size, int arg) {
  Fiber& f = *cur;
  f.op = op; f.mask = mask; f.val = bits; f.size = size; f.arg = arg;
  wait(AT_WARP);
  return f.out;
}

static bool fail(const char* what, unsigned tid, unsigned lane = 0) {
  char b[256];
  snprintf(b, sizeof b, "%s (block (%u, %u), thread %u, lane %u)", what, blockIdx.x, blockIdx.y, tid, lane);
  err = b;
  return false;
}

// The warp at `base` (n lanes): if it holds a lane at a warp op, resolve the op or say why it never can. Sets *woke.
static bool resolve_warp(int base, int n, bool* woke) {
  Fiber* L = &fibers[base];
  int first = -1;
  for (int l = 0; l < n; l++) if (L[l].state == AT_WARP) { first = l; break; }
  if (first < 0) return true;
  const Fiber& a = L[first];
  for (int l = 0; l < n; l++) {
    if (L[l].state == AT_BARRIER) return fail("lanes of one warp wait at a warp op and at __syncthreads", base + l, l);
    if (L[l].state == AT_WARP && (L[l].op != a.op || L[l].mask != a.mask || L[l].size != a.size || (a.op != CC_SHFL && L[l].arg != a.arg)))
      return fail("lanes of one warp at different warp ops (op, mask, size or offset differ)", base + l, l);
  }
  for (int l = 0; l < 32; l++)
    if (a.mask >> l & 1 && (l >= n || L[l].state != AT_WARP)) return fail("a warp op's mask names a lane that exited or does not exist", base + first, l);
  uint64_t ballot = 0;
  for (int l = 0; l < n; l++) if (L[l].state == AT_WARP) ballot |= (uint64_t)(L[l].val != 0) << l;
  for (int l = 0; l < n; l++) {
    Fiber& f = L[l];
    if (f.state != AT_WARP) continue;
    if (!(a.mask >> l & 1)) return fail("a lane calls a warp op whose mask leaves it out", base + l, l);
    int src = a.op == CC_SHFL ? (f.arg & 31) : a.op == CC_SHFL_XOR ? (l ^ f.arg) : l + f.arg;
    if (src > 31) src = l; // past the warp: own value (shfl_down, xor with a large offset)
    if (a.op != CC_BALLOT && !(a.mask >> src & 1)) return fail("a shuffle reads a lane outside its mask", base + l, l);
    f.out = a.op == CC_BALLOT ? ballot : L[src].val;
  }
  for (int l = 0; l < n; l++) if (L[l].state == AT_WARP) L[l].state = READY;
  *woke = true;
  return true;
}

extern "C" char __start_cc_shared[] __attribute__((weak)), __stop_cc_shared[] __attribute__((weak)); // by the linker
unsigned char* cc_dynamic_shared; // the launch's dynamic shared memory (cc_launch)
static uint32_t dynamic_bytes;

static bool run_block(int n, std::vector<int>& order) {
  memset(__start_cc_shared, 0xff, __stop_cc_shared - __start_cc_shared);
  if (dynamic_bytes) memset(cc_dynamic_shared, 0xff, dynamic_bytes);
  for (int i = 0; i < n; i++) fibers[i].state = NEW;
  int live = n;
  for (;;) {
    if (shuffled) shuffle(order);
    for (int i : order) {
      Fiber& f = fibers[i];
      if (f.state == NEW) {
        if (spare.empty()) {
          char* m = (char*)mmap(nullptr, STACK + GUARD, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
          if (m == MAP_FAILED) { err = "no memory for a fiber stack"; return false; }
          mprotect(m, GUARD, PROT_NONE); // a stack overflow faults instead of writing over the next stack
          spare.push_back(m + GUARD);
        }
        f.stack = spare.back();
        spare.pop_back();
        cur = &f;
        f.sp = fiber_init(f.stack + STACK);
        f.state = READY;
      }
      if (f.state != READY) continue;
      threadIdx = {(unsigned)i % blockDim.x, (unsigned)i / blockDim.x, 0};
      cur = &f;
      cc_switch(&sched_sp, f.sp);
      if (f.state == EXITED) { spare.push_back(f.stack); live--; }
    }
    if (live == 0) return true;
    bool woke = false;
    for (int w = 0; w < n; w += 32) if (!resolve_warp(w, std::min(32, n - w), &woke)) return false;
    if (woke) continue;
    // every live fiber waits at a barrier (a warp op would have been resolved or reported)
    for (int i = 0; i < n; i++) if (fibers[i].state == AT_BARRIER) fibers[i].state = READY;
  }
}

// ---- "device memory": malloc'd, 256-byte aligned as cuMemAlloc, with guard bytes before and after each allocation
// (checked after every launch and at free: a kernel writing out of bounds is reported) and new memory filled with
// 0x7f bytes (f32 3.4e38, i32 2^31-ish: reading what nobody wrote shows). Under ASan (cpu-driver.ts:
// NUMEDGE_CUDA_CPU_ASAN=1) no guard bytes: its own redzones catch out-of-bounds reads as well as writes.
namespace {
#ifdef __SANITIZE_ADDRESS__
constexpr size_t RED = 0;
#else
constexpr size_t RED = 256;
#endif
constexpr unsigned char PAD = 0xa5, FILL = 0x7f;
std::map<uint64_t, size_t> allocs; // user address -> bytes
size_t tail(size_t bytes) { return RED ? (bytes + RED - 1) / RED * RED - bytes + RED : 0; }
bool intact(uint64_t p, size_t bytes) { // memcmp: this runs for every allocation after every launch
  static unsigned char pads[2 * 256];
  if (pads[0] != PAD) memset(pads, PAD, sizeof pads);
  const unsigned char* a = (unsigned char*)p;
  return memcmp(a - RED, pads, RED) == 0 && memcmp(a + bytes, pads, tail(bytes)) == 0;
}
// the allocation holding [p, p + bytes), or none
bool inside(uint64_t p, size_t bytes) {
  auto it = allocs.upper_bound(p);
  if (it == allocs.begin()) return false;
  --it;
  return p >= it->first && p + bytes <= it->first + it->second;
}
int oob(const char* what, uint64_t p, size_t bytes) {
  char b[160];
  snprintf(b, sizeof b, "%s: [0x%llx, +%zu) is not inside one allocation", what, (unsigned long long)p, bytes);
  err = b;
  return 1;
}
} // namespace

extern "C" {
int cc_alloc(uint64_t* out, uint64_t bytes) {
  void* v;
  if (posix_memalign(&v, 256, RED + bytes + tail(bytes))) { err = "out of memory"; return 2; }
  unsigned char* m = (unsigned char*)v;
  memset(m, PAD, RED);
  memset(m + RED, FILL, bytes);
  memset(m + RED + bytes, PAD, tail(bytes));
  *out = (uint64_t)(m + RED);
  allocs[*out] = bytes;
  return 0;
}
int cc_free(uint64_t p) {
  auto it = allocs.find(p);
  if (it == allocs.end()) { err = "free of an address that is no allocation"; return 1; }
  if (!intact(p, it->second)) { err = "an allocation's guard bytes were overwritten (a kernel wrote out of bounds)"; return 1; }
  allocs.erase(it);
  free((unsigned char*)p - RED);
  return 0;
}
int cc_htod(uint64_t dst, const void* src, uint64_t n) { if (!inside(dst, n)) return oob("htod", dst, n); memcpy((void*)dst, src, n); return 0; }
int cc_dtoh(void* dst, uint64_t src, uint64_t n) { if (!inside(src, n)) return oob("dtoh", src, n); memcpy(dst, (void*)src, n); return 0; }
int cc_dtod(uint64_t dst, uint64_t src, uint64_t n) {
  if (!inside(dst, n)) return oob("dtod", dst, n);
  if (!inside(src, n)) return oob("dtod", src, n);
  memmove((void*)dst, (void*)src, n);
  return 0;
}
int cc_memset(uint64_t dst, uint32_t v, uint64_t n) { if (!inside(dst, n)) return oob("memset", dst, n); memset((void*)dst, (int)v, n); return 0; }

// kernelParams as cuLaunchKernel takes them: params[i] points at argument i (copied before the launch starts)
int cc_launch(void (*fn)(void**), uint32_t gx, uint32_t gy, uint32_t bx, uint32_t by, uint32_t shared, void** params, uint32_t nparams, uint32_t seed) {
  if (gx == 0 || gy == 0 || gy > 65535 || bx == 0 || by == 0 || bx > 1024 || by > 1024 || bx * by > 1024 || nparams > 64 || shared > 48 * 1024) {
    err = "invalid launch configuration (grid, block, dynamic shared memory or argument count)";
    return 1;
  }
  uint64_t vals[64];
  void* args[64];
  for (uint32_t i = 0; i < nparams; i++) { memcpy(&vals[i], params[i], 8); args[i] = &vals[i]; }
  kernel = fn;
  kargs = args;
  rng = 0x9e3779b97f4a7c15ull ^ seed;
  shuffled = seed != 0;
  gridDim = {gx, gy, 1};
  blockDim = {bx, by, 1};
  const int n = (int)(bx * by);
  std::vector<int> blocks(gx * gy), order(n);
  for (size_t i = 0; i < blocks.size(); i++) blocks[i] = (int)i;
  for (int i = 0; i < n; i++) order[i] = i;
  if (shuffled) shuffle(blocks);
  // dynamic shared memory: the launch's bytes, then guard bytes to the end of a buffer of 48 KiB + 64 KiB (any write
  // up to 112 KiB from its start, as a row stride mistaken for the largest row's would make, is reported)
  static std::vector<unsigned char> dyn(112 * 1024);
  memset(dyn.data() + shared, PAD, dyn.size() - shared);
  cc_dynamic_shared = dyn.data();
  dynamic_bytes = shared;
  for (int b : blocks) {
    blockIdx = {(unsigned)b % gx, (unsigned)b / gx, 0};
    if (!run_block(n, order)) return 1;
  }
  // guard bytes a kernel overwrote are reported, then restored: the next launch (another test's) starts clean
  bool wrote_outside = false;
  for (auto& [p, bytes] : allocs)
    if (!intact(p, bytes)) {
      wrote_outside = true;
      memset((unsigned char*)p - RED, PAD, RED);
      memset((unsigned char*)p + bytes, PAD, tail(bytes));
    }
  if (wrote_outside) { err = "a kernel wrote outside an allocation (its guard bytes changed)"; return 1; }
  for (size_t i = shared; i < dyn.size(); i++)
    if (dyn[i] != PAD) { err = "a kernel wrote outside its dynamic shared memory"; return 1; }
  return 0;
}
}
