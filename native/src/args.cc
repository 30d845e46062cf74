// Argument checks of the N-API bindings (see args.h).
#include "args.h"

#include <charconv>
#include <cmath>

#include "pool.h"

namespace m1 {
namespace args {

Arr<float> f32(const Ctx& c, const Value& v, const char* name) {
  return typed<float>(c, v, name, napi_float32_array, "Float32Array");
}
Arr<int32_t> i32(const Ctx& c, const Value& v, const char* name) {
  return typed<int32_t>(c, v, name, napi_int32_array, "Int32Array");
}

// The longest Float32Array V8 makes (2^32 elements on Node 20): asking N-API for a longer one is a fatal V8 check.
constexpr int64_t kMaxArrayLength = int64_t(1) << 32;

Napi::ArrayBuffer v8_buffer(const Ctx& c, size_t bytes) {
  try {
    return Napi::ArrayBuffer::New(c.env, bytes);
  } catch (const Napi::Error&) {
    c.range_error("out of memory allocating " + str(int64_t(bytes)) + " bytes");
  }
}

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

Out out_arg(const Ctx& c, const Value& v, int64_t want, const char* expr, const char* name) {
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

Napi::Value prop(const Ctx& c, const Napi::Object& o, const char* obj, const char* key) {
  const Value v = o.Get(key);
  if (v.IsUndefined()) c.type_error(std::string(obj) + "." + key + " is missing");
  return v;
}

// Written by hand: snprintf was a third of the checks of a decode step (two names per sequence and layer).
namespace {
char* append(char* at, const char* end, const char* text) {
  while (*text && at < end) *at++ = *text++;
  return at;
}
}  // namespace

Name::Name(const char* base, const char* suffix) {
  char* const end = s + sizeof s - 1;
  *append(append(s, end, base), end, suffix) = 0;
}
Name::Name(const char* base, int64_t index) {
  char digits[24];
  const std::to_chars_result r = std::to_chars(digits, digits + sizeof digits - 1, index);
  *r.ptr = 0;
  char* const end = s + sizeof s - 1;
  *append(append(append(append(s, end, base), end, "["), end, digits), end, "]") = 0;
}

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

void weight_shape(const Ctx& c, const WeightArg& w, const std::string& name, int64_t rows, int64_t cols) {
  if (w.w.rows != rows || w.w.cols != cols)
    c.range_error(name + " has shape [" + str(w.w.rows) + ", " + str(w.w.cols) + "], expected [" + str(rows) + ", " +
                  str(cols) + "]");
}

void check_ids(const Ctx& c, const Arr<int32_t>& ids, int64_t vocab) {
  for (int64_t i = 0; i < ids.len; i++) {
    if (ids.data[i] < 0 || ids.data[i] >= vocab)
      c.range_error("ids[" + str(i) + "] = " + str(ids.data[i]) + " is outside the vocabulary [0, " + str(vocab) + ")");
  }
}

Experts experts_arg(const Ctx& c, const Value& v, const Arr<int32_t>& idx, int64_t hidden,
                    std::initializer_list<const Arr<float>*> outs) {
  if (!v.IsArray()) c.type_error("experts must be an array of { w1, w3, w2 } (or null for unused experts)");
  Napi::Array arr = v.As<Napi::Array>();
  const int64_t ne = int64_t(arr.Length());
  Experts r;
  r.views.resize(size_t(ne));
  r.ptrs.assign(size_t(ne), nullptr);
  int64_t F = -1;  // every routed expert must have the same intermediate size
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
      c.range_error(en + " has intermediate size " + str(f) + ", other routed experts have " + str(F) + " (all must match)");
    F = f;
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

int64_t routed_intermediate(const Experts& ex) {
  for (const ExpertView* e : ex.ptrs)
    if (e) return e->w1.rows;
  return 0;
}

Napi::Array outputs(const Ctx& c, std::initializer_list<const Out*> outs) {
  Napi::Array r = Napi::Array::New(c.env, outs.size());
  uint32_t i = 0;
  for (const Out* o : outs) r.Set(i++, o->arr);
  return r;
}

RouterArgs router_args(const Ctx& c, const CallbackInfo& info, const char* weights_name) {
  RouterArgs a{f32(c, info[0], "logits"), dim(c, info[1], "n"), dim(c, info[2], "experts"), dim(c, info[3], "k"),
               i32(c, info[4], "idx"), f32(c, info[5], weights_name)};
  if (a.e < 1 || a.e > INT32_MAX) c.range_error("experts must be in [1, 2^31), got " + str(a.e));
  if (a.k < 1 || a.k > a.e) c.range_error("k must be in [1, experts = " + str(a.e) + "], got " + str(a.k));
  expect_len(c, a.logits, prod(c, {a.n, a.e}), "n*experts");
  expect_len(c, a.idx, prod(c, {a.n, a.k}), "n*k");
  expect_len(c, a.w, prod(c, {a.n, a.k}), "n*k");
  return a;
}

MoeArgs moe_args(const Ctx& c, const CallbackInfo& info) {
  MoeArgs a{f32(c, info[0], "x"), dim(c, info[1], "n"), dim(c, info[2], "hidden"),
            i32(c, info[3], "idx"), f32(c, info[4], "weights"), dim(c, info[5], "k")};
  expect_len(c, a.x, prod(c, {a.n, a.hidden}), "n*hidden");
  expect_len(c, a.idx, prod(c, {a.n, a.k}), "n*k");
  expect_len(c, a.w, prod(c, {a.n, a.k}), "n*k");
  return a;
}

}  // namespace args
}  // namespace m1
