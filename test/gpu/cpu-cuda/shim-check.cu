// Kernels that check the CPU device itself (test/cuda-cpu.test.ts): warp ops, barriers and shared memory as CUDA
// defines them, and misuse that CUDA leaves undefined, which the device must report rather than run.

// out[6 t ..] per thread t: shfl_xor by 5, shfl from lane 37 (= 5 mod 32), shfl_down by 7 (own value past lane 31),
// a ballot, a 64-bit shfl_xor, and a neighbour's value through shared memory after a barrier.
extern "C" __global__ void warp_ops(long long* out) {
  __shared__ int s[64];
  const int l = threadIdx.x & 31, t = blockIdx.x * blockDim.x + threadIdx.x;
  long long* o = out + 6LL * t;
  o[0] = __shfl_xor_sync(0xffffffffu, t, 5);
  o[1] = __shfl_sync(0xffffffffu, t, 37);
  o[2] = __shfl_down_sync(0xffffffffu, t, 7);
  o[3] = __ballot_sync(0xffffffffu, l % 3 == 0);
  o[4] = __shfl_xor_sync(0xffffffffu, (long long)t << 33, 1);
  s[threadIdx.x] = t;
  __syncthreads();
  o[5] = s[(threadIdx.x + 1) % blockDim.x];
}

// threads that return before a barrier count as arrived (a grid-stride tail)
extern "C" __global__ void exit_then_barrier(int* out) {
  __shared__ int s;
  if (threadIdx.x >= 40) return;
  if (threadIdx.x == 0) s = 7;
  __syncthreads();
  out[threadIdx.x] = s;
}

// shared memory is garbage (here NaN) until the block writes it, not the last block's values
extern "C" __global__ void shared_unwritten(float* out) {
  __shared__ float s;
  if (blockIdx.x == 0 && threadIdx.x == 0) s = 1.f;
  __syncthreads();
  if (threadIdx.x == 0) out[blockIdx.x] = s;
}

// misuse: a lane exits, then its warp shuffles with a full mask
extern "C" __global__ void shfl_after_exit(int* out) {
  if (threadIdx.x == 3) return;
  out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1, 1);
}
// misuse: half a warp at a barrier, the other half at a shuffle
extern "C" __global__ void divergent_barrier(int* out) {
  if (threadIdx.x < 16) __syncthreads();
  else out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1, 1);
}
// misuse: a write past the end of an allocation of n ints
extern "C" __global__ void write_past(int* out, int n) { out[n + threadIdx.x] = 1; }

// dynamic shared memory: the launch's bytes, garbage (0xff) until written, a write past them reported
extern "C" __global__ void dynamic_shared(int* out, int n) {
  NUMEDGE_DYNAMIC_SHARED(int, s);
  if (threadIdx.x == 0) out[32] = s[0];
  __syncthreads();
  s[n - 1 - threadIdx.x] = threadIdx.x;
  __syncthreads();
  out[threadIdx.x] = s[threadIdx.x];
}
