# Windows x64 (win32-x64) with Debian's mingw-w64 cross compilers, tests run under wine.
#
#   cmake -S core -B build/native/win32-x64 -G Ninja \
#         -DCMAKE_TOOLCHAIN_FILE=core/cmake/toolchains/win32-x64.cmake
#
# Needs the Debian packages g++-mingw-w64-x86-64 and (to run the tests) wine64.
#
# The *-posix compilers: GCC 12's win32 thread model has no std::thread/std::mutex. libstdc++,
# libgcc and winpthreads are linked statically (core/CMakeLists.txt), so umfa.dll imports only
# system DLLs (KERNEL32, msvcrt).
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR AMD64)

set(UMFA_MINGW_TRIPLE x86_64-w64-mingw32)
find_program(CMAKE_C_COMPILER NAMES ${UMFA_MINGW_TRIPLE}-gcc-posix REQUIRED)
find_program(CMAKE_CXX_COMPILER NAMES ${UMFA_MINGW_TRIPLE}-g++-posix REQUIRED)
find_program(CMAKE_RC_COMPILER NAMES ${UMFA_MINGW_TRIPLE}-windres)
find_program(CMAKE_AR NAMES ${UMFA_MINGW_TRIPLE}-gcc-ar-posix ${UMFA_MINGW_TRIPLE}-ar)
find_program(CMAKE_RANLIB NAMES ${UMFA_MINGW_TRIPLE}-gcc-ranlib-posix ${UMFA_MINGW_TRIPLE}-ranlib)
find_program(UMFA_OBJDUMP NAMES ${UMFA_MINGW_TRIPLE}-objdump)

set(CMAKE_FIND_ROOT_PATH /usr/${UMFA_MINGW_TRIPLE})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# ctest runs every test program through wine. Debian's wine64 package installs the loader as
# /usr/lib/wine/wine64 (the `wine` package adds /usr/bin/wine). UMFA_WINE overrides.
if(DEFINED ENV{UMFA_WINE} AND NOT "$ENV{UMFA_WINE}" STREQUAL "")
  set(UMFA_WINE "$ENV{UMFA_WINE}")
else()
  find_program(UMFA_WINE NAMES wine64 wine PATHS /usr/lib/wine /usr/lib64/wine NO_CMAKE_FIND_ROOT_PATH)
endif()
if(UMFA_WINE)
  set(CMAKE_CROSSCOMPILING_EMULATOR "${UMFA_WINE}")
endif()

# No CUDA compiler targets mingw: a host nvcc must not be picked up for this build.
set(UMFA_ENABLE_CUDA OFF CACHE BOOL "No CUDA backend in the mingw-w64 build" FORCE)

# Every program and module (tests, the mock CUDA backend, the conformance runner) links the mingw
# runtime statically too, so wine runs them without a WINEPATH to the cross compiler's DLLs.
set(CMAKE_EXE_LINKER_FLAGS_INIT "-static")
set(CMAKE_SHARED_LINKER_FLAGS_INIT "-static")
set(CMAKE_MODULE_LINKER_FLAGS_INIT "-static")
