// Argument checks of the N-API bindings (ops.cc, sampling.cc, decoder.cc): every argument is validated here (types, lengths
// vs dimensions, overlaps) so that no kernel reads or writes out of bounds, even when the addon is called directly.
// This is the one layer of argument validation: native/index.ts hands its arguments straight through. Each error
// names the function and the argument ("matmul: x has 3 elements, expected n*cols = 8").
#pragma once
#include <napi.h>

#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <string>
#include <vector>

#include "kernels.h"
#include "moe.h"

namespace m1 {
namespace args {

using Napi::CallbackInfo;
using Napi::Env;
using Napi::Value;

// The function being called, for error messages prefixed with its name.
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

inline std::string str(int64_t v) { return std::to_string(v); }

// ------------------------------------------------------------------ arrays
// A typed array argument: its elements and its name (for messages).
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
    c.type_error(std::string(name) + (std::strchr("AEIOU", tname[0]) ? " must be an " : " must be a ") + tname);
  Arr<T> a;
  a.len = int64_t(length);
  a.data = a.len ? static_cast<T*>(data) : nullptr;  // data already includes the byte offset
  a.name = name;
  return a;
}

Arr<float> f32(const Ctx& c, const Value& v, const char* name);
Arr<int32_t> i32(const Ctx& c, const Value& v, const char* name);
inline bool absent(const Value& v) { return v.IsUndefined() || v.IsNull(); }

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

// N-API wraps external memory in a node::Buffer, which holds at most 2^32 bytes (buffer.constants.MAX_LENGTH). Past
// that, napi_create_external_arraybuffer runs the finalizer and fails, and node-addon-api then deletes its finalize
// data a second time (a double free). Larger blocks are therefore allocated by V8, never wrapped.
constexpr size_t kMaxExternalBytes = size_t(1) << 32;

// A V8-allocated ArrayBuffer (zero-filled), with allocation failure as a RangeError naming the size.
Napi::ArrayBuffer v8_buffer(const Ctx& c, size_t bytes);

// A new Float32Array of len elements (at most 2^32, else a RangeError). Those from 64 KiB to 4 GiB come from the
// recycling pool (pool.h) with undefined contents: every kernel writes all of its output.
Napi::Float32Array new_f32(const Ctx& c, int64_t len);

// out: the given Float32Array (exact length) or a new one
// out: the given Float32Array (exact length) or a new one
struct Out {
  Napi::Float32Array arr;
  Arr<float> a;
};
Out out_arg(const Ctx& c, const Value& v, int64_t want, const char* expr, const char* name = "out");
// several outputs returned as one JS array, in order
Napi::Array outputs(const Ctx& c, std::initializer_list<const Out*> outs);

// ------------------------------------------------------------------ numbers
double number(const Ctx& c, const Value& v, const char* name);
double finite(const Ctx& c, const Value& v, const char* name);
// a non-negative integer up to 2^40
int64_t dim(const Ctx& c, const Value& v, const char* name);
// the product of dimensions, refused above 2^53
int64_t prod(const Ctx& c, std::initializer_list<int64_t> xs);

// ------------------------------------------------------------------ objects and weights
// o[key], which must be present ("obj.key is missing")
Napi::Value prop(const Ctx& c, const Napi::Object& o, const char* obj, const char* key);
inline Napi::Value prop(const Ctx& c, const Napi::Object& o, const std::string& obj, const char* key) {
  return prop(c, o, obj.c_str(), key);
}

// An argument's name for messages, written in place ("caches[3][7]", "cache.state"): checks that run for every
// sequence and layer of every decode step build no string unless one fails. Longer names are cut at 63 characters.
struct Name {
  char s[64];
  Name(const char* base, const char* suffix);
  Name(const char* base, int64_t index);  // base[index]
  operator const char*() const { return s; }
};

struct WeightArg {
  WeightView w;
  Arr<const char> bytes;  // for overlap checks
};
// A Weight { dtype, data, shape } of any shape
WeightArg weight(const Ctx& c, const Value& v, const std::string& name);
// The weight must have shape [rows, cols]
void weight_shape(const Ctx& c, const WeightArg& w, const std::string& name, int64_t rows, int64_t cols);

// Every id in [0, vocab)
void check_ids(const Ctx& c, const Arr<int32_t>& ids, int64_t vocab);

// routerTopk(logits, n, experts, k, idx, weights) and its backward (weights: the chosen experts' weights or their
// gradient): the shapes checked once for both
struct RouterArgs {
  Arr<float> logits;
  int64_t n, e, k;
  Arr<int32_t> idx;
  Arr<float> w;
};
RouterArgs router_args(const Ctx& c, const CallbackInfo& info, const char* weights_name);

// The leading arguments of moe and moeBackward: x [n, hidden], idx and weights [n, k], lengths checked.
struct MoeArgs {
  Arr<float> x;
  int64_t n, hidden;
  Arr<int32_t> idx;
  Arr<float> w;
  int64_t k;
};
MoeArgs moe_args(const Ctx& c, const CallbackInfo& info);

// The experts array of moeExperts/moe/moeBackward: views of every routed expert (validated, all of one
// intermediate size), null for the others; the given outputs must not overlap any expert's weights.
struct Experts {
  std::vector<ExpertView> views;
  std::vector<const ExpertView*> ptrs;
};
Experts experts_arg(const Ctx& c, const Value& v, const Arr<int32_t>& idx, int64_t hidden,
                    std::initializer_list<const Arr<float>*> outs);
// the intermediate size of the routed experts; 0 when none is routed
int64_t routed_intermediate(const Experts& ex);

}  // namespace args
}  // namespace m1
