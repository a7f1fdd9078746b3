// umfa_conformance — runs every case of conformance/manifest.json through the C ABI.
//
//   umfa_conformance [--manifest PATH] [--skip FILE] [--filter TEXT] [--backend cpu|cuda|metal|auto]
//                    [--threads N] [--dump DIR] [--list] [--verbose]
//
// For each case: loads the inputs (.npy), builds umfa_tensor views with the manifest's strides
// (permuted layouts are strided views, never copies), fills every output with NaN and a guard
// region after it with a sentinel, calls umfa_attention_forward (out + lse, then once more
// without lse, which must give the same out) and, for backward
// cases, umfa_attention_backward with the out/lse that forward produced, then compares out, lse,
// dq, dk, dv against the expected values with the case's tolerances. It also checks that the
// inputs were left untouched and the guard regions intact.
//
// Then every merge case (manifest "merge_cases"): loads the running out/lse into guarded
// buffers, calls umfa_attention_merge once per part, in order, and compares out and lse with
// the expected values (inputs untouched, guards intact).
//
// Prints one line per case and ends with "N passed, N failed, N skipped". Exit status 0 when no
// case failed, 1 when some failed, 2 on a usage or manifest error.
#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "json.h"
#include "npy.h"
#include "umfa.h"

#ifndef UMFA_CONFORMANCE_DEFAULT_MANIFEST
#define UMFA_CONFORMANCE_DEFAULT_MANIFEST "conformance/manifest.json"
#endif

namespace {

using conf::Json;
using conf::NpyArray;

// ------------------------------------------------------------------------------------------------
// dtypes

struct DtypeInfo {
  const char* name;
  int32_t umfa;
  const char* file_descr;
  size_t size;
};

const DtypeInfo kDtypes[] = {
    {"f32", UMFA_DTYPE_F32, "<f4", 4}, {"f16", UMFA_DTYPE_F16, "<f2", 2},
    {"bf16", UMFA_DTYPE_BF16, "<u2", 2}, {"bool", UMFA_DTYPE_BOOL, "|u1", 1},
    {"i32", UMFA_DTYPE_I32, "<i4", 4},
};

const DtypeInfo& dtype_info(const std::string& name) {
  for (const auto& d : kDtypes)
    if (name == d.name) return d;
  throw std::runtime_error("unknown dtype \"" + name + "\"");
}

float half_to_float(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1Fu;
  uint32_t man = h & 0x3FFu;
  uint32_t bits;
  if (exp == 0) {
    if (man == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do {
        ++e;
        man <<= 1;
      } while ((man & 0x400u) == 0);
      bits = sign | (static_cast<uint32_t>(127 - 15 - e) << 23) | ((man & 0x3FFu) << 13);
    }
  } else if (exp == 0x1F) {
    bits = sign | 0x7F800000u | (man << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

double load_element(const uint8_t* base, int32_t dtype, int64_t i) {
  switch (dtype) {
    case UMFA_DTYPE_F32: {
      float f;
      std::memcpy(&f, base + i * 4, 4);
      return f;
    }
    case UMFA_DTYPE_F16: {
      uint16_t h;
      std::memcpy(&h, base + i * 2, 2);
      return half_to_float(h);
    }
    case UMFA_DTYPE_BF16: {
      uint16_t h;
      std::memcpy(&h, base + i * 2, 2);
      uint32_t bits = static_cast<uint32_t>(h) << 16;
      float f;
      std::memcpy(&f, &bits, 4);
      return f;
    }
    default:
      throw std::runtime_error("not a float dtype");
  }
}

void fill_nan(uint8_t* base, int32_t dtype, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    if (dtype == UMFA_DTYPE_F32) {
      uint32_t v = 0x7FC00000u;
      std::memcpy(base + i * 4, &v, 4);
    } else if (dtype == UMFA_DTYPE_F16) {
      uint16_t v = 0x7E00u;
      std::memcpy(base + i * 2, &v, 2);
    } else {
      uint16_t v = 0x7FC0u;
      std::memcpy(base + i * 2, &v, 2);
    }
  }
}

// ------------------------------------------------------------------------------------------------
// Memory: host vectors for the CPU backend, umfa buffers (upload/download) for device backends.

constexpr size_t kGuardBytes = 64;
constexpr uint8_t kGuardByte = 0xA5;

class Memory {
 public:
  Memory(umfa_context* ctx, bool device) : ctx_(ctx), device_(device) {}
  Memory(const Memory&) = delete;
  Memory& operator=(const Memory&) = delete;
  ~Memory() {
    if (buffer_) umfa_buffer_destroy(buffer_);
  }

  // Allocates `bytes` (+ guard) and copies `init` (bytes long, may be null = leave) into it.
  void allocate(size_t bytes, const uint8_t* init, bool guard) {
    bytes_ = bytes;
    guard_ = guard;
    size_t total = bytes + (guard ? kGuardBytes : 0);
    if (total == 0) total = 64;  // never hand out a null pointer for an empty tensor
    total_ = total;
    host_.assign((total + 7) / 8, 0);
    uint8_t* h = host();
    if (init && bytes) std::memcpy(h, init, bytes);
    if (guard) std::memset(h + bytes, kGuardByte, kGuardBytes);
    if (device_) {
      umfa_status st = umfa_buffer_create(ctx_, total, &buffer_);
      if (st != UMFA_STATUS_OK)
        throw std::runtime_error(std::string("umfa_buffer_create: ") + umfa_status_string(st));
      st = umfa_buffer_upload(buffer_, 0, h, total);
      if (st != UMFA_STATUS_OK)
        throw std::runtime_error(std::string("umfa_buffer_upload: ") + umfa_status_string(st));
      st = umfa_buffer_data(buffer_, &device_ptr_);
      if (st != UMFA_STATUS_OK)
        throw std::runtime_error(std::string("umfa_buffer_data: ") + umfa_status_string(st));
    }
  }

  void* data() { return device_ ? device_ptr_ : static_cast<void*>(host()); }

  // Host copy of the current contents (downloads from the device when needed).
  const uint8_t* sync() {
    if (device_) {
      umfa_status st = umfa_buffer_download(buffer_, 0, host(), total_);
      if (st != UMFA_STATUS_OK)
        throw std::runtime_error(std::string("umfa_buffer_download: ") + umfa_status_string(st));
    }
    return host();
  }

  bool guard_intact() {
    if (!guard_) return true;
    const uint8_t* h = sync();
    for (size_t i = 0; i < kGuardBytes; ++i)
      if (h[bytes_ + i] != kGuardByte) return false;
    return true;
  }

  size_t bytes() const { return bytes_; }

 private:
  uint8_t* host() { return reinterpret_cast<uint8_t*>(host_.data()); }
  umfa_context* ctx_;
  bool device_;
  std::vector<uint64_t> host_;
  size_t bytes_ = 0;
  size_t total_ = 0;
  bool guard_ = false;
  umfa_buffer* buffer_ = nullptr;
  void* device_ptr_ = nullptr;
};

// ------------------------------------------------------------------------------------------------
// Tensors described by the manifest

struct Spec {
  std::string file;
  std::string dtype;
  std::vector<int64_t> shape;          // logical
  std::vector<int64_t> storage_order;  // file axis a holds logical axis storage_order[a]
  std::vector<int64_t> strides;        // logical, in elements
  // Optional (inputs only): strides with 0 on dimensions along which the stored data repeats;
  // passed to umfa instead of `strides` to exercise stride-0 broadcasting.
  std::vector<int64_t> view_strides;

  int64_t count() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
  std::vector<int64_t> storage_shape() const {
    std::vector<int64_t> s;
    for (int64_t p : storage_order) s.push_back(shape[static_cast<size_t>(p)]);
    return s;
  }
  // Logical coordinates of the element at flat storage position `i`.
  std::vector<int64_t> logical_index(int64_t i) const {
    std::vector<int64_t> ss = storage_shape();
    std::vector<int64_t> coord(shape.size());
    for (size_t a = ss.size(); a-- > 0;) {
      int64_t c = ss[a] ? i % ss[a] : 0;
      i = ss[a] ? i / ss[a] : 0;
      coord[static_cast<size_t>(storage_order[a])] = c;
    }
    return coord;
  }
};

Spec parse_spec(const Json& j) {
  Spec s;
  s.file = j["file"].as_string();
  s.dtype = j["dtype"].as_string();
  s.shape = j["shape"].as_int_vector();
  s.storage_order = j["storage_order"].as_int_vector();
  if (s.storage_order.size() != s.shape.size())
    throw std::runtime_error(s.file + ": storage_order rank differs from shape");
  // Strides of the storage (C order), mapped back to logical axes.
  std::vector<int64_t> ss = s.storage_shape();
  s.strides.assign(s.shape.size(), 0);
  int64_t acc = 1;
  for (size_t a = ss.size(); a-- > 0;) {
    s.strides[static_cast<size_t>(s.storage_order[a])] = acc;
    acc *= ss[a];
  }
  if (j.has("strides") && j["strides"].as_int_vector() != s.strides)
    throw std::runtime_error(s.file + ": manifest strides disagree with storage_order");
  if (j.has("view_strides") && !j["view_strides"].is_null()) {
    s.view_strides = j["view_strides"].as_int_vector();
    if (s.view_strides.size() != s.shape.size())
      throw std::runtime_error(s.file + ": view_strides rank differs from shape");
  }
  return s;
}

umfa_tensor make_view(const Spec& s, void* data, int32_t dtype, int32_t device) {
  umfa_tensor t;
  std::memset(&t, 0, sizeof t);
  t.data = data;
  t.dtype = dtype;
  t.device = device;
  t.device_index = 0;
  const std::vector<int64_t>& strides = s.view_strides.empty() ? s.strides : s.view_strides;
  if (s.shape.size() > UMFA_MAX_RANK) throw std::runtime_error(s.file + ": rank too large");
  t.rank = static_cast<int32_t>(s.shape.size());
  for (size_t i = 0; i < s.shape.size(); ++i) {
    t.shape[i] = s.shape[i];
    t.strides[i] = strides[i];
  }
  return t;
}

std::string join_index(const std::vector<int64_t>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) out += ",";
    out += std::to_string(v[i]);
  }
  return out + "]";
}

// ------------------------------------------------------------------------------------------------
// Runner

struct Settings {
  std::string manifest = UMFA_CONFORMANCE_DEFAULT_MANIFEST;
  std::vector<std::string> skip_files;
  std::vector<std::string> filters;
  uint32_t backend = UMFA_BACKEND_CPU;
  int32_t threads = 0;
  std::string dump_dir;
  bool list = false;
  bool verbose = false;
};

struct CaseFailure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// An output tensor: its manifest spec, the dtype the runner asks for, its memory and view.
struct Output {
  Spec spec;
  int32_t dtype = 0;
  Memory* mem = nullptr;
  umfa_tensor view;
};

class Runner {
 public:
  Runner(const Settings& s, umfa_context* ctx, const std::string& root)
      : s_(s), ctx_(ctx), root_(root), device_(s.backend == UMFA_BACKEND_CUDA) {}

  // Returns the worst error/tolerance ratio; throws CaseFailure on a failed check.
  double run(const Json& c) {
    const std::string id = c["id"].as_string();
    const bool backward = c["backward"].as_bool();
    const Json& tol = c["tolerances"];
    std::vector<std::unique_ptr<Memory>> keep;
    std::vector<std::pair<Memory*, std::vector<uint8_t>>> input_copies;
    const int32_t dev = device_ ? UMFA_DEVICE_CUDA : UMFA_DEVICE_CPU;

    auto load_input = [&](const Json& j, umfa_tensor* out_view) {
      Spec sp = parse_spec(j);
      NpyArray a = conf::npy_read(root_ + "/" + sp.file);
      const DtypeInfo& di = dtype_info(sp.dtype);
      if (a.descr != di.file_descr)
        throw std::runtime_error(sp.file + ": file dtype " + a.descr + ", expected " + di.file_descr);
      if (a.shape != sp.storage_shape())
        throw std::runtime_error(sp.file + ": file shape differs from the manifest's storage shape");
      keep.push_back(std::make_unique<Memory>(ctx_, device_));
      Memory* m = keep.back().get();
      m->allocate(a.bytes.size(), a.bytes.data(), false);
      input_copies.emplace_back(m, a.bytes);
      *out_view = make_view(sp, m->data(), di.umfa, dev);
    };

    auto make_output = [&](const Json& j) {
      Output o;
      o.spec = parse_spec(j);
      const DtypeInfo& di = dtype_info(o.spec.dtype);
      o.dtype = di.umfa;
      size_t bytes = static_cast<size_t>(o.spec.count()) * di.size;
      std::vector<uint8_t> poison(bytes);
      fill_nan(poison.data(), o.dtype, o.spec.count());
      keep.push_back(std::make_unique<Memory>(ctx_, device_));
      o.mem = keep.back().get();
      o.mem->allocate(bytes, poison.data(), true);
      o.view = make_view(o.spec, o.mem->data(), o.dtype, dev);
      return o;
    };

    // Inputs and options.
    const Json& ins = c["inputs"];
    umfa_tensor q, k, v, dout;
    load_input(ins["q"], &q);
    load_input(ins["k"], &k);
    load_input(ins["v"], &v);
    if (backward) load_input(ins["dout"], &dout);

    const Json& oj = c["options"];
    umfa_attention_options opt;
    std::memset(&opt, 0, sizeof opt);
    opt.struct_size = sizeof opt;
    opt.mask_mode = static_cast<uint32_t>(oj["mask_mode"].as_int());
    opt.softmax_scale = static_cast<float>(oj["softmax_scale"].as_double());
    opt.softcap = static_cast<float>(oj["softcap"].as_double());
    opt.has_window = static_cast<uint32_t>(oj["has_window"].as_int());
    opt.flags = static_cast<uint32_t>(oj["flags"].as_int());
    opt.window_left = oj["window_left"].as_int();
    opt.window_right = oj["window_right"].as_int();
    opt.max_seqlen_q = oj["max_seqlen_q"].as_int();
    opt.max_seqlen_k = oj["max_seqlen_k"].as_int();
    // Device offsets are not read back: a device context needs the bounds (the case's lengths).
    if (device_ && !oj["cu_seqlens_q"].is_null()) {
      if (opt.max_seqlen_q <= 0) opt.max_seqlen_q = c["seqlen_q"].as_int();
      if (opt.max_seqlen_k <= 0) opt.max_seqlen_k = c["seqlen_k"].as_int();
    }
    umfa_tensor mask, alibi, cuq, cuk;
    if (!oj["attn_mask"].is_null()) {
      load_input(oj["attn_mask"], &mask);
      opt.attn_mask = &mask;
    }
    if (!oj["alibi_slopes"].is_null()) {
      load_input(oj["alibi_slopes"], &alibi);
      opt.alibi_slopes = &alibi;
    }
    if (!oj["cu_seqlens_q"].is_null()) {
      load_input(oj["cu_seqlens_q"], &cuq);
      opt.cu_seqlens_q = &cuq;
    }
    if (!oj["cu_seqlens_k"].is_null()) {
      load_input(oj["cu_seqlens_k"], &cuk);
      opt.cu_seqlens_k = &cuk;
    }

    const Json& ex = c["expected"];
    double worst = 0;

    // Forward.
    Output out = make_output(ex["out"]);
    Output lse = make_output(ex["lse"]);
    umfa_status st = umfa_attention_forward(ctx_, &opt, &q, &k, &v, &out.view, &lse.view);
    if (st != UMFA_STATUS_OK)
      throw CaseFailure(std::string("forward returned ") + umfa_status_string(st) + ": " +
                        umfa_last_error(ctx_));
    dump(id, "out", out);
    dump(id, "lse", lse);
    worst = std::max(worst, compare("out", out, ex["out"], tol["out"]));
    worst = std::max(worst, compare("lse", lse, ex["lse"], tol["lse"]));

    // lse is optional in forward: the same call without it must give the same out.
    {
      Output out2 = make_output(ex["out"]);
      st = umfa_attention_forward(ctx_, &opt, &q, &k, &v, &out2.view, nullptr);
      if (st != UMFA_STATUS_OK)
        throw CaseFailure(std::string("forward without lse returned ") + umfa_status_string(st) +
                          ": " + umfa_last_error(ctx_));
      worst = std::max(worst, compare("out (forward without lse)", out2, ex["out"], tol["out"]));
    }

    // Backward, fed with what forward produced.
    if (backward) {
      Output dq = make_output(ex["dq"]);
      Output dk = make_output(ex["dk"]);
      Output dv = make_output(ex["dv"]);
      st = umfa_attention_backward(ctx_, &opt, &q, &k, &v, &out.view, &dout, &lse.view, &dq.view,
                                   &dk.view, &dv.view);
      if (st != UMFA_STATUS_OK)
        throw CaseFailure(std::string("backward returned ") + umfa_status_string(st) + ": " +
                          umfa_last_error(ctx_));
      dump(id, "dq", dq);
      dump(id, "dk", dk);
      dump(id, "dv", dv);
      worst = std::max(worst, compare("dq", dq, ex["dq"], tol["dq"]));
      worst = std::max(worst, compare("dk", dk, ex["dk"], tol["dk"]));
      worst = std::max(worst, compare("dv", dv, ex["dv"], tol["dv"]));
      // forward outputs must not have been touched by backward
      if (!out.mem->guard_intact() || !lse.mem->guard_intact())
        throw CaseFailure("backward wrote past the end of out/lse");
    }

    for (auto& ic : input_copies) {
      const uint8_t* now = ic.first->sync();
      if (!ic.second.empty() && std::memcmp(now, ic.second.data(), ic.second.size()) != 0)
        throw CaseFailure("an input tensor was modified");
    }
    return worst;
  }

  // A merge case: returns the worst error/tolerance ratio; throws CaseFailure on a failed check.
  double run_merge(const Json& c) {
    const std::string id = c["id"].as_string();
    const Json& tol = c["tolerances"];
    const int32_t dev = device_ ? UMFA_DEVICE_CUDA : UMFA_DEVICE_CPU;
    std::vector<std::unique_ptr<Memory>> keep;
    std::vector<std::pair<Memory*, std::vector<uint8_t>>> input_copies;

    // The file of `j` in a buffer of its own (guarded when it is the running result).
    auto load = [&](const Json& j, bool running, Output* o) {
      o->spec = parse_spec(j);
      NpyArray a = conf::npy_read(root_ + "/" + o->spec.file);
      const DtypeInfo& di = dtype_info(o->spec.dtype);
      if (a.descr != di.file_descr)
        throw std::runtime_error(o->spec.file + ": file dtype " + a.descr + ", expected " + di.file_descr);
      if (a.shape != o->spec.storage_shape())
        throw std::runtime_error(o->spec.file + ": file shape differs from the manifest's storage shape");
      o->dtype = di.umfa;
      keep.push_back(std::make_unique<Memory>(ctx_, device_));
      o->mem = keep.back().get();
      o->mem->allocate(a.bytes.size(), a.bytes.data(), running);
      if (!running) input_copies.emplace_back(o->mem, a.bytes);
      o->view = make_view(o->spec, o->mem->data(), o->dtype, dev);
    };

    Output out, lse;
    load(c["inputs"]["out"], true, &out);
    load(c["inputs"]["lse"], true, &lse);
    int step = 0;
    for (const Json& part : c["parts"].items()) {
      Output part_out, part_lse;
      load(part["out"], false, &part_out);
      load(part["lse"], false, &part_lse);
      const umfa_status st =
          umfa_attention_merge(ctx_, nullptr, &out.view, &lse.view, &part_out.view, &part_lse.view);
      if (st != UMFA_STATUS_OK)
        throw CaseFailure("merge of part " + std::to_string(step) + " returned " +
                          umfa_status_string(st) + ": " + umfa_last_error(ctx_));
      ++step;
    }
    dump(id, "out", out);
    dump(id, "lse", lse);
    const Json& ex = c["expected"];
    double worst = compare("out", out, ex["out"], tol["out"]);
    worst = std::max(worst, compare("lse", lse, ex["lse"], tol["lse"]));
    for (auto& ic : input_copies)
      if (std::memcmp(ic.first->sync(), ic.second.data(), ic.second.size()) != 0)
        throw CaseFailure("a part tensor was modified");
    return worst;
  }

 private:
  double compare(const char* name, Output& o, const Json& ej, const Json& tj) {
    const double atol = tj["atol"].as_double();
    const double rtol = tj["rtol"].as_double();
    NpyArray e = conf::npy_read(root_ + "/" + ej["file"].as_string());
    if (e.descr != "<f4") throw std::runtime_error(o.spec.file + ": expected values must be <f4");
    if (e.count() != o.spec.count())
      throw std::runtime_error(o.spec.file + ": expected file size differs from the manifest");
    const uint8_t* got = o.mem->sync();
    if (!o.mem->guard_intact())
      throw CaseFailure(std::string(name) + ": written past the end of the tensor");
    const int64_t n = o.spec.count();
    int64_t bad = 0, first_bad = -1, worst_i = -1;
    double worst = 0;
    for (int64_t i = 0; i < n; ++i) {
      float w;
      std::memcpy(&w, e.bytes.data() + i * 4, 4);
      double g = load_element(got, o.dtype, i);
      double ratio;
      if (std::isnan(g)) {
        ratio = std::numeric_limits<double>::infinity();
      } else if (std::isinf(w)) {
        ratio = g == static_cast<double>(w) ? 0.0 : std::numeric_limits<double>::infinity();
      } else {
        ratio = std::fabs(g - w) / (atol + rtol * std::fabs(static_cast<double>(w)));
      }
      if (!(ratio <= 1.0)) {
        ++bad;
        if (first_bad < 0) first_bad = i;
      }
      if (!(ratio <= worst)) {
        worst = ratio;
        worst_i = i;
      }
    }
    if (bad) {
      int64_t i = worst_i >= 0 ? worst_i : first_bad;
      float w;
      std::memcpy(&w, e.bytes.data() + i * 4, 4);
      char buf[512];
      std::snprintf(buf, sizeof buf,
                    "%s: %" PRId64 " of %" PRId64 " elements outside tolerance; worst at %s: got %.9g, "
                    "expected %.9g (atol %g, rtol %g)",
                    name, bad, n, join_index(o.spec.logical_index(i)).c_str(),
                    load_element(got, o.dtype, i), static_cast<double>(w), atol, rtol);
      throw CaseFailure(buf);
    }
    return worst;
  }

  void dump(const std::string& id, const char* name, Output& o) {
    if (s_.dump_dir.empty()) return;
    const DtypeInfo& di = dtype_info(o.spec.dtype);
    std::string path = s_.dump_dir + "/" + id + "." + name + ".npy";
    conf::npy_write(path, di.file_descr, o.spec.storage_shape(), o.mem->sync(),
                    static_cast<size_t>(o.spec.count()) * di.size);
  }

  const Settings& s_;
  umfa_context* ctx_;
  std::string root_;
  bool device_;
};

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Skip list: one case id per line, then whitespace, then the reason; '#' starts a comment.
// An id ending in '*' matches every id with that prefix.
std::vector<std::pair<std::string, std::string>> read_skip_list(const std::string& path) {
  std::vector<std::pair<std::string, std::string>> out;
  std::ifstream f(path);
  if (!f) throw std::runtime_error("cannot open skip list " + path);
  std::string line;
  while (std::getline(f, line)) {
    size_t b = line.find_first_not_of(" \t");
    if (b == std::string::npos || line[b] == '#') continue;
    size_t e = line.find_first_of(" \t", b);
    std::string id = line.substr(b, e == std::string::npos ? std::string::npos : e - b);
    std::string reason;
    if (e != std::string::npos) {
      size_t r = line.find_first_not_of(" \t", e);
      if (r != std::string::npos) reason = line.substr(r);
    }
    while (!reason.empty() && (reason.back() == '\r' || reason.back() == ' ')) reason.pop_back();
    out.emplace_back(id, reason.empty() ? "(no reason given)" : reason);
  }
  return out;
}

const std::string* skip_reason(const std::vector<std::pair<std::string, std::string>>& skips,
                               const std::string& id) {
  for (const auto& s : skips) {
    const std::string& pat = s.first;
    if (!pat.empty() && pat.back() == '*') {
      if (id.compare(0, pat.size() - 1, pat, 0, pat.size() - 1) == 0) return &s.second;
    } else if (pat == id) {
      return &s.second;
    }
  }
  return nullptr;
}

void usage() {
  std::fprintf(stderr,
               "usage: umfa_conformance [--manifest PATH] [--skip FILE]... [--filter TEXT]...\n"
               "                        [--backend cpu|cuda|metal|auto] [--threads N] [--dump DIR]\n"
               "                        [--list] [--verbose]\n");
}

}  // namespace

int main(int argc, char** argv) {
  Settings s;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        usage();
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--manifest") s.manifest = next();
    else if (a == "--skip") s.skip_files.push_back(next());
    else if (a == "--filter") s.filters.push_back(next());
    else if (a == "--backend") {
      std::string b = next();
      if (b == "cpu") s.backend = UMFA_BACKEND_CPU;
      else if (b == "cuda") s.backend = UMFA_BACKEND_CUDA;
      else if (b == "metal") s.backend = UMFA_BACKEND_METAL;
      else if (b == "auto") s.backend = UMFA_BACKEND_AUTO;
      else {
        usage();
        return 2;
      }
    } else if (a == "--threads") s.threads = std::atoi(next().c_str());
    else if (a == "--dump") s.dump_dir = next();
    else if (a == "--list") s.list = true;
    else if (a == "--verbose" || a == "-v") s.verbose = true;
    else if (a == "--help" || a == "-h") {
      usage();
      return 0;
    } else {
      usage();
      return 2;
    }
  }

  Json manifest;
  std::vector<std::pair<std::string, std::string>> skips;
  try {
    manifest = Json::parse(read_file(s.manifest));
    if (manifest["format_version"].as_int() != 1)
      throw std::runtime_error("unsupported manifest format_version");
    for (const auto& f : s.skip_files) {
      auto more = read_skip_list(f);
      skips.insert(skips.end(), more.begin(), more.end());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "umfa_conformance: %s\n", e.what());
    return 2;
  }
  std::string root = ".";
  size_t slash = s.manifest.find_last_of('/');
  if (slash != std::string::npos) root = s.manifest.substr(0, slash);

  const auto& cases = manifest["cases"].items();
  static const std::vector<Json> kNone;
  const auto& merge_cases = manifest.has("merge_cases") ? manifest["merge_cases"].items() : kNone;
  if (s.list) {
    for (const auto* list : {&cases, &merge_cases})
      for (const auto& c : *list)
        std::printf("%-28s %s\n", c["id"].as_string().c_str(), c["description"].as_string().c_str());
    return 0;
  }

  umfa_context_options co;
  std::memset(&co, 0, sizeof co);
  co.struct_size = sizeof co;
  co.backend = s.backend;
  co.num_threads = s.threads;
  umfa_context* ctx = nullptr;
  umfa_status st = umfa_context_create(&co, &ctx);
  if (st != UMFA_STATUS_OK) {
    std::fprintf(stderr, "umfa_conformance: umfa_context_create: %s: %s\n",
                 umfa_status_string(st), umfa_last_error(nullptr));
    return 2;
  }
  uint32_t chosen = 0;
  umfa_context_backend(ctx, &chosen);
  if (s.backend == UMFA_BACKEND_AUTO) s.backend = chosen;
  std::printf("umfa %s (abi %u), backend %s, manifest %s, %zu cases, %zu merge cases\n",
              umfa_version_string(), umfa_abi_version(),
              chosen == UMFA_BACKEND_CUDA ? "cuda" : chosen == UMFA_BACKEND_METAL ? "metal" : "cpu",
              s.manifest.c_str(), cases.size(),
              merge_cases.size());
  // The build line names the CPU kernel variant in use (checked by the emulated test runs).
  std::printf("build: %s\n", umfa_build_info());

  Runner runner(s, ctx, root);
  int passed = 0, failed = 0, skipped = 0;
  // The attention cases, then the merge cases.
  std::vector<std::pair<const Json*, bool>> all;
  for (const auto& c : cases) all.emplace_back(&c, false);
  for (const auto& c : merge_cases) all.emplace_back(&c, true);
  for (const auto& [case_json, merge] : all) {
    const Json& c = *case_json;
    const std::string id = c["id"].as_string();
    if (!s.filters.empty()) {
      bool hit = false;
      for (const auto& f : s.filters) {
        hit = hit || id.find(f) != std::string::npos;  // part of the id, or a whole tag
        if (c.has("tags"))
          for (const auto& t : c["tags"].items()) hit = hit || t.as_string() == f;
      }
      if (!hit) continue;
    }
    if (const std::string* why = skip_reason(skips, id)) {
      std::printf("SKIP %s: %s\n", id.c_str(), why->c_str());
      ++skipped;
      continue;
    }
    try {
      const double worst = merge ? runner.run_merge(c) : runner.run(c);
      const char* kind = merge ? "merge" : c["backward"].as_bool() ? "fwd+bwd" : "fwd";
      std::printf("PASS %s (%s, max err/tol %.3f)\n", id.c_str(), kind, worst);
      ++passed;
    } catch (const CaseFailure& e) {
      std::printf("FAIL %s: %s\n", id.c_str(), e.what());
      ++failed;
    } catch (const std::exception& e) {
      std::printf("FAIL %s: runner error: %s\n", id.c_str(), e.what());
      ++failed;
    }
    std::fflush(stdout);
  }
  umfa_context_destroy(ctx);
  std::printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
  return failed ? 1 : 0;
}
