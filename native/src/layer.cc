#include "layer.h"

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <vector>

#include "buffer.h"
#include "threadpool.h"

namespace m1 {
namespace {

thread_local Buf tl_a, tl_qkv, tl_gate, tl_o, tl_attn, tl_logits, tl_h, tl_normed, tl_mlp, tl_weights;
thread_local std::vector<int32_t> tl_idx;

struct Product {
  const WeightView& w;
  float* out;  // [n, w.rows]
};

// The products x · Wᵢᵀ of one input x [n, K]. For few rows (matmul's dot path) all weights' rows are shared out
// to the threads in one pass: each weight row is read once and no thread waits between two small GEMVs. The
// rows are computed by the dot-path kernel itself, so each output equals matmul's bit for bit.
void products(const KernelTable& K, const float* x, int64_t n, std::initializer_list<Product> ps) {
  if (n > kDotRows) {
    for (const Product& p : ps) K.matmul(x, n, p.w, p.out);
    return;
  }
  int64_t rows = 0, cols = 1;
  for (const Product& p : ps) {
    rows += p.w.rows;
    if (p.w.cols > cols) cols = p.w.cols;
  }
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 16) / (cols * n));  // about 64K multiply-adds
  parallel_for(rows, grain, [&](int64_t lo, int64_t hi) {
    int64_t base = 0;
    for (const Product& p : ps) {
      const int64_t j0 = std::max(lo, base) - base, j1 = std::min(hi, base + p.w.rows) - base;
      if (j0 < j1) K.matmul_cols(x, n, p.w, j0, j1, p.out);
      base += p.w.rows;
    }
  });
}

// Lightning attention (spec §2.5) of a = ln1(x): SiLU'd interleaved q/k/v, the decayed recurrence (or the
// block prefill), the head norm, the sigmoid output gate, out_proj.
void lightning(const KernelTable& K, const AttentionBlock& b, const LightningParams& p, const float* a, int64_t n,
               float* attn) {
  const int64_t inner = b.heads * b.head_dim, d = b.head_dim;
  float* qkv = tl_qkv.get(n * 3 * inner);
  float* gate = tl_gate.get(n * inner);
  float* o = tl_o.get(n * inner);
  products(K, a, n, {{p.qkv, qkv}, {p.gate, gate}});
  K.silu(qkv, qkv, n * 3 * inner);
  if (n == 1) K.lightning_step(qkv, qkv + d, qkv + 2 * d, 3 * inner, 3 * d, n, b.heads, d, p.slopes, p.state, o);
  else K.lightning_prefill(qkv, qkv + d, qkv + 2 * d, 3 * inner, 3 * d, n, b.heads, d, p.slopes, p.block, p.state, o);
  K.rmsnorm(o, n, inner, p.norm, p.norm_eps, o);
  K.sigmoid(gate, gate, n * inner);
  K.mul(gate, o, o, n * inner);
  K.matmul(o, n, p.out, attn);
}

// Softmax attention (spec §2.6) of a: q, and k, v straight into the cache's new rows; partial RoPE; causal
// attention over the cache; o_proj.
void softmax(const KernelTable& K, const AttentionBlock& b, const SoftmaxParams& p, const float* a, int64_t n,
             float* attn) {
  const int64_t d = b.head_dim, row = p.kv_heads * d;
  float* q = tl_qkv.get(n * b.heads * d);
  float* z = tl_o.get(n * b.heads * d);
  float* k = p.keys + p.length * row;
  float* v = p.values + p.length * row;
  products(K, a, n, {{p.q, q}, {p.k, k}, {p.v, v}});
  std::vector<int32_t> positions(static_cast<size_t>(n));
  for (int64_t t = 0; t < n; t++) positions[size_t(t)] = int32_t(p.position + t);
  K.rope(q, n, b.heads, d, p.rotary_dim, positions.data(), p.theta);
  K.rope(k, n, p.kv_heads, d, p.rotary_dim, positions.data(), p.theta);
  const float scale = float(1.0 / std::sqrt(double(d)));
  K.attention(q, p.keys, p.values, n, p.length + n, b.heads, p.kv_heads, d, scale, z, nullptr);
  K.matmul(z, n, p.o, attn);
}

// h = α·(postnorm ? ln1(x) : x) + β·attention(ln1(x)), normed = ln2(h), and the router's top-k of normed.
void attention_block(const KernelTable& K, const AttentionBlock& b, const float* x, int64_t n, float* h,
                     float* normed, int32_t* idx, float* weights) {
  const int64_t hs = b.hidden, experts = b.router.rows;
  float* a = tl_a.get(n * hs);
  float* attn = tl_attn.get(n * hs);
  K.rmsnorm(x, n, hs, b.ln1, b.eps, a);
  if (b.lightning) lightning(K, b, *b.lightning, a, n, attn);
  else softmax(K, b, *b.softmax, a, n, attn);
  K.axpby(b.alpha, b.postnorm ? a : x, b.beta, attn, h, n * hs);
  K.rmsnorm(h, n, hs, b.ln2, b.eps, normed);
  float* logits = tl_logits.get(n * experts);
  K.matmul(normed, n, b.router, logits);
  K.router_topk(logits, n, experts, b.top_k, idx, weights);
}

}  // namespace

void decoder_layer(const KernelTable& K, const AttentionBlock& b, const MlpBlock& m, const float* x, int64_t n,
                   float* out) {
  const int64_t hs = b.hidden, k = b.top_k;
  float* h = tl_h.get(n * hs);
  float* normed = tl_normed.get(n * hs);
  float* mlp = tl_mlp.get(n * hs);
  float* weights = tl_weights.get(n * k);
  tl_idx.resize(size_t(n * k));
  attention_block(K, b, x, n, h, normed, tl_idx.data(), weights);
  moe_experts(K, normed, n, hs, tl_idx.data(), weights, k, m.experts, m.num_experts, nullptr, mlp);
  K.axpby(m.alpha, b.postnorm ? normed : h, m.beta, mlp, out, n * hs);
}

}  // namespace m1
