#include "dispatch.h"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <stdexcept>

#include "threadpool.h"

#if defined(M1_HAVE_AVX2) || defined(M1_HAVE_AVX512)
#include <cpuid.h>
#define M1_X86_DISPATCH 1
#endif

namespace m1 {
namespace {

struct Features {
  bool avx2 = false;    // AVX2 + FMA + F16C, OS-enabled YMM state
  bool avx512 = false;  // AVX-512 F/BW/VL/DQ, OS-enabled ZMM state
  bool avx512bf16 = false;
};

Features detect() {
  Features f;
#ifdef M1_X86_DISPATCH
  __builtin_cpu_init();
  unsigned a, b, c, d;
  bool f16c = false;
  if (__get_cpuid(1, &a, &b, &c, &d)) f16c = (c >> 29) & 1u;
  f.avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c;
  f.avx512 = f.avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  if (f.avx512 && __get_cpuid_count(7, 1, &a, &b, &c, &d)) f.avx512bf16 = (a >> 5) & 1u;
#endif
  return f;
}

const Features& features() {
  static const Features f = detect();
  return f;
}

const KernelTable* table_for(const std::string& name) {
  if (name == "scalar") return scalar::kernels();
#ifdef M1_HAVE_AVX2
  if (name == "avx2" && features().avx2) return avx2::kernels();
#endif
#ifdef M1_HAVE_AVX512
  if (name == "avx512" && features().avx512) return avx512::kernels();
#endif
  return nullptr;
}

std::string joined_supported() {
  std::string s;
  for (const auto& n : supported_isas()) s += (s.empty() ? "" : ", ") + n;
  return s;
}

std::atomic<const KernelTable*> g_table{nullptr};

const KernelTable* best() {
  const auto isas = supported_isas();
  return table_for(isas.back());
}

}  // namespace

std::vector<std::string> supported_isas() {
  std::vector<std::string> v{"scalar"};
#ifdef M1_HAVE_AVX2
  if (features().avx2) v.push_back("avx2");
#endif
#ifdef M1_HAVE_AVX512
  if (features().avx512) v.push_back("avx512");
#endif
  return v;
}

bool cpu_has_avx512bf16() { return features().avx512bf16; }

int64_t last_level_cache_bytes() {
  static const int64_t bytes = [] {
    // sysfs gives the cache that cpu0 shares with its neighbours (a CCX's L3 on AMD), where sysconf may give the
    // whole package's
    int64_t best_level = 0, best = 0;
    for (int i = 0; i < 16; i++) {
      const std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(i) + "/";
      std::ifstream level_file(dir + "level"), size_file(dir + "size"), type_file(dir + "type");
      int64_t level = 0, size = 0;
      std::string unit, type;
      if (!(level_file >> level) || !(size_file >> size) || !(type_file >> type) || type == "Instruction") continue;
      size_file >> unit;  // "32768K": the unit follows the number
      if (!unit.empty()) size <<= unit[0] == 'K' ? 10 : unit[0] == 'M' ? 20 : unit[0] == 'G' ? 30 : 0;
      if (level > best_level) best_level = level, best = size;
    }
    if (best > 0) return best;
    const long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE), l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
    return int64_t(l3 > 0 ? l3 : l2 > 0 ? l2 : 0);
  }();
  return bytes;
}

bool built_with_avx512bf16() {
#ifdef M1_HAVE_AVX512BF16
  return true;
#else
  return false;
#endif
}

void set_isa(const std::string& name) {
  if (name != "scalar" && name != "avx2" && name != "avx512")
    throw std::invalid_argument("unknown ISA \"" + name + "\" (expected scalar, avx2 or avx512)");
  const KernelTable* t = table_for(name);
  if (!t)
    throw std::runtime_error("ISA \"" + name + "\" is not supported by this CPU or build (supported: " +
                             joined_supported() + ")");
  g_table.store(t);
}

const KernelTable& kernels() {
  const KernelTable* t = g_table.load(std::memory_order_acquire);
  if (!t) {
    t = best();
    g_table.store(t);
  }
  return *t;
}

std::string current_isa() { return kernels().name; }

void dispatch_init() {
  if (!g_table.load()) g_table.store(best());
  if (const char* e = std::getenv("M1_ISA")) {
    if (*e) {
      try {
        set_isa(e);
      } catch (const std::exception& ex) {
        throw std::runtime_error(std::string("m1native: M1_ISA=") + e + ": " + ex.what());
      }
    }
  }
  if (const char* e = std::getenv("M1_THREADS")) {
    if (*e) {
      char* end = nullptr;
      const long n = std::strtol(e, &end, 10);
      if (*end != '\0' || n < 1 || n > 1024)
        throw std::runtime_error(std::string("m1native: M1_THREADS=") + e +
                                 " is not a thread count (expected an integer in [1, 1024])");
      set_num_threads(int(n));
    }
  }
}

}  // namespace m1
