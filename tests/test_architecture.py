"""The shape of the package (docs/architecture.md): layers, no import cycles, deprecation paths.

The import graph is read from the source with :mod:`ast`, so it sees the
imports inside functions too (the lazy ones a running program only meets
later).
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import fastdeconv

PACKAGE = Path(fastdeconv.__file__).resolve().parent


def _module_name(path):
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules():
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _resolve(target, modules):
    """The module an import statement loads: the deepest existing prefix of ``target``."""
    parts = target.split(".")
    for end in range(len(parts), 0, -1):
        name = ".".join(parts[:end])
        if name in modules:
            return name
    return None


def import_graph(*, lazy):
    """Edges module -> imported fastdeconv module; with ``lazy`` also imports inside functions."""
    modules = _modules()
    graph = {name: set() for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        nodes = ast.walk(tree) if lazy else tree.body
        for node in nodes:
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{alias.name}" for alias in node.names]
            for target in targets:
                if target.startswith("fastdeconv"):
                    dep = _resolve(target, modules)
                    if dep is not None and dep != name:
                        graph[name].add(dep)
    return graph


def _find_cycle(graph):
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == "open":
                return stack[stack.index(dep):] + [dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def _is_plotting(name):
    return name == "fastdeconv.plotting" or name.startswith("fastdeconv.plotting.")


def test_no_import_cycle_at_module_level():
    assert _find_cycle(import_graph(lazy=False)) is None


def test_no_import_cycle_counting_lazy_imports():
    """Lazy imports included; the one allowed upward edge is a result's ``plot`` method
    reaching for :mod:`fastdeconv.plotting` (plotting sits above every pipeline)."""
    graph = import_graph(lazy=True)
    for name, deps in graph.items():
        if not _is_plotting(name):
            graph[name] = {d for d in deps if not _is_plotting(d)}
    cycle = _find_cycle(graph)
    assert cycle is None, " -> ".join(cycle)


def test_kernels_are_numba_only():
    """kernels/ imports nothing but NumPy, Numba, math and other kernels.

    (and the deprecation helper, for names that moved out of kernels/)."""
    allowed = {"numpy", "numba", "math", "__future__"}
    for path in (PACKAGE / "kernels").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            for name in names:
                root = name.split(".")[0]
                ok = root in allowed or name.startswith(("fastdeconv.kernels", "fastdeconv._jit", "fastdeconv._deprecated"))
                assert ok, f"{path.name} imports {name}"


def test_only_the_parallel_module_runs_threads():
    """Every pipeline uses fastdeconv._parallel.thread_map; no other thread pool."""
    for path in PACKAGE.rglob("*.py"):
        if path.name == "_parallel.py":
            continue
        text = path.read_text()
        assert "ThreadPoolExecutor" not in text, path
        assert "threadpoolctl" not in text, path


def test_cli_reaches_pipelines_through_their_modules():
    """The command line imports concrete modules, not the package's lazy attributes."""
    for path in (PACKAGE / "cli").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert all(a.name != "fastdeconv" for a in node.names), path
            if isinstance(node, ast.ImportFrom) and node.module == "fastdeconv":
                assert all(a.name == "__version__" for a in node.names), path


@pytest.mark.parametrize(
    ("old", "new", "name"),
    [
        ("fastdeconv.deconvolve", "fastdeconv.regression", "select_marker_genes"),
        ("fastdeconv.deconvolve", "fastdeconv.regression", "DeconvolutionResult"),
        ("fastdeconv.linseed", "fastdeconv.reference_free", "estimate_k"),
        ("fastdeconv.linseed", "fastdeconv.n_types", "KDiagnostics"),
        ("fastdeconv.reference", "fastdeconv.signature", "cluster_cells"),
        ("fastdeconv.reference", "fastdeconv.signature", "SignatureResult"),
    ],
)
def test_moved_modules_keep_working_with_a_deprecation_warning(old, new, name):
    with pytest.warns(DeprecationWarning, match=f"use {new}.{name}"):
        value = getattr(importlib.import_module(old), name)
    assert value is getattr(importlib.import_module(new), name)


def test_from_import_of_a_moved_module_warns():
    with pytest.warns(DeprecationWarning, match="fastdeconv.regression.select_marker_genes"):
        from fastdeconv.deconvolve import select_marker_genes
    from fastdeconv.regression import select_marker_genes as new

    assert select_marker_genes is new


def test_functions_named_like_old_modules_stay_functions():
    import fastdeconv.deconvolve  # noqa: F401  (an import of the old path)
    import fastdeconv.linseed  # noqa: F401

    assert callable(fastdeconv.deconvolve) and callable(fastdeconv.linseed)
    assert fastdeconv.deconvolve.__module__ == "fastdeconv.regression"
    assert fastdeconv.linseed.__module__ == "fastdeconv.reference_free"


def test_moved_function_warns():
    from fastdeconv.fractions import fit_rna_content

    with pytest.warns(DeprecationWarning, match="fastdeconv.fractions.fit_rna_content"):
        from fastdeconv.metrics import fit_rna_content as old
    assert old is fit_rna_content


def test_importing_the_package_imports_no_numba_and_no_pandas():
    code = (
        "import sys, fastdeconv, fastdeconv.methods, fastdeconv.cli;"
        "fastdeconv.cli.build_parser();"
        "print(sorted(m for m in ('numba', 'pandas', 'matplotlib', 'anndata') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_a_plain_import_emits_no_deprecation_warning():
    code = (
        "import warnings; warnings.simplefilter('error');"
        "import fastdeconv, fastdeconv.regression, fastdeconv.signature, fastdeconv.reference_free,"
        " fastdeconv.metrics, fastdeconv.simulate, fastdeconv.plotting, fastdeconv.cli"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_deprecated_alias_hides_private_names():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        module = importlib.import_module("fastdeconv.reference")
        assert not hasattr(module, "_cluster")
