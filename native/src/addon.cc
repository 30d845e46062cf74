// N-API bindings. Every argument is validated here (types, lengths vs dimensions, overlaps) so that
// no kernel reads or writes out of bounds, even when the addon is called directly.
#include <napi.h>
#include <stdlib.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "aligned.h"
#include "dispatch.h"
#include "layer.h"
#include "moe.h"
#include "pool.h"
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

// The longest Float32Array V8 makes (2^32 elements on Node 20): asking N-API for a longer one is a fatal V8 check,
// so every array the addon makes is checked against it first.
constexpr int64_t kMaxArrayLength = int64_t(1) << 32;
// N-API wraps external memory in a node::Buffer, which holds at most 2^32 bytes (buffer.constants.MAX_LENGTH). Past
// that, napi_create_external_arraybuffer runs the finalizer and fails, and node-addon-api then deletes its finalize
// data a second time (a double free). Larger blocks are therefore allocated by V8, never wrapped.
constexpr size_t kMaxExternalBytes = size_t(1) << 32;

// A V8-allocated ArrayBuffer (zero-filled), with allocation failure as a RangeError naming the size.
Napi::ArrayBuffer v8_buffer(const Ctx& c, size_t bytes) {
  try {
    return Napi::ArrayBuffer::New(c.env, bytes);
  } catch (const Napi::Error&) {
    c.range_error("out of memory allocating " + str(int64_t(bytes)) + " bytes");
  }
}

// A new Float32Array of len elements. Those from 1 MiB to 4 GiB come from the recycling pool (pool.h) with
// undefined contents: every kernel writes all of its output.
Napi::Float32Array new_f32(const Ctx& c, int64_t len) {
  if (len > kMaxArrayLength)
    c.range_error("an array of " + str(len) + " floats is longer than the longest Float32Array (2^32 elements)");
  const size_t bytes = size_t(len) * 4;
  if (bytes < kPoolMinBytes || bytes > kMaxExternalBytes)
    return Napi::Float32Array::New(c.env, size_t(len), v8_buffer(c, bytes), 0);
  size_t cap = 0;
  void* p = pool_take(bytes, &cap);
  if (!p) c.range_error("out of memory allocating " + str(int64_t(bytes)) + " bytes");
  Napi::ArrayBuffer buf = Napi::ArrayBuffer::New(
      c.env, p, bytes, [](Env, void* data, size_t* capacity) {
        pool_give(data, *capacity);
        delete capacity;
      },
      new size_t(cap));
  return Napi::Float32Array::New(c.env, size_t(len), buf, 0);
}

// out: the given Float32Array (exact length) or a new one
struct Out {
  Napi::Float32Array arr;
  Arr<float> a;
};
Out out_arg(const Ctx& c, const Value& v, int64_t want, const char* expr, const char* name = "out") {
  Out o;
  if (absent(v)) {
    o.arr = new_f32(c, want);
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

// empty(length): a Float32Array for an op to fill (pooled and uninitialised from 1 MiB on)
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

void check_ids(const Ctx& c, const Arr<int32_t>& ids, int64_t vocab) {
  for (int64_t i = 0; i < ids.len; i++) {
    if (ids.data[i] < 0 || ids.data[i] >= vocab)
      c.range_error("ids[" + str(i) + "] = " + str(ids.data[i]) + " is outside the vocabulary [0, " + str(vocab) + ")");
  }
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

// The experts array of moeExperts/moe: views of every routed expert (validated), null for the others.
struct Experts {
  std::vector<ExpertView> views;
  std::vector<const ExpertView*> ptrs;
};

Experts experts_arg(const Ctx& c, const Value& v, const Arr<int32_t>& idx, int64_t hidden,
                    std::initializer_list<const Arr<float>*> outs) {
  if (!v.IsArray()) c.type_error("experts must be an array of { w1, w3, w2 } (or null for unused experts)");
  Napi::Array arr = v.As<Napi::Array>();
  const int64_t ne = int64_t(arr.Length());
  Experts r;
  r.views.resize(size_t(ne));
  r.ptrs.assign(size_t(ne), nullptr);
  int64_t F = -1, first = -1;  // every routed expert must have the same intermediate size
  for (int64_t s = 0; s < idx.len; s++) {
    const int64_t e = idx.data[s];
    if (e < 0 || e >= ne)
      c.range_error("idx[" + str(s) + "] = " + str(e) + " is not an expert index (experts has " + str(ne) +
                    " entries)");
    if (r.ptrs[size_t(e)]) continue;
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
    const int64_t f = w1.w.rows;
    auto shape = [&](const WeightArg& w, const std::string& nm, int64_t rows, int64_t cols) {
      if (w.w.rows != rows || w.w.cols != cols)
        c.range_error(en + "." + nm + " has shape [" + str(w.w.rows) + ", " + str(w.w.cols) + "], expected [" +
                      str(rows) + ", " + str(cols) + "]");
    };
    shape(w1, "w1", f, hidden);
    shape(w3, "w3", f, hidden);
    shape(w2, "w2", hidden, f);
    if (F >= 0 && f != F)
      c.range_error(en + " has intermediate size " + str(f) + ", experts[" + str(first) + "] has " + str(F) +
                    " (all routed experts must match)");
    F = f;
    first = e;
    for (const WeightArg* w : {&w1, &w3, &w2}) {
      Arr<const char> b = w->bytes;
      b.name = "expert weights";
      for (const Arr<float>* o : outs) disjoint(c, *o, b);
    }
    r.views[size_t(e)] = ExpertView{w1.w, w3.w, w2.w};
    r.ptrs[size_t(e)] = &r.views[size_t(e)];
  }
  return r;
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
  Experts ex = experts_arg(c, info[5], idx, hidden, {&o.a});
  moe_experts(kernels(), x.data, n, hidden, idx.data, nullptr, k, ex.ptrs.data(), int64_t(ex.ptrs.size()), o.a.data,
              nullptr);
  return o.arr;
}

Value Moe(const CallbackInfo& info) {
  Ctx c{info.Env(), "moe"};
  Arr<float> x = f32(c, info[0], "x");
  const int64_t n = dim(c, info[1], "n");
  const int64_t hidden = dim(c, info[2], "hidden");
  Arr<int32_t> idx = i32(c, info[3], "idx");
  Arr<float> w = f32(c, info[4], "weights");
  const int64_t k = dim(c, info[5], "k");
  expect_len(c, x, prod(c, {n, hidden}), "n*hidden");
  expect_len(c, idx, prod(c, {n, k}), "n*k");
  expect_len(c, w, prod(c, {n, k}), "n*k");
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
              o.a.data);
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

// ------------------------------------------------------------------ decoder layer
Napi::Value prop(const Ctx& c, const Napi::Object& o, const std::string& obj, const char* key) {
  const Value v = o.Get(key);
  if (v.IsUndefined()) c.type_error(obj + "." + key + " is missing");
  return v;
}

void weight_shape(const Ctx& c, const WeightArg& w, const std::string& name, int64_t rows, int64_t cols) {
  if (w.w.rows != rows || w.w.cols != cols)
    c.range_error(name + " has shape [" + str(w.w.rows) + ", " + str(w.w.cols) + "], expected [" + str(rows) + ", " +
                  str(cols) + "]");
}

// A decoder layer's weights and constants, validated once (see layer.h); forward() runs the layer on a few tokens.
// The layer keeps a reference to every array it reads, so none is collected while it lives.
class DecoderLayer : public Napi::ObjectWrap<DecoderLayer> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "DecoderLayer", {InstanceMethod<&DecoderLayer::Forward>("forward")});
  }

  explicit DecoderLayer(const CallbackInfo& info) : Napi::ObjectWrap<DecoderLayer>(info) {
    Ctx c{info.Env(), "decoderLayer"};
    if (!info[0].IsObject()) c.type_error("spec must be an object");
    const Napi::Object s = info[0].As<Napi::Object>();
    const std::string S = "spec";
    p_.attention.hidden = dim(c, prop(c, s, S, "hidden"), "spec.hidden");
    p_.attention.heads = dim(c, prop(c, s, S, "heads"), "spec.heads");
    p_.attention.head_dim = dim(c, prop(c, s, S, "headDim"), "spec.headDim");
    const int64_t hs = p_.attention.hidden, d = p_.attention.head_dim;
    if (hs < 1 || p_.attention.heads < 1 || d < 1) c.range_error("spec.hidden, spec.heads and spec.headDim must be >= 1");
    const int64_t inner = prod(c, {p_.attention.heads, d});
    p_.attention.ln1 = vector(c, prop(c, s, S, "ln1"), "spec.ln1", hs, "hidden");
    p_.attention.ln2 = vector(c, prop(c, s, S, "ln2"), "spec.ln2", hs, "hidden");
    p_.attention.eps = non_negative(c, prop(c, s, S, "eps"), "spec.eps");
    p_.attention.alpha = float(number(c, prop(c, s, S, "alpha"), "spec.alpha"));
    p_.attention.beta = float(number(c, prop(c, s, S, "beta"), "spec.beta"));
    const Napi::Value pn = prop(c, s, S, "postnorm");
    if (!pn.IsBoolean()) c.type_error("spec.postnorm must be a boolean");
    p_.attention.postnorm = pn.As<Napi::Boolean>().Value();
    const Napi::Value ev = prop(c, s, S, "experts");
    if (!ev.IsArray() || ev.As<Napi::Array>().Length() < 1) c.type_error("spec.experts must be a non-empty array of { w1, w3, w2 }");
    const int64_t ne = int64_t(ev.As<Napi::Array>().Length());
    p_.attention.router = matrix(c, prop(c, s, S, "router"), "spec.router", ne, hs);
    p_.attention.top_k = dim(c, prop(c, s, S, "topK"), "spec.topK");
    if (p_.attention.top_k < 1 || p_.attention.top_k > ne) c.range_error("spec.topK must be in [1, experts = " + str(ne) + "], got " + str(p_.attention.top_k));
    p_.mlp.alpha = float(number(c, prop(c, s, S, "mlpAlpha"), "spec.mlpAlpha"));
    p_.mlp.beta = float(number(c, prop(c, s, S, "mlpBeta"), "spec.mlpBeta"));
    views_.resize(size_t(ne));
    ptrs_.resize(size_t(ne));
    int64_t F = -1;
    for (int64_t e = 0; e < ne; e++) {
      const std::string en = "spec.experts[" + str(e) + "]";
      const Napi::Value x = ev.As<Napi::Array>().Get(uint32_t(e));
      if (!x.IsObject()) c.type_error(en + " must be { w1, w3, w2 }");
      const Napi::Object eo = x.As<Napi::Object>();
      WeightArg w1 = weight(c, prop(c, eo, en, "w1"), en + ".w1");
      if (F < 0) F = w1.w.rows;
      views_[size_t(e)] = ExpertView{matrix(c, w1, en + ".w1", F, hs, eo.Get("w1")),
                                     matrix(c, prop(c, eo, en, "w3"), en + ".w3", F, hs),
                                     matrix(c, prop(c, eo, en, "w2"), en + ".w2", hs, F)};
      ptrs_[size_t(e)] = &views_[size_t(e)];
    }
    p_.mlp.experts = ptrs_.data();
    p_.mlp.num_experts = ne;

    const Napi::Value lv = s.Get("lightning"), sv = s.Get("softmax");
    if (absent(lv) == absent(sv)) c.type_error("spec needs exactly one of spec.lightning and spec.softmax");
    if (!absent(lv)) {
      if (!lv.IsObject()) c.type_error("spec.lightning must be an object");
      const Napi::Object l = lv.As<Napi::Object>();
      const std::string L = "spec.lightning";
      lp_.qkv = matrix(c, prop(c, l, L, "qkv"), L + ".qkv", prod(c, {3, inner}), hs);
      lp_.gate = matrix(c, prop(c, l, L, "gate"), L + ".gate", inner, hs);
      lp_.out = matrix(c, prop(c, l, L, "out"), L + ".out", hs, inner);
      lp_.norm = vector(c, prop(c, l, L, "norm"), "spec.lightning.norm", inner, "heads*headDim");
      lp_.norm_eps = non_negative(c, prop(c, l, L, "normEps"), "spec.lightning.normEps");
      lp_.slopes = vector(c, prop(c, l, L, "slopes"), "spec.lightning.slopes", p_.attention.heads, "heads");
      lp_.block = dim(c, prop(c, l, L, "blockSize"), "spec.lightning.blockSize");
      if (lp_.block < 1 || lp_.block > 4096) c.range_error("spec.lightning.blockSize must be in [1, 4096]");
      p_.attention.lightning = &lp_;
    } else {
      if (!sv.IsObject()) c.type_error("spec.softmax must be an object");
      const Napi::Object o = sv.As<Napi::Object>();
      const std::string O = "spec.softmax";
      sp_.kv_heads = dim(c, prop(c, o, O, "kvHeads"), "spec.softmax.kvHeads");
      if (sp_.kv_heads < 1 || p_.attention.heads % sp_.kv_heads != 0)
        c.range_error("spec.softmax.kvHeads (" + str(sp_.kv_heads) + ") must be >= 1 and divide heads (" + str(p_.attention.heads) + ")");
      const int64_t row = prod(c, {sp_.kv_heads, d});
      sp_.q = matrix(c, prop(c, o, O, "q"), O + ".q", inner, hs);
      sp_.k = matrix(c, prop(c, o, O, "k"), O + ".k", row, hs);
      sp_.v = matrix(c, prop(c, o, O, "v"), O + ".v", row, hs);
      sp_.o = matrix(c, prop(c, o, O, "o"), O + ".o", hs, inner);
      sp_.rotary_dim = dim(c, prop(c, o, O, "rotaryDim"), "spec.softmax.rotaryDim");
      if (sp_.rotary_dim > d || sp_.rotary_dim % 2)
        c.range_error("spec.softmax.rotaryDim must be even and <= headDim (" + str(d) + "), got " + str(sp_.rotary_dim));
      sp_.theta = finite(c, prop(c, o, O, "theta"), "spec.softmax.theta");
      if (!(sp_.theta > 0)) c.range_error("spec.softmax.theta must be > 0");
      p_.attention.softmax = &sp_;
    }
  }

 private:
  // forward(x, n, cache, out?) → out [n, hidden]. cache: { state } (lightning, [heads, d, d], updated) or
  // { keys, values, length, position } (softmax: the n new rows are written at [length, length + n)).
  Napi::Value Forward(const CallbackInfo& info) {
    Ctx c{info.Env(), "DecoderLayer.forward"};
    Arr<float> x = f32(c, info[0], "x");
    const int64_t n = dim(c, info[1], "n");
    expect_len(c, x, prod(c, {n, p_.attention.hidden}), "n*hidden");
    Out o = out_arg(c, info[3], prod(c, {n, p_.attention.hidden}), "n*hidden");
    disjoint(c, o.a, x);
    const LayerCache cache = CacheArg(c, info[2], "cache", n, {&x, &o.a});
    if (n > 0) decoder_layer(kernels(), p_, cache, x.data, n, o.a.data);
    return o.arr;
  }

 public:
  const DecoderLayerParams& params() const { return p_; }

  // This layer's cache argument (see Forward) for n new tokens, checked against the arrays of the call.
  LayerCache CacheArg(const Ctx& c, const Napi::Value& v, const std::string& name, int64_t n,
                      std::initializer_list<const Arr<float>*> others) const {
    if (!v.IsObject()) c.type_error(name + " must be an object");
    const Napi::Object cache = v.As<Napi::Object>();
    const int64_t d = p_.attention.head_dim;
    const std::string sn = name + ".state", kn = name + ".keys", vn = name + ".values";  // outlive `states`
    LayerCache r{};
    std::vector<Arr<float>> states;
    if (p_.attention.lightning) {
      Arr<float> state = f32(c, prop(c, cache, name, "state"), sn.c_str());
      expect_len(c, state, prod(c, {p_.attention.heads, d, d}), "heads*headDim*headDim");
      r.state = state.data;
      states.push_back(state);
    } else {
      const int64_t row = prod(c, {sp_.kv_heads, d});
      r.length = dim(c, prop(c, cache, name, "length"), (name + ".length").c_str());
      r.position = dim(c, prop(c, cache, name, "position"), (name + ".position").c_str());
      if (r.position + n > INT32_MAX) c.range_error(name + ".position + n must be < 2^31");
      Arr<float> keys = f32(c, prop(c, cache, name, "keys"), kn.c_str());
      Arr<float> values = f32(c, prop(c, cache, name, "values"), vn.c_str());
      const int64_t need = prod(c, {r.length + n, row});
      for (const Arr<float>* a : {&keys, &values}) {
        if (a->len < need)
          c.range_error(std::string(a->name) + " has room for " + str(a->len / row) +
                        " rows, expected at least length + n = " + str(r.length + n));
      }
      disjoint(c, keys, values);
      r.keys = keys.data;
      r.values = values.data;
      states.insert(states.end(), {keys, values});
    }
    for (const Arr<float>& st : states) {
      for (const Arr<float>* other : others) disjoint(c, st, *other);
    }
    return r;
  }

 private:
  // a kept Float32Array of `want` elements
  const float* vector(const Ctx& c, const Napi::Value& v, const char* name, int64_t want, const char* expr) {
    Arr<float> a = f32(c, v, name);
    expect_len(c, a, want, expr);
    keep(v);
    return a.data;
  }
  // a kept weight of shape [rows, cols]
  WeightView matrix(const Ctx& c, const WeightArg& w, const std::string& name, int64_t rows, int64_t cols, const Napi::Value& v) {
    weight_shape(c, w, name, rows, cols);
    keep(v.As<Napi::Object>().Get("data"));
    return w.w;
  }
  WeightView matrix(const Ctx& c, const Napi::Value& v, const std::string& name, int64_t rows, int64_t cols) {
    return matrix(c, weight(c, v, name), name, rows, cols, v);
  }
  void keep(const Napi::Value& v) { kept_.push_back(Napi::Persistent(v.As<Napi::Object>())); }
  static double non_negative(const Ctx& c, const Napi::Value& v, const char* name) {
    const double x = finite(c, v, name);
    if (x < 0) c.range_error(std::string(name) + " must be >= 0");
    return x;
  }

  DecoderLayerParams p_{};
  LightningParams lp_{};
  SoftmaxParams sp_{};
  std::vector<ExpertView> views_;
  std::vector<const ExpertView*> ptrs_;
  std::vector<Napi::ObjectReference> kept_;
};

// The addon's per-environment data: the DecoderLayer class, to recognise its instances.
struct AddonData {
  Napi::FunctionReference decoder_layer;
};

// Decoder({ embed, norm, eps, lmHead, layers }): the whole model over DecoderLayer objects (see layer.h);
// forward(ids, caches, rows) → logits [rows, vocab] of the last `rows` positions.
class Decoder : public Napi::ObjectWrap<Decoder> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Decoder", {InstanceMethod<&Decoder::Forward>("forward")});
  }

  explicit Decoder(const CallbackInfo& info) : Napi::ObjectWrap<Decoder>(info) {
    Ctx c{info.Env(), "decoder"};
    if (!info[0].IsObject()) c.type_error("spec must be an object");
    const Napi::Object s = info[0].As<Napi::Object>();
    const Napi::Value lv = prop(c, s, "spec", "layers");
    if (!lv.IsArray()) c.type_error("spec.layers must be an array of DecoderLayer objects");
    const Napi::Array la = lv.As<Napi::Array>();
    const Napi::Function ctor = c.env.GetInstanceData<AddonData>()->decoder_layer.Value();
    for (uint32_t l = 0; l < la.Length(); l++) {
      const Napi::Value v = la.Get(l);
      if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(ctor))
        c.type_error("spec.layers[" + str(l) + "] must be a DecoderLayer");
      layers_.push_back(DecoderLayer::Unwrap(v.As<Napi::Object>()));
      params_.push_back(&layers_.back()->params());
      kept_.push_back(Napi::Persistent(v.As<Napi::Object>()));
    }
    WeightArg embed = weight(c, prop(c, s, "spec", "embed"), "spec.embed");
    const int64_t vocab = embed.w.rows, hs = embed.w.cols;
    for (size_t l = 0; l < layers_.size(); l++) {
      if (params_[l]->attention.hidden != hs)
        c.range_error("spec.layers[" + str(int64_t(l)) + "] has hidden size " + str(params_[l]->attention.hidden) +
                      ", spec.embed has " + str(hs));
    }
    WeightArg head = weight(c, prop(c, s, "spec", "lmHead"), "spec.lmHead");
    weight_shape(c, head, "spec.lmHead", vocab, hs);
    const Napi::Value nv = prop(c, s, "spec", "norm");
    Arr<float> norm = f32(c, nv, "spec.norm");
    expect_len(c, norm, hs, "hidden");
    m_.eps = finite(c, prop(c, s, "spec", "eps"), "spec.eps");
    if (m_.eps < 0) c.range_error("spec.eps must be >= 0");
    m_.embed = embed.w;
    m_.lm_head = head.w;
    m_.norm = norm.data;
    m_.layers = params_.data();
    m_.num_layers = int64_t(params_.size());
    for (const char* key : {"embed", "lmHead"}) kept_.push_back(Napi::Persistent(s.Get(key).As<Napi::Object>().Get("data").As<Napi::Object>()));
    kept_.push_back(Napi::Persistent(nv.As<Napi::Object>()));
  }

 private:
  // forward(ids, caches, rows) → logits [rows, vocab]; caches[l] as DecoderLayer.forward takes it, updated.
  Napi::Value Forward(const CallbackInfo& info) {
    Ctx c{info.Env(), "Decoder.forward"};
    Arr<int32_t> ids = i32(c, info[0], "ids");
    const int64_t n = ids.len, vocab = m_.embed.rows;
    check_ids(c, ids, vocab);
    if (!info[1].IsArray() || info[1].As<Napi::Array>().Length() != layers_.size())
      c.type_error("caches must be an array of " + str(int64_t(layers_.size())) + " layer caches");
    const Napi::Array ca = info[1].As<Napi::Array>();
    const int64_t rows = dim(c, info[2], "rows");
    if (rows > n) c.range_error("rows (" + str(rows) + ") must be <= the number of ids (" + str(n) + ")");
    std::vector<LayerCache> caches(layers_.size());
    for (uint32_t l = 0; l < layers_.size(); l++) caches[l] = layers_[l]->CacheArg(c, ca.Get(l), "caches[" + str(l) + "]", n, {});
    Napi::Float32Array logits = new_f32(c, prod(c, {rows, vocab}));
    if (n > 0) decoder_forward(kernels(), m_, ids.data, n, caches.data(), rows, rows ? logits.Data() : nullptr);
    return logits;
  }

  DecoderModel m_{};
  std::vector<DecoderLayer*> layers_;
  std::vector<const DecoderLayerParams*> params_;
  std::vector<Napi::ObjectReference> kept_;
};

Napi::Object Init(Env env, Napi::Object exports) {
  try {
    dispatch_init();
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
  exports.Set("cpuInfo", Napi::Function::New(env, CpuInfo, "cpuInfo"));
  exports.Set("fmaPeak", Napi::Function::New(env, FmaPeak, "fmaPeak"));
  exports.Set("bf16DotPeak", Napi::Function::New(env, Bf16DotPeak, "bf16DotPeak"));
  exports.Set("readAll", Napi::Function::New(env, ReadAll, "readAll"));
  exports.Set("copy", Napi::Function::New(env, Copy, "copy"));
  exports.Set("empty", Napi::Function::New(env, Empty, "empty"));
  exports.Set("alignedBuffer", Napi::Function::New(env, AlignedBuffer, "alignedBuffer"));
  exports.Set("memoryStats", Napi::Function::New(env, MemoryStats, "memoryStats"));
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
  Napi::Function layer = DecoderLayer::Define(env);
  env.SetInstanceData(new AddonData{Napi::Persistent(layer)});
  exports.Set("DecoderLayer", layer);
  exports.Set("Decoder", Decoder::Define(env));
  exports.Set("builtWithAvx512Bf16", Napi::Boolean::New(env, built_with_avx512bf16()));
  return exports;
}

}  // namespace
}  // namespace m1

static Napi::Object InitM1(Napi::Env env, Napi::Object exports) { return m1::Init(env, exports); }

NODE_API_MODULE(m1native, InitM1)
