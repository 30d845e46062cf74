#include "layer.h"

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <vector>

#include "buffer.h"
#include "dispatch.h"
#include "threadpool.h"

namespace m1 {
namespace {

thread_local Buf tl_a, tl_qkv, tl_gate, tl_o, tl_attn, tl_logits, tl_h, tl_normed, tl_mlp, tl_weights, tl_x[2], tl_final;
thread_local std::vector<int32_t> tl_idx;
thread_local std::vector<const LayerCache*> tl_layer;

struct Product {
  const WeightView& w;
  float* out;  // [n, w.rows]
};

// The products x · Wᵢᵀ of one input x [n, K] on matmul's dot path, for any n: all weights' rows are shared out to
// the threads in one pass, so each weight row is read once and no thread waits between two small GEMVs. The rows
// are computed by the dot-path kernel itself, so each output equals matmul's bit for bit, and every row of x gives
// the bits that a one-row call gives (batched decode of independent sequences).
void row_products(const KernelTable& K, const float* x, int64_t n, std::initializer_list<Product> ps) {
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

// The products x · Wᵢᵀ of one input x [n, K]: matmul for many rows; for few rows (matmul's dot path), or rowwise
// (every row with the bits it has alone: batched decode), row_products.
void products(const KernelTable& K, bool rowwise, const float* x, int64_t n, std::initializer_list<Product> ps) {
  if (n > kDotRows && !rowwise) {
    for (const Product& p : ps) K.matmul(x, n, p.w, p.out);
    return;
  }
  row_products(K, x, n, ps);
}

// Runs f(s) for every sequence of a packed pass. When no sequence holds more than a thread's share of the rows,
// the sequences are shared out to the threads (each kernel inside then runs inline on its thread: the same bits);
// otherwise they run one after another, each kernel on all threads.
template <class F>
void for_each_sequence(const SequenceSpan* seqs, int64_t S, int64_t n, F&& f) {
  int64_t longest = 0;
  for (int64_t s = 0; s < S; s++) longest = std::max(longest, seqs[s].rows);
  if (S > 1 && longest * num_threads() <= n) {
    parallel_for(S, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t s = lo; s < hi; s++) f(s);
    });
  } else {
    for (int64_t s = 0; s < S; s++) f(s);
  }
}

// Lightning attention (docs/architecture.md §3.4) of a = ln1(x): SiLU'd interleaved q/k/v, the decayed recurrence
// (or the block prefill) of each sequence on its own state, the head norm, the sigmoid output gate, out_proj.
void lightning(const KernelTable& K, bool rowwise, const AttentionBlock& b, const LightningParams& p,
               const SequenceSpan* seqs, const LayerCache* const* c, int64_t S, const float* a, int64_t n, float* attn) {
  const int64_t inner = b.heads * b.head_dim, d = b.head_dim;
  float* qkv = tl_qkv.get(n * 3 * inner);
  float* gate = tl_gate.get(n * inner);
  float* o = tl_o.get(n * inner);
  products(K, rowwise, a, n, {{p.qkv, qkv}, {p.gate, gate}});
  K.silu(qkv, qkv, n * 3 * inner);
  for_each_sequence(seqs, S, n, [&](int64_t s) {
    const SequenceSpan& q = seqs[s];
    const float* r = qkv + q.start * 3 * inner;
    float* out = o + q.start * inner;
    if (q.rows == 1) K.lightning_step(r, r + d, r + 2 * d, 3 * inner, 3 * d, 1, b.heads, d, p.slopes, c[s]->state, out);
    else K.lightning_prefill(r, r + d, r + 2 * d, 3 * inner, 3 * d, q.rows, b.heads, d, p.slopes, p.block, c[s]->state, out);
  });
  K.rmsnorm(o, n, inner, p.norm, p.norm_eps, o);
  K.sigmoid(gate, gate, n * inner);
  K.mul(gate, o, o, n * inner);
  products(K, rowwise, o, n, {{p.out, attn}});
}

// Softmax attention (docs/architecture.md §3.5) of a: q, k, v; partial RoPE at each sequence's positions; each
// sequence's k, v rows appended to its cache and causal attention over that cache; o_proj.
void softmax(const KernelTable& K, bool rowwise, const AttentionBlock& b, const SoftmaxParams& p,
             const SequenceSpan* seqs, const LayerCache* const* c, int64_t S, const float* a, int64_t n, float* attn) {
  const int64_t d = b.head_dim, row = p.kv_heads * d, inner = b.heads * d;
  float* q = tl_qkv.get(n * (inner + 2 * row));
  float* k = q + n * inner;
  float* v = k + n * row;
  float* z = tl_o.get(n * inner);
  products(K, rowwise, a, n, {{p.q, q}, {p.k, k}, {p.v, v}});
  std::vector<int32_t> positions(static_cast<size_t>(n));
  for (int64_t s = 0; s < S; s++)
    for (int64_t t = 0; t < seqs[s].rows; t++) positions[size_t(seqs[s].start + t)] = int32_t(c[s]->position + t);
  K.rope(q, n, b.heads, d, p.rotary_dim, positions.data(), p.theta);
  K.rope(k, n, p.kv_heads, d, p.rotary_dim, positions.data(), p.theta);
  const float scale = float(1.0 / std::sqrt(double(d)));
  for_each_sequence(seqs, S, n, [&](int64_t s) {
    const SequenceSpan& span = seqs[s];
    const LayerCache& cs = *c[s];
    std::copy(k + span.start * row, k + (span.start + span.rows) * row, cs.keys + cs.length * row);
    std::copy(v + span.start * row, v + (span.start + span.rows) * row, cs.values + cs.length * row);
    K.attention(q + span.start * inner, cs.keys, cs.values, span.rows, cs.length + span.rows, b.heads, p.kv_heads, d,
                scale, z + span.start * inner, nullptr);
  });
  products(K, rowwise, z, n, {{p.o, attn}});
}

// h = α·(postnorm ? ln1(x) : x) + β·attention(ln1(x)), normed = ln2(h), and the router's top-k of normed.
void attention_block(const KernelTable& K, bool rowwise, const AttentionBlock& b, const SequenceSpan* seqs,
                     const LayerCache* const* c, int64_t S, const float* x, int64_t n, float* h, float* normed,
                     int32_t* idx, float* weights) {
  const int64_t hs = b.hidden, experts = b.router.rows;
  float* a = tl_a.get(n * hs);
  float* attn = tl_attn.get(n * hs);
  K.rmsnorm(x, n, hs, b.ln1, b.eps, a);
  if (b.lightning) lightning(K, rowwise, b, *b.lightning, seqs, c, S, a, n, attn);
  else softmax(K, rowwise, b, *b.softmax, seqs, c, S, a, n, attn);
  K.axpby(b.alpha, b.postnorm ? a : x, b.beta, attn, h, n * hs);
  K.rmsnorm(h, n, hs, b.ln2, b.eps, normed);
  float* logits = tl_logits.get(n * experts);
  products(K, rowwise, normed, n, {{b.router, logits}});
  K.router_topk(logits, n, experts, b.top_k, idx, weights);
}

}  // namespace

void decoder_layer(const KernelTable& K, const DecoderLayerParams& p, const SequenceSpan* seqs,
                   const LayerCache* const* caches, int64_t S, const float* x, int64_t n, float* out, bool rowwise) {
  const AttentionBlock& b = p.attention;
  const int64_t hs = b.hidden, k = b.top_k;
  float* h = tl_h.get(n * hs);
  float* normed = tl_normed.get(n * hs);
  float* mlp = tl_mlp.get(n * hs);
  float* weights = tl_weights.get(n * k);
  tl_idx.resize(size_t(n * k));
  attention_block(K, rowwise, b, seqs, caches, S, x, n, h, normed, tl_idx.data(), weights);
  moe_experts(K, normed, n, hs, tl_idx.data(), weights, k, p.mlp.experts, p.mlp.num_experts, nullptr, mlp, rowwise);
  K.axpby(p.mlp.alpha, b.postnorm ? normed : h, p.mlp.beta, mlp, out, n * hs);
}

void decoder_forward(const KernelTable& K, const DecoderModel& m, const int32_t* ids, int64_t n,
                     const SequenceSpan* seqs, int64_t S, const LayerCache* caches, const int64_t* logit_rows,
                     int64_t rows, float* logits, bool rowwise) {
  const int64_t hs = m.embed.cols, L = m.num_layers;
  float* x = tl_x[0].get(n * hs);
  float* y = tl_x[1].get(n * hs);
  tl_layer.resize(size_t(S));
  K.embedding(ids, n, m.embed, x);
  for (int64_t l = 0; l < L; l++) {
    for (int64_t s = 0; s < S; s++) tl_layer[size_t(s)] = &caches[s * L + l];
    decoder_layer(K, *m.layers[l], seqs, tl_layer.data(), S, x, n, y, rowwise);
    std::swap(x, y);
  }
  if (rows == 0) return;
  float* picked = y;  // the other stream buffer, free now
  for (int64_t r = 0; r < rows; r++) std::copy(x + logit_rows[r] * hs, x + (logit_rows[r] + 1) * hs, picked + r * hs);
  float* normed = tl_final.get(rows * hs);
  K.rmsnorm(picked, rows, hs, m.norm, m.eps, normed);
  products(K, rowwise, normed, rows, {{m.lm_head, logits}});
}

void decoder_forward(const KernelTable& K, const DecoderModel& m, const int32_t* ids, int64_t n,
                     const LayerCache* caches, int64_t rows, float* logits) {
  const SequenceSpan span{0, n};
  std::vector<int64_t> logit_rows(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; r++) logit_rows[size_t(r)] = n - rows + r;
  decoder_forward(K, m, ids, n, &span, 1, caches, logit_rows.data(), rows, logits);
}

// ------------------------------------------------------------------ batched decode
// Rows of a group: few enough that the dot path's x rows stay in cache while each weight row passes over them.
constexpr int64_t kGroupRows = 32;
// Rows each thread needs before the threads take sequences rather than weight rows: two of the dot path's 4-row tiles.
constexpr int64_t kRowsPerThread = 8;

namespace {

int64_t bytes_of(const WeightView& w) { return w.rows * w.cols * (w.dtype == kF32 ? 4 : 2); }

// Bytes of the weights a pass of many sequences reads: every projection, router and expert, and the LM head (of the
// embedding, only its tokens' rows).
int64_t weight_bytes(const DecoderModel& m) {
  int64_t total = bytes_of(m.lm_head);
  for (int64_t l = 0; l < m.num_layers; l++) {
    const DecoderLayerParams& p = *m.layers[l];
    const AttentionBlock& b = p.attention;
    total += bytes_of(b.router);
    if (b.lightning) total += bytes_of(b.lightning->qkv) + bytes_of(b.lightning->gate) + bytes_of(b.lightning->out);
    else total += bytes_of(b.softmax->q) + bytes_of(b.softmax->k) + bytes_of(b.softmax->v) + bytes_of(b.softmax->o);
    for (int64_t e = 0; e < p.mlp.num_experts; e++) {
      const ExpertView& x = *p.mlp.experts[e];
      total += bytes_of(x.w1) + bytes_of(x.w3) + bytes_of(x.w2);
    }
  }
  return total;
}

}  // namespace

// The packed pass with every product on the dot path, its work shared out to the threads in one of two ways (the
// same bits either way: the dot path's rows do not depend on each other, and attention stays within each sequence).
// - By sequences, when the weights stay in the last-level cache and each thread gets kRowsPerThread rows: the
//   sequences in parts of about equal rows, each thread running the whole model on its part, in groups of whole
//   sequences of at most kGroupRows rows (a longer sequence alone), with single-threaded kernels (the pool runs
//   nested loops inline). One fork and join for the pass instead of one per op, which at decode sizes cost more
//   than the ops; every thread reads every weight, from cache.
// - By weight rows otherwise: decoder_forward itself, each product's weight rows shared out (row_products), so each
//   weight is read once per pass. A model larger than the cache is read from memory, where a second thread reading
//   it all again would halve what each one gets; and two rows per thread would re-read each weight for every pair.
// Either way the workers sleep once the pass is done (the next one is a round trip through JavaScript away). One
// sequence alone runs as decoder_forward does for it, whose workers spin a while for the next pass.
void decoder_forward_rowwise(const KernelTable& K, const DecoderModel& m, const int32_t* ids, const SequenceSpan* seqs,
                             int64_t S, const LayerCache* caches, const int64_t* logit_rows, int64_t rows,
                             float* logits) {
  const int64_t L = m.num_layers, vocab = m.lm_head.rows, T = std::min<int64_t>(num_threads(), S);
  const int64_t n = seqs[S - 1].start + seqs[S - 1].rows;
  if (T < 2 || n < kRowsPerThread * T || weight_bytes(m) > last_level_cache_bytes()) {
    decoder_forward(K, m, ids, n, seqs, S, caches, logit_rows, rows, logits, true);
    if (T >= 2) rest_workers();  // one sequence's workers wait for its next pass, as after a lone pass
    return;
  }
  // part t: the sequences whose middle row lies in [t·n/T, (t+1)·n/T)
  std::vector<int64_t> bounds{0};
  for (int64_t t = 1, s = 0; t < T; t++) {
    while (s < S && (2 * seqs[s].start + seqs[s].rows) * T < 2 * t * n) s++;
    bounds.push_back(std::max(s, bounds.back()));
  }
  bounds.push_back(S);
  parallel_for(T, 1, [&](int64_t lo, int64_t hi) {
    thread_local std::vector<SequenceSpan> spans;
    thread_local std::vector<int64_t> picked;
    for (int64_t a = bounds[size_t(lo)], b; a < bounds[size_t(hi)]; a = b) {
      int64_t rows_ab = seqs[a].rows;
      for (b = a + 1; b < bounds[size_t(hi)] && rows_ab + seqs[b].rows <= kGroupRows; b++) rows_ab += seqs[b].rows;
      const int64_t first = seqs[a].start;
      spans.clear();
      for (int64_t s = a; s < b; s++) spans.push_back({seqs[s].start - first, seqs[s].rows});
      const int64_t* l0 = std::lower_bound(logit_rows, logit_rows + rows, first);
      const int64_t* l1 = std::lower_bound(l0, logit_rows + rows, first + rows_ab);
      picked.assign(l0, l1);
      for (int64_t& r : picked) r -= first;
      decoder_forward(K, m, ids + first, rows_ab, spans.data(), b - a, caches + a * L, picked.data(),
                      int64_t(picked.size()), picked.empty() ? nullptr : logits + (l0 - logit_rows) * vocab, true);
    }
  }, NextJob::kFar);
}

}  // namespace m1
