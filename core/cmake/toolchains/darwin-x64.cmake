# macOS x86_64 (darwin-x64) with Apple clang: a native build on a Mac (on Apple silicon, the
# x86_64 build is a cross build whose tests run under Rosetta 2). Builds on macOS; not built by
# our CI (no Apple SDK there). See docs/platforms.md for what the core does on macOS.
#
#   cmake -S core -B build/native/darwin-x64 -DCMAKE_TOOLCHAIN_FILE=$PWD/core/cmake/toolchains/darwin-x64.cmake
set(CMAKE_OSX_ARCHITECTURES x86_64 CACHE STRING "Target architecture")
set(CMAKE_OSX_DEPLOYMENT_TARGET 10.15 CACHE STRING "Oldest macOS the library runs on")
# No CUDA on macOS.
set(UMFA_ENABLE_CUDA OFF CACHE BOOL "No CUDA backend on macOS" FORCE)
