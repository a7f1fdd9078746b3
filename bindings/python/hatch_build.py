"""Build hook: put libumfa inside the wheel and tag the wheel for the platform the library runs on.

Where the library comes from, first match wins:

1. ``UMFA_LIB_DIR``: a folder holding the library (tests, custom builds);
2. ``dist/native/<platform>/`` of the repository checkout (``lib/``, and ``bin/`` on Windows), as
   ``bash scripts/build-native.sh <platform>`` or, for this machine, ``core/scripts/build.sh``
   leave it;
3. the core's sources shipped in the sdist (``_core/``): built here with CMake (the version the
   core's ``cmake_minimum_required`` names; the ``cmake`` package from the index when the machine
   has none that recent) for this machine. This is how
   ``pip install umfa-<version>.tar.gz`` works anywhere a C++17 compiler is.

``UMFA_WHEEL_PLATFORM`` (``linux-x64``, ``linux-arm64``, ``win32-x64``, ``darwin-arm64``,
``darwin-x64``; default: this machine) picks the wheel's target, so every platform's wheel is
built on one machine from its ``dist/native/<platform>/``.

The tag is read from the library, never assumed:

* Linux: the CPU from the ELF header, and the highest ``GLIBC_x.y`` symbol version any shipped
  library needs (``readelf -V``) gives ``manylinux_x_y_<arch>`` (at least 2.17, the oldest glibc
  of aarch64 and of today's x86-64 wheels). That tag also needs no libstdc++ (no ``GLIBCXX_`` or
  ``CXXABI_`` version, no ``libstdc++.so.6``) and no shared library outside the manylinux set. A
  library failing that (a development build with the machine's toolchain) gets the plain
  ``linux_<arch>`` tag, which pip installs locally and PyPI refuses, and the reason is printed;
  with ``UMFA_WHEEL_REQUIRE_MANYLINUX=1`` (release builds) it is an error instead.
* Windows: the PE header's machine must be x86-64 (``win_amd64``), and the DLL may import no
  MinGW runtime DLL (``lib*.dll``: libstdc++, libgcc, libwinpthread), which a user does not have.
* macOS: the Mach-O CPU type, and the minimum macOS version from ``LC_BUILD_VERSION`` (or
  ``LC_VERSION_MIN_MACOSX``) gives ``macosx_<major>_<minor>_<arch>``.

The package is pure Python over ctypes, so the wheel is ``py3-none-<platform>``: any Python 3.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple

try:
    from hatchling.builders.hooks.plugin.interface import BuildHookInterface
except ImportError:  # the inspection functions below are also used by the packaging tests
    BuildHookInterface = object  # type: ignore[misc,assignment]

ABI_VERSION = 1
PLATFORMS = ("linux-x64", "linux-arm64", "win32-x64", "darwin-arm64", "darwin-x64")
#: Used when the core's CMakeLists.txt cannot be read (see cmake_minimum()).
CMAKE_MINIMUM = (3, 25)
#: Shared libraries a manylinux wheel may need from the system (PEP 600 leaves the set to the
#: glibc of the tag; libstdc++ is left out on purpose: the library links it statically).
MANYLINUX_ALLOWED = frozenset({
    "libc.so.6", "libm.so.6", "libdl.so.2", "libpthread.so.0", "librt.so.1", "libgcc_s.so.1",
    "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1",
})
MANYLINUX_FLOOR = (2, 17)


class PackagingError(RuntimeError):
    """The library cannot go into a wheel as asked (absent, wrong platform, dishonest tag)."""


# ------------------------------------------------------------------------------------------------
# Platforms and file names
# ------------------------------------------------------------------------------------------------


def host_platform() -> str:
    system = {"darwin": "darwin", "windows": "win32"}.get(platform.system().lower(),
                                                            platform.system().lower())
    machine = platform.machine().lower()
    arch = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(machine,
                                                                                        machine)
    return f"{system}-{arch}"


def target_platform() -> str:
    plat = os.environ.get("UMFA_WHEEL_PLATFORM") or host_platform()
    if plat not in PLATFORMS:
        raise PackagingError(f"umfa wheel: UMFA_WHEEL_PLATFORM={plat!r} is not one of "
                             f"{', '.join(PLATFORMS)}")
    return plat


def library_files(plat: str) -> List[Tuple[str, List[str], bool]]:
    """What a wheel for ``plat`` carries: (name in ``umfa/_lib``, candidates relative to the
    install folder, required). The first candidate that exists is packed under the name the
    loader (``umfa/_native.py``) looks for first."""
    if plat.startswith("linux"):
        return [(f"libumfa.so.{ABI_VERSION}", [f"lib/libumfa.so.{ABI_VERSION}", "lib/libumfa.so"], True),
                ("libumfa_cuda.so", ["lib/libumfa_cuda.so"], False)]
    if plat.startswith("win32"):
        return [("umfa.dll", ["bin/umfa.dll", "lib/umfa.dll", "bin/libumfa.dll", "lib/libumfa.dll"], True),
                ("umfa_cuda.dll", ["bin/umfa_cuda.dll", "lib/umfa_cuda.dll"], False)]
    return [(f"libumfa.{ABI_VERSION}.dylib", [f"lib/libumfa.{ABI_VERSION}.dylib", "lib/libumfa.dylib"], True)]


def find_library_files(install: Path, plat: str) -> Dict[str, Path]:
    """``{name in the wheel: file}`` from an install folder (or a bare folder holding the files,
    as ``UMFA_LIB_DIR`` may be)."""
    out: Dict[str, Path] = {}
    for name, candidates, required in library_files(plat):
        paths = [install / c for c in candidates] + [install / Path(c).name for c in candidates]
        found = next((p for p in paths if p.is_file()), None)
        if found is not None:
            out[name] = found.resolve()
        elif required:
            raise PackagingError(
                f"umfa wheel: no {name} for {plat} in {install} (looked for "
                f"{', '.join(str(p) for p in paths)}). Build it first: bash scripts/build-native.sh "
                f"{plat}" + (" (on a Mac)" if plat.startswith("darwin") else ""))
    return out


# ------------------------------------------------------------------------------------------------
# Reading the binaries
# ------------------------------------------------------------------------------------------------


def binary_platform(path: Path) -> str:
    """``<os>-<cpu>`` a shared library is built for, from its header; a description otherwise."""
    data = path.read_bytes()[:4096]
    if data[:4] == b"\x7fELF" and len(data) >= 20:
        fmt = "<H" if data[5] == 1 else ">H"
        machine = struct.unpack_from(fmt, data, 18)[0]
        return "linux-" + {62: "x64", 183: "arm64", 3: "ia32", 40: "arm"}.get(machine, f"elf{machine}")
    if data[:2] == b"MZ" and len(data) >= 64:
        pe = struct.unpack_from("<I", data, 0x3C)[0]
        if data[pe:pe + 4] == b"PE\0\0":
            machine = struct.unpack_from("<H", data, pe + 4)[0]
            return "win32-" + {0x8664: "x64", 0xAA64: "arm64", 0x14C: "ia32"}.get(machine, hex(machine))
    if data[:4] == b"\xcf\xfa\xed\xfe":
        cpu = struct.unpack_from("<I", data, 4)[0]
        return "darwin-" + {0x01000007: "x64", 0x0100000C: "arm64"}.get(cpu, hex(cpu))
    return "unknown"


def _tool(*names: str) -> str:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    raise PackagingError(f"umfa wheel: needs {' or '.join(names)} (GNU binutils) to read the library")


def elf_needs(path: Path) -> Tuple[List[str], List[str]]:
    """(``NEEDED`` shared libraries, symbol versions needed) of an ELF file, read with readelf."""
    readelf = _tool("readelf", "llvm-readelf")
    dyn = subprocess.run([readelf, "-d", "-W", str(path)], capture_output=True, text=True, check=True).stdout
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dyn)
    ver = subprocess.run([readelf, "-V", "-W", str(path)], capture_output=True, text=True, check=True).stdout
    # Only the .gnu.version_r section (what the file needs), not the versions it defines.
    section = ver.split("'.gnu.version_r'", 1)[1] if "'.gnu.version_r'" in ver else ""
    versions = re.findall(r"Name: (\S+)\s+Flags", section)
    return needed, versions


def manylinux_tag(paths: Iterable[Path], arch: str) -> Tuple[Optional[str], List[str]]:
    """(``manylinux_x_y_<arch>`` or None, the reasons it is None) for the files a wheel ships."""
    problems: List[str] = []
    highest = MANYLINUX_FLOOR
    for path in paths:
        needed, versions = elf_needs(path)
        for lib in needed:
            if lib not in MANYLINUX_ALLOWED and not lib.startswith("libumfa"):
                problems.append(f"{path.name} needs {lib}")
        cxx = [v for v in versions if v.startswith(("GLIBCXX_", "CXXABI_"))]
        if cxx:
            newest = sorted(cxx, key=lambda v: [int(x) for x in re.findall(r"\d+", v)])[-1]
            problems.append(f"{path.name} needs libstdc++ symbols ({len(cxx)} versions, up to {newest})")
        for v in versions:
            m = re.fullmatch(r"GLIBC_(\d+)\.(\d+)(?:\.\d+)?", v)
            if m:
                highest = max(highest, (int(m.group(1)), int(m.group(2))))
    if problems:
        return None, sorted(set(problems))
    return f"manylinux_{highest[0]}_{highest[1]}_{arch}", []


def pe_imports(path: Path) -> List[str]:
    """DLL names a PE file imports, read with objdump."""
    objdump = _tool("x86_64-w64-mingw32-objdump", "objdump")
    out = subprocess.run([objdump, "-p", str(path)], capture_output=True, text=True, check=True).stdout
    return re.findall(r"DLL Name: (\S+)", out)


def macos_min_version(path: Path) -> Tuple[int, int]:
    """The minimum macOS version a 64-bit Mach-O file declares."""
    data = path.read_bytes()
    ncmds = struct.unpack_from("<I", data, 16)[0]
    off = 32
    for _ in range(ncmds):
        cmd, size = struct.unpack_from("<II", data, off)
        if cmd == 0x32:  # LC_BUILD_VERSION: platform, minos, sdk, ntools
            minos = struct.unpack_from("<I", data, off + 12)[0]
            return minos >> 16, (minos >> 8) & 0xFF
        if cmd == 0x24:  # LC_VERSION_MIN_MACOSX: version, sdk
            version = struct.unpack_from("<I", data, off + 8)[0]
            return version >> 16, (version >> 8) & 0xFF
        off += size
    raise PackagingError(f"umfa wheel: {path} declares no minimum macOS version")


def platform_tag(files: Dict[str, Path], plat: str, require_manylinux: bool = False) -> str:
    """The honest platform tag for a wheel shipping ``files`` built for ``plat``."""
    for name, path in files.items():
        actual = binary_platform(path)
        if actual != plat:
            raise PackagingError(f"umfa wheel: {path} (packed as {name}) is built for {actual}, "
                                 f"not {plat}")
    main = next(iter(files.values()))
    if plat.startswith("linux"):
        arch = {"linux-x64": "x86_64", "linux-arm64": "aarch64"}[plat]
        tag, problems = manylinux_tag(files.values(), arch)
        if tag is not None:
            return tag
        message = (f"umfa wheel: not a manylinux library ({'; '.join(problems)}); "
                   f"the wheel is tagged linux_{arch}, installable here but refused by PyPI. "
                   "Release libraries come from the Debian 11 build root "
                   f"(bash scripts/build-native.sh {plat}).")
        if require_manylinux:
            raise PackagingError(message)
        print(message, file=sys.stderr)
        return f"linux_{arch}"
    if plat == "win32-x64":
        runtime = [d for d in pe_imports(main) if d.lower().startswith("lib")]
        if runtime:
            raise PackagingError(f"umfa wheel: {main} imports {', '.join(runtime)}, which a "
                                 "Windows user does not have; link the MinGW runtime statically")
        return "win_amd64"
    major, minor = macos_min_version(main)
    if major >= 11:
        minor = 0
    return f"macosx_{major}_{minor}_{ {'darwin-arm64': 'arm64', 'darwin-x64': 'x86_64'}[plat]}"


# ------------------------------------------------------------------------------------------------
# Building the core from the sdist's sources
# ------------------------------------------------------------------------------------------------


def _cmake_version(cmake: str) -> Optional[Tuple[int, int]]:
    try:
        out = subprocess.run([cmake, "--version"], capture_output=True, text=True).stdout
    except OSError:
        return None
    m = re.search(r"version (\d+)\.(\d+)", out)
    return (int(m.group(1)), int(m.group(2))) if m else None


def cmake_minimum(sources: Path) -> Tuple[int, int]:
    """The CMake version the core's CMakeLists.txt asks for (``cmake_minimum_required``)."""
    try:
        text = (sources / "core" / "CMakeLists.txt").read_text()
    except OSError:
        return CMAKE_MINIMUM
    m = re.search(r"cmake_minimum_required\s*\(\s*VERSION\s+(\d+)\.(\d+)", text, re.I)
    return (int(m.group(1)), int(m.group(2))) if m else CMAKE_MINIMUM


def system_cmake_ok(minimum: Tuple[int, int]) -> bool:
    cmake = shutil.which("cmake")
    version = _cmake_version(cmake) if cmake else None
    return version is not None and version >= minimum


def build_core(sources: Path, work: Path) -> Path:
    """Configures, builds and installs libumfa from ``sources`` (holding ``core/`` and
    ``include/``) into ``work/install``; returns that folder."""
    cmake = shutil.which("cmake")
    minimum = cmake_minimum(sources)
    if cmake is None or (_cmake_version(cmake) or (0, 0)) < minimum:
        raise PackagingError("umfa sdist: building libumfa needs CMake "
                             f"{'.'.join(map(str, minimum))} or newer")
    build, install = work / "build", work / "install"
    args = [cmake, "-S", str(sources / "core"), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
            f"-DCMAKE_INSTALL_PREFIX={install}", "-DCMAKE_INSTALL_LIBDIR=lib",
            "-DUMFA_BUILD_TESTS=OFF", "-DUMFA_ENABLE_CUDA=OFF"]
    if shutil.which("ninja"):
        args += ["-G", "Ninja"]
    args += os.environ.get("UMFA_CMAKE_ARGS", "").split()
    jobs = os.environ.get("UMFA_JOBS", str(min(os.cpu_count() or 1, 4)))
    for cmd in (args, [cmake, "--build", str(build), "--parallel", jobs],
                [cmake, "--install", str(build)]):
        print("umfa sdist:", " ".join(cmd), file=sys.stderr)
        subprocess.run(cmd, check=True)
    return install


# ------------------------------------------------------------------------------------------------
# The hook
# ------------------------------------------------------------------------------------------------

#: What the sdist carries of the repository to build the core: (repository path, sdist path).
SDIST_CORE = (("core/CMakeLists.txt", "_core/core/CMakeLists.txt"),
              ("core/cmake", "_core/core/cmake"),
              ("core/src", "_core/core/src"),
              ("include/umfa.h", "_core/include/umfa.h"),
              ("LICENSE", "_core/LICENSE"))


class CustomBuildHook(BuildHookInterface):  # type: ignore[misc,valid-type]
    PLUGIN_NAME = "custom"

    def _repo(self) -> Optional[Path]:
        root = Path(self.root).resolve()
        for parent in root.parents:
            if (parent / "include" / "umfa.h").is_file() and (parent / "core" / "CMakeLists.txt").is_file():
                return parent
        return None

    def _bundled_sources(self) -> Optional[Path]:
        core = Path(self.root) / "_core"
        return core if (core / "core" / "CMakeLists.txt").is_file() else None

    def _prebuilt(self, plat: str) -> Optional[Path]:
        env = os.environ.get("UMFA_LIB_DIR")
        if env:
            return Path(env)
        repo = self._repo()
        if repo is not None and (repo / "dist" / "native" / plat).is_dir():
            return repo / "dist" / "native" / plat
        return None

    def dependencies(self) -> List[str]:
        # A wheel built from the sdist's sources needs CMake; take it from the index only when
        # the machine has none recent enough.
        sources = self._bundled_sources()
        if (self.target_name == "wheel" and sources is not None
                and not os.environ.get("UMFA_LIB_DIR")):
            minimum = cmake_minimum(sources)
            if not system_cmake_ok(minimum):
                return [f"cmake>={'.'.join(map(str, minimum))}"]
        return []

    def initialize(self, version: str, build_data: Dict[str, Any]) -> None:
        if self.target_name == "sdist":
            self._initialize_sdist(build_data)
        elif self.target_name == "wheel":
            self._initialize_wheel(build_data)

    def _initialize_sdist(self, build_data: Dict[str, Any]) -> None:
        if self._bundled_sources() is not None:  # an sdist rebuilt from an sdist
            return
        repo = self._repo()
        if repo is None:
            raise PackagingError("umfa sdist: build it from a repository checkout (the core's "
                                 "sources are taken from ../../core and ../../include)")
        force = build_data.setdefault("force_include", {})
        for src, dst in SDIST_CORE:
            force[str(repo / src)] = dst

    def _initialize_wheel(self, build_data: Dict[str, Any]) -> None:
        plat = target_platform()
        install = self._prebuilt(plat)
        if install is None:
            sources = self._bundled_sources()
            if sources is None:
                raise PackagingError(
                    f"umfa wheel: no library for {plat}: set UMFA_LIB_DIR, or build the core "
                    f"(bash scripts/build-native.sh {plat}) into dist/native/{plat}/")
            if plat != host_platform():
                raise PackagingError(f"umfa sdist: builds for this machine ({host_platform()}) "
                                     f"only, not UMFA_WHEEL_PLATFORM={plat}")
            self._work = tempfile.TemporaryDirectory(prefix="umfa-core-")
            install = build_core(sources, Path(self._work.name))
        files = find_library_files(install, plat)
        tag = platform_tag(files, plat, os.environ.get("UMFA_WHEEL_REQUIRE_MANYLINUX") == "1")
        force = build_data.setdefault("force_include", {})
        for name, path in files.items():
            force[str(path)] = f"umfa/_lib/{name}"
        build_data["pure_python"] = False
        build_data["tag"] = f"py3-none-{tag}"
        print(f"umfa wheel: {plat}, tag py3-none-{tag}, "
              f"{', '.join(files)} from {install}", file=sys.stderr)

    def finalize(self, version: str, build_data: Dict[str, Any], artifact_path: str) -> None:
        work = getattr(self, "_work", None)
        if work is not None:
            work.cleanup()
