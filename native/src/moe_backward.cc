// Backward of the SwiGLU experts (moe.cc), grouped by expert in moe_experts' chunks: each expert's rows are gathered
// once and its GEMM chain differentiated on them (its forward products read in place from what the forward kept,
// or recomputed):
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
thread_local Buf tl_xs, tl_h1, tl_h3, tl_a, tl_y, tl_dy, tl_dh1, tl_dh3;

// For R slots from `slot` (rows of y and dy from row r): dweights[s] = dout_t · y_s (an f64 sum over the hidden
// columns in ascending order; each f32 product is exact in f64) and dy_s = w_s dout_t. R sums side by side keep R
// additions in flight instead of one; each slot's sum is the same whatever R.
template <int R>
void slot_grads(const float* dout, const float* weights, const int64_t* slot, int64_t k, int64_t hidden,
                const float* y, float* dy, float* dweights) {
  const float* d[R];
  float w[R];
  double dot[R];
  for (int i = 0; i < R; i++) {
    d[i] = dout + (slot[i] / k) * hidden;
    w[i] = weights[slot[i]];
    dot[i] = 0;
  }
  for (int64_t c = 0; c < hidden; c++) {
    for (int i = 0; i < R; i++) {
      dot[i] += double(d[i][c]) * double(y[i * hidden + c]);
      dy[i * hidden + c] = w[i] * d[i][c];
    }
  }
  for (int i = 0; i < R; i++) dweights[slot[i]] = float(dot[i]);
}
}  // namespace

void moe_backward(const KernelTable& K, const float* x, int64_t n, int64_t hidden, const int32_t* idx,
                  const float* weights, int64_t k, const ExpertView* const* experts, int64_t num_experts,
                  const float* dout, float* dx, float* dweights, const ExpertGrads* grads, const float* slots,
                  const float* gate_up, const float* act) {
  std::memset(dx, 0, size_t(n * hidden) * 4);
  if (n == 0 || k == 0 || hidden == 0) return;
  int64_t F = 0;
  for (int64_t s = 0; s < n * k; s++) F = std::max(F, experts[idx[s]]->w1.rows);
  std::vector<int64_t> order;
  std::vector<ExpertGroup> groups;
  // the chunks of moe_experts, so that its gate_up rows are where this pass reads them
  const int64_t chunk = moe_chunk_tokens(k, hidden, num_experts);
  for (int64_t t0 = 0; t0 < n; t0 += chunk) {
    const int64_t s0 = t0 * k, ns = std::min(chunk, n - t0) * k;
    const int64_t block = std::min(group_by_expert(idx, s0, ns, num_experts, order, groups), kMoeRowBlock);
    const float* kept_h1 = gate_up ? gate_up + s0 * 2 * F : nullptr;
    const float* kept_h3 = gate_up ? kept_h1 + ns * F : nullptr;
    const float* kept_a = gate_up && act ? act + s0 * F : nullptr;
    float* xs = tl_xs.get(block * hidden);
    float* a = tl_a.get(block * F);
    float* y = tl_y.get(block * hidden);  // y, then the input gradient of the rows
    float* dy = tl_dy.get(block * hidden);
    float* dh1 = tl_dh1.get(block * F);
    float* dh3 = tl_dh3.get(block * F);
    for (const ExpertGroup& g : groups) {
      const ExpertView& ex = *experts[g.e];
      const ExpertGrads& gr = grads[g.e];
      for (int64_t r0 = 0; r0 < g.rows; r0 += kMoeRowBlock) {
        const int64_t rows = std::min(kMoeRowBlock, g.rows - r0);
        const int64_t* slot = order.data() + g.begin + r0;
        gather_slots(x, hidden, slot, k, rows, xs);
        const float *h1, *h3;
        if (gate_up) {
          h1 = kept_h1 + (g.begin + r0) * F;
          h3 = kept_h3 + (g.begin + r0) * F;
        } else {
          float* w1x = tl_h1.get(block * F);
          float* w3x = tl_h3.get(block * F);
          K.matmul(xs, rows, ex.w1, w1x);
          K.matmul(xs, rows, ex.w3, w3x);
          h1 = w1x;
          h3 = w3x;
        }
        const float* act_rows = a;  // silu(h1) ⊙ h3, kept by the forward or computed here
        if (kept_a) act_rows = kept_a + (g.begin + r0) * F;
        else K.swiglu(h1, h3, a, rows * F);
        if (slots) gather_slots(slots, hidden, slot, 1, rows, y);  // slot numbers index the [n·k, hidden] rows
        else K.matmul(act_rows, rows, ex.w2, y);
        parallel_for(rows, std::max<int64_t>(1, 4096 / hidden), [&](int64_t lo, int64_t hi) {
          int64_t r = lo;
          for (; r + 4 <= hi; r += 4) slot_grads<4>(dout, weights, slot + r, k, hidden, y + r * hidden, dy + r * hidden, dweights);
          for (; r < hi; r++) slot_grads<1>(dout, weights, slot + r, k, hidden, y + r * hidden, dy + r * hidden, dweights);
        });
        K.matmul_dw(dy, act_rows, rows, hidden, F, gr.w2);
        K.matmul_dx(dy, rows, ex.w2, a, 0.0f);       // a ← da
        K.swiglu_backward(h1, h3, a, dh1, dh3, rows * F);
        K.matmul_dw(dh1, xs, rows, F, hidden, gr.w1);
        K.matmul_dw(dh3, xs, rows, F, hidden, gr.w3);
        K.matmul_dx(dh1, rows, ex.w1, y, 0.0f);
        K.matmul_dx(dh3, rows, ex.w3, y, 1.0f);
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
}

}  // namespace m1
