// numedge CUDA kernels, compiled at run time by NVRTC for the device (or shipped as compute_75 PTX, see
// kernels.ptx). One CUDA block per row for the softmax family; every sum and every exp in f64, rounded once to
// the output type, so the bounds of the wasm kernels hold (softmax relative 1e-6 for outputs >= 1e-30, f64
// 1e-12). Row rules as on every backend: a row holding NaN or +Infinity, or only -Infinity, comes out all NaN.
// No headers: NVRTC without the CUDA toolkit has none.
#define NUMEDGE_INF __int_as_float(0x7f800000)
#define NUMEDGE_NAN __int_as_float(0x7fffffff)
#define NUMEDGE_DNAN __longlong_as_double(0x7ff8000000000000ll)

// Block-wide reductions (blockDim.x a multiple of 32, at most 1024). Every thread gets the result.
__device__ double block_sum(double v) {
  __shared__ double part[32];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int w = threadIdx.x >> 5, l = threadIdx.x & 31, nw = blockDim.x >> 5;
  __syncthreads();
  if (l == 0) part[w] = v;
  __syncthreads();
  v = l < nw ? part[l] : 0.0;
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// max with NaN winning (so a NaN row is seen), -Infinity as the identity
__device__ double nan_max(double a, double b) { return (a != a || b != b) ? NUMEDGE_DNAN : (a > b ? a : b); }

__device__ double block_max(double v) {
  __shared__ double part[32];
  for (int o = 16; o > 0; o >>= 1) v = nan_max(v, __shfl_xor_sync(0xffffffffu, v, o));
  const int w = threadIdx.x >> 5, l = threadIdx.x & 31, nw = blockDim.x >> 5;
  __syncthreads();
  if (l == 0) part[w] = v;
  __syncthreads();
  v = l < nw ? part[l] : -(double)NUMEDGE_INF;
  for (int o = 16; o > 0; o >>= 1) v = nan_max(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// s(x) = x + 1 (x >= 0), 1 / (1 - x) (x < 0): StableMax's positive map.
__device__ double stable_s(double x) { return x >= 0 ? x + 1.0 : 1.0 / (1.0 - x); }
// log s(x) = log1p(x) (x >= 0), -log1p(-x) (x < 0)
__device__ double stable_log_s(double x) { return x >= 0 ? log1p(x) : -log1p(-x); }

// mode 0 softmax, 1 logSoftmax: y = exp((x - max) * scale) / sum, or (x - max) * scale - log sum.
template <typename T>
__device__ void softmax_row(const T* __restrict__ x, T* __restrict__ y, int cols, double scale, int log_out) {
  const size_t r = blockIdx.x;
  const T* xr = x + r * cols;
  T* yr = y + r * cols;
  double m = -(double)NUMEDGE_INF;
  for (int i = threadIdx.x; i < cols; i += blockDim.x) m = nan_max(m, (double)xr[i]);
  m = block_max(m);
  double s = 0.0;
  for (int i = threadIdx.x; i < cols; i += blockDim.x) s += exp(((double)xr[i] - m) * scale);
  s = block_sum(s);
  // NaN max, +Infinity max (x - max is NaN there) and an all -Infinity row (max - max is NaN) make s NaN
  const bool bad = !(s > 0.0 && s < (double)NUMEDGE_INF) || m != m;
  if (log_out) {
    const double ls = log(s);
    for (int i = threadIdx.x; i < cols; i += blockDim.x) yr[i] = bad ? (T)NUMEDGE_DNAN : (T)(((double)xr[i] - m) * scale - ls);
  } else {
    const double inv = 1.0 / s;
    for (int i = threadIdx.x; i < cols; i += blockDim.x) yr[i] = bad ? (T)NUMEDGE_DNAN : (T)(exp(((double)xr[i] - m) * scale) * inv);
  }
}

// mode 0 stablemax, 1 logStablemax: y = s(x) / S, or log s(x) - log S.
template <typename T>
__device__ void stablemax_row(const T* __restrict__ x, T* __restrict__ y, int cols, int log_out) {
  const size_t r = blockIdx.x;
  const T* xr = x + r * cols;
  T* yr = y + r * cols;
  double s = 0.0;
  for (int i = threadIdx.x; i < cols; i += blockDim.x) s += stable_s((double)xr[i]);
  s = block_sum(s);
  const bool bad = !(s > 0.0 && s < (double)NUMEDGE_INF); // NaN, +Infinity, or only -Infinity (S = 0)
  const double ls = log(s);
  for (int i = threadIdx.x; i < cols; i += blockDim.x) {
    const double v = (double)xr[i];
    yr[i] = bad ? (T)NUMEDGE_DNAN : (T)(log_out ? stable_log_s(v) - ls : stable_s(v) / s);
  }
}

extern "C" __global__ void softmax_f32(const float* x, float* y, int cols, double scale) { softmax_row<float>(x, y, cols, scale, 0); }
extern "C" __global__ void softmax_f64(const double* x, double* y, int cols, double scale) { softmax_row<double>(x, y, cols, scale, 0); }
extern "C" __global__ void logsoftmax_f32(const float* x, float* y, int cols, double scale) { softmax_row<float>(x, y, cols, scale, 1); }
extern "C" __global__ void logsoftmax_f64(const double* x, double* y, int cols, double scale) { softmax_row<double>(x, y, cols, scale, 1); }
extern "C" __global__ void stablemax_f32(const float* x, float* y, int cols) { stablemax_row<float>(x, y, cols, 0); }
extern "C" __global__ void stablemax_f64(const double* x, double* y, int cols) { stablemax_row<double>(x, y, cols, 0); }
extern "C" __global__ void logstablemax_f32(const float* x, float* y, int cols) { stablemax_row<float>(x, y, cols, 1); }
extern "C" __global__ void logstablemax_f64(const double* x, double* y, int cols) { stablemax_row<double>(x, y, cols, 1); }

// Elementwise, grid-stride. relu: y = max(x, 0) with NaN kept and -0 -> +0; backward: dx = dy where x > 0.
template <typename T>
__device__ void relu_any(const T* x, T* y, long long n) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    const T v = x[i];
    y[i] = v < (T)0 ? (T)0 : v + (T)0;
  }
}
template <typename T>
__device__ void relu_backward_any(const T* dy, const T* x, T* dx, long long n) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
    dx[i] = x[i] > (T)0 ? dy[i] : (T)0;
}
extern "C" __global__ void relu_f32(const float* x, float* y, long long n) { relu_any<float>(x, y, n); }
extern "C" __global__ void relu_f64(const double* x, double* y, long long n) { relu_any<double>(x, y, n); }
extern "C" __global__ void relu_backward_f32(const float* dy, const float* x, float* dx, long long n) { relu_backward_any<float>(dy, x, dx, n); }
extern "C" __global__ void relu_backward_f64(const double* dy, const double* x, double* dx, long long n) { relu_backward_any<double>(dy, x, dx, n); }
