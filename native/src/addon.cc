// The m1native addon: selects the kernels for this CPU (dispatch.h), then exports the op bindings (ops.cc), the
// backward op bindings (backward_ops.cc), token sampling (sampling.cc) and the decoder objects (decoder.cc).
// Argument checks: args.h.
#include <napi.h>

#include <exception>

#include "bindings.h"
#include "dispatch.h"

namespace m1 {
namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  try {
    dispatch_init();
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
  define_ops(env, exports);
  define_backward_ops(env, exports);
  define_sampling(env, exports);
  define_decoder(env, exports);
  exports.Set("builtWithAvx512Bf16", Napi::Boolean::New(env, built_with_avx512bf16()));
  return exports;
}

}  // namespace
}  // namespace m1

static Napi::Object InitM1(Napi::Env env, Napi::Object exports) { return m1::Init(env, exports); }

NODE_API_MODULE(m1native, InitM1)
