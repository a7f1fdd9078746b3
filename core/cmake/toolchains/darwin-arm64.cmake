# macOS arm64 (darwin-arm64) with Apple clang: a native build on a Mac (on Apple silicon, the
# x86_64 build is a cross build whose tests run under Rosetta 2). Builds on macOS; not built by
# our CI (no Apple SDK there). See docs/platforms.md for what the core does on macOS.
#
#   cmake -S core -B build/native/darwin-arm64 -DCMAKE_TOOLCHAIN_FILE=$PWD/core/cmake/toolchains/darwin-arm64.cmake
set(CMAKE_OSX_ARCHITECTURES arm64 CACHE STRING "Target architecture")
set(CMAKE_OSX_DEPLOYMENT_TARGET 11.0 CACHE STRING "Oldest macOS the library runs on")
# No CUDA on macOS.
set(UMFA_ENABLE_CUDA OFF CACHE BOOL "No CUDA backend on macOS" FORCE)
