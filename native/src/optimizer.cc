// Optimiser kernels: the AdamW update of one parameter and the sum of squares for the global gradient norm.
// The update is a plain loop that the per-ISA builds vectorise (sqrtf becomes a vector square root under
// -fno-math-errno); it reads p, g, m, v and writes p, m, v once, so it runs at memory bandwidth. Given a BF16 copy of
// p, the same pass rewrites it from the new p.
#include <cstring>

#include "simd.h"

namespace m1 {
namespace M1_NS {

namespace {
constexpr int64_t kGrain = 1 << 15;  // elements per parallel chunk

// The update of n elements; restrict pointers and constants by value let the compiler vectorise it.
void adamw_range(float* __restrict p, const float* __restrict g, float* __restrict m, float* __restrict v, int64_t n,
                 const AdamwStep s) {
  const float c1 = 1.0f - s.beta1, c2 = 1.0f - s.beta2;
  for (int64_t i = 0; i < n; i++) {
    const float gi = g[i] * s.grad_scale;
    const float mi = s.beta1 * m[i] + c1 * gi;
    const float vi = s.beta2 * v[i] + c2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * s.decay - s.step_size * mi / (sqrtf(vi) * s.inv_sqrt_bc2 + s.eps);
  }
}

// bf16[i] = p[i] rounded to nearest-even (NaN kept NaN, quiet): the BF16 weights a model runs on, from its f32 masters.
void round_bf16_range(const float* __restrict p, uint16_t* __restrict bf16, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    uint32_t bits;
    memcpy(&bits, p + i, 4);
    const uint16_t rounded = uint16_t((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
    bf16[i] = (bits & 0x7fffffffu) > 0x7f800000u ? uint16_t((bits >> 16) | 0x40u) : rounded;
  }
}
}  // namespace

void adamw(float* p, const float* g, float* m, float* v, int64_t len, const AdamwStep& s, uint16_t* bf16) {
  parallel_for(len, kGrain, [&](int64_t lo, int64_t hi) {
    adamw_range(p + lo, g + lo, m + lo, v + lo, hi - lo, s);
    if (bf16) round_bf16_range(p + lo, bf16 + lo, hi - lo);  // while the chunk is in cache
  });
}

double sum_squares(const float* x, int64_t len) {
  constexpr int64_t kChunks = 64;
  double part[kChunks] = {};
  const int64_t chunk = cdiv(len, kChunks);
  parallel_for(kChunks, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t c = lo; c < hi; c++) {
      const int64_t a = imin(len, c * chunk), b = imin(len, a + chunk);
      part[c] = sumsq_f64(x + a, b - a);
    }
  });
  double total = 0;
  for (int64_t c = 0; c < kChunks; c++) total += part[c];
  return total;
}

}  // namespace M1_NS
}  // namespace m1
