"""Wheels for every platform, built on this machine, and the sdist built from source.

* The tag logic of ``hatch_build.py`` on small libraries compiled here for each platform (the host
  compiler, ``aarch64-linux-gnu-gcc``, ``x86_64-w64-mingw32-gcc``; a synthetic Mach-O header for
  macOS): the manylinux tag follows the highest GLIBC symbol version, a libstdc++ dependency
  loses it, a library of the wrong CPU or a DLL importing the MinGW runtime is refused.
* The linux-arm64 and win32-x64 wheels (``UMFA_WHEEL_PLATFORM``) from ``dist/native/<platform>/``
  when ``bash scripts/build-native.sh <platform>`` has produced it (else from a stand-in library
  compiled for that platform): tag, contents, and the architecture of the library inside
  (``readelf -h`` / ``objdump -f``).
* The sdist carries the core's sources; installed with pip into a fresh virtual environment in
  a temporary folder (no ``UMFA_LIB_DIR``, nothing from the checkout), it builds libumfa with
  CMake and computes attention that matches a float64 numpy reference.

(test_wheel.py installs the linux-x64 wheel the same way and runs conformance vectors with it.)
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import struct
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from pathlib import Path

import pytest

import umfa

VERSION = umfa.__version__
PKG_ROOT = Path(__file__).resolve().parents[1]
REPO = PKG_ROOT.parents[1]

_spec = importlib.util.spec_from_file_location("umfa_hatch_build", PKG_ROOT / "hatch_build.py")
hb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(hb)  # type: ignore[union-attr]


def _env(**extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("UMFA_LIB_DIR", "UMFA_WHEEL_PLATFORM", "UMFA_WHEEL_REQUIRE_MANYLINUX",
                        "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.setdefault("PIP_RETRIES", "0")
    env.update(extra)
    return env


def _run(cmd, **kw):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    assert r.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{r.stdout}\n{r.stderr}"
    return r


def _compile(compiler: str, source: str, out: Path, *flags: str, cxx: bool = False) -> Path:
    if shutil.which(compiler) is None:
        pytest.skip(f"{compiler} is not installed (Debian: see the cross toolchains in scripts/setup.sh)")
    src = out.with_suffix(".cpp" if cxx else ".c")
    src.write_text(source)
    _run([compiler, "-shared", "-fPIC", "-O1", "-o", out, src, *flags])
    return out


C_LIB = "#include <string.h>\nint umfa_abi_version(void) { return 1; }\n" \
        "void umfa_copy(char *d, const char *s, unsigned long n) { memcpy(d, s, n); }\n"
CXX_LIB = "#include <string>\nextern \"C\" unsigned long umfa_len(const char *s) " \
          "{ return std::string(s).size(); }\n"


def _macho(cpu: int, minos: int, use_build_version: bool = True) -> bytes:
    if use_build_version:  # LC_BUILD_VERSION: platform 1 (macOS), minos, sdk, ntools 0
        cmd = struct.pack("<IIIIII", 0x32, 24, 1, minos, minos, 0)
    else:  # LC_VERSION_MIN_MACOSX: version, sdk
        cmd = struct.pack("<IIII", 0x24, 16, minos, minos)
    header = struct.pack("<IIIIIIII", 0xFEEDFACF, cpu, 0, 6, 1, len(cmd), 0, 0)
    return header + cmd


# ------------------------------------------------------------------------------------------------
# The tag logic on small libraries
# ------------------------------------------------------------------------------------------------


def test_manylinux_tag_follows_the_highest_glibc_version(tmp_path):
    lib = _compile("gcc", C_LIB, tmp_path / "libumfa.so.1")
    assert hb.binary_platform(lib) == "linux-x64"
    _, versions = hb.elf_needs(lib)
    glibc = [tuple(map(int, v[6:].split(".")[:2])) for v in versions if v.startswith("GLIBC_")]
    want = max(glibc + [hb.MANYLINUX_FLOOR])
    tag = hb.platform_tag({"libumfa.so.1": lib}, "linux-x64", require_manylinux=True)
    assert tag == f"manylinux_{want[0]}_{want[1]}_x86_64"
    # Packed as another platform: refused.
    with pytest.raises(hb.PackagingError, match="built for linux-x64, not linux-arm64"):
        hb.platform_tag({"libumfa.so.1": lib}, "linux-arm64")


def test_libstdcxx_dependency_loses_the_manylinux_tag(tmp_path):
    lib = _compile("g++", CXX_LIB, tmp_path / "libumfa.so.1", cxx=True)
    tag, problems = hb.manylinux_tag([lib], "x86_64")
    assert tag is None
    assert any("libstdc++" in p for p in problems), problems
    assert hb.platform_tag({"libumfa.so.1": lib}, "linux-x64") == "linux_x86_64"
    with pytest.raises(hb.PackagingError, match="not a manylinux library"):
        hb.platform_tag({"libumfa.so.1": lib}, "linux-x64", require_manylinux=True)
    # Linked statically (as release builds are), the same code keeps the manylinux tag.
    static = _compile("g++", CXX_LIB, tmp_path / "static.so", "-static-libstdc++", "-static-libgcc",
                      cxx=True)
    tag, problems = hb.manylinux_tag([static], "x86_64")
    assert tag is not None and tag.endswith("_x86_64"), problems


def test_aarch64_library_gets_an_aarch64_tag(tmp_path):
    lib = _compile("aarch64-linux-gnu-gcc", C_LIB, tmp_path / "libumfa.so.1")
    assert hb.binary_platform(lib) == "linux-arm64"
    tag = hb.platform_tag({"libumfa.so.1": lib}, "linux-arm64", require_manylinux=True)
    assert re.fullmatch(r"manylinux_2_\d+_aarch64", tag), tag
    with pytest.raises(hb.PackagingError, match="not linux-x64"):
        hb.platform_tag({"libumfa.so.1": lib}, "linux-x64")


def test_windows_dll_gets_win_amd64_and_must_not_need_the_mingw_runtime(tmp_path):
    dll = _compile("x86_64-w64-mingw32-gcc", C_LIB, tmp_path / "umfa.dll")
    assert hb.binary_platform(dll) == "win32-x64"
    assert hb.platform_tag({"umfa.dll": dll}, "win32-x64") == "win_amd64"
    cxx = _compile("x86_64-w64-mingw32-g++", CXX_LIB, tmp_path / "cxx.dll", cxx=True)
    with pytest.raises(hb.PackagingError, match=r"imports .*libstdc\+\+-6\.dll"):
        hb.platform_tag({"umfa.dll": cxx}, "win32-x64")


def test_macos_tag_from_the_minimum_version(tmp_path):
    arm = tmp_path / "arm.dylib"
    arm.write_bytes(_macho(0x0100000C, (11 << 16) | (3 << 8)))
    x64 = tmp_path / "x64.dylib"
    x64.write_bytes(_macho(0x01000007, (10 << 16) | (15 << 8), use_build_version=False))
    assert hb.binary_platform(arm) == "darwin-arm64"
    assert hb.binary_platform(x64) == "darwin-x64"
    assert hb.platform_tag({"libumfa.1.dylib": arm}, "darwin-arm64") == "macosx_11_0_arm64"
    assert hb.platform_tag({"libumfa.1.dylib": x64}, "darwin-x64") == "macosx_10_15_x86_64"


def test_absent_library_is_an_error_naming_the_command(tmp_path):
    with pytest.raises(hb.PackagingError, match="bash scripts/build-native.sh linux-arm64"):
        hb.find_library_files(tmp_path, "linux-arm64")


# ------------------------------------------------------------------------------------------------
# Wheels for the other platforms, from their dist/native/<platform>/
# ------------------------------------------------------------------------------------------------


def _build_wheel(out: Path, **env) -> Path:
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(out), str(PKG_ROOT)]
    if importlib.util.find_spec("hatchling") is not None:
        cmd.insert(4, "--no-build-isolation")
    _run(cmd, env=_env(**env), cwd=out)
    wheels = list(out.glob("umfa-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.mark.parametrize("plat,lib,tag,header", [
    ("linux-arm64", "umfa/_lib/libumfa.so.1", r"manylinux_2_\d+_aarch64|linux_aarch64",
     ["readelf", "-h", "Machine:\\s+AArch64"]),
    ("win32-x64", "umfa/_lib/umfa.dll", r"win_amd64", ["objdump", "-f", "architecture: i386:x86-64"]),
])
def test_cross_platform_wheel(tmp_path, plat, lib, tag, header):
    install = REPO / "dist" / "native" / plat
    env = {"UMFA_WHEEL_PLATFORM": plat}
    if not install.is_dir():
        # Not built on this machine yet (bash scripts/build-native.sh <platform>): the wheel is
        # built the same way from a small stand-in library of that platform, compiled here, so the
        # packaging path is exercised; the real library's wheel is checked once it exists.
        stand_in = tmp_path / "stand-in"
        stand_in.mkdir()
        compiler = {"linux-arm64": "aarch64-linux-gnu-gcc", "win32-x64": "x86_64-w64-mingw32-gcc"}[plat]
        _compile(compiler, C_LIB, stand_in / Path(lib).name)
        env["UMFA_LIB_DIR"] = str(stand_in)
        print(f"{plat}: dist/native/{plat} absent, wheel built from a stand-in library")
    wheel = _build_wheel(tmp_path, **env)
    m = re.fullmatch(rf"umfa-{re.escape(VERSION)}-py3-none-({tag})\.whl", wheel.name)
    assert m, wheel.name
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        assert lib in names
        assert not any(n.startswith("umfa/_lib/") and n != lib and "cuda" not in n for n in names), names
        z.extract(lib, tmp_path / "x")
        wheel_meta = z.read(f"umfa-{VERSION}.dist-info/WHEEL").decode()
    assert f"Tag: py3-none-{m.group(1)}" in wheel_meta
    tool, flag, want = header
    out = _run([tool, flag, tmp_path / "x" / lib]).stdout
    assert re.search(want, out), out
    if plat.startswith("linux") and m.group(1).startswith("manylinux"):
        highest = max((tuple(map(int, v[6:].split(".")[:2]))
                       for v in hb.elf_needs(tmp_path / "x" / lib)[1] if v.startswith("GLIBC_")),
                      default=hb.MANYLINUX_FLOOR)
        assert m.group(1).startswith(f"manylinux_{max(highest, hb.MANYLINUX_FLOOR)[0]}_"
                                     f"{max(highest, hb.MANYLINUX_FLOOR)[1]}_")


# ------------------------------------------------------------------------------------------------
# The sdist, built from source in a fresh virtual environment
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sdist(tmp_path_factory):
    out = tmp_path_factory.mktemp("sdist")
    cmd = [sys.executable, "-m", "build", "--sdist", "-o", str(out), str(PKG_ROOT)]
    if importlib.util.find_spec("hatchling") is not None:
        cmd.insert(3, "--no-isolation")
    _run(cmd, env=_env(), cwd=out)
    found = list(out.glob("umfa-*.tar.gz"))
    assert len(found) == 1, found
    return found[0]


def test_sdist_carries_the_core_sources(sdist):
    with tarfile.open(sdist) as t:
        names = set(t.getnames())
    base = f"umfa-{VERSION}/"
    for want in ("_core/core/CMakeLists.txt", "_core/include/umfa.h", "_core/core/cmake/umfa.map",
                 "_core/core/src/api/attention.cpp", "_core/core/src/cpu/dispatch.cpp",
                 "hatch_build.py", "pyproject.toml", "src/umfa/__init__.py"):
        assert base + want in names, want
    # Sources only: no built library, no build folder.
    assert not [n for n in names if re.search(r"\.(so(\.\d+)*|dll|dylib|o|a)$", n)]
    assert not [n for n in names if "/build/" in n]


def test_sdist_builds_from_source_in_a_fresh_venv(sdist, tmp_path):
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", venv], env=_env())
    py = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    # pip builds the wheel from the sdist in an isolated environment (hatchling from the index),
    # compiling libumfa with CMake; the build's log shows the hook's choice.
    r = _run([py, "-m", "pip", "install", "-v", sdist], env=_env(UMFA_JOBS="2"), cwd=tmp_path)
    log = r.stdout + r.stderr
    assert re.search(r"umfa sdist: \S*cmake --build", log), log[-3000:]
    assert re.search(r"umfa wheel: linux-x64, tag py3-none-(manylinux_2_\d+_x86_64|linux_x86_64)", log), log[-3000:]
    work = tmp_path / "elsewhere"
    work.mkdir()
    script = textwrap.dedent(f"""
        import numpy as np, umfa
        site = {str(venv)!r}
        assert umfa.__file__.startswith(site), umfa.__file__
        assert umfa.library_path().startswith(site), umfa.library_path()
        assert umfa.__version__ == {VERSION!r} == umfa.version_string()
        rng = np.random.default_rng(1)
        q, k, v = (rng.standard_normal((2, 24, 3, 16)).astype(np.float32) for _ in range(3))
        out = umfa.flash_attn_func(q, k, v, causal=True)
        q64, k64, v64 = (a.astype(np.float64) for a in (q, k, v))
        s = np.einsum("bqhd,bkhd->bhqk", q64, k64) / np.sqrt(16)
        s = np.where(np.tril(np.ones((24, 24), bool)), s, -np.inf)
        p = np.exp(s - s.max(-1, keepdims=True)); p /= p.sum(-1, keepdims=True)
        ref = np.einsum("bhqk,bkhd->bqhd", p, v64)
        err = float(np.abs(out - ref).max())
        assert err < 1e-5, err
        print("sdist-built umfa", umfa.__version__, "from", umfa.library_path(), "max error", err)
    """)
    r = _run([py, "-c", script], env=_env(), cwd=work)
    assert "sdist-built umfa" in r.stdout
    print(r.stdout.strip())
