#include "moe.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <vector>

#include "buffer.h"
#include "threadpool.h"

namespace m1 {
namespace {

constexpr int64_t kChunkFloats = int64_t(1) << 22;  // slot buffer of a chunk of tokens (16 MiB)
constexpr int64_t kColBlock = 32;    // weight rows per task in the few-rows path
constexpr int64_t kExpertRows = 128;  // rows per expert per chunk, on average, at the least

thread_local Buf tl_xs, tl_h1, tl_h3, tl_a, tl_y, tl_slots;
thread_local std::vector<int32_t> tl_kept_idx;

std::atomic<int64_t> g_expert_rows{0};

// The expert of each slot of [s0, s0 + ns), with the slots whose weight is 0 sent to expert `num_experts` (one past
// the last, so group_by_expert puts them after every routed slot); null when no weight is 0.
const int32_t* skipping_zero_weights(const int32_t* idx, const float* weights, int64_t s0, int64_t ns, int64_t num_experts) {
  int64_t zero = 0;
  for (int64_t s = s0; s < s0 + ns; s++) zero += weights[s] == 0.0f;
  if (zero == 0) return nullptr;
  tl_kept_idx.resize(size_t(s0 + ns));
  for (int64_t s = s0; s < s0 + ns; s++) tl_kept_idx[size_t(s)] = weights[s] == 0.0f ? int32_t(num_experts) : idx[s];
  return tl_kept_idx.data();
}

using Group = ExpertGroup;

void scatter(const float* y, int64_t hidden, const int64_t* order, int64_t rows, int64_t s0, float* slots) {
  parallel_for(rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, hidden)), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; r++) std::memcpy(slots + (order[r] - s0) * hidden, y + r * hidden, size_t(hidden) * 4);
  });
}

// Every group has at most kDotRows rows: W1/W3 row blocks of all experts in one parallel pass, then W2.
// h1, h3: W1 x and W3 x of the grouped rows; a: their SwiGLU (may be h1).
void few_rows(const KernelTable& K, const std::vector<Group>& groups, const ExpertView* const* experts,
              int64_t hidden, int64_t F, const float* xs, float* h1, float* h3, float* a, float* y) {
  int64_t rows = 0, most = 0;
  for (const Group& g : groups) {
    rows += g.rows;
    most = std::max(most, g.rows);
  }
  // tasks: per group, per_f row blocks of W1 then per_f of W3; about 64K multiply-adds per chunk at least
  const int64_t per_f = (F + kColBlock - 1) / kColBlock;
  const int64_t grain_f = std::max<int64_t>(1, (int64_t(1) << 16) / std::max<int64_t>(1, kColBlock * hidden * most));
  // A range of tasks runs as one call per weight it touches (the blocks of one weight are adjacent tasks): in a pass
  // on one thread, a whole weight per call, with one short tile at its end instead of one per block of columns.
  parallel_for(int64_t(groups.size()) * 2 * per_f, grain_f, [&](int64_t lo, int64_t hi) {
    for (int64_t t = lo, next; t < hi; t = next) {
      next = std::min(hi, (t / per_f + 1) * per_f);  // the end of this weight's blocks
      const Group& g = groups[size_t(t / (2 * per_f))];
      const int64_t j0 = (t % per_f) * kColBlock, j1 = std::min(F, ((next - 1) % per_f + 1) * kColBlock);
      const ExpertView& ex = *experts[g.e];
      if (t % (2 * per_f) < per_f) K.matmul_cols(xs + g.begin * hidden, g.rows, ex.w1, j0, j1, h1 + g.begin * F);
      else K.matmul_cols(xs + g.begin * hidden, g.rows, ex.w3, j0, j1, h3 + g.begin * F);
    }
  });
  K.swiglu(h1, h3, a, rows * F);
  const int64_t per_h = (hidden + kColBlock - 1) / kColBlock;
  const int64_t grain_h = std::max<int64_t>(1, (int64_t(1) << 16) / std::max<int64_t>(1, kColBlock * F * most));
  parallel_for(int64_t(groups.size()) * per_h, grain_h, [&](int64_t lo, int64_t hi) {
    for (int64_t t = lo, next; t < hi; t = next) {
      next = std::min(hi, (t / per_h + 1) * per_h);
      const Group& g = groups[size_t(t / per_h)];
      const int64_t j0 = (t % per_h) * kColBlock, j1 = std::min(hidden, ((next - 1) % per_h + 1) * kColBlock);
      K.matmul_cols(a + g.begin * F, g.rows, experts[g.e]->w2, j0, j1, y + g.begin * hidden);
    }
  });
}

}  // namespace

int64_t expert_rows_computed() { return g_expert_rows.load(std::memory_order_relaxed); }

int64_t moe_chunk_tokens(int64_t k, int64_t hidden, int64_t num_experts) {
  // large chunks give each expert many rows per GEMM; the slot buffer bounds them, but never below kExpertRows
  // rows per expert on average (with many experts of a wide model, a 16 MiB chunk would leave each a few dozen
  // rows: small-row GEMMs that re-read and re-convert the expert's weights in every chunk)
  return std::max({int64_t(256), kChunkFloats / (k * hidden), kExpertRows * num_experts / k});
}

void gather_slots(const float* x, int64_t hidden, const int64_t* order, int64_t k, int64_t rows, float* xs) {
  parallel_for(rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, hidden)), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; r++) std::memcpy(xs + r * hidden, x + (order[r] / k) * hidden, size_t(hidden) * 4);
  });
}

int64_t group_by_expert(const int32_t* idx, int64_t s0, int64_t ns, int64_t num_experts, std::vector<int64_t>& order,
                        std::vector<ExpertGroup>& groups) {
  // counting sort of the slots by expert
  std::vector<int64_t> start(size_t(num_experts) + 1, 0);
  for (int64_t s = s0; s < s0 + ns; s++) start[size_t(idx[s]) + 1]++;
  for (int64_t e = 0; e < num_experts; e++) start[size_t(e) + 1] += start[size_t(e)];
  order.assign(size_t(ns), 0);
  std::vector<int64_t> fill(start.begin(), start.end() - 1);
  for (int64_t s = s0; s < s0 + ns; s++) order[size_t(fill[size_t(idx[s])]++)] = s;
  groups.clear();
  int64_t most = 0;
  for (int64_t e = 0; e < num_experts; e++) {
    const int64_t rows = start[size_t(e) + 1] - start[size_t(e)];
    if (rows) groups.push_back({e, start[size_t(e)], rows});
    most = std::max(most, rows);
  }
  return most;
}

void moe_experts(const KernelTable& K, const float* x, int64_t n, int64_t hidden, const int32_t* idx,
                 const float* weights, int64_t k, const ExpertView* const* experts, int64_t num_experts, float* slots,
                 float* out, bool rowwise, float* gate_up, float* act) {
  if (n == 0 || k == 0 || hidden == 0) return;
  int64_t F = 0;
  for (int64_t s = 0; s < n * k; s++) F = std::max(F, experts[idx[s]]->w1.rows);
  std::vector<int64_t> order;
  std::vector<Group> groups;
  const int64_t chunk = moe_chunk_tokens(k, hidden, num_experts);
  for (int64_t t0 = 0; t0 < n; t0 += chunk) {
    const int64_t nc = std::min(chunk, n - t0), s0 = t0 * k, ns = nc * k;
    // with only the weighted sum wanted, slots of weight 0 add nothing: they are not computed (y = 0)
    const int32_t* kept_idx = slots || gate_up || !out ? nullptr : skipping_zero_weights(idx, weights, s0, ns, num_experts);
    int64_t rows = ns;
    int64_t most = 0;
    if (kept_idx) {
      group_by_expert(kept_idx, s0, ns, num_experts + 1, order, groups);
      rows -= groups.back().rows;  // the slots of weight 0: the last group, at the end of order
      groups.pop_back();
      for (const Group& g : groups) most = std::max(most, g.rows);
    } else {
      most = group_by_expert(idx, s0, ns, num_experts, order, groups);
    }
    g_expert_rows.fetch_add(rows, std::memory_order_relaxed);
    float* ys = slots ? slots + s0 * hidden : tl_slots.get(ns * hidden);
    for (int64_t r = rows; r < ns; r++) std::memset(ys + (order[size_t(r)] - s0) * hidden, 0, size_t(hidden) * 4);
    float* xs = tl_xs.get(ns * hidden);
    gather_slots(x, hidden, order.data(), k, rows, xs);
    // with gate_up, W1 x and W3 x go straight into its planes of this chunk (see moe.h) and the SwiGLU into act's
    // rows (or a buffer of its own); without, into scratch, the SwiGLU in place
    float* kept_h1 = gate_up ? gate_up + s0 * 2 * F : nullptr;
    float* kept_h3 = gate_up ? kept_h1 + ns * F : nullptr;
    float* kept_a = gate_up && act ? act + s0 * F : nullptr;
    if (most <= kDotRows || rowwise) {
      float* h1 = gate_up ? kept_h1 : tl_h1.get(ns * F);
      float* h3 = gate_up ? kept_h3 : tl_h3.get(ns * F);
      float* a = kept_a ? kept_a : gate_up ? tl_a.get(ns * F) : h1;
      float* y = tl_y.get(ns * hidden);
      few_rows(K, groups, experts, hidden, F, xs, h1, h3, a, y);
      scatter(y, hidden, order.data(), rows, s0, ys);
    } else {
      const int64_t block = std::min(most, kMoeRowBlock);
      float* a = tl_a.get(block * F);
      float* y = tl_y.get(block * hidden);
      for (const Group& g : groups) {
        const ExpertView& ex = *experts[g.e];
        for (int64_t r0 = 0; r0 < g.rows; r0 += kMoeRowBlock) {
          const int64_t rows = std::min(kMoeRowBlock, g.rows - r0);
          const float* xg = xs + (g.begin + r0) * hidden;
          float* h1 = gate_up ? kept_h1 + (g.begin + r0) * F : a;
          float* h3 = gate_up ? kept_h3 + (g.begin + r0) * F : tl_h3.get(block * F);
          K.matmul(xg, rows, ex.w1, h1);
          K.matmul(xg, rows, ex.w3, h3);
          float* ag = kept_a ? kept_a + (g.begin + r0) * F : a;
          K.swiglu(h1, h3, ag, rows * F);
          K.matmul(ag, rows, ex.w2, y);
          scatter(y, hidden, order.data() + g.begin + r0, rows, s0, ys);
        }
      }
    }
    if (out) K.weighted_sum(ys, weights + s0, nc, k, hidden, out + t0 * hidden);
  }
}

}  // namespace m1
