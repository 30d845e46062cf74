// Recycling allocator for the large arrays the addon returns to JavaScript. A fresh multi-megabyte
// array costs a page fault per 4 KiB on first touch (slower than the GEMM that fills it); blocks
// freed by the garbage collector are kept and handed out again, already mapped.
#pragma once
#include <stddef.h>
#include <stdint.h>

namespace m1 {

// Blocks of at least this many bytes are pooled; smaller arrays are left to V8's allocator (which zero-fills
// them: for a training pass's activations of a few hundred KiB each, that memset and the garbage collector's
// work cost more than the pool's bookkeeping).
constexpr size_t kPoolMinBytes = size_t(1) << 16;

// A 64-byte aligned block of at least `bytes` (contents undefined); *capacity receives its size.
void* pool_take(size_t bytes, size_t* capacity);
// Returns a block from pool_take; it is kept for reuse while the free blocks total at most the limit.
void pool_give(void* p, size_t capacity);

struct PoolStats {
  int64_t live_bytes;  // handed out, not yet returned
  int64_t free_bytes;  // kept for reuse
  int64_t limit_bytes;
  int64_t reused;      // takes served from the free blocks
  int64_t fresh;       // takes that allocated
};
PoolStats pool_stats();
// Frees every kept block (and, with glibc, returns the allocator's free heap memory to the system).
void pool_release();

}  // namespace m1
