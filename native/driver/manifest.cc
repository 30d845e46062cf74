#include "manifest.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>

#include "aligned.h"
#include "dispatch.h"
#include "json.h"

namespace m1 {
namespace {

// A JSON value with its place in the manifest, for error messages that name the field.
struct Field {
  const Json& v;
  std::string path;
  const std::string& file;

  [[noreturn]] void fail(const std::string& what) const { throw std::runtime_error(file + ": " + path + " " + what); }
  bool has(const char* key) const { return v.kind == Json::kObject && v.get(key) && v.get(key)->kind != Json::kNull; }
  Field at(const char* key) const {
    if (v.kind != Json::kObject) fail("must be an object");
    const Json* j = v.get(key);
    const std::string p = path.empty() ? key : path + "." + key;
    if (!j) Field{v, p, file}.fail("is missing");
    return {*j, p, file};
  }
  Field at(size_t i) const { return {v.array[i], path + "[" + std::to_string(i) + "]", file}; }
  size_t size() const {
    if (v.kind != Json::kArray) fail("must be an array");
    return v.array.size();
  }
  double number() const {
    if (v.kind != Json::kNumber || !std::isfinite(v.number)) fail("must be a finite number");
    return v.number;
  }
  int64_t integer(int64_t lo, int64_t hi = int64_t(1) << 40) const {
    const double x = number();
    if (x != std::floor(x) || x < double(lo) || x > double(hi)) {
      char got[32];
      std::snprintf(got, sizeof got, "%.17g", x);
      fail("must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + got);
    }
    return int64_t(x);
  }
  bool boolean() const {
    if (v.kind != Json::kBool) fail("must be true or false");
    return v.boolean;
  }
  const std::string& str() const {
    if (v.kind != Json::kString) fail("must be a string");
    return v.string;
  }
};

uint16_t f32_to_bf16(float x) {  // round to nearest even
  uint32_t u;
  std::memcpy(&u, &x, 4);
  return uint16_t((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

class Loader {
 public:
  Loader(const std::string& file, DriverModel& m) : file_(file), m_(m), K_(kernels()) {
    const size_t slash = file.rfind('/');
    dir_ = slash == std::string::npos ? "." : file.substr(0, slash);
  }
  ~Loader() {
    for (auto& f : fds_) close(f.second);
  }

  // A 2-D weight of shape [rows, cols].
  WeightView weight(const Field& f, int64_t rows, int64_t cols) {
    DType dt;
    void* data = tensor(f, rows, cols, &dt);
    return WeightView{data, dt, rows, cols};
  }

  // A 1-D weight of `len` elements, as f32 (converted by the kernels' own embedding lookup when 16-bit).
  const float* vector(const Field& f, int64_t len) {
    DType dt;
    void* data = tensor(f, 1, len, &dt);
    if (dt == kF32) return static_cast<const float*>(data);
    float* out = static_cast<float*>(alloc(f, size_t(len) * 4));
    const int32_t row = 0;
    K_.embedding(&row, 1, WeightView{data, dt, 1, len}, out);
    return out;
  }

 private:
  void* alloc(const Field& f, size_t bytes) {
    void* p = weight_alloc(bytes);
    if (!p) f.fail("needs " + std::to_string(bytes) + " bytes: out of memory");
    m_.buffers.emplace_back(p, free);
    return p;
  }

  // { file, offset, dtype, shape } or { random: { seed, scale }, dtype, shape }, shape [rows, cols] ([cols] for rows = 1)
  void* tensor(const Field& f, int64_t rows, int64_t cols, DType* dt) {
    const std::string& dts = f.at("dtype").str();
    if (dts == "F32") *dt = kF32;
    else if (dts == "BF16") *dt = kBF16;
    else if (dts == "F16") *dt = kF16;
    else f.at("dtype").fail("must be \"F32\", \"BF16\" or \"F16\", got \"" + dts + "\"");
    const Field shape = f.at("shape");
    std::vector<int64_t> dims;
    for (size_t i = 0; i < shape.size(); i++) dims.push_back(shape.at(i).integer(0));
    const std::vector<int64_t> want = rows == 1 && dims.size() == 1 ? std::vector<int64_t>{cols} : std::vector<int64_t>{rows, cols};
    if (dims != want) {
      std::string got, exp;
      for (int64_t d : dims) got += (got.empty() ? "" : ",") + std::to_string(d);
      for (int64_t d : want) exp += (exp.empty() ? "" : ",") + std::to_string(d);
      shape.fail("is [" + got + "], expected [" + exp + "]");
    }
    const size_t count = size_t(rows * cols), esz = *dt == kF32 ? 4 : 2, bytes = count * esz;
    void* p = alloc(f, bytes);
    if (f.has("random")) {
      const Field r = f.at("random");
      uint32_t s = uint32_t(r.at("seed").integer(0, 0xFFFFFFFF)) * 2654435761u;
      if (s == 0) s = 1;
      const double scale = r.at("scale").number();
      if (*dt == kF16) f.at("dtype").fail("F16 is not supported for random weights");
      for (size_t i = 0; i < count; i++) {  // xorshift32, uniform in [-scale, scale)
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        const float x = float(scale * (double(s) / 2147483648.0 - 1.0));
        if (*dt == kF32) static_cast<float*>(p)[i] = x;
        else static_cast<uint16_t*>(p)[i] = f32_to_bf16(x);
      }
      return p;
    }
    const std::string& name = f.at("file").str();
    const std::string path = !name.empty() && name[0] == '/' ? name : dir_ + "/" + name;
    const int64_t offset = f.at("offset").integer(0);
    int fd = open_file(f.at("file"), path);
    struct stat st;
    if (fstat(fd, &st) != 0) f.at("file").fail("cannot be read (" + path + ": " + std::strerror(errno) + ")");
    if (offset + int64_t(bytes) > int64_t(st.st_size))
      f.at("offset").fail("+ " + std::to_string(bytes) + " bytes runs past the end of " + path + " (" +
                          std::to_string(int64_t(st.st_size)) + " bytes)");
    for (size_t done = 0; done < bytes;) {
      const ssize_t n = pread(fd, static_cast<char*>(p) + done, bytes - done, off_t(offset + int64_t(done)));
      if (n <= 0) f.at("file").fail("read failed (" + path + ": " + (n == 0 ? "unexpected end" : std::strerror(errno)) + ")");
      done += size_t(n);
    }
    return p;
  }

  int open_file(const Field& f, const std::string& path) {
    auto it = fds_.find(path);
    if (it != fds_.end()) return it->second;
    const int fd = open(path.c_str(), O_RDONLY);
    if (fd < 0) f.fail("cannot be opened (" + path + ": " + std::strerror(errno) + ")");
    fds_[path] = fd;
    return fd;
  }

  std::string file_, dir_;
  DriverModel& m_;
  const KernelTable& K_;
  std::map<std::string, int> fds_;
};

void load_layer(Loader& L, const Field& f, int64_t hidden, DriverModel::Layer& out) {
  AttentionBlock& b = out.params.attention;
  b.hidden = f.at("hidden").integer(1);
  if (b.hidden != hidden) f.at("hidden").fail("is " + std::to_string(b.hidden) + ", the model's is " + std::to_string(hidden));
  b.heads = f.at("heads").integer(1);
  b.head_dim = f.at("headDim").integer(1);
  const int64_t d = b.head_dim, inner = b.heads * d;
  b.ln1 = L.vector(f.at("ln1"), hidden);
  b.ln2 = L.vector(f.at("ln2"), hidden);
  b.eps = f.at("eps").number();
  b.alpha = float(f.at("alpha").number());
  b.beta = float(f.at("beta").number());
  b.postnorm = f.at("postnorm").boolean();
  const Field experts = f.at("experts");
  const int64_t ne = int64_t(experts.size());
  if (ne < 1) experts.fail("must list at least one expert");
  b.router = L.weight(f.at("router"), ne, hidden);
  b.top_k = f.at("topK").integer(1, ne);
  const int64_t F = experts.at(size_t(0)).at("w1").at("shape").at(size_t(0)).integer(1);
  for (int64_t e = 0; e < ne; e++) {
    const Field x = experts.at(size_t(e));
    out.experts.push_back(ExpertView{L.weight(x.at("w1"), F, hidden), L.weight(x.at("w3"), F, hidden), L.weight(x.at("w2"), hidden, F)});
  }
  for (const ExpertView& e : out.experts) out.expert_ptrs.push_back(&e);
  out.params.mlp = MlpBlock{out.expert_ptrs.data(), ne, float(f.at("mlpAlpha").number()), float(f.at("mlpBeta").number())};
  if (f.has("lightning") == f.has("softmax")) f.fail("needs exactly one of lightning and softmax");
  if (f.has("lightning")) {
    const Field l = f.at("lightning");
    LightningParams& p = out.lightning;
    p.qkv = L.weight(l.at("qkv"), 3 * inner, hidden);
    p.gate = L.weight(l.at("gate"), inner, hidden);
    p.out = L.weight(l.at("out"), hidden, inner);
    p.norm = L.vector(l.at("norm"), inner);
    p.norm_eps = l.at("normEps").number();
    const Field slopes = l.at("slopes");
    if (int64_t(slopes.size()) != b.heads) slopes.fail("must have heads = " + std::to_string(b.heads) + " entries");
    for (size_t h = 0; h < slopes.size(); h++) out.slopes.push_back(float(slopes.at(h).number()));
    p.slopes = out.slopes.data();
    p.block = l.at("blockSize").integer(1, 4096);
    b.lightning = &p;
  } else {
    const Field s = f.at("softmax");
    SoftmaxParams& p = out.softmax;
    p.kv_heads = s.at("kvHeads").integer(1, b.heads);
    if (b.heads % p.kv_heads) s.at("kvHeads").fail("must divide heads (" + std::to_string(b.heads) + ")");
    p.q = L.weight(s.at("q"), inner, hidden);
    p.k = L.weight(s.at("k"), p.kv_heads * d, hidden);
    p.v = L.weight(s.at("v"), p.kv_heads * d, hidden);
    p.o = L.weight(s.at("o"), hidden, inner);
    p.rotary_dim = s.at("rotaryDim").integer(0, d);
    if (p.rotary_dim % 2) s.at("rotaryDim").fail("must be even");
    p.theta = s.at("theta").number();
    if (!(p.theta > 0)) s.at("theta").fail("must be > 0");
    b.softmax = &p;
  }
}

}  // namespace

std::unique_ptr<DriverModel> load_manifest(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot read the manifest");
  std::stringstream text;
  text << in.rdbuf();
  const std::string body = text.str();
  Json doc;
  try {
    doc = JsonReader(body).document();
  } catch (const std::exception& e) {
    throw std::runtime_error(path + ": " + e.what());
  }
  const Field root{doc, "", path};
  if (root.at("format").str() != "m1-driver-manifest") root.at("format").fail("must be \"m1-driver-manifest\"");
  if (root.at("version").integer(1) != 1) root.at("version").fail("must be 1");
  auto m = std::make_unique<DriverModel>();
  Loader L(path, *m);
  m->vocab = root.at("vocab").integer(1, INT32_MAX);
  m->hidden = root.at("hidden").integer(1);
  m->eos = root.has("eos") ? root.at("eos").integer(0, m->vocab - 1) : -1;
  m->model.embed = L.weight(root.at("embed"), m->vocab, m->hidden);
  m->model.norm = L.vector(root.at("norm"), m->hidden);
  m->model.eps = root.at("eps").number();
  m->model.lm_head = L.weight(root.at("lmHead"), m->vocab, m->hidden);
  const Field layers = root.at("layers");
  for (size_t l = 0; l < layers.size(); l++) {
    m->layers.push_back(std::make_unique<DriverModel::Layer>());
    load_layer(L, layers.at(l), m->hidden, *m->layers.back());
    m->layer_ptrs.push_back(&m->layers.back()->params);
  }
  m->model.layers = m->layer_ptrs.data();
  m->model.num_layers = int64_t(m->layer_ptrs.size());
  return m;
}

}  // namespace m1
