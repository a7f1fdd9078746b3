// runtime.cpp — executes a grid of threadgroups. Every thread of a threadgroup is a cooperative
// fiber with its own stack; the scheduler resumes runnable fibers until each has returned. A
// fiber runs until it reaches a threadgroup barrier or a simdgroup-collective operation and waits
// there, so a thread may run arbitrarily far ahead of the others up to the next point where Metal
// makes it wait — the only ordering Metal promises.
#include "runtime.h"
#include "numeric.h"

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <random>

#if !defined(__x86_64__)
#include <ucontext.h>
#endif

namespace metal_sim {

// ------------------------------------------------------------------------------------------
// Context switching. x86-64: a hand-written switch of the callee-saved registers (no system
// call, unlike swapcontext). Elsewhere: ucontext.
#if defined(__x86_64__)
extern "C" void metal_sim_switch(void** save_sp, void* load_sp);
extern "C" void metal_sim_trampoline();
__asm__(
    ".text\n"
    ".globl metal_sim_switch\n"
    ".type metal_sim_switch,@function\n"
    "metal_sim_switch:\n"
    "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
    "  movq %rsp, (%rdi)\n"
    "  movq %rsi, %rsp\n"
    "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n"
    "  ret\n"
    ".size metal_sim_switch,.-metal_sim_switch\n"
    ".globl metal_sim_trampoline\n"
    ".type metal_sim_trampoline,@function\n"
    "metal_sim_trampoline:\n"
    "  movq %r12, %rdi\n"
    "  callq *%r13\n"
    "  ud2\n"
    ".size metal_sim_trampoline,.-metal_sim_trampoline\n");
#endif

namespace {

constexpr std::size_t kStackBytes = 256 * 1024;
const std::size_t kPage = std::size_t(sysconf(_SC_PAGESIZE));

enum class State { ready, barrier, collective, done };

struct Fiber {
  void* stack_map = nullptr;  // guard page + stack
#if defined(__x86_64__)
  void* sp = nullptr;
#else
  ucontext_t ctx;
#endif
  State state = State::ready;
  uint64_t wait_target = 0;
  uint64_t collective_seq = 0;
  ThreadPosition pos{};
};

struct Bank {
  CombineFn fn = nullptr;
  unsigned arrived = 0;
  alignas(16) unsigned char in[kSimdWidth * kLaneSlotBytes];
  alignas(16) unsigned char out[kSimdWidth * kLaneSlotBytes];
};

struct Simdgroup {
  unsigned lanes = 0;
  uint64_t completed = 0;
  Bank bank[2];
};

struct Run {
  const DispatchDesc* desc = nullptr;
  DispatchStats stats;
  std::vector<std::unique_ptr<Fiber>>* fibers = nullptr;
  std::vector<Simdgroup> simdgroups;
  std::vector<Allocation> tg_memory;
  unsigned threads = 0;
  unsigned barrier_arrived = 0;
  uint64_t barrier_generation = 0;
  Fiber* current = nullptr;
#if defined(__x86_64__)
  void* scheduler_sp = nullptr;
#else
  ucontext_t scheduler_ctx;
#endif
  std::string error;
};

thread_local Run* t_run = nullptr;
thread_local std::vector<std::unique_ptr<Fiber>> t_fibers;  // stacks reused across dispatches

void switch_to_scheduler() {
  Run* r = t_run;
#if defined(__x86_64__)
  metal_sim_switch(&r->current->sp, r->scheduler_sp);
#else
  swapcontext(&r->current->ctx, &r->scheduler_ctx);
#endif
}

void switch_to(Fiber* f) {
  Run* r = t_run;
  r->current = f;
  ++r->stats.context_switches;
#if defined(__x86_64__)
  metal_sim_switch(&r->scheduler_sp, f->sp);
#else
  swapcontext(&r->scheduler_ctx, &f->ctx);
#endif
  r->current = nullptr;
}

[[noreturn]] void fiber_main_body(Fiber* f) {
  t_run->desc->kernel();
  f->state = State::done;
  switch_to_scheduler();
  std::abort();  // a finished fiber is never resumed
}

#if defined(__x86_64__)
extern "C" void metal_sim_fiber_entry(Fiber* f) { fiber_main_body(f); }
#else
void fiber_entry_ucontext(unsigned lo, unsigned hi) {
  fiber_main_body(reinterpret_cast<Fiber*>((uintptr_t(hi) << 32) | lo));
}
#endif

void prepare_fiber(Fiber* f) {
  if (!f->stack_map) {
    void* m = mmap(nullptr, kStackBytes + kPage, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) { std::perror("metal_sim: fiber stack"); std::abort(); }
    mprotect(m, kPage, PROT_NONE);  // a stack overflow faults instead of corrupting memory
    f->stack_map = m;
  }
  char* top = static_cast<char*>(f->stack_map) + kPage + kStackBytes;
#if defined(__x86_64__)
  // Frame popped by metal_sim_switch: r15 r14 r13 r12 rbx rbp, then the return address.
  void** ret_slot = reinterpret_cast<void**>(top - 24);  // ≡ 8 (mod 16): rsp ≡ 0 after ret
  void** sp = ret_slot - 6;
  std::memset(sp, 0, 6 * sizeof(void*));
  sp[3] = f;                                                      // r12: argument
  sp[2] = reinterpret_cast<void*>(&metal_sim_fiber_entry);        // r13: entry
  *ret_slot = reinterpret_cast<void*>(&metal_sim_trampoline);
  f->sp = sp;
#else
  getcontext(&f->ctx);
  f->ctx.uc_stack.ss_sp = static_cast<char*>(f->stack_map) + kPage;
  f->ctx.uc_stack.ss_size = kStackBytes;
  f->ctx.uc_link = nullptr;
  uintptr_t p = reinterpret_cast<uintptr_t>(f);
  makecontext(&f->ctx, reinterpret_cast<void (*)()>(&fiber_entry_ucontext), 2, unsigned(p),
              unsigned(p >> 32));
#endif
}

// ------------------------------------------------------------------------------------------
// Guarded allocations and the fault handler.
struct GuardRecord {
  bool live = false;
  char* lo = nullptr;  // [lo, hi): guard pages + data pages of the mapping
  char* hi = nullptr;
  char* data = nullptr;
  std::size_t length = 0;
  char name[96] = {};
};
constexpr int kMaxGuarded = 4096;
GuardRecord g_guarded[kMaxGuarded];
std::mutex g_guard_mutex;
thread_local char t_fault_message[256];
struct sigaction g_previous_segv, g_previous_bus;

extern "C" void metal_sim_fault_escape() { fail("%s", t_fault_message); }

void fault_handler(int sig, siginfo_t* info, void* uctx) {
  char* addr = static_cast<char*>(info->si_addr);
  Run* r = t_run;
  if (r && r->current) {
    for (int i = 0; i < kMaxGuarded; ++i) {
      const GuardRecord& g = g_guarded[i];
      if (!g.live || addr < g.lo || addr >= g.hi) continue;
      const long long off = static_cast<long long>(addr - g.data);
#if defined(__x86_64__)
      ucontext_t* uc = static_cast<ucontext_t*>(uctx);
      const bool write = (uc->uc_mcontext.gregs[REG_ERR] & 2) != 0;
#else
      const bool write = false;
#endif
      std::snprintf(t_fault_message, sizeof t_fault_message,
                    "out-of-bounds %s at byte offset %lld of %s (%zu bytes), thread %u of "
                    "threadgroup (%u,%u,%u)",
                    write ? "write" : "access", off, g.name, g.length,
                    r->current->pos.index_in_threadgroup, r->current->pos.threadgroup_in_grid.x,
                    r->current->pos.threadgroup_in_grid.y, r->current->pos.threadgroup_in_grid.z);
#if defined(__x86_64__)
      // Resume the faulting fiber in metal_sim_fault_escape, on its own stack below the red
      // zone, as if it had been called there; it reports the fault and leaves the dispatch.
      greg_t sp = uc->uc_mcontext.gregs[REG_RSP];
      sp = ((sp - 1024) & ~greg_t(15)) - 8;
      uc->uc_mcontext.gregs[REG_RSP] = sp;
      uc->uc_mcontext.gregs[REG_RIP] = reinterpret_cast<greg_t>(&metal_sim_fault_escape);
      return;
#else
      std::fprintf(stderr, "metal_sim: %s\n", t_fault_message);
      _exit(86);
#endif
    }
  }
  // Not ours: a real crash. Restore the previous disposition and let the fault happen again.
  sigaction(sig, sig == SIGSEGV ? &g_previous_segv : &g_previous_bus, nullptr);
}

void install_fault_handler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = &fault_handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &g_previous_segv);
    sigaction(SIGBUS, &sa, &g_previous_bus);
  });
  thread_local bool alt = false;
  if (!alt) {
    static thread_local char altstack[64 * 1024];
    stack_t ss;
    ss.ss_sp = altstack;
    ss.ss_size = sizeof altstack;
    ss.ss_flags = 0;
    sigaltstack(&ss, nullptr);
    alt = true;
  }
}

std::map<std::string, KernelFn>& kernels() {
  static std::map<std::string, KernelFn> m;
  return m;
}

bool runnable(const Run& r, const Fiber& f) {
  switch (f.state) {
    case State::ready: return true;
    case State::barrier: return r.barrier_generation > f.wait_target;
    case State::collective: return r.simdgroups[f.pos.simdgroup].completed > f.wait_target;
    case State::done: return false;
  }
  return false;
}

std::string describe_deadlock(const Run& r) {
  unsigned at_barrier = 0, in_collective = 0, done = 0;
  for (unsigned i = 0; i < r.threads; ++i) {
    const Fiber& f = *(*r.fibers)[i];
    if (f.state == State::barrier) ++at_barrier;
    else if (f.state == State::collective) ++in_collective;
    else if (f.state == State::done) ++done;
  }
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "deadlock: of %u threads, %u wait at a threadgroup barrier, %u wait in a simdgroup "
                "collective, %u have returned (a barrier or simd_* call not reached by every "
                "thread)",
                r.threads, at_barrier, in_collective, done);
  return buf;
}

}  // namespace

// ------------------------------------------------------------------------------------------
Allocation::Allocation(std::size_t length, Guard guard, std::string name) : length_(length) {
  if (guard == Guard::none) {
    map_length_ = std::max<std::size_t>(length, 1);
    map_ = std::aligned_alloc(64, (map_length_ + 63) / 64 * 64);
    if (!map_) throw std::bad_alloc();
    data_ = map_;
    return;
  }
  install_fault_handler();
  // `after`: the last byte of the allocation is the last byte before the guard page, so the very
  // first byte past the end faults; the start is then aligned as the length is (a buffer of
  // floats starts 4-byte aligned, one of 16-byte vectors 16-byte aligned).
  const std::size_t rounded = std::max<std::size_t>(length, 1);
  const std::size_t data_pages = (std::max<std::size_t>(rounded, 1) + kPage - 1) / kPage * kPage;
  map_length_ = data_pages + 2 * kPage;
  map_ = mmap(nullptr, map_length_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (map_ == MAP_FAILED) throw std::bad_alloc();
  char* base = static_cast<char*>(map_);
  mprotect(base, kPage, PROT_NONE);
  mprotect(base + kPage + data_pages, kPage, PROT_NONE);
  data_ = guard == Guard::after ? base + kPage + data_pages - rounded : base + kPage;
  std::lock_guard<std::mutex> lock(g_guard_mutex);
  for (int i = 0; i < kMaxGuarded; ++i) {
    if (g_guarded[i].live) continue;
    GuardRecord& g = g_guarded[i];
    g.lo = base;
    g.hi = base + map_length_;
    g.data = static_cast<char*>(data_);
    g.length = length;
    std::snprintf(g.name, sizeof g.name, "%s", name.c_str());
    g.live = true;
    registry_slot_ = i;
    break;
  }
  if (registry_slot_ < 0) {
    std::fprintf(stderr, "metal_sim: more than %d guarded allocations are live\n", kMaxGuarded);
    std::abort();
  }
}

void Allocation::release() {
  if (!map_) return;
  if (registry_slot_ >= 0) {
    std::lock_guard<std::mutex> lock(g_guard_mutex);
    g_guarded[registry_slot_].live = false;
    munmap(map_, map_length_);
  } else {
    std::free(map_);
  }
  map_ = nullptr;
  data_ = nullptr;
  registry_slot_ = -1;
}

Allocation::~Allocation() { release(); }
Allocation::Allocation(Allocation&& o) noexcept { *this = std::move(o); }
Allocation& Allocation::operator=(Allocation&& o) noexcept {
  if (this != &o) {
    release();
    data_ = o.data_;
    length_ = o.length_;
    map_ = o.map_;
    map_length_ = o.map_length_;
    registry_slot_ = o.registry_slot_;
    o.map_ = nullptr;
    o.data_ = nullptr;
    o.registry_slot_ = -1;
  }
  return *this;
}

void register_kernel(const char* name, KernelFn fn) { kernels()[name] = fn; }
KernelFn find_kernel(const std::string& name) {
  auto it = kernels().find(name);
  return it == kernels().end() ? nullptr : it->second;
}
std::vector<std::string> kernel_names() {
  std::vector<std::string> v;
  for (auto& k : kernels()) v.push_back(k.first);
  return v;
}

// ------------------------------------------------------------------------------------------
// Called from kernels (through metal_stdlib).
const ThreadPosition& current_position() {
  if (!t_run || !t_run->current) fail("a Metal builtin was used outside a dispatch");
  return t_run->current->pos;
}

void* bound_buffer(unsigned index) {
  const DispatchDesc& d = *t_run->desc;
  if (index >= d.buffers.size() || !d.buffers[index].data)
    fail("kernel %s reads [[buffer(%u)]], which is not bound", d.kernel_name, index);
  return d.buffers[index].data;
}

void* bound_threadgroup_memory(unsigned index) {
  if (index >= t_run->tg_memory.size() || t_run->desc->threadgroup_memory[index] == 0)
    fail("kernel %s uses [[threadgroup(%u)]], whose length is not set", t_run->desc->kernel_name,
         index);
  return t_run->tg_memory[index].data();
}

bool function_constant_defined(unsigned index) {
  return index < 64 && (t_run->desc->constants.defined >> index & 1);
}

uint64_t function_constant_bits(unsigned index) {
  if (!function_constant_defined(index))
    fail("kernel %s reads function constant %u, which the pipeline does not define",
         t_run->desc->kernel_name, index);
  return t_run->desc->constants.bits[index];
}

void threadgroup_barrier_wait() {
  Run* r = t_run;
  Fiber* f = r->current;
  ++r->stats.barriers;
  const uint64_t generation = r->barrier_generation;
  if (++r->barrier_arrived == r->threads) {  // the last to arrive releases the others
    r->barrier_arrived = 0;
    ++r->barrier_generation;
    return;
  }
  f->state = State::barrier;
  f->wait_target = generation;
  switch_to_scheduler();
}

namespace {
void barrier_combine(const unsigned char*, unsigned char*, unsigned) {}
}  // namespace

void simdgroup_barrier_wait() { simd_collective(&barrier_combine, nullptr, 0, nullptr, 0); }

void simd_collective(CombineFn combine, const void* in, std::size_t in_size, void* out,
                     std::size_t out_size) {
  Run* r = t_run;
  if (!r || !r->current) fail("a simdgroup function was called outside a dispatch");
  Fiber* f = r->current;
  Simdgroup& g = r->simdgroups[f->pos.simdgroup];
  const uint64_t seq = f->collective_seq;
  Bank& b = g.bank[seq & 1];
  if (b.arrived == 0) {
    b.fn = combine;
  } else if (b.fn != combine) {
    fail("lanes of simdgroup %u of threadgroup (%u,%u,%u) reached different simdgroup functions "
         "as their collective #%llu (divergent control flow)",
         f->pos.simdgroup, f->pos.threadgroup_in_grid.x, f->pos.threadgroup_in_grid.y,
         f->pos.threadgroup_in_grid.z, static_cast<unsigned long long>(seq));
  }
  if (in_size) std::memcpy(b.in + f->pos.lane * kLaneSlotBytes, in, in_size);
  if (++b.arrived == g.lanes) {
    ++r->stats.collectives;
    combine(b.in, b.out, g.lanes);
    b.arrived = 0;
    g.completed = seq + 1;
  } else {
    f->state = State::collective;
    f->wait_target = seq;
    switch_to_scheduler();
  }
  if (out_size) std::memcpy(out, b.out + f->pos.lane * kLaneSlotBytes, out_size);
  f->collective_seq = seq + 1;
}

void fail(const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  Run* r = t_run;
  if (!r || !r->current) {
    std::fprintf(stderr, "metal_sim: %s\n", buf);
    std::abort();
  }
  if (r->error.empty()) r->error = buf;
  // Leave the dispatch: the scheduler sees the error and abandons every fiber of the grid.
  switch_to_scheduler();
  std::abort();
}

// ------------------------------------------------------------------------------------------
std::string dispatch(const DispatchDesc& desc, DispatchStats* stats) {
  if (!desc.kernel) return "no kernel";
  const Dim3 tg = desc.threads_per_threadgroup;
  const uint64_t threads64 = uint64_t(tg.x) * tg.y * tg.z;
  if (threads64 == 0 || threads64 > 1024)
    return "threads per threadgroup must be 1..1024 (Metal's maxTotalThreadsPerThreadgroup)";
  if (t_run) return "dispatch called from inside a dispatch";
  std::size_t tg_total = 0;
  for (std::size_t len : desc.threadgroup_memory) tg_total += (len + 15) / 16 * 16;
  if (tg_total > 32 * 1024) return "threadgroup memory above 32 KiB (Apple GPUs' limit)";

  Run run;
  run.desc = &desc;
  run.threads = unsigned(threads64);
  run.fibers = &t_fibers;
  while (t_fibers.size() < run.threads) t_fibers.push_back(std::make_unique<Fiber>());
  for (std::size_t i = 0; i < desc.threadgroup_memory.size(); ++i) {
    char name[64];
    std::snprintf(name, sizeof name, "threadgroup memory [[threadgroup(%zu)]]", i);
    run.tg_memory.emplace_back(desc.threadgroup_memory[i], desc.threadgroup_guard, name);
  }
  const unsigned nsimd = (run.threads + kSimdWidth - 1) / kSimdWidth;
  run.simdgroups.resize(nsimd);
  std::mt19937_64 rng(desc.seed);
  std::vector<unsigned> order(run.threads);

  t_run = &run;
  for (uint32_t gz = 0; gz < desc.threadgroups.z && run.error.empty(); ++gz)
    for (uint32_t gy = 0; gy < desc.threadgroups.y && run.error.empty(); ++gy)
      for (uint32_t gx = 0; gx < desc.threadgroups.x && run.error.empty(); ++gx) {
        // Threadgroup memory starts undefined in Metal: fill it with NaN bit patterns.
        for (auto& a : run.tg_memory) std::memset(a.data(), 0xff, a.length());
        run.barrier_arrived = 0;
        run.barrier_generation = 0;
        for (unsigned s = 0; s < nsimd; ++s) {
          run.simdgroups[s].lanes = std::min(kSimdWidth, run.threads - s * kSimdWidth);
          run.simdgroups[s].completed = 0;
          run.simdgroups[s].bank[0].arrived = run.simdgroups[s].bank[1].arrived = 0;
        }
        for (unsigned i = 0; i < run.threads; ++i) {
          Fiber* f = t_fibers[i].get();
          f->state = State::ready;
          f->collective_seq = 0;
          ThreadPosition& p = f->pos;
          p.thread_in_threadgroup = Dim3{i % tg.x, (i / tg.x) % tg.y, i / (tg.x * tg.y)};
          p.threadgroup_in_grid = Dim3{gx, gy, gz};
          p.threads_per_threadgroup = tg;
          p.threadgroups_per_grid = desc.threadgroups;
          p.index_in_threadgroup = i;
          p.lane = i % kSimdWidth;
          p.simdgroup = i / kSimdWidth;
          p.simdgroups = nsimd;
          p.lanes_in_simdgroup = run.simdgroups[p.simdgroup].lanes;
          prepare_fiber(f);
          ++run.stats.threads;
        }
        for (unsigned i = 0; i < run.threads; ++i) order[i] = i;
        if (desc.schedule == Schedule::reverse) std::reverse(order.begin(), order.end());
        for (;;) {
          if (desc.schedule == Schedule::shuffled) std::shuffle(order.begin(), order.end(), rng);
          bool progress = false, all_done = true;
          for (unsigned i : order) {
            Fiber* f = t_fibers[i].get();
            if (f->state == State::done) continue;
            all_done = false;
            if (!runnable(run, *f)) continue;
            f->state = State::ready;
            switch_to(f);
            progress = true;
            if (!run.error.empty()) break;
          }
          if (!run.error.empty() || all_done) break;
          if (!progress) {
            run.error = describe_deadlock(run);
            break;
          }
        }
      }
  t_run = nullptr;
  if (stats) *stats = run.stats;
  if (!run.error.empty()) return std::string(desc.kernel_name) + ": " + run.error;
  return "";
}

}  // namespace metal_sim

// __fp16 conversions that clang emits as library calls on x86-64 (round to nearest even).
extern "C" unsigned short __gnu_f2h_ieee(float f);
extern "C" float __gnu_h2f_ieee(unsigned short h);
extern "C" unsigned short __gnu_f2h_ieee(float f) { return metal_sim::float_to_half_bits(f); }
extern "C" float __gnu_h2f_ieee(unsigned short h) { return metal_sim::half_bits_to_float(h); }
