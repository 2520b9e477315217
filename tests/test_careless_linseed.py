"""Issue 13, LinSeed: careless input never crashes, hangs or answers wrongly.

Each test is named after the item of the issue it guards: a transposed bulk
that ran for 805 s and 7.6 GB, input read differently from ``deconvolve``,
numbers of components the method cannot have, advice written for Python, the
file options and the plot's title.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fastdeconv.cli import build_parser, main
from fastdeconv.cli.linseed import DEFAULTS, FLAGS
from fastdeconv.errors import InputProblem
from fastdeconv.reference_free import LinseedOptions, estimate_k, linseed
from fastdeconv.simulate import synthetic

FAST = {"n_permutations": 30, "pvalue": 0.05, "n_restarts": 2}
FAST_CLI = "--permutations 30 --pvalue 0.05 -q"
SOURCE = Path(__file__).resolve().parents[1] / "fastdeconv" / "reference_free.py"


@pytest.fixture(scope="module")
def small():
    return synthetic(n_genes=600, n_types=3, n_samples=12, seed=1).bulk


@pytest.fixture
def bulk_file(tmp_path, small):
    path = tmp_path / "bulk.tsv"
    small.to_csv(path, sep="\t", index_label="gene")
    return path


def _run(command):
    return main(shlex.split(command))


def _error(capsys):
    """The one line on stderr of a failed command (no traceback, no Python-only advice)."""
    err = capsys.readouterr().err
    # a cold Numba cache says, once, that it compiles: a courtesy, not part of the error
    lines = [line for line in err.splitlines() if line.strip() and "compiling" not in line]
    assert len(lines) == 1, err
    assert lines[0].startswith("fastdeconv: error: ") and "Traceback" not in err
    assert "(Python only)" not in lines[0], lines[0]
    return lines[0]


def _subprocess(args, timeout):
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "fastdeconv", *args], capture_output=True,
                         text=True, timeout=timeout)
    return out, time.perf_counter() - start


# ------------------------------------------------------- 1. transposed bulk, memory


def test_transposed_bulk_fails_fast_with_transpose_advice(dataset, tmp_path):
    """GSE19830 transposed ran 805 s and grew to 7.6 GB: now one line, at once."""
    mixture = dataset("shenorr_GSE19830")["mixture"]
    path = tmp_path / "samples_as_rows.tsv"
    mixture.T.to_csv(path, sep="\t", index_label="sample")
    out_path = tmp_path / "p.tsv"
    out, seconds = _subprocess(["linseed", "--bulk", str(path), "--cell-types", "auto",
                                "--output", str(out_path)], timeout=120)
    assert out.returncode == 1, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr
    assert "looks transposed" in lines[0] and "--transpose" in lines[0]
    assert f"33 rows and {mixture.shape[0]} columns" in lines[0]
    assert not out_path.exists()
    assert seconds < 30  # measured ~2 s, interpreter start included: no work is done


def test_transposed_bulk_is_refused_before_any_work(small):
    start = time.perf_counter()
    with pytest.raises(InputProblem, match="looks transposed") as refused:
        linseed(small.T, "auto")
    assert refused.value.keywords() == ["transpose"]
    assert "transpose=True" in str(refused.value)
    assert time.perf_counter() - start < 5


def test_transpose_reads_samples_as_rows(small, tmp_path, capsys):
    a = linseed(small, 3, **FAST)
    b = linseed(small.T, 3, transpose=True, **FAST)
    pd.testing.assert_frame_equal(a.proportions, b.proportions)
    # an array with gene names: genes name the columns of a samples x genes array
    c = linseed(small.T.to_numpy(), 3, transpose=True, genes=list(small.index), **FAST)
    np.testing.assert_array_equal(c.proportions.to_numpy(), a.proportions.to_numpy())
    path = tmp_path / "t.tsv"
    small.T.to_csv(path, sep="\t", index_label="sample")
    out = tmp_path / "p.tsv"
    assert _run(f"linseed --bulk {path} --cell-types 3 --output {out} --transpose "
                f"{FAST_CLI}") == 0
    np.testing.assert_allclose(pd.read_csv(out, sep="\t", index_col=0).to_numpy(),
                               a.proportions.to_numpy(), atol=1e-12)


def test_transpose_of_a_genes_by_samples_table_is_refused(small):
    with pytest.raises(ValueError, match="do not transpose it"):
        linseed(small, 3, transpose=True)


def test_estimate_k_refuses_a_transposed_matrix_instead_of_a_genes_by_genes_gram():
    rng = np.random.default_rng(0)
    X = rng.dirichlet(np.ones(20000), size=30)  # 30 "genes" x 20000 "samples"
    start = time.perf_counter()
    with pytest.raises(ValueError, match="looks transposed"):
        estimate_k(X)
    assert time.perf_counter() - start < 2


def test_estimate_k_uses_the_smaller_gram_matrix():
    """Fewer genes than samples (few significant genes): the spectrum from the genes' Gram."""
    from fastdeconv.reference_free import _choose_k

    rng = np.random.default_rng(2)
    G = rng.gamma(0.3, 1.0, (40, 3)) @ rng.dirichlet(np.ones(3), 60).T
    X = G / G.sum(axis=1, keepdims=True)
    d = _choose_k(X, 0.99, None, "auto")
    s = np.linalg.svd(X, compute_uv=False)
    assert len(d.singular_values) == 60  # one per sample, the missing ones zero
    # a Gram matrix squares the rounding: the null singular values are ~sqrt(1e-16)
    np.testing.assert_allclose(d.singular_values[:40], s, rtol=1e-6, atol=1e-7)
    assert np.all(d.singular_values[40:] == 0.0)


def test_linearity_memory_is_bounded_by_block_memory_mb():
    """No genes x genes matrix: the pairwise step holds blocks of bounded size."""
    from fastdeconv.reference_free import _block_rows, _linearity, _normalise

    rng = np.random.default_rng(0)
    n, m = 5000, 12
    G = (rng.gamma(0.3, 1.0, (n, 3)) @ rng.dirichlet(np.ones(3), m).T + 0.01) * 1000
    X, sq, tss, R = _normalise(G)
    _linearity(X, R, sq, tss, 0.0, 100, 1)  # compile outside the measurement
    for jobs in (1, 3):
        tracemalloc.start()
        try:
            _linearity(X, R, sq, tss, 0.0, _block_rows(n, 1.0), jobs)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        # one megabyte of block products and a few accumulators (16 n bytes) per worker
        assert peak < jobs * (1.0 * 2**20 + 12 * 16 * n) + 2**20, (jobs, peak)
    assert _block_rows(10**6, 1.0) == 1  # the bound holds for any number of genes


def test_linseed_on_many_genes_never_forms_a_genes_by_genes_matrix():
    rng = np.random.default_rng(1)
    n, m = 6000, 12
    G = rng.gamma(0.3, 1.0, (n, 3)) @ rng.dirichlet(np.ones(3), m).T
    bulk = pd.DataFrame(G * rng.lognormal(0, 0.05, (n, m)) * 1000,
                        index=[f"g{i}" for i in range(n)])
    linseed(bulk, 3, n_permutations=20, pvalue=0.05, n_restarts=1)  # compile
    tracemalloc.start()
    try:
        linseed(bulk, 3, n_permutations=20, pvalue=0.05, n_restarts=1, block_memory_mb=2,
                n_jobs=2)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < n * n * 8 / 10  # measured 13 MB; one genes x genes matrix is 275 MB


def test_too_many_samples_are_refused_before_any_samples_by_samples_matrix(monkeypatch, small):
    import fastdeconv.reference_free as rf

    monkeypatch.setattr(rf, "MAX_SAMPLES", 10)
    with pytest.raises(ValueError, match="at most 10 at a time"):
        linseed(small, 3)
    with pytest.raises(ValueError, match="at most 10 at a time"):
        estimate_k(np.full((40, 11), 1 / 11))


# -------------------------------------------- 2. read like deconvolve, the number k


def _signature_for(bulk):
    return pd.DataFrame(np.ones((bulk.shape[0], 2)), index=bulk.index, columns=["a", "b"])


def test_duplicated_genes_are_refused_like_deconvolve(small, bulk_file, tmp_path, capsys):
    from fastdeconv.regression import deconvolve

    dup = small.copy()
    dup.index = [*small.index[:-2], *small.index[:2]]
    with pytest.raises(InputProblem, match="duplicated gene name") as ours:
        linseed(dup, 3, **FAST)
    with pytest.raises(InputProblem, match="duplicated gene name") as theirs:
        deconvolve(dup, _signature_for(small))
    assert ours.value.keywords() == theirs.value.keywords() == ["duplicates"]
    summed = linseed(dup, 3, duplicates="sum", **FAST)
    assert summed.signature.shape[0] == small.shape[0] - 2

    path = tmp_path / "dup.tsv"
    dup.to_csv(path, sep="\t", index_label="gene")
    out = tmp_path / "p.tsv"
    assert _run(f"linseed --bulk {path} --cell-types 3 --output {out}") == 1
    assert "pass --duplicates sum" in _error(capsys)
    assert not out.exists()
    assert _run(f"linseed --bulk {path} --cell-types 3 --output {out} --duplicates sum "
                f"{FAST_CLI}") == 0


def test_case_insensitive_and_strip_version_flags(small, tmp_path, capsys):
    renamed = small.copy()
    renamed.index = [f"ENSG{i:011d}.{i % 3 + 1}" for i in range(len(small))]
    lower = renamed.copy()
    lower.index = [g.lower() if i == 0 else g for i, g in enumerate(renamed.index)]
    lower = pd.concat([lower, lower.iloc[[0]].set_axis([renamed.index[0].upper()])])
    path = tmp_path / "b.tsv"
    lower.to_csv(path, sep="\t", index_label="gene")
    out, markers = tmp_path / "p.tsv", tmp_path / "m.csv"
    # one gene twice, once in lower case: a duplicate once case is ignored
    assert _run(f"linseed --bulk {path} --cell-types 3 --output {out} --case-insensitive") == 1
    assert "--duplicates sum" in _error(capsys)
    pd.DataFrame({"cell_type": ["A", "B", "C"],
                  "gene": [g.split(".")[0].lower() for g in renamed.index[[5, 6, 7]]]}
                 ).to_csv(markers, index=False)
    assert _run(f"linseed --bulk {path} --cell-types 3 --output {out} --case-insensitive "
                f"--strip-version --duplicates sum --marker-genes {markers} {FAST_CLI}") == 0
    assert sorted(pd.read_csv(out, sep="\t", index_col=0).columns) == ["A", "B", "C"]


def test_nan_genes_are_refused_like_deconvolve_or_dropped_on_request(small, tmp_path, capsys):
    from fastdeconv.regression import deconvolve

    holes = small.copy()
    holes.iloc[4, 2] = np.nan
    with pytest.raises(InputProblem, match="NaN") as ours:
        linseed(holes, 3, **FAST)
    with pytest.raises(InputProblem, match="NaN") as theirs:
        deconvolve(holes, _signature_for(small))
    assert ours.value.keywords() == theirs.value.keywords()
    res = linseed(holes, 3, missing="drop", **FAST)
    assert res.dropped["missing"] == 1 and holes.index[4] not in res.signature.index

    path = tmp_path / "holes.tsv"
    holes.to_csv(path, sep="\t", index_label="gene")
    out = tmp_path / "p.tsv"
    assert _run(f"linseed --bulk {path} --cell-types 3 --output {out}") == 1
    assert "--missing drop" in _error(capsys)
    assert not out.exists()
    assert _run(f"linseed --bulk {path} --cell-types 3 --output {out} --missing drop "
                f"{FAST_CLI}") == 0


def test_cell_types_equal_to_samples_is_refused_before_any_work(bulk_file, tmp_path, capsys):
    out = tmp_path / "p.tsv"
    start = time.perf_counter()
    assert _run(f"linseed --bulk {bulk_file} --cell-types 12 --output {out}") == 1
    line = _error(capsys)
    assert "12 components need more samples than components" in line
    assert "--cell-types 11" in line and "--cell-types auto" in line
    assert time.perf_counter() - start < 5
    with pytest.raises(InputProblem, match="more samples than components"):
        linseed(pd.read_csv(bulk_file, sep="\t", index_col=0), 12)


@pytest.mark.parametrize("k", ["1", "0", "-3", "2.5", "many"])
def test_cell_types_below_two_is_a_usage_error(k, capsys):
    assert main(["linseed", "--bulk", "b.tsv", "--cell-types", k, "--output", "o.tsv"]) == 2
    err = capsys.readouterr().err
    assert "--cell-types" in err and "at least 2" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--top-genes", "2"), ("--permutations", "0"), ("--pvalue", "0"), ("--pvalue", "1.5"),
     ("--min-mean", "-1"), ("--seed", "-1"), ("--n-markers", "0"), ("--missing", "keep")],
)
def test_invalid_option_values_are_usage_errors(flag, value, capsys):
    argv = ["linseed", "--bulk", "b.tsv", "--cell-types", "3", "--output", "o.tsv", flag, value]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert flag in err and "Traceback" not in err


# ------------------------------------------------ 3. advice a command-line user can follow


def test_every_linseed_remedy_is_a_linseed_flag():
    keywords = set(re.findall(r"""Fix\(\s*["'](\w+)["']""", SOURCE.read_text()))
    assert keywords <= set(FLAGS), keywords - set(FLAGS)
    parser = dict(build_parser()._subparsers._group_actions[0].choices)["linseed"]
    options = {o for a in parser._actions for o in a.option_strings}
    assert set(FLAGS.values()) <= options
    assert parser.get_default("flags") is FLAGS
    # the keywords the shared readers advise for the bulk
    for keyword in ("scale", "duplicates", "missing", "case_insensitive", "strip_version",
                    "transpose"):
        assert keyword in FLAGS


def test_cli_defaults_are_the_library_defaults():
    library = LinseedOptions()
    for keyword, value in DEFAULTS.items():
        assert getattr(library, keyword) == value, keyword
    parser = dict(build_parser()._subparsers._group_actions[0].choices)["linseed"]
    (scale,) = [a for a in parser._actions if "--scale" in a.option_strings]
    from fastdeconv.reference_free import LINSEED_SCALES

    assert list(scale.choices) == list(LINSEED_SCALES)
    assert "the library's" not in parser.format_help()


def test_messages_advise_flags_not_keywords(small, tmp_path, capsys):
    """Each failure a CLI user can meet names the flag that fixes it."""
    out = tmp_path / "p.tsv"
    path = tmp_path / "b.tsv"

    def fails(frame, args):
        frame.to_csv(path, sep="\t", index_label="gene")
        assert _run(f"linseed --bulk {path} --output {out} {args}") == 1
        line = _error(capsys)
        assert not out.exists()
        assert not re.search(r"\b(n_types|top_genes|min_mean|n_permutations|pvalue)=", line), line
        return line

    assert "--pvalue 0.05" in fails(small, "--cell-types 3 --null permutation --permutations 50")
    assert "--permutations 100" in fails(small, "--cell-types 3 --null permutation --permutations 50")
    assert "--min-mean 0" in fails(small, "--cell-types 3 --min-mean 1e12")
    assert "--scale log2" in fails(np.log2(small + 1), "--cell-types 3")
    noise = pd.DataFrame(np.random.default_rng(0).lognormal(3, 1, size=(200, 10)),
                         index=[f"n{i}" for i in range(200)])
    line = fails(noise, "--cell-types 6 --null permutation --permutations 30 --pvalue 0.05")
    assert re.search(r"--cell-types \d|--pvalue 0\.1|--permutations 1000", line), line
    known = tmp_path / "known.csv"
    pd.DataFrame({"cell_type": ["A"], "gene": [small.index[0].upper()]}).to_csv(known,
                                                                               index=False)
    lower = small.set_axis([g.lower() for g in small.index])
    line = fails(lower, f"--cell-types 3 {FAST_CLI} --marker-genes {known}")
    assert "--case-insensitive" in line


def test_marker_genes_outside_the_top_genes_advise_top_genes(small):
    res = linseed(small, 3, **FAST)
    least = small.mean(axis=1).idxmin()  # not among the 100 most expressed
    with pytest.raises(InputProblem, match="top_genes=") as refused:
        linseed(small, 3, top_genes=100, marker_genes={"A": [least]}, **FAST)
    assert refused.value.keywords() == ["top_genes"]
    assert res.n_types == 3


def test_template_braces_in_user_names_do_not_break_messages(small):
    with pytest.raises(InputProblem, match=r"\{weird\}"):
        linseed(small, 3, marker_genes={"{weird}": ["{nope}"]}, **FAST)


# ------------------------------------------------------------- 4. file options


def test_linseed_file_options_are_declared(bulk_file, tmp_path, capsys):
    parser = dict(build_parser()._subparsers._group_actions[0].choices)["linseed"]
    assert set(parser.get_default("io_inputs")) == {"bulk", "marker_genes"}
    assert set(parser.get_default("io_outputs")) == {"output", "signature_output",
                                                     "markers_output", "plot"}
    before = bulk_file.read_bytes()
    for option in ("--output", "--signature-output", "--markers-output", "--plot"):
        extra = "" if option == "--output" else f"--output {tmp_path / 'p.tsv'}"
        assert _run(f"linseed --bulk {bulk_file} --cell-types 3 {extra} {option} "
                    f"{bulk_file}") == 1
        assert f"{option} would overwrite --bulk" in _error(capsys)
    assert bulk_file.read_bytes() == before
    same = tmp_path / "same.tsv"
    assert _run(f"linseed --bulk {bulk_file} --cell-types 3 --output {same} "
                f"--signature-output {same}") == 1
    assert "same file" in _error(capsys)


# ------------------------------------------------------------- 5. the plot's title


def test_linseed_plot_names_its_dataset(bulk_file, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from matplotlib.text import Text

    from fastdeconv.reference_free import LinseedResult

    titles = []
    original = LinseedResult.plot

    def spy(self, path=None, *, title=None):
        fig = original(self, path, title=title)
        titles.extend(t.get_text() for t in fig.findobj(Text))
        return fig

    monkeypatch.setattr(LinseedResult, "plot", spy)
    png = tmp_path / "linseed.png"
    assert _run(f"linseed --bulk {bulk_file} --cell-types 3 --output {tmp_path / 'p.tsv'} "
                f"--plot {png} {FAST_CLI}") == 0
    assert png.stat().st_size > 1000
    assert "LinSeed: 3 components of bulk.tsv" in titles


def test_cli_choices_are_the_librarys():
    """The choices spelled in the CLI module are the library's (no NumPy import to build it)."""
    from fastdeconv.cli.linseed import CHOICES
    from fastdeconv.reference_free import COMPONENT_SCALES, K_RULES, METHODS, NULLS

    assert CHOICES == {"method": METHODS, "k_rule": K_RULES, "null": NULLS,
                       "component_scale": COMPONENT_SCALES}


@pytest.mark.parametrize("args, flag", [
    ("--method pca", "--method"),
    ("--k-rule elbow", "--k-rule"),
    ("--null exact", "--null"),
    ("--component-scale equal", "--component-scale"),
    ("--restarts -1", "--restarts"),
    ("--restarts many", "--restarts"),
    ("--hinge-weight 0", "--hinge-weight"),
])
def test_new_flags_refuse_bad_values(small, tmp_path, capsys, args, flag):
    path = tmp_path / "b.tsv"
    small.to_csv(path, sep="\t", index_label="gene")
    out = tmp_path / "p.tsv"
    assert _run(f"linseed --bulk {path} --output {out} --cell-types 3 {args}") == 2
    assert flag in capsys.readouterr().err
    assert not out.exists()
