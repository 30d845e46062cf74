// Vector abstraction for the kernel libraries. Each library compiles this with its own -m flags and
// M1_ISA_* define; everything lives in namespace m1::M1_NS so no inline function or template
// instantiation is shared (and COMDAT-merged) between ISA builds. Do not use STL templates here or
// in the kernel sources for the same reason.
#pragma once
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "scratch.h"
#include "threadpool.h"

#if defined(__GNUC__) && !defined(__clang__)
// GCC 12 false positives inside the AVX-512 intrinsic headers (_mm512_undefined_*)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

#if defined(M1_ISA_AVX512)
#define M1_NS avx512
#include <immintrin.h>
#elif defined(M1_ISA_AVX2)
#define M1_NS avx2
#include <immintrin.h>
#else
#define M1_NS scalar
#endif

#if defined(__GNUC__) || defined(__clang__)
#define M1_UNROLL _Pragma("GCC unroll 16")
#define M1_ALWAYS_INLINE inline __attribute__((always_inline))
#elif defined(_MSC_VER)
#define M1_UNROLL
#define M1_ALWAYS_INLINE __forceinline
#else
#define M1_UNROLL
#define M1_ALWAYS_INLINE inline
#endif

namespace m1 {
namespace M1_NS {

static inline int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t imax(int64_t a, int64_t b) { return a > b ? a : b; }
static inline int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

static inline float bf16_to_f32(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

// IEEE binary16 -> binary32, exact for every input (subnormals, ±inf, NaN payload kept, quieted).
static inline float f16_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t e = (h >> 10) & 0x1fu;
  const uint32_t m = h & 0x3ffu;
  uint32_t u;
  if (e == 0) {
    if (m == 0) {
      u = sign;
    } else {  // subnormal: m · 2^-24, renormalised
      int shift = 0;
      uint32_t mm = m;
      while (!(mm & 0x400u)) {
        mm <<= 1;
        shift++;
      }
      u = sign | (uint32_t(127 - 15 - shift + 1) << 23) | ((mm & 0x3ffu) << 13);
    }
  } else if (e == 31) {
    u = sign | 0x7f800000u | (m << 13) | (m ? 0x400000u : 0u);
  } else {
    u = sign | ((e + 112u) << 23) | (m << 13);
  }
  float f;
  memcpy(&f, &u, 4);
  return f;
}

#if defined(M1_ISA_AVX512)

struct V {
  static constexpr int W = 16;
  using Mask = __mmask16;
  __m512 v;
  static inline Mask mask(int64_t n) { return n >= 16 ? Mask(0xffff) : n <= 0 ? Mask(0) : Mask((1u << n) - 1u); }
  static inline V zero() { return {_mm512_setzero_ps()}; }
  static inline V set1(float x) { return {_mm512_set1_ps(x)}; }
  static inline V load(const float* p) { return {_mm512_loadu_ps(p)}; }
  static inline V load(const float* p, Mask m) { return {_mm512_maskz_loadu_ps(m, p)}; }
  inline void store(float* p) const { _mm512_storeu_ps(p, v); }
  inline void store(float* p, Mask m) const { _mm512_mask_storeu_ps(p, m, v); }
  static inline V bf16(__m256i h) { return {_mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16))}; }
  static inline V load_bf16(const uint16_t* p) { return bf16(_mm256_loadu_si256((const __m256i*)p)); }
  static inline V load_bf16(const uint16_t* p, int64_t n) { return bf16(_mm256_maskz_loadu_epi16(mask(n), p)); }
  static inline V load_f16(const uint16_t* p) { return {_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)p))}; }
  static inline V load_f16(const uint16_t* p, int64_t n) {
    return {_mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask(n), p))};
  }
  inline float hsum() const { return _mm512_reduce_add_ps(v); }
  inline float hmax() const { return _mm512_reduce_max_ps(v); }
};
static inline V operator+(V a, V b) { return {_mm512_add_ps(a.v, b.v)}; }
static inline V operator-(V a, V b) { return {_mm512_sub_ps(a.v, b.v)}; }
static inline V operator*(V a, V b) { return {_mm512_mul_ps(a.v, b.v)}; }
static inline V operator/(V a, V b) { return {_mm512_div_ps(a.v, b.v)}; }
static inline V fma(V a, V b, V c) { return {_mm512_fmadd_ps(a.v, b.v, c.v)}; }
static inline V vmax(V a, V b) { return {_mm512_max_ps(a.v, b.v)}; }

static inline V vmin(V a, V b) { return {_mm512_min_ps(a.v, b.v)}; }
static inline V vround(V x) { return {_mm512_roundscale_ps(x.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)}; }
// p · 2^n for integral n, as two factors 2^(n/2) so that subnormal results round once
static inline V scale_pow2(V p, V n) {
  __m512i ni = _mm512_cvtps_epi32(n.v);
  __m512i n1 = _mm512_srai_epi32(ni, 1);
  __m512i n2 = _mm512_sub_epi32(ni, n1);
  __m512 s1 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(n1, _mm512_set1_epi32(127)), 23));
  __m512 s2 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(n2, _mm512_set1_epi32(127)), 23));
  return {_mm512_mul_ps(_mm512_mul_ps(p.v, s1), s2)};
}

// Σ x² in double
static inline double sumsq_f64(const float* x, int64_t n) {
  __m512d a0 = _mm512_setzero_pd(), a1 = _mm512_setzero_pd();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512 v = _mm512_loadu_ps(x + i);
    __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
    __m512d hi = _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1));
    a0 = _mm512_fmadd_pd(lo, lo, a0);
    a1 = _mm512_fmadd_pd(hi, hi, a1);
  }
  double s = _mm512_reduce_add_pd(_mm512_add_pd(a0, a1));
  for (; i < n; i++) s += double(x[i]) * double(x[i]);
  return s;
}

// r[i] (row i of a W × W block) -> r[c] = column c
static inline void transpose_block(V rv[16]) {
  __m512 r[16], t[16];
  for (int i = 0; i < 16; i++) r[i] = rv[i].v;
  for (int i = 0; i < 8; i++) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; i++) {  // r[4i + c], 128-bit lane L: rows 4i..4i+3 of column 4L + c
    r[4 * i] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
    r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
    r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
    r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
  }
  for (int c = 0; c < 4; c++) {
    const __m512 a = _mm512_shuffle_f32x4(r[c], r[4 + c], 0x88);
    const __m512 b = _mm512_shuffle_f32x4(r[c], r[4 + c], 0xDD);
    const __m512 e = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0x88);
    const __m512 f = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0xDD);
    t[c] = _mm512_shuffle_f32x4(a, e, 0x88);
    t[8 + c] = _mm512_shuffle_f32x4(a, e, 0xDD);
    t[4 + c] = _mm512_shuffle_f32x4(b, f, 0x88);
    t[12 + c] = _mm512_shuffle_f32x4(b, f, 0xDD);
  }
  for (int i = 0; i < 16; i++) rv[i] = {t[i]};
}

#elif defined(M1_ISA_AVX2)

alignas(32) static const int32_t kMaskTable[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

struct V {
  static constexpr int W = 8;
  using Mask = __m256i;
  __m256 v;
  static inline Mask mask(int64_t n) {
    return _mm256_loadu_si256((const __m256i*)(kMaskTable + 8 - (n >= 8 ? 8 : n <= 0 ? 0 : n)));
  }
  static inline V zero() { return {_mm256_setzero_ps()}; }
  static inline V set1(float x) { return {_mm256_set1_ps(x)}; }
  static inline V load(const float* p) { return {_mm256_loadu_ps(p)}; }
  static inline V load(const float* p, Mask m) { return {_mm256_maskload_ps(p, m)}; }
  inline void store(float* p) const { _mm256_storeu_ps(p, v); }
  inline void store(float* p, Mask m) const { _mm256_maskstore_ps(p, m, v); }
  static inline V bf16(__m128i h) { return {_mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16))}; }
  static inline V load_bf16(const uint16_t* p) { return bf16(_mm_loadu_si128((const __m128i*)p)); }
  static inline V load_bf16(const uint16_t* p, int64_t n) {
    uint16_t tmp[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    memcpy(tmp, p, size_t(n >= 8 ? 8 : n <= 0 ? 0 : n) * 2);
    return load_bf16(tmp);
  }
  static inline V load_f16(const uint16_t* p) { return {_mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)p))}; }
  static inline V load_f16(const uint16_t* p, int64_t n) {
    uint16_t tmp[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    memcpy(tmp, p, size_t(n >= 8 ? 8 : n <= 0 ? 0 : n) * 2);
    return load_f16(tmp);
  }
  inline float hsum() const {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  inline float hmax() const {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
};
static inline V operator+(V a, V b) { return {_mm256_add_ps(a.v, b.v)}; }
static inline V operator-(V a, V b) { return {_mm256_sub_ps(a.v, b.v)}; }
static inline V operator*(V a, V b) { return {_mm256_mul_ps(a.v, b.v)}; }
static inline V operator/(V a, V b) { return {_mm256_div_ps(a.v, b.v)}; }
static inline V fma(V a, V b, V c) { return {_mm256_fmadd_ps(a.v, b.v, c.v)}; }
static inline V vmax(V a, V b) { return {_mm256_max_ps(a.v, b.v)}; }

static inline V vmin(V a, V b) { return {_mm256_min_ps(a.v, b.v)}; }
static inline V vround(V x) { return {_mm256_round_ps(x.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)}; }
static inline V scale_pow2(V p, V n) {
  __m256i ni = _mm256_cvtps_epi32(n.v);
  __m256i n1 = _mm256_srai_epi32(ni, 1);
  __m256i n2 = _mm256_sub_epi32(ni, n1);
  __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, _mm256_set1_epi32(127)), 23));
  __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, _mm256_set1_epi32(127)), 23));
  return {_mm256_mul_ps(_mm256_mul_ps(p.v, s1), s2)};
}

static inline double sumsq_f64(const float* x, int64_t n) {
  __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_loadu_ps(x + i);
    __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(v));
    __m256d hi = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
    a0 = _mm256_fmadd_pd(lo, lo, a0);
    a1 = _mm256_fmadd_pd(hi, hi, a1);
  }
  __m256d a = _mm256_add_pd(a0, a1);
  __m128d s2 = _mm_add_pd(_mm256_castpd256_pd128(a), _mm256_extractf128_pd(a, 1));
  double s = _mm_cvtsd_f64(_mm_add_sd(s2, _mm_unpackhi_pd(s2, s2)));
  for (; i < n; i++) s += double(x[i]) * double(x[i]);
  return s;
}

// r[i] (row i of a W × W block) -> r[c] = column c
static inline void transpose_block(V rv[8]) {
  __m256 r[8], t[8], u[8];
  for (int i = 0; i < 8; i++) r[i] = rv[i].v;
  for (int i = 0; i < 4; i++) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 2; i++) {
    u[4 * i] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
    u[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
    u[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
    u[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
  }
  for (int c = 0; c < 4; c++) {
    rv[c] = {_mm256_permute2f128_ps(u[c], u[4 + c], 0x20)};
    rv[4 + c] = {_mm256_permute2f128_ps(u[c], u[4 + c], 0x31)};
  }
}

#else  // scalar

struct V {
  static constexpr int W = 1;
  using Mask = bool;
  float v;
  static inline Mask mask(int64_t n) { return n > 0; }
  static inline V zero() { return {0.0f}; }
  static inline V set1(float x) { return {x}; }
  static inline V load(const float* p) { return {*p}; }
  static inline V load(const float* p, Mask m) { return {m ? *p : 0.0f}; }
  inline void store(float* p) const { *p = v; }
  inline void store(float* p, Mask m) const {
    if (m) *p = v;
  }
  static inline V load_bf16(const uint16_t* p) { return {bf16_to_f32(*p)}; }
  static inline V load_bf16(const uint16_t* p, int64_t n) { return {n > 0 ? bf16_to_f32(*p) : 0.0f}; }
  static inline V load_f16(const uint16_t* p) { return {f16_to_f32(*p)}; }
  static inline V load_f16(const uint16_t* p, int64_t n) { return {n > 0 ? f16_to_f32(*p) : 0.0f}; }
  inline float hsum() const { return v; }
  inline float hmax() const { return v; }
};
static inline V operator+(V a, V b) { return {a.v + b.v}; }
static inline V operator-(V a, V b) { return {a.v - b.v}; }
static inline V operator*(V a, V b) { return {a.v * b.v}; }
static inline V operator/(V a, V b) { return {a.v / b.v}; }
static inline V fma(V a, V b, V c) { return {a.v * b.v + c.v}; }
static inline V vmax(V a, V b) { return {a.v > b.v || b.v != b.v ? a.v : b.v}; }
static inline V vexp(V x) { return {expf(x.v)}; }

// a 1 × 1 block is its own transpose
static inline void transpose_block(V*) {}

static inline double sumsq_f64(const float* x, int64_t n) {
  double s0 = 0, s1 = 0;
  int64_t i = 0;
  for (; i + 2 <= n; i += 2) {
    s0 += double(x[i]) * double(x[i]);
    s1 += double(x[i + 1]) * double(x[i + 1]);
  }
  if (i < n) s0 += double(x[i]) * double(x[i]);
  return s0 + s1;
}

#endif

#if defined(M1_ISA_AVX512) || defined(M1_ISA_AVX2)
// e^x: Cephes polynomial on r = x - n·ln2 (ln2 in two parts), scaled by 2^n;
// x > 88.72 → inf, x < -103.9 → 0, NaN → NaN.
static inline V vexp(V x) {
  const V t = vmin(V::set1(89.0f), vmax(V::set1(-104.0f), x));
  const V n = vround(t * V::set1(1.44269504088896341f));
  V r = fma(n, V::set1(-0.693359375f), t);
  r = fma(n, V::set1(2.12194440e-4f), r);
  V p = V::set1(1.9875691500e-4f);
  p = fma(p, r, V::set1(1.3981999507e-3f));
  p = fma(p, r, V::set1(8.3334519073e-3f));
  p = fma(p, r, V::set1(4.1665795894e-2f));
  p = fma(p, r, V::set1(1.6666665459e-1f));
  p = fma(p, r, V::set1(5.0000001201e-1f));
  p = fma(p, r * r, r + V::set1(1.0f));
  return scale_pow2(p, n);
}
#endif

// r[0..3] = the lane sums of a, b, c, d, four at once in one tree: the upper half of the lanes added to the lower
// half down to 8 lanes, then ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)) (V::hsum's tree on AVX2).
#if defined(M1_ISA_AVX512) || defined(M1_ISA_AVX2)
static inline void hsum4_8(__m256 a, __m256 b, __m256 c, __m256 d, float* r) {
  // [x_i + x_{i+4}] of a and b, of c and d
  const __m256 ab = _mm256_add_ps(_mm256_permute2f128_ps(a, b, 0x20), _mm256_permute2f128_ps(a, b, 0x31));
  const __m256 cd = _mm256_add_ps(_mm256_permute2f128_ps(c, d, 0x20), _mm256_permute2f128_ps(c, d, 0x31));
  // [a(0+2), a(1+3), c(0+2), c(1+3) | b(0+2), b(1+3), d(0+2), d(1+3)]
  const __m256 t = _mm256_add_ps(_mm256_shuffle_ps(ab, cd, 0x44), _mm256_shuffle_ps(ab, cd, 0xEE));
  const __m128 lo = _mm256_castps256_ps128(t), hi = _mm256_extractf128_ps(t, 1);
  const __m128 s = _mm_add_ps(_mm_shuffle_ps(lo, hi, 0x88), _mm_shuffle_ps(lo, hi, 0xDD));  // [a, c, b, d]
  _mm_storeu_ps(r, _mm_shuffle_ps(s, s, _MM_SHUFFLE(3, 1, 2, 0)));
}
#endif
#if defined(M1_ISA_AVX512)
static inline __m256 halves(__m512 x) { return _mm256_add_ps(_mm512_castps512_ps256(x), _mm512_extractf32x8_ps(x, 1)); }
static inline void hsum4(V a, V b, V c, V d, float* r) { hsum4_8(halves(a.v), halves(b.v), halves(c.v), halves(d.v), r); }
#elif defined(M1_ISA_AVX2)
static inline void hsum4(V a, V b, V c, V d, float* r) { hsum4_8(a.v, b.v, c.v, d.v, r); }
#else
static inline void hsum4(V a, V b, V c, V d, float* r) {
  r[0] = a.v;
  r[1] = b.v;
  r[2] = c.v;
  r[3] = d.v;
}
#endif

// r[i] = the lane sum of v[i] for i < N, in hsum4's tree
template <int N>
static inline void hsums(const V* v, float* r) {
  M1_UNROLL for (int i = 0; i + 4 <= N; i += 4) hsum4(v[i], v[i + 1], v[i + 2], v[i + 3], r + i);
  constexpr int last = N & ~3;
  if (N > last) {
    float t[4];
    const V z = V::zero();
    hsum4(v[last], N > last + 1 ? v[last + 1] : z, N > last + 2 ? v[last + 2] : z, z, t);
    M1_UNROLL for (int i = last; i < N; i++) r[i] = t[i - last];
  }
}

// Loads W weight values at p (f32, bf16 or f16) as f32.
template <int DT>
static inline V load_w(const void* p) {
  if (DT == kF32) return V::load(static_cast<const float*>(p));
  if (DT == kBF16) return V::load_bf16(static_cast<const uint16_t*>(p));
  return V::load_f16(static_cast<const uint16_t*>(p));
}
template <int DT>
static inline V load_w(const void* p, int64_t n) {
  if (DT == kF32) return V::load(static_cast<const float*>(p), V::mask(n));
  if (DT == kBF16) return V::load_bf16(static_cast<const uint16_t*>(p), n);
  return V::load_f16(static_cast<const uint16_t*>(p), n);
}

// Per-thread scratch memory (64-byte aligned), one independent buffer per slot (the slots: scratch.h).
float* scratch(int slot, int64_t floats);

// Kernel entry points (defined in the per-op sources of this ISA build).
void convert_row(const WeightView& w, int64_t row, int64_t k0, int64_t len, float* dst);
// C[M×N] = beta·C + A[M×K]·B[K×N], all row-major f32 (beta == 0: C is not read). Single-threaded.
void gemm_nn(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
             int64_t ldc, float beta);
void matmul(const float* x, int64_t n, const WeightView& w, float* out);
void matmul_cols(const float* x, int64_t n, const WeightView& w, int64_t j0, int64_t j1, float* out);
void rmsnorm(const float* x, int64_t n, int64_t dim, const float* weight, double eps, float* out);
void silu(const float* x, float* out, int64_t len);
void sigmoid(const float* x, float* out, int64_t len);
void swiglu(const float* gate, const float* up, float* out, int64_t len);
void mul(const float* a, const float* b, float* out, int64_t len);
void axpby(float alpha, const float* x, float beta, const float* y, float* out, int64_t len);
void embedding(const int32_t* ids, int64_t n, const WeightView& table, float* out);
void rope(float* x, int64_t n, int64_t heads, int64_t head_dim, int64_t rotary_dim, const int32_t* positions,
          double theta);
void lightning_prefill(const float* q, const float* k, const float* v, int64_t ld, int64_t hs, int64_t n, int64_t heads,
                       int64_t d, const float* slopes, int64_t block, float* state, float* out);
void lightning_step(const float* q, const float* k, const float* v, int64_t ld, int64_t hs, int64_t n, int64_t heads,
                    int64_t d, const float* slopes, float* state, float* out);
void split_qkv(const float* qkv, int64_t rows, int64_t d, float* q, float* k, float* v);
void attention(const float* q, const float* kc, const float* vc, int64_t n, int64_t total, int64_t heads,
               int64_t kv_heads, int64_t d, float scale, float* out, float* probs);
void router_topk(const float* logits, int64_t n, int64_t experts, int64_t k, int32_t* idx, float* weights);
void weighted_sum(const float* slots, const float* weights, int64_t n, int64_t k, int64_t dim, float* out);
void attention_lse(const float* q, const float* k, const float* v, int64_t n, int64_t heads, int64_t kv_heads,
                   int64_t d, float scale, float* out, float* lse);
void matmul_dx(const float* dy, int64_t n, const WeightView& w, float* dx, float beta);
void matmul_dw(const float* dy, const float* x, int64_t n, int64_t rows, int64_t cols, float* dw);
void rmsnorm_backward(const float* x, const float* dy, int64_t n, int64_t dim, const float* weight, double eps,
                      float* dx, float* dweight);
void silu_backward(const float* x, const float* dy, float* dx, int64_t len);
void sigmoid_backward(const float* y, const float* dy, float* dx, int64_t len);
void swiglu_backward(const float* gate, const float* up, const float* dy, float* dgate, float* dup, int64_t len);
void embedding_backward(const int32_t* ids, int64_t n, int64_t dim, const float* dy, float* dtable);
void router_topk_backward(const float* logits, int64_t n, int64_t experts, int64_t k, const int32_t* idx,
                          const float* dweights, float* dlogits);
void cross_entropy(const float* logits, int64_t n, int64_t vocab, const int32_t* targets, const float* weights,
                   float* logprobs, float* dlogits);
void lightning_backward(const float* q, const float* k, const float* v, int64_t ld, int64_t hs, const float* dout,
                        int64_t n, int64_t heads, int64_t d, const float* slopes, int64_t block, float* dq, float* dk,
                        float* dv);
void attention_backward(const float* q, const float* k, const float* v, const float* o, const float* dout,
                        const float* lse, int64_t n, int64_t heads, int64_t kv_heads, int64_t d, float scale, float* dq,
                        float* dk, float* dv);
double fma_peak(int64_t tasks, int64_t iters);
double bf16_dot_peak(int64_t tasks, int64_t iters);
double read_sum(const float* src, int64_t len);
void copy(const float* src, float* dst, int64_t len);
void adamw(float* p, const float* g, float* m, float* v, int64_t len, const AdamwStep& s, uint16_t* bf16);
double sum_squares(const float* x, int64_t len);

}  // namespace M1_NS
}  // namespace m1
