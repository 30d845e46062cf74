// A whole decoder layer (docs/architecture.md §3.3-§3.6) in one call, for few tokens (decode): input norm, lightning or softmax
// attention, the residual, the post-attention norm, the router, the routed experts and the MLP residual.
// engine/layers.ts runs the same kernels one op at a time when hooks listen; this is the path without hooks,
// bit-identical to it and without a JavaScript round trip between the kernels.
#pragma once
#include <stdint.h>

#include "kernels.h"
#include "moe.h"

namespace m1 {

struct LightningParams {
  WeightView qkv;   // [3·heads·d, hidden], rows per head: q (d), k (d), v (d)
  WeightView gate;  // [heads·d, hidden]
  WeightView out;   // [hidden, heads·d]
  const float* norm;  // [heads·d]
  double norm_eps;
  const float* slopes;  // [heads]
  int64_t block;        // block size of the prefill kernel (n > 1)
};

struct SoftmaxParams {
  WeightView q, k, v;  // [heads·d, hidden], [kv_heads·d, hidden] ×2
  WeightView o;        // [hidden, heads·d]
  int64_t kv_heads, rotary_dim;
  double theta;
};

// The decoding state of one layer, updated by a call.
struct LayerCache {
  float* state;      // lightning: [heads, d, d]
  float* keys;       // softmax: KV cache [rows, kv_heads, d]; rows [0, length) hold the context, the n new
  float* values;     //   rows are written at [length, length + n)
  int64_t length;
  int64_t position;  // RoPE position of the first token
};

struct AttentionBlock {
  int64_t hidden, heads, head_dim;
  const float* ln1;  // [hidden]
  const float* ln2;  // [hidden]
  double eps;
  float alpha, beta;  // h = alpha · residual + beta · attention
  bool postnorm;      // residual = ln1(x) (MiniMax-M1), else x
  WeightView router;  // [experts, hidden]
  int64_t top_k;
  const LightningParams* lightning;  // exactly one of the two
  const SoftmaxParams* softmax;
};

struct MlpBlock {
  const ExpertView* const* experts;  // every expert of the layer
  int64_t num_experts;
  float alpha, beta;  // out = alpha · residual + beta · moe(normed); residual = normed when postnorm, else h
};

struct DecoderLayerParams {
  AttentionBlock attention;
  MlpBlock mlp;
};

// One sequence of a packed pass: rows [start, start + rows) of the pass's x.
struct SequenceSpan {
  int64_t start, rows;
};

// x [n, hidden] → out [n, hidden], the residual stream after the layer, for S sequences packed row after row
// (seqs cover [0, n) in order; caches[s] is sequence s's cache of this layer, updated). The row-wise ops (norms,
// projections, router, experts) run once over all n rows; attention and the lightning state stay within each
// sequence. Arguments are validated by the caller.
// rowwise: every product on matmul's dot path however many rows, so each row has the bits it has alone (batched
// decode of independent sequences).
void decoder_layer(const KernelTable& K, const DecoderLayerParams& p, const SequenceSpan* seqs,
                   const LayerCache* const* caches, int64_t S, const float* x, int64_t n, float* out,
                   bool rowwise = false);

// The whole model (docs/architecture.md §3): embedding, the layers, final norm, LM head.
struct DecoderModel {
  WeightView embed;  // [vocab, hidden]
  const float* norm;  // [hidden]
  double eps;
  WeightView lm_head;  // [vocab, hidden]
  const DecoderLayerParams* const* layers;
  int64_t num_layers;
};

// ids [n] (within the vocabulary) of S sequences packed row after row (as decoder_layer takes them; caches
// [S × layers], sequence-major: sequence s, layer l at s·layers + l, each updated) → logits [rows, vocab] of the
// pass's rows logit_rows[0..rows) (in that order). The kernels of engine/model.ts in the same order:
// bit-identical to it.
void decoder_forward(const KernelTable& K, const DecoderModel& m, const int32_t* ids, int64_t n,
                     const SequenceSpan* seqs, int64_t S, const LayerCache* caches, const int64_t* logit_rows,
                     int64_t rows, float* logits, bool rowwise = false);

// One sequence: ids [n] → logits [rows, vocab] of its last `rows` positions (rows <= n); caches[l] is updated for
// every layer.
void decoder_forward(const KernelTable& K, const DecoderModel& m, const int32_t* ids, int64_t n,
                     const LayerCache* caches, int64_t rows, float* logits);

// decoder_forward with every product on the dot path (rowwise), its work shared out to the threads by sequences or
// by weight rows (see layer.cc): each row gives the bits that it gives in decoder_forward with rowwise, so a
// sequence of at most kDotRows rows gets the bits of its pass alone.
void decoder_forward_rowwise(const KernelTable& K, const DecoderModel& m, const int32_t* ids, const SequenceSpan* seqs,
                             int64_t S, const LayerCache* caches, const int64_t* logit_rows, int64_t rows,
                             float* logits);

}  // namespace m1
