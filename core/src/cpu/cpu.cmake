# Included by core/CMakeLists.txt after the umfa_cpu object library is defined.
#
# The SIMD variants (kernels_<variant>.cpp: generic, avx2, avx512, avx512bf16, neon, neon_bf16;
# each compiles the pieces in kernels/ with its own simd_<isa>.h) select their instruction set
# with target pragmas inside the files, so they need no per-file flags and build with any global
# flags (a variant for another architecture compiles to a null getter); the choice among them
# happens at run time (dispatch.cpp; avx512bf16 only when asked for by UMFA_CPU_ISA).
#
# cpu_bench: a timing tool for the backend (not a ctest test), core/build/bin/cpu_bench; its
# options are listed at the top of core/tests/cpu_bench.cpp.
if(UMFA_BUILD_TESTS AND EXISTS "${CMAKE_CURRENT_SOURCE_DIR}/tests/cpu_bench.cpp")
  add_executable(cpu_bench "${CMAKE_CURRENT_SOURCE_DIR}/tests/cpu_bench.cpp" $<TARGET_OBJECTS:umfa_cpu>)
  target_include_directories(cpu_bench PRIVATE "${UMFA_INCLUDE_DIR}" "${CMAKE_CURRENT_SOURCE_DIR}/src")
  target_link_libraries(cpu_bench PRIVATE Threads::Threads ${CMAKE_DL_LIBS})
  target_compile_options(cpu_bench PRIVATE -Wall -Wextra)
endif()
