// SwiGLU experts for routed tokens. Tokens are taken in chunks; the slots (token, rank) of a chunk are
// grouped by expert and each expert runs a GEMM chain on its rows (up to 1024 at a time):
// y = W2 (silu(W1 x) ⊙ (W3 x)).
// When every expert has few rows (decode), the experts' weight rows are shared out to the threads
// together, so each byte of the chosen experts is read once and no thread waits on one small GEMV.
#pragma once
#include <stdint.h>

#include "kernels.h"

namespace m1 {

struct ExpertView {
  WeightView w1;  // gate [F, hidden]
  WeightView w3;  // up   [F, hidden]
  WeightView w2;  // down [hidden, F]
};

// x [n, hidden]; idx [n, k]; experts[e] is non-null for every routed e (validated by the caller).
// slots != null: slots[t, j, :] = y of (t, idx[t, j]).
// out != null: out[t, :] = Σ_j weights[t, j] · y(t, j), bit-identical to slots followed by weighted_sum.
// rowwise: every expert takes the dot path however many rows it has, so each token's result has the bits it has
// when the token is alone (batched decode of independent sequences).
void moe_experts(const KernelTable& K, const float* x, int64_t n, int64_t hidden, const int32_t* idx,
                 const float* weights, int64_t k, const ExpertView* const* experts, int64_t num_experts, float* slots,
                 float* out, bool rowwise);

}  // namespace m1
