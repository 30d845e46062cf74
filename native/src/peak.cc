// Machine ceilings for the benchmarks, measured with this ISA's vectors on the thread pool:
// the FMA peak (a register-resident loop of independent FMAs), the BF16 dot-product peak, and the
// read and copy bandwidths.
#include "simd.h"

namespace m1 {
namespace M1_NS {

namespace {
// Independent accumulators: more than FMA latency × FMA ports on current cores, and with the two constant operands
// no more than the vector registers (16 on AVX2: more would spill, and the stores and reloads halve the rate).
#if defined(M1_ISA_AVX512)
constexpr int kAcc = 16;
#else
constexpr int kAcc = 12;
#endif

// `iters` rounds of kAcc vector FMAs from a start that depends on `seed`; returns a value that depends on
// all of them (so no call or round can be elided).
float fma_rounds(int64_t iters, float seed) {
  V acc[kAcc];
  M1_UNROLL for (int i = 0; i < kAcc; i++) acc[i] = V::set1(seed + float(i) * 1e-3f);
  const V b = V::set1(0.999f), c = V::set1(1e-4f);
  for (int64_t it = 0; it < iters; it++) {
    M1_UNROLL for (int i = 0; i < kAcc; i++) acc[i] = fma(acc[i], b, c);
  }
  V s = acc[0];
  for (int i = 1; i < kAcc; i++) s = s + acc[i];
  return s.hsum();
}
}  // namespace

// FLOPs done by `tasks` tasks of `iters` rounds each, shared out to the pool.
double fma_peak(int64_t tasks, int64_t iters) {
  float sink = 0;
  parallel_for(tasks, 1, [&](int64_t lo, int64_t hi) {
    float s = 0;
    for (int64_t t = lo; t < hi; t++) s += fma_rounds(iters, float(t));
    if (s == 1.2345f) sink = s;  // never true; keeps the result live
  });
  return double(sink) + double(tasks) * double(iters) * kAcc * V::W * 2;
}

// The same for AVX512-BF16 dot products (VDPBF16PS: 2 bf16 products per f32 lane, 4 FLOPs per lane);
// 0 where this build has no BF16 instructions. The caller checks that the CPU has them.
double bf16_dot_peak(int64_t tasks, int64_t iters) {
#if defined(M1_AVX512BF16)
  float sink = 0;
  parallel_for(tasks, 1, [&](int64_t lo, int64_t hi) {
    float s = 0;
    for (int64_t t = lo; t < hi; t++) {
      __m512 acc[kAcc];
      for (int i = 0; i < kAcc; i++) acc[i] = _mm512_set1_ps(float(t) + float(i));
      const __m512bh b = (__m512bh)_mm512_set1_epi16(0x3f80), c = (__m512bh)_mm512_set1_epi16(0x3a80);
      for (int64_t it = 0; it < iters; it++) {
        M1_UNROLL for (int i = 0; i < kAcc; i++) acc[i] = _mm512_dpbf16_ps(acc[i], b, c);
      }
      for (int i = 0; i < kAcc; i++) s += _mm512_reduce_add_ps(acc[i]);
    }
    if (s == 1.2345f) sink = s;
  });
  return double(sink) + double(tasks) * double(iters) * kAcc * 16 * 4;
#else
  (void)tasks;
  (void)iters;
  return 0;
#endif
}

// Σ src, each element read once, the pool sharing the array (for the read bandwidth)
double read_sum(const float* src, int64_t len) {
  constexpr int64_t kChunks = 64;
  double part[kChunks] = {};
  const int64_t chunk = cdiv(len, kChunks);
  parallel_for(kChunks, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t c = lo; c < hi; c++) {
      const int64_t a = c * chunk, b = imin(len, a + chunk);
      V s0 = V::zero(), s1 = V::zero(), s2 = V::zero(), s3 = V::zero();
      int64_t i = a;
      for (; i + 4 * V::W <= b; i += 4 * V::W) {
        s0 = s0 + V::load(src + i);
        s1 = s1 + V::load(src + i + V::W);
        s2 = s2 + V::load(src + i + 2 * V::W);
        s3 = s3 + V::load(src + i + 3 * V::W);
      }
      double s = double(((s0 + s1) + (s2 + s3)).hsum());
      for (; i < b; i++) s += double(src[i]);
      part[c] = s;
    }
  });
  double total = 0;
  for (int64_t c = 0; c < kChunks; c++) total += part[c];
  return total;
}

void copy(const float* src, float* dst, int64_t len) {
  parallel_for(len, int64_t(1) << 18, [&](int64_t lo, int64_t hi) { memcpy(dst + lo, src + lo, size_t(hi - lo) * 4); });
}

}  // namespace M1_NS
}  // namespace m1
