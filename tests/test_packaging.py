"""The project's set-up promises: README commands, CI script, public names."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import fastdeconv

ROOT = Path(__file__).resolve().parents[1]


def readme_commands():
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```(?:bash|sh|console)\n(.*?)```", text, flags=re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_ci_runs_exactly_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    test_cmd = next(c for c in readme_commands() if "pytest" in c)
    assert test_cmd in [line.strip() for line in ci], (
        f"README test command {test_cmd!r} must appear verbatim in .ci/run"
    )


def test_readme_main_job_runs_the_demo():
    assert any("fastdeconv demo" in c for c in readme_commands())


def test_every_public_name_resolves():
    for name in fastdeconv.__all__:
        assert getattr(fastdeconv, name) is not None, name


def test_public_callables_have_numpydoc_examples():
    missing = []
    for name in fastdeconv.__all__:
        obj = getattr(fastdeconv, name)
        if callable(obj) and not isinstance(obj, type(importlib)):
            doc = obj.__doc__ or ""
            if "Examples" not in doc or ">>>" not in doc:
                missing.append(name)
    assert not missing, f"public names without a runnable Examples section: {missing}"


def test_kernels_use_the_project_jit_flags():
    from fastdeconv._jit import JIT_OPTIONS
    from fastdeconv.kernels import nnls_gram_kernel, project_simplex_kernel, simplex_gram_kernel

    for kernel in (nnls_gram_kernel, simplex_gram_kernel, project_simplex_kernel):
        for key, value in JIT_OPTIONS.items():
            if key == "cache":
                assert type(kernel._cache).__name__ != "NullCache", kernel
            else:
                assert kernel.targetoptions.get(key) == value, (kernel, key)
