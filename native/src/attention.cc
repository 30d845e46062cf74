// Causal GQA softmax attention against a KV cache [capacity, kvHeads, d].
// Query t (of n) sits at absolute position p = total − n + t and sees keys 0..p.
// Without probs, the rows of a block are its queries × the query heads sharing one kv head, so each
// K/V row is read once per group:
//  - many rows (prefill): tiled online softmax per (kv head, query block); K is transposed into tiles
//    once per call and the scores of a tile are an outer-product GEMM.
//  - few rows (decode): the cache is cut into key ranges of fixed length (independent of the thread
//    count, so results are too); a task reads the rows of its range once, front to back, for every kv
//    head: scores, softmax over the range, P·V. Ranges are merged as m = max m_s,
//    l = Σ l_s e^(m_s − m), O = Σ O_s e^(m_s − m) / l.
// With probs: scores of each head are written to probs [heads, n, total], normalised in place, then
// out = P · V.
#include "simd.h"

namespace m1 {
namespace M1_NS {

namespace {
constexpr int64_t BK = 64;           // keys per tile
constexpr int64_t kRows = 128;       // rows (queries × grouped heads) per block in prefill
constexpr int64_t kGemmRows = 32;    // from this many rows on, scores come from the transposed-K GEMM
constexpr int64_t kSplitKeys = 512;  // key range per task when few rows attend to a long cache (L2-sized)

// Kt[c·BK + jj] = K[j0 + jj, g, c] for jj < bk, zero for bk <= jj < BK
inline void load_kt(const float* kc, int64_t ldkv, int64_t g, int64_t d, int64_t j0, int64_t bk, float* Kt) {
  for (int64_t jj = 0; jj < bk; jj++) {
    const float* kr = kc + (j0 + jj) * ldkv + g * d;
    for (int64_t c = 0; c < d; c++) Kt[c * BK + jj] = kr[c];
  }
  for (int64_t c = 0; c < d; c++)
    for (int64_t jj = bk; jj < BK; jj++) Kt[c * BK + jj] = 0.0f;
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

// s[j] = exp(s[j] − m) for j < len; returns the sum (f32 partial sums of at most 4 vectors, then double).
inline double exp_sub(float* s, int64_t len, float m) {
  const V mv = V::set1(m);
  V acc = V::zero();
  double sum = 0;
  int64_t j = 0;
  for (int i = 1; j + V::W <= len; j += V::W, i++) {
    const V e = vexp(V::load(s + j) - mv);
    e.store(s + j);
    acc = acc + e;
    if (i % 4 == 0) {
      sum += double(acc.hsum());
      acc = V::zero();
    }
  }
  sum += double(acc.hsum());
  if (j < len) {
    const typename V::Mask mk = V::mask(len - j);
    const V e = vexp(V::load(s + j, mk) - mv);
    e.store(s + j, mk);
    for (int64_t i = j; i < len; i++) sum += double(s[i]);
  }
  return sum;
}

inline float dot(const float* a, const float* b, int64_t len) {
  V s0 = V::zero(), s1 = V::zero();
  int64_t c = 0;
  for (; c + 2 * V::W <= len; c += 2 * V::W) {
    s0 = fma(V::load(a + c), V::load(b + c), s0);
    s1 = fma(V::load(a + c + V::W), V::load(b + c + V::W), s1);
  }
  float s = (s0 + s1).hsum();
  for (; c < len; c++) s += a[c] * b[c];
  return s;
}

inline void scale_row(float* x, int64_t len, float a) {
  const V av = V::set1(a);
  int64_t j = 0;
  for (; j + V::W <= len; j += V::W) (V::load(x + j) * av).store(x + j);
  for (; j < len; j++) x[j] *= a;
}

// Row r of a block of rows is query t0 + r / G (absolute position past + t0 + r / G) of head g·G + r % G.
struct Block {
  const float *q, *kc, *vc, *KT;  // KT: transposed K tiles of kv head g (prefill)
  int64_t heads, G, g, d, ldkv, past;
  float scale;
};

// A block of R rows against keys [j_lo, j_hi) in tiles: unnormalised Ob [R, d], running max m and sum l per row.
void attend(const Block& b, int64_t t0, int64_t R, int64_t j_lo, int64_t j_hi, float* Ob, float* m, double* l) {
  const int64_t d = b.d;
  float* Qb = scratch(slot::kAttnQuery, R * d);
  float* S = scratch(slot::kAttnScores, R * BK);
  for (int64_t r = 0; r < R; r++) {
    memcpy(Qb + r * d, b.q + ((t0 + r / b.G) * b.heads + b.g * b.G + r % b.G) * d, size_t(d) * 4);
    m[r] = -INFINITY;
    l[r] = 0.0;
  }
  memset(Ob, 0, size_t(R * d) * 4);
  for (int64_t j0 = j_lo; j0 < j_hi; j0 += BK) {
    const int64_t bk = imin(BK, j_hi - j0);
    gemm_nn(R, BK, d, Qb, d, b.KT + (j0 / BK) * d * BK, BK, S, BK, 0.0f);
    for (int64_t r = 0; r < R; r++) {
      float* s = S + r * BK;
      const int64_t lim = imin(bk, b.past + t0 + r / b.G + 1 - j0);  // visible keys of this row in the tile
      if (lim <= 0) {
        memset(s, 0, size_t(bk) * 4);
        continue;
      }
      scale_row(s, lim, b.scale);
      const float mt = row_max(s, lim);
      if (mt > m[r]) {
        if (l[r] != 0.0) {
          const float corr = expf(m[r] - mt);
          scale_row(Ob + r * d, d, corr);
          l[r] *= double(corr);
        }
        m[r] = mt;
      }
      l[r] += exp_sub(s, lim, m[r]);
      for (int64_t j = lim; j < bk; j++) s[j] = 0.0f;
    }
    gemm_nn(R, d, bk, S, BK, b.vc + j0 * b.ldkv + b.g * d, b.ldkv, Ob, d, 1.0f);
  }
}

// out rows of the block = Ob / l
void store_rows(const Block& b, int64_t t0, int64_t R, const float* Ob, const double* l, float* out) {
  for (int64_t r = 0; r < R; r++) {
    float* o = out + ((t0 + r / b.G) * b.heads + b.g * b.G + r % b.G) * b.d;
    memcpy(o, Ob + r * b.d, size_t(b.d) * 4);
    scale_row(o, b.d, float(1.0 / l[r]));
  }
}

void attention_prefill(Block b, int64_t n, int64_t kvh, float* out) {
  const int64_t d = b.d, total = b.past + n, ntiles = cdiv(total, BK);
  const int64_t BQ = imax(1, kRows / b.G), nqb = cdiv(n, BQ);
  float* KT = scratch(slot::kAttnKeysT, kvh * ntiles * d * BK);  // shared by the pool threads for this call
  parallel_for(kvh * ntiles, 8, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; i++) {
      const int64_t tile = i % ntiles;
      load_kt(b.kc, b.ldkv, i / ntiles, d, tile * BK, imin(BK, total - tile * BK), KT + i * d * BK);
    }
  });
  parallel_for(kvh * nqb, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t item = lo; item < hi; item++) {
      const int64_t qb = nqb - 1 - item / kvh;  // longest (latest) blocks first
      Block bg = b;
      bg.g = item % kvh;
      bg.KT = KT + bg.g * ntiles * d * BK;
      const int64_t t0 = qb * BQ, R = (imin(n, t0 + BQ) - t0) * b.G;
      float* Ob = scratch(slot::kAttnOut, R * d);
      float* m = scratch(slot::kAttnStats, 3 * R + 1);
      double* l = reinterpret_cast<double*>(m + R + (R & 1));  // 8-byte aligned
      attend(bg, t0, R, 0, b.past + t0 + R / b.G, Ob, m, l);
      store_rows(bg, t0, R, Ob, l, out);
    }
  });
}

// Decode: the R = n·G rows of every kv head against keys [j_lo, j_hi) (at most kSplitKeys), reading each
// cache row once, front to back, for all heads: scores, then softmax over the range, then P·V. Writes
// Ob, m, l of head g to parts(g).
template <class Parts>
void decode_range(const Block& b, int64_t kvh, int64_t R, int64_t j_lo, int64_t j_hi, Parts parts) {
  const int64_t d = b.d, nk = j_hi - j_lo, row = kvh * d;
  constexpr int64_t ahead = 8;  // cache rows prefetched ahead of use
  float* Q = scratch(slot::kAttnQuery, kvh * R * d);
  float* S = scratch(slot::kAttnScores, kvh * R * nk);
  for (int64_t g = 0; g < kvh; g++)
    for (int64_t r = 0; r < R; r++)
      memcpy(Q + (g * R + r) * d, b.q + ((r / b.G) * b.heads + g * b.G + r % b.G) * d, size_t(d) * 4);
  auto prefetch_row = [&](const float* base, int64_t j) {
    if (j >= j_hi) return;
    for (int64_t c = 0; c < row; c += 16) __builtin_prefetch(base + j * row + c);
  };
  for (int64_t j = j_lo; j < j_lo + ahead; j++) prefetch_row(b.kc, j);
  for (int64_t j = j_lo; j < j_hi; j++) {
    prefetch_row(b.kc, j + ahead);
    for (int64_t g = 0; g < kvh; g++) {
      const float* kr = b.kc + j * row + g * d;
      for (int64_t r = 0; r < R; r++) S[(g * R + r) * nk + (j - j_lo)] = dot(Q + (g * R + r) * d, kr, d);
    }
  }
  for (int64_t j = j_lo; j < j_lo + ahead; j++) prefetch_row(b.vc, j);
  for (int64_t g = 0; g < kvh; g++) {
    float *Ob, *m;
    double* l;
    parts(g, Ob, m, l);
    for (int64_t r = 0; r < R; r++) {
      float* s = S + (g * R + r) * nk;
      const int64_t lim = imin(nk, b.past + r / b.G + 1 - j_lo);  // visible keys of this row in the range
      m[r] = -INFINITY;
      l[r] = 0.0;
      if (lim <= 0) {
        memset(s, 0, size_t(nk) * 4);
        continue;
      }
      scale_row(s, lim, b.scale);
      m[r] = row_max(s, lim);
      l[r] = exp_sub(s, lim, m[r]);
      for (int64_t j = lim; j < nk; j++) s[j] = 0.0f;
    }
    memset(Ob, 0, size_t(R * d) * 4);
  }
  for (int64_t j = j_lo; j < j_hi; j++) {
    prefetch_row(b.vc, j + ahead);
    for (int64_t g = 0; g < kvh; g++) {
      float *Ob, *m;
      double* l;
      parts(g, Ob, m, l);
      const float* vr = b.vc + j * row + g * d;
      for (int64_t r = 0; r < R; r++) {
        const float p = S[(g * R + r) * nk + (j - j_lo)];
        if (p == 0.0f) continue;
        const V pv = V::set1(p);
        float* o = Ob + r * d;
        int64_t c = 0;
        for (; c + V::W <= d; c += V::W) fma(pv, V::load(vr + c), V::load(o + c)).store(o + c);
        for (; c < d; c++) o[c] += p * vr[c];
      }
    }
  }
}

// All n queries of each kv head as one block of R = n·G rows, over key ranges of kSplitKeys.
void attention_decode(Block b, int64_t n, int64_t kvh, float* out) {
  const int64_t d = b.d, R = n * b.G, total = b.past + n;
  const int64_t splits = cdiv(total, kSplitKeys);
  // per (kv head, split): Ob [R, d], m [R], l [R] (doubles, 8-byte aligned: every offset is even)
  const int64_t l_at = (R * d + R + 1) & ~int64_t(1), stride = l_at + 2 * R;
  float* part = scratch(slot::kAttnParts, kvh * splits * stride);
  auto parts = [&](int64_t i, float*& Ob, float*& m, double*& l) {
    Ob = part + i * stride;
    m = Ob + R * d;
    l = reinterpret_cast<double*>(Ob + l_at);
  };
  parallel_for(splits, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t s = lo; s < hi; s++) {
      decode_range(b, kvh, R, s * kSplitKeys, imin(total, (s + 1) * kSplitKeys),
                   [&](int64_t g, float*& Ob, float*& m, double*& l) { parts(g * splits + s, Ob, m, l); });
    }
  });
  for (int64_t g = 0; g < kvh; g++) {
    Block bg = b;
    bg.g = g;
    float *O0, *m0;
    double* l0;
    parts(g * splits, O0, m0, l0);
    for (int64_t s = 1; s < splits; s++) {
      float *Os, *ms;
      double* ls;
      parts(g * splits + s, Os, ms, ls);
      for (int64_t r = 0; r < R; r++) {
        if (ls[r] == 0.0) continue;  // no visible key in this range
        const float mx = ms[r] > m0[r] ? ms[r] : m0[r];
        const float c0 = l0[r] == 0.0 ? 0.0f : expf(m0[r] - mx), cs = expf(ms[r] - mx);
        float* o = O0 + r * d;
        const float* os = Os + r * d;
        for (int64_t c = 0; c < d; c++) o[c] = o[c] * c0 + os[c] * cs;
        l0[r] = l0[r] * double(c0) + ls[r] * double(cs);
        m0[r] = mx;
      }
    }
    store_rows(bg, 0, R, O0, l0, out);
  }
}

void attention_probs(const float* q, const float* kc, const float* vc, int64_t n, int64_t total, int64_t heads,
                     int64_t kvh, int64_t d, float scale, float* out, float* probs) {
  const int64_t G = heads / kvh, past = total - n, ldkv = kvh * d;
  const int64_t BQ = 32;
  const int64_t nqb = cdiv(n, BQ);
  parallel_for(heads * nqb, 1, [&](int64_t lo, int64_t hi) {
    float* Kt = scratch(slot::kProbsKeysT, d * BK);
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
  const Block b{q, kc, vc, nullptr, heads, heads / kv_heads, 0, d, kv_heads * d, total - n, scale};
  if (n * b.G < kGemmRows) attention_decode(b, n, kv_heads, out);
  else attention_prefill(b, n, kv_heads, out);
}

}  // namespace M1_NS
}  // namespace m1
