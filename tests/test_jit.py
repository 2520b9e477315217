"""fastdeconv._jit: one compilation per kernel on a cold first run, and needs_compilation().

Issue 13: a cold first run compiled for 23-29 s.  These tests run fresh
processes with an empty Numba cache, which is the only way to see what a first
run compiles (a warm process loads the kernels instead).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fastdeconv import _jit
from fastdeconv._jit import needs_compilation

ROOT = Path(__file__).resolve().parents[1]

FIRST_RUN = r"""
import importlib, json, pkgutil, sys
from fastdeconv._jit import _cache_dir, _kernels_dir, needs_compilation
tasks = ("robust", "least_squares", "deconvolve", "demo", "linseed", "signature")
before = {t: needs_compilation(t) for t in tasks}
numba_imported = "numba" in sys.modules
import numpy as np
import fastdeconv.kernels as K
from numba.core.registry import CPUDispatcher
modules = [importlib.import_module(f"fastdeconv.kernels.{m.name}")
           for m in pkgutil.iter_modules(K.__path__)]
def dispatchers():
    return {f"{m.__name__.rsplit('.', 1)[1]}.{n}": d for m in modules for n, d in vars(m).items()
            if isinstance(d, CPUDispatcher) and d.py_func.__module__ == m.__name__}
at_import = {k: len(d.signatures) for k, d in dispatchers().items()}
import fastdeconv
from fastdeconv.simulate import synthetic
data = synthetic(n_genes=300, n_types=4, n_samples=20, seed=0)
S = np.ascontiguousarray(data.signature.to_numpy())
B = data.bulk.loc[data.signature.index].to_numpy()
fastdeconv.nnls(S, B)
fastdeconv.simplex_lstsq(S, np.asfortranarray(B, dtype=np.float32))  # converted at the boundary
fastdeconv.simplex_lstsq(S, B[:, 0])
for method in ("simplex", "nnls", "simplex_le"):
    fastdeconv.deconvolve(data.bulk, data.signature, method=method)
    fastdeconv.deconvolve(data.bulk, data.signature, method=method, robust=None)
after = {t: needs_compilation(t) for t in tasks}
gram_batch = dispatchers()["_active_set.gram_batch"]
print("RESULT " + json.dumps({
    "before": before, "after": after, "numba_imported": numba_imported, "at_import": at_import,
    "signatures": {k: [str(s) for s in d.signatures] for k, d in dispatchers().items()},
    "numba_cache_path": gram_batch._cache._cache_path,
    "numba_index": gram_batch._cache._cache_file._index_name,
    "our_cache_path": _cache_dir(_kernels_dir()),
}))
"""


def _run(code, env, cwd):
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
    env.update(extra)
    return env


@pytest.mark.slow
def test_cold_first_run_compiles_each_kernel_once_and_none_at_import(tmp_path):
    cache = tmp_path / "numba-cache"
    result = _run(FIRST_RUN, _env(NUMBA_CACHE_DIR=str(cache)), tmp_path)
    # nothing compiled at import, and needs_compilation() did not even import Numba
    assert not any(result["at_import"].values()), result["at_import"]
    assert result["numba_imported"] is False
    # every kernel compiled at most once although dtypes, layouts, methods and losses varied
    # (a constant True/False or a literal 0 used to compile the engine three times)
    twice = {k: v for k, v in result["signatures"].items() if len(v) > 1}
    assert not twice, twice
    for name in ("_active_set.gram_batch", "_active_set.active_set", "robust.huber_batch"):
        assert len(result["signatures"][name]) == 1, name
    # rarely used kernels are compiled only when used
    for name in ("corners.simplex_objective", "markers.group_sums_dense", "robust.huber_irls",
                 "nnls.nnls_gram_kernel", "simplex.project_simplex_kernel"):
        assert result["signatures"][name] == [], name
    # helpers write no cache file of their own: the callers' cached code contains them
    cached = sorted(p.name.split("-")[0] for p in cache.rglob("*.nbi"))
    assert cached == ["_active_set.active_set", "_active_set.gram_batch", "robust.huber_batch"]
    # needs_compilation: cold before, warm after, for what ran; linseed and signature still cold
    assert all(result["before"].values()), result["before"]
    assert result["after"] == {
        "robust": False, "least_squares": False, "deconvolve": False, "demo": False,
        "linseed": True, "signature": True,
    }
    # and it looks where Numba writes
    assert result["our_cache_path"] == result["numba_cache_path"]
    assert (Path(result["numba_cache_path"]) / result["numba_index"]).is_file()


WARM = r"""
import json, sys
from fastdeconv._jit import needs_compilation
import fastdeconv
result = {"file": fastdeconv.__file__, "cold": needs_compilation("signature")}
if len(sys.argv) > 1:
    import numpy as np
    from fastdeconv.kernels.markers import group_sums_dense
    group_sums_dense(np.eye(3), True, np.array([0, 1, 1]), 2, np.ones(3), 0, 3)
    result["after"] = needs_compilation("signature")
result["numba_imported"] = "numba" in sys.modules
print("RESULT " + json.dumps(result))
"""


def test_needs_compilation_follows_numba_to_the_default_pycache(tmp_path):
    # a private copy of the package, so its kernels/__pycache__ starts empty
    site = tmp_path / "site"
    shutil.copytree(ROOT / "fastdeconv", site / "fastdeconv",
                    ignore=shutil.ignore_patterns("__pycache__"))
    env = _env(PYTHONPATH=str(site))
    first = subprocess.run([sys.executable, "-c", WARM, "compile"], env=env, cwd=tmp_path,
                           capture_output=True, text=True, check=False)
    assert first.returncode == 0, first.stderr
    first = json.loads(first.stdout.split("RESULT ", 1)[1])
    assert first["file"].startswith(str(site))
    assert first["cold"] is True and first["after"] is False
    pycache = site / "fastdeconv" / "kernels" / "__pycache__"
    assert list(pycache.glob("markers.group_sums_dense-*.nbi"))
    # a new process sees the warm cache, without importing Numba
    again = _run(WARM, env, tmp_path)
    assert again["cold"] is False and again["numba_imported"] is False
    # an edited kernel source makes Numba recompile: the cache counts as cold again
    markers = site / "fastdeconv" / "kernels" / "markers.py"
    markers.write_text(markers.read_text() + "\n# edited\n")
    assert _run(WARM, env, tmp_path)["cold"] is True


def test_needs_compilation_uses_numba_cache_dir_and_the_user_wide_fallback(tmp_path):
    source = _jit._kernels_dir()
    # NUMBA_CACHE_DIR: one sub-folder per source folder, named as Numba names it
    env = {"NUMBA_CACHE_DIR": str(tmp_path)}
    folder = _jit._cache_dir(source, env)
    assert Path(folder).parent == tmp_path and Path(folder).name.startswith("kernels_")
    # __pycache__ when it can be written, else the user-wide cache folder
    in_tree = _jit._cache_dir(source, {}, writable=lambda p: True)
    assert in_tree == os.path.join(source, "__pycache__")
    fallback = _jit._cache_dir(source, {"XDG_CACHE_HOME": str(tmp_path)}, writable=lambda p: False)
    assert fallback == os.path.join(_jit._user_cache_root({"XDG_CACHE_HOME": str(tmp_path)}),
                                    _jit._subpath(source))
    if sys.platform.startswith("linux"):
        pytest.importorskip("numba")
        from numba.misc.appdirs import AppDirs

        numba_root = AppDirs(appname="numba", appauthor=False).user_cache_dir
        assert _jit._user_cache_root(os.environ) == numba_root


def test_needs_compilation_is_false_for_commands_without_kernels_and_rejects_unknown_tasks():
    assert needs_compilation("evaluate") is False
    assert needs_compilation("simulate") is False
    with pytest.raises(ValueError, match="unknown task 'deconvolv'"):
        needs_compilation("deconvolv")


def test_needs_compilation_treats_a_damaged_index_as_cold(tmp_path):
    source = _jit._kernels_dir()
    lines, stamp = _jit._first_lines(os.path.join(source, "robust.py")), b"x" * 32
    tag = f"py{sys.version_info[0]}{sys.version_info[1]}{getattr(sys, 'abiflags', '')}"
    index = tmp_path / f"robust.huber_batch-{lines['huber_batch']}.{tag}.nbi"
    index.write_bytes(b"not a pickle")
    assert not _jit._is_cached(str(tmp_path), "robust", "huber_batch", lines, stamp, None)
