// Causal GQA softmax attention against a KV cache [capacity, kvHeads, d].
// Query t (of n) sits at absolute position p = total − n + t and sees keys 0..p.
// Without probs: tiled online softmax per (kv head, query block); the rows of a block are the
// block's queries × the query heads sharing that kv head, so each K/V tile is read once per group.
// Scores of a tile: transposed tile + outer-product GEMM for many rows, dot products for few (decode).
// With probs: scores of each head are written to probs [heads, n, total], normalised in place, then
// out = P · V.
#include "simd.h"

namespace m1 {
namespace M1_NS {

namespace {
constexpr int64_t BK = 64;  // keys per tile
#ifndef M1_ATT_TRANSPOSE_ROWS
#define M1_ATT_TRANSPOSE_ROWS 32
#endif
constexpr int64_t kTransposeRows = M1_ATT_TRANSPOSE_ROWS;

// Kt[c, jj] = K[j0 + jj, g, c] for jj < bk (ld of Kt = BK)
inline void load_kt(const float* kc, int64_t ldkv, int64_t g, int64_t d, int64_t j0, int64_t bk, float* Kt) {
  for (int64_t jj = 0; jj < bk; jj++) {
    const float* kr = kc + (j0 + jj) * ldkv + g * d;
    for (int64_t c = 0; c < d; c++) Kt[c * BK + jj] = kr[c];
  }
}

inline float row_max(const float* s, int64_t len) {
  float mx = -INFINITY;
  int64_t j = 0;
  if (len >= V::W) {
    V m = V::load(s);
    for (j = V::W; j + V::W <= len; j += V::W) m = vmax(m, V::load(s + j));
    mx = m.hmax();
  }
  for (; j < len; j++) mx = s[j] > mx ? s[j] : mx;
  return mx;
}

// s[j] = exp(s[j] − m) for j < len; returns Σ in double.
inline double exp_sub(float* s, int64_t len, float m) {
  const V mv = V::set1(m);
  double sum = 0;
  int64_t j = 0;
  for (; j + V::W <= len; j += V::W) {
    const V e = vexp(V::load(s + j) - mv);
    e.store(s + j);
    sum += double(e.hsum());
  }
  if (j < len) {
    const typename V::Mask mk = V::mask(len - j);
    const V e = vexp(V::load(s + j, mk) - mv);
    e.store(s + j, mk);
    for (int64_t i = j; i < len; i++) sum += double(s[i]);
  }
  return sum;
}

inline void scale_row(float* x, int64_t len, float a) {
  const V av = V::set1(a);
  int64_t j = 0;
  for (; j + V::W <= len; j += V::W) (V::load(x + j) * av).store(x + j);
  for (; j < len; j++) x[j] *= a;
}

void attention_online(const float* q, const float* kc, const float* vc, int64_t n, int64_t total, int64_t heads,
                      int64_t kvh, int64_t d, float scale, float* out) {
  const int64_t G = heads / kvh, past = total - n, ldkv = kvh * d;
  const int64_t BQ = imax(1, 64 / G);
  const int64_t nqb = cdiv(n, BQ);
  parallel_for(kvh * nqb, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t item = lo; item < hi; item++) {
      const int64_t qb = nqb - 1 - item / kvh;  // longest (latest) blocks first
      const int64_t g = item % kvh;
      const int64_t t0 = qb * BQ, t1 = imin(n, t0 + BQ), R = (t1 - t0) * G;
      float* Qb = scratch(3, R * d);
      float* Ob = scratch(4, R * d);
      float* S = scratch(5, R * BK);
      float* Kt = scratch(6, d * BK);
      float* mrow = scratch(7, R * 4);
      double* lrow = reinterpret_cast<double*>(mrow + 2 * R);
      for (int64_t r = 0; r < R; r++) {
        const int64_t t = t0 + r / G, h = g * G + r % G;
        memcpy(Qb + r * d, q + (t * heads + h) * d, size_t(d) * 4);
        mrow[r] = -INFINITY;
        lrow[r] = 0.0;
      }
      memset(Ob, 0, size_t(R * d) * 4);
      const int64_t kend = past + t1;  // keys [0, kend) are visible to some row
      for (int64_t j0 = 0; j0 < kend; j0 += BK) {
        const int64_t bk = imin(BK, kend - j0);
        if (R >= kTransposeRows) {  // many rows: transpose the tile once, outer-product GEMM
          load_kt(kc, ldkv, g, d, j0, bk, Kt);
          gemm_nn(R, bk, d, Qb, d, Kt, BK, S, BK, 0.0f);
        } else {  // few rows (decode): dot products straight from the cache rows
          gemm_nt(R, bk, d, Qb, d, kc + j0 * ldkv + g * d, ldkv, S, BK);
        }
        for (int64_t r = 0; r < R; r++) {
          float* s = S + r * BK;
          const int64_t lim = imin(bk, past + t0 + r / G + 1 - j0);  // visible keys of this row in the tile
          if (lim <= 0) {
            memset(s, 0, size_t(bk) * 4);
            continue;
          }
          scale_row(s, lim, scale);
          const float mt = row_max(s, lim);
          if (mt > mrow[r]) {
            if (lrow[r] != 0.0) {
              const float corr = expf(mrow[r] - mt);
              scale_row(Ob + r * d, d, corr);
              lrow[r] *= double(corr);
            }
            mrow[r] = mt;
          }
          lrow[r] += exp_sub(s, lim, mrow[r]);
          for (int64_t j = lim; j < bk; j++) s[j] = 0.0f;
        }
        gemm_nn(R, d, bk, S, BK, vc + j0 * ldkv + g * d, ldkv, Ob, d, 1.0f);
      }
      for (int64_t r = 0; r < R; r++) {
        const int64_t t = t0 + r / G, h = g * G + r % G;
        float* o = out + (t * heads + h) * d;
        memcpy(o, Ob + r * d, size_t(d) * 4);
        scale_row(o, d, float(1.0 / lrow[r]));
      }
    }
  });
}

void attention_probs(const float* q, const float* kc, const float* vc, int64_t n, int64_t total, int64_t heads,
                     int64_t kvh, int64_t d, float scale, float* out, float* probs) {
  const int64_t G = heads / kvh, past = total - n, ldkv = kvh * d;
  const int64_t BQ = 32;
  const int64_t nqb = cdiv(n, BQ);
  parallel_for(heads * nqb, 1, [&](int64_t lo, int64_t hi) {
    float* Kt = scratch(6, d * BK);
    for (int64_t item = lo; item < hi; item++) {
      const int64_t qb = nqb - 1 - item / heads;
      const int64_t h = item % heads, g = h / G;
      const int64_t t0 = qb * BQ, t1 = imin(n, t0 + BQ), nq = t1 - t0;
      const int64_t kend = past + t1;
      float* P = probs + (h * n + t0) * total;
      const float* Q = q + (t0 * heads + h) * d;
      for (int64_t j0 = 0; j0 < kend; j0 += BK) {
        const int64_t bk = imin(BK, kend - j0);
        load_kt(kc, ldkv, g, d, j0, bk, Kt);
        gemm_nn(nq, bk, d, Q, heads * d, Kt, BK, P + j0, total, 0.0f);
      }
      for (int64_t r = 0; r < nq; r++) {
        float* row = P + r * total;
        const int64_t vis = past + t0 + r + 1;
        scale_row(row, vis, scale);
        const double sum = exp_sub(row, vis, row_max(row, vis));
        scale_row(row, vis, float(1.0 / sum));
        for (int64_t j = vis; j < total; j++) row[j] = 0.0f;
      }
      gemm_nn(nq, d, kend, P, total, vc + g * d, ldkv, out + (t0 * heads + h) * d, heads * d, 0.0f);
    }
  });
}
}  // namespace

void attention(const float* q, const float* kc, const float* vc, int64_t n, int64_t total, int64_t heads,
               int64_t kv_heads, int64_t d, float scale, float* out, float* probs) {
  if (n <= 0 || heads <= 0) return;
  if (d <= 0) {
    if (probs) {  // still a valid pattern
      for (int64_t h = 0; h < heads; h++)
        for (int64_t t = 0; t < n; t++) {
          float* row = probs + (h * n + t) * total;
          const int64_t vis = total - n + t + 1;
          for (int64_t j = 0; j < total; j++) row[j] = j < vis ? float(1.0 / double(vis)) : 0.0f;
        }
    }
    return;
  }
  if (probs) return attention_probs(q, kc, vc, n, total, heads, kv_heads, d, scale, out, probs);
  attention_online(q, kc, vc, n, total, heads, kv_heads, d, scale, out);
}

}  // namespace M1_NS
}  // namespace m1
