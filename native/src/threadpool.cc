#include "threadpool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__) || defined(_M_IX86)
#include <immintrin.h>
#define M1_PAUSE() _mm_pause()
#elif defined(__aarch64__)
#define M1_PAUSE() __asm__ __volatile__("yield")
#else
#define M1_PAUSE() ((void)0)
#endif

namespace m1 {
namespace {

thread_local bool tl_in_pool = false;

constexpr int kSpin = 4000;  // pause iterations of the caller before it yields its time slice
// After a job whose next one comes soon, a worker waits for it spinning (kWorkerSpin), then yielding its time slice
// (until kWorkerYield: other threads run if the cores are oversubscribed), then asleep. The first two cover the
// JavaScript between two ops of a forward pass, so a decode step (many small ops) never waits for a thread to wake.
// After a job whose next one is far, it sleeps at once.
constexpr auto kWorkerSpin = std::chrono::microseconds(100);
constexpr auto kWorkerYield = std::chrono::microseconds(2000);

struct Job {
  RangeFn fn;
  void* ctx;
  int64_t n, grain, divisor;
  uint32_t gen;
  NextJob next;
};

// next_ packs the generation of the job (high bits) with the start of the next unclaimed range (low bits), so
// a worker still holding an older job claims nothing from a newer one.
constexpr int kStartBits = 40;  // ranges up to 2^40 items (the addon's largest dimension)
constexpr uint64_t kStartMask = (uint64_t(1) << kStartBits) - 1;
constexpr uint32_t kGenMask = (uint32_t(1) << (64 - kStartBits)) - 1;

class Pool {
 public:
  explicit Pool(int n) { start(n); }
  int size() const { return nthreads_; }

  void resize(int n) {
    std::lock_guard<std::mutex> run(run_mu_);
    stop();
    start(n);
  }

  void run(int64_t n, int64_t grain, RangeFn fn, void* ctx, NextJob next) {
    if (grain < 1) grain = 1;
    if (n <= grain) return fn(ctx, 0, n);
    std::unique_lock<std::mutex> run(run_mu_, std::try_to_lock);
    if (!run.owns_lock() || nthreads_ <= 1) return fn(ctx, 0, n);

    const Job job = publish(fn, ctx, n, grain, next);
    tl_in_pool = true;
    work(job);
    tl_in_pool = false;
    for (int spins = 0; remaining_.load(std::memory_order_acquire) != 0; spins++) {
      if (spins < kSpin) M1_PAUSE();
      else std::this_thread::yield();
    }
  }

  // An empty job whose next one is far: the workers take it and sleep.
  void rest() {
    std::unique_lock<std::mutex> run(run_mu_, std::try_to_lock);
    if (run.owns_lock() && nthreads_ > 1) publish(nullptr, nullptr, 0, 1, NextJob::kFar);
  }

 private:
  Job publish(RangeFn fn, void* ctx, int64_t n, int64_t grain, NextJob next) {
    Job job;
    job.fn = fn;
    job.ctx = ctx;
    job.n = n;
    job.grain = grain;
    job.divisor = int64_t(nthreads_) * 2;
    job.next = next;
    {
      std::lock_guard<std::mutex> lk(mu_);
      job.gen = (gen_.load(std::memory_order_relaxed) + 1) & kGenMask;
      job_ = job;
      remaining_.store(n, std::memory_order_relaxed);
      next_.store(uint64_t(job.gen) << kStartBits, std::memory_order_relaxed);
      gen_.store(job.gen, std::memory_order_release);
    }
    cv_.notify_all();
    return job;
  }

  void start(int n) {
    nthreads_ = n < 1 ? 1 : n;
    quit_.store(false);
    for (int i = 1; i < nthreads_; i++) workers_.emplace_back([this] { loop(); });
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      quit_.store(true);
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
  }

  void loop() {
    uint32_t seen;
    {
      std::lock_guard<std::mutex> lk(mu_);
      seen = gen_.load();
    }
    NextJob next = NextJob::kSoon;
    for (;;) {
      const auto t0 = std::chrono::steady_clock::now();
      bool yielding = false;
      for (int i = 1; next == NextJob::kSoon && gen_.load(std::memory_order_acquire) == seen &&
                      !quit_.load(std::memory_order_relaxed);
           i++) {
        if (i % 64 == 0) {
          const auto waited = std::chrono::steady_clock::now() - t0;
          if (waited > kWorkerYield) break;
          yielding = waited > kWorkerSpin;
        }
        if (yielding) std::this_thread::yield();
        else M1_PAUSE();
      }
      Job job;
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return quit_.load() || gen_.load() != seen; });
        if (quit_.load()) return;
        job = job_;
        seen = job.gen;
      }
      next = job.next;
      tl_in_pool = true;
      work(job);
      tl_in_pool = false;
    }
  }

  // Claims ranges of job.gen until none is left; a stale job claims nothing. Guided self-scheduling: each claim
  // takes a share of what is left (remaining / (2 · threads), at least the grain), so the ranges shrink towards
  // the end and no thread waits long for another's last range (decode GEMVs are memory-bound: a large last
  // range would leave half the bandwidth idle).
  void work(const Job& job) {
    for (;;) {
      uint64_t cur = next_.load(std::memory_order_relaxed);
      int64_t lo, hi;
      for (;;) {
        lo = int64_t(cur & kStartMask);
        if (uint32_t(cur >> kStartBits) != job.gen || lo >= job.n) return;
        const int64_t left = job.n - lo;
        const int64_t size = std::min(left, std::max(job.grain, (left + job.divisor - 1) / job.divisor));
        hi = lo + size;
        if (next_.compare_exchange_weak(cur, (uint64_t(job.gen) << kStartBits) | uint64_t(hi), std::memory_order_acq_rel))
          break;
      }
      job.fn(job.ctx, lo, hi);
      remaining_.fetch_sub(hi - lo, std::memory_order_acq_rel);
    }
  }

  int nthreads_ = 1;
  std::vector<std::thread> workers_;
  std::mutex run_mu_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<bool> quit_{false};
  std::atomic<uint32_t> gen_{0};
  Job job_{};
  std::atomic<uint64_t> next_{0};
  std::atomic<int64_t> remaining_{0};
};

int default_threads() {
  unsigned hc = std::thread::hardware_concurrency();
  return hc == 0 ? 1 : int(hc);
}

// Made on first use (a function-local static: no lock once made, where a mutex taken by every op of every pass made
// the threads of side-by-side passes contend), intentionally leaked: no teardown at process exit.
Pool& pool() {
  static Pool* const p = new Pool(default_threads());
  return *p;
}

}  // namespace

InlineScope::InlineScope() : was_(tl_in_pool) { tl_in_pool = true; }
InlineScope::~InlineScope() { tl_in_pool = was_; }

int num_threads() { return pool().size(); }

void set_num_threads(int n) {
  Pool& p = pool();
  if (p.size() != n) p.resize(n);
}

void rest_workers() {
  if (!tl_in_pool) pool().rest();
}

void parallel_for_impl(int64_t n, int64_t grain, RangeFn fn, void* ctx, NextJob next) {
  if (n <= 0) return;
  if (tl_in_pool) return fn(ctx, 0, n);  // nested, or in an InlineScope
  pool().run(n, grain, fn, ctx, next);
}

}  // namespace m1
