// Section 1 of umfa.h: versions.
#include "api/internal.h"

static_assert(UMFA_ABI_VERSION == 1, "update the SONAME in core/CMakeLists.txt with the ABI");

extern "C" {

UMFA_API uint32_t umfa_version(void) {
  return UMFA_VERSION_MAJOR * 10000u + UMFA_VERSION_MINOR * 100u + UMFA_VERSION_PATCH;
}

UMFA_API const char* umfa_version_string(void) { return UMFA_VERSION_STRING; }

UMFA_API uint32_t umfa_abi_version(void) { return UMFA_ABI_VERSION; }

}  // extern "C"
