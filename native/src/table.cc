// The kernel table of this ISA build (field order as in KernelTable).
#include "simd.h"

namespace m1 {
namespace M1_NS {

static const KernelTable kTable = {
#if defined(M1_ISA_AVX512)
    "avx512",
#elif defined(M1_ISA_AVX2)
    "avx2",
#else
    "scalar",
#endif
    matmul,
    rmsnorm,
    silu,
    sigmoid,
    swiglu,
    mul,
    axpby,
    embedding,
    rope,
    lightning_prefill,
    lightning_step,
    attention,
    router_topk,
    weighted_sum,
};

const KernelTable* kernels() { return &kTable; }

}  // namespace M1_NS
}  // namespace m1
