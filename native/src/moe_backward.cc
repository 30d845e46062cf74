// Backward of the SwiGLU experts (moe.cc), grouped by expert: each expert's rows are gathered once and its
// GEMM chain differentiated on them (its forward products read from what the forward kept, or recomputed):
//   h1 = x W1ᵀ, h3 = x W3ᵀ, a = silu(h1) ⊙ h3, y = a W2ᵀ, out_t = Σ_j w_tj y_tj
//   dw_tj = dout_t · y_tj,  dy = w_tj dout_t,  dW2 += dyᵀ a,  da = dy W2,  (dh1, dh3) = swiglu'(da),
//   dW1 += dh1ᵀ x,  dW3 += dh3ᵀ x,  dx_t += dh1 W1 + dh3 W3
#include <algorithm>
#include <cstring>
#include <vector>

#include "buffer.h"
#include "moe.h"
#include "threadpool.h"

namespace m1 {
namespace {
constexpr int64_t kRowBlock = 1024;  // rows of one expert per GEMM chain (bounds its activations)

thread_local Buf tl_xs, tl_h1, tl_h3, tl_a, tl_y, tl_dy;
}  // namespace

void moe_backward(const KernelTable& K, const float* x, int64_t n, int64_t hidden, const int32_t* idx,
                  const float* weights, int64_t k, const ExpertView* const* experts, int64_t num_experts,
                  const float* dout, float* dx, float* dweights, const ExpertGrads* grads, const float* slots,
                  const float* gate_up) {
  std::memset(dx, 0, size_t(n * hidden) * 4);
  if (n == 0 || k == 0 || hidden == 0) return;
  std::vector<int64_t> order;
  std::vector<ExpertGroup> groups;
  const int64_t most = group_by_expert(idx, 0, n * k, num_experts, order, groups);
  int64_t F = 0;
  for (const ExpertGroup& g : groups) F = std::max(F, experts[g.e]->w1.rows);
  const int64_t block = std::min(most, kRowBlock);
  float* xs = tl_xs.get(block * hidden);
  float* h1 = tl_h1.get(block * F);
  float* h3 = tl_h3.get(block * F);
  float* a = tl_a.get(block * F);
  float* y = tl_y.get(block * hidden);  // y, then the input gradient of the rows
  float* dy = tl_dy.get(block * hidden);
  for (const ExpertGroup& g : groups) {
    const ExpertView& ex = *experts[g.e];
    const ExpertGrads& gr = grads[g.e];
    for (int64_t r0 = 0; r0 < g.rows; r0 += kRowBlock) {
      const int64_t rows = std::min(kRowBlock, g.rows - r0);
      const int64_t* slot = order.data() + g.begin + r0;
      gather_slots(x, hidden, slot, k, rows, xs);
      if (gate_up) {
        parallel_for(rows, std::max<int64_t>(1, 4096 / F), [&](int64_t lo, int64_t hi) {
          for (int64_t r = lo; r < hi; r++) {
            std::memcpy(h1 + r * F, gate_up + slot[r] * 2 * F, size_t(F) * 4);
            std::memcpy(h3 + r * F, gate_up + slot[r] * 2 * F + F, size_t(F) * 4);
          }
        });
      } else {
        K.matmul(xs, rows, ex.w1, h1);
        K.matmul(xs, rows, ex.w3, h3);
      }
      K.swiglu(h1, h3, a, rows * F);
      if (slots) gather_slots(slots, hidden, slot, 1, rows, y);  // slot numbers index the [n·k, hidden] rows
      else K.matmul(a, rows, ex.w2, y);
      parallel_for(rows, std::max<int64_t>(1, 4096 / hidden), [&](int64_t lo, int64_t hi) {
        for (int64_t r = lo; r < hi; r++) {
          const float* d = dout + (slot[r] / k) * hidden;
          const float w = weights[slot[r]];
          double dot = 0;
          for (int64_t c = 0; c < hidden; c++) {
            dot += double(d[c]) * double(y[r * hidden + c]);
            dy[r * hidden + c] = w * d[c];
          }
          dweights[slot[r]] = float(dot);
        }
      });
      K.matmul_dw(dy, a, rows, hidden, F, gr.w2);
      K.matmul_dx(dy, rows, ex.w2, a, 0.0f);       // a ← da
      K.swiglu_backward(h1, h3, a, h1, h3, rows * F);  // h1 ← dh1, h3 ← dh3
      K.matmul_dw(h1, xs, rows, F, hidden, gr.w1);
      K.matmul_dw(h3, xs, rows, F, hidden, gr.w3);
      K.matmul_dx(h1, rows, ex.w1, y, 0.0f);
      K.matmul_dx(h3, rows, ex.w3, y, 1.0f);
      // threads take column ranges: rows of the same token (an idx that repeats an expert) add up without races
      parallel_for(hidden, std::max<int64_t>(16, 4096 / rows), [&](int64_t lo, int64_t hi) {
        for (int64_t r = 0; r < rows; r++) {
          float* o = dx + (slot[r] / k) * hidden;
          for (int64_t c = lo; c < hi; c++) o[c] += y[r * hidden + c];
        }
      });
    }
  }
}

}  // namespace m1
