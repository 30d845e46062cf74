// m1-driver: the engine's C++ core without Node.js (for machines that have none, e.g. a GPU box): runs a model
// described by a driver manifest (`npx m1 driver-manifest CHECKPOINT --out FILE`) and prints one JSON object.
//   m1-driver MANIFEST forward IDS [--logits last|all]    logits of the prompt
//   m1-driver MANIFEST generate IDS [--steps N]           greedy new tokens (stops at the manifest's eos)
//   m1-driver MANIFEST bench [--prefill N] [--decode S]   tokens/s of a prefill of N tokens and S decode steps
// IDS: comma-separated token ids. Options of every command: --threads T (default: all cores); M1_ISA as for the addon.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "dispatch.h"
#include "manifest.h"
#include "threadpool.h"

namespace m1 {
namespace {

const char* kUsage =
    "usage: m1-driver MANIFEST forward IDS [--logits last|all] [--threads T]\n"
    "       m1-driver MANIFEST generate IDS [--steps N] [--threads T]\n"
    "       m1-driver MANIFEST bench [--prefill N] [--decode STEPS] [--tries N] [--threads T]\n";

struct Args {
  std::string manifest, command, ids, logits = "last";
  int64_t steps = 16, prefill = 2048, decode = 32, tries = 3, threads = 0;
};

int64_t integer(const std::string& flag, const char* text, int64_t min) {
  char* end = nullptr;
  const long long v = std::strtoll(text, &end, 10);
  if (!*text || *end || v < min) throw std::invalid_argument(flag + ": \"" + text + "\" is not an integer >= " + std::to_string(min));
  return v;
}

Args parse(int argc, char** argv) {
  if (argc < 3) throw std::invalid_argument("missing arguments");
  Args a;
  a.manifest = argv[1];
  a.command = argv[2];
  int i = 3;
  if (a.command == "forward" || a.command == "generate") {
    if (argc < 4) throw std::invalid_argument(a.command + ": missing IDS");
    a.ids = argv[i++];
  } else if (a.command != "bench") {
    throw std::invalid_argument("unknown command \"" + a.command + "\"");
  }
  for (; i < argc; i++) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) throw std::invalid_argument(flag + ": missing value");
    const char* v = argv[++i];
    if (flag == "--logits" && (std::strcmp(v, "last") == 0 || std::strcmp(v, "all") == 0)) a.logits = v;
    else if (flag == "--steps") a.steps = integer(flag, v, 0);
    else if (flag == "--prefill") a.prefill = integer(flag, v, 1);
    else if (flag == "--decode") a.decode = integer(flag, v, 0);
    else if (flag == "--tries") a.tries = integer(flag, v, 1);
    else if (flag == "--threads") a.threads = integer(flag, v, 1);
    else throw std::invalid_argument("unknown option " + flag + " " + v);
  }
  return a;
}

std::vector<int32_t> token_ids(const std::string& text, int64_t vocab) {
  std::vector<int32_t> ids;
  size_t at = 0;
  while (at <= text.size()) {
    const size_t comma = std::min(text.find(',', at), text.size());
    const std::string item = text.substr(at, comma - at);
    const int64_t id = integer("IDS", item.c_str(), 0);
    if (id >= vocab) throw std::invalid_argument("IDS: token id " + item + " is outside the vocabulary [0, " + std::to_string(vocab) + ")");
    ids.push_back(int32_t(id));
    at = comma + 1;
  }
  return ids;
}

// The decoding state of every layer, with room for `capacity` tokens in the KV caches.
struct State {
  std::vector<std::vector<float>> buffers;
  std::vector<LayerCache> caches;
  State(const DriverModel& m, int64_t capacity) {
    for (const auto& l : m.layers) {
      const AttentionBlock& b = l->params.attention;
      LayerCache c{};
      if (b.lightning) {
        buffers.emplace_back(size_t(b.heads * b.head_dim * b.head_dim), 0.0f);
        c.state = buffers.back().data();
      } else {
        const size_t rows = size_t(capacity * b.softmax->kv_heads * b.head_dim);
        buffers.emplace_back(rows, 0.0f);
        c.keys = buffers.back().data();
        buffers.emplace_back(rows, 0.0f);
        c.values = buffers.back().data();
      }
      caches.push_back(c);
    }
  }
  // n tokens on top of the cache → logits of the last `rows`. A long prompt goes through in chunks of whole
  // lightning blocks (kPrefillChunk tokens): the intermediates stay bounded, and a prefill in chunks on a cache
  // equals one long prefill (to f32 rounding; test/golden.test.ts shows it for the engine).
  void forward(const DriverModel& m, const int32_t* ids, int64_t n, int64_t rows, float* logits) {
    constexpr int64_t kPrefillChunk = 2048;
    const int64_t first_row = n - rows;  // the first position whose logits are wanted
    for (int64_t t0 = 0; t0 < n; t0 += kPrefillChunk) {
      const int64_t t1 = std::min(n, t0 + kPrefillChunk), chunk_rows = std::max<int64_t>(0, t1 - std::max(t0, first_row));
      decoder_forward(kernels(), m.model, ids + t0, t1 - t0, caches.data(), chunk_rows,
                      logits + (t1 - chunk_rows - first_row) * m.vocab);
      for (LayerCache& c : caches) {
        c.length += t1 - t0;
        c.position += t1 - t0;
      }
    }
  }
};

int32_t argmax(const float* x, int64_t n) {  // ties go to the lower id, as the engine's greedy sampler
  int64_t best = 0;
  for (int64_t i = 1; i < n; i++)
    if (x[i] > x[best]) best = i;
  return int32_t(best);
}

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

int run(const Args& a) {
  dispatch_init();
  if (a.threads) set_num_threads(int(a.threads));
  const auto m = load_manifest(a.manifest);
  const int64_t V = m->vocab;
  if (a.command == "forward") {
    const std::vector<int32_t> ids = token_ids(a.ids, V);
    const int64_t n = int64_t(ids.size()), rows = a.logits == "all" ? n : 1;
    State s(*m, n);
    std::vector<float> logits(size_t(rows * V));
    s.forward(*m, ids.data(), n, rows, logits.data());
    std::printf("{\"tokens\":%lld,\"rows\":%lld,\"vocab\":%lld,\"logits\":[", (long long)n, (long long)rows, (long long)V);
    for (size_t i = 0; i < logits.size(); i++) std::printf(i ? ",%.9g" : "%.9g", double(logits[i]));
    std::printf("]}\n");
  } else if (a.command == "generate") {
    std::vector<int32_t> ids = token_ids(a.ids, V);
    State s(*m, int64_t(ids.size()) + a.steps);
    std::vector<float> logits(static_cast<size_t>(V));
    std::vector<int32_t> out;
    s.forward(*m, ids.data(), int64_t(ids.size()), 1, logits.data());
    for (int64_t t = 0; t < a.steps; t++) {
      const int32_t next = argmax(logits.data(), V);
      out.push_back(next);
      if (next == m->eos || t + 1 == a.steps) break;
      s.forward(*m, &next, 1, 1, logits.data());
    }
    std::printf("{\"ids\":[");
    for (size_t i = 0; i < out.size(); i++) std::printf(i ? ",%d" : "%d", out[i]);
    std::printf("]}\n");
  } else {
    std::vector<int32_t> ids(size_t(a.prefill + a.decode + 1));
    uint32_t x = 2463534242u;
    for (int32_t& id : ids) {  // deterministic ids in [2, vocab)
      x ^= x << 13, x ^= x >> 17, x ^= x << 5;
      id = int32_t(2 + x % uint32_t(std::max<int64_t>(1, V - 2)));
    }
    std::vector<float> logits(static_cast<size_t>(V));
    double prefill = 1e300, decode = 1e300;
    for (int64_t k = 0; k < a.tries; k++) {
      State s(*m, a.prefill + a.decode);
      double t = now();
      s.forward(*m, ids.data(), a.prefill, 1, logits.data());
      prefill = std::min(prefill, now() - t);
      t = now();
      for (int64_t i = 0; i < a.decode; i++) s.forward(*m, &ids[size_t(a.prefill + i)], 1, 1, logits.data());
      decode = std::min(decode, now() - t);
    }
    std::printf("{\"prefill_tokens\":%lld,\"prefill_tok_s\":%.6g,\"decode_steps\":%lld,\"decode_tok_s\":%.6g,"
                "\"threads\":%d,\"isa\":\"%s\"}\n",
                (long long)a.prefill, double(a.prefill) / prefill, (long long)a.decode,
                a.decode ? double(a.decode) / decode : 0.0, num_threads(), current_isa().c_str());
  }
  return 0;
}

}  // namespace
}  // namespace m1

int main(int argc, char** argv) {
  m1::Args args;
  try {
    args = m1::parse(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "m1-driver: %s\n%s", e.what(), m1::kUsage);
    return 2;
  }
  try {
    return m1::run(args);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "m1-driver: %s\n", e.what());
    return 1;
  }
}
