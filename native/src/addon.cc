// N-API bindings. Every argument is validated here (types, lengths vs dimensions, overlaps) so that
// no kernel reads or writes out of bounds, even when the addon is called directly.
#include <napi.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "dispatch.h"
#include "moe.h"
#include "threadpool.h"

namespace m1 {
namespace {

using Napi::CallbackInfo;
using Napi::Env;
using Napi::Value;

struct Ctx {
  Env env;
  const char* fn;
  [[noreturn]] void type_error(const std::string& m) const {
    throw Napi::TypeError::New(env, std::string(fn) + ": " + m);
  }
  [[noreturn]] void range_error(const std::string& m) const {
    throw Napi::RangeError::New(env, std::string(fn) + ": " + m);
  }
  [[noreturn]] void error(const std::string& m) const { throw Napi::Error::New(env, std::string(fn) + ": " + m); }
};

std::string str(int64_t v) { return std::to_string(v); }

// ------------------------------------------------------------------ arrays
template <class T>
struct Arr {
  T* data = nullptr;
  int64_t len = 0;
  const char* name = "";
  const char* lo() const { return reinterpret_cast<const char*>(data); }
  const char* hi() const { return reinterpret_cast<const char*>(data + len); }
};

template <class T>
Arr<T> typed(const Ctx& c, const Value& v, const char* name, napi_typedarray_type want, const char* tname) {
  napi_typedarray_type type;
  size_t length = 0;
  void* data = nullptr;
  if (!v.IsTypedArray() ||
      napi_get_typedarray_info(c.env, v, &type, &length, &data, nullptr, nullptr) != napi_ok || type != want)
    c.type_error(std::string(name) + " must be a " + tname);
  Arr<T> a;
  a.len = int64_t(length);
  a.data = a.len ? static_cast<T*>(data) : nullptr;  // data already includes the byte offset
  a.name = name;
  return a;
}

Arr<float> f32(const Ctx& c, const Value& v, const char* name) {
  return typed<float>(c, v, name, napi_float32_array, "Float32Array");
}
Arr<int32_t> i32(const Ctx& c, const Value& v, const char* name) {
  return typed<int32_t>(c, v, name, napi_int32_array, "Int32Array");
}
bool absent(const Value& v) { return v.IsUndefined() || v.IsNull(); }

template <class T>
void expect_len(const Ctx& c, const Arr<T>& a, int64_t want, const char* expr) {
  if (a.len != want)
    c.range_error(std::string(a.name) + " has " + str(a.len) + " elements, expected " + expr + " = " + str(want));
}

template <class A, class B>
bool overlap(const A& a, const B& b) {
  return a.len > 0 && b.len > 0 && a.lo() < b.hi() && b.lo() < a.hi();
}
template <class A, class B>
void disjoint(const Ctx& c, const A& a, const B& b) {
  if (overlap(a, b)) c.range_error(std::string(a.name) + " must not overlap " + b.name);
}
// element-wise ops may work in place (same memory) but not on partially overlapping arrays
template <class A, class B>
void same_or_disjoint(const Ctx& c, const A& a, const B& b) {
  if (overlap(a, b) && a.lo() != b.lo())
    c.range_error(std::string(a.name) + " partially overlaps " + b.name + " (use the same array or a disjoint one)");
}

// out: the given Float32Array (exact length) or a new zero-filled one
struct Out {
  Napi::Float32Array arr;
  Arr<float> a;
};
Out out_arg(const Ctx& c, const Value& v, int64_t want, const char* expr, const char* name = "out") {
  Out o;
  if (absent(v)) {
    o.arr = Napi::Float32Array::New(c.env, size_t(want));
    o.a.len = want;
    o.a.data = want ? o.arr.Data() : nullptr;
    o.a.name = name;
  } else {
    o.a = f32(c, v, name);
    expect_len(c, o.a, want, expr);
    o.arr = v.As<Napi::Float32Array>();
  }
  return o;
}

// ------------------------------------------------------------------ numbers
double number(const Ctx& c, const Value& v, const char* name) {
  if (!v.IsNumber()) c.type_error(std::string(name) + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}
double finite(const Ctx& c, const Value& v, const char* name) {
  const double x = number(c, v, name);
  if (!std::isfinite(x)) c.range_error(std::string(name) + " must be finite, got " + std::to_string(x));
  return x;
}
constexpr int64_t kMaxDim = int64_t(1) << 40;
int64_t dim(const Ctx& c, const Value& v, const char* name) {
  const double x = number(c, v, name);
  if (!(x >= 0) || x != std::floor(x) || x > double(kMaxDim))
    c.range_error(std::string(name) + " must be a non-negative integer, got " + v.ToString().Utf8Value());
  return int64_t(x);
}
int64_t prod(const Ctx& c, std::initializer_list<int64_t> xs) {
  int64_t p = 1;
  constexpr int64_t kMax = int64_t(1) << 53;
  for (int64_t x : xs) {
    if (x != 0 && p > kMax / x) c.range_error("dimensions are too large");
    p *= x;
  }
  return p;
}

// ------------------------------------------------------------------ weights
struct WeightArg {
  WeightView w;
  Arr<const char> bytes;  // for overlap checks
};

WeightArg weight(const Ctx& c, const Value& v, const std::string& name) {
  if (!v.IsObject() || v.IsTypedArray() || v.IsArray())
    c.type_error(name + " must be a Weight { dtype, data, shape }");
  Napi::Object o = v.As<Napi::Object>();
  const Value dt = o.Get("dtype");
  const std::string dts = dt.IsString() ? dt.As<Napi::String>().Utf8Value() : "";
  WeightArg r;
  if (dts == "F32") r.w.dtype = kF32;
  else if (dts == "BF16") r.w.dtype = kBF16;
  else if (dts == "F16") r.w.dtype = kF16;
  else c.type_error(name + ".dtype must be \"F32\", \"BF16\" or \"F16\"");
  const Value sh = o.Get("shape");
  if (!sh.IsObject()) c.type_error(name + ".shape must be [rows, cols]");
  Napi::Object sho = sh.As<Napi::Object>();
  const Value sl = sho.Get("length");
  if (!sl.IsNumber() || sl.As<Napi::Number>().DoubleValue() != 2)
    c.type_error(name + ".shape must be [rows, cols] (a 2-D weight)");
  const std::string rn = name + ".shape[0]", cn = name + ".shape[1]";
  r.w.rows = dim(c, sho.Get(uint32_t(0)), rn.c_str());
  r.w.cols = dim(c, sho.Get(uint32_t(1)), cn.c_str());
  const int64_t want = prod(c, {r.w.rows, r.w.cols});
  const Value data = o.Get("data");
  const std::string dn = name + ".data";
  int64_t len;
  if (r.w.dtype == kF32) {
    if (!data.IsTypedArray() || data.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
      c.type_error(dn + " must be a Float32Array for dtype F32");
    Arr<float> a = f32(c, data, dn.c_str());
    r.w.data = a.data;
    len = a.len;
    r.bytes.data = a.lo();
    r.bytes.len = a.len * 4;
  } else {
    if (!data.IsTypedArray() || data.As<Napi::TypedArray>().TypedArrayType() != napi_uint16_array)
      c.type_error(dn + " must be a Uint16Array (raw 16-bit values) for dtype " + dts);
    Arr<uint16_t> a = typed<uint16_t>(c, data, dn.c_str(), napi_uint16_array, "Uint16Array");
    r.w.data = a.data;
    len = a.len;
    r.bytes.data = a.lo();
    r.bytes.len = a.len * 2;
  }
  if (len != want)
    c.range_error(dn + " has " + str(len) + " elements, expected shape[0]*shape[1] = " + str(want));
  r.bytes.name = "weight data";
  return r;
}

// ------------------------------------------------------------------ functions
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
  return o;
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
  for (int64_t i = 0; i < ids.len; i++) {
    if (ids.data[i] < 0 || ids.data[i] >= t.w.rows)
      c.range_error("ids[" + str(i) + "] = " + str(ids.data[i]) + " is outside the vocabulary [0, " + str(t.w.rows) +
                    ")");
  }
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

struct LightningArgs {
  Arr<float> q, k, v, slopes, state;
  int64_t n, heads, d;
};

LightningArgs lightning_common(const Ctx& c, const CallbackInfo& info, int state_at) {
  LightningArgs a;
  a.q = f32(c, info[0], "q");
  a.k = f32(c, info[1], "k");
  a.v = f32(c, info[2], "v");
  a.n = dim(c, info[3], "n");
  a.heads = dim(c, info[4], "heads");
  a.d = dim(c, info[5], "d");
  a.slopes = f32(c, info[6], "slopes");
  a.state = f32(c, info[state_at], "state");
  const int64_t len = prod(c, {a.n, a.heads, a.d});
  expect_len(c, a.q, len, "n*heads*d");
  expect_len(c, a.k, len, "n*heads*d");
  expect_len(c, a.v, len, "n*heads*d");
  expect_len(c, a.slopes, a.heads, "heads");
  expect_len(c, a.state, prod(c, {a.heads, a.d, a.d}), "heads*d*d");
  disjoint(c, a.state, a.q);
  disjoint(c, a.state, a.k);
  disjoint(c, a.state, a.v);
  disjoint(c, a.state, a.slopes);
  return a;
}

void lightning_out_checks(const Ctx& c, const LightningArgs& a, const Out& o) {
  disjoint(c, o.a, a.q);
  disjoint(c, o.a, a.k);
  disjoint(c, o.a, a.v);
  disjoint(c, o.a, a.slopes);
  disjoint(c, o.a, a.state);
}

Value LightningPrefill(const CallbackInfo& info) {
  Ctx c{info.Env(), "lightningPrefill"};
  LightningArgs a = lightning_common(c, info, 8);
  const int64_t block = dim(c, info[7], "blockSize");
  if (block < 1 || block > 4096) c.range_error("blockSize must be in [1, 4096], got " + str(block));
  Out o = out_arg(c, info[9], prod(c, {a.n, a.heads, a.d}), "n*heads*d");
  lightning_out_checks(c, a, o);
  kernels().lightning_prefill(a.q.data, a.k.data, a.v.data, a.n, a.heads, a.d, a.slopes.data, block, a.state.data,
                              o.a.data);
  return o.arr;
}

Value LightningStep(const CallbackInfo& info) {
  Ctx c{info.Env(), "lightningStep"};
  LightningArgs a = lightning_common(c, info, 7);
  Out o = out_arg(c, info[8], prod(c, {a.n, a.heads, a.d}), "n*heads*d");
  lightning_out_checks(c, a, o);
  kernels().lightning_step(a.q.data, a.k.data, a.v.data, a.n, a.heads, a.d, a.slopes.data, a.state.data, o.a.data);
  return o.arr;
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
  Arr<float> logits = f32(c, info[0], "logits");
  const int64_t n = dim(c, info[1], "n");
  const int64_t e = dim(c, info[2], "experts");
  const int64_t k = dim(c, info[3], "k");
  Arr<int32_t> idx = i32(c, info[4], "idx");
  Arr<float> w = f32(c, info[5], "weights");
  if (e < 1 || e > INT32_MAX) c.range_error("experts must be in [1, 2^31), got " + str(e));
  if (k < 1 || k > e) c.range_error("k must be in [1, experts = " + str(e) + "], got " + str(k));
  expect_len(c, logits, prod(c, {n, e}), "n*experts");
  expect_len(c, idx, prod(c, {n, k}), "n*k");
  expect_len(c, w, prod(c, {n, k}), "n*k");
  disjoint(c, idx, logits);
  disjoint(c, w, logits);
  disjoint(c, w, idx);
  kernels().router_topk(logits.data, n, e, k, idx.data, w.data);
  return info.Env().Undefined();
}

Value MoeExperts(const CallbackInfo& info) {
  Ctx c{info.Env(), "moeExperts"};
  Arr<float> x = f32(c, info[0], "x");
  const int64_t n = dim(c, info[1], "n");
  const int64_t hidden = dim(c, info[2], "hidden");
  Arr<int32_t> idx = i32(c, info[3], "idx");
  const int64_t k = dim(c, info[4], "k");
  if (!info[5].IsArray()) c.type_error("experts must be an array of { w1, w3, w2 } (or null for unused experts)");
  Napi::Array arr = info[5].As<Napi::Array>();
  const int64_t ne = int64_t(arr.Length());
  expect_len(c, x, prod(c, {n, hidden}), "n*hidden");
  expect_len(c, idx, prod(c, {n, k}), "n*k");
  Out o = out_arg(c, info[6], prod(c, {n, k, hidden}), "n*k*hidden");
  disjoint(c, o.a, x);
  std::vector<ExpertView> views(static_cast<size_t>(ne));
  std::vector<const ExpertView*> ptrs(static_cast<size_t>(ne), nullptr);
  for (int64_t s = 0; s < idx.len; s++) {
    const int64_t e = idx.data[s];
    if (e < 0 || e >= ne)
      c.range_error("idx[" + str(s) + "] = " + str(e) + " is not an expert index (experts has " + str(ne) +
                    " entries)");
    if (ptrs[size_t(e)]) continue;
    const std::string en = "experts[" + str(e) + "]";
    const Value ev = arr.Get(uint32_t(e));
    if (absent(ev))
      c.error("expert " + str(e) + " is routed to (idx[" + str(s) + "] = " + str(e) + ") but " + en + " is " +
              (ev.IsNull() ? "null" : "undefined"));
    if (!ev.IsObject()) c.type_error(en + " must be { w1, w3, w2 }");
    Napi::Object eo = ev.As<Napi::Object>();
    WeightArg w1 = weight(c, eo.Get("w1"), en + ".w1");
    WeightArg w3 = weight(c, eo.Get("w3"), en + ".w3");
    WeightArg w2 = weight(c, eo.Get("w2"), en + ".w2");
    const int64_t F = w1.w.rows;
    auto shape = [&](const WeightArg& w, const std::string& nm, int64_t r, int64_t cc) {
      if (w.w.rows != r || w.w.cols != cc)
        c.range_error(en + "." + nm + " has shape [" + str(w.w.rows) + ", " + str(w.w.cols) + "], expected [" + str(r) +
                      ", " + str(cc) + "]");
    };
    shape(w1, "w1", F, hidden);
    shape(w3, "w3", F, hidden);
    shape(w2, "w2", hidden, F);
    w1.bytes.name = "expert weights";
    w3.bytes.name = "expert weights";
    w2.bytes.name = "expert weights";
    disjoint(c, o.a, w1.bytes);
    disjoint(c, o.a, w3.bytes);
    disjoint(c, o.a, w2.bytes);
    views[size_t(e)] = ExpertView{w1.w, w3.w, w2.w};
    ptrs[size_t(e)] = &views[size_t(e)];
  }
  moe_experts(kernels(), x.data, n, hidden, idx.data, k, ptrs.data(), ne, o.a.data);
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

Napi::Object Init(Env env, Napi::Object exports) {
  try {
    dispatch_init();
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
  exports.Set("cpuInfo", Napi::Function::New(env, CpuInfo, "cpuInfo"));
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
  exports.Set("lightningPrefill", Napi::Function::New(env, LightningPrefill, "lightningPrefill"));
  exports.Set("lightningStep", Napi::Function::New(env, LightningStep, "lightningStep"));
  exports.Set("attention", Napi::Function::New(env, Attention, "attention"));
  exports.Set("routerTopk", Napi::Function::New(env, RouterTopk, "routerTopk"));
  exports.Set("moeExperts", Napi::Function::New(env, MoeExperts, "moeExperts"));
  exports.Set("weightedSum", Napi::Function::New(env, WeightedSum, "weightedSum"));
  exports.Set("builtWithAvx512Bf16", Napi::Boolean::New(env, built_with_avx512bf16()));
  return exports;
}

}  // namespace
}  // namespace m1

static Napi::Object InitM1(Napi::Env env, Napi::Object exports) { return m1::Init(env, exports); }

NODE_API_MODULE(m1native, InitM1)
