// Persistent thread pool. parallel_for splits [0, n) into ranges taken dynamically by the workers and the
// calling thread (guided: each claim takes a share of what is left, at least the grain). Nested calls (from
// inside a range) and calls that find the pool busy (another JS thread) run inline on the caller.
#pragma once
#include <stdint.h>

#include <type_traits>

namespace m1 {

int num_threads();
// n >= 1 (total threads including the caller)
void set_num_threads(int n);

// While it lives, every parallel_for on this thread runs inline: a pass run on a thread of its own (beside other
// such passes, one per core) stays on that one thread.
class InlineScope {
 public:
  InlineScope();
  ~InlineScope();
  InlineScope(const InlineScope&) = delete;
  InlineScope& operator=(const InlineScope&) = delete;

 private:
  bool was_;
};

using RangeFn = void (*)(void* ctx, int64_t lo, int64_t hi);

// When the caller's next job comes, which decides what the workers do once this one is done. kSoon: they wait for it
// spinning, then yielding, then asleep (the ops of one forward pass follow each other within microseconds, and waking
// a thread would cost more than the op). kFar: they go to sleep at once (the job was a whole pass and the next one is
// a round trip through JavaScript away: a spinning worker would take a core from the JavaScript thread and from the
// other processes until then).
enum class NextJob { kSoon, kFar };

// The workers go to sleep now, as after a job whose next one is far: called after a pass of many jobs (a forward
// pass from JavaScript) whose last one was followed by kSoon's wait.
void rest_workers();

// grain: minimum items per chunk
void parallel_for_impl(int64_t n, int64_t grain, RangeFn fn, void* ctx, NextJob next);

template <class F>
inline void parallel_for(int64_t n, int64_t grain, F&& f, NextJob next = NextJob::kSoon) {
  if (n <= 0) return;
  using Fn = std::remove_reference_t<F>;
  parallel_for_impl(n, grain, [](void* c, int64_t lo, int64_t hi) { (*static_cast<Fn*>(c))(lo, hi); },
                    const_cast<void*>(static_cast<const void*>(&f)), next);
}

}  // namespace m1
