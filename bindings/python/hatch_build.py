"""Wheel build hook: bundle the prebuilt libumfa and tag the wheel for this platform.

The native library is built once per platform by ``core/scripts/build.sh`` into
``dist/native/<os>-<arch>/lib`` of the repository; this hook copies it (not its sources) into
the wheel as ``umfa/_lib/``. ``UMFA_LIB_DIR`` overrides where it is taken from. Because the wheel
carries a shared library it is tagged ``py3-none-<platform>`` (any Python 3, this platform):
the package itself is pure Python over ctypes.
"""

from __future__ import annotations

import os
import platform
import sys
import sysconfig
from pathlib import Path
from typing import Any, Dict, List

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

ABI_VERSION = 1


def _platform_dir() -> str:
    system = {"darwin": "darwin", "windows": "win32"}.get(platform.system().lower(),
                                                            platform.system().lower())
    machine = platform.machine().lower()
    arch = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(machine,
                                                                                        machine)
    return f"{system}-{arch}"


def _lib_names() -> List[str]:
    if sys.platform == "darwin":
        return [f"libumfa.{ABI_VERSION}.dylib", "libumfa.dylib"]
    if sys.platform == "win32":
        return ["umfa.dll"]
    return [f"libumfa.so.{ABI_VERSION}", "libumfa.so"]


def _cuda_names() -> List[str]:
    if sys.platform == "win32":
        return ["umfa_cuda.dll"]
    return ["libumfa_cuda.so"]


class CustomBuildHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def _lib_dir(self) -> Path:
        env = os.environ.get("UMFA_LIB_DIR")
        if env:
            return Path(env)
        return Path(self.root).resolve().parents[1] / "dist" / "native" / _platform_dir() / "lib"

    def initialize(self, version: str, build_data: Dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return
        lib_dir = self._lib_dir()
        main = next((lib_dir / n for n in _lib_names() if (lib_dir / n).exists()), None)
        if main is None:
            raise RuntimeError(
                f"umfa wheel: no libumfa in {lib_dir} (looked for {', '.join(_lib_names())}). "
                "Build the core first (bash core/scripts/build.sh) or set UMFA_LIB_DIR.")
        force = build_data.setdefault("force_include", {})
        # The real file under the name the loader looks for first (its SONAME on Linux).
        force[str(main.resolve())] = f"umfa/_lib/{_lib_names()[0]}"
        for name in _cuda_names():
            cuda = lib_dir / name
            if cuda.exists():
                force[str(cuda.resolve())] = f"umfa/_lib/{name}"
        build_data["pure_python"] = False
        plat = sysconfig.get_platform().replace("-", "_").replace(".", "_")
        build_data["tag"] = f"py3-none-{plat}"
