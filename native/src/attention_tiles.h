// Key tiles shared by softmax attention (attention.cc) and its backward pass (backward_attention.cc).
#pragma once
#include "simd.h"

namespace m1 {
namespace M1_NS {

constexpr int64_t BK = 64;  // keys per tile

// Kt[c·BK + jj] = K[j0 + jj, g, c] for jj < bk, zero for bk <= jj < BK (K rows ldkv apart, kv head g)
static inline void load_kt(const float* kc, int64_t ldkv, int64_t g, int64_t d, int64_t j0, int64_t bk, float* Kt) {
  for (int64_t jj = 0; jj < bk; jj++) {
    const float* kr = kc + (j0 + jj) * ldkv + g * d;
    for (int64_t c = 0; c < d; c++) Kt[c * BK + jj] = kr[c];
  }
  for (int64_t c = 0; c < d; c++)
    for (int64_t jj = bk; jj < BK; jj++) Kt[c * BK + jj] = 0.0f;
}

}  // namespace M1_NS
}  // namespace m1
