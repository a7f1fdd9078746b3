// libumfa_cuda: the CUDA backend's function table (core/src/backend.h) and its dispatcher.
//
// Paths, chosen per call:
//   fast     f16/bf16 inputs, no mask tensor, head_dim <= 256: the tensor-core kernels (fwd.cuh,
//            bwd.cuh), templated on head_dim 64/96/128/256 (smaller head dims are zero-padded
//            to the next template). Inputs whose layout the kernels cannot read directly (last
//            dim not contiguous, rows not 16-byte aligned, head_dim not a multiple of 8, or a
//            dout dtype different from q's) are first copied into dense scratch ("staging").
//            Forward problems with too few blocks to fill the GPU split the key range and merge
//            the partial results (split-KV, for decode).
//   generic  everything else (f32 inputs, mask/bias tensors): exact f32 SIMT kernels.
//            f32 inputs stay on this path so that f32 results keep f32 accuracy; set
//            UMFA_CUDA_F32=bf16 (or f16) to convert f32 inputs into scratch and use the fast path.
// Every call runs on Problem::stream (scratch with cudaMallocAsync/cudaFreeAsync on that stream)
// and never synchronizes the device.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

#include "../backend.h"
#include "kernels.h"

namespace umfa {
namespace cuda {
namespace {

struct Impl {
  int device = 0;
  int sm_count = 1;
  int smem_optin = 48 * 1024;
  int cc_major = 0, cc_minor = 0;
  bool force_generic = false;  // UMFA_CUDA_GENERIC=1: every call on the generic kernels
  int f32_compute = -1;        // UMFA_CUDA_F32=bf16|f16: f32 inputs converted for the fast path
  int max_splits = 64;         // UMFA_CUDA_SPLITS=n: upper bound on split-KV splits (1 = off)
  int force_splits = 0;        // UMFA_CUDA_FORCE_SPLITS=n: always split (testing)
  bool small = true;           // UMFA_CUDA_SMALL=0: never use fwd_small_kernel (testing)
  int small_variant = 0;       // UMFA_CUDA_SMALL_VARIANT (tuning builds)
  int fwd_variant = 0;         // UMFA_CUDA_FWD_VARIANT / UMFA_CUDA_BWD_VARIANT: tile shapes of
  int bwd_variant = 0;         // tuning builds (UMFA_CUDA_TUNING); 0 = production
  bool sm90 = false;           // compute capability 9.0 and the sm_90a kernels are built
                               // (UMFA_CUDA_SM90=0: keep to the sm_80 kernels)
  int sm90_fwd = 0;            // UMFA_CUDA_SM90_FWD: sm_90a forward tile shape (tuning builds)
};

void set_msg(ErrorSink* err, const char* fmt, ...) {
  if (!err || !err->message || err->capacity == 0) return;
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(err->message, err->capacity, fmt, ap);
  va_end(ap);
}

umfa_status cuda_fail(ErrorSink* err, cudaError_t e, const char* what) {
  set_msg(err, "%s: %s (%s)", what, cudaGetErrorString(e), cudaGetErrorName(e));
  return e == cudaErrorMemoryAllocation ? UMFA_STATUS_OUT_OF_MEMORY : UMFA_STATUS_BACKEND_ERROR;
}

// Makes `dev` current for the scope and restores the caller's device afterwards.
class DeviceGuard {
 public:
  explicit DeviceGuard(int dev) {
    if (cudaGetDevice(&prev_) != cudaSuccess) prev_ = -1;
    if (prev_ != dev) {
      err_ = cudaSetDevice(dev);
      changed_ = err_ == cudaSuccess;
    }
  }
  ~DeviceGuard() {
    if (changed_ && prev_ >= 0) cudaSetDevice(prev_);
  }
  cudaError_t error() const { return err_; }

 private:
  int prev_ = -1;
  bool changed_ = false;
  cudaError_t err_ = cudaSuccess;
};

int elem_size(int dtype) {
  switch (dtype) {
    case UMFA_DTYPE_F32:
    case UMFA_DTYPE_I32: return 4;
    case UMFA_DTYPE_F16:
    case UMFA_DTYPE_BF16: return 2;
    default: return 1;
  }
}

int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
size_t align_up(size_t x) { return (x + 255) & ~size_t(255); }

// True when stride k is a multiple of n elements or irrelevant (extent <= 1).
bool stride_ok(const View& v, int k, int64_t n) { return v.shape[k] <= 1 || v.strides[k] % n == 0; }

// vec bits of an output view (see TView::vec).
int out_vec(const View& v, bool varlen) {
  if (v.strides[3] != 1 && v.shape[3] > 1) return 0;
  const uintptr_t ptr = reinterpret_cast<uintptr_t>(v.data);
  const int es = elem_size(v.dtype);
  auto ok = [&](int64_t n) {
    return ptr % uintptr_t(n * es) == 0 && (varlen || stride_ok(v, 0, n)) && stride_ok(v, 1, n) &&
           stride_ok(v, 2, n);
  };
  return (ok(2) ? 1 : 0) | (ok(4) ? 2 : 0) | (ok(16 / es) ? 4 : 0);
}

// Whether the tensor-core kernels can read `v` (dtype `dt`) in place.
bool fast_readable(const View& v, int dt, bool varlen, int64_t d) {
  if (v.dtype != dt || d % 8 != 0) return false;
  if (v.strides[3] != 1) return false;
  if (reinterpret_cast<uintptr_t>(v.data) % 16 != 0) return false;
  return (varlen || stride_ok(v, 0, 8)) && stride_ok(v, 1, 8) && stride_ok(v, 2, 8);
}

TView tview(const View& v, bool varlen) {
  TView t;
  t.ptr = v.data;
  t.sb = varlen ? 0 : v.strides[0];
  t.ss = v.strides[1];
  t.sh = v.strides[2];
  t.sd = v.strides[3];
  t.dtype = v.dtype;
  t.vec = out_vec(v, varlen);
  return t;
}

int head_dim_template(int64_t d) { return d <= 64 ? 64 : d <= 96 ? 96 : d <= 128 ? 128 : 256; }

enum Slot { kStageQ, kStageK, kStageV, kStageDO, kOacc, kLseacc, kLse2, kDelta, kDqacc, kSlots };

struct Plan {
  bool varlen = false;
  bool fast = false;
  int cdt = UMFA_DTYPE_F16;  // compute dtype of the fast path
  int dt = 0;                // head-dim template
  KernelInfo main, dq;
  bool stage[4] = {false, false, false, false};  // q, k, v, dout
  int dp = 0;                                     // staged head-dim pitch
  int splits = 1;
  bool dbuf = true;
  bool det = false;
  int64_t rows_q = 0, rows_k = 0, rows_pad = 0;
  size_t off[kSlots] = {};
  size_t bytes[kSlots] = {};
  size_t total = 0;
};

Plan make_plan(const Impl* im, const Problem& p, bool backward) {
  Plan pl;
  pl.varlen = p.cu_seqlens_q != nullptr;
  const int64_t d = p.head_dim;
  pl.rows_q = pl.varlen ? p.q.shape[1] : p.batch * p.seqlen_q;
  pl.rows_k = pl.varlen ? p.k.shape[1] : p.batch * p.seqlen_k;
  pl.rows_pad = pl.rows_q + 128;

  int cdt = p.q.dtype;
  if (cdt == UMFA_DTYPE_F32) cdt = im->f32_compute;
  // Plain scores (no softcap, no ALiBi, positive scale): the sm_90a kernels' domain.
  const bool plain = p.softcap <= 0.f && !p.alibi.present() && p.scale > 0.f;
  pl.fast = !im->force_generic && !p.mask.present() && d >= 1 && d <= 256 &&
            (cdt == UMFA_DTYPE_F16 || cdt == UMFA_DTYPE_BF16);
  if (pl.fast) {
    pl.cdt = cdt;
    pl.dt = head_dim_template(d);
    if (!backward) {
      pl.main = fwd_kernel_info(cdt, pl.dt, im->fwd_variant);
      // Short causal or windowed problems: 64-row tiles waste less on the diagonal (measured on
      // an H100: +13% at N = 512 for head_dim 64 and 128).
      const bool masked = p.window_left >= 0 || p.window_right >= 0;
      if (im->fwd_variant == 0 && masked && p.seqlen_q <= 1024 && p.seqlen_k <= 1024) {
        const KernelInfo k = fwd_kernel_info(cdt, pl.dt, kFwdShortMasked);
        if (k.fn) pl.main = k;
      }
      if (!pl.main.fn || pl.main.smem > im->smem_optin) pl.fast = false;
    } else {
      pl.main = bwd_kernel_info(cdt, pl.dt, im->bwd_variant);
      pl.det = (p.flags & UMFA_FLAG_DETERMINISTIC) != 0;
      // Hopper: the wgmma kernel for plain scores (its dQ goes through atomics).
      if (im->sm90 && plain && !pl.det && im->bwd_variant == 0) {
        const KernelInfo k = bwd_sm90_kernel_info(cdt, pl.dt);
        if (k.fn_plain && k.smem <= im->smem_optin) pl.main = k;
      }
      if (!pl.main.fn && !pl.main.fn_plain) {
        pl.fast = false;
      } else if (pl.main.smem > 0 && pl.main.smem <= im->smem_optin) {
        pl.dbuf = true;
      } else if (pl.main.smem_small <= im->smem_optin) {
        pl.dbuf = false;
      } else {
        pl.fast = false;
      }
      if (pl.fast && pl.det) {
        pl.dq = dq_kernel_info(cdt, pl.dt);
        if (!pl.dq.fn || pl.dq.smem > im->smem_optin) pl.fast = false;
      }
    }
  }

  if (pl.fast) {
    pl.dp = int((d + 7) / 8 * 8);
    pl.stage[0] = !fast_readable(p.q, cdt, pl.varlen, d);
    pl.stage[1] = !fast_readable(p.k, cdt, pl.varlen, d);
    pl.stage[2] = !fast_readable(p.v, cdt, pl.varlen, d);
    if (backward) pl.stage[3] = !fast_readable(p.dout, cdt, pl.varlen, d);
    const int64_t es = 2;
    if (pl.stage[0]) pl.bytes[kStageQ] = size_t(pl.rows_q * p.heads_q * pl.dp * es);
    if (pl.stage[1]) pl.bytes[kStageK] = size_t(pl.rows_k * p.heads_kv * pl.dp * es);
    if (pl.stage[2]) pl.bytes[kStageV] = size_t(pl.rows_k * p.heads_kv * pl.dp * es);
    if (pl.stage[3]) pl.bytes[kStageDO] = size_t(pl.rows_q * p.heads_q * pl.dp * es);

    if (!backward) {
      int64_t blocks = cdiv(p.seqlen_q, pl.main.bm) * p.heads_q * p.batch;
      // Too few blocks of the main kernel to fill the GPU (short or decode queries): the small
      // kernel, 16 query rows per block with the key range split over its warps.
      const KernelInfo small = small_kernel_info(cdt, pl.dt, im->small_variant);
      if (im->small && small.fn && small.smem <= im->smem_optin &&
          (p.seqlen_q <= 16 || blocks < im->sm_count)) {
        pl.main = small;
        blocks = cdiv(p.seqlen_q, pl.main.bm) * p.heads_q * p.batch;
      }
      const int64_t ntiles = cdiv(p.seqlen_k, pl.main.bn);
      const bool is_small = pl.main.fn == small.fn;
      int64_t splits = 1;
      if (im->force_splits > 0) {
        splits = std::min<int64_t>(im->force_splits, std::max<int64_t>(ntiles, 1));
      } else if (is_small) {
        // Split only long key ranges (more than 8 tiles per warp), up to ~2 blocks per SM.
        splits = std::min<int64_t>(cdiv(2 * int64_t(im->sm_count), std::max<int64_t>(blocks, 1)),
                                   cdiv(ntiles, 8 * (pl.main.threads / 32)));
        splits = std::min<int64_t>(std::max<int64_t>(splits, 1), im->max_splits);
      } else if (blocks > 0 && blocks < im->sm_count && ntiles >= 2) {
        splits = std::min<int64_t>(cdiv(2 * int64_t(im->sm_count), blocks), ntiles);
        splits = std::min<int64_t>(splits, im->max_splits);
      }
      pl.splits = int(std::max<int64_t>(splits, 1));
      // Hopper: the wgmma kernel for plain scores (same grid as the main kernel, no split-KV).
      if (im->sm90 && plain && !is_small && pl.splits == 1 && im->fwd_variant == 0) {
        const KernelInfo k = fwd_sm90_kernel_info(cdt, pl.dt, im->sm90_fwd);
        if (k.fn_plain && k.smem <= im->smem_optin) pl.main = k;
      }
      if (pl.splits > 1) {
        pl.bytes[kOacc] = size_t(pl.splits) * p.heads_q * pl.rows_q * d * 4;
        pl.bytes[kLseacc] = size_t(pl.splits) * p.heads_q * pl.rows_q * 4;
      }
    } else if (!pl.det) {
      pl.bytes[kDqacc] = size_t(pl.rows_q) * p.heads_q * pl.dt * 4;
    }
  }
  if (backward) {
    pl.bytes[kLse2] = size_t(pl.rows_pad) * p.heads_q * 4;
    pl.bytes[kDelta] = size_t(pl.rows_pad) * p.heads_q * 4;
  }
  size_t at = 0;
  for (int i = 0; i < kSlots; ++i) {
    pl.off[i] = at;
    at += align_up(pl.bytes[i]);
  }
  pl.total = at;
  return pl;
}

KParams make_params(const Problem& p, const Plan& pl) {
  KParams k;
  k.batch = int(p.batch);
  k.hq = int(p.heads_q);
  k.hkv = int(p.heads_kv);
  k.group = k.hkv > 0 ? k.hq / k.hkv : 1;
  k.nq = int(p.seqlen_q);
  k.nk = int(p.seqlen_k);
  k.d = int(p.head_dim);
  k.rows_q = pl.rows_q;
  k.rows_k = pl.rows_k;
  k.cu_q = p.cu_seqlens_q;
  k.cu_k = p.cu_seqlens_k;
  k.q = tview(p.q, pl.varlen);
  k.k = tview(p.k, pl.varlen);
  k.v = tview(p.v, pl.varlen);
  k.o = tview(p.out, pl.varlen);
  if (p.dout.present()) k.dout = tview(p.dout, pl.varlen);
  if (p.dq.present()) k.dq = tview(p.dq, pl.varlen);
  if (p.dk.present()) k.dk = tview(p.dk, pl.varlen);
  if (p.dv.present()) k.dv = tview(p.dv, pl.varlen);
  if (p.lse.present()) {
    k.lse = static_cast<float*>(p.lse.data);
    k.lse_sb = pl.varlen ? 0 : p.lse.strides[0];
    k.lse_sh = p.lse.strides[1];
    k.lse_ss = p.lse.strides[2];
  }
  k.scale = p.scale;
  k.scale_log2 = p.scale * 1.4426950408889634f;
  k.softcap = p.softcap;
  k.inv_softcap = p.softcap > 0.f ? 1.f / p.softcap : 0.f;
  // A window wider than both sequences is no window (and keeps the int arithmetic in range).
  const int64_t lim = p.seqlen_q + p.seqlen_k + 1;
  k.wl = (p.window_left < 0 || p.window_left > lim) ? -1 : int(p.window_left);
  k.wr = (p.window_right < 0 || p.window_right > lim) ? -1 : int(p.window_right);
  k.bottom_right = p.bottom_right ? 1 : 0;
  if (p.alibi.present()) {
    k.alibi = static_cast<const float*>(p.alibi.data);
    k.alibi_sb = p.alibi.strides[0];
    k.alibi_sh = p.alibi.strides[1];
  }
  if (p.mask.present()) {
    k.mask = p.mask.data;
    k.mask_dtype = p.mask.dtype;
    k.mask_sb = p.mask.strides[0];
    k.mask_sh = p.mask.strides[1];
    k.mask_sq = p.mask.strides[2];
    k.mask_sk = p.mask.strides[3];
  }
  k.num_splits = pl.splits;
  k.rows_pad = pl.rows_pad;
  k.dbuf = pl.dbuf ? 1 : 0;
  k.dq_atomic = pl.det ? 0 : 1;
  return k;
}

// Scratch memory for one call, allocated and freed in stream order.
class Scratch {
 public:
  Scratch(cudaStream_t st) : st_(st) {}
  cudaError_t alloc(size_t bytes) {
    if (bytes == 0) return cudaSuccess;
    cudaError_t e = cudaMallocAsync(&ptr_, bytes, st_);
    if (e == cudaErrorNotSupported) {
      (void)cudaGetLastError();
      e = cudaMalloc(&ptr_, bytes);
      sync_free_ = true;
    }
    if (e != cudaSuccess) ptr_ = nullptr;
    return e;
  }
  char* at(size_t off) const { return static_cast<char*>(ptr_) + off; }
  ~Scratch() {
    if (!ptr_) return;
    if (sync_free_) {
      cudaStreamSynchronize(st_);
      cudaFree(ptr_);
    } else {
      cudaFreeAsync(ptr_, st_);
    }
  }

 private:
  cudaStream_t st_;
  void* ptr_ = nullptr;
  bool sync_free_ = false;
};

cudaError_t launch(const KernelInfo& ki, int64_t blocks, int smem, const KParams& kp,
                   cudaStream_t st) {
  if (blocks <= 0) return cudaSuccess;
  if (blocks > 0x7fffffff) return cudaErrorInvalidConfiguration;
  KParams copy = kp;
  void* args[] = {&copy};
  // Plain scores (no softcap, no ALiBi, positive scale) run the plain instantiation if any.
  const bool plain = kp.softcap <= 0.f && !kp.alibi && kp.scale > 0.f;
  const void* fn = plain && ki.fn_plain ? ki.fn_plain : ki.fn;
  return cudaLaunchKernel(fn, dim3(unsigned(blocks)), dim3(unsigned(ki.threads)), args,
                          size_t(smem), st);
}

// Copies the inputs the fast kernels cannot read in place into scratch and points kp at them.
cudaError_t stage_inputs(const Problem& p, const Plan& pl, const Scratch& ws, KParams& kp,
                         cudaStream_t st) {
  struct Item {
    bool on;
    Slot slot;
    TView* view;
    int64_t rows;
    int64_t n;
    int64_t heads;
  } items[4] = {
      {pl.stage[0], kStageQ, &kp.q, pl.rows_q, p.seqlen_q, p.heads_q},
      {pl.stage[1], kStageK, &kp.k, pl.rows_k, p.seqlen_k, p.heads_kv},
      {pl.stage[2], kStageV, &kp.v, pl.rows_k, p.seqlen_k, p.heads_kv},
      {pl.stage[3], kStageDO, &kp.dout, pl.rows_q, p.seqlen_q, p.heads_q},
  };
  for (const Item& it : items) {
    if (!it.on) continue;
    void* dst = ws.at(pl.off[it.slot]);
    cudaError_t e = launch_stage(*it.view, pl.varlen, it.rows, int(std::max<int64_t>(it.n, 1)),
                                 int(it.heads), int(p.head_dim), pl.dp, dst, pl.cdt, st);
    if (e != cudaSuccess) return e;
    TView& v = *it.view;
    v.ptr = dst;
    v.dtype = pl.cdt;
    v.sh = pl.dp;
    v.ss = it.heads * pl.dp;
    v.sb = pl.varlen ? 0 : it.n * it.heads * pl.dp;
    v.sd = 1;
  }
  return cudaSuccess;
}

// ---- the table's functions ----------------------------------------------------------------------

int32_t device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n;
}

int env_int(const char* name, int dflt) {
  const char* v = std::getenv(name);
  return (v && *v) ? std::atoi(v) : dflt;
}

constexpr int kMaxVariants = 12;  // variant numbers of tuning builds (UMFA_CUDA_*_VARIANT)

struct KernelList {
  static constexpr int kCapacity = 2 * 4 * (3 * kMaxVariants + 3);  // dtypes x head dims x below
  KernelInfo k[kCapacity];
  int n = 0;
  void add(const KernelInfo& ki) {
    if (n < kCapacity) k[n++] = ki;  // a longer list is a bug; never write past the end
  }
};

const KernelList& all_fast_kernels() {
  static const KernelList list = [] {
    KernelList l;
    const int dts[4] = {64, 96, 128, 256};
    const int dtypes[2] = {UMFA_DTYPE_F16, UMFA_DTYPE_BF16};
    for (int t : dtypes)
      for (int dt : dts) {
        l.add(small_kernel_info(t, dt, 0));
        l.add(small_kernel_info(t, dt, 1));
        l.add(fwd_kernel_info(t, dt, kFwdShortMasked));
        for (int var = 0; var < kMaxVariants; ++var) {
          l.add(fwd_kernel_info(t, dt, var));
          l.add(bwd_kernel_info(t, dt, var));
          l.add(dq_kernel_info(t, dt, var));
        }
      }
    return l;
  }();
  return list;
}

umfa_status create(int32_t device_index, int32_t num_threads, void** out_impl, ErrorSink* err) {
  (void)num_threads;
  const int n = device_count();
  if (n <= 0) {
    set_msg(err, "no CUDA device is visible");
    return UMFA_STATUS_BACKEND_UNAVAILABLE;
  }
  if (device_index < 0 || device_index >= n) {
    set_msg(err, "CUDA device %d does not exist (%d visible)", device_index, n);
    return UMFA_STATUS_BACKEND_UNAVAILABLE;
  }
  DeviceGuard g(device_index);
  if (g.error() != cudaSuccess) return cuda_fail(err, g.error(), "cudaSetDevice");
  Impl* im = new (std::nothrow) Impl;
  if (!im) return UMFA_STATUS_OUT_OF_MEMORY;
  im->device = device_index;
  cudaError_t e = cudaDeviceGetAttribute(&im->sm_count, cudaDevAttrMultiProcessorCount, device_index);
  if (e == cudaSuccess)
    e = cudaDeviceGetAttribute(&im->smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device_index);
  if (e == cudaSuccess)
    e = cudaDeviceGetAttribute(&im->cc_major, cudaDevAttrComputeCapabilityMajor, device_index);
  if (e == cudaSuccess)
    e = cudaDeviceGetAttribute(&im->cc_minor, cudaDevAttrComputeCapabilityMinor, device_index);
  if (e != cudaSuccess) {
    delete im;
    return cuda_fail(err, e, "cudaDeviceGetAttribute");
  }
  if (im->cc_major < 8) {
    set_msg(err, "CUDA device %d has compute capability %d.%d; libumfa_cuda needs 8.0 or newer",
            device_index, im->cc_major, im->cc_minor);
    delete im;
    return UMFA_STATUS_BACKEND_UNAVAILABLE;
  }
  im->force_generic = env_int("UMFA_CUDA_GENERIC", 0) != 0;
  if (const char* f = std::getenv("UMFA_CUDA_F32")) {
    if (!std::strcmp(f, "bf16")) im->f32_compute = UMFA_DTYPE_BF16;
    if (!std::strcmp(f, "f16")) im->f32_compute = UMFA_DTYPE_F16;
  }
  im->max_splits = std::max(1, env_int("UMFA_CUDA_SPLITS", 64));
  im->force_splits = std::max(0, env_int("UMFA_CUDA_FORCE_SPLITS", 0));
  im->small = env_int("UMFA_CUDA_SMALL", 1) != 0;
  im->small_variant = env_int("UMFA_CUDA_SMALL_VARIANT", 0);
  im->fwd_variant = env_int("UMFA_CUDA_FWD_VARIANT", 0);
  im->bwd_variant = env_int("UMFA_CUDA_BWD_VARIANT", 0);

  // Opt the kernels into the shared memory they need (per device, once per context).
  const KernelList& kl = all_fast_kernels();
  const KernelInfo* ks = kl.k;
  for (int i = 0; i < kl.n; ++i) {
    int want = ks[i].smem;
    if (want == 0 || want > im->smem_optin) want = ks[i].smem_small;
    if (!ks[i].fn || want <= 48 * 1024 || want > im->smem_optin) continue;
    for (const void* fn : {ks[i].fn, ks[i].fn_plain}) {
      if (fn) e = cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, want);
      if (e != cudaSuccess) {
        delete im;
        return cuda_fail(err, e, "cudaFuncSetAttribute");
      }
    }
  }
  if (im->cc_major == 9 && im->cc_minor == 0 && env_int("UMFA_CUDA_SM90", 1) != 0) {
    im->sm90 = true;
    im->sm90_fwd = env_int("UMFA_CUDA_SM90_FWD", 0);
    for (int dt : {64, 128, 256})
      for (int t : {UMFA_DTYPE_F16, UMFA_DTYPE_BF16}) {
        for (const KernelInfo& k : {fwd_sm90_kernel_info(t, dt, 0), fwd_sm90_kernel_info(t, dt, 1),
                                    bwd_sm90_kernel_info(t, dt)}) {
          if (!k.fn_plain) continue;
          e = cudaFuncSetAttribute(k.fn_plain, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                   k.smem);
          if (e != cudaSuccess) {  // not built for this device: keep to the sm_80 kernels
            (void)cudaGetLastError();
            im->sm90 = false;
          }
        }
      }
  }
  *out_impl = im;
  return UMFA_STATUS_OK;
}

void destroy(void* impl) { delete static_cast<Impl*>(impl); }

uint64_t forward_workspace(void* impl, const Problem* p) {
  return make_plan(static_cast<Impl*>(impl), *p, false).total;
}
uint64_t backward_workspace(void* impl, const Problem* p) {
  return make_plan(static_cast<Impl*>(impl), *p, true).total;
}

umfa_status forward(void* impl, const Problem* pp, ErrorSink* err) {
  const Impl* im = static_cast<Impl*>(impl);
  const Problem& p = *pp;
  DeviceGuard g(im->device);
  if (g.error() != cudaSuccess) return cuda_fail(err, g.error(), "cudaSetDevice");
  cudaStream_t st = static_cast<cudaStream_t>(p.stream);
  const Plan pl = make_plan(im, p, false);
  KParams kp = make_params(p, pl);
  cudaError_t e = cudaSuccess;
  {
    Scratch ws(st);
    e = ws.alloc(pl.total);
    if (e != cudaSuccess) return cuda_fail(err, e, "allocating scratch");
    if (pl.fast) {
      e = stage_inputs(p, pl, ws, kp, st);
      if (pl.splits > 1) {
        kp.oacc = reinterpret_cast<float*>(ws.at(pl.off[kOacc]));
        kp.lseacc = reinterpret_cast<float*>(ws.at(pl.off[kLseacc]));
      }
      const int64_t blocks = cdiv(p.seqlen_q, pl.main.bm) * p.heads_q * p.batch * pl.splits;
      if (e == cudaSuccess) e = launch(pl.main, blocks, pl.main.smem, kp, st);
      if (e == cudaSuccess && pl.splits > 1) e = launch_combine(kp, st);
    } else {
      e = launch_generic_forward(kp, st);
    }
    if (e == cudaSuccess && pl.varlen)
      e = launch_varlen_tail(tview(p.out, true), p.cu_seqlens_q, int(p.batch), pl.rows_q,
                             int(p.heads_q), int(p.head_dim), kp.lse, kp.lse_sh, kp.lse_ss, st);
  }
  if (e == cudaSuccess) e = cudaGetLastError();
  if (e != cudaSuccess) return cuda_fail(err, e, "forward");
  return UMFA_STATUS_OK;
}

umfa_status backward(void* impl, const Problem* pp, ErrorSink* err) {
  const Impl* im = static_cast<Impl*>(impl);
  const Problem& p = *pp;
  DeviceGuard g(im->device);
  if (g.error() != cudaSuccess) return cuda_fail(err, g.error(), "cudaSetDevice");
  cudaStream_t st = static_cast<cudaStream_t>(p.stream);
  const Plan pl = make_plan(im, p, true);
  KParams kp = make_params(p, pl);
  cudaError_t e = cudaSuccess;
  {
    Scratch ws(st);
    e = ws.alloc(pl.total);
    if (e != cudaSuccess) return cuda_fail(err, e, "allocating scratch");
    kp.lse2 = reinterpret_cast<float*>(ws.at(pl.off[kLse2]));
    kp.delta = reinterpret_cast<float*>(ws.at(pl.off[kDelta]));
    // Rows no sequence owns read as "no key visible": LSE2 huge, Delta 0.
    if (pl.fast && !pl.det) {
      kp.dq_acc = reinterpret_cast<float*>(ws.at(pl.off[kDqacc]));
      kp.dq_pitch = pl.dt;
    }
    e = cudaMemsetAsync(kp.lse2, 0x7f, pl.bytes[kLse2], st);
    if (e == cudaSuccess) e = cudaMemsetAsync(kp.delta, 0, pl.bytes[kDelta], st);
    bool zeroed = false;
    if (e == cudaSuccess) e = launch_bwd_preprocess(kp, st, &zeroed);
    if (e == cudaSuccess && kp.dq_acc && !zeroed)
      e = cudaMemsetAsync(kp.dq_acc, 0, pl.bytes[kDqacc], st);
    if (e == cudaSuccess && pl.fast) {
      e = stage_inputs(p, pl, ws, kp, st);
      const int64_t blocks = cdiv(p.seqlen_k, pl.main.bn) * p.heads_kv * p.batch;
      if (e == cudaSuccess)
        e = launch(pl.main, blocks, pl.dbuf ? pl.main.smem : pl.main.smem_small, kp, st);
      if (e == cudaSuccess) {
        if (!pl.det) {
          e = launch_dq_convert(kp, st);
        } else {
          const int64_t qblocks = cdiv(p.seqlen_q, pl.dq.bm) * p.heads_q * p.batch;
          e = launch(pl.dq, qblocks, pl.dq.smem, kp, st);
        }
      }
    } else if (e == cudaSuccess) {
      e = launch_generic_backward(kp, st);
    }
    if (e == cudaSuccess && pl.varlen) {
      e = launch_varlen_tail(tview(p.dq, true), p.cu_seqlens_q, int(p.batch), pl.rows_q,
                             int(p.heads_q), int(p.head_dim), nullptr, 0, 0, st);
      if (e == cudaSuccess)
        e = launch_varlen_tail(tview(p.dk, true), p.cu_seqlens_k, int(p.batch), pl.rows_k,
                               int(p.heads_kv), int(p.head_dim), nullptr, 0, 0, st);
      if (e == cudaSuccess)
        e = launch_varlen_tail(tview(p.dv, true), p.cu_seqlens_k, int(p.batch), pl.rows_k,
                               int(p.heads_kv), int(p.head_dim), nullptr, 0, 0, st);
    }
  }
  if (e == cudaSuccess) e = cudaGetLastError();
  if (e != cudaSuccess) return cuda_fail(err, e, "backward");
  return UMFA_STATUS_OK;
}

umfa_status merge(void* impl, const MergeProblem* p, ErrorSink* err) {
  const Impl* im = static_cast<Impl*>(impl);
  DeviceGuard g(im->device);
  if (g.error() != cudaSuccess) return cuda_fail(err, g.error(), "cudaSetDevice");
  const cudaError_t e = launch_merge(*p, static_cast<cudaStream_t>(p->stream));
  if (e != cudaSuccess) return cuda_fail(err, e, "merge");
  return UMFA_STATUS_OK;
}

umfa_status alloc(void* impl, uint64_t bytes, void** out_ptr, ErrorSink* err) {
  const Impl* im = static_cast<Impl*>(impl);
  DeviceGuard g(im->device);
  if (g.error() != cudaSuccess) return cuda_fail(err, g.error(), "cudaSetDevice");
  void* ptr = nullptr;
  cudaError_t e = cudaMalloc(&ptr, bytes);
  if (e == cudaSuccess) e = cudaMemset(ptr, 0, bytes);
  if (e != cudaSuccess) {
    if (ptr) cudaFree(ptr);
    return cuda_fail(err, e, "cudaMalloc");
  }
  *out_ptr = ptr;
  return UMFA_STATUS_OK;
}

void free_fn(void* impl, void* ptr) {
  const Impl* im = static_cast<Impl*>(impl);
  DeviceGuard g(im->device);
  if (ptr) cudaFree(ptr);
}

umfa_status copy_to_device(void* impl, void* dst, const void* src, uint64_t bytes, ErrorSink* err) {
  const Impl* im = static_cast<Impl*>(impl);
  DeviceGuard g(im->device);
  cudaError_t e = cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice);
  return e == cudaSuccess ? UMFA_STATUS_OK : cuda_fail(err, e, "cudaMemcpy to the device");
}

umfa_status copy_to_host(void* impl, void* dst, const void* src, uint64_t bytes, ErrorSink* err) {
  const Impl* im = static_cast<Impl*>(impl);
  DeviceGuard g(im->device);
  cudaError_t e = cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost);
  return e == cudaSuccess ? UMFA_STATUS_OK : cuda_fail(err, e, "cudaMemcpy to the host");
}

const BackendTable kTable = {
    sizeof(BackendTable), "cuda",        create,          destroy,       forward_workspace,
    backward_workspace,   forward,       backward,        alloc,         free_fn,
    copy_to_device,       copy_to_host,  device_count,    merge,
};

}  // namespace

KernelInfo fwd_kernel_info(int dtype, int dt, int variant) {
  return dtype == UMFA_DTYPE_BF16 ? fwd_kernel_info_bf16(dt, variant)
                                  : fwd_kernel_info_f16(dt, variant);
}
KernelInfo bwd_kernel_info(int dtype, int dt, int variant) {
  return dtype == UMFA_DTYPE_BF16 ? bwd_kernel_info_bf16(dt, variant)
                                  : bwd_kernel_info_f16(dt, variant);
}
KernelInfo small_kernel_info(int dtype, int dt, int variant) {
  return dtype == UMFA_DTYPE_BF16 ? small_kernel_info_bf16(dt, variant)
                                  : small_kernel_info_f16(dt, variant);
}
KernelInfo dq_kernel_info(int dtype, int dt, int variant) {
  return dtype == UMFA_DTYPE_BF16 ? dq_kernel_info_bf16(dt, variant)
                                  : dq_kernel_info_f16(dt, variant);
}

}  // namespace cuda
}  // namespace umfa

extern "C" __attribute__((visibility("default"))) const umfa::BackendTable* umfa_cuda_backend_v1(void) {
  return &umfa::cuda::kTable;
}
