// Backward of the element-wise and row-wise ops (elementwise.cc): activations, rmsnorm, embedding, router
// top-k, and the LM head's log-softmax / weighted cross-entropy. Each takes the upstream gradient dy of the
// op's output and returns the gradients of its inputs; weight gradients are added to (accumulated).
#include <vector>

#include "simd.h"

namespace m1 {
namespace M1_NS {

namespace {
constexpr int64_t kGrain = 1 << 14;  // elements per parallel chunk

// f(V a, V b, V c) -> V over [lo, hi), masked tail.
template <class F>
inline void map3(const float* a, const float* b, const float* c, float* out, int64_t lo, int64_t hi, F f) {
  int64_t i = lo;
  for (; i + V::W <= hi; i += V::W) f(V::load(a + i), V::load(b + i), V::load(c + i)).store(out + i);
  if (i < hi) {
    const typename V::Mask m = V::mask(hi - i);
    f(V::load(a + i, m), V::load(b + i, m), V::load(c + i, m)).store(out + i, m);
  }
}

inline V v_sigmoid(V x) { return V::set1(1.0f) / (V::set1(1.0f) + vexp(V::zero() - x)); }
// d silu(x) / dx = σ(x) (1 + x (1 − σ(x)))
inline V v_dsilu(V x) {
  const V s = v_sigmoid(x), one = V::set1(1.0f);
  return s * fma(x, one - s, one);
}

float* checked_alloc(int64_t floats) {
  float* p = static_cast<float*>(malloc(size_t(imax(1, floats)) * 4));
  if (!p) {
    fprintf(stderr, "m1native: out of memory (%lld floats of backward scratch)\n", (long long)floats);
    abort();
  }
  return p;
}
}  // namespace

void silu_backward(const float* x, const float* dy, float* dx, int64_t len) {
  parallel_for(len, kGrain, [&](int64_t lo, int64_t hi) {
    map3(x, dy, dy, dx, lo, hi, [](V a, V g, V) { return g * v_dsilu(a); });
  });
}

// y = σ(x) given: dx = dy · y (1 − y)
void sigmoid_backward(const float* y, const float* dy, float* dx, int64_t len) {
  parallel_for(len, kGrain, [&](int64_t lo, int64_t hi) {
    map3(y, dy, dy, dx, lo, hi, [](V s, V g, V) { return g * (s * (V::set1(1.0f) - s)); });
  });
}

// out = silu(gate) ⊙ up: dgate = dy ⊙ up ⊙ silu'(gate), dup = dy ⊙ silu(gate). dgate may alias gate, dup up.
void swiglu_backward(const float* gate, const float* up, const float* dy, float* dgate, float* dup, int64_t len) {
  const auto grads = [](V g, V u, V d, V& dg, V& du) {
    const V s = v_sigmoid(g);
    dg = d * u * (s * fma(g, V::set1(1.0f) - s, V::set1(1.0f)));
    du = d * (g * s);
  };
  parallel_for(len, kGrain, [&](int64_t lo, int64_t hi) {
    int64_t i = lo;
    V dg, du;
    for (; i + V::W <= hi; i += V::W) {  // whole vectors unmasked: masked stores are slow on some cores (AMD)
      grads(V::load(gate + i), V::load(up + i), V::load(dy + i), dg, du);
      dg.store(dgate + i);
      du.store(dup + i);
    }
    if (i < hi) {
      const typename V::Mask m = V::mask(hi - i);
      grads(V::load(gate + i, m), V::load(up + i, m), V::load(dy + i, m), dg, du);
      dg.store(dgate + i, m);
      du.store(dup + i, m);
    }
  });
}

// y = w ⊙ x · r, r = (mean(x²) + eps)^-1/2 per row:
//   dx = r (w ⊙ dy) − x · r³ · Σ(w ⊙ dy ⊙ x) / dim,   dweight += Σ_rows dy ⊙ x · r  (row sums in double)
void rmsnorm_backward(const float* x, const float* dy, int64_t n, int64_t dim, const float* weight, double eps,
                      float* dx, float* dweight) {
  if (dim <= 0 || n <= 0) return;
  float* r = checked_alloc(n);
  parallel_for(n, imax(1, kGrain / dim), [&](int64_t lo, int64_t hi) {
    for (int64_t t = lo; t < hi; t++) {
      const float* xr = x + t * dim;
      const float* g = dy + t * dim;
      const double rt = 1.0 / sqrt(sumsq_f64(xr, dim) / double(dim) + eps);
      // Σ w·dy·x in double, four partial sums (one chain would wait on each add's latency)
      double c4[4] = {0, 0, 0, 0};
      int64_t i = 0;
      for (; i + 4 <= dim; i += 4) {
        for (int u = 0; u < 4; u++) c4[u] += double(weight[i + u]) * double(g[i + u]) * double(xr[i + u]);
      }
      for (; i < dim; i++) c4[0] += double(weight[i]) * double(g[i]) * double(xr[i]);
      const double c = (c4[0] + c4[1]) + (c4[2] + c4[3]);
      const float a = float(rt), b = float(rt * rt * rt * c / double(dim));
      float* o = dx + t * dim;
      for (i = 0; i < dim; i++) o[i] = a * weight[i] * g[i] - b * xr[i];
      r[t] = a;
    }
  });
  if (dweight) {
    parallel_for(dim, imax(V::W, kGrain / imax(1, n)), [&](int64_t lo, int64_t hi) {
      for (int64_t t = 0; t < n; t++) {
        const float* xr = x + t * dim;
        const float* g = dy + t * dim;
        for (int64_t i = lo; i < hi; i++) dweight[i] += g[i] * xr[i] * r[t];
      }
    });
  }
  free(r);
}

// dtable[ids[t], :] += dy[t, :]; threads take column ranges, so rows that repeat add up without races.
void embedding_backward(const int32_t* ids, int64_t n, int64_t dim, const float* dy, float* dtable) {
  parallel_for(dim, imax(V::W, kGrain / imax(1, n)), [&](int64_t lo, int64_t hi) {
    for (int64_t t = 0; t < n; t++) {
      const float* g = dy + t * dim;
      float* row = dtable + int64_t(ids[t]) * dim;
      for (int64_t i = lo; i < hi; i++) row[i] += g[i];
    }
  });
}

// Router (elementwise.cc router_topk): p = softmax(logits), w_j = p_{idx_j} / T, T = Σ_j p_{idx_j}.
// The choice of idx has no gradient; through the renormalised weights:
//   dp_i = (dw_i − Σ_j dw_j w_j) / T for chosen i (0 otherwise),  dlogits = p ⊙ (dp − Σ_e dp_e p_e).
void router_topk_backward(const float* logits, int64_t n, int64_t experts, int64_t k, const int32_t* idx,
                          const float* dweights, float* dlogits) {
  parallel_for(n, imax(1, 4096 / imax(1, experts * k)), [&](int64_t lo, int64_t hi) {
    double* p = reinterpret_cast<double*>(scratch(slot::kRouterProbs, 4 * experts));
    double* dp = p + experts;
    for (int64_t t = lo; t < hi; t++) {
      const float* l = logits + t * experts;
      double mx = -INFINITY;
      for (int64_t e = 0; e < experts; e++) mx = l[e] > mx ? l[e] : mx;
      double sum = 0;
      for (int64_t e = 0; e < experts; e++) sum += (p[e] = exp(double(l[e]) - mx));
      double top = 0;
      for (int64_t e = 0; e < experts; e++) {
        p[e] /= sum;
        dp[e] = 0;
      }
      const int32_t* ix = idx + t * k;
      const float* dw = dweights + t * k;
      for (int64_t j = 0; j < k; j++) top += p[ix[j]];
      double dot_w = 0;
      for (int64_t j = 0; j < k; j++) dot_w += double(dw[j]) * p[ix[j]] / top;
      for (int64_t j = 0; j < k; j++) dp[ix[j]] = (double(dw[j]) - dot_w) / top;
      double dot_p = 0;
      for (int64_t e = 0; e < experts; e++) dot_p += dp[e] * p[e];
      float* dl = dlogits + t * experts;
      for (int64_t e = 0; e < experts; e++) dl[e] = float(p[e] * (dp[e] - dot_p));
    }
  });
}

// Per row t: logprobs[t] = logits[t, targets[t]] − logsumexp(logits[t]) (double sums) and the gradient of
// Σ_t weights[t] · (−logprobs[t]): dlogits[t] = weights[t] · (softmax(logits[t]) − onehot(targets[t])).
// dlogits may be logits itself (overwritten). With dlogits null only the log-probabilities are written (weights
// unused), the same values bit for bit: an RL objective computes its weights from them before the gradient.
void cross_entropy(const float* logits, int64_t n, int64_t vocab, const int32_t* targets, const float* weights,
                   float* logprobs, float* dlogits) {
  parallel_for(n, imax(1, kGrain / imax(1, vocab)), [&](int64_t lo, int64_t hi) {
    std::vector<float> row(dlogits ? 0 : vocab);  // e^(l − max) of one row when there is no dlogits to hold it
    for (int64_t t = lo; t < hi; t++) {
      const float* l = logits + t * vocab;
      float* g = dlogits ? dlogits + t * vocab : row.data();
      const float target_logit = l[targets[t]];  // read before g (maybe l) changes
      float mx = -INFINITY;
      for (int64_t e = 0; e < vocab; e++) mx = l[e] > mx ? l[e] : mx;
      const V mv = V::set1(mx);
      double sum = 0;
      int64_t e = 0;
      for (; e < vocab; e += V::W) {
        const typename V::Mask m = V::mask(vocab - e);
        vexp(V::load(l + e, m) - mv).store(g + e, m);  // e^(l − max), scaled below
        sum += double(V::load(g + e, m).hsum());
      }
      logprobs[t] = float(double(target_logit) - (double(mx) + log(sum)));
      if (!dlogits) continue;
      const V scale = V::set1(float(double(weights[t]) / sum));
      for (e = 0; e < vocab; e += V::W) {
        const typename V::Mask m = V::mask(vocab - e);
        (V::load(g + e, m) * scale).store(g + e, m);
      }
      g[targets[t]] -= weights[t];
    }
  });
}

}  // namespace M1_NS
}  // namespace m1
