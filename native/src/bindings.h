// The parts of the addon's exports: op bindings (ops.cc), backward op bindings (backward_ops.cc), token sampling
// (sampling.cc) and decoder objects (decoder.cc).
#pragma once
#include <napi.h>

namespace m1 {

void define_ops(Napi::Env env, Napi::Object exports);
void define_backward_ops(Napi::Env env, Napi::Object exports);
void define_sampling(Napi::Env env, Napi::Object exports);
void define_decoder(Napi::Env env, Napi::Object exports);

}  // namespace m1
