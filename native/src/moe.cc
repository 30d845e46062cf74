#include "moe.h"

#include <cstring>
#include <vector>

namespace m1 {

void moe_experts(const KernelTable& K, const float* x, int64_t n, int64_t hidden, const int32_t* idx, int64_t k,
                 const ExpertView* const* experts, int64_t num_experts, float* out) {
  const int64_t slots = n * k;
  if (slots == 0 || hidden == 0) return;
  // counting sort of the slots by expert
  std::vector<int64_t> start(static_cast<size_t>(num_experts) + 1, 0);
  for (int64_t s = 0; s < slots; s++) start[size_t(idx[s]) + 1]++;
  for (int64_t e = 0; e < num_experts; e++) start[size_t(e) + 1] += start[size_t(e)];
  std::vector<int64_t> order(static_cast<size_t>(slots));
  {
    std::vector<int64_t> fill(start.begin(), start.end() - 1);
    for (int64_t s = 0; s < slots; s++) order[size_t(fill[size_t(idx[s])]++)] = s;
  }
  std::vector<float> xs, h1, h3, y;
  for (int64_t e = 0; e < num_experts; e++) {
    const int64_t b = start[size_t(e)], ne = start[size_t(e) + 1] - b;
    if (ne == 0) continue;
    const ExpertView& ex = *experts[e];
    const int64_t F = ex.w1.rows;
    xs.resize(size_t(ne * hidden));
    h1.resize(size_t(ne * F));
    h3.resize(size_t(ne * F));
    y.resize(size_t(ne * hidden));
    for (int64_t r = 0; r < ne; r++) {
      const int64_t t = order[size_t(b + r)] / k;
      std::memcpy(xs.data() + r * hidden, x + t * hidden, size_t(hidden) * sizeof(float));
    }
    K.matmul(xs.data(), ne, ex.w1, h1.data());
    K.matmul(xs.data(), ne, ex.w3, h3.data());
    K.swiglu(h1.data(), h3.data(), h1.data(), ne * F);
    K.matmul(h1.data(), ne, ex.w2, y.data());
    for (int64_t r = 0; r < ne; r++) {
      const int64_t s = order[size_t(b + r)];
      std::memcpy(out + s * hidden, y.data() + r * hidden, size_t(hidden) * sizeof(float));
    }
  }
}

}  // namespace m1
