// Kernel table shared by the addon and the per-ISA kernel libraries.
// Plain C-like types only: this header is compiled with different -m flags.
#pragma once
#include <stddef.h>
#include <stdint.h>

namespace m1 {

enum DType : int { kF32 = 0, kBF16 = 1, kF16 = 2 };

// matmul takes the dot-product path (weights streamed once, converted in registers) up to this many rows.
constexpr int64_t kDotRows = 16;

// A 2-D weight [rows, cols], row-major (PyTorch Linear layout [out, in]).
struct WeightView {
  const void* data;
  DType dtype;
  int64_t rows;
  int64_t cols;
};

// One AdamW step's constants (see native/src/optimizer.cc): p ← p·decay − step_size · m / (√v · inv_sqrt_bc2 + eps)
// after m ← β1·m + (1−β1)·g', v ← β2·v + (1−β2)·g'², g' = g · grad_scale.
struct AdamwStep {
  float grad_scale;
  float beta1;
  float beta2;
  float decay;
  float step_size;
  float inv_sqrt_bc2;
  float eps;
};

struct KernelTable {
  const char* name;
  // out[n, w.rows] = x[n, w.cols] · wᵀ
  void (*matmul)(const float* x, int64_t n, const WeightView& w, float* out);
  // columns [j0, j1) of matmul's out for n <= kDotRows, single-threaded and bit-identical to matmul
  void (*matmul_cols)(const float* x, int64_t n, const WeightView& w, int64_t j0, int64_t j1, float* out);
  void (*rmsnorm)(const float* x, int64_t n, int64_t dim, const float* weight, double eps, float* out);
  void (*silu)(const float* x, float* out, int64_t len);
  void (*sigmoid)(const float* x, float* out, int64_t len);
  void (*swiglu)(const float* gate, const float* up, float* out, int64_t len);
  void (*mul)(const float* a, const float* b, float* out, int64_t len);
  void (*axpby)(float alpha, const float* x, float beta, const float* y, float* out, int64_t len);
  // ids already validated against table.rows
  void (*embedding)(const int32_t* ids, int64_t n, const WeightView& table, float* out);
  void (*rope)(float* x, int64_t n, int64_t heads, int64_t head_dim, int64_t rotary_dim, const int32_t* positions,
               double theta);
  // q, k, v rows: token t, head h at t·ld + h·hs; out [n, heads, d]
  void (*lightning_prefill)(const float* q, const float* k, const float* v, int64_t ld, int64_t hs, int64_t n,
                            int64_t heads, int64_t d, const float* slopes, int64_t block, float* state, float* out);
  void (*lightning_step)(const float* q, const float* k, const float* v, int64_t ld, int64_t hs, int64_t n,
                         int64_t heads, int64_t d, const float* slopes, float* state, float* out);
  // qkv [rows, 3, d] → q, k, v [rows, d]
  void (*split_qkv)(const float* qkv, int64_t rows, int64_t d, float* q, float* k, float* v);
  void (*attention)(const float* q, const float* kc, const float* vc, int64_t n, int64_t total, int64_t heads,
                    int64_t kv_heads, int64_t d, float scale, float* out, float* probs);
  void (*router_topk)(const float* logits, int64_t n, int64_t experts, int64_t k, int32_t* idx, float* weights);
  void (*weighted_sum)(const float* slots, const float* weights, int64_t n, int64_t k, int64_t dim, float* out);
  // ---- training: self-attention of n tokens keeping each row's log-sum-exp lse [n, heads] (prefill path)
  void (*attention_lse)(const float* q, const float* k, const float* v, int64_t n, int64_t heads, int64_t kv_heads,
                        int64_t d, float scale, float* out, float* lse);
  // ---- backward ops (the gradients of the inputs from dy, the gradient of the output; weight gradients are
  // added to). dx[n, w.cols] = beta·dx + dy[n, w.rows] · W
  void (*matmul_dx)(const float* dy, int64_t n, const WeightView& w, float* dx, float beta);
  // dw[rows, cols] += dy[n, rows]ᵀ · x[n, cols]
  void (*matmul_dw)(const float* dy, const float* x, int64_t n, int64_t rows, int64_t cols, float* dw);
  void (*rmsnorm_backward)(const float* x, const float* dy, int64_t n, int64_t dim, const float* weight, double eps,
                           float* dx, float* dweight);
  void (*silu_backward)(const float* x, const float* dy, float* dx, int64_t len);
  // y = sigmoid(x), the forward's output
  void (*sigmoid_backward)(const float* y, const float* dy, float* dx, int64_t len);
  void (*swiglu_backward)(const float* gate, const float* up, const float* dy, float* dgate, float* dup, int64_t len);
  void (*embedding_backward)(const int32_t* ids, int64_t n, int64_t dim, const float* dy, float* dtable);
  void (*router_topk_backward)(const float* logits, int64_t n, int64_t experts, int64_t k, const int32_t* idx,
                               const float* dweights, float* dlogits);
  // logprobs[t] = log softmax(logits[t])[targets[t]]; dlogits = ∂(Σ_t −weights[t]·logprobs[t]) / ∂logits, or
  // nothing more when dlogits (and weights) are null
  void (*cross_entropy)(const float* logits, int64_t n, int64_t vocab, const int32_t* targets, const float* weights,
                        float* logprobs, float* dlogits);
  // from a zero initial state; dq, dk, dv in the layout of q, k, v (ld, hs); dout [n, heads, d]
  void (*lightning_backward)(const float* q, const float* k, const float* v, int64_t ld, int64_t hs, const float* dout,
                             int64_t n, int64_t heads, int64_t d, const float* slopes, int64_t block, float* dq,
                             float* dk, float* dv);
  void (*attention_backward)(const float* q, const float* k, const float* v, const float* o, const float* dout,
                             const float* lse, int64_t n, int64_t heads, int64_t kv_heads, int64_t d, float scale,
                             float* dq, float* dk, float* dv);
  // benchmark ceilings: FLOPs of tasks × iters rounds of independent FMAs (on the pool), the same with
  // VDPBF16PS (0 without it); a parallel sum and a parallel memcpy
  double (*fma_peak)(int64_t tasks, int64_t iters);
  double (*bf16_dot_peak)(int64_t tasks, int64_t iters);
  double (*read_sum)(const float* src, int64_t len);
  void (*copy)(const float* src, float* dst, int64_t len);
  // optimiser: the AdamW update of one parameter in place, and Σ x² in double (for the global gradient norm)
  // bf16 (may be null): also written, p rounded to nearest-even
  void (*adamw)(float* p, const float* g, float* m, float* v, int64_t len, const AdamwStep& s, uint16_t* bf16);
  double (*sum_squares)(const float* x, int64_t len);
};

namespace scalar { const KernelTable* kernels(); }
namespace avx2 { const KernelTable* kernels(); }
namespace avx512 { const KernelTable* kernels(); }

}  // namespace m1
