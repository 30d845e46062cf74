// SwiGLU experts for routed tokens. Tokens are taken in chunks; the slots (token, rank) of a chunk are
// grouped by expert and each expert runs a GEMM chain on its rows (up to 1024 at a time):
// y = W2 (silu(W1 x) ⊙ (W3 x)).
// When every expert has few rows (decode), the experts' weight rows are shared out to the threads
// together, so each byte of the chosen experts is read once and no thread waits on one small GEMV.
#pragma once
#include <stdint.h>

#include <vector>

#include "kernels.h"

namespace m1 {

struct ExpertView {
  WeightView w1;  // gate [F, hidden]
  WeightView w3;  // up   [F, hidden]
  WeightView w2;  // down [hidden, F]
};

// Expert rows (slots) computed by moe_experts since the addon loaded: the work an expert threshold saves shows here.
int64_t expert_rows_computed();

constexpr int64_t kMoeRowBlock = 1024;  // rows of one expert per GEMM chain (bounds its hidden activations)

// Tokens per chunk of moe_experts (moe_backward walks the same chunks to read gate_up).
int64_t moe_chunk_tokens(int64_t k, int64_t hidden, int64_t num_experts);

// The slots (token, rank) of one expert, as a range of an order of slots sorted by expert.
struct ExpertGroup {
  int64_t e, begin, rows;  // expert, first entry in `order`, number of slots
};

// Sorts slots [s0, s0 + ns) of idx by expert (order: slot numbers t·k + j) into the non-empty groups; returns
// the most slots of one expert.
int64_t group_by_expert(const int32_t* idx, int64_t s0, int64_t ns, int64_t num_experts, std::vector<int64_t>& order,
                        std::vector<ExpertGroup>& groups);

// xs[r] = x[order[r] / k] for r < rows (the token row of each slot)
void gather_slots(const float* x, int64_t hidden, const int64_t* order, int64_t k, int64_t rows, float* xs);

// x [n, hidden]; idx [n, k]; experts[e] is non-null for every routed e (validated by the caller).
// slots != null: slots[t, j, :] = y of (t, idx[t, j]).
// out != null: out[t, :] = Σ_j weights[t, j] · y(t, j), bit-identical to slots followed by weighted_sum. When only
// out is wanted (no slots, no gate_up), a slot of weight 0 (an expert dropped by a threshold) is not computed: its
// y counts as 0, so it adds +0 where it added 0·y (the same sum unless y was infinite or NaN). Its expert's other
// rows may then take another GEMM path (fewer rows): the same values to f32 rounding, the same bits on the
// dot path (every group of at most kDotRows rows, as in decode).
// rowwise: every expert takes the dot path however many rows it has, so each token's result has the bits it has
// when the token is alone (batched decode of independent sequences).
// gate_up != null (n·k·2F floats): W1 x and W3 x of every slot (before the SwiGLU), kept for the backward pass in
// the order the GEMMs write them: per chunk of tokens [t0, t0 + nc) (moe_chunk_tokens), slots s0 = t0·k, ns = nc·k,
// the chunk's W1 x rows at gate_up + 2F·s0, its W3 x rows ns·F further, row r for the r-th slot of the chunk
// grouped by expert (group_by_expert's order). No copy in or out of per-slot rows.
// act != null (with gate_up; n·k·F floats): silu(W1 x) ⊙ W3 x of every slot, in gate_up's order (a chunk's rows at
// act + F·s0), kept so that the backward pass need not recompute it.
void moe_experts(const KernelTable& K, const float* x, int64_t n, int64_t hidden, const int32_t* idx,
                 const float* weights, int64_t k, const ExpertView* const* experts, int64_t num_experts, float* slots,
                 float* out, bool rowwise, float* gate_up = nullptr, float* act = nullptr);

}  // namespace m1

namespace m1 {

// Gradient of moe_experts' out = Σ_j weights[t, j] · y(t, j) from dout [n, hidden], expert by expert over all
// of its rows: dx [n, hidden] (written), dweights [n, k] (written), and per routed expert e,
// grads[e] = { dW1, dW3, dW2 } f32 in the weights' shapes (added to). The forward's slots (y), gate_up and act, when
// given, are read instead of recomputing the experts' GEMMs and SwiGLU (act only with gate_up).
struct ExpertGrads {
  float* w1;
  float* w3;
  float* w2;
};
void moe_backward(const KernelTable& K, const float* x, int64_t n, int64_t hidden, const int32_t* idx,
                  const float* weights, int64_t k, const ExpertView* const* experts, int64_t num_experts,
                  const float* dout, float* dx, float* dweights, const ExpertGrads* grads, const float* slots = nullptr,
                  const float* gate_up = nullptr, const float* act = nullptr);

}  // namespace m1
