// Opening a run-time backend library and checking its table: shared by the CUDA and Metal
// loaders (cuda_loader.cpp, metal_loader.cpp), which differ only in where they look.
#include "api/internal.h"
#include "platform/platform.h"

namespace umfa {
namespace api {

const BackendTable* open_backend_library(const std::string& lib, const char* entry,
                                         std::string& reasons) {
  auto append = [&reasons](const std::string& why) {
    if (!reasons.empty()) reasons += "; ";
    reasons += why;
  };
  std::string error;
  void* handle = platform::library_open(lib, &error);
  if (!handle) {
    append(error);
    return nullptr;
  }
  using EntryFn = const BackendTable* (*)(void);
  auto fn = reinterpret_cast<EntryFn>(platform::library_symbol(handle, entry));
  const BackendTable* table = fn ? fn() : nullptr;
  std::string why;
  if (!fn) {
    why = lib + " does not export " + entry;
  } else if (!table) {
    why = std::string(entry) + "() returned NULL";
  } else if (table->struct_size < kBackendTableMinSize || !table->create || !table->destroy ||
             !table->forward || !table->backward || !table->forward_workspace ||
             !table->backward_workspace || !table->alloc || !table->free ||
             !table->copy_to_device || !table->copy_to_host || !table->device_count) {
    why = lib + " has an incompatible backend table";
  }
  if (!why.empty()) {
    platform::library_close(handle);
    append(why);
    return nullptr;
  }
  return table;  // never closed
}

}  // namespace api
}  // namespace umfa
