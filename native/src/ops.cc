// The op bindings: one JavaScript function per kernel (kernels.h), plus configuration and machine ceilings.
// Arguments are checked with args.h before any kernel runs.
#include <stdlib.h>

#include <algorithm>
#include <string>
#include <vector>

#include "aligned.h"
#include "args.h"
#include "bindings.h"
#include "dispatch.h"
#include "moe.h"
#include "pool.h"
#include "threadpool.h"

namespace m1 {
namespace {

using namespace args;

Value CpuInfo(const CallbackInfo& info) {
  Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("isa", current_isa());
  const auto s = supported_isas();
  Napi::Array a = Napi::Array::New(env, s.size());
  for (size_t i = 0; i < s.size(); i++) a.Set(uint32_t(i), s[i]);
  o.Set("supported", a);
  o.Set("avx512bf16", cpu_has_avx512bf16());
  o.Set("threads", num_threads());
  o.Set("cacheBytes", double(last_level_cache_bytes()));
  return o;
}

// fmaPeak(tasks, iters) → FLOPs done (time it from JS)
Value FmaPeak(const CallbackInfo& info) {
  Ctx c{info.Env(), "fmaPeak"};
  const int64_t tasks = dim(c, info[0], "tasks");
  const int64_t iters = dim(c, info[1], "iters");
  return Napi::Number::New(c.env, kernels().fma_peak(tasks, iters));
}

// bf16DotPeak(tasks, iters) → FLOPs done by VDPBF16PS, 0 where this CPU or build has none
Value Bf16DotPeak(const CallbackInfo& info) {
  Ctx c{info.Env(), "bf16DotPeak"};
  const int64_t tasks = dim(c, info[0], "tasks");
  const int64_t iters = dim(c, info[1], "iters");
  const bool usable = cpu_has_avx512bf16() && built_with_avx512bf16() && current_isa() == "avx512";
  return Napi::Number::New(c.env, usable ? kernels().bf16_dot_peak(tasks, iters) : 0.0);
}

// readAll(src) → Σ src, summed on the pool
Value ReadAll(const CallbackInfo& info) {
  Ctx c{info.Env(), "readAll"};
  Arr<float> src = f32(c, info[0], "src");
  return Napi::Number::New(c.env, kernels().read_sum(src.data, src.len));
}

// copy(src, dst): dst = src on the pool (same length, disjoint)
Value Copy(const CallbackInfo& info) {
  Ctx c{info.Env(), "copy"};
  Arr<float> src = f32(c, info[0], "src");
  Arr<float> dst = f32(c, info[1], "dst");
  expect_len(c, dst, src.len, "src.length");
  disjoint(c, src, dst);
  kernels().copy(src.data, dst.data, src.len);
  return info.Env().Undefined();
}

// adamw(p, g, m, v, gradScale, beta1, beta2, decay, stepSize, invSqrtBc2, eps[, bf16]): one AdamW update of p, m, v
// in place (same length, disjoint); bf16 (a Uint16Array of p's length), when given, gets the new p rounded to BF16
Value Adamw(const CallbackInfo& info) {
  Ctx c{info.Env(), "adamw"};
  Arr<float> p = f32(c, info[0], "p");
  Arr<float> g = f32(c, info[1], "g");
  Arr<float> m = f32(c, info[2], "m");
  Arr<float> v = f32(c, info[3], "v");
  expect_len(c, g, p.len, "p.length");
  expect_len(c, m, p.len, "p.length");
  expect_len(c, v, p.len, "p.length");
  disjoint(c, p, g);
  disjoint(c, p, m);
  disjoint(c, p, v);
  disjoint(c, g, m);
  disjoint(c, g, v);
  disjoint(c, m, v);
  const char* names[] = {"gradScale", "beta1", "beta2", "decay", "stepSize", "invSqrtBc2", "eps"};
  float k[7];
  for (int i = 0; i < 7; i++) k[i] = float(number(c, info[4 + i], names[i]));
  const AdamwStep s{k[0], k[1], k[2], k[3], k[4], k[5], k[6]};
  uint16_t* bf16 = nullptr;
  if (!absent(info[11])) {
    Arr<uint16_t> b = typed<uint16_t>(c, info[11], "bf16", napi_uint16_array, "Uint16Array");
    expect_len(c, b, p.len, "p.length");
    for (const Arr<float>* a : {&p, &g, &m, &v}) disjoint(c, b, *a);
    bf16 = b.data;
  }
  kernels().adamw(p.data, g.data, m.data, v.data, p.len, s, bf16);
  return info.Env().Undefined();
}

// sumSquares(x) → Σ x² accumulated in double, on the pool
Value SumSquares(const CallbackInfo& info) {
  Ctx c{info.Env(), "sumSquares"};
  Arr<float> x = f32(c, info[0], "x");
  return Napi::Number::New(c.env, kernels().sum_squares(x.data, x.len));
}

// empty(length): a Float32Array for an op to fill (pooled and uninitialised from 64 KiB on)
Value Empty(const CallbackInfo& info) {
  Ctx c{info.Env(), "empty"};
  return new_f32(c, dim(c, info[0], "length"));
}

// alignedBuffer(bytes): an ArrayBuffer of weight memory (aligned.h). Contents undefined: for data read straight
// into it (checkpoint tensors).
Value AlignedBuffer(const CallbackInfo& info) {
  Ctx c{info.Env(), "alignedBuffer"};
  const int64_t bytes = dim(c, info[0], "bytes");
  if (size_t(bytes) > kMaxExternalBytes) return v8_buffer(c, size_t(bytes));  // unaligned: kernels load unaligned
  void* p = weight_alloc(size_t(bytes));
  if (!p) c.range_error("out of memory allocating " + str(bytes) + " bytes");
  return Napi::ArrayBuffer::New(c.env, p, size_t(bytes), [](Env, void* data) { free(data); });
}

Value MemoryStats(const CallbackInfo& info) {
  Env env = info.Env();
  const PoolStats s = pool_stats();
  Napi::Object o = Napi::Object::New(env);
  o.Set("liveBytes", double(s.live_bytes));
  o.Set("pooledBytes", double(s.free_bytes));
  o.Set("poolLimitBytes", double(s.limit_bytes));
  o.Set("reused", double(s.reused));
  o.Set("fresh", double(s.fresh));
  return o;
}

Value ExpertRowsComputed(const CallbackInfo& info) { return Napi::Number::New(info.Env(), double(expert_rows_computed())); }

Value ReleaseMemory(const CallbackInfo& info) {
  pool_release();
  return info.Env().Undefined();
}

Value SetIsa(const CallbackInfo& info) {
  Ctx c{info.Env(), "setIsa"};
  if (!info[0].IsString()) c.type_error("isa must be \"avx512\", \"avx2\" or \"scalar\"");
  const std::string name = info[0].As<Napi::String>().Utf8Value();
  if (name != "scalar" && name != "avx2" && name != "avx512")
    c.type_error("isa must be \"avx512\", \"avx2\" or \"scalar\", got \"" + name + "\"");
  try {
    set_isa(name);
  } catch (const std::exception& e) {
    c.error(e.what());
  }
  return info.Env().Undefined();
}

Value SetThreads(const CallbackInfo& info) {
  Ctx c{info.Env(), "setThreads"};
  const int64_t n = dim(c, info[0], "n");
  if (n < 1 || n > 1024) c.range_error("n must be in [1, 1024], got " + str(n));
  set_num_threads(int(n));
  return info.Env().Undefined();
}

Value Matmul(const CallbackInfo& info) {
  Ctx c{info.Env(), "matmul"};
  Arr<float> x = f32(c, info[0], "x");
  const int64_t n = dim(c, info[1], "n");
  WeightArg w = weight(c, info[2], "w");
  expect_len(c, x, prod(c, {n, w.w.cols}), "n*cols");
  Out o = out_arg(c, info[3], prod(c, {n, w.w.rows}), "n*rows");
  disjoint(c, o.a, x);
  w.bytes.name = "w.data";
  disjoint(c, o.a, w.bytes);
  kernels().matmul(x.data, n, w.w, o.a.data);
  return o.arr;
}

Value Rmsnorm(const CallbackInfo& info) {
  Ctx c{info.Env(), "rmsnorm"};
  Arr<float> x = f32(c, info[0], "x");
  const int64_t n = dim(c, info[1], "n");
  const int64_t d = dim(c, info[2], "dim");
  Arr<float> w = f32(c, info[3], "weight");
  const double eps = finite(c, info[4], "eps");
  if (eps < 0) c.range_error("eps must be >= 0");
  expect_len(c, x, prod(c, {n, d}), "n*dim");
  expect_len(c, w, d, "dim");
  Out o = out_arg(c, info[5], prod(c, {n, d}), "n*dim");
  same_or_disjoint(c, o.a, x);
  disjoint(c, o.a, w);
  kernels().rmsnorm(x.data, n, d, w.data, eps, o.a.data);
  return o.arr;
}

template <int Which>
Value Unary(const CallbackInfo& info) {
  Ctx c{info.Env(), Which == 0 ? "silu" : "sigmoid"};
  Arr<float> x = f32(c, info[0], "x");
  Out o = out_arg(c, info[1], x.len, "x.length");
  same_or_disjoint(c, o.a, x);
  if (Which == 0) kernels().silu(x.data, o.a.data, x.len);
  else kernels().sigmoid(x.data, o.a.data, x.len);
  return o.arr;
}

template <int Which>
Value Binary(const CallbackInfo& info) {
  Ctx c{info.Env(), Which == 0 ? "swiglu" : "mul"};
  Arr<float> a = f32(c, info[0], Which == 0 ? "gate" : "a");
  Arr<float> b = f32(c, info[1], Which == 0 ? "up" : "b");
  expect_len(c, b, a.len, Which == 0 ? "gate.length" : "a.length");
  Out o = out_arg(c, info[2], a.len, Which == 0 ? "gate.length" : "a.length");
  same_or_disjoint(c, o.a, a);
  same_or_disjoint(c, o.a, b);
  if (Which == 0) kernels().swiglu(a.data, b.data, o.a.data, a.len);
  else kernels().mul(a.data, b.data, o.a.data, a.len);
  return o.arr;
}

Value Axpby(const CallbackInfo& info) {
  Ctx c{info.Env(), "axpby"};
  const double alpha = number(c, info[0], "alpha");
  Arr<float> x = f32(c, info[1], "x");
  const double beta = number(c, info[2], "beta");
  Arr<float> y = f32(c, info[3], "y");
  expect_len(c, y, x.len, "x.length");
  Out o = out_arg(c, info[4], x.len, "x.length");
  same_or_disjoint(c, o.a, x);
  same_or_disjoint(c, o.a, y);
  kernels().axpby(float(alpha), x.data, float(beta), y.data, o.a.data, x.len);
  return o.arr;
}

Value Embedding(const CallbackInfo& info) {
  Ctx c{info.Env(), "embedding"};
  Arr<int32_t> ids = i32(c, info[0], "ids");
  WeightArg t = weight(c, info[1], "table");
  check_ids(c, ids, t.w.rows);
  Out o = out_arg(c, info[2], prod(c, {ids.len, t.w.cols}), "ids.length*dim");
  t.bytes.name = "table.data";
  disjoint(c, o.a, t.bytes);
  disjoint(c, o.a, ids);
  kernels().embedding(ids.data, ids.len, t.w, o.a.data);
  return o.arr;
}

Value Rope(const CallbackInfo& info) {
  Ctx c{info.Env(), "rope"};
  Arr<float> x = f32(c, info[0], "x");
  const int64_t n = dim(c, info[1], "n");
  const int64_t heads = dim(c, info[2], "heads");
  const int64_t hd = dim(c, info[3], "headDim");
  const int64_t rd = dim(c, info[4], "rotaryDim");
  Arr<int32_t> pos = i32(c, info[5], "positions");
  const double theta = finite(c, info[6], "theta");
  expect_len(c, x, prod(c, {n, heads, hd}), "n*heads*headDim");
  if (rd > hd) c.range_error("rotaryDim (" + str(rd) + ") must be <= headDim (" + str(hd) + ")");
  if (rd % 2) c.range_error("rotaryDim must be even, got " + str(rd));
  if (!(theta > 0)) c.range_error("theta must be > 0");
  expect_len(c, pos, n, "n");
  disjoint(c, x, pos);
  kernels().rope(x.data, n, heads, hd, rd, pos.data, theta);
  return info.Env().Undefined();
}

// q, k, v as three [n, heads, d] arrays, or (packed) one [n, heads, 3, d] array: the per-head
// interleaved output of the qkv projection, read in place.
struct LightningArgs {
  Arr<float> q, k, v, slopes, state;
  int64_t n, heads, d;
  const float *qp, *kp, *vp;
  int64_t ld, hs;  // row and head strides of q, k, v
};

LightningArgs lightning_common(const Ctx& c, const CallbackInfo& info, bool packed, int state_at) {
  LightningArgs a;
  const int at = packed ? 2 : 0;  // index shift of the arguments after q, k, v
  if (packed) {
    a.q = f32(c, info[0], "qkv");
  } else {
    a.q = f32(c, info[0], "q");
    a.k = f32(c, info[1], "k");
    a.v = f32(c, info[2], "v");
  }
  a.n = dim(c, info[3 - at], "n");
  a.heads = dim(c, info[4 - at], "heads");
  a.d = dim(c, info[5 - at], "d");
  a.slopes = f32(c, info[6 - at], "slopes");
  a.state = f32(c, info[state_at - at], "state");
  const int64_t len = prod(c, {a.n, a.heads, a.d});
  if (packed) {
    expect_len(c, a.q, prod(c, {len, 3}), "n*heads*3*d");
    a.ld = 3 * a.heads * a.d;
    a.hs = 3 * a.d;
    a.qp = a.q.data;
    a.kp = a.q.data ? a.q.data + a.d : nullptr;
    a.vp = a.q.data ? a.q.data + 2 * a.d : nullptr;
  } else {
    expect_len(c, a.q, len, "n*heads*d");
    expect_len(c, a.k, len, "n*heads*d");
    expect_len(c, a.v, len, "n*heads*d");
    a.ld = a.heads * a.d;
    a.hs = a.d;
    a.qp = a.q.data;
    a.kp = a.k.data;
    a.vp = a.v.data;
  }
  expect_len(c, a.slopes, a.heads, "heads");
  expect_len(c, a.state, prod(c, {a.heads, a.d, a.d}), "heads*d*d");
  disjoint(c, a.state, a.q);
  disjoint(c, a.state, a.k);
  disjoint(c, a.state, a.v);
  disjoint(c, a.state, a.slopes);
  return a;
}

Out lightning_out(const Ctx& c, const CallbackInfo& info, const LightningArgs& a, int at) {
  Out o = out_arg(c, info[at], prod(c, {a.n, a.heads, a.d}), "n*heads*d");
  disjoint(c, o.a, a.q);
  disjoint(c, o.a, a.k);
  disjoint(c, o.a, a.v);
  disjoint(c, o.a, a.slopes);
  disjoint(c, o.a, a.state);
  return o;
}

template <bool Packed>
Value LightningPrefill(const CallbackInfo& info) {
  Ctx c{info.Env(), Packed ? "lightningPrefillQkv" : "lightningPrefill"};
  const int at = Packed ? 2 : 0;
  LightningArgs a = lightning_common(c, info, Packed, 8);
  const int64_t block = dim(c, info[7 - at], "blockSize");
  if (block < 1 || block > 4096) c.range_error("blockSize must be in [1, 4096], got " + str(block));
  Out o = lightning_out(c, info, a, 9 - at);
  kernels().lightning_prefill(a.qp, a.kp, a.vp, a.ld, a.hs, a.n, a.heads, a.d, a.slopes.data, block, a.state.data,
                              o.a.data);
  return o.arr;
}

template <bool Packed>
Value LightningStep(const CallbackInfo& info) {
  Ctx c{info.Env(), Packed ? "lightningStepQkv" : "lightningStep"};
  LightningArgs a = lightning_common(c, info, Packed, 7);
  Out o = lightning_out(c, info, a, Packed ? 6 : 8);
  kernels().lightning_step(a.qp, a.kp, a.vp, a.ld, a.hs, a.n, a.heads, a.d, a.slopes.data, a.state.data, o.a.data);
  return o.arr;
}

// [n, heads, 3, d] → q, k, v [n, heads, d] each
Value SplitQkv(const CallbackInfo& info) {
  Ctx c{info.Env(), "splitQkv"};
  Arr<float> qkv = f32(c, info[0], "qkv");
  const int64_t n = dim(c, info[1], "n");
  const int64_t heads = dim(c, info[2], "heads");
  const int64_t d = dim(c, info[3], "d");
  const int64_t len = prod(c, {n, heads, d});
  expect_len(c, qkv, prod(c, {len, 3}), "n*heads*3*d");
  Napi::Array parts = Napi::Array::New(c.env, 3);
  float* dst[3];
  for (uint32_t p = 0; p < 3; p++) {
    Napi::Float32Array a = new_f32(c, len);
    dst[p] = len ? a.Data() : nullptr;
    parts.Set(p, a);
  }
  kernels().split_qkv(qkv.data, n * heads, d, dst[0], dst[1], dst[2]);
  return parts;
}

Value Attention(const CallbackInfo& info) {
  Ctx c{info.Env(), "attention"};
  Arr<float> q = f32(c, info[0], "q");
  Arr<float> kc = f32(c, info[1], "kCache");
  Arr<float> vc = f32(c, info[2], "vCache");
  const int64_t n = dim(c, info[3], "n");
  const int64_t total = dim(c, info[4], "total");
  const int64_t heads = dim(c, info[5], "heads");
  const int64_t kvh = dim(c, info[6], "kvHeads");
  const int64_t d = dim(c, info[7], "d");
  const double scale = finite(c, info[8], "scale");
  if (heads < 1) c.range_error("heads must be >= 1");
  if (kvh < 1 || heads % kvh != 0)
    c.range_error("kvHeads (" + str(kvh) + ") must be >= 1 and divide heads (" + str(heads) + ")");
  if (total < n) c.range_error("total (" + str(total) + ") must be >= n (" + str(n) + ")");
  expect_len(c, q, prod(c, {n, heads, d}), "n*heads*d");
  const int64_t row = prod(c, {kvh, d});
  const int64_t need = prod(c, {total, row});
  for (const Arr<float>* cache : {&kc, &vc}) {
    if (row > 0 && cache->len % row != 0)
      c.range_error(std::string(cache->name) + " has " + str(cache->len) + " elements, not a multiple of kvHeads*d = " +
                    str(row));
    if (cache->len < need)
      c.range_error(std::string(cache->name) + " has " + str(cache->len) + " elements (" +
                    str(row ? cache->len / row : 0) + " rows), expected at least total*kvHeads*d = " + str(need));
  }
  Out o = out_arg(c, info[9], prod(c, {n, heads, d}), "n*heads*d");
  disjoint(c, o.a, q);
  disjoint(c, o.a, kc);
  disjoint(c, o.a, vc);
  float* probs = nullptr;
  if (!absent(info[10])) {
    Arr<float> p = f32(c, info[10], "probs");
    expect_len(c, p, prod(c, {heads, n, total}), "heads*n*total");
    disjoint(c, p, q);
    disjoint(c, p, kc);
    disjoint(c, p, vc);
    disjoint(c, p, o.a);
    probs = p.data;
  }
  kernels().attention(q.data, kc.data, vc.data, n, total, heads, kvh, d, float(scale), o.a.data, probs);
  return o.arr;
}

Value RouterTopk(const CallbackInfo& info) {
  Ctx c{info.Env(), "routerTopk"};
  const RouterArgs a = router_args(c, info, "weights");
  disjoint(c, a.idx, a.logits);
  disjoint(c, a.w, a.logits);
  disjoint(c, a.w, a.idx);
  kernels().router_topk(a.logits.data, a.n, a.e, a.k, a.idx.data, a.w.data);
  return info.Env().Undefined();
}

Value MoeExperts(const CallbackInfo& info) {
  Ctx c{info.Env(), "moeExperts"};
  Arr<float> x = f32(c, info[0], "x");
  const int64_t n = dim(c, info[1], "n");
  const int64_t hidden = dim(c, info[2], "hidden");
  Arr<int32_t> idx = i32(c, info[3], "idx");
  const int64_t k = dim(c, info[4], "k");
  expect_len(c, x, prod(c, {n, hidden}), "n*hidden");
  expect_len(c, idx, prod(c, {n, k}), "n*k");
  Out o = out_arg(c, info[6], prod(c, {n, k, hidden}), "n*k*hidden");
  disjoint(c, o.a, x);
  disjoint(c, o.a, idx);
  Arr<float> gu;  // optional: W1 x and W3 x of each slot, for the backward pass
  if (!absent(info[7])) {
    gu = f32(c, info[7], "gateUp");
    disjoint(c, gu, x);
    disjoint(c, gu, idx);
    disjoint(c, gu, o.a);
  }
  Arr<float> act;  // optional, with gateUp: silu(W1 x) ⊙ W3 x of each slot
  if (!absent(info[8])) {
    if (absent(info[7])) c.type_error("act is kept only beside gateUp: give both");
    act = f32(c, info[8], "act");
    disjoint(c, act, x);
    disjoint(c, act, idx);
    disjoint(c, act, o.a);
    disjoint(c, act, gu);
  }
  Experts ex = experts_arg(c, info[5], idx, hidden, {&o.a, &gu, &act});
  if (!absent(info[7])) expect_len(c, gu, prod(c, {n, k, 2, routed_intermediate(ex)}), "n*k*2*intermediate");
  if (!absent(info[8])) expect_len(c, act, prod(c, {n, k, routed_intermediate(ex)}), "n*k*intermediate");
  moe_experts(kernels(), x.data, n, hidden, idx.data, nullptr, k, ex.ptrs.data(), int64_t(ex.ptrs.size()), o.a.data,
              nullptr, false, gu.len ? gu.data : nullptr, act.len ? act.data : nullptr);
  return o.arr;
}

Value Moe(const CallbackInfo& info) {
  Ctx c{info.Env(), "moe"};
  const auto& [x, n, hidden, idx, w, k] = moe_args(c, info);
  Out o = out_arg(c, info[7], prod(c, {n, hidden}), "n*hidden");
  disjoint(c, o.a, x);
  disjoint(c, o.a, idx);
  disjoint(c, o.a, w);
  Experts ex = experts_arg(c, info[6], idx, hidden, {&o.a});
  if (k == 0) {
    std::fill(o.a.data, o.a.data + o.a.len, 0.0f);
    return o.arr;
  }
  moe_experts(kernels(), x.data, n, hidden, idx.data, w.data, k, ex.ptrs.data(), int64_t(ex.ptrs.size()), nullptr,
              o.a.data, false);
  return o.arr;
}

Value WeightedSum(const CallbackInfo& info) {
  Ctx c{info.Env(), "weightedSum"};
  Arr<float> slots = f32(c, info[0], "slots");
  Arr<float> w = f32(c, info[1], "weights");
  const int64_t n = dim(c, info[2], "n");
  const int64_t k = dim(c, info[3], "k");
  const int64_t d = dim(c, info[4], "dim");
  expect_len(c, slots, prod(c, {n, k, d}), "n*k*dim");
  expect_len(c, w, prod(c, {n, k}), "n*k");
  Out o = out_arg(c, info[5], prod(c, {n, d}), "n*dim");
  disjoint(c, o.a, slots);
  disjoint(c, o.a, w);
  kernels().weighted_sum(slots.data, w.data, n, k, d, o.a.data);
  return o.arr;
}
}  // namespace

void define_ops(Napi::Env env, Napi::Object exports) {
  exports.Set("cpuInfo", Napi::Function::New(env, CpuInfo, "cpuInfo"));
  exports.Set("fmaPeak", Napi::Function::New(env, FmaPeak, "fmaPeak"));
  exports.Set("bf16DotPeak", Napi::Function::New(env, Bf16DotPeak, "bf16DotPeak"));
  exports.Set("readAll", Napi::Function::New(env, ReadAll, "readAll"));
  exports.Set("copy", Napi::Function::New(env, Copy, "copy"));
  exports.Set("adamw", Napi::Function::New(env, Adamw, "adamw"));
  exports.Set("sumSquares", Napi::Function::New(env, SumSquares, "sumSquares"));
  exports.Set("empty", Napi::Function::New(env, Empty, "empty"));
  exports.Set("alignedBuffer", Napi::Function::New(env, AlignedBuffer, "alignedBuffer"));
  exports.Set("memoryStats", Napi::Function::New(env, MemoryStats, "memoryStats"));
  exports.Set("expertRowsComputed", Napi::Function::New(env, ExpertRowsComputed, "expertRowsComputed"));
  exports.Set("releaseMemory", Napi::Function::New(env, ReleaseMemory, "releaseMemory"));
  exports.Set("setIsa", Napi::Function::New(env, SetIsa, "setIsa"));
  exports.Set("setThreads", Napi::Function::New(env, SetThreads, "setThreads"));
  exports.Set("matmul", Napi::Function::New(env, Matmul, "matmul"));
  exports.Set("rmsnorm", Napi::Function::New(env, Rmsnorm, "rmsnorm"));
  exports.Set("silu", Napi::Function::New(env, Unary<0>, "silu"));
  exports.Set("sigmoid", Napi::Function::New(env, Unary<1>, "sigmoid"));
  exports.Set("swiglu", Napi::Function::New(env, Binary<0>, "swiglu"));
  exports.Set("mul", Napi::Function::New(env, Binary<1>, "mul"));
  exports.Set("axpby", Napi::Function::New(env, Axpby, "axpby"));
  exports.Set("embedding", Napi::Function::New(env, Embedding, "embedding"));
  exports.Set("rope", Napi::Function::New(env, Rope, "rope"));
  exports.Set("lightningPrefill", Napi::Function::New(env, LightningPrefill<false>, "lightningPrefill"));
  exports.Set("lightningStep", Napi::Function::New(env, LightningStep<false>, "lightningStep"));
  exports.Set("lightningPrefillQkv", Napi::Function::New(env, LightningPrefill<true>, "lightningPrefillQkv"));
  exports.Set("lightningStepQkv", Napi::Function::New(env, LightningStep<true>, "lightningStepQkv"));
  exports.Set("splitQkv", Napi::Function::New(env, SplitQkv, "splitQkv"));
  exports.Set("attention", Napi::Function::New(env, Attention, "attention"));
  exports.Set("routerTopk", Napi::Function::New(env, RouterTopk, "routerTopk"));
  exports.Set("moeExperts", Napi::Function::New(env, MoeExperts, "moeExperts"));
  exports.Set("moe", Napi::Function::New(env, Moe, "moe"));
  exports.Set("weightedSum", Napi::Function::New(env, WeightedSum, "weightedSum"));
}

}  // namespace m1
