#include "pool.h"

#include <stdlib.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#if defined(__linux__)
#include <sys/mman.h>
#endif

#include <map>
#include <mutex>

namespace m1 {
namespace {

constexpr size_t kHugePage = size_t(2) << 20;

std::mutex g_mu;
std::multimap<size_t, void*> g_free;  // capacity → block
int64_t g_live = 0, g_free_bytes = 0, g_reused = 0, g_fresh = 0;
int64_t g_limit = int64_t(1) << 30;

void trim_locked(int64_t limit) {
  // drop the largest blocks first: they are the ones least likely to fit the next request exactly
  while (g_free_bytes > limit && !g_free.empty()) {
    auto it = std::prev(g_free.end());
    g_free_bytes -= int64_t(it->first);
    free(it->second);
    g_free.erase(it);
  }
}

}  // namespace

void* pool_take(size_t bytes, size_t* capacity) {
  std::lock_guard<std::mutex> lk(g_mu);
  // the smallest kept block that fits, unless it would waste more than a quarter of itself
  auto it = g_free.lower_bound(bytes);
  if (it != g_free.end() && it->first - bytes <= it->first / 4) {
    void* p = it->second;
    *capacity = it->first;
    g_free_bytes -= int64_t(it->first);
    g_free.erase(it);
    g_live += int64_t(*capacity);
    g_reused++;
    return p;
  }
  const size_t cap = (bytes + 4095) & ~size_t(4095);
  // blocks of a huge page or more start on one and ask for huge pages: a first touch then faults once per 2 MiB,
  // not once per 4 KiB (the kernel's per-fault cost is most of what filling a fresh block costs)
  const size_t align = cap >= kHugePage ? kHugePage : 64;
  void* p = nullptr;
  if (posix_memalign(&p, align, cap) != 0) {
    trim_locked(0);  // retry with nothing kept
    if (posix_memalign(&p, align, cap) != 0) return nullptr;
  }
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (align == kHugePage) madvise(p, cap, MADV_HUGEPAGE);  // advice only: without transparent huge pages, 4 KiB pages
#endif
  *capacity = cap;
  g_live += int64_t(cap);
  g_fresh++;
  return p;
}

void pool_give(void* p, size_t capacity) {
  std::lock_guard<std::mutex> lk(g_mu);
  g_live -= int64_t(capacity);
  if (int64_t(capacity) > g_limit) {
    free(p);
    return;
  }
  g_free.emplace(capacity, p);
  g_free_bytes += int64_t(capacity);
  trim_locked(g_limit);
}

PoolStats pool_stats() {
  std::lock_guard<std::mutex> lk(g_mu);
  return {g_live, g_free_bytes, g_limit, g_reused, g_fresh};
}

void pool_release() {
  std::lock_guard<std::mutex> lk(g_mu);
  trim_locked(0);
#if defined(__GLIBC__)
  malloc_trim(0);  // and the free memory glibc keeps in its heaps
#endif
}

}  // namespace m1
