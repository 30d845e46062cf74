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
    matmul_cols,
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
    split_qkv,
    attention,
    router_topk,
    weighted_sum,
    attention_lse,
    matmul_dx,
    matmul_dw,
    rmsnorm_backward,
    silu_backward,
    sigmoid_backward,
    swiglu_backward,
    embedding_backward,
    router_topk_backward,
    cross_entropy,
    lightning_backward,
    attention_backward,
    fma_peak,
    bf16_dot_peak,
    read_sum,
    copy,
    adamw,
    sum_squares,
};

const KernelTable* kernels() { return &kTable; }

}  // namespace M1_NS
}  // namespace m1
