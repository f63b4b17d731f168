// numedge CUDA kernels, compiled at run time by NVRTC for the device (or shipped as compute_75 PTX, see
// kernels.ptx). One CUDA block per row for the softmax family; sums in f64, exps in f64 for f64 rows and by the
// wasm kernels' accurate-argument f32 exp for f32 rows (exp_shifted_f32), each output rounded once, so the bounds of
// the wasm kernels hold (softmax relative 1e-6 for outputs >= 1e-30, f64 1e-12). Row rules as on every backend: a
// row holding NaN or +Infinity, or only -Infinity, comes out all NaN.
// No headers: NVRTC without the CUDA toolkit has none.
#define NUMEDGE_INF __int_as_float(0x7f800000)
#define NUMEDGE_NAN __int_as_float(0x7fffffff)
#define NUMEDGE_DNAN __longlong_as_double(0x7ff8000000000000ll)
// name: the launch's dynamic shared memory (its sharedMemBytes) as a T array
#ifndef NUMEDGE_DYNAMIC_SHARED
#define NUMEDGE_DYNAMIC_SHARED(T, name) extern __shared__ __align__(16) unsigned char name##_bytes[]; T* name = (T*)name##_bytes
#endif

// i / d for an element index i >= 0 and d > 0: in 32 bits below 2^32 (a few instructions; a 64-bit division is a
// call of ~70), which per-element block lookups (absmax[i / bs]) would otherwise pay on every element
__device__ __forceinline__ long long idiv(long long i, int d) { return i < 0x100000000LL ? (long long)((unsigned)i / (unsigned)d) : i / d; }

// Block-wide reductions (blockDim.x a multiple of 32, at most 1024). Every thread gets the result.
template <typename T>
__device__ T block_sum_t(T v) {
  __shared__ T part[32];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int w = threadIdx.x >> 5, l = threadIdx.x & 31, nw = blockDim.x >> 5;
  __syncthreads();
  if (l == 0) part[w] = v;
  __syncthreads();
  v = l < nw ? part[l] : (T)0;
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ double block_sum(double v) { return block_sum_t<double>(v); }
// Inclusive prefix sum of x over the warp's lanes (all 32 call it)
__device__ int warp_scan_inclusive(int x) {
  const int l = threadIdx.x & 31;
  for (int o = 1; o < 32; o <<= 1) { const int y = __shfl_sync(0xffffffffu, x, l >= o ? l - o : l); if (l >= o) x += y; }
  return x;
}
// Exclusive prefix sum of v in thread order: a scan in each warp, then one over the warps' totals (no thread walks
// the block); *total gets the block's sum. Ends with a barrier, so the caller may reuse shared memory at once.
__device__ int block_scan_exclusive(int v, int* total) {
  __shared__ int warp_incl[32];
  const int w = threadIdx.x >> 5, l = threadIdx.x & 31, nw = blockDim.x >> 5;
  const int x = warp_scan_inclusive(v);
  __syncthreads(); // warp_incl's last readers are done
  if (l == 31) warp_incl[w] = x;
  __syncthreads();
  if (w == 0) warp_incl[l] = warp_scan_inclusive(l < nw ? warp_incl[l] : 0);
  __syncthreads();
  *total = warp_incl[nw - 1];
  const int r = x - v + (w > 0 ? warp_incl[w - 1] : 0);
  __syncthreads();
  return r;
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
template <typename T> __device__ T stable_s(T x) { return x >= 0 ? x + (T)1 : (T)1 / ((T)1 - x); }
// log s(x) = log1p(x) (x >= 0), -log1p(-x) (x < 0)
__device__ double stable_log_s(double x) { return x >= 0 ? log1p(x) : -log1p(-x); }

// exp for x <= 0 in f32: the wasm kernels' rr2-p5 (XNNPACK) operation for operation (no FMA: --fmad=false),
// flushed to 0 below -87.34. The polynomial: exp(t) - 1 ~ t * p(t) for |t| <= ln2/2.
__device__ float rr2p5_poly(float t) {
  float p = __int_as_float(0x3C07CFCE) * t + __int_as_float(0x3D2B9D0D);
  p = p * t + __int_as_float(0x3E2AAD40);
  p = p * t + __int_as_float(0x3EFFFEE3);
  return p * t + __int_as_float(0x3F7FFFFB);
}
#define RR2P5_CUTOFF __int_as_float(0xC2AEAC4F) // -87.33654

// exp(d + c) for d <= 0 and a small correction c (|c| <= ulp(d)) added after the range reduction: asm/exp.ts's expc_f32
__device__ float expc_rr2p5(float d, float c) {
  const float MAGIC = __int_as_float(0x4B40007F); // 1.5 * 2^23 + 127: rounds and pre-biases n
  float n = d * __int_as_float(0x3FB8AA3B) + MAGIC;
  const float s = __int_as_float(__float_as_int(n) << 23);
  n = n - MAGIC;
  float t = n * __int_as_float(0xBF317200) + d; // -ln2, hi and lo
  t = n * __int_as_float(0xB5BFBE8E) + t;
  t = t + c;
  const float p = rr2p5_poly(t);
  t = t * s;
  const float f = t * p + s;
  return d < RR2P5_CUTOFF ? 0.f : f;
}
// asm/exp.ts's exp_f32, bit for bit: adding c = 0 changes only a -0 t, which t * p + s absorbs
__device__ float exp_rr2p5(float x) { return expc_rr2p5(x, 0.f); }

// exp((x - m) * scale) of an f32 x (m: the row's max, an f32 value; x <= m) without f64 exp, the wasm kernels'
// scalar twins: at scale 1, x - m in f32 with its rounding error recovered by TwoSum and fed into the reduced
// argument (expsub_f32); at any other scale the reduction in f64 (expscaled_f32). 0 below -87.34 and for -Infinity,
// NaN for NaN. Within 2.3 ulp + 1e-8 relative of exp: what keeps softmax inside 1e-6 for outputs >= 1e-30.
__device__ float exp_shifted_f32(float x, float m, double scale) {
  if (scale == 1.0) {
    const float nm = -m, d = x + nm, bb = d - x;
    return expc_rr2p5(d, (x - (d - bb)) + (nm - bb));
  }
  const double MAGIC64 = 6755399441055744.0, LOG2E64 = 1.4426950408889634, LN2_64 = 0.6931471805599453;
  const double z = ((double)x - (double)m) * scale, b = z * LOG2E64 + MAGIC64;
  float t = (float)(z - (b - MAGIC64) * LN2_64);
  const float s = __uint_as_float(((unsigned)__double_as_longlong(b) + 127u) << 23); // b's low word holds n
  const float p = rr2p5_poly(t);
  t = t * s;
  const float f = t * p + s;
  return z < (double)RR2P5_CUTOFF ? 0.f : f;
}
// the same for the f64 kernels: exp in f64
__device__ double exp_shifted(double x, double m, double scale) { return exp((x - m) * scale); }
__device__ double exp_shifted(float x, double m, double scale) { return (double)exp_shifted_f32(x, (float)m, scale); }

// A row of up to ROW_REGS * blockDim values is read once into registers (ROW_REGS a thread, slot q holding element
// threadIdx.x + q * blockDim.x): one read and one write of memory whatever the algorithm, each exp taken once.
#define ROW_REGS(T) (sizeof(T) == 4 ? 16 : 8)
template <typename T>
__device__ void softmax_row_regs(const T* xr, T* yr, int cols, double scale, int log_out) {
  constexpr int V = ROW_REGS(T);
  T v[V], mx = -(T)NUMEDGE_INF;
  bool nan = false;
#pragma unroll
  for (int q = 0; q < V; q++) {
    const int i = threadIdx.x + q * blockDim.x;
    v[q] = i < cols ? xr[i] : -(T)NUMEDGE_INF;
    if (v[q] != v[q]) nan = true;
    else if (v[q] > mx) mx = v[q];
  }
  const double m = block_max(nan ? NUMEDGE_DNAN : (double)mx);
  double s = 0.0;
  if (m == m && m < (double)NUMEDGE_INF) // else the row is bad: skip the exps
#pragma unroll
    for (int q = 0; q < V; q++)
      if (threadIdx.x + q * blockDim.x < cols) {
        const double e = exp_shifted(v[q], m, scale);
        s += e;
        if (!log_out) v[q] = (T)e; // exact: an f32 row's exps are f32 values
      }
  s = block_sum(s);
  const bool bad = !(s > 0.0 && s < (double)NUMEDGE_INF) || m != m; // as softmax_row
  const double ls = log_out ? log(s) : 0.0, inv = 1.0 / s;
#pragma unroll
  for (int q = 0; q < V; q++) {
    const int i = threadIdx.x + q * blockDim.x;
    if (i < cols) yr[i] = bad ? (T)NUMEDGE_DNAN : (T)(log_out ? ((double)v[q] - m) * scale - ls : (double)v[q] * inv);
  }
}

// Dukhan & Ablavatski's pass over xr[0, n) in one read: each thread a running max, its sum rescaled when the max
// grows (the only f64 exp), then the block's max m (NaN if any element is NaN; returned) and s = the sum of
// exp((x - m) * scale) (a thread that saw no finite value adds 0; NaN or 0 where m is not finite).
template <typename T>
__device__ double online_max_sum(const T* xr, int n, double scale, double& s) {
  double m = -(double)NUMEDGE_INF;
  bool nan = false;
  s = 0.0;
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    const double v = (double)xr[i];
    if (v != v) nan = true;
    else if (v > m) { s = s * exp((m - v) * scale) + 1.0; m = v; }
    else if (v > -(double)NUMEDGE_INF) s += exp_shifted(xr[i], m, scale); // -Infinity adds 0
  }
  const double mt = m;
  m = block_max(nan ? NUMEDGE_DNAN : m);
  s = block_sum(s == 0.0 ? 0.0 : s * exp((mt - m) * scale));
  return m;
}

// Rows too long for one block's registers, and too few to fill the GPU a block each: P blocks a row (block b: row
// b / P, part b % P of ceil(cols / P) columns; P at most 256, so combining the parts stays cheap), two kernels.
// softmax_part: the part's max m_p (NaN if it holds a NaN) and s_p = sum exp((x - m_p) scale) by online_max_sum,
// into part[2b, 2b + 1]. softmax_finish: each block combines its
// row's P pairs (m = max m_p, s = sum of s_p exp((m_p - m) scale) over the s_p > 0; the same fixed tree in every block
// of the row) and writes its part as softmax_row does, reading x again. stablemax_part / _finish: S = the sum of the
// parts' sums.
__device__ void part_of(int cols, int P, int& r, long long& c0, int& n) {
  const long long L = ((long long)cols + P - 1) / P;
  r = blockIdx.x / P;
  c0 = (blockIdx.x % P) * L;
  n = (int)max(0ll, min((long long)cols - c0, L));
}
template <typename T>
__device__ void softmax_part_any(const T* x, int cols, int P, double scale, double* part) {
  int r, n;
  long long c0;
  part_of(cols, P, r, c0, n);
  double s;
  const double m = online_max_sum(x + (size_t)r * cols + c0, n, scale, s);
  if (threadIdx.x == 0) { part[2 * (size_t)blockIdx.x] = m; part[2 * (size_t)blockIdx.x + 1] = s; }
}
template <typename T>
__device__ void softmax_finish_any(const T* x, T* y, int cols, int P, double scale, int log_out, const double* part) {
  int r, n;
  long long c0;
  part_of(cols, P, r, c0, n);
  const double* pr = part + 2 * (size_t)r * P;
  double m = -(double)NUMEDGE_INF;
  for (int j = threadIdx.x; j < P; j += blockDim.x) m = nan_max(m, pr[2 * j]);
  m = block_max(m);
  double s = 0.0;
  if (m > -(double)NUMEDGE_INF && m < (double)NUMEDGE_INF)
    for (int j = threadIdx.x; j < P; j += blockDim.x) if (pr[2 * j + 1] > 0.0) s += pr[2 * j + 1] * exp((pr[2 * j] - m) * scale);
  s = block_sum(s);
  const bool bad = !(s > 0.0 && s < (double)NUMEDGE_INF) || m != m; // as softmax_row
  const double ls = log_out ? log(s) : 0.0, inv = 1.0 / s;
  const T* xr = x + (size_t)r * cols + c0;
  T* yr = y + (size_t)r * cols + c0;
  for (int i = threadIdx.x; i < n; i += blockDim.x)
    yr[i] = bad ? (T)NUMEDGE_DNAN : (T)(log_out ? ((double)xr[i] - m) * scale - ls : exp_shifted(xr[i], m, scale) * inv);
}
template <typename T>
__device__ void stablemax_part_any(const T* x, int cols, int P, double* part) {
  int r, n;
  long long c0;
  part_of(cols, P, r, c0, n);
  const T* xr = x + (size_t)r * cols + c0;
  double s = 0.0;
  for (int i = threadIdx.x; i < n; i += blockDim.x) s += stable_s((double)xr[i]);
  s = block_sum(s);
  if (threadIdx.x == 0) part[2 * (size_t)blockIdx.x + 1] = s;
}
template <typename T>
__device__ void stablemax_finish_any(const T* x, T* y, int cols, int P, int log_out, const double* part) {
  int r, n;
  long long c0;
  part_of(cols, P, r, c0, n);
  const double* pr = part + 2 * (size_t)r * P;
  double s = 0.0;
  for (int j = threadIdx.x; j < P; j += blockDim.x) s += pr[2 * j + 1];
  s = block_sum(s);
  const bool bad = !(s > 0.0 && s < (double)NUMEDGE_INF);
  const double ls = log(s);
  const T* xr = x + (size_t)r * cols + c0;
  T* yr = y + (size_t)r * cols + c0;
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    const double v = (double)xr[i];
    yr[i] = bad ? (T)NUMEDGE_DNAN : (T)(log_out ? stable_log_s(v) - ls : stable_s(v) / s);
  }
}
extern "C" __global__ void softmax_part_f32(const float* x, int cols, int P, double scale, double* part) { softmax_part_any<float>(x, cols, P, scale, part); }
extern "C" __global__ void softmax_part_f64(const double* x, int cols, int P, double scale, double* part) { softmax_part_any<double>(x, cols, P, scale, part); }
extern "C" __global__ void softmax_finish_f32(const float* x, float* y, int cols, int P, double scale, int log_out, const double* part) { softmax_finish_any<float>(x, y, cols, P, scale, log_out, part); }
extern "C" __global__ void softmax_finish_f64(const double* x, double* y, int cols, int P, double scale, int log_out, const double* part) { softmax_finish_any<double>(x, y, cols, P, scale, log_out, part); }
extern "C" __global__ void stablemax_part_f32(const float* x, int cols, int P, double* part) { stablemax_part_any<float>(x, cols, P, part); }
extern "C" __global__ void stablemax_part_f64(const double* x, int cols, int P, double* part) { stablemax_part_any<double>(x, cols, P, part); }
extern "C" __global__ void stablemax_finish_f32(const float* x, float* y, int cols, int P, int log_out, const double* part) { stablemax_finish_any<float>(x, y, cols, P, log_out, part); }
extern "C" __global__ void stablemax_finish_f64(const double* x, double* y, int cols, int P, int log_out, const double* part) { stablemax_finish_any<double>(x, y, cols, P, log_out, part); }

// mode 0 softmax, 1 logSoftmax: y = exp((x - max) * scale) / sum, or (x - max) * scale - log sum. y may be x (in place).
// A row that fits in registers: softmax_row_regs. Longer rows: three passes over x (max, sum, write), or two (twopass,
// Dukhan & Ablavatski: each thread keeps a running max and rescales its sum when the max grows; the block combines
// the threads' sums at the row's max), one read fewer.
template <typename T>
__device__ void softmax_row(const T* x, T* y, int cols, double scale, int log_out, int twopass) {
  const size_t r = blockIdx.x;
  const T* xr = x + r * cols;
  T* yr = y + r * cols;
  if (cols <= ROW_REGS(T) * (int)blockDim.x) return softmax_row_regs<T>(xr, yr, cols, scale, log_out);
  double m = -(double)NUMEDGE_INF, s = 0.0;
  if (twopass) m = online_max_sum(xr, cols, scale, s);
  else {
    T mx = -(T)NUMEDGE_INF;
    bool nan = false;
    for (int i = threadIdx.x; i < cols; i += blockDim.x) { const T v = xr[i]; if (v != v) nan = true; else if (v > mx) mx = v; }
    m = block_max(nan ? NUMEDGE_DNAN : (double)mx);
    if (m == m && m < (double)NUMEDGE_INF) // else the row is bad: skip the exps
      for (int i = threadIdx.x; i < cols; i += blockDim.x) s += exp_shifted(xr[i], m, scale);
    s = block_sum(s);
  }
  // NaN max, +Infinity max (x - max is NaN there, or no exps were taken) and an all -Infinity row (max - max is NaN)
  // make s NaN or 0
  const bool bad = !(s > 0.0 && s < (double)NUMEDGE_INF) || m != m;
  if (log_out) {
    const double ls = log(s);
    for (int i = threadIdx.x; i < cols; i += blockDim.x) yr[i] = bad ? (T)NUMEDGE_DNAN : (T)(((double)xr[i] - m) * scale - ls);
  } else {
    const double inv = 1.0 / s;
    for (int i = threadIdx.x; i < cols; i += blockDim.x) yr[i] = bad ? (T)NUMEDGE_DNAN : (T)(exp_shifted(xr[i], m, scale) * inv);
  }
}

// mode 0 stablemax, 1 logStablemax: y = s(x) / S, or log s(x) - log S. Two passes over x, or one into registers.
template <typename T>
__device__ void stablemax_row(const T* x, T* y, int cols, int log_out) {
  const size_t r = blockIdx.x;
  const T* xr = x + r * cols;
  T* yr = y + r * cols;
  if (cols <= ROW_REGS(T) * (int)blockDim.x) { // the row read once, into registers (as softmax_row_regs)
    constexpr int V = ROW_REGS(T);
    T v[V];
    double s = 0.0;
#pragma unroll
    for (int q = 0; q < V; q++) {
      const int i = threadIdx.x + q * blockDim.x;
      v[q] = i < cols ? xr[i] : (T)0;
      if (i < cols) s += stable_s((double)v[q]);
    }
    s = block_sum(s);
    const bool bad = !(s > 0.0 && s < (double)NUMEDGE_INF);
    const double ls = log(s);
#pragma unroll
    for (int q = 0; q < V; q++) {
      const int i = threadIdx.x + q * blockDim.x;
      if (i < cols) yr[i] = bad ? (T)NUMEDGE_DNAN : (T)(log_out ? stable_log_s((double)v[q]) - ls : stable_s((double)v[q]) / s);
    }
    return;
  }
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

extern "C" __global__ void __launch_bounds__(1024) softmax_f32(const float* x, float* y, int cols, double scale, int twopass) { softmax_row<float>(x, y, cols, scale, 0, twopass); }
// (1024, 1): with the bare maximum, ptxas 13.0 for sm_90 held softmax_f64 to 32 registers and spilled
extern "C" __global__ void __launch_bounds__(1024, 1) softmax_f64(const double* x, double* y, int cols, double scale, int twopass) { softmax_row<double>(x, y, cols, scale, 0, twopass); }
extern "C" __global__ void __launch_bounds__(1024) logsoftmax_f32(const float* x, float* y, int cols, double scale) { softmax_row<float>(x, y, cols, scale, 1, 0); }
extern "C" __global__ void __launch_bounds__(1024) logsoftmax_f64(const double* x, double* y, int cols, double scale) { softmax_row<double>(x, y, cols, scale, 1, 0); }
extern "C" __global__ void __launch_bounds__(1024) stablemax_f32(const float* x, float* y, int cols) { stablemax_row<float>(x, y, cols, 0); }
extern "C" __global__ void __launch_bounds__(1024) stablemax_f64(const double* x, double* y, int cols) { stablemax_row<double>(x, y, cols, 0); }
extern "C" __global__ void __launch_bounds__(1024) logstablemax_f32(const float* x, float* y, int cols) { stablemax_row<float>(x, y, cols, 1); }
extern "C" __global__ void __launch_bounds__(1024) logstablemax_f64(const double* x, double* y, int cols) { stablemax_row<double>(x, y, cols, 1); }

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

// AdamW, PyTorch's op order (as the wasm kernels): w *= decay; m = lerp(m, g, lw); v = v*b2 + (omb2*g)*g;
// w += (ns*m) / (sqrt(v)/bc + eps). Compiled with --fmad=false, so every operation rounds as the wasm one:
// bit-identical. f32: the scalars arrive already rounded to f32 (lwc = f32(1 - f32(lerpW)) as ATen's opmath).
template <typename T>
__device__ void adamw_any(T* w, const T* g, T* m, T* v, long long n, T decay, int do_decay, T lw, T lwc, int small, T b2, T omb2, T bc, T eps, T ns) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    T wv = w[i];
    if (do_decay) wv = wv * decay;
    const T gv = g[i];
    T mv = m[i];
    const T d = gv - mv;
    mv = small ? mv + lw * d : gv - d * lwc;
    T vv = v[i] * b2;
    vv = vv + (omb2 * gv) * gv;
    const T den = sqrt(vv) / bc + eps;
    w[i] = wv + (ns * mv) / den;
    m[i] = mv;
    v[i] = vv;
  }
}
extern "C" __global__ void adamw_f32(float* w, const float* g, float* m, float* v, long long n, float decay, int do_decay,
    float lw, float lwc, int small, float b2, float omb2, float bc, float eps, float ns) { adamw_any<float>(w, g, m, v, n, decay, do_decay, lw, lwc, small, b2, omb2, bc, eps, ns); }
extern "C" __global__ void adamw_f64(double* w, const double* g, double* m, double* v, long long n, double decay, int do_decay,
    double lw, double lwc, int small, double b2, double omb2, double bc, double eps, double ns) { adamw_any<double>(w, g, m, v, n, decay, do_decay, lw, lwc, small, b2, omb2, bc, eps, ns); }

// out[r, c] = w[idx[r*per], c] + w[idx[r*per+1], c] + ... in that order (the wasm kernels' additions; f64 starts
// from 0, as asm's embsum_f64).
template <typename T>
__device__ void embsum_any(const T* w, const int* idx, T* out, int rows, int cols, int per, bool from_zero) {
  const long long total = (long long)rows * cols;
  for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < total; e += (long long)gridDim.x * blockDim.x) {
    const long long r = idiv(e, cols), c = e - r * cols;
    const int* ip = idx + r * per;
    T s = from_zero ? (T)0 : w[(long long)ip[0] * cols + c];
    for (int j = from_zero ? 0 : 1; j < per; j++) s = s + w[(long long)ip[j] * cols + c];
    out[e] = s;
  }
}
extern "C" __global__ void embsum_f32(const float* w, const int* idx, float* out, int rows, int cols, int per) { embsum_any<float>(w, idx, out, rows, cols, per, false); }
extern "C" __global__ void embsum_f64(const double* w, const int* idx, double* out, int rows, int cols, int per) { embsum_any<double>(w, idx, out, rows, cols, per, true); }

// dw[v, c] += dout[r, c] for every (r, j) with idx[r*per + j] = v, in (r, j) order (the wasm kernel's additions:
// bit-identical, deterministic, no float atomics). Two ways to find a row's matches, both launched with 256 threads:
// - embsum_backward (small vocab x indices, grok's): one block per vocabulary row reads the indices 1024 at a time,
//   lists the matches in order in shared memory (ballot and popc), then each thread adds them into its columns, held
//   in registers across rounds: O(vocab * n / 1024) rounds, in one launch.
// - a vocabulary's worth (an LM's): the positions sorted by index with a stable radix sort (radix_hist, the scan
//   kernels, radix_scatter: 8 bits a pass), so each row's matches lie together in position order; the indices
//   counted per row (emb_count) and scanned give where each row's run starts; one block per row adds its run
//   (emb_gather). O(n) work a pass, no atomics in the order.
#define EMB_TILE 256 // threads; the scan reads 4 tiles of indices a round (4 loads in flight, 4 barriers a round)
template <typename T>
__device__ void embsum_backward_any(const T* dout, const int* idx, T* dw, int rows, int cols, int per, int vocab) {
  __shared__ int hits[4 * EMB_TILE];
  __shared__ int base[33]; // per (tile, warp) of a round, in index order (blocks of 256: 8 warps): its first place in
                           // hits; [32]: the round's count
  const long long n = (long long)rows * per;
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
  const unsigned ALL = 0xffffffffu, below = (1u << lane) - 1u;
  for (int v = blockIdx.x; v < vocab; v += gridDim.x) {
    for (int c0 = 0; c0 < cols; c0 += EMB_TILE) {
      const int c = c0 + threadIdx.x;
      T* out = dw + (long long)v * cols + c;
      T acc = c < cols ? *out : (T)0;
      for (long long a0 = 0; a0 < n; a0 += 4 * EMB_TILE) {
        bool hit[4];
#pragma unroll
        for (int q = 0; q < 4; q++) { const long long a = a0 + q * EMB_TILE + threadIdx.x; hit[q] = a < n && idx[a] == v; }
        unsigned ballot[4];
#pragma unroll
        for (int q = 0; q < 4; q++) ballot[q] = __ballot_sync(ALL, hit[q]);
        __syncthreads(); // the previous round's hits are consumed
        if (lane == 0)
#pragma unroll
          for (int q = 0; q < 4; q++) base[q * 8 + w] = __popc(ballot[q]);
        __syncthreads();
        if (w == 0) { // exclusive scan of the 32 counts, tile-major: the round's hits in index order
          const int x = base[lane], incl = warp_scan_inclusive(x);
          base[lane] = incl - x;
          if (lane == 31) base[32] = incl;
        }
        __syncthreads();
#pragma unroll
        for (int q = 0; q < 4; q++)
          if (hit[q]) hits[base[q * 8 + w] + __popc(ballot[q] & below)] = (int)((a0 + q * EMB_TILE + threadIdx.x) / per); // its row
        __syncthreads();
        const int m = base[32];
        if (c < cols) {
          int j = 0;
          for (; j + 8 <= m; j += 8) { // loads ahead of the additions, which stay in order
            T x[8];
#pragma unroll
            for (int u = 0; u < 8; u++) x[u] = dout[(long long)hits[j + u] * cols + c];
#pragma unroll
            for (int u = 0; u < 8; u++) acc = acc + x[u];
          }
          for (; j < m; j++) acc = acc + dout[(long long)hits[j] * cols + c];
        }
      }
      if (c < cols) *out = acc;
    }
  }
}
extern "C" __global__ void embsum_backward_f32(const float* dout, const int* idx, float* dw, int rows, int cols, int per, int vocab) { embsum_backward_any<float>(dout, idx, dw, rows, cols, per, vocab); }
extern "C" __global__ void embsum_backward_f64(const double* dout, const int* idx, double* dw, int rows, int cols, int per, int vocab) { embsum_backward_any<double>(dout, idx, dw, rows, cols, per, vocab); }

// cnt[v] = how many indices are v (cnt zeroed; integer atomics: exact). Indices outside [0, vocab) (the op layer
// refuses them) are skipped, as the scan skips them.
extern "C" __global__ void emb_count(const int* idx, long long n, int vocab, int* cnt) {
  for (long long a = blockIdx.x * (long long)blockDim.x + threadIdx.x; a < n; a += (long long)gridDim.x * blockDim.x) {
    const int v = idx[a];
    if (v >= 0 && v < vocab) atomicAdd(cnt + v, 1);
  }
}

// The lanes of this warp whose x agrees with this lane's in its low `bits` bits (every lane must call it): one
// ballot per bit, for a lane's rank among equal keys, popc(peers & lanes below), where __match_any_sync is not assumed.
__device__ unsigned warp_peers(int x, int bits) {
  unsigned peers = 0xffffffffu;
  for (int b = 0; b < bits; b++) {
    const int bit = (x >> b) & 1;
    const unsigned ones = __ballot_sync(0xffffffffu, bit);
    peers &= bit ? ones : ~ones;
  }
  return peers;
}

// One pass of a stable LSD radix sort of (key, value) pairs on the byte of the key at `shift`, over tiles of
// RADIX_TILE pairs (blocks of 256 threads). radix_hist: hist[d * tiles + t] = tile t's keys with digit d; an exclusive
// scan of hist (digit-major) gives each (digit, tile) its first place; radix_scatter: each tile places its pairs in
// order, 256 a round (a lane's rank among its warp's equal digits by ballots, then the warps before it).
// values null: the value is the pair's position.
#define RADIX_TILE 2048
extern "C" __global__ void radix_hist(const int* keys, int n, int shift, int* hist) {
  __shared__ int h[256];
  const int tiles = (int)(((long long)n + RADIX_TILE - 1) / RADIX_TILE);
  for (int t = blockIdx.x; t < tiles; t += gridDim.x) {
    h[threadIdx.x] = 0;
    __syncthreads();
    const int end = (int)min((long long)n, (long long)(t + 1) * RADIX_TILE);
    for (int e = t * RADIX_TILE + threadIdx.x; e < end; e += 256) atomicAdd(&h[(keys[e] >> shift) & 255], 1);
    __syncthreads();
    hist[(long long)threadIdx.x * tiles + t] = h[threadIdx.x];
    __syncthreads(); // h is zeroed for the next tile
  }
}
extern "C" __global__ void radix_scatter(const int* kin, const int* vin, int n, int shift, const int* place, int* kout, int* vout) {
  __shared__ int run[256];     // the next place of each digit in this tile
  __shared__ int cnt[8][256];  // this round's pairs per warp and digit
  const int tiles = (int)(((long long)n + RADIX_TILE - 1) / RADIX_TILE), lane = threadIdx.x & 31, w = threadIdx.x >> 5;
  const unsigned below = (1u << lane) - 1u;
  for (int t = blockIdx.x; t < tiles; t += gridDim.x) {
    run[threadIdx.x] = place[(long long)threadIdx.x * tiles + t];
    const int end = (int)min((long long)n, (long long)(t + 1) * RADIX_TILE);
    for (int e0 = t * RADIX_TILE; e0 < end; e0 += 256) {
      const int e = e0 + threadIdx.x;
      const bool in = e < end;
      const int key = in ? kin[e] : 0, d = in ? (key >> shift) & 255 : 256; // 256: no pair (9 bits)
      const unsigned peers = warp_peers(d, 9); // the lanes with this lane's digit
      for (int q = 0; q < 8; q++) cnt[q][threadIdx.x] = 0; // this thread's column only: it alone reads it below
      __syncthreads();
      if (in && (peers & below) == 0) cnt[w][d] = __popc(peers);
      __syncthreads();
      if (in) {
        int at = run[d] + __popc(peers & below);
        for (int q = 0; q < w; q++) at += cnt[q][d];
        kout[at] = key;
        vout[at] = vin ? vin[e] : e;
      }
      __syncthreads(); // run is read before it moves on
      int add = 0;
      for (int q = 0; q < 8; q++) add += cnt[q][threadIdx.x];
      run[threadIdx.x] += add;
    }
    __syncthreads(); // run is rewritten for the next tile
  }
}

// dw[v, :] += dout[list[e] / per, :] for the run of v's positions, in order (start: v's first place in list). The
// additions are one chain per column (wasm's order), so a frequent token's run is a long chain: its loads are issued
// 16 at a time ahead of their additions, or each addition would wait out a trip to memory.
template <typename T>
__device__ void emb_gather_any(const T* dout, const int* start, const int* list, T* dw, int cols, int per, int vocab) {
  for (int v = blockIdx.x; v < vocab; v += gridDim.x) {
    const int a0 = start[v], c = start[v + 1] - a0;
    for (int col = threadIdx.x; col < cols && c > 0; col += blockDim.x) {
      T* out = dw + (long long)v * cols + col;
      T acc = *out;
      int e = 0;
      for (; e + 16 <= c; e += 16) {
        T x[16];
#pragma unroll
        for (int j = 0; j < 16; j++) x[j] = dout[(long long)(list[a0 + e + j] / per) * cols + col];
#pragma unroll
        for (int j = 0; j < 16; j++) acc = acc + x[j];
      }
      for (; e < c; e++) acc = acc + dout[(long long)(list[a0 + e] / per) * cols + col];
      *out = acc;
    }
  }
}
extern "C" __global__ void emb_gather_f32(const float* dout, const int* start, const int* list, float* dw, int cols, int per, int vocab) { emb_gather_any<float>(dout, start, list, dw, cols, per, vocab); }
extern "C" __global__ void emb_gather_f64(const double* dout, const int* start, const int* list, double* dw, int cols, int per, int vocab) { emb_gather_any<double>(dout, start, list, dw, cols, per, vocab); }

// ⊥Grad in one block: proj = w.g / (w.w + 1e-30); g = (g - proj w) * |g| / (|g - proj w| + 1e-30), sums in f64.
template <typename T>
__device__ void orthogonalize_any(const T* w, T* g, long long n) {
  double wg = 0, ww = 0, gg = 0;
  for (long long i = threadIdx.x; i < n; i += blockDim.x) {
    const double a = (double)w[i], b = (double)g[i];
    wg += a * b; ww += a * a; gg += b * b;
  }
  wg = block_sum(wg); ww = block_sum(ww); gg = block_sum(gg);
  const double proj = wg / (ww + 1e-30);
  double oo = 0;
  for (long long i = threadIdx.x; i < n; i += blockDim.x) { const double r = (double)g[i] - proj * (double)w[i]; oo += r * r; }
  oo = block_sum(oo);
  const double scale = sqrt(gg) / (sqrt(oo) + 1e-30);
  for (long long i = threadIdx.x; i < n; i += blockDim.x) g[i] = (T)(((double)g[i] - proj * (double)w[i]) * scale);
}
extern "C" __global__ void __launch_bounds__(1024) orthogonalize_f32(const float* w, float* g, long long n) { orthogonalize_any<float>(w, g, n); }
extern "C" __global__ void __launch_bounds__(1024) orthogonalize_f64(const double* w, double* g, long long n) { orthogonalize_any<double>(w, g, n); }
// The same over many blocks, for large n: ortho_part writes each block's (w.g, w.w, g.g); ortho_residual folds them
// (every block alike: a fixed tree) and writes each block's |g - proj w|^2; ortho_apply folds both and updates g.
__device__ double fold(const double* part, int stride, int parts) {
  double v = 0;
  for (int i = threadIdx.x; i < parts; i += blockDim.x) v += part[(long long)i * stride];
  return block_sum(v);
}
template <typename T>
__device__ void ortho_part_any(const T* w, const T* g, long long n, double* part) {
  double wg = 0, ww = 0, gg = 0;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    const double a = (double)w[i], b = (double)g[i];
    wg += a * b; ww += a * a; gg += b * b;
  }
  wg = block_sum(wg); ww = block_sum(ww); gg = block_sum(gg);
  if (threadIdx.x == 0) { part[3 * blockIdx.x] = wg; part[3 * blockIdx.x + 1] = ww; part[3 * blockIdx.x + 2] = gg; }
}
template <typename T>
__device__ void ortho_residual_any(const T* w, const T* g, long long n, const double* part, int parts, double* part2) {
  const double wg = fold(part, 3, parts), ww = fold(part + 1, 3, parts), proj = wg / (ww + 1e-30);
  double oo = 0;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    const double r = (double)g[i] - proj * (double)w[i];
    oo += r * r;
  }
  oo = block_sum(oo);
  if (threadIdx.x == 0) part2[blockIdx.x] = oo;
}
template <typename T>
__device__ void ortho_apply_any(const T* w, T* g, long long n, const double* part, const double* part2, int parts) {
  const double wg = fold(part, 3, parts), ww = fold(part + 1, 3, parts), gg = fold(part + 2, 3, parts), oo = fold(part2, 1, parts);
  const double proj = wg / (ww + 1e-30), scale = sqrt(gg) / (sqrt(oo) + 1e-30);
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
    g[i] = (T)(((double)g[i] - proj * (double)w[i]) * scale);
}
extern "C" __global__ void ortho_part_f32(const float* w, const float* g, long long n, double* part) { ortho_part_any<float>(w, g, n, part); }
extern "C" __global__ void ortho_part_f64(const double* w, const double* g, long long n, double* part) { ortho_part_any<double>(w, g, n, part); }
extern "C" __global__ void ortho_residual_f32(const float* w, const float* g, long long n, const double* part, int parts, double* part2) { ortho_residual_any<float>(w, g, n, part, parts, part2); }
extern "C" __global__ void ortho_residual_f64(const double* w, const double* g, long long n, const double* part, int parts, double* part2) { ortho_residual_any<double>(w, g, n, part, parts, part2); }
extern "C" __global__ void ortho_apply_f32(const float* w, float* g, long long n, const double* part, const double* part2, int parts) { ortho_apply_any<float>(w, g, n, part, part2, parts); }
extern "C" __global__ void ortho_apply_f64(const double* w, double* g, long long n, const double* part, const double* part2, int parts) { ortho_apply_any<double>(w, g, n, part, part2, parts); }

// dst[0] = max(dst[0], max of src[0..n) (|src| when abs)) in f64, NaN sticking: one block.
template <typename T>
__device__ void max_into_any(double* dst, const T* src, long long n, int abs_) {
  double m = -(double)NUMEDGE_INF;
  for (long long i = threadIdx.x; i < n; i += blockDim.x) { double v = (double)src[i]; if (abs_) v = fabs(v); m = nan_max(m, v); }
  m = block_max(m);
  if (threadIdx.x == 0) dst[0] = nan_max(dst[0], n > 0 ? m : dst[0]);
}
extern "C" __global__ void __launch_bounds__(1024) max_into_f32(double* dst, const float* src, long long n, int abs_) { max_into_any<float>(dst, src, n, abs_); }
extern "C" __global__ void __launch_bounds__(1024) max_into_f64(double* dst, const double* src, long long n, int abs_) { max_into_any<double>(dst, src, n, abs_); }
// Large n over many blocks: part[b] = block b's maximum (grid-stride), then max_into_finish folds the parts into
// dst[0] (one block). Max is order-free, NaN sticks: the same value as one block.
template <typename T>
__device__ void max_part_any(const T* src, long long n, int abs_, double* part) {
  double m = -(double)NUMEDGE_INF;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) { double v = (double)src[i]; if (abs_) v = fabs(v); m = nan_max(m, v); }
  m = block_max(m);
  if (threadIdx.x == 0) part[blockIdx.x] = m;
}
extern "C" __global__ void max_part_f32(const float* src, long long n, int abs_, double* part) { max_part_any<float>(src, n, abs_, part); }
extern "C" __global__ void max_part_f64(const double* src, long long n, int abs_, double* part) { max_part_any<double>(src, n, abs_, part); }
extern "C" __global__ void __launch_bounds__(1024) max_into_finish(double* dst, const double* part, int parts) {
  double m = -(double)NUMEDGE_INF;
  for (int i = threadIdx.x; i < parts; i += blockDim.x) m = nan_max(m, part[i]);
  m = block_max(m);
  if (threadIdx.x == 0) dst[0] = nan_max(dst[0], m);
}

// C[m, n] = (acc ? C : 0) + op(A) op(B), row-major; A stored [k, m] when ta, B stored [n, k] when tb: the GEMM
// for when there is no cuBLAS (a machine with only the driver). 64x64 tiles of C on 256 threads, each thread 4x4
// outputs (rows ty + 16i, columns tx + 16j) from 16-deep slices of A and B in shared memory; each output a chain of
// fused multiply-adds in k order (explicit fma: --fmad=false leaves those fused). Within the GEMM error bound, not
// the wasm kernel's blocking (bits may differ). Row tiles loop over blockIdx.y (gridDim.y is at most 65535; the
// loop is uniform per block, so the barriers hold). Launch with 16x16 threads.
__device__ float fma_t(float a, float b, float c) { return fmaf(a, b, c); }
__device__ double fma_t(double a, double b, double c) { return fma(a, b, c); }
template <typename T>
__device__ void gemm_any(const T* A, const T* B, T* C, int m, int k, int n, int ta, int tb, int acc) {
  __shared__ T sa[16][65], sb[16][65]; // [p][row], [p][col]; 65: a transposed store does not hit one bank 16 times
  const int tx = threadIdx.x, ty = threadIdx.y, tid = ty * 16 + tx, c0 = blockIdx.x * 64;
  for (int r0 = blockIdx.y * 64; r0 < m; r0 += gridDim.y * 64) {
    T s[4][4];
    for (int i = 0; i < 4; i++) for (int j = 0; j < 4; j++) s[i][j] = (T)0;
    for (int p0 = 0; p0 < k; p0 += 16) {
      for (int e = tid; e < 1024; e += 256) { // coalesced: the stored layout's fast index across the threads
        const int r = ta ? e & 63 : e >> 4, q = ta ? e >> 6 : e & 15, row = r0 + r, p = p0 + q;
        sa[q][r] = row < m && p < k ? (ta ? A[(long long)p * m + row] : A[(long long)row * k + p]) : (T)0;
        const int cc = tb ? e >> 4 : e & 63, qb = tb ? e & 15 : e >> 6, col = c0 + cc, pb = p0 + qb;
        sb[qb][cc] = col < n && pb < k ? (tb ? B[(long long)col * k + pb] : B[(long long)pb * n + col]) : (T)0;
      }
      __syncthreads();
      for (int q = 0; q < 16; q++) {
        T a[4], b[4];
        for (int i = 0; i < 4; i++) a[i] = sa[q][ty + 16 * i];
        for (int j = 0; j < 4; j++) b[j] = sb[q][tx + 16 * j];
        for (int i = 0; i < 4; i++) for (int j = 0; j < 4; j++) s[i][j] = fma_t(a[i], b[j], s[i][j]);
      }
      __syncthreads();
    }
    for (int i = 0; i < 4; i++) for (int j = 0; j < 4; j++) {
      const int row = r0 + ty + 16 * i, col = c0 + tx + 16 * j;
      if (row < m && col < n) C[(long long)row * n + col] = acc ? C[(long long)row * n + col] + s[i][j] : s[i][j];
    }
  }
}
extern "C" __global__ void gemm_f32(const float* A, const float* B, float* C, int m, int k, int n, int ta, int tb, int acc) { gemm_any<float>(A, B, C, m, k, n, ta, tb, acc); }
extern "C" __global__ void gemm_f64(const double* A, const double* B, double* C, int m, int k, int n, int ta, int tb, int acc) { gemm_any<double>(A, B, C, m, k, n, ta, tb, acc); }

// ---- cross-entropy. The thread kernels (a thread per row) keep the wasm kernels' exp and summation order, so the
// Softmax Collapse and zero-loss counts agree with wasm's (log is CUDA's logf/log: loss and gradient may differ from
// wasm's by an ulp). The backend launches their warp twins (the same bits, a warp per row) up to 2048 / 1024
// columns and the block-per-row kernels (tree sums, below) past that. Per-row results, then one block sums the
// rows (ce_finish).

__device__ bool bad_max_f(double m) { return !(m > -(double)NUMEDGE_INF && m < (double)NUMEDGE_INF); }

// row_stats[3r..3r+2] = (loss, collapsed, zero loss); a bad row (NaN, +Infinity, only -Infinity): NaN loss, NaN grad.
extern "C" __global__ void ce_softmax_f32(const float* z, const int* labels, float* grad, int rows, int cols, double* row_stats) {
  const float invN = 1.f / (float)rows;
  for (int r = blockIdx.x * blockDim.x + threadIdx.x; r < rows; r += gridDim.x * blockDim.x) {
    const float* zr = z + (long long)r * cols;
    float* gr = grad ? grad + (long long)r * cols : 0;
    const int y = labels[r];
    float mx = -NUMEDGE_INF;
    bool nan = false;
    for (int i = 0; i < cols; i++) { const float v = zr[i]; if (v != v) nan = true; else if (v > mx) mx = v; }
    double* st = row_stats + 3LL * r;
    if (nan || bad_max_f(mx)) {
      st[0] = NUMEDGE_DNAN; st[1] = 0; st[2] = 0;
      if (gr) for (int i = 0; i < cols; i++) gr[i] = NUMEDGE_NAN;
      continue;
    }
    float a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    int i = 0;
    for (; i + 4 <= cols; i += 4) {
      a0 = a0 + exp_rr2p5(zr[i] - mx); a1 = a1 + exp_rr2p5(zr[i + 1] - mx);
      a2 = a2 + exp_rr2p5(zr[i + 2] - mx); a3 = a3 + exp_rr2p5(zr[i + 3] - mx);
    }
    float s = (a0 + a1) + (a2 + a3);
    for (; i < cols; i++) s = s + exp_rr2p5(zr[i] - mx);
    const float ls = logf(s);
    const float l = -((zr[y] - mx) - ls);
    st[0] = (double)l; st[1] = s == 1.f ? 1 : 0; st[2] = l == 0.f ? 1 : 0;
    if (!gr) continue;
    for (int k = 0; k < cols; k++) gr[k] = exp_rr2p5((zr[k] - mx) - ls) * invN;
    gr[y] = (exp_rr2p5((zr[y] - mx) - ls) - 1.f) * invN;
  }
}

// The same per row on one warp, for rows of at most 2048: the lanes find the max and the exps (kept in shared
// memory), lanes 0-3 add them in ce_softmax_f32's four chains, lane 0 ends the row, the lanes write the gradient.
// The same operations in the same order: the same bits, with 32 lanes per row instead of one thread. Shared memory
// is dynamic, sized to the rows (grok's 113 columns take 1.8 KB a block, not 32 KB: 12 blocks an SM, not 6).
extern "C" __global__ void ce_softmax_f32_warp(const float* z, const int* labels, float* grad, int rows, int cols, double* row_stats) {
  NUMEDGE_DYNAMIC_SHARED(float, ex); // blocks of 128 threads: a row of exps per warp, 4 * cols floats
  const unsigned ALL = 0xffffffffu;
  const int lane = threadIdx.x & 31, warps = (gridDim.x * blockDim.x) >> 5;
  float* e = ex + (threadIdx.x >> 5) * cols;
  const float invN = 1.f / (float)rows;
  for (int r = (blockIdx.x * blockDim.x + threadIdx.x) >> 5; r < rows; r += warps) {
    const float* zr = z + (long long)r * cols;
    float* gr = grad ? grad + (long long)r * cols : 0;
    const int y = labels[r];
    float mx = -NUMEDGE_INF;
    int nan = 0;
    for (int i = lane; i < cols; i += 32) { const float v = zr[i]; if (v != v) nan = 1; else if (v > mx) mx = v; }
    for (int o = 16; o > 0; o >>= 1) {
      const float m = __shfl_xor_sync(ALL, mx, o);
      mx = m > mx ? m : mx;
      nan |= __shfl_xor_sync(ALL, nan, o);
    }
    mx = __shfl_sync(ALL, mx, 0); // one max for every lane (lanes may hold -0 and +0)
    double* st = row_stats + 3LL * r;
    if (nan || bad_max_f(mx)) { // the same on every lane
      if (lane == 0) { st[0] = NUMEDGE_DNAN; st[1] = 0; st[2] = 0; }
      if (gr) for (int i = lane; i < cols; i += 32) gr[i] = NUMEDGE_NAN;
      continue;
    }
    for (int i = lane; i < cols; i += 32) e[i] = exp_rr2p5(zr[i] - mx);
    __syncwarp();
    const int c4 = cols & ~3;
    float a = 0.f;
    if (lane < 4) for (int i = lane; i < c4; i += 4) a = a + e[i];
    const float a1 = __shfl_sync(ALL, a, 1), a2 = __shfl_sync(ALL, a, 2), a3 = __shfl_sync(ALL, a, 3);
    float s = (a + a1) + (a2 + a3);
    for (int i = c4; i < cols; i++) s = s + e[i];
    s = __shfl_sync(ALL, s, 0); // lane 0's
    const float ls = logf(s), l = -((zr[y] - mx) - ls);
    if (lane == 0) { st[0] = (double)l; st[1] = s == 1.f ? 1 : 0; st[2] = l == 0.f ? 1 : 0; }
    __syncwarp(); // every lane has read e before the next row writes it
    if (!gr) continue;
    for (int k = lane; k < cols; k += 32) if (k != y) gr[k] = exp_rr2p5((zr[k] - mx) - ls) * invN;
    if (lane == 0) gr[y] = (exp_rr2p5((zr[y] - mx) - ls) - 1.f) * invN;
  }
}

// softmax head in f64 (logits TIn, gradient TOut)
template <typename TIn, typename TOut>
__device__ void ce_softmax_f64_any(const TIn* z, const int* labels, TOut* grad, int rows, int cols, double* row_stats) {
  const double invN = 1.0 / (double)rows;
  for (int r = blockIdx.x * blockDim.x + threadIdx.x; r < rows; r += gridDim.x * blockDim.x) {
    const TIn* zr = z + (long long)r * cols;
    TOut* gr = grad ? grad + (long long)r * cols : 0;
    const int y = labels[r];
    double mx = -(double)NUMEDGE_INF;
    for (int i = 0; i < cols; i++) mx = nan_max(mx, (double)zr[i]);
    double* st = row_stats + 3LL * r;
    if (bad_max_f(mx)) {
      st[0] = NUMEDGE_DNAN; st[1] = 0; st[2] = 0;
      if (gr) for (int i = 0; i < cols; i++) gr[i] = (TOut)NUMEDGE_DNAN;
      continue;
    }
    double s = 0;
    for (int i = 0; i < cols; i++) s += exp((double)zr[i] - mx);
    const double ls = log(s), l = -(((double)zr[y] - mx) - ls);
    st[0] = l; st[1] = s == 1.0 ? 1 : 0; st[2] = l == 0.0 ? 1 : 0;
    if (!gr) continue;
    for (int i = 0; i < cols; i++) {
      const double p = exp(((double)zr[i] - mx) - ls);
      gr[i] = (TOut)((i == y ? p - 1 : p) * invN);
    }
  }
}
extern "C" __global__ void ce_softmax_f64(const double* z, const int* l, double* g, int rows, int cols, double* st) { ce_softmax_f64_any<double, double>(z, l, g, rows, cols, st); }
extern "C" __global__ void ce_softmax_f32in_f64(const float* z, const int* l, float* g, int rows, int cols, double* st) { ce_softmax_f64_any<float, float>(z, l, g, rows, cols, st); }

// StableMax head in precision T: loss = -log(s(z_y) / S); collapse when S == s(max z). As ce_stablemax_impl.
template <typename T, typename TIn, typename TOut>
__device__ void ce_stablemax_any(const TIn* z, const int* labels, TOut* grad, int rows, int cols, double* row_stats) {
  const T invN = (T)1 / (T)rows;
  for (int r = blockIdx.x * blockDim.x + threadIdx.x; r < rows; r += gridDim.x * blockDim.x) {
    const TIn* zr = z + (long long)r * cols;
    TOut* gr = grad ? grad + (long long)r * cols : 0;
    const int y = labels[r];
    T S = 0, mx = -(T)NUMEDGE_INF;
    for (int i = 0; i < cols; i++) {
      const T v = (T)zr[i];
      mx = v > mx ? v : mx;
      S = S + stable_s(v);
    }
    double* st = row_stats + 3LL * r;
    if (!(S > 0 && S < (T)NUMEDGE_INF) || !(mx < (T)NUMEDGE_INF)) {
      st[0] = NUMEDGE_DNAN; st[1] = 0; st[2] = 0;
      if (gr) for (int i = 0; i < cols; i++) gr[i] = (TOut)NUMEDGE_DNAN;
      continue;
    }
    const T sm = stable_s(mx);
    const T zy = (T)zr[y], sy = stable_s(zy);
    const T l = -(T)log(sy / S);
    st[0] = (double)l; st[1] = S == sm ? 1 : 0; st[2] = l == (T)0 ? 1 : 0;
    if (!gr) continue;
    const T invS = (T)1 / S;
    for (int i = 0; i < cols; i++) {
      const T v = (T)zr[i], d = v >= 0 ? (T)1 : (T)1 / (((T)1 - v) * ((T)1 - v));
      gr[i] = (TOut)(i == y ? (d * invS - d / sy) * invN : d * invS * invN);
    }
  }
}
extern "C" __global__ void ce_stablemax_f32(const float* z, const int* l, float* g, int rows, int cols, double* st) { ce_stablemax_any<float, float, float>(z, l, g, rows, cols, st); }
extern "C" __global__ void ce_stablemax_f64(const double* z, const int* l, double* g, int rows, int cols, double* st) { ce_stablemax_any<double, double, double>(z, l, g, rows, cols, st); }
extern "C" __global__ void ce_stablemax_f32in_f64(const float* z, const int* l, float* g, int rows, int cols, double* st) { ce_stablemax_any<double, float, float>(z, l, g, rows, cols, st); }

// ---- the f64 softmax head and the StableMax heads on a warp per row, for rows of at most 1024 (grok's StableMax arm
// runs ce_stablemax_f32in_f64 on 5107 rows of 113). The thread kernels' operations in their order: the lanes find the
// row's max as the sequential loop does (ties, ±0, resolved by index as it resolves them), compute the terms into
// (dynamic) shared memory, lane 0 adds them in index order, every lane finishes the row and writes its columns.

// The sequential running max over the row, from each lane's (max, index) over its columns. later: on equal values
// the later index wins (nan_max's `a > b ? a : b`, running max first), else the earlier (`v > mx ? v : mx`).
template <typename T>
__device__ T warp_row_max(T mx, int at, bool later) {
  for (int o = 16; o > 0; o >>= 1) {
    const T m = __shfl_xor_sync(0xffffffffu, mx, o);
    const int a = __shfl_xor_sync(0xffffffffu, at, o);
    if (m > mx || (m == mx && (later ? a > at : a < at))) { mx = m; at = a; }
  }
  return mx;
}

template <typename TIn, typename TOut>
__device__ void ce_softmax_f64_warp_any(const TIn* z, const int* labels, TOut* grad, int rows, int cols, double* row_stats, double* e) {
  const unsigned ALL = 0xffffffffu;
  const int lane = threadIdx.x & 31, warps = (gridDim.x * blockDim.x) >> 5;
  const double invN = 1.0 / (double)rows;
  for (int r = (blockIdx.x * blockDim.x + threadIdx.x) >> 5; r < rows; r += warps) {
    const TIn* zr = z + (long long)r * cols;
    TOut* gr = grad ? grad + (long long)r * cols : 0;
    const int y = labels[r];
    double mx = -(double)NUMEDGE_INF;
    int at = -1, nan = 0;
    for (int i = lane; i < cols; i += 32) {
      const double v = (double)zr[i];
      if (v != v) nan = 1;
      else if (!(mx > v)) { mx = v; at = i; } // nan_max(mx, v) = mx > v ? mx : v
    }
    nan = __ballot_sync(ALL, nan) != 0;
    mx = warp_row_max(mx, at, true);
    double* st = row_stats + 3LL * r;
    if (nan || bad_max_f(mx)) {
      if (lane == 0) { st[0] = NUMEDGE_DNAN; st[1] = 0; st[2] = 0; }
      if (gr) for (int i = lane; i < cols; i += 32) gr[i] = (TOut)NUMEDGE_DNAN;
      continue;
    }
    for (int i = lane; i < cols; i += 32) e[i] = exp((double)zr[i] - mx);
    __syncwarp();
    double s = 0;
    if (lane == 0) for (int i = 0; i < cols; i++) s += e[i];
    s = __shfl_sync(ALL, s, 0); // lane 0's
    __syncwarp(); // lane 0 has read e before any lane writes the next row's (a shuffle does not order memory)
    const double ls = log(s), l = -(((double)zr[y] - mx) - ls);
    if (lane == 0) { st[0] = l; st[1] = s == 1.0 ? 1 : 0; st[2] = l == 0.0 ? 1 : 0; }
    if (!gr) continue;
    for (int i = lane; i < cols; i += 32) {
      const double p = exp(((double)zr[i] - mx) - ls);
      gr[i] = (TOut)((i == y ? p - 1 : p) * invN);
    }
  }
}
extern "C" __global__ void ce_softmax_f64_warp(const double* z, const int* l, double* g, int rows, int cols, double* st) {
  NUMEDGE_DYNAMIC_SHARED(double, ex); // blocks of 128 threads: a row of terms per warp, 4 * cols doubles
  ce_softmax_f64_warp_any<double, double>(z, l, g, rows, cols, st, ex + (threadIdx.x >> 5) * cols);
}
extern "C" __global__ void ce_softmax_f32in_f64_warp(const float* z, const int* l, float* g, int rows, int cols, double* st) {
  NUMEDGE_DYNAMIC_SHARED(double, ex);
  ce_softmax_f64_warp_any<float, float>(z, l, g, rows, cols, st, ex + (threadIdx.x >> 5) * cols);
}

template <typename T, typename TIn, typename TOut>
__device__ void ce_stablemax_warp_any(const TIn* z, const int* labels, TOut* grad, int rows, int cols, double* row_stats, T* e) {
  const unsigned ALL = 0xffffffffu;
  const int lane = threadIdx.x & 31, warps = (gridDim.x * blockDim.x) >> 5;
  const T invN = (T)1 / (T)rows;
  for (int r = (blockIdx.x * blockDim.x + threadIdx.x) >> 5; r < rows; r += warps) {
    const TIn* zr = z + (long long)r * cols;
    TOut* gr = grad ? grad + (long long)r * cols : 0;
    const int y = labels[r];
    T mx = -(T)NUMEDGE_INF;
    int at = -1;
    for (int i = lane; i < cols; i += 32) {
      const T v = (T)zr[i];
      if (v > mx) { mx = v; at = i; }
      e[i] = stable_s(v);
    }
    mx = warp_row_max(mx, at, false);
    __syncwarp();
    T S = 0;
    if (lane == 0) for (int i = 0; i < cols; i++) S = S + e[i];
    S = __shfl_sync(ALL, S, 0); // lane 0's
    __syncwarp(); // lane 0 has read e before any lane writes the next row's (a shuffle does not order memory)
    double* st = row_stats + 3LL * r;
    if (!(S > 0 && S < (T)NUMEDGE_INF) || !(mx < (T)NUMEDGE_INF)) {
      if (lane == 0) { st[0] = NUMEDGE_DNAN; st[1] = 0; st[2] = 0; }
      if (gr) for (int i = lane; i < cols; i += 32) gr[i] = (TOut)NUMEDGE_DNAN;
      continue;
    }
    const T sm = stable_s(mx);
    const T zy = (T)zr[y], sy = stable_s(zy);
    const T l = -(T)log(sy / S);
    if (lane == 0) { st[0] = (double)l; st[1] = S == sm ? 1 : 0; st[2] = l == (T)0 ? 1 : 0; }
    if (!gr) continue;
    const T invS = (T)1 / S;
    for (int i = lane; i < cols; i += 32) {
      const T v = (T)zr[i], d = v >= 0 ? (T)1 : (T)1 / (((T)1 - v) * ((T)1 - v));
      gr[i] = (TOut)(i == y ? (d * invS - d / sy) * invN : d * invS * invN);
    }
  }
}
// (128, 10): at most 48 registers (56 unbounded, no spill either way), so 10 blocks fit an SM: grok's 5107 rows are
// 1277 blocks, one wave on an H200's 132 SMs instead of 1.1 (the softmax f64 heads would spill). sm_75 (1024
// threads an SM) ignores the hint, with a ptxas warning.
extern "C" __global__ void __launch_bounds__(128, 10) ce_stablemax_f32_warp(const float* z, const int* l, float* g, int rows, int cols, double* st) {
  NUMEDGE_DYNAMIC_SHARED(float, ex);
  ce_stablemax_warp_any<float, float, float>(z, l, g, rows, cols, st, ex + (threadIdx.x >> 5) * cols);
}
extern "C" __global__ void __launch_bounds__(128, 10) ce_stablemax_f64_warp(const double* z, const int* l, double* g, int rows, int cols, double* st) {
  NUMEDGE_DYNAMIC_SHARED(double, ex);
  ce_stablemax_warp_any<double, double, double>(z, l, g, rows, cols, st, ex + (threadIdx.x >> 5) * cols);
}
extern "C" __global__ void __launch_bounds__(128, 10) ce_stablemax_f32in_f64_warp(const float* z, const int* l, float* g, int rows, int cols, double* st) {
  NUMEDGE_DYNAMIC_SHARED(double, ex);
  ce_stablemax_warp_any<double, float, float>(z, l, g, rows, cols, st, ex + (threadIdx.x >> 5) * cols);
}

// ---- every head on a block per row, for rows wider than the warp kernels take (an LM head's vocabulary): each
// thread sums the terms of columns t, t + blockDim, ... in order, in the head's precision (f32 for the f32 softmax
// head, as PyTorch's CUDA kernel accumulates), then a fixed tree. Deterministic, but not the wasm kernel's order: the
// loss and the Softmax Collapse count may differ from wasm's on rows at the edge of collapse (a sum of tiny terms
// that four sequential chains round away can survive in 256 partial sums).
__device__ float ce_exp(float x) { return exp_rr2p5(x); }
__device__ double ce_exp(double x) { return exp(x); }

template <typename T, typename TIn, typename TOut, bool STABLE>
__device__ void ce_wide_any(const TIn* z, const int* labels, TOut* grad, int rows, int cols, double* row_stats) {
  const T invN = (T)1 / (T)rows;
  for (int r = blockIdx.x; r < rows; r += gridDim.x) {
    const TIn* zr = z + (long long)r * cols;
    TOut* gr = grad ? grad + (long long)r * cols : 0;
    const int y = labels[r];
    double m = -(double)NUMEDGE_INF;
    for (int i = threadIdx.x; i < cols; i += blockDim.x) m = nan_max(m, (double)zr[i]);
    m = block_max(m); // exact: every value of T is a double
    const T mx = (T)m;
    T s = 0;
    if (!bad_max_f(m) || STABLE)
      for (int i = threadIdx.x; i < cols; i += blockDim.x) s = s + (STABLE ? stable_s((T)zr[i]) : ce_exp((T)zr[i] - mx));
    s = block_sum_t<T>(s);
    double* st = row_stats + 3LL * r;
    // softmax: NaN, +Infinity or only -Infinity in the max; StableMax: S not finite and positive, or +Infinity
    if (STABLE ? !(s > 0 && s < (T)NUMEDGE_INF) || !(mx < (T)NUMEDGE_INF) : bad_max_f(m)) {
      if (threadIdx.x == 0) { st[0] = NUMEDGE_DNAN; st[1] = 0; st[2] = 0; }
      if (gr) for (int i = threadIdx.x; i < cols; i += blockDim.x) gr[i] = (TOut)NUMEDGE_DNAN;
      continue;
    }
    const T zy = (T)zr[y];
    if (STABLE) {
      const T sy = stable_s(zy), l = -(T)log(sy / s), invS = (T)1 / s;
      if (threadIdx.x == 0) { st[0] = (double)l; st[1] = s == stable_s(mx) ? 1 : 0; st[2] = l == (T)0 ? 1 : 0; }
      if (gr) for (int i = threadIdx.x; i < cols; i += blockDim.x) {
        const T v = (T)zr[i], d = v >= 0 ? (T)1 : (T)1 / (((T)1 - v) * ((T)1 - v));
        gr[i] = (TOut)(i == y ? (d * invS - d / sy) * invN : d * invS * invN);
      }
    } else {
      const T ls = (T)log(s), l = -((zy - mx) - ls);
      if (threadIdx.x == 0) { st[0] = (double)l; st[1] = s == (T)1 ? 1 : 0; st[2] = l == (T)0 ? 1 : 0; }
      if (gr) for (int i = threadIdx.x; i < cols; i += blockDim.x) {
        const T p = ce_exp(((T)zr[i] - mx) - ls);
        gr[i] = (TOut)((i == y ? p - (T)1 : p) * invN);
      }
    }
  }
}
extern "C" __global__ void __launch_bounds__(1024) ce_softmax_f32_wide(const float* z, const int* l, float* g, int rows, int cols, double* st) { ce_wide_any<float, float, float, false>(z, l, g, rows, cols, st); }
extern "C" __global__ void __launch_bounds__(1024) ce_softmax_f64_wide(const double* z, const int* l, double* g, int rows, int cols, double* st) { ce_wide_any<double, double, double, false>(z, l, g, rows, cols, st); }
extern "C" __global__ void __launch_bounds__(1024) ce_softmax_f32in_f64_wide(const float* z, const int* l, float* g, int rows, int cols, double* st) { ce_wide_any<double, float, float, false>(z, l, g, rows, cols, st); }
extern "C" __global__ void __launch_bounds__(1024) ce_stablemax_f32_wide(const float* z, const int* l, float* g, int rows, int cols, double* st) { ce_wide_any<float, float, float, true>(z, l, g, rows, cols, st); }
extern "C" __global__ void __launch_bounds__(1024) ce_stablemax_f64_wide(const double* z, const int* l, double* g, int rows, int cols, double* st) { ce_wide_any<double, double, double, true>(z, l, g, rows, cols, st); }
extern "C" __global__ void __launch_bounds__(1024) ce_stablemax_f32in_f64_wide(const float* z, const int* l, float* g, int rows, int cols, double* st) { ce_wide_any<double, float, float, true>(z, l, g, rows, cols, st); }

// stats = (mean loss, collapsed share, zero-loss share) in f64. One block: each thread sums a run of rows in order,
// then block_sum's fixed tree; deterministic (the loss's last bits may differ from wasm's chunk order; counts exact).
extern "C" __global__ void __launch_bounds__(1024) ce_finish(const double* row_stats, int rows, double* stats) {
  const int per = (rows + blockDim.x - 1) / blockDim.x, r0 = threadIdx.x * per, r1 = min(rows, r0 + per);
  double loss = 0, sc = 0, zero = 0;
  for (int r = r0; r < r1; r++) { loss += row_stats[3LL * r]; sc += row_stats[3LL * r + 1]; zero += row_stats[3LL * r + 2]; }
  loss = block_sum(loss); sc = block_sum(sc); zero = block_sum(zero);
  if (threadIdx.x == 0) { stats[0] = loss / rows; stats[1] = sc / rows; stats[2] = zero / rows; }
}

// ---- quantization (bitsandbytes block-wise 8-bit and 4-bit, nearest code; ONNX dequantize), as the wasm kernels.

// absmax[b] = max |x| of block b from each thread's m (bits of |x|: NaN and ±Infinity compare above every finite
// value); returns f32(1 / max(absmax, 1e-38)) to every thread; bad[0] = the lowest block holding NaN/±Infinity
// (atomicMin over an INT_MAX start).
// The max of every thread's m (bits of |x|), in thread 0.
__device__ int block_max_bits(int m) {
  __shared__ int part[32];
  for (int o = 16; o > 0; o >>= 1) m = max(m, __shfl_xor_sync(0xffffffffu, m, o));
  if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = m;
  __syncthreads();
  if (threadIdx.x == 0) for (int k = 1; k < (int)(blockDim.x >> 5); k++) m = max(m, part[k]);
  return m;
}
__device__ float block_absmax(int m, float* absmax, int* bad) {
  __shared__ float block_inv;
  m = block_max_bits(m);
  if (threadIdx.x == 0) {
    const float a = __int_as_float(m);
    absmax[blockIdx.x] = a;
    block_inv = 1.f / fmaxf(a, 1e-38f);
    if (m >= 0x7f800000) atomicMin(bad, (int)blockIdx.x);
  }
  __syncthreads();
  return block_inv;
}
// block_absmax of block b of x, and inv[b]
extern "C" __global__ void quant_absmax_f32(const float* x, long long n, int bs, float* absmax, float* inv, int* bad) {
  const long long s = (long long)blockIdx.x * bs;
  const int len = (int)min((long long)bs, n - s);
  int m = 0;
  for (int i = threadIdx.x; i < len; i += blockDim.x) m = max(m, __float_as_int(x[s + i]) & 0x7fffffff);
  const float v = block_absmax(m, absmax, bad);
  if (threadIdx.x == 0) inv[blockIdx.x] = v;
}
// The same for one block too long for one CUDA block to read in good time ("tensor" blocks): the max bits over
// each CUDA block's grid-stride share into part, then one block folds them into absmax[0], inv[0] and bad.
extern "C" __global__ void quant_absmax_part(const float* x, long long n, int* part) {
  int m = 0;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
    m = max(m, __float_as_int(x[i]) & 0x7fffffff);
  m = block_max_bits(m);
  if (threadIdx.x == 0) part[blockIdx.x] = m;
}
extern "C" __global__ void __launch_bounds__(1024) quant_absmax_fold(const int* part, int parts, float* absmax, float* inv, int* bad) {
  int m = 0;
  for (int i = threadIdx.x; i < parts; i += blockDim.x) m = max(m, part[i]);
  const float v = block_absmax(m, absmax, bad);
  if (threadIdx.x == 0) inv[0] = v;
}
extern "C" __global__ void bad_init(int* bad) { bad[0] = 0x7fffffff; }
extern "C" __global__ void bad_finish(int* bad) { if (bad[0] == 0x7fffffff) bad[0] = -1; }

// The code of v: r = #{j : v > thr[j]} over 255 ascending thresholds (padded with +Infinity), then its code index
// ranks[r]. The thresholds come as a search tree in Eytzinger order, tree[1..255] (node i's children 2i and 2i + 1;
// cuda.ts builds it): the same 8 comparisons as a binary search over the sorted array, but step k reads within 2^k
// consecutive floats, where the sorted array's power-of-two strides put a warp's lookups in one shared-memory bank.
__device__ unsigned char code_of(float v, const float* tree, const unsigned char* ranks) {
  int i = 1;
#pragma unroll
  for (int l = 0; l < 8; l++) i = 2 * i + (v > tree[i] ? 1 : 0);
  return ranks[i - 256];
}
__device__ float scale_clamp(float x, float inv) { const float v = x * inv; return v > 1.f ? 1.f : v < -1.f ? -1.f : v; }

extern "C" __global__ void quant_codes_f32(const float* x, long long n, int bs, const float* inv, const float* tree, const unsigned char* ranks, unsigned char* codes) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
    codes[i] = code_of(scale_clamp(x[i], inv[idiv(i, bs)]), tree, ranks);
}

// The one-read quantizers (absmax, bad and codes as quant_absmax_f32 then quant_codes_f32 or quant_4bit_f32, the same
// bytes) hold a block's values in registers between its absmax and its codes, and the code table in shared memory
// (the codes' 8-step searches read it per element). 4-bit: element 2j's code is the high nibble of byte j, from
// even lane to its odd neighbour (every block starts at an even index: bs is a power of two, or the one block).
struct CodeTable { float tree[256]; unsigned char ranks[256]; };
__device__ void load_table(CodeTable& t, const float* tree, const unsigned char* ranks) {
  for (int i = threadIdx.x; i < 256; i += blockDim.x) { t.tree[i] = tree[i]; t.ranks[i] = ranks[i]; }
  __syncthreads();
}
// Writes element i's code c if the element exists (has): every lane of the warp calls it, as the 4-bit pairing is a
// shuffle (a missing odd element's code is the one nearest 0).
template <bool FOUR>
__device__ void put_code(unsigned char* out, long long i, bool has, int c) {
  if (FOUR) {
    const int lo = __shfl_down_sync(0xffffffffu, c, 1);
    if (!(threadIdx.x & 1) && has) out[i >> 1] = (unsigned char)((c << 4) | lo);
  } else if (has) out[i] = (unsigned char)c;
}

// The one-read kernels take a policy Q: a group's statistics (Q::Stats from each value, merged, moved by a shuffle),
// from them its parameters (q.param: the lane or thread told `write` stores the group's outputs and reports it bad),
// then each value's code (q.encode). AbsmaxCodes: block-wise 8-bit and 4-bit; AffineCodes (below): int8 / uint8.
struct AbsmaxCodes {
  const CodeTable* t;
  float* absmax;
  int* bad;
  typedef int Stats; // max |x| as bits (NaN and ±Infinity above every finite value)
  typedef float Param; // f32(1 / max(absmax, 1e-38))
  __device__ static int of(float v) { return __float_as_int(v) & 0x7fffffff; }
  __device__ static int merge(int a, int b) { return max(a, b); }
  __device__ static int shfl_xor(int a, int o) { return __shfl_xor_sync(0xffffffffu, a, o); }
  __device__ float param(int m, long long b, bool write) const {
    const float a = __int_as_float(m);
    if (write) {
      absmax[b] = a;
      if (m >= 0x7f800000) atomicMin(bad, (int)b);
    }
    return 1.f / fmaxf(a, 1e-38f);
  }
  __device__ int encode(float v, float inv) const { return code_of(scale_clamp(v, inv), t->tree, t->ranks); }
};

// A CUDA block per group of at most 16 * blockDim elements (4096 on 256 threads), bs apart (a value past the group
// is 0: no policy's statistics move for it).
template <bool FOUR, class Q>
__device__ void quant_block(const float* x, long long n, int bs, const Q& q, int pad_code, unsigned char* out) {
  __shared__ typename Q::Stats part[32];
  __shared__ typename Q::Param param;
  const long long s = (long long)blockIdx.x * bs;
  const int len = (int)min((long long)bs, n - s);
  float v[16];
  typename Q::Stats a = Q::of(0.f);
#pragma unroll
  for (int k = 0; k < 16; k++) {
    const int i = threadIdx.x + k * blockDim.x;
    v[k] = i < len ? x[s + i] : 0.f;
    a = Q::merge(a, Q::of(v[k]));
  }
  for (int o = 16; o > 0; o >>= 1) a = Q::merge(a, Q::shfl_xor(a, o));
  if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = a;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < (int)(blockDim.x >> 5); w++) a = Q::merge(a, part[w]);
    param = q.param(a, blockIdx.x, true);
  }
  __syncthreads();
  const typename Q::Param p = param;
#pragma unroll
  for (int k = 0; k < 16; k++) {
    const int i = threadIdx.x + k * blockDim.x;
    if (k * (int)blockDim.x < len) put_code<FOUR>(out, s + i, i < len, i < len ? q.encode(v[k], p) : pad_code);
  }
}

// Groups of bs = 32 * R elements (R = 1, 2, 4, 8 or 16; a lone group shorter than 512 is padded to such a bs), a warp
// per 512 elements: lane's slot j is element base + 32 j + lane, so each load is one coalesced row of 32, and a
// group is R consecutive rows. Its statistics: a merge over the lane's R slots (a butterfly over slot indices, all of
// them known at compile time, so v stays in registers), then over the 32 lanes; the leading slot's parameters go
// back to the group's other slots the same way. No barrier; 16 loads in flight a lane.
template <bool FOUR, class Q>
__device__ void quant_warp(const float* x, long long n, int bs, const Q& q, int pad_code, unsigned char* out) {
  const int R = bs >> 5, lane = threadIdx.x & 31;
  const long long base = ((long long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5)) * 512;
  float v[16];
  typename Q::Stats a[16];
  typename Q::Param p[16];
#pragma unroll
  for (int j = 0; j < 16; j++) {
    const long long i = base + 32 * j + lane;
    v[j] = i < n ? x[i] : 0.f;
    a[j] = Q::of(v[j]);
  }
#pragma unroll
  for (int d = 1; d < 16; d <<= 1)
    if (d < R)
#pragma unroll
      for (int j = 0; j < 16; j += 2 * d) a[j] = Q::merge(a[j], a[j + d]); // slot j now merges slots j .. j + 2d - 1
#pragma unroll
  for (int j = 0; j < 16; j++)
    if (j % R == 0) { // a group's leading slot: the merge over the lanes, then the group's parameters
      for (int o = 16; o > 0; o >>= 1) a[j] = Q::merge(a[j], Q::shfl_xor(a[j], o));
      p[j] = q.param(a[j], (base >> 5) / R + j / R, lane == 0 && base + 32 * j < n);
    }
#pragma unroll
  for (int d = 8; d > 0; d >>= 1)
    if (d < R)
#pragma unroll
      for (int j = 0; j < 16; j += 2 * d) p[j + d] = p[j];
#pragma unroll
  for (int j = 0; j < 16; j++) {
    const long long i = base + 32 * j + lane;
    if (base + 32 * j < n) put_code<FOUR>(out, i, i < n, i < n ? q.encode(v[j], p[j]) : pad_code);
  }
}

// Block-wise 8-bit / 4-bit: the code table into shared memory, then a CUDA block (quant_block) or a warp
// (quant_warp) a group
template <bool FOUR, bool WARP>
__device__ void quant_codes(const float* x, long long n, int bs, float* absmax, const float* tree, const unsigned char* ranks, int zero_code,
    unsigned char* out, int* bad) {
  __shared__ CodeTable t;
  load_table(t, tree, ranks);
  const AbsmaxCodes q{&t, absmax, bad};
  if (WARP) quant_warp<FOUR>(x, n, bs, q, zero_code, out);
  else quant_block<FOUR>(x, n, bs, q, zero_code, out);
}
extern "C" __global__ void quant_blockwise_f32(const float* x, long long n, int bs, float* absmax, const float* tree, const unsigned char* ranks,
    unsigned char* codes, int* bad) { quant_codes<false, false>(x, n, bs, absmax, tree, ranks, 0, codes, bad); }
extern "C" __global__ void quant_4bit_blockwise_f32(const float* x, long long n, int bs, float* absmax, const float* tree, const unsigned char* ranks,
    int zero_code, unsigned char* packed, int* bad) { quant_codes<true, false>(x, n, bs, absmax, tree, ranks, zero_code, packed, bad); }
extern "C" __global__ void quant_blockwise_f32_warp(const float* x, long long n, int bs, float* absmax, const float* tree, const unsigned char* ranks,
    unsigned char* codes, int* bad) { quant_codes<false, true>(x, n, bs, absmax, tree, ranks, 0, codes, bad); }
extern "C" __global__ void quant_4bit_blockwise_f32_warp(const float* x, long long n, int bs, float* absmax, const float* tree, const unsigned char* ranks,
    int zero_code, unsigned char* packed, int* bad) { quant_codes<true, true>(x, n, bs, absmax, tree, ranks, zero_code, packed, bad); }

// Stochastic rounding between the two code values around v (vals: the nu distinct code values ascending, ranks:
// their code indices): up iff rand[i] < (v - lo) / (hi - lo) in f32; exact values and values outside the code's
// range are deterministic (as asm/quant.ts quant_blockwise_stochastic_f32).
extern "C" __global__ void quant_stochastic_f32(const float* x, long long n, int bs, const float* inv, const float* vals, const unsigned char* ranks, int nu, const float* rand, unsigned char* codes) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    const float v = scale_clamp(x[i], inv[idiv(i, bs)]);
    int lo = 0, hi = nu; // the largest j with vals[j] <= v is lo - 1
    while (lo < hi) {
      const int mid = (lo + hi) >> 1;
      if (vals[mid] <= v) lo = mid + 1;
      else hi = mid;
    }
    const int j = lo - 1;
    int r;
    if (j < 0) r = 0;
    else if (j >= nu - 1) r = nu - 1;
    else if (vals[j] == v) r = j;
    else r = rand[i] < (v - vals[j]) / (vals[j + 1] - vals[j]) ? j + 1 : j;
    codes[i] = ranks[r];
  }
}

// lowbias32, as src/report/rng.ts mix32
__device__ unsigned mix32(unsigned x) {
  x ^= x >> 16; x *= 0x7feb352du; x ^= x >> 15; x *= 0x846ca68bu; x ^= x >> 16;
  return x;
}
// out[i] = floor(hash01(seed, i) * 2^24) / 2^24 (src/report/rng.ts): the top 24 bits of hash01's first word
extern "C" __global__ void uniforms_f32(float* out, long long n, int seed) {
  const unsigned s = mix32((unsigned)seed ^ 0x9e3779b9u);
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    const unsigned a = mix32(s ^ mix32((unsigned)i ^ mix32((unsigned)((unsigned long long)i >> 32) + 0x85ebca6bu)));
    out[i] = (float)(a >> 8) * 5.9604644775390625e-8f;
  }
}

// Double quantization's centring (as backends/host/quant.ts): offset = f32(mean of absmax) with the f64 sum in
// index order, so one thread sums (absmax has one value per block: n / blockSize), then centered = absmax - offset.
// Double quantization's centring, offset = f32(mean of absmax), in the host kernel's order: f64 sums of chunks of
// ABSMAX_CHUNK in order (absmax_part, a thread per chunk), the chunks' sums added in order (absmax_mean, one thread),
// then centered = absmax - offset (absmax_center_f32).
#define ABSMAX_CHUNK 4096
extern "C" __global__ void absmax_part(const float* absmax, long long n, double* part) {
  const long long parts = (n + ABSMAX_CHUNK - 1) / ABSMAX_CHUNK;
  for (long long c = blockIdx.x * (long long)blockDim.x + threadIdx.x; c < parts; c += (long long)gridDim.x * blockDim.x) {
    double s = 0;
    for (long long i = c * ABSMAX_CHUNK; i < min(n, (c + 1) * ABSMAX_CHUNK); i++) s += absmax[i];
    part[c] = s;
  }
}
extern "C" __global__ void absmax_mean(const double* part, long long n, float* offset) {
  if (blockIdx.x != 0 || threadIdx.x != 0) return;
  double s = 0;
  for (long long c = 0; c < (n + ABSMAX_CHUNK - 1) / ABSMAX_CHUNK; c++) s += part[c];
  offset[0] = (float)(s / (double)n);
}
extern "C" __global__ void absmax_center_f32(const float* absmax, long long n, const float* offset, float* centered) {
  const float o = offset[0];
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) centered[i] = absmax[i] - o;
}
extern "C" __global__ void absmax_uncenter_f32(float* x, long long n, const float* offset) {
  const float o = offset[0];
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) x[i] = x[i] + o;
}
extern "C" __global__ void to_f32(const double* x, long long n, float* out) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) out[i] = (float)x[i];
}

// f32 max as WebAssembly's f32.max: NaN when either is NaN
__device__ float max_nan(float a, float b) { return a != a || b != b ? a + b : fmaxf(a, b); }
// clamp to [-1, 1], NaN (an overflowed moment) to -1, as asm/quant.ts clamp1
__device__ float clamp1(float v) { return v > 1.f ? 1.f : v >= -1.f ? v : -1.f; }

// Adam with 8-bit block-wise states, bitsandbytes kOptimizerStatic8bit2StateBlockwise in its f32 order (as asm/quant.ts
// adam8bit_blockwise_f32): one CUDA block of 256 threads per state block. Each thread keeps its first 16 new moments
// in registers between the absmax reduction and the requantization (blocks up to 4096); past those it recomputes
// them from the old codes, which stay in place until their own thread rewrites them (same operations: same bits).
// A non-finite gradient leaves its parameter unchanged and its moments 0. tree/ranks: the codes' search tables.
__device__ void adam8bit_moments(float gv, float old1, float old2, float b1, float omb1, float b2, float omb2, float& v1, float& v2) {
  v1 = 0.f; v2 = 0.f;
  if (!(fabsf(gv) < NUMEDGE_INF)) return;
  v2 = old2 * b2 + omb2 * gv * gv;
  v1 = old1 * b1 + omb1 * gv;
}
// the new moments of element i, and its parameter updated when its gradient is finite
__device__ void adam8bit_param(long long i, float* p, const float* g, const unsigned char* c1, const unsigned char* c2, float am1, float am2,
    const float* code1, const float* code2, float b1, float omb1, float b2, float omb2, float epsc2, float step, float decay, float& v1, float& v2) {
  adam8bit_moments(g[i], code1[c1[i]] * am1, code2[c2[i]] * am2, b1, omb1, b2, omb2, v1, v2);
  if (!(fabsf(g[i]) < NUMEDGE_INF)) return;
  float pv = p[i] + step * (v1 / (sqrtf(v2) + epsc2));
  if (decay != 1.f) pv = pv * decay;
  p[i] = pv;
}
__device__ void adam8bit_requant(long long i, float v1, float v2, float d1, float d2, unsigned char* c1, unsigned char* c2,
    const float* code1, const float* tree1, const unsigned char* ranks1, const float* tree2, const unsigned char* ranks2) {
  int q1 = code_of(clamp1(v1 / d1), tree1, ranks1);
  // keep the sign of m through quantization (bitsandbytes); a NaN moment (its sign bit is arbitrary) keeps code 0
  if (v1 == v1 && (__float_as_uint(code1[q1]) >> 31) != (__float_as_uint(v1) >> 31)) q1 = v1 > 0.f ? q1 + 1 : q1 - 1;
  c1[i] = (unsigned char)q1;
  c2[i] = code_of(clamp1(v2 / d2), tree2, ranks2);
}
extern "C" __global__ void adam8bit_f32(float* p, const float* g, unsigned char* c1, unsigned char* c2, float* a1, float* a2, long long n, int bs,
    const float* code1, const float* tree1, const unsigned char* ranks1, const float* code2, const float* tree2, const unsigned char* ranks2,
    float b1, float omb1, float b2, float omb2, float epsc2, float step, float decay) {
  __shared__ float pm1[8], pm2[8];
  const long long s = (long long)blockIdx.x * bs;
  const int len = (int)min((long long)bs, n - s);
  const float am1 = a1[blockIdx.x], am2 = a2[blockIdx.x];
  float r1[16], r2[16], m1 = 0.f, m2 = 0.f;
#pragma unroll
  for (int t = 0; t < 16; t++) {
    const int j = threadIdx.x + t * 256;
    float v1 = 0.f, v2 = 0.f;
    if (j < len) {
      adam8bit_param(s + j, p, g, c1, c2, am1, am2, code1, code2, b1, omb1, b2, omb2, epsc2, step, decay, v1, v2);
      m1 = max_nan(m1, fabsf(v1));
      m2 = max_nan(m2, fabsf(v2));
    }
    r1[t] = v1;
    r2[t] = v2;
  }
  for (int j = threadIdx.x + 16 * 256; j < len; j += 256) {
    float v1, v2;
    adam8bit_param(s + j, p, g, c1, c2, am1, am2, code1, code2, b1, omb1, b2, omb2, epsc2, step, decay, v1, v2);
    m1 = max_nan(m1, fabsf(v1));
    m2 = max_nan(m2, fabsf(v2));
  }
  for (int o = 16; o > 0; o >>= 1) {
    m1 = max_nan(m1, __shfl_xor_sync(0xffffffffu, m1, o));
    m2 = max_nan(m2, __shfl_xor_sync(0xffffffffu, m2, o));
  }
  if ((threadIdx.x & 31) == 0) { pm1[threadIdx.x >> 5] = m1; pm2[threadIdx.x >> 5] = m2; }
  __syncthreads();
  for (int w = 0; w < 8; w++) { m1 = max_nan(m1, pm1[w]); m2 = max_nan(m2, pm2[w]); }
  if (threadIdx.x == 0) { a1[blockIdx.x] = m1; a2[blockIdx.x] = m2; }
  const float d1 = max_nan(m1, 1e-38f), d2 = max_nan(m2, 1e-38f);
#pragma unroll
  for (int t = 0; t < 16; t++) {
    const int j = threadIdx.x + t * 256;
    if (j >= len) break;
    adam8bit_requant(s + j, r1[t], r2[t], d1, d2, c1, c2, code1, tree1, ranks1, tree2, ranks2);
  }
  for (int j = threadIdx.x + 16 * 256; j < len; j += 256) {
    const long long i = s + j;
    float v1, v2;
    adam8bit_moments(g[i], code1[c1[i]] * am1, code2[c2[i]] * am2, b1, omb1, b2, omb2, v1, v2);
    adam8bit_requant(i, v1, v2, d1, d2, c1, c2, code1, tree1, ranks1, tree2, ranks2);
  }
}

// Adam with f32 states (bitsandbytes kOptimizer32bit2State order, as asm/quant.ts adam32_f32)
extern "C" __global__ void adam32_f32(float* p, const float* g, float* m, float* v, long long n,
    float b1, float omb1, float b2, float omb2, float epsc2, float step, float decay) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    const float gv = g[i];
    if (!(fabsf(gv) < NUMEDGE_INF)) continue;
    const float s1 = m[i] * b1 + omb1 * gv, s2 = v[i] * b2 + omb2 * (gv * gv);
    m[i] = s1;
    v[i] = s2;
    float pv = p[i] + step * (s1 / (sqrtf(s2) + epsc2));
    if (decay != 1.f) pv = pv * decay;
    p[i] = pv;
  }
}

// two codes a byte, element 2j in the high nibble; an odd length pads with the code nearest 0
extern "C" __global__ void quant_4bit_f32(const float* x, long long n, int bs, const float* inv, const float* tree, const unsigned char* ranks, int zero_code, unsigned char* packed) {
  const long long nb = (n + 1) / 2;
  for (long long j = blockIdx.x * (long long)blockDim.x + threadIdx.x; j < nb; j += (long long)gridDim.x * blockDim.x) {
    const long long i = 2 * j;
    const int hi = code_of(scale_clamp(x[i], inv[idiv(i, bs)]), tree, ranks);
    const int lo = i + 1 < n ? code_of(scale_clamp(x[i + 1], inv[idiv(i + 1, bs)]), tree, ranks) : zero_code;
    packed[j] = (unsigned char)((hi << 4) | lo);
  }
}

extern "C" __global__ void dequant_blockwise_u8(const unsigned char* codes, long long n, int bs, const float* absmax, const float* code, float* out) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
    out[i] = code[codes[i]] * absmax[idiv(i, bs)];
}

extern "C" __global__ void dequant_4bit(const unsigned char* packed, long long n, int bs, const float* absmax, const float* code, float* out) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    const int byte = packed[i >> 1];
    out[i] = code[(i & 1) ? (byte & 15) : (byte >> 4)] * absmax[idiv(i, bs)];
  }
}

// Affine (ONNX QuantizeLinear) per group of g, as asm/quant.ts quant_affine_f32. One block per group: bad
// (atomicMin) when the group holds NaN/±Infinity (or, computing unsigned parameters, its range overflows); with compute, the group's
// scale and zero point: signed absmax / 127 and 0, unsigned ONNX DynamicQuantizeLinear; a scale of 0 becomes 1.

// (m, mn, mx) of a group: max |x| as bits (>= 0x7f800000 for NaN and ±Infinity), min(0, min x), max(0, max x)
// (fminf/fmaxf skip NaN, which m flags); affine_fold combines each thread's into thread 0's.
struct AffineStats { int m; float mn, mx; };
__device__ AffineStats affine_stats(const float* x, long long from, long long to, long long step) {
  AffineStats a = {0, 0.f, 0.f};
  for (long long i = from; i < to; i += step) {
    const float v = x[i];
    a.m = max(a.m, __float_as_int(v) & 0x7fffffff);
    a.mn = fminf(a.mn, v);
    a.mx = fmaxf(a.mx, v);
  }
  return a;
}
__device__ AffineStats affine_fold(AffineStats a) {
  __shared__ int pm[32];
  __shared__ float pmn[32], pmx[32];
  for (int o = 16; o > 0; o >>= 1) {
    a.m = max(a.m, __shfl_xor_sync(0xffffffffu, a.m, o));
    a.mn = fminf(a.mn, __shfl_xor_sync(0xffffffffu, a.mn, o));
    a.mx = fmaxf(a.mx, __shfl_xor_sync(0xffffffffu, a.mx, o));
  }
  const int w = threadIdx.x >> 5, l = threadIdx.x & 31, nw = blockDim.x >> 5;
  if (l == 0) { pm[w] = a.m; pmn[w] = a.mn; pmx[w] = a.mx; }
  __syncthreads();
  if (threadIdx.x == 0) for (int k = 1; k < nw; k++) { a.m = max(a.m, pm[k]); a.mn = fminf(a.mn, pmn[k]); a.mx = fmaxf(a.mx, pmx[k]); }
  return a;
}
// A group's scale (0 becomes 1) and zero point from its stats; false for a bad group (NaN/±Infinity, or for
// unsigned an infinite range)
__device__ bool affine_param(AffineStats a, int is_signed, float& sc, int& z) {
  z = 0;
  if (a.m >= 0x7f800000) return false;
  if (is_signed) sc = __int_as_float(a.m) / 127.f;
  else {
    const float range = a.mx - a.mn;
    if (!(range < NUMEDGE_INF)) return false;
    sc = range / 255.f;
    if (sc > 0.f) z = (int)fminf(255.f, fmaxf(0.f, rintf(-a.mn / sc)));
  }
  if (sc == 0.f) sc = 1.f;
  return true;
}
// group b's scale and zero point from its (thread 0's) stats (compute), and whether it is bad into bad
__device__ void affine_params(AffineStats a, int b, int is_signed, int compute, float* scale, int* zp, int* bad) {
  bool isbad = a.m >= 0x7f800000; // given scales: only a non-finite x is bad
  if (compute) {
    float sc;
    int z;
    isbad = !affine_param(a, is_signed, sc, z);
    if (!isbad) {
      scale[b] = sc;
      zp[b] = z;
    }
  }
  if (isbad) atomicMin(bad, b);
}
extern "C" __global__ void quant_affine_params_f32(const float* x, long long n, int g, int is_signed, int compute, float* scale, int* zp, int* bad) {
  const long long s = (long long)blockIdx.x * g;
  const AffineStats a = affine_fold(affine_stats(x, s + threadIdx.x, min(s + g, n), blockDim.x));
  if (threadIdx.x == 0) affine_params(a, (int)blockIdx.x, is_signed, compute, scale, zp, bad);
}
// The same for one group too long for one CUDA block ("tensor"): stats over each block's grid-stride share into
// part (3 words a block), then one block folds them
extern "C" __global__ void quant_affine_part(const float* x, long long n, int* part) {
  const AffineStats a = affine_fold(affine_stats(x, blockIdx.x * (long long)blockDim.x + threadIdx.x, n, (long long)gridDim.x * blockDim.x));
  if (threadIdx.x == 0) { part[3 * blockIdx.x] = a.m; part[3 * blockIdx.x + 1] = __float_as_int(a.mn); part[3 * blockIdx.x + 2] = __float_as_int(a.mx); }
}
extern "C" __global__ void __launch_bounds__(1024) quant_affine_fold(const int* part, int parts, int is_signed, int compute, float* scale, int* zp, int* bad) {
  AffineStats a = {0, 0.f, 0.f};
  for (int i = threadIdx.x; i < parts; i += blockDim.x) {
    a.m = max(a.m, part[3 * i]);
    a.mn = fminf(a.mn, __int_as_float(part[3 * i + 1]));
    a.mx = fmaxf(a.mx, __int_as_float(part[3 * i + 2]));
  }
  a = affine_fold(a);
  if (threadIdx.x == 0) affine_params(a, 0, is_signed, compute, scale, zp, bad);
}

// q = saturate(rint(x / scale) + zp), half to even, int8 when is_signed (written as its byte)
__device__ unsigned char affine_q(float x, float sc, int z, int is_signed) {
  const float qmin = is_signed ? -128.f : 0.f, qmax = is_signed ? 127.f : 255.f;
  return (unsigned char)(int)fminf(qmax, fmaxf(qmin, rintf(x / sc) + (float)z));
}
extern "C" __global__ void quant_affine_f32(const float* x, long long n, int g, int is_signed, const float* scale, const int* zp, unsigned char* q) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    const long long k = idiv(i, g);
    q[i] = affine_q(x[i], scale[k], zp[k], is_signed);
  }
}

// quant_affine_params_f32 (computing the parameters) then quant_affine_f32 in one read of x, by quant_block or
// quant_warp: the same scale, zero point, q and bad (a bad group's q is written at scale 1, zero point 0; the call
// reports the group).
struct AffineCodes {
  int is_signed;
  float* scale;
  int* zp;
  int* bad;
  typedef AffineStats Stats;
  struct Param { float sc; int z; };
  __device__ static AffineStats of(float v) { return {__float_as_int(v) & 0x7fffffff, fminf(0.f, v), fmaxf(0.f, v)}; }
  __device__ static AffineStats merge(AffineStats a, AffineStats b) { return {max(a.m, b.m), fminf(a.mn, b.mn), fmaxf(a.mx, b.mx)}; }
  __device__ static AffineStats shfl_xor(AffineStats a, int o) {
    return {__shfl_xor_sync(0xffffffffu, a.m, o), __shfl_xor_sync(0xffffffffu, a.mn, o), __shfl_xor_sync(0xffffffffu, a.mx, o)};
  }
  __device__ Param param(AffineStats a, long long b, bool write) const {
    Param p;
    const bool ok = affine_param(a, is_signed, p.sc, p.z);
    if (!ok) p = {1.f, 0};
    if (write) {
      if (ok) { scale[b] = p.sc; zp[b] = p.z; }
      else atomicMin(bad, (int)b);
    }
    return p;
  }
  __device__ int encode(float v, Param p) const { return affine_q(v, p.sc, p.z, is_signed); }
};
extern "C" __global__ void quant_affine_blockwise_f32(const float* x, long long n, int g, int is_signed, float* scale, int* zp, unsigned char* q, int* bad) {
  quant_block<false>(x, n, g, AffineCodes{is_signed, scale, zp, bad}, 0, q);
}
extern "C" __global__ void quant_affine_blockwise_f32_warp(const float* x, long long n, int g, int is_signed, float* scale, int* zp, unsigned char* q, int* bad) {
  quant_warp<false>(x, n, g, AffineCodes{is_signed, scale, zp, bad}, 0, q);
}

// ggml Q8_0 / Q4_0, byte-exact with ggml-quants.c quantize_row_q8_0_ref / quantize_row_q4_0_ref (as asm/quant.ts):
// one warp per block of 32, lane j holding element j; an fp16 scale d (little-endian), then the quants.

// fp32 -> fp16 bits, round to nearest even (ggml_compute_fp32_to_fp16, the FP16 library's bit trick)
__device__ unsigned f32_to_f16(float f) {
  float base = (fabsf(f) * __int_as_float(0x77800000)) * __int_as_float(0x08800000);
  const unsigned w = __float_as_uint(f), shl1w = w + w, sign = w & 0x80000000u;
  unsigned bias = shl1w & 0xff000000u;
  if (bias < 0x71000000u) bias = 0x71000000u;
  base = __uint_as_float((bias >> 1) + 0x07800000u) + base;
  const unsigned bits = __float_as_uint(base);
  return (sign >> 16) | (shl1w > 0xff000000u ? 0x7e00u : ((bits >> 13) & 0x7c00u) + (bits & 0x0fffu));
}
__device__ float f16_to_f32(unsigned h) {
  const unsigned sign = (h & 0x8000u) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e == 0) { const float v = (float)m * __int_as_float(0x33800000); return sign ? -v : v; } // m * 2^-24, exact
  if (e == 31) return __uint_as_float(sign | 0x7f800000u | (m << 13));
  return __uint_as_float(sign | ((e + 112) << 23) | (m << 13));
}

// d = absmax / 127, q = roundf(x / d); a non-finite x * (1 / d) (subnormal d) is 0, as ggml on x86. bad: atomicMin.
extern "C" __global__ void quant_q8_0_f32(const float* x, long long nb, unsigned char* out, int* bad) {
  const long long b = ((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
  const int j = threadIdx.x & 31;
  if (b >= nb) return; // whole warps: blockDim is a multiple of 32
  const float v = x[b * 32 + j];
  int m = __float_as_int(v) & 0x7fffffff;
  for (int o = 16; o > 0; o >>= 1) m = max(m, __shfl_xor_sync(0xffffffffu, m, o));
  if (m >= 0x7f800000) { if (j == 0) atomicMin(bad, (int)b); return; }
  const float d = __int_as_float(m) / 127.f, id = d != 0.f ? 1.f / d : 0.f, q = v * id;
  unsigned char* o = out + b * 34;
  if (j == 0) { const unsigned h = f32_to_f16(d); o[0] = (unsigned char)h; o[1] = (unsigned char)(h >> 8); }
  o[2 + j] = fabsf(q) < NUMEDGE_INF ? (unsigned char)(int)roundf(q) : 0;
}

extern "C" __global__ void dequant_q8_0(const unsigned char* bytes, long long n, float* out) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    const unsigned char* src = bytes + (i >> 5) * 34;
    out[i] = (float)(signed char)src[2 + (i & 31)] * f16_to_f32(src[0] | (src[1] << 8));
  }
}

// d = (the first element of largest magnitude) / -8; q = min(15, trunc(x / d + 8.5)); byte j holds element j in
// the low nibble and element j + 16 in the high.
extern "C" __global__ void quant_q4_0_f32(const float* x, long long nb, unsigned char* out, int* bad) {
  const long long b = ((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
  const int j = threadIdx.x & 31;
  if (b >= nb) return;
  const float v = x[b * 32 + j];
  // the largest |v|, the lowest lane among equals: (|v| bits, 31 - lane)
  long long key = ((long long)(__float_as_int(v) & 0x7fffffff) << 5) | (31 - j);
  for (int o = 16; o > 0; o >>= 1) key = max(key, __shfl_xor_sync(0xffffffffu, key, o));
  if ((key >> 5) >= 0x7f800000) { if (j == 0) atomicMin(bad, (int)b); return; }
  // an all-zero block keeps ggml's initial max, +0 (so d = -0), whatever the zeros' signs
  const float mx = (key >> 5) == 0 ? 0.f : __shfl_sync(0xffffffffu, v, 31 - (int)(key & 31));
  const float d = mx / -8.f, id = d != 0.f ? 1.f / d : 0.f;
  const float t = v * id + 8.5f; // two roundings (--fmad=false): the product, then the sum
  const int q = fabsf(t) < NUMEDGE_INF ? min(15, (int)(signed char)(int)t) : 0;
  const int hi = __shfl_down_sync(0xffffffffu, q, 16);
  unsigned char* o = out + b * 18;
  if (j == 0) { const unsigned h = f32_to_f16(d); o[0] = (unsigned char)h; o[1] = (unsigned char)(h >> 8); }
  if (j < 16) o[2 + j] = (unsigned char)(q | (hi << 4));
}

extern "C" __global__ void dequant_q4_0(const unsigned char* bytes, long long n, float* out) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    const unsigned char* src = bytes + (i >> 5) * 18;
    const int j = (int)(i & 31), byte = src[2 + (j & 15)];
    out[i] = (float)((j < 16 ? byte & 15 : byte >> 4) - 8) * f16_to_f32(src[0] | (src[1] << 8));
  }
}

// out = f32(q - zp) * scale per group of g (ONNX DequantizeLinear)
extern "C" __global__ void dequant_affine(const unsigned char* q, long long n, int g, const float* scale, const int* zp, int is_signed, float* out) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    const long long k = idiv(i, g);
    const int c = is_signed ? (int)(signed char)q[i] : (int)q[i];
    out[i] = (float)(c - zp[k]) * scale[k];
  }
}

// ---- top-k: one thread per row keeps a sorted buffer of 64-bit keys, the wasm kernel's ranking rule: high half
// the value as an order-preserving int (NaN above everything, -0 equal to +0), low half ~index (ties: lower index
// first). Exact: values are copied, not computed. The buffer is in registers for k <= 32, else in `keys`
// ([rows, k] device scratch). sorted = 0 writes the same set in index order.
__device__ long long topk_key(float v, int i) {
  long long hi;
  if (v != v) hi = 0x7FFFFFFF;
  else {
    const int b = __float_as_int(v);
    const int o = b ^ ((b >> 31) & 0x7FFFFFFF);
    hi = o == -1 ? 0 : o;
  }
  return (long long)(((unsigned long long)hi << 32) | (unsigned int)(~i));
}
#define NUMEDGE_KEY_MIN ((long long)0x8000000000000000ull)

// buf[0..k) = the keys of the k best of x[0..n), best first
__device__ void topk_keys(const float* x, int n, int k, long long* buf) {
  for (int j = 0; j < k; j++) buf[j] = NUMEDGE_KEY_MIN; // below every key
  for (int i = 0; i < n; i++) {
    const long long key = topk_key(x[i], i);
    if (key <= buf[k - 1]) continue;
    int j = k - 1;
    for (; j > 0 && buf[j - 1] < key; j--) buf[j] = buf[j - 1];
    buf[j] = key;
  }
}

// The key of rank `rank` (1 = the largest) among key(0..n) (distinct unsigned keys, 1 <= rank <= n), for the
// whole block: 8 passes of 8 bits, each a shared histogram of the keys matching the prefix found so far. Keys as
// unsigned: a topk_key's signed order is the unsigned order of key ^ KEY_SIGN. Every thread gets the result.
#define KEY_SIGN 0x8000000000000000ull
template <typename KeyOf>
__device__ unsigned long long block_radix_select(KeyOf key, int n, int rank, int* hist, unsigned long long* chosen_prefix, int* chosen_need) {
  unsigned long long prefix = 0, mask = 0;
  int need = rank; // the rank, from the top, still to find among keys matching prefix
  for (int shift = 56; shift >= 0; shift -= 8) {
    for (int i = threadIdx.x; i < 256; i += blockDim.x) hist[i] = 0;
    __syncthreads();
    for (int t = threadIdx.x; t < n; t += blockDim.x) {
      const unsigned long long u = key(t);
      if ((u & mask) == prefix) atomicAdd(&hist[(int)((u >> shift) & 255u)], 1);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      int d = 255;
      for (; d > 0 && hist[d] < need; d--) need -= hist[d];
      *chosen_prefix = prefix | ((unsigned long long)d << shift);
      *chosen_need = need;
    }
    __syncthreads();
    prefix = *chosen_prefix;
    need = *chosen_need;
    mask |= 255ull << shift;
    __syncthreads(); // every thread has read them before the next pass writes
  }
  return prefix;
}

// k > 32: one thread per row, its k keys in `keys` ([rows, k] device scratch)
extern "C" __global__ void topk_f32(const float* x, float* vals, int* idx, int rows, int cols, int k, int sorted, long long* keys) {
  for (int r = blockIdx.x * blockDim.x + threadIdx.x; r < rows; r += gridDim.x * blockDim.x) {
    const float* xr = x + (long long)r * cols;
    long long* buf = keys + (long long)r * k;
    topk_keys(xr, cols, k, buf);
    if (!sorted) { // ascending index: descending ~index, the low halves as unsigned keys
      for (int j = 0; j < k; j++) buf[j] = (long long)(unsigned int)buf[j];
      for (int a = 1; a < k; a++) { const long long v = buf[a]; int j = a; for (; j > 0 && buf[j - 1] < v; j--) buf[j] = buf[j - 1]; buf[j] = v; }
    }
    for (int j = 0; j < k; j++) {
      const int i = ~(int)buf[j];
      idx[(long long)r * k + j] = i;
      vals[(long long)r * k + j] = xr[i];
    }
  }
}

// k <= K (4, 8, 16 or 32): the best K keys in registers, best first (every index known at compile time; a loop over a
// runtime k would put the buffer in local memory). Inserting a key is one compare-and-select per slot.
template <int K>
__device__ __forceinline__ void topk_insert(long long (&buf)[K], long long key) {
  if (key <= buf[K - 1]) return;
#pragma unroll
  for (int j = K - 1; j > 0; j--) buf[j] = key > buf[j - 1] ? buf[j - 1] : key > buf[j] ? key : buf[j];
  buf[0] = key > buf[0] ? key : buf[0];
}
// Writes row r's k best keys (buf, best first): in rank order, or (unsorted) in ascending index order.
template <int K>
__device__ __forceinline__ void topk_write(const long long (&buf)[K], const float* xr, float* vals, int* idx, long long r, int k, int sorted) {
#pragma unroll
  for (int a = 0; a < K; a++) {
    if (a >= k) break;
    int at = a;
    if (!sorted) { // the key's place among the k by index: how many have a lower index (a larger ~index)
      at = 0;
#pragma unroll
      for (int b = 0; b < K; b++) at += b < k && (unsigned int)buf[b] > (unsigned int)buf[a];
    }
    const int i = ~(int)buf[a];
    idx[r * k + at] = i;
    vals[r * k + at] = xr[i];
  }
}
// Short rows: one thread per row.
template <int K>
__device__ void topk_thread(const float* x, float* vals, int* idx, int rows, int cols, int k, int sorted) {
  for (int r = blockIdx.x * blockDim.x + threadIdx.x; r < rows; r += gridDim.x * blockDim.x) {
    const float* xr = x + (long long)r * cols;
    long long buf[K];
#pragma unroll
    for (int j = 0; j < K; j++) buf[j] = NUMEDGE_KEY_MIN; // below every key
    for (int i = 0; i < cols; i++) topk_insert<K>(buf, topk_key(xr[i], i));
    topk_write<K>(buf, xr, vals, idx, r, k, sorted);
  }
}
// Long rows: one warp per row. Each lane keeps the K best of its strided share (lane, lane + 32, ...); then k rounds
// of a warp-wide max over the lanes' best remaining keys (keys are distinct: one winner, which drops its best) give
// the row's k best in rank order, lane j holding the j-th. Same keys, same selection as topk_f32.
template <int K>
__device__ void topk_warp(const float* x, float* vals, int* idx, int rows, int cols, int k, int sorted) {
  const int lane = threadIdx.x & 31, warps = (gridDim.x * blockDim.x) >> 5;
  for (int r = (blockIdx.x * blockDim.x + threadIdx.x) >> 5; r < rows; r += warps) {
    const float* xr = x + (long long)r * cols;
    long long buf[K];
#pragma unroll
    for (int j = 0; j < K; j++) buf[j] = NUMEDGE_KEY_MIN;
    for (int i = lane; i < cols; i += 32) topk_insert<K>(buf, topk_key(xr[i], i));
    long long mine = NUMEDGE_KEY_MIN;
    for (int j = 0; j < k; j++) {
      long long best = buf[0];
      for (int o = 16; o > 0; o >>= 1) { const long long other = __shfl_xor_sync(0xffffffffu, best, o); best = other > best ? other : best; }
      if (buf[0] == best) {
#pragma unroll
        for (int q = 0; q < K - 1; q++) buf[q] = buf[q + 1];
        buf[K - 1] = NUMEDGE_KEY_MIN;
      }
      if (lane == j) mine = best;
    }
    if (!sorted) { // ascending index: rank the low halves (~index, larger = lower index) across the k lanes
      const unsigned int lo = (unsigned int)mine;
      int rank = 0;
      for (int j = 0; j < k; j++) { const unsigned int other = __shfl_sync(0xffffffffu, lo, j); rank += lane < k && other > lo; }
      if (lane < k) { const int i = ~(int)lo; idx[(long long)r * k + rank] = i; vals[(long long)r * k + rank] = xr[i]; }
    } else if (lane < k) {
      const int i = ~(int)mine;
      idx[(long long)r * k + lane] = i;
      vals[(long long)r * k + lane] = xr[i];
    }
  }
}
extern "C" __global__ void topk_f32_k4(const float* x, float* vals, int* idx, int rows, int cols, int k, int sorted) { topk_thread<4>(x, vals, idx, rows, cols, k, sorted); }
extern "C" __global__ void topk_warp_f32_k4(const float* x, float* vals, int* idx, int rows, int cols, int k, int sorted) { topk_warp<4>(x, vals, idx, rows, cols, k, sorted); }
extern "C" __global__ void topk_f32_k8(const float* x, float* vals, int* idx, int rows, int cols, int k, int sorted) { topk_thread<8>(x, vals, idx, rows, cols, k, sorted); }
extern "C" __global__ void topk_warp_f32_k8(const float* x, float* vals, int* idx, int rows, int cols, int k, int sorted) { topk_warp<8>(x, vals, idx, rows, cols, k, sorted); }
extern "C" __global__ void topk_f32_k16(const float* x, float* vals, int* idx, int rows, int cols, int k, int sorted) { topk_thread<16>(x, vals, idx, rows, cols, k, sorted); }
extern "C" __global__ void topk_warp_f32_k16(const float* x, float* vals, int* idx, int rows, int cols, int k, int sorted) { topk_warp<16>(x, vals, idx, rows, cols, k, sorted); }
extern "C" __global__ void topk_f32_k32(const float* x, float* vals, int* idx, int rows, int cols, int k, int sorted) { topk_thread<32>(x, vals, idx, rows, cols, k, sorted); }
extern "C" __global__ void topk_warp_f32_k32(const float* x, float* vals, int* idx, int rows, int cols, int k, int sorted) { topk_warp<32>(x, vals, idx, rows, cols, k, sorted); }

// Sort s[0..m) (m a power of two, at most a few thousand) in shared memory, ascending or descending: a bitonic
// network over the whole block, a barrier per step (every thread of the block must call it).
template <typename T>
__device__ void block_bitonic(T* s, int m, bool descending) {
  for (int w = 2; w <= m; w <<= 1)
    for (int j = w >> 1; j > 0; j >>= 1) {
      for (int i = threadIdx.x; i < m; i += blockDim.x) {
        const int q = i ^ j;
        if (q > i) {
          const T a = s[i], b = s[q];
          if ((((i & w) == 0) != descending) ? a > b : a < b) { s[i] = b; s[q] = a; }
        }
      }
      __syncthreads();
    }
}

// Long rows, 32 < k <= TOPK_BLOCK_K: one block per row. The k-th best key by block_radix_select, the k keys at or
// above it gathered into shared memory (in any order), a bitonic sort (best first; unsorted: lowest index first),
// then the row's k written. Same keys, same selection as topk_f32.
#define TOPK_BLOCK_K 1024
extern "C" __global__ void topk_block_f32(const float* x, float* vals, int* idx, int rows, int cols, int k, int sorted) {
  __shared__ int hist[256];
  __shared__ unsigned long long chosen_prefix, sel[TOPK_BLOCK_K];
  __shared__ int chosen_need, count;
  for (int r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* xr = x + (long long)r * cols;
    const auto key = [&](int i) { return (unsigned long long)topk_key(xr[i], i) ^ KEY_SIGN; };
    const unsigned long long thr = k >= cols ? 0ull : block_radix_select(key, cols, k, hist, &chosen_prefix, &chosen_need);
    if (threadIdx.x == 0) count = 0;
    __syncthreads();
    for (int i = threadIdx.x; i < cols; i += blockDim.x) {
      const unsigned long long u = key(i);
      // sort keys, larger first: the key, or (unsorted) ~index (larger = lower index); the low half is ~index in both
      if (u >= thr) sel[atomicAdd(&count, 1)] = sorted ? u : (unsigned long long)(unsigned int)(~i);
    }
    int m = 1;
    while (m < k) m <<= 1;
    for (int i = k + threadIdx.x; i < m; i += blockDim.x) sel[i] = 0; // below every sort key
    __syncthreads();
    block_bitonic(sel, m, true);
    for (int j = threadIdx.x; j < k; j += blockDim.x) {
      const int i = ~(int)(unsigned int)sel[j];
      idx[(long long)r * k + j] = i;
      vals[(long long)r * k + j] = xr[i];
    }
    __syncthreads(); // sel and count are rewritten for the next row
  }
}

// ---- MoE router (as asm/topk.ts route_*): one thread per token; scores in f64, rounded once to f32. Scoring modes:
// 0 softmax(z*scale), 1 sigmoid(z*scale), 2 stablemax(f32(z*scale)), 3 softmax(f32(f32(sigmoid(z))*scale)).
// Routing probability p = s, except sigmoid: p = s / sum(s). Sums that cross tokens are deterministic: pSum and the
// z-loss by a fixed split and tree (block_sum), counts by integer atomics, dispatch by chunk histograms and scans.
__device__ double sigmoid_d(double u) { const double e = exp(-fabs(u)); return u >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e); }

// logsumexp of a raw row in f64; a row holding NaN: NaN; +Infinity or only -Infinity: its max
__device__ double route_lse(const float* z, int n) {
  double m = -(double)NUMEDGE_INF;
  bool nan = false;
  for (int i = 0; i < n; i++) { const float v = z[i]; if (v != v) nan = true; else if (v > m) m = v; }
  if (nan) return NUMEDGE_DNAN;
  if (bad_max_f(m)) return m;
  double s = 0;
  for (int i = 0; i < n; i++) s += exp((double)z[i] - m);
  return m + log(s);
}

// s[0..n) = the scores of one token; returns what p divides s by (the sum for sigmoid, else 1). Row rules as the
// softmax family: softmax/stablemax rows holding NaN or +Infinity (or only -Infinity) score NaN.
__device__ double route_score_row(const float* z, float* s, int n, int mode, float scale) {
  if (mode == 1) {
    double S = 0;
    for (int i = 0; i < n; i++) { const float v = (float)sigmoid_d((double)(z[i] * scale)); s[i] = v; S += v; }
    return S;
  }
  if (mode == 2) {
    double S = 0;
    for (int i = 0; i < n; i++) S += stable_s((double)(z[i] * scale));
    const bool bad = !(S > 0 && S < (double)NUMEDGE_INF);
    for (int i = 0; i < n; i++) s[i] = bad ? NUMEDGE_NAN : (float)(stable_s((double)(z[i] * scale)) / S);
    return 1;
  }
  // softmax of v * t: mode 0 v = z, t = scale; mode 3 v = f32(f32(sigmoid(z)) * scale), t = 1
  const double t = mode == 0 ? (double)scale : 1.0;
  double m = -(double)NUMEDGE_INF;
  bool nan = false;
  for (int i = 0; i < n; i++) {
    const float v = mode == 0 ? z[i] : (float)sigmoid_d(z[i]) * scale;
    if (v != v) nan = true; else if (v > m) m = v;
  }
  if (nan || bad_max_f(m)) { for (int i = 0; i < n; i++) s[i] = NUMEDGE_NAN; return 1; }
  double sum = 0;
  for (int i = 0; i < n; i++) sum += exp(((double)(mode == 0 ? z[i] : (float)sigmoid_d(z[i]) * scale) - m) * t);
  for (int i = 0; i < n; i++) s[i] = (float)(exp(((double)(mode == 0 ? z[i] : (float)sigmoid_d(z[i]) * scale) - m) * t) / sum);
  return 1;
}

// scores [T, E], inv[t] = 1 / (what p divides by), lse[t] = logsumexp of the raw logits
extern "C" __global__ void route_score_f32(const float* z, int T, int E, int mode, float scale, float* s, double* inv, double* lse) {
  for (int t = blockIdx.x * blockDim.x + threadIdx.x; t < T; t += gridDim.x * blockDim.x) {
    const float* zr = z + (long long)t * E;
    inv[t] = 1.0 / route_score_row(zr, s + (long long)t * E, E, mode, scale);
    lse[t] = route_lse(zr, E);
  }
}

// pSum[e] += sum over tokens of s[t, e] * inv[t] in f64: one block per expert, a fixed split and tree
extern "C" __global__ void route_psum(const float* s, const double* inv, int T, int E, double* pSum) {
  for (int e = blockIdx.x; e < E; e += gridDim.x) {
    double v = 0;
    for (int t = threadIdx.x; t < T; t += blockDim.x) v += (double)s[(long long)t * E + e] * inv[t];
    v = block_sum(v);
    if (threadIdx.x == 0) pSum[e] += v;
  }
}

// Token choice: the top k of z (no bias, no groups: the scores are monotone in z) or of s + bias, group-limited
// (DeepSeek-V3: group score = sum of its top 2 with a bias, its max without; the best topkGroups groups stay
// eligible); weights from s (normalized with an f64 sum, scaled); pre[e] += 1 per selection. Scratch: sel [T, E]
// and gsc [T, groups] f32, keys [T, kmax] (kmax = max(k, topkGroups, 2)).
// kb: the keys' buffer, `kmax` keys of scratch a token (route_select_f32, K = 0) or K in registers
// (route_select_f32_kK, kmax <= K: loops over its first k or topkGroups keys run to K, every index known at compile
// time once unrolled)
template <int K, typename Buf>
__device__ __forceinline__ void route_select_row(const float* z, const float* s, const float* bias, long long t, int E, int k, int groups,
    int topkGroups, int normalize, float rscale, float* sel, float* gsc, Buf& kb, int* experts, float* weights, int* pre) {
  const float* sr = s + t * E;
  const float* src = z + t * E;
  if (bias || groups > 1) {
    float* sl = sel + t * E;
    for (int e = 0; e < E; e++) sl[e] = bias ? sr[e] + bias[e] : sr[e];
    if (groups > 1) {
      const int gs = E / groups, two = bias ? min(2, gs) : 1;
      float* gr = gsc + t * groups;
      for (int g = 0; g < groups; g++) {
        const float* gp = sl + g * gs;
        kb.select(gp, gs, two);
        float v = gp[~(int)kb.at(0)];
        if (two == 2) v += gp[~(int)kb.at(1)];
        gr[g] = v;
      }
      kb.select(gr, groups, topkGroups);
      for (int g = 0; g < groups; g++) {
        bool keep = false;
#pragma unroll
        for (int j = 0; j < (K > 0 ? K : topkGroups); j++) keep |= j < topkGroups && ~(int)kb.at(j) == g;
        if (!keep) for (int i = 0; i < gs; i++) sl[g * gs + i] = -NUMEDGE_INF;
      }
    }
    src = sl;
  }
  kb.select(src, E, k);
  int* er = experts + t * k;
  float* wr = weights + t * k;
  double sum = 0;
#pragma unroll
  for (int j = 0; j < (K > 0 ? K : k); j++) if (j < k) sum += (double)sr[~(int)kb.at(j)];
  const double c = normalize && sum > 0 ? (double)rscale / sum : (double)rscale;
#pragma unroll
  for (int j = 0; j < (K > 0 ? K : k); j++) {
    if (j >= k) break;
    const int e = ~(int)kb.at(j);
    er[j] = e;
    wr[j] = (float)((double)sr[e] * c);
    atomicAdd(pre + e, 1);
  }
}
// The two buffers: select(x, n, k) leaves the k best keys of x[0..n) first, best first; at(j) reads the j-th.
struct ScratchKeys {
  long long* kb;
  __device__ void select(const float* x, int n, int k) { topk_keys(x, n, k, kb); }
  __device__ long long at(int j) const { return kb[j]; }
};
template <int K>
struct RegisterKeys {
  long long buf[K];
  __device__ __forceinline__ void select(const float* x, int n, int) {
#pragma unroll
    for (int j = 0; j < K; j++) buf[j] = NUMEDGE_KEY_MIN;
    for (int i = 0; i < n; i++) topk_insert<K>(buf, topk_key(x[i], i));
  }
  __device__ __forceinline__ long long at(int j) const { return buf[j]; }
};
extern "C" __global__ void route_select_f32(const float* z, const float* s, const float* bias, int T, int E, int k, int groups, int topkGroups,
    int normalize, float rscale, float* sel, float* gsc, long long* keys, int kmax, int* experts, float* weights, int* pre) {
  for (int t = blockIdx.x * blockDim.x + threadIdx.x; t < T; t += gridDim.x * blockDim.x) {
    ScratchKeys kb{keys + (long long)t * kmax};
    route_select_row<0>(z, s, bias, t, E, k, groups, topkGroups, normalize, rscale, sel, gsc, kb, experts, weights, pre);
  }
}
template <int K>
__device__ void route_select_k(const float* z, const float* s, const float* bias, int T, int E, int k, int groups, int topkGroups,
    int normalize, float rscale, float* sel, float* gsc, int* experts, float* weights, int* pre) {
  for (int t = blockIdx.x * blockDim.x + threadIdx.x; t < T; t += gridDim.x * blockDim.x) {
    RegisterKeys<K> kb;
    route_select_row<K>(z, s, bias, t, E, k, groups, topkGroups, normalize, rscale, sel, gsc, kb, experts, weights, pre);
  }
}
extern "C" __global__ void route_select_f32_k4(const float* z, const float* s, const float* bias, int T, int E, int k, int groups, int topkGroups,
    int normalize, float rscale, float* sel, float* gsc, long long* keys, int kmax, int* experts, float* weights, int* pre) {
  route_select_k<4>(z, s, bias, T, E, k, groups, topkGroups, normalize, rscale, sel, gsc, experts, weights, pre);
}
extern "C" __global__ void route_select_f32_k8(const float* z, const float* s, const float* bias, int T, int E, int k, int groups, int topkGroups,
    int normalize, float rscale, float* sel, float* gsc, long long* keys, int kmax, int* experts, float* weights, int* pre) {
  route_select_k<8>(z, s, bias, T, E, k, groups, topkGroups, normalize, rscale, sel, gsc, experts, weights, pre);
}
extern "C" __global__ void route_select_f32_k16(const float* z, const float* s, const float* bias, int T, int E, int k, int groups, int topkGroups,
    int normalize, float rscale, float* sel, float* gsc, long long* keys, int kmax, int* experts, float* weights, int* pre) {
  route_select_k<16>(z, s, bias, T, E, k, groups, topkGroups, normalize, rscale, sel, gsc, experts, weights, pre);
}
extern "C" __global__ void route_select_f32_k32(const float* z, const float* s, const float* bias, int T, int E, int k, int groups, int topkGroups,
    int normalize, float rscale, float* sel, float* gsc, long long* keys, int kmax, int* experts, float* weights, int* pre) {
  route_select_k<32>(z, s, bias, T, E, k, groups, topkGroups, normalize, rscale, sel, gsc, experts, weights, pre);
}

// Expert choice: expert e takes the cap tokens with the largest keys key(s[t, e] + bias[e], t) (topk_key: distinct,
// ties to the lower token). route_ec_threshold finds each expert's cap-th largest key by an MSB-first radix select
// (8 passes of 8 bits, one block per expert: O(T) per pass), then route_ec_select marks every key at or above it.
// Exact, and the same choice as ranking all T tokens.
extern "C" __global__ void __launch_bounds__(1024) route_ec_threshold_f32(const float* s, const float* bias, int T, int E, int cap, long long* thr) {
  __shared__ int hist[256];
  __shared__ unsigned long long chosen_prefix;
  __shared__ int chosen_need;
  for (int e = blockIdx.x; e < E; e += gridDim.x) {
    if (cap <= 0 || cap >= T) { // no token (route_ec_select takes none: every key may be chosen), or every token
      if (threadIdx.x == 0) thr[e] = NUMEDGE_KEY_MIN; // no key is below it
      continue;
    }
    const float b = bias ? bias[e] : 0.f;
    const unsigned long long u = block_radix_select([&](int t) { return (unsigned long long)topk_key(s[(long long)t * E + e] + b, t) ^ KEY_SIGN; },
      T, cap, hist, &chosen_prefix, &chosen_need);
    if (threadIdx.x == 0) thr[e] = (long long)(u ^ KEY_SIGN);
  }
}
// (cap <= 0 chooses nothing: no threshold excludes every key, a NaN score at token 0 has the largest)
extern "C" __global__ void route_ec_select_f32(const float* s, const float* bias, int T, int E, int cap, const long long* thr, int* experts, float* weights) {
  const long long n = (long long)T * E;
  for (long long a = blockIdx.x * (long long)blockDim.x + threadIdx.x; a < n; a += (long long)gridDim.x * blockDim.x) {
    const int t = (int)idiv(a, E), e = (int)(a - (long long)t * E);
    const bool chosen = cap > 0 && topk_key(s[a] + (bias ? bias[e] : 0.f), t) >= thr[e];
    experts[a] = chosen ? e : -1;
    weights[a] = chosen ? s[a] : 0.f;
  }
}

// per token: its weights normalized (when normalize and their f64 sum > 0) and scaled; *untaken += 1 when no expert took it
extern "C" __global__ void route_ec_finish(const int* experts, float* weights, int T, int E, int normalize, float rscale, int* untaken) {
  for (int t = blockIdx.x * blockDim.x + threadIdx.x; t < T; t += gridDim.x * blockDim.x) {
    const long long o = (long long)t * E;
    double sum = 0;
    int n = 0;
    for (int e = 0; e < E; e++) if (experts[o + e] >= 0) { sum += (double)weights[o + e]; n++; }
    if (n == 0) atomicAdd(untaken, 1);
    const double c = normalize && sum > 0 ? (double)rscale / sum : (double)rscale;
    for (int e = 0; e < E; e++) weights[o + e] = (float)((double)weights[o + e] * c);
  }
}

extern "C" __global__ void route_ec_stats(int* pre, int E, int cap, const int* untaken, double* stats) {
  if (blockIdx.x != 0 || threadIdx.x != 0) return;
  for (int e = 0; e < E; e++) pre[e] += cap;
  stats[0] = (double)untaken[0];
}

// ---- dispatch (routeDispatch): chunks of `chunk` assignments (256, more when chunks x E would make hist large),
// a block of 256 threads per chunk. hist[c, e] = chunk c's assignments to e, neg[c] = its -1 slots; per expert an
// exclusive scan over chunks gives each assignment's rank among e's, so the capacity drops the same assignments as a
// walk in order; then each chunk places its own in order.
extern "C" __global__ void dispatch_count(const int* experts, int n, int E, int chunk, int* hist, int* neg) {
  const int chunks = (int)(((long long)n + chunk - 1) / chunk);
  for (int c = blockIdx.x; c < chunks; c += gridDim.x) {
    int* h = hist + (long long)c * E;
    for (int e = threadIdx.x; e < E; e += blockDim.x) h[e] = 0;
    __syncthreads();
    const long long end = min((long long)n, (long long)(c + 1) * chunk);
    int none = 0; // counted apart: in expert choice most slots have no expert, and one atomic address would serialize
    for (long long a = (long long)c * chunk + threadIdx.x; a < end; a += blockDim.x) { // integer atomics: exact counts
      const int e = experts[a];
      if (e < 0) none++;
      else atomicAdd(h + e, 1);
    }
    none = block_sum_t<int>(none);
    if (threadIdx.x == 0) neg[c] = none;
  }
}

// base[c, e] = e's assignments in chunks before c; total[e] = all of them; counts[e] = those kept (cap >= 0: at most cap).
// One block of 256 threads per expert: each thread sums a run of chunks, a scan over the threads' sums, then each
// thread writes its run's bases (expert choice has T*E/256 chunks: a walk by one thread per expert was the bottleneck).
extern "C" __global__ void dispatch_scan(const int* hist, int chunks, int E, int cap, int* base, int* counts, int* total) {
  const int per = (chunks + 255) / 256, c0 = min(chunks, (int)threadIdx.x * per), c1 = min(chunks, c0 + per);
  for (int e = blockIdx.x; e < E; e += gridDim.x) {
    int acc = 0;
    for (int c = c0; c < c1; c++) acc += hist[(long long)c * E + e];
    int run;
    acc = block_scan_exclusive(acc, &run);
    if (threadIdx.x == 0) {
      total[e] = run;
      counts[e] = cap >= 0 && run > cap ? cap : run;
    }
    for (int c = c0; c < c1; c++) { base[(long long)c * E + e] = acc; acc += hist[(long long)c * E + e]; }
  }
}

// neg[c] += chunk c's assignments the capacity drops
extern "C" __global__ void dispatch_drops(const int* hist, const int* base, int chunks, int E, int cap, int* neg) {
  for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < chunks; c += gridDim.x * blockDim.x) {
    int d = 0;
    for (int e = 0; e < E; e++) {
      const int h = hist[(long long)c * E + e], room = cap - base[(long long)c * E + e];
      d += h - (room < 0 ? 0 : room > h ? h : room);
    }
    neg[c] += d;
  }
}

// one block of 1024 threads: offsets = exclusive cumsum of counts (offsets[E] = kept); neg[c] becomes where chunk
// c's unplaced assignments (dropped or -1) start in order; stats[0] (when given) = the dropped count. Each thread
// takes a run of experts, then a run of chunks, and a block scan over the runs places them.
extern "C" __global__ void __launch_bounds__(1024) dispatch_offsets(const int* counts, const int* total, int E, int chunks, int* offsets, int* neg, double* stats) {
  if (blockIdx.x != 0) return;
  const int pe = (E + blockDim.x - 1) / blockDim.x, e0 = min(E, (int)threadIdx.x * pe), e1 = min(E, e0 + pe);
  int acc = 0, kept;
  long long dropped = 0;
  for (int e = e0; e < e1; e++) { acc += counts[e]; dropped += total[e] - counts[e]; }
  acc = block_scan_exclusive(acc, &kept);
  for (int e = e0; e < e1; e++) { offsets[e] = acc; acc += counts[e]; }
  dropped = block_sum_t<long long>(dropped);
  if (threadIdx.x == 0) {
    offsets[E] = kept;
    if (stats) stats[0] = (double)dropped;
  }
  const int per = (chunks + blockDim.x - 1) / blockDim.x, c0 = min(chunks, (int)threadIdx.x * per), c1 = min(chunks, c0 + per);
  acc = 0;
  for (int c = c0; c < c1; c++) acc += neg[c];
  int unplaced;
  acc = kept + block_scan_exclusive(acc, &unplaced);
  for (int c = c0; c < c1; c++) { const int v = neg[c]; neg[c] = acc; acc += v; }
}

// per chunk, in assignment order: a kept one to offsets[e] + its rank; a dropped one (experts -1, weight 0) or a
// -1 slot to the tail. hist is the chunk's cursor. 256 assignments at a time: every warp finds a lane's rank among
// its equal experts by ballots (E + 1 classes, none included), then one warp after another reads the cursors, its
// leader of each expert moves the expert's, lane 0 the tail.
extern "C" __global__ void dispatch_place(int* experts, float* weights, int n, int E, int chunk, int cap, int* hist, const int* base, const int* offsets,
    const int* neg, int* order) {
  __shared__ int tail;
  const int chunks = (int)(((long long)n + chunk - 1) / chunk), lane = threadIdx.x & 31, w = threadIdx.x >> 5, bits = 32 - __clz(E);
  const unsigned ALL = 0xffffffffu, below = (1u << lane) - 1u;
  for (int c = blockIdx.x; c < chunks; c += gridDim.x) {
    int* cur = hist + (long long)c * E;
    for (int e = threadIdx.x; e < E; e += blockDim.x) cur[e] = base[(long long)c * E + e];
    if (threadIdx.x == 0) tail = neg[c];
    __syncthreads();
    const long long end = min((long long)n, (long long)(c + 1) * chunk);
    for (long long t0 = (long long)c * chunk; t0 < end; t0 += blockDim.x) {
      // every warp at once: its assignments and their peers; then one warp after another: the cursors
      const bool valid = t0 + threadIdx.x < end;
      const int a = valid ? (int)(t0 + threadIdx.x) : 0, e = valid ? experts[a] : -1, x = e < 0 ? 0 : e + 1; // class 0: no expert (any negative, as dispatch_count)
      const unsigned peers = __ballot_sync(ALL, valid) & warp_peers(x, bits);
      const int first = valid && e >= 0 ? offsets[e] : 0;
      for (int step = 0; step < (int)(blockDim.x >> 5); step++) {
        if (w == step) {
          int r = 0;
          bool placed = false;
          if (valid && e >= 0) {
            r = cur[e] + __popc(peers & below);
            placed = !(cap >= 0 && r >= cap);
          }
          const bool unplaced = valid && !placed;
          const unsigned out = __ballot_sync(ALL, unplaced);
          if (unplaced) {
            order[tail + __popc(out & below)] = a;
            if (e >= 0) { experts[a] = -1; weights[a] = 0.f; }
          } else if (valid) order[first + r] = a;
          __syncwarp(); // every lane has read cur and tail
          if (valid && e >= 0 && (peers & below) == 0) cur[e] += __popc(peers);
          if (lane == 0) tail += __popc(out);
        }
        __syncthreads(); // the next warp sees the cursors this one moved
      }
    }
  }
}

// Losses: f = pre / fDen, stats[1] = E * sum_e f_e pSum_e / T (index order), coef[e] = E f_e / T, stats[2] = mean
// lse^2 (a fixed split and tree). One block.
extern "C" __global__ void route_losses(const int* pre, const double* pSum, const double* lse, int T, int E, double fDen, double* coef, double* stats) {
  double z = 0;
  for (int t = threadIdx.x; t < T; t += blockDim.x) z += lse[t] * lse[t];
  z = block_sum(z);
  if (threadIdx.x != 0) return;
  double aux = 0;
  for (int e = 0; e < E; e++) {
    const double f = (double)pre[e] / fDen;
    aux += f * (pSum[e] / T);
    coef[e] = (E * f) / T;
  }
  stats[1] = aux * E;
  stats[2] = z / T;
}

// d/dz of sum_e coef_e p_e (aux) and 2 lse softmax(z) / T (z-loss) per token; either output may be null. The scores
// are built in the output row, then replaced by the gradient.
extern "C" __global__ void route_grad_f32(const float* z, int T, int E, int mode, float scale, const double* coef, const double* lse, float* aux, float* zg) {
  const double invT = 1.0 / (double)T;
  for (int t = blockIdx.x * blockDim.x + threadIdx.x; t < T; t += gridDim.x * blockDim.x) {
    const float* zr = z + (long long)t * E;
    if (zg) {
      float* g = zg + (long long)t * E;
      route_score_row(zr, g, E, 0, 1.f);
      const float c = (float)(2 * lse[t] * invT);
      for (int e = 0; e < E; e++) g[e] = g[e] * c;
    }
    if (!aux) continue;
    float* a = aux + (long long)t * E;
    const double S = route_score_row(zr, a, E, mode, scale), inv = mode == 1 ? 1.0 / S : 1.0;
    double gp = 0;
    for (int e = 0; e < E; e++) gp += coef[e] * (double)a[e] * inv;
    for (int e = 0; e < E; e++) {
      const double sv = a[e], d = coef[e] - gp;
      double g;
      if (mode == 0) g = sv * d;
      else if (mode == 1) g = sv * (1 - sv) * d * inv;
      else if (mode == 2) g = sv * d / (1 + fabs((double)zr[e] * (double)scale));
      else { const double sg = (float)sigmoid_d(zr[e]); g = sv * d * sg * (1 - sg); }
      a[e] = (float)(g * (double)scale);
    }
  }
}

// bias[e] = f32(bias[e] + rate * sign(mean(counts) - counts[e])), the mean in f64 (index order)
extern "C" __global__ void update_bias(float* bias, const int* counts, int E, double rate) {
  if (blockIdx.x != 0 || threadIdx.x != 0) return;
  double sum = 0;
  for (int e = 0; e < E; e++) sum += counts[e];
  const double mean = sum / E;
  for (int e = 0; e < E; e++) {
    const double d = mean - counts[e];
    bias[e] = (float)((double)bias[e] + rate * (d > 0 ? 1.0 : d < 0 ? -1.0 : 0.0));
  }
}

// ---- combine: each token's rows p (order[p] / slots = t) listed in increasing p, then summed in that order as the
// wasm kernel does (f32, out starting at 0): bit-identical, no float atomics. cnt/cur zeroed by the caller.
extern "C" __global__ void combine_count(const int* order, int kept, int slots, int* cnt) {
  for (int p = blockIdx.x * blockDim.x + threadIdx.x; p < kept; p += gridDim.x * blockDim.x) atomicAdd(cnt + order[p] / slots, 1);
}

// exclusive scan of x[0..n) into y[0..n], y[n] = the total: part[c] = sums of chunks of 1024, one thread scans those
#define SCAN_CHUNK 1024
extern "C" __global__ void scan_part(const int* x, int n, int* part) {
  const int chunks = (n + SCAN_CHUNK - 1) / SCAN_CHUNK;
  for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < chunks; c += gridDim.x * blockDim.x) {
    int s = 0;
    for (int i = c * SCAN_CHUNK; i < min(n, (c + 1) * SCAN_CHUNK); i++) s += x[i];
    part[c] = s;
  }
}
extern "C" __global__ void scan_top(int* part, int n, int* y) {
  if (blockIdx.x != 0 || threadIdx.x != 0) return;
  int acc = 0;
  for (int c = 0; c < (n + SCAN_CHUNK - 1) / SCAN_CHUNK; c++) { const int v = part[c]; part[c] = acc; acc += v; }
  y[n] = acc;
}
extern "C" __global__ void scan_apply(const int* x, int n, const int* part, int* y) {
  const int chunks = (n + SCAN_CHUNK - 1) / SCAN_CHUNK;
  for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < chunks; c += gridDim.x * blockDim.x) {
    int s = part[c];
    for (int i = c * SCAN_CHUNK; i < min(n, (c + 1) * SCAN_CHUNK); i++) { y[i] = s; s += x[i]; }
  }
}

// list[start[t] ..] = token t's rows p (in any order, then sorted by combine_sort)
extern "C" __global__ void combine_place(const int* order, int kept, int slots, const int* start, int* cur, int* list) {
  for (int p = blockIdx.x * blockDim.x + threadIdx.x; p < kept; p += gridDim.x * blockDim.x) {
    const int t = order[p] / slots;
    list[start[t] + atomicAdd(cur + t, 1)] = p;
  }
}
extern "C" __global__ void combine_sort(const int* start, int T, int* list) {
  for (int t = blockIdx.x * blockDim.x + threadIdx.x; t < T; t += gridDim.x * blockDim.x) {
    for (int a = start[t] + 1; a < start[t + 1]; a++) {
      const int v = list[a];
      int j = a;
      for (; j > start[t] && list[j - 1] > v; j--) list[j] = list[j - 1];
      list[j] = v;
    }
  }
}
// out[t, h] = sum over t's rows p, in increasing p, of weights[order[p]] * eo[p, h]
extern "C" __global__ void combine_gather_f32(const float* eo, const int* order, const float* weights, const int* list, const int* start,
    int T, int hidden, float* out) {
  const long long n = (long long)T * hidden;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    const int t = (int)idiv(i, hidden), h = (int)(i - (long long)t * hidden);
    float acc = 0.f;
    for (int q = start[t]; q < start[t + 1]; q++) {
      const int p = list[q];
      acc = acc + eo[(long long)p * hidden + h] * weights[order[p]];
    }
    out[i] = acc;
  }
}
