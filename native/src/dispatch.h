// Runtime ISA selection: kernels are built for scalar, AVX2+FMA+F16C and AVX-512 (F/BW/VL/DQ) and the
// best one this CPU supports is chosen at load (override: M1_ISA env var or setIsa()).
#pragma once
#include <stdint.h>

#include <string>
#include <vector>

#include "kernels.h"

namespace m1 {

// Reads M1_ISA and M1_THREADS; throws std::runtime_error with a clear message on bad values.
void dispatch_init();
const KernelTable& kernels();
// ISAs that are both compiled in and supported by this CPU, in order scalar, avx2, avx512.
std::vector<std::string> supported_isas();
std::string current_isa();
bool cpu_has_avx512bf16();
bool built_with_avx512bf16();
// Bytes of the last-level cache one core reaches (Linux's sysfs for cpu0, else sysconf); 0 where neither says.
int64_t last_level_cache_bytes();
// Throws std::invalid_argument (unknown name) or std::runtime_error (unsupported here).
void set_isa(const std::string& name);

}  // namespace m1
