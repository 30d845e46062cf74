// The decoder objects: DecoderLayer (one layer's weights and constants, validated once) and Decoder (the whole
// model over its layers), which run without returning to JavaScript (layer.h).
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "args.h"
#include "bindings.h"
#include "dispatch.h"
#include "layer.h"
#include "threadpool.h"

namespace m1 {
namespace {

using namespace args;

// A decoder layer's weights and constants, validated once (see layer.h); forward() runs the layer on a few tokens.
// The layer keeps a reference to every array it reads, so none is collected while it lives.
class DecoderLayer : public Napi::ObjectWrap<DecoderLayer> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "DecoderLayer", {InstanceMethod<&DecoderLayer::Forward>("forward")});
  }

  explicit DecoderLayer(const CallbackInfo& info) : Napi::ObjectWrap<DecoderLayer>(info) {
    Ctx c{info.Env(), "decoderLayer"};
    if (!info[0].IsObject()) c.type_error("spec must be an object");
    const Napi::Object s = info[0].As<Napi::Object>();
    const std::string S = "spec";
    p_.attention.hidden = dim(c, prop(c, s, S, "hidden"), "spec.hidden");
    p_.attention.heads = dim(c, prop(c, s, S, "heads"), "spec.heads");
    p_.attention.head_dim = dim(c, prop(c, s, S, "headDim"), "spec.headDim");
    const int64_t hs = p_.attention.hidden, d = p_.attention.head_dim;
    if (hs < 1 || p_.attention.heads < 1 || d < 1) c.range_error("spec.hidden, spec.heads and spec.headDim must be >= 1");
    const int64_t inner = prod(c, {p_.attention.heads, d});
    p_.attention.ln1 = vector(c, prop(c, s, S, "ln1"), "spec.ln1", hs, "hidden");
    p_.attention.ln2 = vector(c, prop(c, s, S, "ln2"), "spec.ln2", hs, "hidden");
    p_.attention.eps = non_negative(c, prop(c, s, S, "eps"), "spec.eps");
    p_.attention.alpha = float(number(c, prop(c, s, S, "alpha"), "spec.alpha"));
    p_.attention.beta = float(number(c, prop(c, s, S, "beta"), "spec.beta"));
    const Napi::Value pn = prop(c, s, S, "postnorm");
    if (!pn.IsBoolean()) c.type_error("spec.postnorm must be a boolean");
    p_.attention.postnorm = pn.As<Napi::Boolean>().Value();
    const Napi::Value ev = prop(c, s, S, "experts");
    if (!ev.IsArray() || ev.As<Napi::Array>().Length() < 1) c.type_error("spec.experts must be a non-empty array of { w1, w3, w2 }");
    const int64_t ne = int64_t(ev.As<Napi::Array>().Length());
    p_.attention.router = matrix(c, prop(c, s, S, "router"), "spec.router", ne, hs);
    p_.attention.top_k = dim(c, prop(c, s, S, "topK"), "spec.topK");
    if (p_.attention.top_k < 1 || p_.attention.top_k > ne) c.range_error("spec.topK must be in [1, experts = " + str(ne) + "], got " + str(p_.attention.top_k));
    p_.mlp.alpha = float(number(c, prop(c, s, S, "mlpAlpha"), "spec.mlpAlpha"));
    p_.mlp.beta = float(number(c, prop(c, s, S, "mlpBeta"), "spec.mlpBeta"));
    views_.resize(size_t(ne));
    ptrs_.resize(size_t(ne));
    int64_t F = -1;
    for (int64_t e = 0; e < ne; e++) {
      const std::string en = "spec.experts[" + str(e) + "]";
      const Napi::Value x = ev.As<Napi::Array>().Get(uint32_t(e));
      if (!x.IsObject()) c.type_error(en + " must be { w1, w3, w2 }");
      const Napi::Object eo = x.As<Napi::Object>();
      WeightArg w1 = weight(c, prop(c, eo, en, "w1"), en + ".w1");
      if (F < 0) F = w1.w.rows;
      views_[size_t(e)] = ExpertView{matrix(c, w1, en + ".w1", F, hs, eo.Get("w1")),
                                     matrix(c, prop(c, eo, en, "w3"), en + ".w3", F, hs),
                                     matrix(c, prop(c, eo, en, "w2"), en + ".w2", hs, F)};
      ptrs_[size_t(e)] = &views_[size_t(e)];
    }
    p_.mlp.experts = ptrs_.data();
    p_.mlp.num_experts = ne;

    const Napi::Value lv = s.Get("lightning"), sv = s.Get("softmax");
    if (absent(lv) == absent(sv)) c.type_error("spec needs exactly one of spec.lightning and spec.softmax");
    if (!absent(lv)) {
      if (!lv.IsObject()) c.type_error("spec.lightning must be an object");
      const Napi::Object l = lv.As<Napi::Object>();
      const std::string L = "spec.lightning";
      lp_.qkv = matrix(c, prop(c, l, L, "qkv"), L + ".qkv", prod(c, {3, inner}), hs);
      lp_.gate = matrix(c, prop(c, l, L, "gate"), L + ".gate", inner, hs);
      lp_.out = matrix(c, prop(c, l, L, "out"), L + ".out", hs, inner);
      lp_.norm = vector(c, prop(c, l, L, "norm"), "spec.lightning.norm", inner, "heads*headDim");
      lp_.norm_eps = non_negative(c, prop(c, l, L, "normEps"), "spec.lightning.normEps");
      lp_.slopes = vector(c, prop(c, l, L, "slopes"), "spec.lightning.slopes", p_.attention.heads, "heads");
      lp_.block = dim(c, prop(c, l, L, "blockSize"), "spec.lightning.blockSize");
      if (lp_.block < 1 || lp_.block > 4096) c.range_error("spec.lightning.blockSize must be in [1, 4096]");
      p_.attention.lightning = &lp_;
    } else {
      if (!sv.IsObject()) c.type_error("spec.softmax must be an object");
      const Napi::Object o = sv.As<Napi::Object>();
      const std::string O = "spec.softmax";
      sp_.kv_heads = dim(c, prop(c, o, O, "kvHeads"), "spec.softmax.kvHeads");
      if (sp_.kv_heads < 1 || p_.attention.heads % sp_.kv_heads != 0)
        c.range_error("spec.softmax.kvHeads (" + str(sp_.kv_heads) + ") must be >= 1 and divide heads (" + str(p_.attention.heads) + ")");
      const int64_t row = prod(c, {sp_.kv_heads, d});
      sp_.q = matrix(c, prop(c, o, O, "q"), O + ".q", inner, hs);
      sp_.k = matrix(c, prop(c, o, O, "k"), O + ".k", row, hs);
      sp_.v = matrix(c, prop(c, o, O, "v"), O + ".v", row, hs);
      sp_.o = matrix(c, prop(c, o, O, "o"), O + ".o", hs, inner);
      sp_.rotary_dim = dim(c, prop(c, o, O, "rotaryDim"), "spec.softmax.rotaryDim");
      if (sp_.rotary_dim > d || sp_.rotary_dim % 2)
        c.range_error("spec.softmax.rotaryDim must be even and <= headDim (" + str(d) + "), got " + str(sp_.rotary_dim));
      sp_.theta = finite(c, prop(c, o, O, "theta"), "spec.softmax.theta");
      if (!(sp_.theta > 0)) c.range_error("spec.softmax.theta must be > 0");
      p_.attention.softmax = &sp_;
    }
  }

 private:
  // forward(x, n, cache, out?) → out [n, hidden]. cache: the state Float32Array (lightning, [heads, d, d], updated)
  // or { keys, values, length, position } (softmax: the n new rows are written at [length, length + n)). The state
  // is passed bare: a step of B sequences reads B × layers caches, and a property lookup each was half of the checks.
  Napi::Value Forward(const CallbackInfo& info) {
    Ctx c{info.Env(), "DecoderLayer.forward"};
    Arr<float> x = f32(c, info[0], "x");
    const int64_t n = dim(c, info[1], "n");
    expect_len(c, x, prod(c, {n, p_.attention.hidden}), "n*hidden");
    Out o = out_arg(c, info[3], prod(c, {n, p_.attention.hidden}), "n*hidden");
    disjoint(c, o.a, x);
    const LayerCache cache = CacheArg(c, info[2], "cache", n, {&x, &o.a});
    const SequenceSpan span{0, n};
    const LayerCache* caches[] = {&cache};
    if (n > 0) decoder_layer(kernels(), p_, &span, caches, 1, x.data, n, o.a.data);
    return o.arr;
  }

 public:
  const DecoderLayerParams& params() const { return p_; }

  // This layer's cache argument (see Forward) for n new tokens, checked against the arrays of the call.
  LayerCache CacheArg(const Ctx& c, const Napi::Value& v, const char* name, int64_t n,
                      std::initializer_list<const Arr<float>*> others) const {
    const int64_t d = p_.attention.head_dim;
    LayerCache r{};
    if (p_.attention.lightning) {
      Arr<float> state = f32(c, v, name);
      expect_len(c, state, prod(c, {p_.attention.heads, d, d}), "heads*headDim*headDim");
      r.state = state.data;
      for (const Arr<float>* other : others) disjoint(c, state, *other);
      return r;
    }
    if (!v.IsObject() || v.IsTypedArray()) c.type_error(std::string(name) + " must be { keys, values, length, position }");
    const Napi::Object cache = v.As<Napi::Object>();
    const int64_t row = prod(c, {sp_.kv_heads, d});
    r.length = dim(c, prop(c, cache, name, "length"), Name(name, ".length"));
    r.position = dim(c, prop(c, cache, name, "position"), Name(name, ".position"));
    if (r.position + n > INT32_MAX) c.range_error(std::string(name) + ".position + n must be < 2^31");
    const Name kn(name, ".keys"), vn(name, ".values");
    Arr<float> keys = f32(c, prop(c, cache, name, "keys"), kn);
    Arr<float> values = f32(c, prop(c, cache, name, "values"), vn);
    const int64_t need = prod(c, {r.length + n, row});
    for (const Arr<float>* a : {&keys, &values}) {
      if (a->len < need)
        c.range_error(std::string(a->name) + " has room for " + str(a->len / row) +
                      " rows, expected at least length + n = " + str(r.length + n));
    }
    disjoint(c, keys, values);
    r.keys = keys.data;
    r.values = values.data;
    for (const Arr<float>* kv : {&keys, &values}) {
      for (const Arr<float>* other : others) disjoint(c, *kv, *other);
    }
    return r;
  }

 private:
  // a kept Float32Array of `want` elements
  const float* vector(const Ctx& c, const Napi::Value& v, const char* name, int64_t want, const char* expr) {
    Arr<float> a = f32(c, v, name);
    expect_len(c, a, want, expr);
    keep(v);
    return a.data;
  }
  // a kept weight of shape [rows, cols]
  WeightView matrix(const Ctx& c, const WeightArg& w, const std::string& name, int64_t rows, int64_t cols, const Napi::Value& v) {
    weight_shape(c, w, name, rows, cols);
    keep(v.As<Napi::Object>().Get("data"));
    return w.w;
  }
  WeightView matrix(const Ctx& c, const Napi::Value& v, const std::string& name, int64_t rows, int64_t cols) {
    return matrix(c, weight(c, v, name), name, rows, cols, v);
  }
  void keep(const Napi::Value& v) { kept_.push_back(Napi::Persistent(v.As<Napi::Object>())); }
  static double non_negative(const Ctx& c, const Napi::Value& v, const char* name) {
    const double x = finite(c, v, name);
    if (x < 0) c.range_error(std::string(name) + " must be >= 0");
    return x;
  }

  DecoderLayerParams p_{};
  LightningParams lp_{};
  SoftmaxParams sp_{};
  std::vector<ExpertView> views_;
  std::vector<const ExpertView*> ptrs_;
  std::vector<Napi::ObjectReference> kept_;
};

// The addon's per-environment data: the DecoderLayer class, to recognise its instances.
struct AddonData {
  Napi::FunctionReference decoder_layer;
};

// Decoder({ embed, norm, eps, lmHead, layers }): the whole model over DecoderLayer objects (see layer.h);
// forward(ids, caches, rows) → logits [rows, vocab] of the last `rows` positions.
class Decoder : public Napi::ObjectWrap<Decoder> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Decoder", {InstanceMethod<&Decoder::Forward>("forward"),
                                        InstanceMethod<&Decoder::ForwardPacked>("forwardPacked"),
                                        InstanceMethod<&Decoder::StepBatch>("stepBatch"),
                                        InstanceMethod<&Decoder::ForwardPackedAsync>("forwardPackedAsync"),
                                        InstanceMethod<&Decoder::StepBatchAsync>("stepBatchAsync")});
  }

  explicit Decoder(const CallbackInfo& info) : Napi::ObjectWrap<Decoder>(info) {
    Ctx c{info.Env(), "decoder"};
    if (!info[0].IsObject()) c.type_error("spec must be an object");
    const Napi::Object s = info[0].As<Napi::Object>();
    const Napi::Value lv = prop(c, s, "spec", "layers");
    if (!lv.IsArray()) c.type_error("spec.layers must be an array of DecoderLayer objects");
    const Napi::Array la = lv.As<Napi::Array>();
    const Napi::Function ctor = c.env.GetInstanceData<AddonData>()->decoder_layer.Value();
    for (uint32_t l = 0; l < la.Length(); l++) {
      const Napi::Value v = la.Get(l);
      if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(ctor))
        c.type_error("spec.layers[" + str(l) + "] must be a DecoderLayer");
      layers_.push_back(DecoderLayer::Unwrap(v.As<Napi::Object>()));
      params_.push_back(&layers_.back()->params());
      kept_.push_back(Napi::Persistent(v.As<Napi::Object>()));
    }
    WeightArg embed = weight(c, prop(c, s, "spec", "embed"), "spec.embed");
    const int64_t vocab = embed.w.rows, hs = embed.w.cols;
    for (size_t l = 0; l < layers_.size(); l++) {
      if (params_[l]->attention.hidden != hs)
        c.range_error("spec.layers[" + str(int64_t(l)) + "] has hidden size " + str(params_[l]->attention.hidden) +
                      ", spec.embed has " + str(hs));
    }
    WeightArg head = weight(c, prop(c, s, "spec", "lmHead"), "spec.lmHead");
    weight_shape(c, head, "spec.lmHead", vocab, hs);
    const Napi::Value nv = prop(c, s, "spec", "norm");
    Arr<float> norm = f32(c, nv, "spec.norm");
    expect_len(c, norm, hs, "hidden");
    m_.eps = finite(c, prop(c, s, "spec", "eps"), "spec.eps");
    if (m_.eps < 0) c.range_error("spec.eps must be >= 0");
    m_.embed = embed.w;
    m_.lm_head = head.w;
    m_.norm = norm.data;
    m_.layers = params_.data();
    m_.num_layers = int64_t(params_.size());
    for (const char* key : {"embed", "lmHead"}) kept_.push_back(Napi::Persistent(s.Get(key).As<Napi::Object>().Get("data").As<Napi::Object>()));
    kept_.push_back(Napi::Persistent(nv.As<Napi::Object>()));
  }

 private:
  // forward(ids, caches, rows) → logits [rows, vocab]; caches[l] as DecoderLayer.forward takes it, updated.
  Napi::Value Forward(const CallbackInfo& info) {
    Ctx c{info.Env(), "Decoder.forward"};
    Arr<int32_t> ids = i32(c, info[0], "ids");
    const int64_t n = ids.len, vocab = m_.embed.rows;
    check_ids(c, ids, vocab);
    if (!info[1].IsArray() || info[1].As<Napi::Array>().Length() != layers_.size())
      c.type_error("caches must be an array of " + str(int64_t(layers_.size())) + " layer caches");
    const Napi::Array ca = info[1].As<Napi::Array>();
    const int64_t rows = dim(c, info[2], "rows");
    if (rows > n) c.range_error("rows (" + str(rows) + ") must be <= the number of ids (" + str(n) + ")");
    std::vector<LayerCache> caches(layers_.size());
    for (uint32_t l = 0; l < layers_.size(); l++) caches[l] = layers_[l]->CacheArg(c, ca.Get(l), Name("caches", int64_t(l)), n, {});
    Napi::Float32Array logits = new_f32(c, prod(c, {rows, vocab}));
    if (n > 0) decoder_forward(kernels(), m_, ids.data, n, caches.data(), rows, rows ? logits.Data() : nullptr);
    return logits;
  }

  // forwardPacked(ids, lengths, caches, logits, rowwise?) → logits: S sequences packed row after row (sequence s is
  // the next lengths[s] ids; caches[s] its array of layer caches, as forward takes them, updated); logits "all"
  // (every row), "last" (each sequence's last row) or "none", [rows, vocab]. rowwise: every product on the dot path
  // (whose rows do not depend on each other), so that a sequence of at most kDotRows ids gets the bits of its pass
  // alone.
  Napi::Value ForwardPacked(const CallbackInfo& info) {
    Ctx c{info.Env(), "Decoder.forwardPacked"};
    Pass p = PackedPass(c, info);
    p.run();
    return p.logits;
  }

  // stepBatch(ids, caches) → logits [B, vocab]: one new token for each of B sequences; caches[s] is sequence s's
  // array of layer caches (as forward takes them), each updated.
  Napi::Value StepBatch(const CallbackInfo& info) {
    Ctx c{info.Env(), "Decoder.stepBatch"};
    Pass p = StepPass(c, info);
    p.run();
    return p.logits;
  }

  // forwardPackedAsync and stepBatchAsync: the same passes (the same arguments, the same bits) run on a thread of
  // their own with single-threaded kernels, returning a promise of the logits. The JavaScript thread stays free, and
  // several such passes (on other sequences' caches, which no one may touch until the promise settles) run side by
  // side, one per core.
  Napi::Value ForwardPackedAsync(const CallbackInfo& info) {
    Ctx c{info.Env(), "Decoder.forwardPackedAsync"};
    return Queue(info, PackedPass(c, info), 2);
  }

  Napi::Value StepBatchAsync(const CallbackInfo& info) {
    Ctx c{info.Env(), "Decoder.stepBatchAsync"};
    return Queue(info, StepPass(c, info), 1);
  }

  // A checked pass: its ids (copied), sequences, caches, the rows whose logits it writes and the array it writes them to.
  struct Pass {
    const DecoderModel* m;
    std::vector<int32_t> ids;
    std::vector<SequenceSpan> seqs;
    std::vector<LayerCache> caches;
    std::vector<int64_t> logit_rows;
    bool rowwise;
    Napi::Float32Array logits;

    void run() { run_into(logits.Data()); }
    void run_into(float* out) const {
      const int64_t n = int64_t(ids.size()), S = int64_t(seqs.size()), rows = int64_t(logit_rows.size());
      if (n == 0) return;
      if (rowwise) decoder_forward_rowwise(kernels(), *m, ids.data(), seqs.data(), S, caches.data(), logit_rows.data(), rows, out);
      else decoder_forward(kernels(), *m, ids.data(), n, seqs.data(), S, caches.data(), logit_rows.data(), rows, out);
    }
  };

  Pass PackedPass(const Ctx& c, const CallbackInfo& info) const {
    Arr<int32_t> ids = i32(c, info[0], "ids");
    Arr<int32_t> lengths = i32(c, info[1], "lengths");
    const int64_t n = ids.len, S = lengths.len, vocab = m_.embed.rows;
    check_ids(c, ids, vocab);
    Pass p{&m_, std::vector<int32_t>(ids.data, ids.data + n), std::vector<SequenceSpan>(size_t(S)), {}, {}, false, {}};
    int64_t start = 0;
    for (int64_t s = 0; s < S; s++) {
      if (lengths.data[s] < 1) c.range_error("lengths[" + str(s) + "] must be >= 1, got " + str(int64_t(lengths.data[s])));
      p.seqs[size_t(s)] = {start, lengths.data[s]};
      start += lengths.data[s];
    }
    if (start != n) c.range_error("lengths sum to " + str(start) + ", expected the number of ids (" + str(n) + ")");
    p.caches = SequenceCaches(c, info[2], p.seqs);
    if (!info[3].IsString()) c.type_error("logits must be \"all\", \"last\" or \"none\"");
    const std::string mode = info[3].As<Napi::String>().Utf8Value();
    if (mode == "all") {
      for (int64_t r = 0; r < n; r++) p.logit_rows.push_back(r);
    } else if (mode == "last") {
      for (const SequenceSpan& q : p.seqs) p.logit_rows.push_back(q.start + q.rows - 1);
    } else if (mode != "none") {
      c.range_error("logits must be \"all\", \"last\" or \"none\", got \"" + mode + "\"");
    }
    if (!absent(info[4]) && !info[4].IsBoolean()) c.type_error("rowwise must be a boolean");
    p.rowwise = !absent(info[4]) && info[4].As<Napi::Boolean>().Value();
    p.logits = new_f32(c, prod(c, {int64_t(p.logit_rows.size()), vocab}));
    return p;
  }

  // One decode step of B sequences: the rowwise pass over B sequences of one row each (caches [B × layers],
  // sequence-major), every row's logits. Each row gives the bits of decoder_forward on that sequence alone with one
  // token (every product on the dot path, whose rows do not depend on each other).
  Pass StepPass(const Ctx& c, const CallbackInfo& info) const {
    Arr<int32_t> ids = i32(c, info[0], "ids");
    const int64_t B = ids.len, vocab = m_.embed.rows;
    check_ids(c, ids, vocab);
    Pass p{&m_, std::vector<int32_t>(ids.data, ids.data + B), std::vector<SequenceSpan>(size_t(B)), {}, {}, true, {}};
    for (int64_t s = 0; s < B; s++) {
      p.seqs[size_t(s)] = {s, 1};
      p.logit_rows.push_back(s);
    }
    p.caches = SequenceCaches(c, info[1], p.seqs);
    p.logits = new_f32(c, prod(c, {B, vocab}));
    return p;
  }

  // Runs a pass on a thread of libuv's pool inside an InlineScope; the promise resolves with its logits. The worker
  // keeps this decoder, the caches argument (info[caches_arg]) and the logits alive until then.
  Napi::Value Queue(const CallbackInfo& info, Pass pass, size_t caches_arg) {
    class Worker : public Napi::AsyncWorker {
     public:
      Worker(Napi::Env env, Pass pass, Napi::Object decoder, Napi::Object caches)
          : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), pass_(std::move(pass)),
            out_(pass_.logits.Data()), logits_(Napi::Persistent(pass_.logits)), decoder_(Napi::Persistent(decoder)),
            caches_(Napi::Persistent(caches)) {}
      Napi::Promise Promise() const { return deferred_.Promise(); }

     protected:
      void Execute() override {
        InlineScope one_thread;
        pass_.run_into(out_);
      }
      void OnOK() override { deferred_.Resolve(logits_.Value()); }
      void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

     private:
      Napi::Promise::Deferred deferred_;
      Pass pass_;
      float* out_;
      Napi::Reference<Napi::Float32Array> logits_;
      Napi::ObjectReference decoder_, caches_;
    };
    auto* worker = new Worker(info.Env(), std::move(pass), info.This().As<Napi::Object>(), info[caches_arg].As<Napi::Object>());
    const Napi::Promise promise = worker->Promise();
    worker->Queue();
    return promise;
  }

  // The caches argument of S sequences: v[s] is sequence s's array of layer caches for seqs[s].rows new rows →
  // [S × layers], sequence-major. Two sequences may not share a state or KV array (each would update it).
  std::vector<LayerCache> SequenceCaches(const Ctx& c, const Napi::Value& v, const std::vector<SequenceSpan>& seqs) const {
    const int64_t S = int64_t(seqs.size()), L = int64_t(layers_.size());
    if (!v.IsArray() || int64_t(v.As<Napi::Array>().Length()) != S)
      c.type_error("caches must be an array of " + str(S) + " sequences' caches (one per sequence)");
    const Napi::Array ca = v.As<Napi::Array>();
    std::vector<LayerCache> caches(size_t(S * L));
    for (int64_t s = 0; s < S; s++) {
      const Name sn("caches", s);
      const Napi::Value sv = ca.Get(uint32_t(s));
      if (!sv.IsArray() || int64_t(sv.As<Napi::Array>().Length()) != L)
        c.type_error(std::string(sn) + " must be an array of " + str(L) + " layer caches");
      const Napi::Array sa = sv.As<Napi::Array>();
      for (int64_t l = 0; l < L; l++)
        caches[size_t(s * L + l)] = layers_[size_t(l)]->CacheArg(c, sa.Get(uint32_t(l)), Name(sn, l), seqs[size_t(s)].rows, {});
    }
    for (int64_t l = 0; l < L; l++) {
      std::vector<const float*> seen;
      for (int64_t s = 0; s < S; s++) {
        const LayerCache& lc = caches[size_t(s * L + l)];
        const float* key = lc.state ? lc.state : lc.keys;
        if (std::find(seen.begin(), seen.end(), key) != seen.end())
          c.range_error("caches[" + str(s) + "][" + str(l) + "] is shared with an earlier sequence");
        seen.push_back(key);
      }
    }
    return caches;
  }

  DecoderModel m_{};
  std::vector<DecoderLayer*> layers_;
  std::vector<const DecoderLayerParams*> params_;
  std::vector<Napi::ObjectReference> kept_;
};

}  // namespace

void define_decoder(Napi::Env env, Napi::Object exports) {
  Napi::Function layer = DecoderLayer::Define(env);
  env.SetInstanceData(new AddonData{Napi::Persistent(layer)});
  exports.Set("DecoderLayer", layer);
  exports.Set("Decoder", Decoder::Define(env));
  exports.Set("dotRows", Napi::Number::New(env, double(kDotRows)));
}

}  // namespace m1
