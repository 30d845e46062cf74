// Token sampling (engine/sampling.ts's Sampler): the candidates of a row of logits in descending order, and the
// pick of a token from them at a temperature, top-k and top-p with a uniform drawn in JavaScript. The pick does in
// double, in the same order, the arithmetic that Sampler.pick did in JavaScript, so the tokens stay the same: only
// the exponential (exp_in_range below, within about an ulp, and V8's Math.exp) may differ in the last bits, which
// moves a token only when the draw lands within ~1e-16 of a boundary between two candidates. (No multiply is
// followed by an add in one expression, and this target is built without FMA, so no contraction changes a sum or
// the exponential: every machine gets the same bits.)
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "args.h"
#include "bindings.h"
#include "threadpool.h"

namespace m1 {
namespace {

using namespace args;

// A logit's bits as a 32-bit key whose ascending unsigned order is the logits' descending order (-0 ties with +0):
// negative floats keep their bits (they grow with the magnitude, top bit set), positive ones are complemented with
// the top bit cleared.
inline uint32_t descending_key(float logit) {
  uint32_t b;
  std::memcpy(&b, &logit, 4);
  if (b == 0x80000000u) b = 0;
  return (b & 0x80000000u) ? b : (~b & 0x7fffffffu);
}

// The logit of a key (-0 comes back as +0, which every use below treats alike).
inline float key_logit(uint32_t key) {
  const uint32_t b = (key & 0x80000000u) ? key : (~key & 0x7fffffffu);
  float logit;
  std::memcpy(&logit, &b, 4);
  return logit;
}

inline bool is_nan(float x) {
  uint32_t b;
  std::memcpy(&b, &x, 4);
  return (b & 0x7fffffffu) > 0x7f800000u;
}

// The candidates of a row as 64-bit words, key above id: every word is distinct and sorting the words sorts the ids
// by descending logit, equal logits by ascending id.
inline uint64_t candidate(float logit, int32_t id) { return (uint64_t(descending_key(logit)) << 32) | uint32_t(id); }
inline int32_t candidate_id(uint64_t w) { return int32_t(w & 0xffffffffu); }
inline float candidate_logit(uint64_t w) { return key_logit(uint32_t(w >> 32)); }

// Least-significant-digit radix sort of the candidates by key, kBits of the key per pass, stable (equal keys keep
// ascending ids); a pass whose digit is the same in every word is skipped. The words are read as kStreams
// contiguous parts, one word of each in turn, each part with its own bucket offsets (part s's words of a digit go
// after those of the parts before it, so the sort stays stable). Each word's place is a count that the word before
// may just have incremented, which held one stream to about 9 cycles a word; four streams keep four of those chains
// going (the sort of 16384 candidates in about 0.65x the time, alone on a core). words and spare: n each; returns
// the one that holds the sorted words, or null when a logit is NaN.
template <int kBits>
uint64_t* radix_sort(const float* logits, int64_t n, uint64_t* words, uint64_t* spare) {
  constexpr int kBuckets = 1 << kBits, kPasses = (32 + kBits - 1) / kBits, kStreams = 4;
  thread_local std::vector<uint32_t> offsets(kStreams * kBuckets);  // [stream][bucket]
  uint32_t same = ~0u, any = 0;  // the bits set in every key, in some key
  for (int64_t i = 0; i < n; i++) {
    if (is_nan(logits[i])) return nullptr;
    words[i] = candidate(logits[i], int32_t(i));
    const uint32_t key = descending_key(logits[i]);
    same &= key;
    any |= key;
  }
  const int64_t part = n / kStreams, tail = kStreams * part;  // the last stream also takes [tail, n)
  for (int p = 0; p < kPasses; p++) {
    const int shift = 32 + p * kBits;
    if ((((same ^ any) >> (p * kBits)) & (kBuckets - 1)) == 0) continue;
    const auto digit = [&](uint64_t w) { return uint32_t(w >> shift) & (kBuckets - 1); };
    uint32_t* count = offsets.data();
    std::fill(offsets.begin(), offsets.end(), 0u);
    for (int64_t i = 0; i < part; i++)
      for (int s = 0; s < kStreams; s++) count[s * kBuckets + digit(words[s * part + i])]++;
    for (int64_t i = tail; i < n; i++) count[(kStreams - 1) * kBuckets + digit(words[i])]++;
    for (uint32_t d = 0, at = 0; d < uint32_t(kBuckets); d++) {  // digit d after the smaller ones, stream by stream
      for (int s = 0; s < kStreams; s++) {
        const uint32_t size = count[s * kBuckets + d];
        count[s * kBuckets + d] = at;
        at += size;
      }
    }
    for (int64_t i = 0; i < part; i++) {
      for (int s = 0; s < kStreams; s++) {
        const uint64_t w = words[s * part + i];
        spare[count[s * kBuckets + digit(w)]++] = w;
      }
    }
    for (int64_t i = tail; i < n; i++) spare[count[(kStreams - 1) * kBuckets + digit(words[i])]++] = words[i];
    std::swap(words, spare);
  }
  return words;
}

// Sorts the n candidates of logits into ascending words (words and spare: n each; the sorted words end in one of
// them, returned), or null when a logit is NaN (whose comparator order is JavaScript's: engine/sampling.ts). A few
// hundred sort by comparison; more by the radix sort, linear in the vocabulary, in 11-bit digits (3 passes: 16-bit
// ones, 2 passes over tables too large for four streams, were no faster at 200K candidates).
uint64_t* sort_candidates(const float* logits, int64_t n, uint64_t* words, uint64_t* spare) {
  if (n > 256) return radix_sort<11>(logits, n, words, spare);
  for (int64_t i = 0; i < n; i++) {
    if (is_nan(logits[i])) return nullptr;
    words[i] = candidate(logits[i], int32_t(i));
  }
  std::sort(words, words + n);
  return words;
}

// One row's sampling options (engine/sampling.ts's SamplingOptions, resolved).
struct PickOptions {
  double temperature;  // 0: greedy
  int64_t top_k;       // the candidates kept by top-k, in [1, n]
  double top_p;        // in (0, 1]
  double uniform;      // in [0, 1): the draw of the Sampler's Rng
};

// Greedy: the first id of the largest logit (a NaN is never larger, nor is anything larger than a NaN at 0).
int32_t argmax(const float* logits, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; i++)
    if (logits[i] > logits[best]) best = i;
  return int32_t(best);
}

// e^x for x in [kExpLow, 0] (every probability of a pick but those of logits far below the largest): x = k·ln 2 + r
// with |r| <= ln 2 / 2 (ln 2 in two parts, Cody and Waite's reduction: k·kLn2Hi is exact), e^r by its Taylor series
// to r^13 / 13! (what it leaves out is below 2^-60 of e^r), times 2^k written into the exponent. Within about an ulp
// of e^x; no branch, so the loop over a row vectorizes.
constexpr double kExpLow = -707;  // e^x stays a normal double above 2^-1021
inline double exp_in_range(double x) {
  constexpr double kInvLn2 = 1.4426950408889634;
  constexpr double kShift = 6755399441055744.0;  // 1.5 · 2^52: adding it rounds to an integer, held in the low bits
  constexpr double kLn2Hi = 6.93147180369123816490e-01, kLn2Lo = 1.90821492927058770002e-10;
  const double shifted = x * kInvLn2 + kShift;
  const double k = shifted - kShift;
  const double r = (x - k * kLn2Hi) - k * kLn2Lo;
  constexpr double kInverseFactorials[] = {1.0 / 6227020800.0, 1.0 / 479001600.0, 1.0 / 39916800.0, 1.0 / 3628800.0,
                                           1.0 / 362880.0,     1.0 / 40320.0,     1.0 / 5040.0,       1.0 / 720.0,
                                           1.0 / 120.0,        1.0 / 24.0,        1.0 / 6.0,          0.5,
                                           1.0,                1.0};  // 1/13! down to 1/0!
  double p = kInverseFactorials[0];  // by Horner's rule (even and odd terms in two chains of r² came out 2 ulps off)
  for (int i = 1; i < 14; i++) p = p * r + kInverseFactorials[i];
  uint64_t bits;
  std::memcpy(&bits, &shifted, 8);
  const uint64_t exponent = (bits - 0x4338000000000000ull + 1023) << 52;  // k + 1023 (bits: kShift's plus k)
  double scale;
  std::memcpy(&scale, &exponent, 8);
  return p * scale;
}

// x[i] = e^x[i] for a row of exponents <= 0 (or NaN): exp_in_range, or std::exp where one is below kExpLow (a tiny
// or zero result, or NaN).
void exp_row(double* x, int64_t n) {
  int64_t below = 0;
  for (int64_t i = 0; i < n; i++) below += !(x[i] >= kExpLow);
  if (below == 0) {
    for (int64_t i = 0; i < n; i++) x[i] = exp_in_range(x[i]);
  } else {
    for (int64_t i = 0; i < n; i++) x[i] = x[i] >= kExpLow ? exp_in_range(x[i]) : std::exp(x[i]);
  }
}

// Sampler.pick over candidates sorted by descending logit, of which top-k keeps c[0..k); probs (k doubles) as scratch.
int32_t pick_sorted(const uint64_t* c, const PickOptions& o, double* probs) {
  const int64_t k = o.top_k;
  // p_i = exp((l_i - l_0) / T), unnormalised, summed in candidate order
  const double max = candidate_logit(c[0]);
  for (int64_t i = 0; i < k; i++) probs[i] = (double(candidate_logit(c[i])) - max) / o.temperature;
  exp_row(probs, k);
  double sum = 0;
  for (int64_t i = 0; i < k; i++) sum += probs[i];
  // top-p: the first `keep` candidates, where Σ p_i / sum first reaches top_p; `kept` their Σ p_i (all k: the sum)
  int64_t keep = k;
  double kept = sum;
  if (o.top_p < 1) {
    double cumulative = 0, head = 0;
    for (int64_t i = 0; i < k; i++) {
      cumulative += probs[i] / sum;
      head += probs[i];
      if (cumulative >= o.top_p) {
        keep = i + 1;
        kept = head;
        break;
      }
    }
  }
  // the draw: r = u · kept walked down the kept candidates (rounding may leave r >= 0 past the last: that one)
  double r = o.uniform * kept;
  for (int64_t i = 0; i < keep; i++) {
    r -= probs[i];
    if (r < 0) return candidate_id(c[i]);
  }
  return candidate_id(c[keep - 1]);
}

// The scratch of a pick: 2n words, the second half also the probabilities once the candidates are sorted. Kept per
// thread (the pool's workers and the caller) up to kKeptScratchWords, 2M ids' worth (M1's 200064 ten times over); a
// larger one is the call's own and freed when the call ends, so one huge row leaves no gigabytes on every thread.
constexpr int64_t kKeptScratchWords = int64_t(1) << 22;  // 32 MiB
class PickScratch {
 public:
  explicit PickScratch(int64_t n) {
    thread_local std::vector<uint64_t> kept;
    std::vector<uint64_t>& v = 2 * n <= kKeptScratchWords ? kept : own_;
    if (int64_t(v.size()) < 2 * n) v.resize(size_t(2 * n));
    words_ = v.data();
  }
  uint64_t* words() const { return words_; }

 private:
  std::vector<uint64_t> own_;
  uint64_t* words_;
};

// The token of one row: greedy or sampled; -1 when a sampled row holds a NaN logit and no order is given. order
// (optional): the candidates' order to take instead of sorting (the comparator order of a row with a NaN).
int32_t pick(const float* logits, int64_t n, const PickOptions& o, const int32_t* order) {
  if (o.temperature == 0) return argmax(logits, n);
  const PickScratch scratch(n);
  uint64_t* words = scratch.words();
  uint64_t* spare = words + n;
  uint64_t* sorted = words;
  if (order) {
    for (int64_t i = 0; i < n; i++) words[i] = candidate(logits[order[i]], order[i]);
  } else if (!(sorted = sort_candidates(logits, n, words, spare))) {
    return -1;
  }
  static_assert(sizeof(double) == sizeof(uint64_t), "the spare half holds the probabilities");
  double* probs = reinterpret_cast<double*>(sorted == words ? spare : words);
  return pick_sorted(sorted, o, probs);
}

// The options of a row of n logits, checked (top_k 0: every candidate); the names ("temperature",
// "temperature[3]") are the caller's.
PickOptions pick_options(const Ctx& c, int64_t n, double temperature, double top_k, double top_p, double uniform,
                         const char* t_name, const char* k_name, const char* p_name, const char* u_name) {
  const auto got = [](double x) {  // as JavaScript writes it
    if (std::isnan(x)) return std::string(", got NaN");
    if (std::isinf(x)) return std::string(x > 0 ? ", got Infinity" : ", got -Infinity");
    char s[32];
    std::snprintf(s, sizeof s, ", got %g", x);
    return std::string(s);
  };
  if (!(temperature >= 0 && std::isfinite(temperature)))
    c.range_error(std::string(t_name) + " must be a finite number >= 0" + got(temperature));
  if (!(top_k >= 0 && top_k == std::floor(top_k) && std::isfinite(top_k)))
    c.range_error(std::string(k_name) + " must be an integer >= 0 (0: every candidate)" + got(top_k));
  if (!(top_p > 0 && top_p <= 1)) c.range_error(std::string(p_name) + " must be in (0, 1]" + got(top_p));
  if (!(uniform >= 0 && uniform < 1)) c.range_error(std::string(u_name) + " must be in [0, 1)" + got(uniform));
  return {temperature, top_k == 0 || top_k >= double(n) ? n : int64_t(top_k), top_p, uniform};
}

// descendingOrder(logits, order) → false, order untouched, when a logit is NaN; else order[i] = the token ids by
// descending logit, equal logits (and -0, +0) by ascending id.
Value DescendingOrder(const CallbackInfo& info) {
  Ctx c{info.Env(), "descendingOrder"};
  Arr<float> logits = f32(c, info[0], "logits");
  Arr<int32_t> order = i32(c, info[1], "order");
  expect_len(c, order, logits.len, "logits.length");
  const PickScratch scratch(logits.len);
  uint64_t* words = scratch.words();
  const uint64_t* sorted = sort_candidates(logits.data, logits.len, words, words + logits.len);
  if (!sorted) return Napi::Boolean::New(c.env, false);
  for (int64_t i = 0; i < logits.len; i++) order.data[i] = candidate_id(sorted[i]);
  return Napi::Boolean::New(c.env, true);
}

// sampleRow(logits, temperature, topK, topP, uniform[, order]) → the token id; -1 when the row is sampled and holds
// a NaN logit (then give its comparator order as `order`).
Value SampleRow(const CallbackInfo& info) {
  Ctx c{info.Env(), "sampleRow"};
  Arr<float> logits = f32(c, info[0], "logits");
  if (logits.len == 0) c.range_error("logits is empty");
  if (logits.len > INT32_MAX) c.range_error("logits has more than 2^31 - 1 elements");
  const PickOptions o = pick_options(c, logits.len, number(c, info[1], "temperature"), number(c, info[2], "topK"),
                                     number(c, info[3], "topP"), number(c, info[4], "uniform"), "temperature", "topK",
                                     "topP", "uniform");
  const int32_t* order = nullptr;
  if (!absent(info[5])) {
    Arr<int32_t> given = i32(c, info[5], "order");
    expect_len(c, given, logits.len, "logits.length");
    for (int64_t i = 0; i < given.len; i++)
      if (given.data[i] < 0 || given.data[i] >= logits.len)
        c.range_error("order[" + str(i) + "] = " + str(given.data[i]) + " is not an index of logits [0, " +
                      str(logits.len) + ")");
    order = given.data;
  }
  return Napi::Number::New(c.env, pick(logits.data, logits.len, o, order));
}

// sampleRows(rows, temperature, topK, topP, uniform) → Int32Array of each row's token (-1: a sampled row with a NaN
// logit, as sampleRow): rows an array of Float32Arrays of one length, the options one entry per row; the rows are
// shared out to the pool's threads.
Value SampleRows(const CallbackInfo& info) {
  Ctx c{info.Env(), "sampleRows"};
  if (!info[0].IsArray()) c.type_error("rows must be an array of Float32Arrays");
  Napi::Array rows_arg = info[0].As<Napi::Array>();
  const int64_t n_rows = int64_t(rows_arg.Length());
  Arr<double> t = typed<double>(c, info[1], "temperature", napi_float64_array, "Float64Array");
  Arr<int32_t> k = i32(c, info[2], "topK");
  Arr<double> p = typed<double>(c, info[3], "topP", napi_float64_array, "Float64Array");
  Arr<double> u = typed<double>(c, info[4], "uniform", napi_float64_array, "Float64Array");
  for (const auto* a : {&t, &p, &u}) expect_len(c, *a, n_rows, "rows.length");
  expect_len(c, k, n_rows, "rows.length");
  std::vector<const float*> rows(static_cast<size_t>(n_rows));
  std::vector<PickOptions> options(static_cast<size_t>(n_rows));
  int64_t vocab = 0;
  for (int64_t r = 0; r < n_rows; r++) {
    const Name name("rows", r);
    Arr<float> row = f32(c, rows_arg.Get(uint32_t(r)), name);
    if (r == 0) {
      if (row.len == 0) c.range_error("rows[0] is empty");
      if (row.len > INT32_MAX) c.range_error("rows[0] has more than 2^31 - 1 elements");
      vocab = row.len;
    }
    expect_len(c, row, vocab, "rows[0].length");
    rows[size_t(r)] = row.data;
    options[size_t(r)] = pick_options(c, vocab, t.data[r], k.data[r], p.data[r], u.data[r], Name("temperature", r),
                                      Name("topK", r), Name("topP", r), Name("uniform", r));
  }
  Napi::Int32Array ids = Napi::Int32Array::New(c.env, size_t(n_rows));
  int32_t* out = ids.Data();
  // a task of at least ~16K candidates (~0.3 ms): rows of a small vocabulary are not worth waking a thread for
  const int64_t rows_per_task = std::max<int64_t>(1, 16384 / std::max<int64_t>(vocab, 1));
  parallel_for(
      n_rows, rows_per_task,
      [&](int64_t lo, int64_t hi) {
        for (int64_t r = lo; r < hi; r++) out[r] = pick(rows[size_t(r)], vocab, options[size_t(r)], nullptr);
      },
      NextJob::kFar);
  return ids;
}

}  // namespace

void define_sampling(Napi::Env env, Napi::Object exports) {
  exports.Set("descendingOrder", Napi::Function::New(env, DescendingOrder, "descendingOrder"));
  exports.Set("sampleRow", Napi::Function::New(env, SampleRow, "sampleRow"));
  exports.Set("sampleRows", Napi::Function::New(env, SampleRows, "sampleRows"));
}

}  // namespace m1
