// SwiGLU experts for routed tokens: tokens are grouped per expert, one GEMM chain per expert.
#pragma once
#include <stdint.h>

#include "kernels.h"

namespace m1 {

struct ExpertView {
  WeightView w1;  // gate [F, hidden]
  WeightView w3;  // up   [F, hidden]
  WeightView w2;  // down [hidden, F]
};

// out[t, j, :] = W2_e (silu(W1_e x_t) ⊙ (W3_e x_t)), e = idx[t, j]; experts[e] is non-null for every
// routed e (validated by the caller).
void moe_experts(const KernelTable& K, const float* x, int64_t n, int64_t hidden, const int32_t* idx, int64_t k,
                 const ExpertView* const* experts, int64_t num_experts, float* out);

}  // namespace m1
