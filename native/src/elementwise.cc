// Element-wise and row-wise ops: activations, rmsnorm, embedding, RoPE, router top-k, weighted sum.
#include "simd.h"

namespace m1 {
namespace M1_NS {

namespace {
constexpr int64_t kGrain = 1 << 14;  // elements per parallel chunk

// f(V x) -> V over [lo, hi), masked tail.
template <class F>
inline void map1(const float* x, float* out, int64_t lo, int64_t hi, F f) {
  int64_t i = lo;
  for (; i + V::W <= hi; i += V::W) f(V::load(x + i)).store(out + i);
  if (i < hi) {
    const typename V::Mask m = V::mask(hi - i);
    f(V::load(x + i, m)).store(out + i, m);
  }
}

template <class F>
inline void map2(const float* a, const float* b, float* out, int64_t lo, int64_t hi, F f) {
  int64_t i = lo;
  for (; i + V::W <= hi; i += V::W) f(V::load(a + i), V::load(b + i)).store(out + i);
  if (i < hi) {
    const typename V::Mask m = V::mask(hi - i);
    f(V::load(a + i, m), V::load(b + i, m)).store(out + i, m);
  }
}

inline V v_sigmoid(V x) { return V::set1(1.0f) / (V::set1(1.0f) + vexp(V::zero() - x)); }
inline V v_silu(V x) { return x / (V::set1(1.0f) + vexp(V::zero() - x)); }
}  // namespace

void silu(const float* x, float* out, int64_t len) {
  parallel_for(len, kGrain, [&](int64_t lo, int64_t hi) { map1(x, out, lo, hi, v_silu); });
}

void sigmoid(const float* x, float* out, int64_t len) {
  parallel_for(len, kGrain, [&](int64_t lo, int64_t hi) { map1(x, out, lo, hi, v_sigmoid); });
}

void swiglu(const float* gate, const float* up, float* out, int64_t len) {
  parallel_for(len, kGrain, [&](int64_t lo, int64_t hi) {
    map2(gate, up, out, lo, hi, [](V g, V u) { return v_silu(g) * u; });
  });
}

void mul(const float* a, const float* b, float* out, int64_t len) {
  parallel_for(len, kGrain, [&](int64_t lo, int64_t hi) { map2(a, b, out, lo, hi, [](V x, V y) { return x * y; }); });
}

void axpby(float alpha, const float* x, float beta, const float* y, float* out, int64_t len) {
  const V av = V::set1(alpha), bv = V::set1(beta);
  parallel_for(len, kGrain, [&](int64_t lo, int64_t hi) {
    map2(x, y, out, lo, hi, [&](V a, V b) { return fma(av, a, bv * b); });
  });
}

// out = w ⊙ x · (mean(x²) + eps)^-1/2, the sum of squares in double.
void rmsnorm(const float* x, int64_t n, int64_t dim, const float* weight, double eps, float* out) {
  if (dim <= 0) return;
  parallel_for(n, imax(1, kGrain / dim), [&](int64_t lo, int64_t hi) {
    for (int64_t t = lo; t < hi; t++) {
      const float* xr = x + t * dim;
      float* o = out + t * dim;
      const double ms = sumsq_f64(xr, dim) / double(dim);
      const V r = V::set1(float(1.0 / sqrt(ms + eps)));
      map2(xr, weight, o, 0, dim, [&](V a, V w) { return w * (a * r); });
    }
  });
}

void embedding(const int32_t* ids, int64_t n, const WeightView& table, float* out) {
  const int64_t dim = table.cols;
  parallel_for(n, imax(1, kGrain / imax(1, dim)), [&](int64_t lo, int64_t hi) {
    for (int64_t t = lo; t < hi; t++) convert_row(table, ids[t], 0, dim, out + t * dim);
  });
}

// NeoX rotate-half on the first rotary_dim dims of each head: angle_i = pos · theta^(-2i/rd) (double),
// x'_i = x_i cos − x_{i+h} sin, x'_{i+h} = x_{i+h} cos + x_i sin, h = rd/2.
void rope(float* x, int64_t n, int64_t heads, int64_t head_dim, int64_t rotary_dim, const int32_t* positions,
          double theta) {
  const int64_t half = rotary_dim / 2;
  if (half <= 0 || n <= 0 || heads <= 0) return;
  double* inv = static_cast<double*>(malloc(size_t(half) * sizeof(double)));
  if (!inv) abort();
  for (int64_t i = 0; i < half; i++) inv[i] = pow(theta, -2.0 * double(i) / double(rotary_dim));
  parallel_for(n, imax(1, 4096 / imax(1, heads * half)), [&](int64_t lo, int64_t hi) {
    float* cs = scratch(slot::kRopeAngles, 2 * half);
    float* sn = cs + half;
    for (int64_t t = lo; t < hi; t++) {
      const double pos = double(positions[t]);
      for (int64_t i = 0; i < half; i++) {
        const double a = pos * inv[i];
        cs[i] = float(cos(a));
        sn[i] = float(sin(a));
      }
      for (int64_t h = 0; h < heads; h++) {
        float* p = x + (t * heads + h) * head_dim;
        int64_t i = 0;
        for (; i + V::W <= half; i += V::W) {
          const V a = V::load(p + i), b = V::load(p + half + i);
          const V c = V::load(cs + i), s = V::load(sn + i);
          fma(a, c, V::zero() - b * s).store(p + i);
          fma(b, c, a * s).store(p + half + i);
        }
        for (; i < half; i++) {
          const float a = p[i], b = p[half + i];
          p[i] = a * cs[i] - b * sn[i];
          p[half + i] = b * cs[i] + a * sn[i];
        }
      }
    }
  });
  free(inv);
}

void split_qkv(const float* qkv, int64_t rows, int64_t d, float* q, float* k, float* v) {
  if (d <= 0) return;
  parallel_for(rows, imax(1, kGrain / (3 * d)), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; r++) {
      const float* src = qkv + r * 3 * d;
      memcpy(q + r * d, src, size_t(d) * 4);
      memcpy(k + r * d, src + d, size_t(d) * 4);
      memcpy(v + r * d, src + 2 * d, size_t(d) * 4);
    }
  });
}

// p = softmax(logits) (f32, max-subtracted, denominator in double); top-k by p, ties to the lower
// index; weights = p / Σ_topk p.
void router_topk(const float* logits, int64_t n, int64_t experts, int64_t k, int32_t* idx, float* weights) {
  parallel_for(n, imax(1, 4096 / imax(1, experts * k)), [&](int64_t lo, int64_t hi) {
    float* p = scratch(slot::kRouterProbs, experts);
    for (int64_t t = lo; t < hi; t++) {
      const float* l = logits + t * experts;
      float mx = -INFINITY;
      for (int64_t e = 0; e < experts; e++) mx = l[e] > mx ? l[e] : mx;
      double sum = 0;
      for (int64_t e = 0; e < experts; e++) {
        p[e] = expf(l[e] - mx);
        sum += p[e];
      }
      for (int64_t e = 0; e < experts; e++) p[e] = float(double(p[e]) / sum);
      int32_t* ix = idx + t * k;
      float* wt = weights + t * k;
      double top = 0;
      for (int64_t s = 0; s < k; s++) {
        int64_t best = -1;
        for (int64_t e = 0; e < experts; e++) {
          if (p[e] < 0.0f) continue;  // already taken
          if (best < 0 || p[e] > p[best]) best = e;
        }
        ix[s] = int32_t(best);
        wt[s] = p[best];
        top += p[best];
        p[best] = -1.0f;
      }
      for (int64_t s = 0; s < k; s++) wt[s] = float(double(wt[s]) / top);
    }
  });
}

// out[t, :] = Σ_j weights[t, j] · slots[t, j, :]
void weighted_sum(const float* slots, const float* weights, int64_t n, int64_t k, int64_t dim, float* out) {
  if (dim <= 0) return;
  parallel_for(n, imax(1, kGrain / imax(1, dim * k)), [&](int64_t lo, int64_t hi) {
    for (int64_t t = lo; t < hi; t++) {
      const float* s = slots + t * k * dim;
      const float* w = weights + t * k;
      float* o = out + t * dim;
      if (k == 0) {
        memset(o, 0, size_t(dim) * 4);
        continue;
      }
      int64_t c = 0;
      for (; c < dim; c += V::W) {
        const int64_t rem = dim - c;
        const typename V::Mask m = V::mask(rem);
        const bool full = rem >= V::W;
        V acc = V::set1(w[0]) * (full ? V::load(s + c) : V::load(s + c, m));
        for (int64_t j = 1; j < k; j++) {
          const float* sj = s + j * dim + c;
          acc = fma(V::set1(w[j]), full ? V::load(sj) : V::load(sj, m), acc);
        }
        if (full) acc.store(o + c);
        else acc.store(o + c, m);
      }
    }
  });
}

}  // namespace M1_NS
}  // namespace m1
