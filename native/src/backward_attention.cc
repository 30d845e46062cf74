// Backward of causal GQA softmax self-attention (attention.cc), flash-style: the probabilities are
// recomputed tile by tile from the saved row log-sum-exp, never stored as n × n.
//   P = exp(scale · Q Kᵀ − lse),  D_r = dO_r · O_r,  dS = P ⊙ (dO Vᵀ − D)
//   dQ = scale · dS K,  dK = scale · dSᵀ Q,  dV = Pᵀ dO
// Pass 1 owns a block of query rows (dQ), pass 2 a tile of keys (dK, dV): every output row is written by one
// task, so no thread adds into another's rows. A block's rows are its queries × the G query heads sharing
// one kv head, as in the forward pass.
#include "attention_tiles.h"

namespace m1 {
namespace M1_NS {

namespace {
constexpr int64_t kBlockRows = 64;  // rows (queries × grouped heads) per block

struct Problem {
  const float *q, *k, *v, *o, *dout, *lse;
  int64_t n, heads, G, d, ldkv;
  float scale;
};

// The rows of queries [t0, t0 + nq) of kv head g: Qb, dOb [R, d], lse_b and D_b [R].
void gather_rows(const Problem& p, int64_t g, int64_t t0, int64_t nq, float* Qb, float* dOb, float* lse_b, float* D_b) {
  const int64_t d = p.d;
  for (int64_t r = 0; r < nq * p.G; r++) {
    const int64_t row = (t0 + r / p.G) * p.heads + g * p.G + r % p.G;
    memcpy(Qb + r * d, p.q + row * d, size_t(d) * 4);
    memcpy(dOb + r * d, p.dout + row * d, size_t(d) * 4);
    lse_b[r] = p.lse[row];
    double s = 0;
    for (int64_t c = 0; c < d; c++) s += double(p.dout[row * d + c]) * double(p.o[row * d + c]);
    D_b[r] = float(s);
  }
}

// P and dS [R, BK] of the block's rows against keys [j0, j0 + bk) (Kt, Vt: transposed tiles); zero where a
// row's query comes before the key.
void tile_grads(const Problem& p, int64_t t0, int64_t R, const float* Qb, const float* dOb, const float* lse_b,
                const float* D_b, int64_t j0, int64_t bk, const float* Kt, const float* Vt, float* P, float* dS) {
  gemm_nn(R, BK, p.d, Qb, p.d, Kt, BK, P, BK, 0.0f);
  gemm_nn(R, BK, p.d, dOb, p.d, Vt, BK, dS, BK, 0.0f);  // dP
  const V sc = V::set1(p.scale);
  for (int64_t r = 0; r < R; r++) {
    float* pr = P + r * BK;
    float* ds = dS + r * BK;
    const int64_t lim = imax(0, imin(bk, t0 + r / p.G + 1 - j0));  // visible keys of this row in the tile
    const V l = V::set1(lse_b[r]), D = V::set1(D_b[r]);
    for (int64_t j = 0; j < lim; j += V::W) {  // BK is a whole number of vectors
      const V e = vexp(fma(V::load(pr + j), sc, V::zero() - l));
      e.store(pr + j);
      (e * (V::load(ds + j) - D)).store(ds + j);
    }
    for (int64_t j = lim; j < BK; j++) pr[j] = ds[j] = 0.0f;
  }
}

// dst [cols, rows] = srcᵀ, src [rows, cols] with row stride lds
void transpose(const float* src, int64_t rows, int64_t cols, int64_t lds, float* dst) {
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < cols; c++) dst[c * rows + r] = src[r * lds + c];
}

// This thread's buffers for up to RMAX query rows against one key tile: the rows' q, dO, lse and D = rowsum(dO ⊙ O),
// the tile's Kᵀ and Vᵀ, and the tile's probabilities P and score gradients dS (both passes use the same layout).
struct TileScratch {
  float *Qb, *dOb, *lse_b, *D_b, *Kt, *Vt, *P, *dS;
};
TileScratch tile_scratch(int64_t d, int64_t RMAX) {
  float* rows = scratch(slot::kAttnGradRows, RMAX * (2 * d + 2));
  float* Kt = scratch(slot::kAttnGradTiles, 2 * d * BK);
  float* P = scratch(slot::kAttnGradProbs, 2 * RMAX * BK);
  return {rows, rows + RMAX * d, rows + 2 * RMAX * d, rows + 2 * RMAX * d + RMAX, Kt, Kt + d * BK, P, P + RMAX * BK};
}
}  // namespace

void attention_backward(const float* q, const float* k, const float* v, const float* o, const float* dout,
                        const float* lse, int64_t n, int64_t heads, int64_t kv_heads, int64_t d, float scale, float* dq,
                        float* dk, float* dv) {
  if (n <= 0 || heads <= 0 || d <= 0) return;
  const Problem p{q, k, v, o, dout, lse, n, heads, heads / kv_heads, d, kv_heads * d, scale};
  const int64_t BQ = imax(1, kBlockRows / p.G), RMAX = BQ * p.G;
  const int64_t nqb = cdiv(n, BQ), ntiles = cdiv(n, BK);
  // pass 1: dQ of each query block, over the keys it sees
  parallel_for(kv_heads * nqb, 1, [&](int64_t lo, int64_t hi) {
    auto [Qb, dOb, lse_b, D_b, Kt, Vt, P, dS] = tile_scratch(d, RMAX);
    float* dQb = scratch(slot::kAttnGradAcc, RMAX * d);
    for (int64_t item = lo; item < hi; item++) {
      const int64_t g = item % kv_heads, qb = nqb - 1 - item / kv_heads;  // longest blocks first
      const int64_t t0 = qb * BQ, nq = imin(n, t0 + BQ) - t0, R = nq * p.G;
      gather_rows(p, g, t0, nq, Qb, dOb, lse_b, D_b);
      memset(dQb, 0, size_t(R * d) * 4);
      for (int64_t j0 = 0; j0 < t0 + nq; j0 += BK) {
        const int64_t bk = imin(BK, t0 + nq - j0);
        load_kt(k, p.ldkv, g, d, j0, bk, Kt);
        load_kt(v, p.ldkv, g, d, j0, bk, Vt);
        tile_grads(p, t0, R, Qb, dOb, lse_b, D_b, j0, bk, Kt, Vt, P, dS);
        gemm_nn(R, d, bk, dS, BK, k + j0 * p.ldkv + g * d, p.ldkv, dQb, d, 1.0f);
      }
      for (int64_t r = 0; r < R; r++) {
        float* dst = dq + ((t0 + r / p.G) * heads + g * p.G + r % p.G) * d;
        for (int64_t c = 0; c < d; c++) dst[c] = scale * dQb[r * d + c];
      }
    }
  });
  // pass 2: dK, dV of each key tile, over the query blocks that see it
  parallel_for(kv_heads * ntiles, 1, [&](int64_t lo, int64_t hi) {
    auto [Qb, dOb, lse_b, D_b, Kt, Vt, P, dS] = tile_scratch(d, RMAX);
    float* T = scratch(slot::kAttnGradT, BK * RMAX);
    float* dKV = scratch(slot::kAttnGradAcc, 2 * BK * d);
    float* dKt = dKV;
    float* dVt = dKV + BK * d;
    for (int64_t item = lo; item < hi; item++) {
      const int64_t g = item % kv_heads, jt = item / kv_heads;
      const int64_t j0 = jt * BK, bk = imin(BK, n - j0);
      load_kt(k, p.ldkv, g, d, j0, bk, Kt);
      load_kt(v, p.ldkv, g, d, j0, bk, Vt);
      memset(dKV, 0, size_t(2 * BK * d) * 4);
      for (int64_t qb = j0 / BQ; qb < nqb; qb++) {
        const int64_t t0 = qb * BQ, nq = imin(n, t0 + BQ) - t0, R = nq * p.G;
        gather_rows(p, g, t0, nq, Qb, dOb, lse_b, D_b);
        tile_grads(p, t0, R, Qb, dOb, lse_b, D_b, j0, bk, Kt, Vt, P, dS);
        transpose(P, R, bk, BK, T);
        gemm_nn(bk, d, R, T, R, dOb, d, dVt, d, 1.0f);
        transpose(dS, R, bk, BK, T);
        gemm_nn(bk, d, R, T, R, Qb, d, dKt, d, 1.0f);
      }
      for (int64_t jj = 0; jj < bk; jj++) {
        float* dkr = dk + (j0 + jj) * p.ldkv + g * d;
        float* dvr = dv + (j0 + jj) * p.ldkv + g * d;
        for (int64_t c = 0; c < d; c++) {
          dkr[c] = scale * dKt[jj * d + c];
          dvr[c] = dVt[jj * d + c];
        }
      }
    }
  });
}

}  // namespace M1_NS
}  // namespace m1
