// A growable, 64-byte aligned float buffer that keeps its memory between calls (no page faults, no zero
// fill): the scratch of the multi-kernel ops (MoE, decoder layer), one per thread and purpose.
#pragma once
#include <stdint.h>
#include <stdlib.h>

namespace m1 {

struct Buf {
  float* p = nullptr;
  size_t cap = 0;
  float* get(int64_t n) {
    if (size_t(n) > cap) {
      free(p);
      p = nullptr;
      cap = 0;
      if (posix_memalign(reinterpret_cast<void**>(&p), 64, size_t(n) * 4) != 0) abort();
      cap = size_t(n);
    }
    return p;
  }
  Buf() = default;
  Buf(const Buf&) = delete;
  Buf& operator=(const Buf&) = delete;
  ~Buf() { free(p); }
};

}  // namespace m1
