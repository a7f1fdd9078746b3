// Runs conformance/bad_cases.json through the C ABI (ctest `bad_cases_c`): every case must
// return its status with a message containing the case's text, leave every output byte and
// every input byte as it was, and keep the process alive. Cases the C ABI cannot express are
// skipped with the reason the file gives (bindings.c.skip).
//
//   umfa_bad_cases [--cases conformance/bad_cases.json] [--filter TEXT] [--verbose]
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
#include <string>
#include <vector>

#include "json.h"
#include "umfa.h"

#ifndef UMFA_BAD_CASES_DEFAULT
#define UMFA_BAD_CASES_DEFAULT "conformance/bad_cases.json"
#endif

namespace {

using conf::Json;

constexpr unsigned char kSentinel = 0xA7;
constexpr int64_t kMaxElements = 1 << 16;

int32_t status_code(const std::string& name) {
  static const char* const names[] = {
      "OK",          "NULL_CONTEXT",   "NULL_POINTER",      "INVALID_ARGUMENT",
      "INVALID_RANK", "SHAPE_MISMATCH", "HEADS_NOT_DIVISIBLE", "HEAD_DIM_OUT_OF_RANGE",
      "INVALID_STRIDE", "UNSUPPORTED_DTYPE", "DEVICE_MISMATCH", "STRUCT_VERSION",
      "SIZE_OVERFLOW", "OUT_OF_MEMORY", "BACKEND_UNAVAILABLE", "UNSUPPORTED",
      "BACKEND_ERROR", "WORKSPACE_LIMIT", "INVALID_SEQLENS", "INVALID_HANDLE", "INTERNAL"};
  for (int i = 0; i < 21; ++i)
    if (name == names[i]) return i;
  return -1;
}

int32_t dtype_code(const Json& j) {
  if (j.type() == Json::Type::Number) return static_cast<int32_t>(j.as_int());
  const std::string& s = j.as_string();
  if (s == "f32") return UMFA_DTYPE_F32;
  if (s == "f16") return UMFA_DTYPE_F16;
  if (s == "bf16") return UMFA_DTYPE_BF16;
  if (s == "bool") return UMFA_DTYPE_BOOL;
  if (s == "i32") return UMFA_DTYPE_I32;
  throw std::runtime_error("unknown dtype name " + s);
}

double number(const Json& j) {
  if (j.type() == Json::Type::String) {
    const std::string& s = j.as_string();
    if (s == "nan") return std::numeric_limits<double>::quiet_NaN();
    if (s == "inf") return std::numeric_limits<double>::infinity();
    if (s == "-inf") return -std::numeric_limits<double>::infinity();
    throw std::runtime_error("unknown number " + s);
  }
  return j.as_double();
}

// One tensor of a case: its view and the memory behind it.
struct Tensor {
  umfa_tensor t{};
  std::vector<unsigned char> mem;
  std::vector<unsigned char> before;
  std::string alias;  // data "same_as:<role>"
  bool null_data = false;
};

// Merges `over` into `base` (fields of `over` replace those of `base`).
std::map<std::string, const Json*> merged(const Json* base, const Json* over) {
  std::map<std::string, const Json*> m;
  if (base)
    for (const auto& kv : base->members()) m[kv.first] = &kv.second;
  if (over)
    for (const auto& kv : over->members()) m[kv.first] = &kv.second;
  return m;
}

// Builds a tensor from a spec; returns false (with `why`) when C cannot express it.
bool build(const std::map<std::string, const Json*>& spec, bool output, Tensor* out,
           std::string* why) {
  umfa_tensor& t = out->t;
  std::memset(&t, 0, sizeof t);
  t.dtype = dtype_code(*spec.at("dtype"));
  const std::vector<int64_t> shape = spec.at("shape")->as_int_vector();
  t.rank = static_cast<int32_t>(shape.size());
  const int rank = t.rank > UMFA_MAX_RANK ? UMFA_MAX_RANK : t.rank;
  for (int d = 0; d < rank; ++d) t.shape[d] = shape[d];
  if (spec.count("strides")) {
    const std::vector<int64_t> st = spec.at("strides")->as_int_vector();
    for (int d = 0; d < rank && d < static_cast<int>(st.size()); ++d) t.strides[d] = st[d];
  } else {
    int64_t running = 1;
    for (int d = rank - 1; d >= 0; --d) {
      t.strides[d] = running;
      running *= shape[d] > 0 ? shape[d] : 1;
    }
  }
  if (spec.count("device")) t.device = spec.at("device")->as_string() == "cuda" ? UMFA_DEVICE_CUDA : UMFA_DEVICE_CPU;
  // Memory: the elements the view reaches (with non-negative strides), when that is small.
  bool bounded = true;
  __int128 reach = 1;
  for (int d = 0; d < rank; ++d) {
    if (t.shape[d] < 0) bounded = false;
    if (t.shape[d] > 0 && t.strides[d] > 0) reach += static_cast<__int128>(t.shape[d] - 1) * t.strides[d];
  }
  int64_t elements = bounded && reach <= kMaxElements ? static_cast<int64_t>(reach) : 64;
  if (spec.count("data")) {
    const std::string& d = spec.at("data")->as_string();
    if (d == "null") out->null_data = true;
    else if (d == "short") {
      *why = "a short buffer";
      return false;
    } else if (d.rfind("same_as:", 0) == 0) out->alias = d.substr(8);
  }
  const int64_t esize = umfa_dtype_size(t.dtype) ? umfa_dtype_size(t.dtype) : 4;
  out->mem.assign(static_cast<size_t>(elements * esize), kSentinel);
  if (!output) {
    // Inputs: small values of their dtype (0.25 as f32 / f16 / bf16, true, 0).
    for (int64_t i = 0; i < elements; ++i) {
      unsigned char* p = out->mem.data() + i * esize;
      switch (t.dtype) {
        case UMFA_DTYPE_F32: {
          const float f = 0.25f;
          std::memcpy(p, &f, 4);
          break;
        }
        case UMFA_DTYPE_F16: p[0] = 0x00, p[1] = 0x34; break;
        case UMFA_DTYPE_BF16: p[0] = 0x80, p[1] = 0x3e; break;
        case UMFA_DTYPE_BOOL: p[0] = 1; break;
        default: std::memset(p, 0, static_cast<size_t>(esize)); break;
      }
    }
    if (spec.count("values") && t.dtype == UMFA_DTYPE_I32) {
      const std::vector<int64_t> v = spec.at("values")->as_int_vector();
      for (size_t i = 0; i < v.size() && static_cast<int64_t>(i) < elements; ++i) {
        const int32_t x = static_cast<int32_t>(v[i]);
        std::memcpy(out->mem.data() + i * 4, &x, 4);
      }
    }
  }
  t.data = out->null_data ? nullptr : out->mem.data();
  return true;
}

struct Result {
  bool ok = true, skipped = false;
  std::string why;
};

struct Runner {
  bool verbose = false;
  bool cuda_available = false;
  const Json* base_dense = nullptr;
  const Json* base_varlen = nullptr;

  Result run(const Json& c) {
    Result r;
    const std::string call = c["call"].as_string();
    if (c.has("bindings") && c["bindings"].has("c") && c["bindings"]["c"].has("skip")) {
      r.skipped = true;
      r.why = c["bindings"]["c"]["skip"].as_string();
      return r;
    }
    if (c.has("requires") && c["requires"].as_string() == "no_cuda" && cuda_available) {
      r.skipped = true;
      r.why = "CUDA is available here";
      return r;
    }
    const int32_t want = status_code(c["status"].as_string());
    if (want < 0) throw std::runtime_error("unknown status " + c["status"].as_string());
    const std::string message = c.has("message") ? c["message"].as_string() : "";
    if (call == "context_create") return run_create(c, want, message);
    if (call != "forward" && call != "backward") throw std::runtime_error("unknown call " + call);
    const bool backward = call == "backward";
    const bool varlen = c.has("varlen") && c["varlen"].as_bool();
    const Json& base = varlen ? *base_varlen : *base_dense;

    // Tensors by role.
    const char* const roles_f[] = {"q", "k", "v", "out", "lse"};
    const char* const roles_b[] = {"q", "k", "v", "out", "dout", "lse", "dq", "dk", "dv"};
    const std::vector<std::string> roles = backward ? std::vector<std::string>(roles_b, roles_b + 9)
                                                    : std::vector<std::string>(roles_f, roles_f + 5);
    std::map<std::string, std::unique_ptr<Tensor>> ts;
    std::map<std::string, bool> is_output;
    for (const auto& role : roles) {
      const Json* over = c.has("tensors") && c["tensors"].has(role) ? &c["tensors"][role] : nullptr;
      if (over && over->is_null()) continue;  // a NULL tensor pointer
      auto t = std::make_unique<Tensor>();
      const bool output = backward ? (role == "dq" || role == "dk" || role == "dv") : (role == "out" || role == "lse");
      std::string why;
      if (!build(merged(&base[role], over), output, t.get(), &why)) {
        r.skipped = true;
        r.why = "C cannot express " + why;
        return r;
      }
      is_output[role] = output;
      ts[role] = std::move(t);
    }
    // Options.
    umfa_attention_options o;
    std::memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    const Json* opt = c.has("options") ? &c["options"] : nullptr;
    auto field = [&](const char* name) -> const Json* { return opt && opt->has(name) ? &(*opt)[name] : nullptr; };
    if (auto* j = field("struct_size")) o.struct_size = static_cast<uint32_t>(j->as_int());
    if (auto* j = field("struct_size_delta")) o.struct_size = static_cast<uint32_t>(sizeof o + j->as_int());
    if (auto* j = field("mask_mode")) o.mask_mode = static_cast<uint32_t>(j->as_int());
    if (auto* j = field("softmax_scale")) o.softmax_scale = static_cast<float>(number(*j));
    if (auto* j = field("softcap")) o.softcap = static_cast<float>(number(*j));
    if (auto* j = field("has_window")) o.has_window = static_cast<uint32_t>(j->as_int());
    if (auto* j = field("window_left")) o.window_left = j->as_int();
    if (auto* j = field("window_right")) o.window_right = j->as_int();
    if (auto* j = field("flags")) o.flags = static_cast<uint32_t>(j->as_int());
    if (auto* j = field("max_seqlen_q")) o.max_seqlen_q = j->as_int();
    if (auto* j = field("max_seqlen_k")) o.max_seqlen_k = j->as_int();
    std::map<std::string, std::unique_ptr<Tensor>> opt_ts;
    for (const char* name : {"attn_mask", "alibi_slopes", "cu_seqlens_q", "cu_seqlens_k"}) {
      const Json* over = field(name);
      const Json* b = base.has(name) ? &base[name] : nullptr;
      if (over && over->is_null()) continue;
      if (!over && !b) continue;
      auto t = std::make_unique<Tensor>();
      std::string why;
      if (!build(merged(b, over), false, t.get(), &why)) {
        r.skipped = true;
        r.why = "C cannot express " + why;
        return r;
      }
      opt_ts[name] = std::move(t);
    }
    auto opt_ptr = [&](const char* name) -> const umfa_tensor* {
      auto it = opt_ts.find(name);
      return it == opt_ts.end() ? nullptr : &it->second->t;
    };
    o.attn_mask = opt_ptr("attn_mask");
    o.alibi_slopes = opt_ptr("alibi_slopes");
    o.cu_seqlens_q = opt_ptr("cu_seqlens_q");
    o.cu_seqlens_k = opt_ptr("cu_seqlens_k");
    for (auto& kv : ts)
      if (!kv.second->alias.empty()) kv.second->t.data = ts.at(kv.second->alias)->t.data;

    // Context.
    umfa_context* ctx = nullptr;
    umfa_context_options co;
    std::memset(&co, 0, sizeof co);
    co.struct_size = sizeof co;
    co.backend = UMFA_BACKEND_CPU;
    co.num_threads = 2;
    const Json* cj = c.has("context") ? &c["context"] : nullptr;
    if (cj && cj->has("workspace_limit_bytes"))
      co.workspace_limit_bytes = static_cast<uint64_t>((*cj)["workspace_limit_bytes"].as_int());
    if (umfa_context_create(&co, &ctx) != UMFA_STATUS_OK) throw std::runtime_error("cannot create a context");
    alignas(64) static unsigned char not_a_context[256];
    umfa_context* pass = ctx;
    if (cj && cj->has("handle")) {
      const std::string h = (*cj)["handle"].as_string();
      if (h == "null") pass = nullptr;
      else if (h == "not_a_context") pass = reinterpret_cast<umfa_context*>(not_a_context);
      else throw std::runtime_error("unknown handle " + h);
    }

    for (auto& kv : ts) kv.second->before = kv.second->mem;
    for (auto& kv : opt_ts) kv.second->before = kv.second->mem;
    auto T = [&](const char* role) -> const umfa_tensor* {
      auto it = ts.find(role);
      return it == ts.end() ? nullptr : &it->second->t;
    };
    const umfa_status st =
        backward ? umfa_attention_backward(pass, &o, T("q"), T("k"), T("v"), T("out"), T("dout"), T("lse"),
                                           T("dq"), T("dk"), T("dv"))
                 : umfa_attention_forward(pass, &o, T("q"), T("k"), T("v"), T("out"), T("lse"));
    const std::string thread_msg = umfa_last_error(nullptr);
    const std::string ctx_msg = pass == ctx ? umfa_last_error(ctx) : thread_msg;
    umfa_context_destroy(ctx);

    std::ostringstream err;
    if (st != want)
      err << "returned " << umfa_status_string(st) << ", expected " << umfa_status_string(want)
          << " (message: " << thread_msg << ")";
    else if (thread_msg.empty())
      err << "no message";
    else if (ctx_msg != thread_msg)
      err << "the context's message \"" << ctx_msg << "\" differs from the thread's \"" << thread_msg << "\"";
    else if (!message.empty() && thread_msg.find(message) == std::string::npos)
      err << "message \"" << thread_msg << "\" does not contain \"" << message << "\"";
    for (auto& kv : ts)
      if (kv.second->mem != kv.second->before)
        err << (err.tellp() ? "; " : "") << kv.first << (is_output[kv.first] ? " (an output)" : " (an input)")
            << " was written";
    for (auto& kv : opt_ts)
      if (kv.second->mem != kv.second->before) err << (err.tellp() ? "; " : "") << kv.first << " was written";
    if (err.tellp()) {
      r.ok = false;
      r.why = err.str();
    } else if (verbose) {
      r.why = thread_msg;
    }
    return r;
  }

  Result run_create(const Json& c, int32_t want, const std::string& message) {
    Result r;
    umfa_context_options o;
    std::memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    const Json& co = c["context_options"];
    if (co.has("struct_size_delta")) o.struct_size = static_cast<uint32_t>(sizeof o + co["struct_size_delta"].as_int());
    if (co.has("struct_size")) o.struct_size = static_cast<uint32_t>(co["struct_size"].as_int());
    if (co.has("backend")) o.backend = static_cast<uint32_t>(co["backend"].as_int());
    if (co.has("device_index")) o.device_index = static_cast<int32_t>(co["device_index"].as_int());
    if (co.has("num_threads")) o.num_threads = static_cast<int32_t>(co["num_threads"].as_int());
    if (co.has("workspace_limit_bytes")) o.workspace_limit_bytes = static_cast<uint64_t>(co["workspace_limit_bytes"].as_int());
    umfa_context* const sentinel = reinterpret_cast<umfa_context*>(&o);
    umfa_context* ctx = sentinel;
    const umfa_status st = umfa_context_create(&o, &ctx);
    const std::string msg = umfa_last_error(nullptr);
    std::ostringstream err;
    if (st != want) err << "returned " << umfa_status_string(st) << ", expected " << umfa_status_string(want) << " (" << msg << ")";
    else if (ctx != sentinel) err << "wrote *out_context although it failed";
    else if (!message.empty() && msg.find(message) == std::string::npos)
      err << "message \"" << msg << "\" does not contain \"" << message << "\"";
    if (st == UMFA_STATUS_OK && ctx != sentinel) umfa_context_destroy(ctx);
    if (err.tellp()) {
      r.ok = false;
      r.why = err.str();
    } else if (verbose) {
      r.why = msg;
    }
    return r;
  }
};

}  // namespace

int main(int argc, char** argv) {
  std::string path = UMFA_BAD_CASES_DEFAULT;
  std::vector<std::string> filters;
  Runner runner;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--cases" && i + 1 < argc) path = argv[++i];
    else if (a == "--filter" && i + 1 < argc) filters.push_back(argv[++i]);
    else if (a == "--verbose") runner.verbose = true;
    else {
      std::printf("usage: %s [--cases FILE] [--filter TEXT] [--verbose]\n", argv[0]);
      return a == "-h" || a == "--help" ? 0 : 2;
    }
  }
  std::ifstream in(path);
  if (!in) {
    std::fprintf(stderr, "runner error: cannot read %s\n", path.c_str());
    return 2;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  int passed = 0, failed = 0, skipped = 0;
  try {
    const Json doc = Json::parse(ss.str());
    if (doc["format_version"].as_int() != 1) throw std::runtime_error("unsupported format_version");
    runner.base_dense = &doc["base"]["dense"];
    runner.base_varlen = &doc["base"]["varlen"];
    int32_t available = 0;
    umfa_backend_available(UMFA_BACKEND_CUDA, &available, nullptr);
    runner.cuda_available = available != 0;
    for (const Json& c : doc["cases"].items()) {
      const std::string id = c["id"].as_string();
      bool selected = filters.empty();
      for (const auto& f : filters) selected = selected || id.find(f) != std::string::npos;
      if (!selected) continue;
      const Result r = runner.run(c);
      if (r.skipped) {
        ++skipped;
        std::printf("SKIP %s: %s\n", id.c_str(), r.why.c_str());
      } else if (r.ok) {
        ++passed;
        std::printf("ok   %s%s%s\n", id.c_str(), r.why.empty() ? "" : "  -- ", r.why.c_str());
      } else {
        ++failed;
        std::printf("FAIL %s: %s\n", id.c_str(), r.why.c_str());
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "runner error: %s\n", e.what());
    return 2;
  }
  std::printf("bad cases (C ABI): %d passed, %d failed, %d skipped\n", passed, failed, skipped);
  return failed == 0 ? 0 : 1;
}
