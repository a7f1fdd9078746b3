# Cross build of the core for Linux aarch64 with Debian's GNU cross toolchain
# (g++-aarch64-linux-gnu); ctest runs every test program under qemu user-mode emulation
# (qemu-user), with the target's libraries from /usr/aarch64-linux-gnu.
#
#   cmake -S core -B build/native/linux-arm64 -DCMAKE_TOOLCHAIN_FILE=core/cmake/toolchains/linux-arm64.cmake
#
# QEMU_CPU (environment, read by qemu-aarch64 at test time) picks the emulated CPU and so the
# kernel variant the dispatcher finds: cortex-a72 (ARMv8.0 NEON), max (BF16, FP16, ...).
# UMFA_AARCH64_PREFIX and UMFA_AARCH64_SYSROOT override the tool prefix and the library root
# (e.g. a Debian 11 build root's cross compiler).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

if(DEFINED ENV{UMFA_AARCH64_PREFIX})
  set(_umfa_prefix "$ENV{UMFA_AARCH64_PREFIX}")
else()
  set(_umfa_prefix "aarch64-linux-gnu-")
endif()
if(DEFINED ENV{UMFA_AARCH64_SYSROOT})
  set(_umfa_libroot "$ENV{UMFA_AARCH64_SYSROOT}")
else()
  set(_umfa_libroot "/usr/aarch64-linux-gnu")
endif()

set(CMAKE_C_COMPILER "${_umfa_prefix}gcc")
set(CMAKE_CXX_COMPILER "${_umfa_prefix}g++")
# The tests that inspect the library (test_exports) use the target's binutils.
find_program(CMAKE_NM "${_umfa_prefix}nm" REQUIRED)
find_program(CMAKE_OBJDUMP "${_umfa_prefix}objdump" REQUIRED)
find_program(CMAKE_AR "${_umfa_prefix}ar" REQUIRED)
find_program(CMAKE_RANLIB "${_umfa_prefix}ranlib" REQUIRED)
find_program(CMAKE_STRIP "${_umfa_prefix}strip")

find_program(UMFA_QEMU_AARCH64 qemu-aarch64)
if(UMFA_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR "${UMFA_QEMU_AARCH64};-L;${_umfa_libroot}")
endif()

# Look for libraries and headers of the target only; programs (nm, qemu) on the host.
set(CMAKE_FIND_ROOT_PATH "${_umfa_libroot}")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# No CUDA toolchain targets aarch64 here.
set(UMFA_ENABLE_CUDA OFF CACHE BOOL "" FORCE)
