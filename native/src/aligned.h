// Memory for weights: aligned to a cache line (decode GEMVs stream weights fastest from aligned rows), to
// 2 MiB with transparent huge pages requested from 2 MiB on. Contents undefined; release with free().
#pragma once
#include <stddef.h>
#include <stdlib.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace m1 {

inline void* weight_alloc(size_t bytes) {
  constexpr size_t kHuge = size_t(2) << 20;
  const size_t align = bytes >= kHuge ? kHuge : 64;
  void* p = nullptr;
  if (posix_memalign(&p, align, bytes < 64 ? 64 : bytes) != 0) return nullptr;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (align == kHuge) madvise(p, bytes & ~(kHuge - 1), MADV_HUGEPAGE);  // a hint; failure is harmless
#endif
  return p;
}

}  // namespace m1
