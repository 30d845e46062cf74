// GEMM: out[n, N] = x[n, K] · Wᵀ with W [N, K] in f32/bf16/f16, f32 accumulation (FMA).
//  - n <= 16 (decode): dot products, each W row streamed once and converted in registers, threads
//    split the output columns (rows of W).
//  - n <= 64 (AVX2: 32): x transposed once, W read in place, broadcast against XT in registers.
//  - otherwise: BLIS-like. W panels of NR rows × KC cols are converted to f32 and packed k-major,
//    an MR × NR register-blocked outer-product micro-kernel runs over the rows of x.
// The backward products (dx = dy · W, dW += dyᵀ · x) run on the same packed path with other packers.
// Also the small single-threaded row-major gemm_nn used by attention and lightning attention.
#include "simd.h"

namespace m1 {
namespace M1_NS {

// ---------------------------------------------------------------- scratch
namespace {
void* aalloc(size_t bytes) {
#if defined(_WIN32)
  return _aligned_malloc(bytes, 64);
#else
  void* p = nullptr;
  return posix_memalign(&p, 64, bytes) == 0 ? p : nullptr;
#endif
}
void afree(void* p) {
#if defined(_WIN32)
  _aligned_free(p);
#else
  free(p);
#endif
}

struct Scratch {
  float* p[slot::kCount] = {};
  int64_t cap[slot::kCount] = {};
  ~Scratch() {
    for (int i = 0; i < slot::kCount; i++) afree(p[i]);
  }
};
thread_local Scratch tl_scratch;
}  // namespace

float* scratch(int slot, int64_t floats) {
  Scratch& s = tl_scratch;
  if (floats < 16) floats = 16;
  if (floats > s.cap[slot]) {
    afree(s.p[slot]);
    const size_t bytes = (size_t(floats) * 4 + 63) & ~size_t(63);
    s.p[slot] = static_cast<float*>(aalloc(bytes));
    if (!s.p[slot]) {
      fprintf(stderr, "m1native: out of memory (%zu bytes of scratch)\n", bytes);
      abort();
    }
    s.cap[slot] = floats;
  }
  return s.p[slot];
}

// ---------------------------------------------------------------- row conversion
void convert_row(const WeightView& w, int64_t row, int64_t k0, int64_t len, float* dst) {
  const int64_t off = row * w.cols + k0;
  if (w.dtype == kF32) {
    memcpy(dst, static_cast<const float*>(w.data) + off, size_t(len) * 4);
    return;
  }
  const uint16_t* src = static_cast<const uint16_t*>(w.data) + off;
  int64_t i = 0;
  if (w.dtype == kBF16) {
    for (; i + V::W <= len; i += V::W) V::load_bf16(src + i).store(dst + i);
    for (; i < len; i++) dst[i] = bf16_to_f32(src[i]);
  } else {
    for (; i + V::W <= len; i += V::W) V::load_f16(src + i).store(dst + i);
    if (i < len) {
      V::load_f16(src + i, len - i).store(dst + i, V::mask(len - i));
    }
  }
}

// ---------------------------------------------------------------- micro-kernel
#if defined(M1_ISA_AVX512)
constexpr int MR = 8, NV = 2;
#elif defined(M1_ISA_AVX2)
constexpr int MR = 6, NV = 2;
#else
constexpr int MR = 4, NV = 4;
#endif
constexpr int NR = NV * V::W;

// C[M×NR] = beta·C + A[M×K]·B[K×NR]; A(r, k) = A[r·lda + k·aks] (aks = 1: row-major A; lda = 1: A given
// transposed, as the weight gradient reads dy); B rows (NR contiguous floats) are ldb apart.
template <int M>
static void ukr(int64_t K, const float* A, int64_t lda, int64_t aks, const float* B, int64_t ldb, float* C,
                int64_t ldc, float beta) {
  V acc[M][NV];
  M1_UNROLL for (int r = 0; r < M; r++) {
    M1_UNROLL for (int j = 0; j < NV; j++) acc[r][j] = V::zero();
  }
  const float* ak = A;
  for (int64_t k = 0; k < K; k++, ak += aks) {
    V b[NV];
    M1_UNROLL for (int j = 0; j < NV; j++) b[j] = V::load(B + k * ldb + j * V::W);
    M1_UNROLL for (int r = 0; r < M; r++) {
      const V a = V::set1(ak[r * lda]);
      M1_UNROLL for (int j = 0; j < NV; j++) acc[r][j] = fma(a, b[j], acc[r][j]);
    }
  }
  if (beta == 0.0f) {
    M1_UNROLL for (int r = 0; r < M; r++) {
      M1_UNROLL for (int j = 0; j < NV; j++) acc[r][j].store(C + r * ldc + j * V::W);
    }
  } else if (beta == 1.0f) {
    M1_UNROLL for (int r = 0; r < M; r++) {
      M1_UNROLL for (int j = 0; j < NV; j++) {
        float* c = C + r * ldc + j * V::W;
        (V::load(c) + acc[r][j]).store(c);
      }
    }
  } else {
    const V bv = V::set1(beta);
    M1_UNROLL for (int r = 0; r < M; r++) {
      M1_UNROLL for (int j = 0; j < NV; j++) {
        float* c = C + r * ldc + j * V::W;
        fma(bv, V::load(c), acc[r][j]).store(c);
      }
    }
  }
}

using UkrFn = void (*)(int64_t, const float*, int64_t, int64_t, const float*, int64_t, float*, int64_t, float);

template <int... I>
struct UkrTable {
  static constexpr UkrFn fns[sizeof...(I) + 1] = {nullptr, &ukr<I + 1>...};
};
template <int... I>
constexpr UkrFn UkrTable<I...>::fns[];

#if defined(M1_ISA_AVX512)
using Ukrs = UkrTable<0, 1, 2, 3, 4, 5, 6, 7>;
#elif defined(M1_ISA_AVX2)
using Ukrs = UkrTable<0, 1, 2, 3, 4, 5>;
#else
using Ukrs = UkrTable<0, 1, 2, 3>;
#endif
static_assert(sizeof(Ukrs::fns) / sizeof(UkrFn) == MR + 1, "ukr table size");

// One tile of mr <= MR rows and nr <= NR columns. B must be readable for NR columns.
static inline void tile(int64_t mr, int64_t nr, int64_t K, const float* A, int64_t lda, int64_t aks, const float* B,
                        int64_t ldb, float* C, int64_t ldc, float beta) {
  if (nr == NR) return Ukrs::fns[mr](K, A, lda, aks, B, ldb, C, ldc, beta);
  alignas(64) float t[MR * NR];
  Ukrs::fns[mr](K, A, lda, aks, B, ldb, t, NR, 0.0f);
  for (int64_t r = 0; r < mr; r++) {
    float* c = C + r * ldc;
    const float* s = t + r * NR;
    if (beta == 0.0f) {
      for (int64_t j = 0; j < nr; j++) c[j] = s[j];
    } else if (beta == 1.0f) {
      for (int64_t j = 0; j < nr; j++) c[j] += s[j];
    } else {
      for (int64_t j = 0; j < nr; j++) c[j] = beta * c[j] + s[j];
    }
  }
}

// ---------------------------------------------------------------- gemm_nn (single-threaded)
void gemm_nn(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
             int64_t ldc, float beta) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    for (int64_t i = 0; i < M; i++)
      for (int64_t j = 0; j < N; j++) C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
    return;
  }
  for (int64_t j = 0; j < N; j += NR) {
    const int64_t nr = imin(NR, N - j);
    const float* bp = B + j;
    int64_t ldbp = ldb;
    if (nr < NR) {  // zero-padded copy of the last column panel
      float* t = scratch(slot::kGemmPanel, K * NR);
      for (int64_t k = 0; k < K; k++) {
        for (int64_t c = 0; c < nr; c++) t[k * NR + c] = B[k * ldb + j + c];
        for (int64_t c = nr; c < NR; c++) t[k * NR + c] = 0.0f;
      }
      bp = t;
      ldbp = NR;
    }
    for (int64_t i = 0; i < M; i += MR) {
      tile(imin(MR, M - i), nr, K, A + i * lda, lda, 1, bp, ldbp, C + i * ldc + j, ldc, beta);
    }
  }
}

// ---------------------------------------------------------------- dot products (n <= 16)
// Weight bytes requested ahead of the loads (software prefetch): a decode step streams each weight once, in
// many short runs (a few MiB per GEMV) that the hardware prefetcher alone ramps up late. 4 KiB measured best
// (bench-small decode, runs interleaved in one process: +3-6% tokens/s over none, ahead of 1, 8 and 16 KiB).
constexpr int64_t kPrefetchAhead = 4096;

// ---------------------------------------------------------------- dot path (small n)
// The dot path's one summation order: out[i, j] = Σ_k x[i, k] W[j, k] in one vector accumulator per output, lane l
// adding the k ≡ l (mod V::W) in ascending order (a masked last step when V::W does not divide K), then the lanes in
// hsum's tree. It does not depend on which other rows or outputs are computed beside it, so a row of a batch gets the
// bits it gets alone, whatever the tile it lands in.
//
// A tile: R rows of x against J consecutive rows of W (ldw bytes apart), R·J accumulators in registers; each step
// loads (and converts) J weight vectors and R vectors of x for R·J FMAs. Inlined into the loop over the tiles: a call
// per tile (16 steps for K = 128) saved and restored six registers, 3% of a batched step's products.
template <int DT, int R, int J>
static M1_ALWAYS_INLINE void dot_tile(int64_t K, const float* A, int64_t lda, const char* B, int64_t ldw, float* C,
                                      int64_t ldc) {
  constexpr int esz = DT == kF32 ? 4 : 2;
  constexpr int step_bytes = V::W * esz;
  V acc[R][J];
  M1_UNROLL for (int i = 0; i < R; i++) {
    M1_UNROLL for (int j = 0; j < J; j++) acc[i][j] = V::zero();
  }
  int64_t k = 0;
  for (; k + V::W <= K; k += V::W) {
    if (step_bytes >= 64 || ((k * esz) & 63) == 0) {  // once per cache line of each weight row
      M1_UNROLL for (int j = 0; j < J; j++) __builtin_prefetch(B + j * ldw + k * esz + kPrefetchAhead, 0, 3);
    }
    if (J > R) {  // the R vectors of x held, one weight vector at a time
      V a[R];
      M1_UNROLL for (int i = 0; i < R; i++) a[i] = V::load(A + i * lda + k);
      M1_UNROLL for (int j = 0; j < J; j++) {
        const V w = load_w<DT>(B + j * ldw + k * esz);
        M1_UNROLL for (int i = 0; i < R; i++) acc[i][j] = fma(a[i], w, acc[i][j]);
      }
    } else {  // the J weight vectors held, one vector of x at a time
      V w[J];
      M1_UNROLL for (int j = 0; j < J; j++) w[j] = load_w<DT>(B + j * ldw + k * esz);
      M1_UNROLL for (int i = 0; i < R; i++) {
        const V a = V::load(A + i * lda + k);
        M1_UNROLL for (int j = 0; j < J; j++) acc[i][j] = fma(a, w[j], acc[i][j]);
      }
    }
  }
  if (k < K) {
    const int64_t rem = K - k;
    const typename V::Mask m = V::mask(rem);
    V w[J];
    M1_UNROLL for (int j = 0; j < J; j++) w[j] = load_w<DT>(B + j * ldw + k * esz, rem);
    M1_UNROLL for (int i = 0; i < R; i++) {
      const V a = V::load(A + i * lda + k, m);
      M1_UNROLL for (int j = 0; j < J; j++) acc[i][j] = fma(a, w[j], acc[i][j]);
    }
  }
  float sums[R * J];
  hsums<R * J>(&acc[0][0], sums);
  M1_UNROLL for (int i = 0; i < R; i++) {
    M1_UNROLL for (int j = 0; j < J; j++) C[i * ldc + j] = sums[i * J + j];
  }
}

// Accumulators per tile: most of the vector registers, the rest holding the weight and x vectors of a step.
#if defined(M1_ISA_AVX512)
constexpr int kDotAcc = 24;
#elif defined(M1_ISA_AVX2)
constexpr int kDotAcc = 12;
#else
constexpr int kDotAcc = 8;
#endif

// The next narrower tile for the weight rows that whole tiles of J leave: J/2 while that keeps 3 or more (a leftover
// of 8 to a tile of 12 goes to 6 + 2, not to four latency-bound tiles of 2), then 2 and 1.
constexpr int narrower(int J) { return J > 3 ? J / 2 : J - 1; }

// R rows of x against rows [j0, j1) of W: tiles of R rows × J weight rows, the weight rows left in narrower tiles.
template <int DT, int R, int J>
static void dot_rows(int64_t K, const float* A, int64_t lda, const char* B, int64_t ldw, int64_t j0, int64_t j1,
                     float* C, int64_t ldc) {
  int64_t j = j0;
  for (; j + J <= j1; j += J) dot_tile<DT, R, J>(K, A, lda, B + j * ldw, ldw, C + j, ldc);
  if constexpr (J > 1) {
    if (j < j1) dot_rows<DT, R, narrower(J)>(K, A, lda, B, ldw, j, j1, C, ldc);
  }
}

// r <= 4 rows of x (lda = K) against rows [j0, j1) of W, in tiles of r × kDotAcc / r: every row count keeps all the
// accumulators busy (a tile of 1 × 3 would wait on the FMA latency).
template <int DT>
static void dot_rows_of(int64_t r, int64_t K, const float* A, const char* B, int64_t ldw, int64_t j0, int64_t j1,
                        float* C, int64_t ldc) {
  switch (r) {
    case 1: return dot_rows<DT, 1, kDotAcc>(K, A, K, B, ldw, j0, j1, C, ldc);
    case 2: return dot_rows<DT, 2, kDotAcc / 2>(K, A, K, B, ldw, j0, j1, C, ldc);
    case 3: return dot_rows<DT, 3, kDotAcc / 3>(K, A, K, B, ldw, j0, j1, C, ldc);
    default: return dot_rows<DT, 4, kDotAcc / 4>(K, A, K, B, ldw, j0, j1, C, ldc);
  }
}

// Bytes of weight rows that every row tile reads again from L1.
constexpr int64_t kDotBlockBytes = 16 << 10;

// out[i, j] for rows i < n of x and rows j in [j0, j1) of W, the weights converted in registers. Few rows (n < 4)
// take tiles wide in W (enough accumulators to hide the FMA latency); more take 4-row tiles over blocks of weight
// rows, each block read from L1 by every row tile, the last 1 to 3 rows in the wide tiles of their count. A block
// holds whole tiles of every width when it can (a multiple of kDotAcc weight rows).
template <int DT>
static void dot_range(const float* x, int64_t n, const WeightView& w, int64_t j0, int64_t j1, float* out) {
  const char* base = static_cast<const char*>(w.data);
  const int64_t K = w.cols, ldw = K * (DT == kF32 ? 4 : 2), N = w.rows;
  if (n < 4) return dot_rows_of<DT>(n, K, x, base, ldw, j0, j1, out, N);
  const int64_t fit = kDotBlockBytes / ldw;
  const int64_t block = fit >= kDotAcc ? fit / kDotAcc * kDotAcc : imax(1, fit / (kDotAcc / 4)) * (kDotAcc / 4);
  for (int64_t jt = j0; jt < j1; jt += block) {
    const int64_t je = imin(j1, jt + block);
    for (int64_t i = 0; i < n; i += 4) dot_rows_of<DT>(imin(4, n - i), K, x + i * K, base, ldw, jt, je, out + i * N, N);
  }
}

template <int DT>
static void dot_path(const float* x, int64_t n, const WeightView& w, float* out) {
  // about 64K multiply-adds per chunk
  const int64_t grain = imax(1, (int64_t(1) << 16) / imax(1, w.cols * n));
  parallel_for(w.rows, grain, [&](int64_t lo, int64_t hi) { dot_range<DT>(x, n, w, lo, hi, out); });
}

void matmul_cols(const float* x, int64_t n, const WeightView& w, int64_t j0, int64_t j1, float* out) {
  if (n <= 0 || j1 <= j0) return;
  if (w.cols <= 0) {
    for (int64_t i = 0; i < n; i++)
      for (int64_t j = j0; j < j1; j++) out[i * w.rows + j] = 0.0f;
    return;
  }
  if (w.dtype == kF32) dot_range<kF32>(x, n, w, j0, j1, out);
  else if (w.dtype == kBF16) dot_range<kBF16>(x, n, w, j0, j1, out);
  else dot_range<kF16>(x, n, w, j0, j1, out);
}

// ---------------------------------------------------------------- small-M path (n <= 64)
// For a few dozen rows of x, packing W costs about as much as the products. Instead x is transposed
// once (XT [K, Mp], Mp = M rounded up to whole vectors, zero-padded) and W is read in place: RT rows
// of W against all of XT accumulate a transposed output tile in registers (W[j + r, k] broadcast, row k
// of XT loaded as NVT vectors). Same per-element summation order (k ascending) wherever a row lands.
#if defined(M1_ISA_AVX512)
constexpr int kXtMaxVecs = 4;  // M <= 64
constexpr int kXtRegs = 24;    // accumulators (of 32 registers)
#elif defined(M1_ISA_AVX2)
constexpr int kXtMaxVecs = 4;  // M <= 32
constexpr int kXtRegs = 12;    // of 16
#else
constexpr int kXtMaxVecs = 0;  // scalar builds use the packed path
constexpr int kXtRegs = 1;
#endif
constexpr int64_t kXtMaxRows = int64_t(kXtMaxVecs) * V::W;

template <int NVT>
static void xt_tile(int64_t K, const float* XT, const float* const* wr, float* tile) {
  constexpr int RT = kXtRegs / NVT;
  constexpr int64_t Mp = int64_t(NVT) * V::W;
  V acc[RT][NVT];
  M1_UNROLL for (int r = 0; r < RT; r++) {
    M1_UNROLL for (int v = 0; v < NVT; v++) acc[r][v] = V::zero();
  }
  for (int64_t k = 0; k < K; k++) {
    V b[NVT];
    M1_UNROLL for (int v = 0; v < NVT; v++) b[v] = V::load(XT + k * Mp + v * V::W);
    M1_UNROLL for (int r = 0; r < RT; r++) {
      const V a = V::set1(wr[r][k]);
      M1_UNROLL for (int v = 0; v < NVT; v++) acc[r][v] = fma(a, b[v], acc[r][v]);
    }
  }
  M1_UNROLL for (int r = 0; r < RT; r++) {
    M1_UNROLL for (int v = 0; v < NVT; v++) acc[r][v].store(tile + r * Mp + v * V::W);
  }
}

template <int NVT>
static void xt_path(const float* x, int64_t M, const WeightView& w, float* out) {
  constexpr int RT = kXtRegs / NVT;
  constexpr int64_t Mp = int64_t(NVT) * V::W;
  const int64_t N = w.rows, K = w.cols;
  float* XT = scratch(slot::kMatmulXt, K * Mp);  // read by every pool thread during this call
  for (int64_t k = 0; k < K; k++) {
    for (int64_t i = 0; i < M; i++) XT[k * Mp + i] = x[i * K + k];
    for (int64_t i = M; i < Mp; i++) XT[k * Mp + i] = 0.0f;
  }
  const int64_t blocks = cdiv(N, RT);
  const int64_t grain = imax(1, (int64_t(1) << 16) / imax(1, RT * K * Mp));
  parallel_for(blocks, grain, [&](int64_t lo, int64_t hi) {
    float* conv = w.dtype == kF32 ? nullptr : scratch(slot::kMatmulRows, RT * K);
    alignas(64) float tile[RT * Mp];
    const float* wr[RT];
    for (int64_t b = lo; b < hi; b++) {
      const int64_t j = b * RT, rt = imin(RT, N - j);
      for (int r = 0; r < RT; r++) {
        const int64_t row = j + (r < rt ? r : 0);  // rows past N repeat row j; their results are dropped
        if (conv) {
          convert_row(w, row, 0, K, conv + r * K);
          wr[r] = conv + r * K;
        } else {
          wr[r] = static_cast<const float*>(w.data) + row * K;
        }
      }
      xt_tile<NVT>(K, XT, wr, tile);
      for (int64_t i = 0; i < M; i++)
        for (int64_t r = 0; r < rt; r++) out[i * N + j + r] = tile[r * Mp + i];
    }
  });
}

static void small_m(const float* x, int64_t M, const WeightView& w, float* out) {
  switch (cdiv(M, V::W)) {
#if defined(M1_ISA_AVX512) || defined(M1_ISA_AVX2)
    case 2: return xt_path<2>(x, M, w, out);
    case 3: return xt_path<3>(x, M, w, out);
    case 4: return xt_path<4>(x, M, w, out);
#endif
    default: abort();
  }
}

// ---------------------------------------------------------------- packed path
constexpr int64_t KC = 256;  // k-depth of a packed panel (KC × NR floats ≈ L1)
constexpr int64_t MC = 192;  // rows of x per pass over the panels (L2)

// dst[kk·NR + jj] = W[j + jj, k0 + kk] as f32, zero for jj >= nr.
template <int DT>
static void pack_panel_t(const WeightView& w, int64_t j, int64_t nr, int64_t k0, int64_t kc, float* dst) {
  const char* base = static_cast<const char*>(w.data);
  int64_t kk = 0;
  const int esz = DT == kF32 ? 4 : 2;
  // full W×W blocks through an in-register transpose
  if (nr == NR) {
    for (; kk + V::W <= kc; kk += V::W) {
      for (int g = 0; g < NV; g++) {
        V r[V::W];
        for (int i = 0; i < V::W; i++) r[i] = load_w<DT>(base + ((j + g * V::W + i) * w.cols + k0 + kk) * esz);
        transpose_block(r);
        for (int c = 0; c < V::W; c++) r[c].store(dst + (kk + c) * NR + g * V::W);
      }
    }
  }
  if (kk == kc) return;
  for (int64_t k = kk; k < kc; k++)
    for (int64_t jj = nr; jj < NR; jj++) dst[k * NR + jj] = 0.0f;
  float* row = scratch(slot::kPanelRow, kc);
  for (int64_t jj = 0; jj < nr; jj++) {
    const float* src;  // W[j + jj, k0 + kk ...]
    if (DT == kF32) {
      src = reinterpret_cast<const float*>(base) + (j + jj) * w.cols + k0 + kk;
    } else {
      convert_row(w, j + jj, k0 + kk, kc - kk, row);
      src = row;
    }
    float* d = dst + kk * NR + jj;
    for (int64_t k = 0; k < kc - kk; k++) d[k * NR] = src[k];
  }
}

static void pack_panel(const WeightView& w, int64_t j, int64_t nr, int64_t k0, int64_t kc, float* dst) {
  if (w.dtype == kF32) pack_panel_t<kF32>(w, j, nr, k0, kc, dst);
  else if (w.dtype == kBF16) pack_panel_t<kBF16>(w, j, nr, k0, kc, dst);
  else pack_panel_t<kF16>(w, j, nr, k0, kc, dst);
}

// C[M, N] = beta·C + A[M, K] · B[K, N] with A(i, k) = A[i·lda + k·aks] and B given by its packer:
// pack(j, nr, k0, kc, dst) writes dst[kk·NR + jj] = B[k0 + kk, j + jj] as f32 (zero for jj >= nr). Threads
// split the columns into blocks of up to 8 panels, and the rows too when there are few column blocks.
template <class Pack>
static void packed_gemm(const float* A, int64_t lda, int64_t aks, int64_t M, int64_t N, int64_t K, Pack pack, float* C,
                        int64_t ldc, float beta) {
  const int64_t T = num_threads();
  const int64_t panels = cdiv(N, NR);
  // panels per task: enough tasks for load balance, at most 8 panels (NC = 8·NR)
  const int64_t ppt = imax(1, imin(8, cdiv(panels, 4 * T)));
  const int64_t NC = ppt * NR;
  const int64_t ntn = cdiv(panels, ppt);
  // too few column blocks: split the rows too (each row block packs its own panels)
  int64_t msplit = 1;
  if (ntn < 2 * T) msplit = imax(1, imin(cdiv(M, MR * 4), cdiv(2 * T, ntn)));
  const int64_t mchunk = cdiv(cdiv(M, msplit), MR) * MR;
  msplit = cdiv(M, mchunk);

  parallel_for(ntn * msplit, 1, [&](int64_t lo, int64_t hi) {
    float* packed = scratch(slot::kMatmulPack, KC * NC);
    for (int64_t task = lo; task < hi; task++) {
      const int64_t tn = task % ntn, tm = task / ntn;
      const int64_t j0 = tn * NC, j1 = imin(N, j0 + NC);
      const int64_t i0 = tm * mchunk, i1 = imin(M, i0 + mchunk);
      const int64_t np = cdiv(j1 - j0, NR);
      for (int64_t pc = 0; pc < K; pc += KC) {
        const int64_t kc = imin(KC, K - pc);
        for (int64_t p = 0; p < np; p++) {
          const int64_t j = j0 + p * NR;
          pack(j, imin(NR, j1 - j), pc, kc, packed + p * kc * NR);
        }
        const float b = pc == 0 ? beta : 1.0f;
        for (int64_t ic = i0; ic < i1; ic += MC) {
          const int64_t ie = imin(i1, ic + MC);
          for (int64_t p = 0; p < np; p++) {
            const int64_t j = j0 + p * NR;
            const int64_t nr = imin(NR, j1 - j);
            const float* bp = packed + p * kc * NR;
            for (int64_t i = ic; i < ie; i += MR) {
              tile(imin(MR, ie - i), nr, kc, A + i * lda + pc * aks, lda, aks, bp, NR, C + i * ldc + j, ldc, b);
            }
          }
        }
      }
    }
  });
}

void matmul(const float* x, int64_t M, const WeightView& w, float* out) {
  const int64_t N = w.rows, K = w.cols;
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    memset(out, 0, size_t(M * N) * 4);
    return;
  }
  if (M <= kDotRows) {
    if (w.dtype == kF32) return dot_path<kF32>(x, M, w, out);
    if (w.dtype == kBF16) return dot_path<kBF16>(x, M, w, out);
    return dot_path<kF16>(x, M, w, out);
  }
  if (M <= kXtMaxRows) return small_m(x, M, w, out);
  packed_gemm(
      x, K, 1, M, N, K, [&](int64_t j, int64_t nr, int64_t k0, int64_t kc, float* dst) { pack_panel(w, j, nr, k0, kc, dst); },
      out, N, 0.0f);
}

// ---------------------------------------------------------------- backward products
// dst[kk·NR + jj] = W[k0 + kk, j + jj] as f32: rows of W are already k-major, so a panel is row pieces.
template <int DT>
static void pack_rows_t(const WeightView& w, int64_t j, int64_t nr, int64_t k0, int64_t kc, float* dst) {
  if (nr == NR) {  // whole panels: vector loads (a convert_row or memcpy call per NR values costs more)
    constexpr int esz = DT == kF32 ? 4 : 2;
    const char* src = static_cast<const char*>(w.data) + (k0 * w.cols + j) * esz;
    for (int64_t kk = 0; kk < kc; kk++) {
      const char* row = src + kk * w.cols * esz;
      M1_UNROLL for (int g = 0; g < NV; g++) load_w<DT>(row + g * V::W * esz).store(dst + kk * NR + g * V::W);
    }
    return;
  }
  for (int64_t kk = 0; kk < kc; kk++) {
    float* d = dst + kk * NR;
    convert_row(w, k0 + kk, j, nr, d);
    for (int64_t jj = nr; jj < NR; jj++) d[jj] = 0.0f;
  }
}

static void pack_rows(const WeightView& w, int64_t j, int64_t nr, int64_t k0, int64_t kc, float* dst) {
  if (w.dtype == kF32) pack_rows_t<kF32>(w, j, nr, k0, kc, dst);
  else if (w.dtype == kBF16) pack_rows_t<kBF16>(w, j, nr, k0, kc, dst);
  else pack_rows_t<kF16>(w, j, nr, k0, kc, dst);
}

// dx[n, w.cols] = beta·dx + dy[n, w.rows] · W: the input gradient of out = x · Wᵀ.
void matmul_dx(const float* dy, int64_t n, const WeightView& w, float* dx, float beta) {
  if (n <= 0 || w.cols <= 0) return;
  if (w.rows <= 0) {
    for (int64_t i = 0; i < n * w.cols; i++) dx[i] = beta == 0.0f ? 0.0f : beta * dx[i];
    return;
  }
  packed_gemm(
      dy, w.rows, 1, n, w.cols, w.rows,
      [&](int64_t j, int64_t nr, int64_t k0, int64_t kc, float* dst) { pack_rows(w, j, nr, k0, kc, dst); }, dx, w.cols,
      beta);
}

// dw[rows, cols] += dy[n, rows]ᵀ · x[n, cols]: the weight gradient of out = x · Wᵀ, summed over the n rows.
// The micro-kernel reads dyᵀ in place (A(r, k) = dy[k·rows + r]: MR neighbouring floats of one dy row per k).
void matmul_dw(const float* dy, const float* x, int64_t n, int64_t rows, int64_t cols, float* dw) {
  if (n <= 0 || rows <= 0 || cols <= 0) return;
  const WeightView xv{x, kF32, n, cols};
  packed_gemm(
      dy, 1, rows, rows, cols, n,
      [&](int64_t j, int64_t nr, int64_t k0, int64_t kc, float* dst) { pack_rows(xv, j, nr, k0, kc, dst); }, dw, cols,
      1.0f);
}

}  // namespace M1_NS
}  // namespace m1
