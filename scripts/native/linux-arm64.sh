# Linux aarch64: the core's ctest suite and every conformance vector under qemu user-mode
# emulation (Debian's qemu-user), once per CPU kernel variant the dispatcher can pick.
# Sourced by scripts/test-native.sh, which calls `platform_test <build_dir>`; the build directory
# was configured with core/cmake/toolchains/linux-arm64.cmake (its CMAKE_CROSSCOMPILING_EMULATOR
# makes ctest run each test program under qemu-aarch64).
#
# Runs (QEMU_CPU is read by qemu-aarch64 and picks the emulated CPU's features):
#   neon       QEMU_CPU=cortex-a72   ARMv8.0 + NEON, no BF16: the dispatcher's default is neon
#   neon_bf16  QEMU_CPU=max          every feature qemu emulates (BF16 included): neon_bf16
#   generic    QEMU_CPU=max, UMFA_CPU_ISA=generic
# Each run must report the intended variant, from the test programs' own output: cpu_backend_test
# prints the default kernels, and the conformance runner prints umfa_build_info() (which names the
# kernels in use). A run that used another variant fails.
#
# test_fork is not run under qemu: qemu-user (Debian 12's 7.2) aborts in the child of a fork()
# from a multithreaded guest (assertions in qemu_plugin_vcpu_init_hook and cpu_exec, exit 127),
# whatever the program does, so the test would only measure the emulator. It runs natively on
# every x86-64 build; the script prints that it was left out.
#
# UMFA_TEST_REDUCED=1 is set for the emulated runs: the tests that honour it run their reduced
# sweeps (the same code paths, fewer random shapes). UMFA_ARM64_VARIANTS (space-separated) limits
# the runs, e.g. "neon" for a quick check. Logs go to <build_dir>/qemu-<variant>.log.

platform_test() {
  local build=${1:?usage: platform_test <build_dir>}
  command -v qemu-aarch64 >/dev/null || { echo "linux-arm64: qemu-aarch64 not found (apt-get install qemu-user)" >&2; return 1; }
  [ -f "$build/CTestTestfile.cmake" ] || { echo "linux-arm64: $build is not a configured build directory" >&2; return 1; }
  local variants=${UMFA_ARM64_VARIANTS:-"neon neon_bf16 generic"}
  local jobs=${UMFA_TEST_JOBS:-2}
  local fail=0 v cpu isa log t0 t1 expect
  local exclude='^test_fork$'
  echo "linux-arm64: not run under qemu: test_fork (qemu-user aborts in fork() of a multithreaded guest)"
  for v in $variants; do
    case $v in
      neon) cpu=cortex-a72 isa= ;;
      neon_bf16) cpu=max isa= ;;
      generic) cpu=max isa=generic ;;
      *) echo "linux-arm64: unknown variant $v" >&2; return 1 ;;
    esac
    log="$build/qemu-$v.log"
    echo "== linux-arm64: ctest under qemu-aarch64 (QEMU_CPU=$cpu${isa:+, UMFA_CPU_ISA=$isa}) -> $log"
    t0=$(date +%s)
    if ! (cd "$build" && env QEMU_CPU="$cpu" UMFA_TEST_REDUCED=1 ${isa:+UMFA_CPU_ISA=$isa} \
          ctest -V -j "$jobs" -E "$exclude") >"$log" 2>&1; then
      echo "FAIL: ctest under qemu ($v); the failures:"
      grep -E "\(Failed\)|\(Timeout\)|\*\*\*|FAILED" "$log" | head -40
      fail=1
    fi
    t1=$(date +%s)
    tail -n 3 "$log" | grep -E "tests passed|Total Test time" || true
    # The variant each program used. cpu_backend_test prints the dispatcher's default (it forces
    # every variant itself afterwards); the conformance runner prints the kernels of its context.
    if ! grep -qE "default kernels ${v}\b" "$log"; then
      echo "FAIL: cpu_backend_test did not report the expected default kernels for $v"; fail=1
    fi
    expect="(kernels $v)"
    if ! grep -qF "$expect" "$log"; then
      echo "FAIL: the conformance runner did not report $expect"; fail=1
    fi
    if grep -q "conformance_c" "$log" && ! grep -E "^ *[0-9]+/[0-9]+ Test +#[0-9]+: conformance_c .* Passed" "$log" >/dev/null; then
      echo "FAIL: conformance_c did not pass ($v)"; fail=1
    fi
    echo "linux-arm64 $v: $((t1 - t0)) s under qemu, kernels verified: $(grep -oF "$expect" "$log" | head -1)"
  done
  return "$fail"
}
