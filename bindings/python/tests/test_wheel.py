"""`pip wheel` builds a platform wheel carrying libumfa; installed into a fresh virtualenv (no
system site-packages, no source tree, no UMFA_LIB_DIR) it imports, computes attention, and passes
the conformance vectors. The wheel's tag is the one the library earns: manylinux_x_y from its
highest GLIBC symbol version when it needs no libstdc++, linux_<arch> otherwise (see
hatch_build.py; test_packaging.py covers the other platforms and the sdist)."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

import umfa

VERSION = umfa.__version__
PKG_ROOT = Path(__file__).resolve().parents[1]


def _env():
    env = {k: v for k, v in os.environ.items()
           if k not in ("UMFA_LIB_DIR", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    # Without a network, don't let pip retry unreachable indexes before the local ones answer.
    env.setdefault("PIP_RETRIES", "0")
    return env


def _run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert r.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{r.stdout}\n{r.stderr}"
    return r


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheels")
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(out), str(PKG_ROOT)]
    if importlib.util.find_spec("hatchling") is not None:
        cmd.insert(4, "--no-build-isolation")  # the backend is already here: no index lookups
    env = _env()
    if os.environ.get("UMFA_LIB_DIR"):  # build from the library the tests use
        env["UMFA_LIB_DIR"] = os.environ["UMFA_LIB_DIR"]
    _run(cmd, env=env, cwd=out)
    wheels = list(out.glob("umfa-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_wheel_is_platform_specific_and_carries_the_library(wheel, tmp_path):
    name = wheel.name
    assert name.startswith(f"umfa-{VERSION}-py3-none-") and not name.endswith("-any.whl"), name
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        wheel_meta = z.read(f"umfa-{VERSION}.dist-info/WHEEL").decode()
        metadata = z.read(f"umfa-{VERSION}.dist-info/METADATA").decode()
        lib = "umfa/_lib/libumfa.1.dylib" if sys.platform == "darwin" else "umfa/_lib/libumfa.so.1"
        assert lib in names
        z.extract(lib, tmp_path)
    assert "Root-Is-Purelib: false" in wheel_meta
    assert {"umfa/__init__.py", "umfa/torch.py", "umfa/py.typed"} <= names
    # Classifiers claim only the operating systems where CI runs the package (the platform
    # matrix's "yes"; scripts/release/check-metadata.mjs checks the same rule).
    oses = sorted(re.findall(r"^Classifier: (Operating System :: .*)$", metadata, re.M))
    assert oses == ["Operating System :: POSIX :: Linux"]
    if sys.platform.startswith("linux"):
        # The tag is the library's: manylinux exactly when it needs no libstdc++ and nothing
        # outside the manylinux set, at its highest GLIBC version (at least 2.17).
        spec = importlib.util.spec_from_file_location("umfa_hatch_build", PKG_ROOT / "hatch_build.py")
        hb = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(hb)  # type: ignore[union-attr]
        arch = {"x86_64": "x86_64", "aarch64": "aarch64"}[os.uname().machine]
        expected, problems = hb.manylinux_tag([tmp_path / lib], arch)
        tag = name[len(f"umfa-{VERSION}-py3-none-"):-len(".whl")]
        assert tag == (expected or f"linux_{arch}"), (tag, problems)
        print(f"wheel tag {tag}" + (f" ({'; '.join(problems)})" if problems else ""))


def test_fresh_venv_install_and_run(wheel, tmp_path):
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], env=_env())
    py = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    _run([str(py), "-m", "pip", "install", "-q", str(wheel)], env=_env(), cwd=tmp_path)
    work = tmp_path / "elsewhere"
    work.mkdir()
    script = textwrap.dedent(f"""
        import numpy as np, umfa
        site = {str(venv)!r}
        assert umfa.__file__.startswith(site), umfa.__file__
        assert umfa.library_path().startswith(site), umfa.library_path()
        assert umfa.__version__ == {VERSION!r} == umfa.version_string()
        assert "cpu" in umfa.backends()
        q = np.random.default_rng(0).standard_normal((2, 16, 4, 32)).astype(np.float32)
        out, lse = umfa.flash_attn_func(q, q, q, causal=True, return_lse=True)
        s = np.einsum("bqhd,bkhd->bhqk", q, q) / np.sqrt(32)
        s = np.where(np.tril(np.ones((16, 16), bool)), s, -np.inf)
        p = np.exp(s - s.max(-1, keepdims=True)); p /= p.sum(-1, keepdims=True)
        ref = np.einsum("bhqk,bkhd->bqhd", p, q)
        assert np.abs(out - ref).max() < 1e-5, np.abs(out - ref).max()
        print("umfa", umfa.__version__, "from", umfa.library_path())
    """)
    r = _run([str(py), "-c", script], env=_env(), cwd=work)
    assert f"umfa {VERSION} from" in r.stdout
    # The docs' getting-started code (docs/home.md shows this file), copied verbatim and run by
    # the installed package.
    sample = PKG_ROOT.parents[1] / "docs" / "examples" / "python" / "flash_attn.py"
    shutil.copy(sample, work / sample.name)
    r = _run([str(py), sample.name], env=_env(), cwd=work)
    assert f"umfa {VERSION} out (2, 128, 8, 64) float32 lse (2, 8, 128)" in r.stdout, r.stdout
    # Every conformance vector through the installed package (the suite's own test file, run by
    # the venv's interpreter with UMFA_TEST_INSTALLED=1 so it imports the installed umfa).
    _run([str(py), "-m", "pip", "install", "-q", "pytest"], env=_env(), cwd=tmp_path)
    check = "import umfa, sys; assert umfa.__file__.startswith(sys.prefix), umfa.__file__"
    _run([str(py), "-c", check], env=_env(), cwd=work)
    r = _run([str(py), "-m", "pytest", "-q", "-p", "no:cacheprovider",
              str(PKG_ROOT / "tests" / "test_conformance.py")],
             env={**_env(), "UMFA_TEST_INSTALLED": "1"}, cwd=work)
    summary = r.stdout.strip().splitlines()[-1]
    assert re.search(r"\d+ passed", summary) and "failed" not in summary, summary
    print(f"conformance vectors with the installed wheel: {summary}")
