// Lightning attention (docs/architecture.md §3.4). Per head, decay λ = exp(−s), state S [d, d] (row: key dim,
// column: value dim). Recurrence: S_t = λ S_{t−1} + k_tᵀ v_t, o_t = q_t S_t.
// Block form for m ≤ B tokens (local i, j):
//   O = ((Q Kᵀ) ⊙ diag) V + (Q ⊙ q_decay) S,  diag[i,j] = λ^{i−j} (i ≥ j), q_decay[i] = λ^{i+1}
//   S ← λ^m S + (K ⊙ k_decay)ᵀ V,              k_decay[j] = λ^{m−1−j}
// Decay powers are exp(−s·p) evaluated in double and rounded to f32.
// q, k, v of token t, head h start at t·ld + h·hs (plain [n, heads, d]: ld = heads·d, hs = d; the
// per-head interleaved qkv projection [n, heads, 3, d]: ld = 3·heads·d, hs = 3·d); out is [n, heads, d].
#include "simd.h"

namespace m1 {
namespace M1_NS {

namespace {
constexpr int64_t RB = 32;  // query rows per intra-block step (only the causal columns are computed)
}

namespace {
// Rows of one head's operand: row i at p + i·ld (ld < 0 walks the sequence backwards).
struct Rows {
  const float* p;
  int64_t ld;
  Rows at(int64_t t) const { return {p + t * ld, ld}; }
};

// Kt[a·m + j] = K row j, column a (Kt = Kᵀ [d, m]): W × W blocks through the register transpose.
void transpose_rows(Rows K, int64_t m, int64_t d, float* Kt) {
  const auto one = [&](int64_t j, int64_t a) { Kt[a * m + j] = K.p[j * K.ld + a]; };
  int64_t j0 = 0;
  for (; j0 + V::W <= m; j0 += V::W) {
    int64_t a0 = 0;
    for (; a0 + V::W <= d; a0 += V::W) {
      V r[V::W];
      for (int i = 0; i < V::W; i++) r[i] = V::load(K.p + (j0 + i) * K.ld + a0);
      transpose_block(r);
      for (int c = 0; c < V::W; c++) r[c].store(Kt + (a0 + c) * m + j0);
    }
    for (int64_t a = a0; a < d; a++)
      for (int64_t j = j0; j < j0 + V::W; j++) one(j, a);
  }
  for (; j0 < m; j0++)
    for (int64_t a = 0; a < d; a++) one(j0, a);
}

// One block of m <= B tokens of one head (rows from the block's first token): out rows O (row i at O + i·ldo)
// and the head's state S (pw[i] = λ^i, i = 0..m). A zero S (the first block from a zero state) has no
// inter-block term; a block whose state nothing reads (the last one of a backward scan) leaves S as it was.
void block(Rows Q, Rows K, Rows Vb, float* O, int64_t ldo, int64_t d, double s, const float* pw, int64_t m,
           float* S, bool zero_state, bool state_wanted) {
  float* Kt = scratch(slot::kLightningKeysT, d * m);
  float* A = scratch(slot::kLightningScores, m * m);
  // inter-block: O = (Q S) ⊙ q_decay
  if (zero_state) {
    for (int64_t i = 0; i < m; i++) memset(O + i * ldo, 0, size_t(d) * 4);
  } else {
    gemm_nn(m, d, d, Q.p, Q.ld, S, d, O, ldo, 0.0f);
    for (int64_t i = 0; i < m; i++) {
      float* o = O + i * ldo;
      const float f = pw[i + 1];
      for (int64_t c = 0; c < d; c++) o[c] *= f;
    }
  }
  transpose_rows(K, m, d, Kt);
  // intra-block: O += ((Q Kᵀ) ⊙ diag) V, row block by row block, causal columns only
  for (int64_t i0 = 0; i0 < m; i0 += RB) {
    const int64_t mb = imin(RB, m - i0), w = i0 + mb;
    float* Ar = A + i0 * m;
    gemm_nn(mb, w, d, Q.p + i0 * Q.ld, Q.ld, Kt, m, Ar, m, 0.0f);
    for (int64_t i = i0; i < w; i++) {
      float* row = A + i * m;
      for (int64_t j = 0; j <= i; j++) row[j] *= pw[i - j];
      for (int64_t j = i + 1; j < w; j++) row[j] = 0.0f;
    }
    gemm_nn(mb, d, w, Ar, m, Vb.p, Vb.ld, O + i0 * ldo, ldo, 1.0f);
  }
  if (!state_wanted) return;
  // state: S = λ^m S + (K ⊙ k_decay)ᵀ V. λ^m is applied as hi + lo so that it does not
  // compound an f32 rounding once per block.
  for (int64_t a = 0; a < d; a++) {
    float* row = Kt + a * m;
    for (int64_t j = 0; j < m; j++) row[j] *= pw[m - 1 - j];
  }
  const double lm = exp(-s * double(m));
  const float lm_hi = float(lm), lm_lo = float(lm - double(lm_hi));
  const V vh = V::set1(lm_hi), vl = V::set1(lm_lo);
  int64_t e = 0;
  for (; e + V::W <= d * d; e += V::W) {
    const V x = V::load(S + e);
    fma(vh, x, vl * x).store(S + e);
  }
  for (; e < d * d; e++) S[e] = lm_hi * S[e] + lm_lo * S[e];
  gemm_nn(d, d, m, Kt, m, Vb.p, Vb.ld, S, d, 1.0f);
}

// pw[i] = λ^i = exp(−s·i) for i = 0..top (a block of m tokens reads up to λ^m)
void decay_powers(double s, int64_t top, float* pw) {
  for (int64_t i = 0; i <= top; i++) pw[i] = float(exp(-s * double(i)));
}

bool all_zero(const float* S, int64_t len) {
  for (int64_t i = 0; i < len; i++)
    if (S[i] != 0.0f) return false;
  return true;
}

// The whole sequence of n tokens of one head in blocks of B from a zero state S, carried across blocks; S is
// scratch afterwards (the state after the last block is not computed).
void scan_from_zero(Rows Q, Rows K, Rows Vb, float* O, int64_t ldo, int64_t n, int64_t d, double s, const float* pw,
                    int64_t B, float* S) {
  for (int64_t t0 = 0; t0 < n; t0 += B) {
    block(Q.at(t0), K.at(t0), Vb.at(t0), O + t0 * ldo, ldo, d, s, pw, imin(B, n - t0), S, t0 == 0, t0 + B < n);
  }
}
}  // namespace

// Each thread takes an equal share of the heads and walks the blocks, all of its heads per block: the
// block's rows of q, k, v are read from memory once, for every head that needs them.
void lightning_prefill(const float* q, const float* k, const float* v, int64_t ld, int64_t hs, int64_t n, int64_t heads,
                       int64_t d, const float* slopes, int64_t B, float* state, float* out) {
  if (heads <= 0 || d <= 0) return;
  const int64_t ldo = heads * d;
  parallel_for(heads, cdiv(heads, num_threads()), [&](int64_t lo, int64_t hi) {
    float* pw = scratch(slot::kLightningDecay, (hi - lo) * (B + 1));  // λ_h^i, i = 0..B, per head
    for (int64_t h = lo; h < hi; h++) decay_powers(double(slopes[h]), imin(B, n), pw + (h - lo) * (B + 1));
    bool zero = true;  // every head of this range starts from a zero state (a fresh sequence)
    for (int64_t h = lo; h < hi && zero; h++) zero = all_zero(state + h * d * d, d * d);
    for (int64_t t0 = 0; t0 < n; t0 += B) {
      for (int64_t h = lo; h < hi; h++) {
        const int64_t off = t0 * ld + h * hs;
        block({q + off, ld}, {k + off, ld}, {v + off, ld}, out + t0 * ldo + h * d, ldo, d, double(slopes[h]),
              pw + (h - lo) * (B + 1), imin(B, n - t0), state + h * d * d, zero && t0 == 0, true);
      }
    }
  });
}

namespace {
// One token for columns [c0, c0 + 4W) of the value dim: S[a, c] = λ S[a, c] + k_a v_c; o_c = Σ_a q_a S[a, c].
template <bool Full>
inline void step_cols(const float* qt, const float* kt, const float* vt, float lam_hi, float lam_lo, float* S,
                      int64_t d, int64_t c0, float* ot) {
  typename V::Mask mk[4];
  V vv[4], o[4];
  M1_UNROLL for (int u = 0; u < 4; u++) {
    mk[u] = V::mask(d - c0 - u * V::W);
    vv[u] = Full ? V::load(vt + c0 + u * V::W) : V::load(vt + c0 + u * V::W, mk[u]);
    o[u] = V::zero();
  }
  const V lh = V::set1(lam_hi), ll = V::set1(lam_lo);
  for (int64_t a = 0; a < d; a++) {
    const V ka = V::set1(kt[a]), qa = V::set1(qt[a]);
    float* row = S + a * d + c0;
    M1_UNROLL for (int u = 0; u < 4; u++) {
      V sv = Full ? V::load(row + u * V::W) : V::load(row + u * V::W, mk[u]);
      sv = fma(lh, sv, fma(ll, sv, ka * vv[u]));
      if (Full) sv.store(row + u * V::W);
      else sv.store(row + u * V::W, mk[u]);
      o[u] = fma(qa, sv, o[u]);
    }
  }
  M1_UNROLL for (int u = 0; u < 4; u++) {
    if (Full) o[u].store(ot + c0 + u * V::W);
    else o[u].store(ot + c0 + u * V::W, mk[u]);
  }
}
}  // namespace

void lightning_step(const float* q, const float* k, const float* v, int64_t ld, int64_t hs, int64_t n, int64_t heads,
                    int64_t d, const float* slopes, float* state, float* out) {
  if (heads <= 0 || d <= 0) return;
  const int64_t ldo = heads * d;
  // a decode step of a small model is a few microseconds of work: not worth waking the pool for
  const int64_t grain = imax(1, (int64_t(1) << 15) / imax(1, n * d * d));
  parallel_for(heads, grain, [&](int64_t lo, int64_t hi) {
    for (int64_t h = lo; h < hi; h++) {
      // λ as an unevaluated sum hi + lo: an f32 λ alone would bias λ^t by t·(rounding of λ)
      const double lam = exp(-double(slopes[h]));
      const float lam_hi = float(lam), lam_lo = float(lam - double(lam_hi));
      float* S = state + h * d * d;
      for (int64_t t = 0; t < n; t++) {
        const int64_t off = t * ld + h * hs;
        float* o = out + t * ldo + h * d;
        for (int64_t c0 = 0; c0 < d; c0 += 4 * V::W) {
          if (c0 + 4 * V::W <= d) step_cols<true>(q + off, k + off, v + off, lam_hi, lam_lo, S, d, c0, o);
          else step_cols<false>(q + off, k + off, v + off, lam_hi, lam_lo, S, d, c0, o);
        }
      }
    }
  });
}

// Backward of lightning_prefill from a zero initial state. With o_t = Σ_{s≤t} λ^{t−s} (q_t·k_s) v_s:
//   dq_t = Σ_{s≤t} λ^{t−s} (do_t·v_s) k_s   — the forward scan with (q, k, v) = (do, v, k)
//   dk_s = Σ_{t≥s} λ^{t−s} (v_s·do_t) q_t   — the forward scan over the reversed sequence with (v, do, q)
//   dv_s = Σ_{t≥s} λ^{t−s} (k_s·q_t) do_t   — the same with (k, q, do)
// The reversed scans carry the state gradient dS backwards across blocks; within a block the decay tables
// weight the intra-block terms. dq, dk, dv are written in the layout of q, k, v (ld, hs); dout is [n, heads, d].
void lightning_backward(const float* q, const float* k, const float* v, int64_t ld, int64_t hs, const float* dout,
                        int64_t n, int64_t heads, int64_t d, const float* slopes, int64_t B, float* dq, float* dk,
                        float* dv) {
  if (heads <= 0 || d <= 0 || n <= 0) return;
  const int64_t ldo = heads * d;
  parallel_for(3 * heads, 1, [&](int64_t lo, int64_t hi) {
    float* pw = scratch(slot::kLightningDecay, B + 1);
    float* S = scratch(slot::kLightningStateGrad, d * d);
    for (int64_t item = lo; item < hi; item++) {
      const int64_t h = item / 3, which = item % 3;
      const double s = double(slopes[h]);
      decay_powers(s, imin(B, n), pw);
      memset(S, 0, size_t(d * d) * 4);
      const int64_t last = n - 1;
      if (which == 0) {
        scan_from_zero({dout + h * d, ldo}, {v + h * hs, ld}, {k + h * hs, ld}, dq + h * hs, ld, n, d, s, pw, B, S);
      } else {
        const Rows rq{q + last * ld + h * hs, -ld}, rk{k + last * ld + h * hs, -ld}, rv{v + last * ld + h * hs, -ld};
        const Rows rdo{dout + last * ldo + h * d, -ldo};
        if (which == 1) scan_from_zero(rv, rdo, rq, dk + last * ld + h * hs, -ld, n, d, s, pw, B, S);
        else scan_from_zero(rk, rq, rdo, dv + last * ld + h * hs, -ld, n, d, s, pw, B, S);
      }
    }
  });
}

}  // namespace M1_NS
}  // namespace m1
