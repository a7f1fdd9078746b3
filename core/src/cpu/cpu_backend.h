// The CPU backend's entry point. The API layer calls it once to get the function table.
#pragma once

#include "../backend.h"

namespace umfa {
namespace cpu {

// Static table; never null. Implemented in core/src/cpu/.
const BackendTable* backend_table();

}  // namespace cpu
}  // namespace umfa
