// The per-call error message slot of an options struct (umfa_attention_options and
// umfa_merge_options have one, at the same place in their contract: error_message and
// error_message_capacity, appended after older fields).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "api/internal.h"

namespace umfa {
namespace api {

// On failure, finish() copies this call's message into the caller's slot when its struct is
// large enough to hold one: the thread's last error when the call recorded one (every failure
// path does, on the calling thread), else the status name. Read once at entry; the fields are
// never trusted beyond struct_size.
template <class Options>
class CallMessage {
 public:
  explicit CallMessage(const Options* o) : failures_(thread_failure_count()) {
    constexpr size_t kEnd = offsetof(Options, error_message_capacity) + sizeof(uint64_t);
    if (!o || o->struct_size < kEnd) return;
    dst_ = o->error_message;
    capacity_ = o->error_message_capacity;
  }

  umfa_status finish(umfa_status st) const {
    if (st == UMFA_STATUS_OK || !dst_ || capacity_ == 0) return st;
    const char* msg = thread_failure_count() != failures_ ? thread_last_error() : umfa_status_string(st);
    const size_t len = std::min<uint64_t>(std::strlen(msg), capacity_ - 1);
    std::memcpy(dst_, msg, len);
    dst_[len] = '\0';
    return st;
  }

 private:
  uint64_t failures_;
  char* dst_ = nullptr;
  uint64_t capacity_ = 0;
};

}  // namespace api
}  // namespace umfa
