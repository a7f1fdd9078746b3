#!/usr/bin/env bash
# The install, as a C consumer sees it: installs the build into a temporary prefix, checks the
# layout (lib/libumfa.so -> SONAME, include/umfa.h, lib/pkgconfig/umfa.pc), compiles a C99
# program with -std=c99 -pedantic-errors -Werror using only `pkg-config --cflags --libs umfa`,
# runs it (umfa_* and mfa_* calls), then moves the whole prefix elsewhere and builds again to
# show the .pc file is relocatable. Exits 77 (ctest: skipped) when pkg-config is not installed.
# Windows builds (the install holds bin/umfa.dll): the layout is bin/umfa.dll, lib/umfa.dll,
# lib/libumfa.dll.a (import library), and the consumer runs through EMULATOR (wine) with the
# prefix's bin/ on its DLL path.
# Usage: check_install.sh BUILD_DIR LIBDIR C_COMPILER [EMULATOR...]
# In a cross build C_COMPILER is the target's compiler and the consumer runs under EMULATOR (the
# build's CMAKE_CROSSCOMPILING_EMULATOR: wine, or qemu-aarch64 -L /usr/aarch64-linux-gnu).
set -euo pipefail
build=$1 libdir=$2 cc=$3
shift 3
emulator=("$@")

if ! command -v pkg-config >/dev/null 2>&1; then
  echo "SKIP: pkg-config is not installed"
  exit 77
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null

fail=0
check() { if [ ! -e "$tmp/prefix/$1" ]; then echo "FAIL: the install lacks $1"; fail=1; fi; }
windows=0 macos=0
[ -e "$tmp/prefix/bin/umfa.dll" ] && windows=1
[ -e "$tmp/prefix/$libdir/libumfa.dylib" ] && macos=1
if [ "$windows" = 1 ]; then
  check bin/umfa.dll
  check "$libdir/umfa.dll"
  check "$libdir/libumfa.dll.a"
elif [ "$macos" = 1 ]; then
  check "$libdir/libumfa.dylib"
  check "$libdir/libumfa.1.dylib"
else
  check "$libdir/libumfa.so"
  check "$libdir/libumfa.so.1"
fi
check include/umfa.h
check "$libdir/pkgconfig/umfa.pc"
[ "$fail" = 0 ] || exit 1
if [ "$macos" = 1 ]; then
  echo "layout: $libdir/libumfa.dylib -> $(readlink "$tmp/prefix/$libdir/libumfa.dylib"), include/umfa.h, $libdir/pkgconfig/umfa.pc"
elif [ "$windows" = 1 ]; then
  echo "layout: bin/umfa.dll, $libdir/umfa.dll, $libdir/libumfa.dll.a, include/umfa.h, $libdir/pkgconfig/umfa.pc"
else
  echo "layout: $libdir/libumfa.so -> $(readlink "$tmp/prefix/$libdir/libumfa.so"), include/umfa.h, $libdir/pkgconfig/umfa.pc"
fi

cat >"$tmp/consumer.c" <<'EOF'
/* A C99 consumer of the installed library. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <umfa.h>

static int failures = 0;
#define EXPECT(cond)                                                     \
  do {                                                                   \
    if (!(cond)) {                                                       \
      fprintf(stderr, "consumer.c:%d: FAILED: %s\n", __LINE__, #cond);   \
      ++failures;                                                        \
    }                                                                    \
  } while (0)

int main(void) {
  EXPECT(umfa_abi_version() == UMFA_ABI_VERSION);
  EXPECT(umfa_version() == UMFA_VERSION_MAJOR * 10000 + UMFA_VERSION_MINOR * 100 + UMFA_VERSION_PATCH);
  EXPECT(strcmp(umfa_version_string(), UMFA_VERSION_STRING) == 0);

  umfa_context_options co;
  memset(&co, 0, sizeof co);
  co.struct_size = sizeof co;
  co.backend = UMFA_BACKEND_CPU;
  umfa_context* ctx = NULL;
  EXPECT(umfa_context_create(&co, &ctx) == UMFA_STATUS_OK);
  if (!ctx) return 1;

  /* One query row, two keys, head_dim 2, f32: out = softmax(q.k * scale) . v */
  float q[2] = {1.f, 0.f}, k[4] = {1.f, 0.f, 0.f, 1.f}, v[4] = {1.f, 2.f, 3.f, 4.f};
  float out[2] = {0.f, 0.f}, lse[1] = {0.f};
  const int64_t qs[4] = {1, 1, 1, 2}, ks[4] = {1, 2, 1, 2}, ls[3] = {1, 1, 1};
  umfa_tensor tq, tk, tv, to, tl;
  EXPECT(umfa_tensor_init_contiguous(&tq, q, UMFA_DTYPE_F32, 4, qs) == UMFA_STATUS_OK);
  EXPECT(umfa_tensor_init_contiguous(&tk, k, UMFA_DTYPE_F32, 4, ks) == UMFA_STATUS_OK);
  EXPECT(umfa_tensor_init_contiguous(&tv, v, UMFA_DTYPE_F32, 4, ks) == UMFA_STATUS_OK);
  EXPECT(umfa_tensor_init_contiguous(&to, out, UMFA_DTYPE_F32, 4, qs) == UMFA_STATUS_OK);
  EXPECT(umfa_tensor_init_contiguous(&tl, lse, UMFA_DTYPE_F32, 3, ls) == UMFA_STATUS_OK);
  umfa_attention_options o;
  memset(&o, 0, sizeof o);
  o.struct_size = sizeof o;
  o.softmax_scale = 1.f;
  EXPECT(umfa_attention_forward(ctx, &o, &tq, &tk, &tv, &to, &tl) == UMFA_STATUS_OK);
  const double e = exp(1.0), p0 = e / (e + 1.0), p1 = 1.0 / (e + 1.0);
  EXPECT(fabs(out[0] - (p0 * 1 + p1 * 3)) < 1e-6 && fabs(out[1] - (p0 * 2 + p1 * 4)) < 1e-6);
  EXPECT(fabs(lse[0] - log(e + 1.0)) < 1e-6);

  /* A rejected call: status, a message naming the argument (context and per call). */
  char message[256] = "";
  o.error_message = message;
  o.error_message_capacity = sizeof message;
  tk.shape[3] = 3;
  EXPECT(umfa_attention_forward(ctx, &o, &tq, &tk, &tv, &to, &tl) == UMFA_STATUS_SHAPE_MISMATCH);
  EXPECT(strstr(umfa_last_error(ctx), "k.shape[3]") != NULL);
  EXPECT(strcmp(message, umfa_last_error(ctx)) == 0);

  /* The classic API. */
  mfa_context_t mctx = NULL;
  mfa_buffer_t bq = NULL, bk = NULL, bv = NULL, bo = NULL;
  float mout[2] = {0.f, 0.f};
  EXPECT(mfa_create_context(&mctx) == MFA_SUCCESS);
  EXPECT(mfa_buffer_from_ptr(mctx, q, sizeof q, &bq) == MFA_SUCCESS);
  EXPECT(mfa_buffer_from_ptr(mctx, k, sizeof k, &bk) == MFA_SUCCESS);
  EXPECT(mfa_buffer_from_ptr(mctx, v, sizeof v, &bv) == MFA_SUCCESS);
  EXPECT(mfa_buffer_from_ptr(mctx, mout, sizeof mout, &bo) == MFA_SUCCESS);
  EXPECT(mfa_attention_forward(mctx, bq, bk, bv, bo, 1, 1, 2, 1, 2, 1.f, 0, MFA_PRECISION_FP32,
                               MFA_PRECISION_FP32, MFA_PRECISION_FP32, 0, 0, 0, 0) == MFA_SUCCESS);
  EXPECT(fabs(mout[0] - out[0]) < 1e-6 && fabs(mout[1] - out[1]) < 1e-6);
  int major = -1, minor = -1, patch = -1;
  mfa_get_version(&major, &minor, &patch);
  EXPECT(major == UMFA_VERSION_MAJOR && minor == UMFA_VERSION_MINOR && patch == UMFA_VERSION_PATCH);
  EXPECT(mfa_is_device_supported());
  EXPECT(strcmp(mfa_error_string(MFA_ERROR_INVALID_ARGS), "Invalid arguments") == 0);
  mfa_destroy_buffer(bq);
  mfa_destroy_buffer(bk);
  mfa_destroy_buffer(bv);
  mfa_destroy_buffer(bo);
  mfa_destroy_context(mctx);

  umfa_context_destroy(ctx);
  printf("consumer: %s\n", failures ? "FAILED" : "ok");
  return failures != 0;
}
EOF

build_and_run() {  # $1 = the prefix's pkgconfig folder
  local pc=$1
  local cflags libs rpath
  cflags=$(PKG_CONFIG_PATH="$pc" pkg-config --cflags umfa)
  libs=$(PKG_CONFIG_PATH="$pc" pkg-config --libs umfa)
  rpath=$(PKG_CONFIG_PATH="$pc" pkg-config --variable=libdir umfa)
  echo "pkg-config: $cflags $libs (libdir $rpath)"
  if [ "$windows" = 1 ]; then
    # No rpath on Windows: the loader searches the program's folder, then PATH (wine: WINEPATH).
    # shellcheck disable=SC2086
    "$cc" -std=c99 -pedantic-errors -Wall -Wextra -Werror $cflags "$tmp/consumer.c" -o "$tmp/consumer.exe" \
      $libs -lm
    WINEPATH="$(dirname "$rpath")/bin" "${emulator[@]}" "$tmp/consumer.exe"
  else
    # shellcheck disable=SC2086
    "$cc" -std=c99 -pedantic-errors -Wall -Wextra -Werror $cflags "$tmp/consumer.c" -o "$tmp/consumer" \
      $libs -lm -Wl,-rpath,"$rpath"
    "${emulator[@]}" "$tmp/consumer"
  fi
}

build_and_run "$tmp/prefix/$libdir/pkgconfig"
mv "$tmp/prefix" "$tmp/moved"
build_and_run "$tmp/moved/$libdir/pkgconfig"
echo "PASS: installed layout, pkg-config, C99 consumer (also after moving the prefix)"
