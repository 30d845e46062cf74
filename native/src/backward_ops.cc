// The bindings of the backward kernels (kernels.h, moe.h): each returns the gradients of its op's inputs from dy,
// the gradient of its output; weight gradients are f32 arrays given by the caller and added to. Arguments are
// checked with args.h before any kernel runs.
#include <string>
#include <vector>

#include "args.h"
#include "bindings.h"
#include "dispatch.h"
#include "moe.h"

namespace m1 {
namespace {

using namespace args;

Value MatmulDx(const CallbackInfo& info) {
  Ctx c{info.Env(), "matmulDx"};
  Arr<float> dy = f32(c, info[0], "dy");
  const int64_t n = dim(c, info[1], "n");
  WeightArg w = weight(c, info[2], "w");
  expect_len(c, dy, prod(c, {n, w.w.rows}), "n*rows");
  // info[3]: an array to add dx into; info[4]: an array to write dx into (neither: a new array)
  const bool accumulate = !absent(info[3]);
  if (accumulate && !absent(info[4])) c.type_error("give either accumulate or out, not both");
  Out o = out_arg(c, accumulate ? info[3] : info[4], prod(c, {n, w.w.cols}), "n*cols", "dx");
  disjoint(c, o.a, dy);
  w.bytes.name = "w.data";
  disjoint(c, o.a, w.bytes);
  kernels().matmul_dx(dy.data, n, w.w, o.a.data, accumulate ? 1.0f : 0.0f);
  return o.arr;
}

Value MatmulDw(const CallbackInfo& info) {
  Ctx c{info.Env(), "matmulDw"};
  Arr<float> dy = f32(c, info[0], "dy");
  Arr<float> x = f32(c, info[1], "x");
  const int64_t n = dim(c, info[2], "n");
  Arr<float> dw = f32(c, info[3], "dw");
  const int64_t rows = dim(c, info[4], "rows");
  const int64_t cols = dim(c, info[5], "cols");
  expect_len(c, dy, prod(c, {n, rows}), "n*rows");
  expect_len(c, x, prod(c, {n, cols}), "n*cols");
  expect_len(c, dw, prod(c, {rows, cols}), "rows*cols");
  disjoint(c, dw, dy);
  disjoint(c, dw, x);
  kernels().matmul_dw(dy.data, x.data, n, rows, cols, dw.data);
  return info.Env().Undefined();
}

Value RmsnormBackward(const CallbackInfo& info) {
  Ctx c{info.Env(), "rmsnormBackward"};
  Arr<float> x = f32(c, info[0], "x");
  Arr<float> dy = f32(c, info[1], "dy");
  const int64_t n = dim(c, info[2], "n");
  const int64_t d = dim(c, info[3], "dim");
  Arr<float> w = f32(c, info[4], "weight");
  const double eps = finite(c, info[5], "eps");
  if (eps < 0) c.range_error("eps must be >= 0");
  expect_len(c, x, prod(c, {n, d}), "n*dim");
  expect_len(c, dy, prod(c, {n, d}), "n*dim");
  expect_len(c, w, d, "dim");
  float* dweight = nullptr;
  Arr<float> dwa;
  if (!absent(info[6])) {
    dwa = f32(c, info[6], "dweight");
    expect_len(c, dwa, d, "dim");
    disjoint(c, dwa, x);
    disjoint(c, dwa, dy);
    disjoint(c, dwa, w);
    dweight = dwa.data;
  }
  Out o = out_arg(c, info[7], prod(c, {n, d}), "n*dim", "dx");
  disjoint(c, o.a, x);
  disjoint(c, o.a, dy);
  disjoint(c, o.a, w);
  if (dweight) disjoint(c, o.a, dwa);
  kernels().rmsnorm_backward(x.data, dy.data, n, d, w.data, eps, o.a.data, dweight);
  return o.arr;
}

template <int Which>
Value UnaryBackward(const CallbackInfo& info) {
  Ctx c{info.Env(), Which == 0 ? "siluBackward" : "sigmoidBackward"};
  Arr<float> x = f32(c, info[0], Which == 0 ? "x" : "y");
  Arr<float> dy = f32(c, info[1], "dy");
  expect_len(c, dy, x.len, Which == 0 ? "x.length" : "y.length");
  Out o = out_arg(c, info[2], x.len, Which == 0 ? "x.length" : "y.length", "dx");
  same_or_disjoint(c, o.a, x);
  same_or_disjoint(c, o.a, dy);
  if (Which == 0) kernels().silu_backward(x.data, dy.data, o.a.data, x.len);
  else kernels().sigmoid_backward(x.data, dy.data, o.a.data, x.len);
  return o.arr;
}

Value SwigluBackward(const CallbackInfo& info) {
  Ctx c{info.Env(), "swigluBackward"};
  Arr<float> gate = f32(c, info[0], "gate");
  Arr<float> up = f32(c, info[1], "up");
  Arr<float> dy = f32(c, info[2], "dy");
  expect_len(c, up, gate.len, "gate.length");
  expect_len(c, dy, gate.len, "gate.length");
  Out dg = out_arg(c, Value(), gate.len, "gate.length", "dgate");
  Out du = out_arg(c, Value(), gate.len, "gate.length", "dup");
  kernels().swiglu_backward(gate.data, up.data, dy.data, dg.a.data, du.a.data, gate.len);
  return outputs(c, {&dg, &du});
}

Value EmbeddingBackward(const CallbackInfo& info) {
  Ctx c{info.Env(), "embeddingBackward"};
  Arr<int32_t> ids = i32(c, info[0], "ids");
  Arr<float> dy = f32(c, info[1], "dy");
  Arr<float> dt = f32(c, info[2], "dtable");
  const int64_t vocab = dim(c, info[3], "vocab");
  const int64_t d = dim(c, info[4], "dim");
  check_ids(c, ids, vocab);
  expect_len(c, dy, prod(c, {ids.len, d}), "ids.length*dim");
  expect_len(c, dt, prod(c, {vocab, d}), "vocab*dim");
  disjoint(c, dt, dy);
  disjoint(c, dt, ids);
  kernels().embedding_backward(ids.data, ids.len, d, dy.data, dt.data);
  return info.Env().Undefined();
}

Value RouterTopkBackward(const CallbackInfo& info) {
  Ctx c{info.Env(), "routerTopkBackward"};
  const RouterArgs a = router_args(c, info, "dweights");
  for (int64_t s = 0; s < a.idx.len; s++)
    if (a.idx.data[s] < 0 || a.idx.data[s] >= a.e)
      c.range_error("idx[" + str(s) + "] = " + str(a.idx.data[s]) + " is not an expert index [0, " + str(a.e) + ")");
  Out o = out_arg(c, Value(), prod(c, {a.n, a.e}), "n*experts", "dlogits");
  kernels().router_topk_backward(a.logits.data, a.n, a.e, a.k, a.idx.data, a.w.data, o.a.data);
  return o.arr;
}

Value CrossEntropy(const CallbackInfo& info) {
  Ctx c{info.Env(), "crossEntropy"};
  Arr<float> logits = f32(c, info[0], "logits");
  const int64_t n = dim(c, info[1], "n");
  const int64_t vocab = dim(c, info[2], "vocab");
  Arr<int32_t> targets = i32(c, info[3], "targets");
  Arr<float> lp = f32(c, info[5], "logprobs");
  expect_len(c, logits, prod(c, {n, vocab}), "n*vocab");
  expect_len(c, targets, n, "n");
  expect_len(c, lp, n, "n");
  check_ids(c, targets, vocab);
  disjoint(c, lp, logits);
  // weights and dlogits both null: the log-probabilities alone (tokenLogprobs)
  if (absent(info[4]) && absent(info[6])) {
    kernels().cross_entropy(logits.data, n, vocab, targets.data, nullptr, lp.data, nullptr);
    return info.Env().Undefined();
  }
  Arr<float> w = f32(c, info[4], "weights");
  Arr<float> dl = f32(c, info[6], "dlogits");
  expect_len(c, w, n, "n");
  expect_len(c, dl, prod(c, {n, vocab}), "n*vocab");
  same_or_disjoint(c, dl, logits);
  disjoint(c, lp, dl);
  for (const Arr<float>* a : {&logits, &dl}) disjoint(c, w, *a);
  kernels().cross_entropy(logits.data, n, vocab, targets.data, w.data, lp.data, dl.data);
  return info.Env().Undefined();
}

// lightningBackward(q, k, v, dout, n, heads, d, slopes, blockSize) → [dq, dk, dv];
// lightningBackwardQkv(qkv, dout, n, heads, d, slopes, blockSize, out?) → dqkv in the interleaved layout (into out).
template <bool Packed>
Value LightningBackward(const CallbackInfo& info) {
  Ctx c{info.Env(), Packed ? "lightningBackwardQkv" : "lightningBackward"};
  const int at = Packed ? 2 : 0;
  Arr<float> q, k, v;
  if (Packed) {
    q = f32(c, info[0], "qkv");
  } else {
    q = f32(c, info[0], "q");
    k = f32(c, info[1], "k");
    v = f32(c, info[2], "v");
  }
  Arr<float> dout = f32(c, info[3 - at], "dout");
  const int64_t n = dim(c, info[4 - at], "n");
  const int64_t heads = dim(c, info[5 - at], "heads");
  const int64_t d = dim(c, info[6 - at], "d");
  Arr<float> slopes = f32(c, info[7 - at], "slopes");
  const int64_t block = dim(c, info[8 - at], "blockSize");
  if (block < 1 || block > 4096) c.range_error("blockSize must be in [1, 4096], got " + str(block));
  const int64_t len = prod(c, {n, heads, d});
  expect_len(c, dout, len, "n*heads*d");
  expect_len(c, slopes, heads, "heads");
  if (Packed) {
    expect_len(c, q, prod(c, {len, 3}), "n*heads*3*d");
    Out o = out_arg(c, info[7], 3 * len, "n*heads*3*d", "out");
    disjoint(c, o.a, q);
    disjoint(c, o.a, dout);
    float* g = o.a.data;
    kernels().lightning_backward(q.data, q.data + d, q.data + 2 * d, 3 * heads * d, 3 * d, dout.data, n, heads, d,
                                 slopes.data, block, g, g + d, g + 2 * d);
    return o.arr;
  }
  expect_len(c, q, len, "n*heads*d");
  expect_len(c, k, len, "n*heads*d");
  expect_len(c, v, len, "n*heads*d");
  Out dq = out_arg(c, Value(), len, "n*heads*d", "dq");
  Out dk = out_arg(c, Value(), len, "n*heads*d", "dk");
  Out dv = out_arg(c, Value(), len, "n*heads*d", "dv");
  kernels().lightning_backward(q.data, k.data, v.data, heads * d, d, dout.data, n, heads, d, slopes.data, block,
                               dq.a.data, dk.a.data, dv.a.data);
  return outputs(c, {&dq, &dk, &dv});
}

struct SelfAttentionArgs {
  int64_t n, heads, kvh, d;
  float scale;
};

// q [n, heads, d], k and v [n, kvHeads, d] at info[0..2]; n, heads, kvHeads, d, scale at info[from..from+4]
SelfAttentionArgs self_attention_args(const Ctx& c, const CallbackInfo& info, int from, const Arr<float>& q,
                                      const Arr<float>& k, const Arr<float>& v) {
  SelfAttentionArgs a;
  a.n = dim(c, info[from], "n");
  a.heads = dim(c, info[from + 1], "heads");
  a.kvh = dim(c, info[from + 2], "kvHeads");
  a.d = dim(c, info[from + 3], "d");
  a.scale = float(finite(c, info[from + 4], "scale"));
  if (a.heads < 1) c.range_error("heads must be >= 1");
  if (a.kvh < 1 || a.heads % a.kvh != 0)
    c.range_error("kvHeads (" + str(a.kvh) + ") must be >= 1 and divide heads (" + str(a.heads) + ")");
  expect_len(c, q, prod(c, {a.n, a.heads, a.d}), "n*heads*d");
  expect_len(c, k, prod(c, {a.n, a.kvh, a.d}), "n*kvHeads*d");
  expect_len(c, v, prod(c, {a.n, a.kvh, a.d}), "n*kvHeads*d");
  return a;
}

// attentionLse(q, k, v, n, heads, kvHeads, d, scale) → [out, lse [n, heads]]
Value AttentionLse(const CallbackInfo& info) {
  Ctx c{info.Env(), "attentionLse"};
  Arr<float> q = f32(c, info[0], "q"), k = f32(c, info[1], "k"), v = f32(c, info[2], "v");
  const SelfAttentionArgs a = self_attention_args(c, info, 3, q, k, v);
  Out o = out_arg(c, Value(), prod(c, {a.n, a.heads, a.d}), "n*heads*d");
  Out lse = out_arg(c, Value(), prod(c, {a.n, a.heads}), "n*heads", "lse");
  kernels().attention_lse(q.data, k.data, v.data, a.n, a.heads, a.kvh, a.d, a.scale, o.a.data, lse.a.data);
  return outputs(c, {&o, &lse});
}

// attentionBackward(q, k, v, out, dout, lse, n, heads, kvHeads, d, scale) → [dq, dk, dv]
Value AttentionBackward(const CallbackInfo& info) {
  Ctx c{info.Env(), "attentionBackward"};
  Arr<float> q = f32(c, info[0], "q"), k = f32(c, info[1], "k"), v = f32(c, info[2], "v");
  Arr<float> o = f32(c, info[3], "out"), dout = f32(c, info[4], "dout"), lse = f32(c, info[5], "lse");
  const SelfAttentionArgs a = self_attention_args(c, info, 6, q, k, v);
  expect_len(c, o, q.len, "n*heads*d");
  expect_len(c, dout, q.len, "n*heads*d");
  expect_len(c, lse, prod(c, {a.n, a.heads}), "n*heads");
  Out dq = out_arg(c, Value(), q.len, "n*heads*d", "dq");
  Out dk = out_arg(c, Value(), k.len, "n*kvHeads*d", "dk");
  Out dv = out_arg(c, Value(), v.len, "n*kvHeads*d", "dv");
  kernels().attention_backward(q.data, k.data, v.data, o.data, dout.data, lse.data, a.n, a.heads, a.kvh, a.d, a.scale,
                               dq.a.data, dk.a.data, dv.a.data);
  return outputs(c, {&dq, &dk, &dv});
}

// moeBackward(x, n, hidden, idx, weights, k, experts, dout, grads, slots?, gateUp?, dx?, act?) → [dx, dweights];
// grads[e] = { w1, w3, w2 } (f32 arrays in the weights' shapes, added to) for every routed expert e; slots and gateUp
// from moeExperts spare recomputing the experts' forward products.
Value MoeBackward(const CallbackInfo& info) {
  Ctx c{info.Env(), "moeBackward"};
  const auto& [x, n, hidden, idx, w, k] = moe_args(c, info);
  Arr<float> dout = f32(c, info[7], "dout");
  expect_len(c, dout, prod(c, {n, hidden}), "n*hidden");
  Out dx = out_arg(c, info[11], prod(c, {n, hidden}), "n*hidden", "dx");
  disjoint(c, dx.a, x);
  disjoint(c, dx.a, dout);
  Out dw = out_arg(c, Value(), prod(c, {n, k}), "n*k", "dweights");
  Experts ex = experts_arg(c, info[6], idx, hidden, {});
  if (!info[8].IsArray() || info[8].As<Napi::Array>().Length() != ex.ptrs.size())
    c.type_error("grads must be an array with one entry per expert (" + str(int64_t(ex.ptrs.size())) + ")");
  Napi::Array ga = info[8].As<Napi::Array>();
  std::vector<ExpertGrads> grads(ex.ptrs.size(), ExpertGrads{nullptr, nullptr, nullptr});
  for (size_t e = 0; e < ex.ptrs.size(); e++) {
    if (!ex.ptrs[e]) continue;
    const std::string en = "grads[" + str(int64_t(e)) + "]";
    const Value gv = ga.Get(uint32_t(e));
    if (!gv.IsObject()) c.type_error(en + " must be { w1, w3, w2 } (expert " + str(int64_t(e)) + " is routed to)");
    const Napi::Object go = gv.As<Napi::Object>();
    const ExpertView& view = *ex.ptrs[e];
    float** dst[3] = {&grads[e].w1, &grads[e].w3, &grads[e].w2};
    const WeightView* shapes[3] = {&view.w1, &view.w3, &view.w2};
    const char* keys[3] = {"w1", "w3", "w2"};
    for (int i = 0; i < 3; i++) {
      const std::string nm = en + "." + keys[i];
      Arr<float> a = f32(c, go.Get(keys[i]), nm.c_str());
      expect_len(c, a, prod(c, {shapes[i]->rows, shapes[i]->cols}), "rows*cols of the weight");
      disjoint(c, a, x);
      disjoint(c, a, dout);
      *dst[i] = a.data;
    }
  }
  const float* kept[3] = {nullptr, nullptr, nullptr};  // the forward's slots, gateUp and act, optional
  const char* kept_names[3] = {"slots", "gateUp", "act"};
  const int at[3] = {9, 10, 12};
  const int64_t F = routed_intermediate(ex);
  const int64_t kept_lens[3] = {prod(c, {n, k, hidden}), prod(c, {n, k, 2, F}), prod(c, {n, k, F})};
  const char* kept_exprs[3] = {"n*k*hidden", "n*k*2*intermediate", "n*k*intermediate"};
  for (int i = 0; i < 3; i++) {
    if (absent(info[at[i]])) continue;
    Arr<float> a = f32(c, info[at[i]], kept_names[i]);
    expect_len(c, a, kept_lens[i], kept_exprs[i]);
    disjoint(c, dx.a, a);
    kept[i] = a.data;
  }
  if (kept[2] && !kept[1]) c.type_error("act is read only beside gateUp: give both");
  moe_backward(kernels(), x.data, n, hidden, idx.data, w.data, k, ex.ptrs.data(), int64_t(ex.ptrs.size()), dout.data,
               dx.a.data, dw.a.data, grads.data(), kept[0], kept[1], kept[2]);
  return outputs(c, {&dx, &dw});
}

}  // namespace

void define_backward_ops(Napi::Env env, Napi::Object exports) {
  exports.Set("matmulDx", Napi::Function::New(env, MatmulDx, "matmulDx"));
  exports.Set("matmulDw", Napi::Function::New(env, MatmulDw, "matmulDw"));
  exports.Set("rmsnormBackward", Napi::Function::New(env, RmsnormBackward, "rmsnormBackward"));
  exports.Set("siluBackward", Napi::Function::New(env, UnaryBackward<0>, "siluBackward"));
  exports.Set("sigmoidBackward", Napi::Function::New(env, UnaryBackward<1>, "sigmoidBackward"));
  exports.Set("swigluBackward", Napi::Function::New(env, SwigluBackward, "swigluBackward"));
  exports.Set("embeddingBackward", Napi::Function::New(env, EmbeddingBackward, "embeddingBackward"));
  exports.Set("routerTopkBackward", Napi::Function::New(env, RouterTopkBackward, "routerTopkBackward"));
  exports.Set("crossEntropy", Napi::Function::New(env, CrossEntropy, "crossEntropy"));
  exports.Set("lightningBackward", Napi::Function::New(env, LightningBackward<false>, "lightningBackward"));
  exports.Set("lightningBackwardQkv", Napi::Function::New(env, LightningBackward<true>, "lightningBackwardQkv"));
  exports.Set("attentionLse", Napi::Function::New(env, AttentionLse, "attentionLse"));
  exports.Set("attentionBackward", Napi::Function::New(env, AttentionBackward, "attentionBackward"));
  exports.Set("moeBackward", Napi::Function::New(env, MoeBackward, "moeBackward"));
}

}  // namespace m1
