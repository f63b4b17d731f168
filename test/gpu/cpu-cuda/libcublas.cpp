// A fake cuBLAS over the CPU device: the six entry points cublas.ts binds, in the same library as the fake libcuda
// (cpu-driver.ts compiles them together; fakeLibcuda() names it libcublas.so.13 too), so that a GEMM goes on the
// stream in order with the kernels and a capture records it with them. Column-major, as cuBLAS; sums in the type
// (tests hold this and real cuBLAS to the GEMM bound). Checks what cuBLAS checks (sizes, leading dimensions) and what
// it cannot: each matrix inside one allocation, when the GEMM runs (a fault, as an illegal address on a GPU).
#include <algorithm>

namespace fake {
struct Blas { void* stream = nullptr; int math = 0; };
enum { BLAS_OK = 0, BLAS_NOT_INITIALIZED = 1, BLAS_INVALID_VALUE = 7, BLAS_EXECUTION_FAILED = 13 };
// a rows x cols column-major matrix with leading dimension ld, all inside one allocation
bool fits(const void* p, int rows, int cols, int ld, size_t elem) {
  return rows == 0 || cols == 0 || inside((uint64_t)p, ((size_t)(cols - 1) * ld + rows) * elem);
}
// TF32 (CUBLAS_TF32_TENSOR_OP_MATH): each product's inputs rounded to a 10-bit mantissa, nearest even
float tf32(float x) {
  uint32_t u;
  memcpy(&u, &x, 4);
  if ((u & 0x7f800000) != 0x7f800000) u = (u + 0xfff + ((u >> 13) & 1)) & ~0x1fffu;
  memcpy(&x, &u, 4);
  return x;
}
// a column-major matrix's elements as TF32 (a copy, so the GEMM's inner loop stays a plain multiply-add)
template <typename T> std::vector<T> rounded(const T* p, int rows, int cols, int ld) {
  std::vector<T> v(rows && cols ? (size_t)(cols - 1) * ld + rows : 0);
  for (size_t i = 0; i < v.size(); i++) v[i] = (T)tf32((float)p[i]);
  return v;
}
template <typename T> int gemm(Blas* h, int ta, int tb, int m, int n, int k, const T* alpha, const T* A, int lda, const T* B, int ldb, const T* beta, T* C, int ldc) {
  if (!h) return BLAS_NOT_INITIALIZED;
  if (sticky) return BLAS_EXECUTION_FAILED;
  if (ta < 0 || ta > 1 || tb < 0 || tb > 1 || m < 0 || n < 0 || k < 0 || lda < std::max(1, ta ? k : m) || ldb < std::max(1, tb ? n : k) || ldc < std::max(1, m))
    return BLAS_INVALID_VALUE;
  const T a = *alpha, b = *beta; // host scalars: read at the call, as cuBLAS's host pointer mode does
  const bool reads = k > 0 && a != 0, round = h->math == 3 && sizeof(T) == 4; // alpha 0 (or k 0): A and B are not read
  const int ar = ta ? k : m, ac = ta ? m : k, br = tb ? n : k, bc = tb ? k : n;
  Item it{};
  it.host = [=] { // checked when it runs too: a graph replayed after its memory was freed faults, as on a GPU
    if ((reads && (!fits(A, ar, ac, lda, sizeof(T)) || !fits(B, br, bc, ldb, sizeof(T)))) || !fits(C, m, n, ldc, sizeof(T))) {
      last = "a GEMM matrix is not inside one allocation";
      return recoverable ? 999 : sticky = 700;
    }
    std::vector<T> ra, rb;
    const T *A1 = A, *B1 = B;
    if (reads && round) ra = rounded(A, ar, ac, lda), rb = rounded(B, br, bc, ldb), A1 = ra.data(), B1 = rb.data();
    // in T, k in order (cuBLAS sums in T too, with FMAs, in an order of its own; a software fma here would make the
    // paper-size dry runs minutes long)
    for (int j = 0; j < n; j++)
      for (int i = 0; i < m; i++) {
        T s = 0;
        if (reads)
          for (int p = 0; p < k; p++) s += (ta ? A1[p + (size_t)i * lda] : A1[i + (size_t)p * lda]) * (tb ? B1[j + (size_t)p * ldb] : B1[p + (size_t)j * ldb]);
        T& c = C[i + (size_t)j * ldc];
        c = b == 0 ? a * s : a * s + b * c; // beta 0: C is not read (it may hold NaN)
      }
    return 0;
  };
  return enqueue(it, h->stream) ? BLAS_EXECUTION_FAILED : BLAS_OK;
}
} // namespace fake

extern "C" {
int cublasCreate_v2(void** h) { *h = new fake::Blas(); return 0; }
int cublasSetMathMode(void* h, int mode) { return !h || mode < 0 ? fake::BLAS_INVALID_VALUE : (((fake::Blas*)h)->math = mode, 0); }
int cublasSetStream_v2(void* h, void* stream) { return h ? (((fake::Blas*)h)->stream = stream, 0) : fake::BLAS_NOT_INITIALIZED; }
int cublasSetWorkspace_v2(void* h, void* p, size_t bytes) { return h && (!bytes || inside((uint64_t)p, bytes)) ? 0 : fake::BLAS_INVALID_VALUE; }
int cublasSgemm_v2(void* h, int ta, int tb, int m, int n, int k, const float* alpha, const float* A, int lda, const float* B, int ldb, const float* beta, float* C, int ldc) {
  return fake::gemm((fake::Blas*)h, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}
int cublasDgemm_v2(void* h, int ta, int tb, int m, int n, int k, const double* alpha, const double* A, int lda, const double* B, int ldb, const double* beta, double* C, int ldc) {
  return fake::gemm((fake::Blas*)h, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}
}
