"""Issue 13, what every command shares (``fastdeconv.cli`` and ``cli/_common.py``).

Damaged files name the file and the option in one line; outputs are readable
by others; ``--help`` shows the value of every default, the library's
included; the first run says that it compiles.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import io
import os
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import fastdeconv.cli
from fastdeconv.cli import COMPILING, build_parser, compilation_notice, main
from fastdeconv.cli._common import library_default


@pytest.fixture
def tables(tmp_path):
    est = pd.DataFrame({"T": [0.2, 0.6, 0.5], "B": [0.8, 0.4, 0.5]},
                       index=pd.Index(["s1", "s2", "s3"], name="sample"))
    est.to_csv(tmp_path / "est.tsv", sep="\t")
    est.T.to_csv(tmp_path / "truth.tsv", sep="\t")
    return tmp_path


def _one_error_line(capsys):
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastdeconv: error: "), err
    assert "Traceback" not in err and "(Python only)" not in err
    return lines[0]


# ---------------------------------------------------------------------------
# damaged files
# ---------------------------------------------------------------------------


def test_truncated_gz_names_the_file_and_option(tables, capsys):
    data = gzip.compress((tables / "est.tsv").read_bytes() * 50)
    (tables / "est.tsv.gz").write_bytes(data[: len(data) // 2])
    status = main(["evaluate", "--estimate", str(tables / "est.tsv.gz"),
                   "--truth", str(tables / "truth.tsv")])
    line = _one_error_line(capsys)
    assert status == 1
    assert line.startswith("fastdeconv: error: --estimate: ")
    assert "est.tsv.gz" in line and "truncated" in line and "again" in line


def test_plain_file_named_gz_names_the_file_option_and_the_new_name(tables, capsys):
    (tables / "truth.tsv.gz").write_bytes((tables / "truth.tsv").read_bytes())
    status = main(["evaluate", "--estimate", str(tables / "est.tsv"),
                   "--truth", str(tables / "truth.tsv.gz")])
    line = _one_error_line(capsys)
    assert status == 1
    assert line.startswith("fastdeconv: error: --truth: ")
    assert "not gzip-compressed" in line and f"rename it to {str(tables / 'truth.tsv')!r}" in line


def test_corrupt_h5ad_counts_is_one_line_naming_the_option(tmp_path, capsys):
    anndata = pytest.importorskip("anndata")
    path = tmp_path / "cells.h5ad"
    adata = anndata.AnnData(np.ones((6, 4), dtype=np.float32))
    adata.obs["cell_type"] = ["T", "T", "T", "B", "B", "B"]
    adata.write_h5ad(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    status = main(["signature", "--counts", str(path), "--label-key", "cell_type",
                   "--output", str(tmp_path / "sig.tsv")])
    line = _one_error_line(capsys)
    assert status == 1 and line.startswith("fastdeconv: error: --counts: ")
    assert "cells.h5ad" in line and "cannot be read as an AnnData file" in line
    path.write_text("gene,c1\nA,1\n")
    assert main(["signature", "--counts", str(path), "--label-key", "cell_type",
                 "--output", str(tmp_path / "sig.tsv")]) == 1
    assert "not an HDF5 file" in _one_error_line(capsys)
    assert os.listdir(tmp_path) == ["cells.h5ad"]


def test_labels_with_an_empty_cell_type_are_refused_not_named_nan(tmp_path, capsys):
    counts = pd.DataFrame(np.arange(12).reshape(3, 4) + 1.0, index=["G1", "G2", "G3"],
                          columns=["c1", "c2", "c3", "c4"])
    counts.to_csv(tmp_path / "counts.tsv", sep="\t", index_label="gene")
    (tmp_path / "labels.tsv").write_text("cell\tcell_type\nc1\tT\nc2\t\nc3\tB\nc4\tB\n")
    status = main(["signature", "--counts", str(tmp_path / "counts.tsv"), "--labels",
                   str(tmp_path / "labels.tsv"), "--output", str(tmp_path / "sig.tsv")])
    line = _one_error_line(capsys)
    assert status == 1 and "--labels" in line and "no cell type (line(s) 3)" in line


def test_unreadable_input_is_one_line(tables, capsys):
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        pytest.skip("root reads every file")
    (tables / "est.tsv").chmod(0)
    status = main(["evaluate", "--estimate", str(tables / "est.tsv"),
                   "--truth", str(tables / "truth.tsv")])
    line = _one_error_line(capsys)
    assert status == 1 and line.startswith("fastdeconv: error: --estimate: ")
    assert "permission denied" in line


# ---------------------------------------------------------------------------
# outputs readable by others
# ---------------------------------------------------------------------------


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_output_files_follow_the_umask_not_0600(tables, capsys):
    previous = os.umask(0o022)
    try:
        status = main(["evaluate", "--estimate", str(tables / "est.tsv"),
                       "--truth", str(tables / "truth.tsv"), "--output",
                       str(tables / "ev.tsv"), "--fit-rna-content", str(tables / "rna.csv.gz")])
    finally:
        os.umask(previous)
    assert status == 0, capsys.readouterr().err
    for name in ("ev.tsv", "rna.csv.gz"):
        assert ((tables / name).stat().st_mode & 0o777) == 0o644, name


# ---------------------------------------------------------------------------
# --help shows every default's value
# ---------------------------------------------------------------------------


def _command_help(command):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main([command, "--help"]) == 0
    return " ".join(out.getvalue().split())


@pytest.mark.parametrize("command", ["deconvolve", "evaluate", "demo", "signature",
                                     "simulate", "linseed"])
def test_help_says_the_value_not_the_library_s(command):
    text = _command_help(command)
    assert "the library's" not in text, text
    assert "(default: None)" not in text


@pytest.mark.parametrize(
    ("command", "option", "module", "function", "keyword"),
    [
        ("deconvolve", "--method", "fastdeconv.regression", "deconvolve", "method"),
        ("deconvolve", "--genes", "fastdeconv.regression", "deconvolve", "genes"),
        ("deconvolve", "--robust", "fastdeconv.regression", "deconvolve", "robust"),
        ("demo", "--method", "fastdeconv.regression", "deconvolve", "method"),
        ("linseed", "--top-genes", "fastdeconv.reference_free", "linseed", "top_genes"),
        ("linseed", "--permutations", "fastdeconv.reference_free", "linseed", "n_permutations"),
        ("signature", "--n-markers", "fastdeconv.signature", "build_signature", "n_markers"),
    ],
)
def test_help_shows_the_library_default_value(command, option, module, function, keyword):
    """The value shown is the library's own (read from the pipeline's signature)."""
    import importlib
    import inspect

    mod = importlib.import_module(module)
    real = inspect.signature(getattr(mod, function)).parameters[keyword].default
    if real is None:
        real = getattr(mod, f"DEFAULT_{keyword.upper()}")
    assert library_default(module, function, keyword) == real
    parser = _subparser(command)
    action = next(a for a in parser._actions if option in a.option_strings)
    formatter = parser._get_formatter()
    shown = formatter._expand_help(_described(action) if hasattr(action, "describe_help")
                                   else action)
    assert re.search(rf"default:? {re.escape(str(real))}\b", shown), shown


def _subparser(command):
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return sub.choices[command]


def _described(action):
    import copy

    action = copy.copy(action)
    action.help = action.describe_help()
    return action


def test_library_default_reads_the_source_without_importing_numpy():
    code = (
        "import sys; from fastdeconv.cli._common import library_default;"
        "v = library_default('fastdeconv.reference_free', 'linseed', 'top_genes');"
        "w = library_default('fastdeconv.signature', 'build_signature', 'n_markers');"
        "print(v, w, 'numpy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["10000", "25", "False"]


def test_library_default_unknown_keyword_is_a_lookup_error():
    with pytest.raises(LookupError):
        library_default("fastdeconv.reference_free", "linseed", "no_such_option")


# ---------------------------------------------------------------------------
# the first run says that it compiles
# ---------------------------------------------------------------------------


def _compile_something():
    import numba

    return numba.njit(cache=False)(lambda x: x + 1)(1)  # a new function: always compiles


@pytest.fixture
def jit_cold(monkeypatch):
    import fastdeconv._jit as jit

    monkeypatch.setattr(jit, "needs_compilation", lambda *tasks: True, raising=False)
    return jit


def test_first_run_says_it_compiles_once(jit_cold, capsys):
    args = argparse.Namespace(command="deconvolve", quiet=False)
    with compilation_notice(args):
        _compile_something()
        _compile_something()
    assert capsys.readouterr().err.splitlines() == [COMPILING]


@pytest.mark.parametrize(
    "args",
    [argparse.Namespace(command="deconvolve", quiet=True),
     argparse.Namespace(command="evaluate", quiet=False)],
    ids=["quiet", "evaluate solves nothing"],
)
def test_compile_notice_not_with_quiet_nor_for_evaluate(jit_cold, capsys, args):
    with compilation_notice(args):
        _compile_something()
    assert capsys.readouterr().err == ""


def test_compile_notice_not_when_the_cache_is_warm(monkeypatch, capsys):
    import fastdeconv._jit as jit

    monkeypatch.setattr(jit, "needs_compilation", lambda *tasks: False, raising=False)
    with compilation_notice(argparse.Namespace(command="linseed", quiet=False)):
        _compile_something()
    assert capsys.readouterr().err == ""


def test_compile_notice_works_without_needs_compilation(monkeypatch, capsys):
    """Without ``_jit.needs_compilation``, Numba's compile event alone decides."""
    import fastdeconv._jit as jit

    monkeypatch.delattr(jit, "needs_compilation", raising=False)
    with compilation_notice(argparse.Namespace(command="simulate", quiet=False)):
        _compile_something()
    assert capsys.readouterr().err.splitlines() == [COMPILING]


def test_main_says_it_compiles_before_the_command_compiles(jit_cold, monkeypatch, capsys):
    from fastdeconv.cli import demo

    def run(args):
        _compile_something()
        print("done")
        return 0

    monkeypatch.setattr(demo, "run", run)
    assert main(["demo"]) == 0
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [COMPILING] and captured.out == "done\n"


def test_input_refused_before_compiling_gets_no_compile_notice(jit_cold, tmp_path, capsys):
    (tmp_path / "bulk.tsv.gz").write_text("not gzip")
    status = main(["linseed", "--bulk", str(tmp_path / "bulk.tsv.gz"), "--cell-types", "2",
                   "--output", str(tmp_path / "out.tsv")])
    assert status == 1
    assert _one_error_line(capsys).startswith("fastdeconv: error: --bulk: ")


def test_compile_notice_never_breaks_a_command(monkeypatch, capsys):
    import fastdeconv._jit as jit

    def broken(*tasks):
        raise RuntimeError("cache folder unreadable")

    monkeypatch.setattr(jit, "needs_compilation", broken, raising=False)
    with compilation_notice(argparse.Namespace(command="demo", quiet=False)):
        pass
    assert capsys.readouterr().err == ""


def test_quiet_help_says_it_silences_the_summary():
    assert "no summary on stdout" in _command_help("deconvolve")


def test_cli_module_is_unchanged_by_the_fuzz_patch():
    assert fastdeconv.cli.compilation_notice is compilation_notice


def test_warnings_spell_their_remedies_as_the_command_s_flags(monkeypatch, capsys):
    import warnings

    from fastdeconv.cli import linseed
    from fastdeconv.errors import Fix, InputProblem

    def run(args):
        warnings.warn(UserWarning(InputProblem("few genes; try {0}", Fix("pvalue", 0.05))))
        return 0

    monkeypatch.setattr(linseed, "run", run)
    assert main(["linseed", "--bulk", "b.tsv", "--cell-types", "2", "--output", "o.tsv"]) == 0
    flags = _subparser("linseed").get_default("flags") or {}
    err = capsys.readouterr().err
    assert err.startswith("fastdeconv: warning: few genes; try ")
    if "pvalue" in flags:
        assert err.strip().endswith(f"{flags['pvalue']} 0.05")


def test_compile_notice_asks_about_the_command_s_own_kernels(monkeypatch, capsys):
    import fastdeconv._jit as jit

    asked = []
    monkeypatch.setattr(jit, "needs_compilation", lambda *tasks: asked.extend(tasks) or False,
                        raising=False)
    with compilation_notice(argparse.Namespace(command="signature", quiet=False)):
        pass
    assert asked == ["signature"]
