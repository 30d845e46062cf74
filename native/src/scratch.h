// The per-thread scratch slots (scratch(slot, floats) in simd.h: one growing, 64-byte aligned buffer per slot and
// thread). A function may hold a slot only while nothing it calls on the same thread uses that slot; the names say
// which function owns each use, and the asserts below write down the calls that share a thread.
#pragma once

namespace m1 {
namespace slot {

constexpr int kCount = 8;

// gemm.cc
constexpr int kMatmulPack = 0;     // matmul: a block of weight columns packed for the micro-kernel
constexpr int kGemmPanel = 1;      // gemm_nn: a transposed micro-panel of B
constexpr int kPanelRow = 1;       // pack_panel_t (inside matmul): one weight row converted to f32
constexpr int kMatmulXt = 2;       // xt_path: x transposed, filled by the caller and read by every pool thread
constexpr int kMatmulRows = 3;     // xt_path: 16-bit weight rows converted to f32

// attention.cc (calls gemm_nn)
constexpr int kAttnKeysT = 2;      // attention_prefill: keys transposed per tile, read by every pool thread
constexpr int kAttnParts = 2;      // attention_decode: the partial results of every key split, read by the merge
constexpr int kAttnQuery = 3;      // attend, decode_range: the block of queries, pre-scaled
constexpr int kAttnOut = 4;        // attention_prefill: the output block being accumulated
constexpr int kAttnScores = 5;     // attend, decode_range: scores, then probabilities, of one key block
constexpr int kAttnStats = 6;      // attention_prefill: running max and sum of each query row
constexpr int kProbsKeysT = 6;     // attention_probs: one key block transposed

// lightning.cc (calls gemm_nn)
constexpr int kLightningKeysT = 3;   // block: the block's keys transposed (then decayed for the state update)
constexpr int kLightningScores = 4;  // block: the decayed q·k products within the block
constexpr int kLightningDecay = 5;   // lightning_prefill: λ_h^i for i = 0..block size, per head

// elementwise.cc (call nothing that uses scratch)
constexpr int kRopeAngles = 3;     // rope: cos and sin of one position
constexpr int kRouterProbs = 3;    // router_topk: one row's probabilities

// gemm_nn runs inside attention and lightning, pack_panel_t inside matmul.
static_assert(kGemmPanel != kAttnQuery && kGemmPanel != kAttnScores && kGemmPanel != kAttnOut &&
                  kGemmPanel != kAttnStats && kGemmPanel != kAttnKeysT && kGemmPanel != kAttnParts &&
                  kGemmPanel != kProbsKeysT,
              "attention holds its slots while gemm_nn runs");
static_assert(kGemmPanel != kLightningKeysT && kGemmPanel != kLightningScores && kGemmPanel != kLightningDecay,
              "lightning holds its slots while gemm_nn runs");
static_assert(kPanelRow != kMatmulPack, "matmul holds its packed block while pack_panel_t converts a row");
static_assert(kMatmulXt != kMatmulRows, "xt_path's threads convert rows while x transposed is shared");
// One call holds these together on one thread.
static_assert(kAttnKeysT != kAttnQuery && kAttnKeysT != kAttnScores && kAttnKeysT != kAttnOut && kAttnKeysT != kAttnStats,
              "attention_prefill shares its transposed keys while each thread attends");
static_assert(kAttnQuery != kAttnScores && kAttnOut != kAttnStats && kAttnQuery != kAttnOut && kAttnScores != kAttnStats &&
                  kAttnQuery != kAttnStats && kAttnScores != kAttnOut,
              "attend works on its query block, scores, output and statistics at once");
static_assert(kAttnParts != kAttnQuery && kAttnParts != kAttnScores, "decode_range runs while the parts are shared");
static_assert(kLightningDecay != kLightningKeysT && kLightningDecay != kLightningScores && kLightningKeysT != kLightningScores,
              "lightning_prefill's blocks run while the decay powers are held");
static_assert(kAttnStats < kCount && kLightningDecay < kCount, "slots are < kCount");

}  // namespace slot
}  // namespace m1
