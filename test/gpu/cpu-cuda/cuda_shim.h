// Just enough CUDA for kernels.cu to compile as host C++ and run on the CPU (runtime.cpp schedules it): one block
// at a time, each thread a fiber on one OS thread. So a static is exactly one block's shared memory, atomics need
// no atomicity, and a barrier or warp op is a rendezvous the scheduler resolves once every live fiber has arrived.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <math.h>

#define __global__
#define __device__
#define __launch_bounds__(...)
#define __forceinline__ inline
#define __restrict__ __restrict
// shared memory: statics in one section, which the scheduler fills with 0xff bytes (NaN, -1) before every block, as
// CUDA leaves it uninitialized: a kernel reading what its block has not written sees garbage, not the last block's
#define __shared__ static __attribute__((section("cc_shared")))
// dynamic shared memory (the launch's sharedBytes), filled the same way
extern unsigned char* cc_dynamic_shared;
#define NUMEDGE_DYNAMIC_SHARED(T, name) T* name = (T*)cc_dynamic_shared

struct cc_uint3 { unsigned int x, y, z; };
// set by the scheduler before it switches to a fiber (the switch clobbers memory, so kernels reload them)
extern cc_uint3 threadIdx, blockIdx, blockDim, gridDim;

void __syncthreads();
enum { CC_SHFL, CC_SHFL_XOR, CC_SHFL_DOWN, CC_BALLOT };
/** A warp-wide exchange: this lane offers `bits` (size bytes) and gets back what op picks (see runtime.cpp). */
uint64_t cc_warp(int op, unsigned mask, uint64_t bits, int size, int arg);

template <typename T> T cc_warp_t(int op, unsigned mask, T v, int arg) {
  static_assert(sizeof(T) <= 8, "warp ops move at most 8 bytes");
  uint64_t b = 0;
  memcpy(&b, &v, sizeof(T));
  b = cc_warp(op, mask, b, sizeof(T), arg);
  memcpy(&v, &b, sizeof(T));
  return v;
}
template <typename T> T __shfl_sync(unsigned mask, T v, int src) { return cc_warp_t(CC_SHFL, mask, v, src); }
template <typename T> T __shfl_xor_sync(unsigned mask, T v, int o) { return cc_warp_t(CC_SHFL_XOR, mask, v, o); }
template <typename T> T __shfl_down_sync(unsigned mask, T v, unsigned d) { return cc_warp_t(CC_SHFL_DOWN, mask, v, (int)d); }
inline unsigned __ballot_sync(unsigned mask, int pred) { return (unsigned)cc_warp(CC_BALLOT, mask, pred != 0, 4, 0); }
// a rendezvous of the warp's lanes, as __syncwarp is
inline void __syncwarp(unsigned mask = 0xffffffffu) { (void)__ballot_sync(mask, 0); }

inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz((unsigned)x); }
template <typename To, typename From> To cc_bits(From f) { static_assert(sizeof(To) == sizeof(From)); To t; memcpy(&t, &f, sizeof t); return t; }
inline float __int_as_float(int x) { return cc_bits<float>(x); }
inline float __uint_as_float(unsigned x) { return cc_bits<float>(x); }
inline int __float_as_int(float x) { return cc_bits<int>(x); }
inline unsigned __float_as_uint(float x) { return cc_bits<unsigned>(x); }
inline double __longlong_as_double(long long x) { return cc_bits<double>(x); }
inline long long __double_as_longlong(double x) { return cc_bits<long long>(x); }

// CUDA's integer min/max overloads for the types kernels.cu mixes; a new mix fails to compile rather than convert
#define CC_MINMAX(T) inline T min(T a, T b) { return a < b ? a : b; } inline T max(T a, T b) { return a > b ? a : b; }
CC_MINMAX(int)
CC_MINMAX(unsigned)
CC_MINMAX(long long)
CC_MINMAX(unsigned long long)
#undef CC_MINMAX

template <typename T> T atomicAdd(T* p, T v) { const T old = *p; *p = old + v; return old; }
template <typename T> T atomicMin(T* p, T v) { const T old = *p; *p = v < old ? v : old; return old; }
