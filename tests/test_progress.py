"""Progress on every long command (issue 12, item 6), and the note while Numba compiles.

Each long pipeline (``build_signature``, ``pseudobulk``, ``linseed``, the
likelihood fit of ``deconvolve(method="bayes")``) draws its bars on stderr
with ``progress=True``, is silent with ``progress=False``, decides by itself
(a terminal and enough work) with ``progress=None``, and gives the same
answer either way.  The compile note is driven by Numba's own compile
events: a fresh function compiles (cold), a second call does not (warm).
"""

from __future__ import annotations

import io
import sys

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import fastdeconv
from fastdeconv import _progress
from fastdeconv._progress import COMPILING, compile_notice, progress_bar, show_progress
from fastdeconv.cli import main
from fastdeconv.reference_free import linseed
from fastdeconv.signature import build_signature
from fastdeconv.simulate import pseudobulk, synthetic


class Terminal(io.StringIO):
    """A stderr that says it is a terminal."""

    def isatty(self):
        return True


def _fresh_function():
    """A function Numba has never compiled: its first call is a cold compilation."""
    import numba

    return numba.njit(cache=False)(lambda x: x + 1.0)


# --------------------------------------------------------------------------- data
@pytest.fixture(scope="module")
def cells():
    """A small single-cell reference: 200 genes x 240 sparse cells of 3 types with markers."""
    rng = np.random.default_rng(0)
    mu = rng.gamma(0.5, 2.0, size=(200, 3))
    for t in range(3):
        mu[10 * t:10 * t + 10, t] *= 30
    labels = np.repeat(["T", "B", "NK"], 80)
    codes = np.repeat(np.arange(3), 80)
    counts = sp.csc_array(rng.poisson(mu[:, codes] * rng.gamma(5, 0.2, 240)).astype(np.float32))
    return counts, labels


@pytest.fixture(scope="module")
def bulk():
    return synthetic(n_genes=400, n_types=3, n_samples=12, seed=1).bulk


def _signature(cells, **kw):
    res = build_signature(*cells, n_markers=5, **kw)
    return res.signature, res.statistics


def _clusters(cells, **kw):
    return build_signature(cells[0], n_clusters=3, n_markers=5, **kw).clusters


def _pseudobulk(cells, **kw):
    pb = pseudobulk(*cells, n_samples=30, cells_per_sample=50, seed=2, **kw)
    return pb.bulk, pb.rna_fractions


def _linseed(bulk, **kw):
    res = linseed(bulk, 3, n_permutations=20, pvalue=0.05, null="permutation", n_restarts=8,
                  **kw)
    return res.proportions, res.genes


def _bayes(cells, **kw):
    counts, labels = cells
    mix = pseudobulk(counts, labels, n_samples=8, cells_per_sample=200, seed=3).bulk
    reference = pd.DataFrame(counts.toarray(), index=mix.index)
    res = fastdeconv.deconvolve(mix, reference, labels=list(labels), method="bayes", **kw)
    return res.proportions, res.fit


# (run, what the bars say when done) for every command; the data is the fixture named
RUNS = {
    "signature": (_signature, "cells", ["signature: 100%", "240/240 cells"]),
    "clustering": (_clusters, "cells", ["clustering: 100%", "12/12 steps"]),
    "simulate": (_pseudobulk, "cells", ["pseudobulk: 100%", "30/30 samples"]),
    "linseed": (_linseed, "bulk", ["linseed linearity: 100%", "linseed permutations: 100%",
                                   "20/20 permutations", "linseed corners: 100%", "9/9 starts"]),
    "bayes": (_bayes, "cells", ["bayes fit: 100%", "bayes update: 100%", "bayes refit: 100%",
                                "bayes summary: 100%", "8/8 samples"]),
}


def _equal(a, b):
    return all(x.equals(y) for x, y in zip(a, b)) if isinstance(a, tuple) else a.equals(b)


@pytest.mark.parametrize("name", list(RUNS))
def test_bars_only_when_asked_and_the_same_answer(name, request, capsys):
    run, data, said = RUNS[name]
    data = request.getfixturevalue(data)
    quiet = run(data, progress=False)
    assert capsys.readouterr().err == ""
    shown = run(data, progress=True)
    err = capsys.readouterr().err
    for text in said:
        assert text in err, (text, err)
    assert _equal(quiet, shown)
    run(data)  # default: stderr is not a terminal here
    assert capsys.readouterr().err == ""


# the module-level threshold of each command's default, and the bar it then shows
DEFAULTS = {
    "signature": ("fastdeconv.signature", "PROGRESS_VALUES", "signature:"),
    "simulate": ("fastdeconv.simulate", "PROGRESS_VALUES", "pseudobulk:"),
    "linseed": ("fastdeconv.reference_free", "PROGRESS_WORK", "linseed linearity:"),
    "bayes": ("fastdeconv.bayes", "PROGRESS_WORK", "bayes fit:"),
}


@pytest.mark.parametrize("name", list(DEFAULTS))
def test_default_is_a_terminal_and_large_work(name, request, monkeypatch):
    run, data, _ = RUNS[name]
    data = request.getfixturevalue(data)
    module, threshold, desc = DEFAULTS[name]
    monkeypatch.setattr(sys, "stderr", Terminal())
    run(data)  # small work: no bar even on a terminal
    assert desc not in sys.stderr.getvalue()
    monkeypatch.setattr(f"{module}.{threshold}", 0)  # now every run counts as large
    run(data)
    assert desc in sys.stderr.getvalue()
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # large, but not a terminal
    run(data)
    assert sys.stderr.getvalue() == ""


def test_show_progress_follows_the_choice_then_the_terminal(monkeypatch):
    assert show_progress(True, large=False) and not show_progress(False, large=True)
    monkeypatch.setattr(sys, "stderr", Terminal())
    assert show_progress(None, large=True) and not show_progress(None, large=False)
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert not show_progress(None, large=True)


def test_a_chunked_product_is_the_product_in_one_piece(cells):
    """pseudobulk sums a block of samples at a time: the same sums as one product."""
    import fastdeconv.simulate as simulate

    counts, labels = cells
    values = counts * np.float32(1.37)  # not whole numbers: any change of order would show
    drawn = {}
    real = simulate._mix

    def spy(x, draws, progress):
        drawn["draws"] = draws
        return real(x, draws, progress)

    for blocks in (1 << 16, 7):  # one block; then 1-2 samples per block
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(simulate, "_mix", spy)
            mp.setattr(simulate, "_DRAWS_PER_BLOCK", blocks)
            got = pseudobulk(values, labels, 25, cells_per_sample=40, seed=4, normalized=True)
        whole = sp.csr_array(values) @ sp.csr_array(drawn["draws"].T)
        np.testing.assert_array_equal(got.bulk.to_numpy(), whole.toarray())
    dense = np.asarray(values.toarray(), dtype=np.float64)
    got = pseudobulk(dense, labels, 25, cells_per_sample=40, seed=4, normalized=True)
    np.testing.assert_array_equal(got.bulk.to_numpy(), dense @ drawn["draws"].T.toarray())


# --------------------------------------------------------------------- the compile note
def test_compile_note_once_above_the_bar_when_numba_compiles(capsys):
    f, g = _fresh_function(), _fresh_function()
    with progress_bar(2, True, desc="demo", compiling=True) as bar:
        f(1.0)  # cold: compiles
        g(1.0)  # another compilation: no second note
        bar.update(2)
    err = capsys.readouterr().err
    assert err.count(COMPILING) == 1
    # the note is a line of its own, before the finished bar
    assert err.index(COMPILING) < err.index("2/2 samples")
    assert COMPILING + "\n" in err
    with progress_bar(2, True, desc="demo", compiling=True) as bar:
        f(2.0)  # warm: compiled in this process, nothing to say
        bar.update(2)
    assert COMPILING not in capsys.readouterr().err


def test_compile_note_never_without_a_bar(capsys):
    with progress_bar(2, False, compiling=True) as bar:
        _fresh_function()(1.0)
        bar.update(2)
    with compile_notice(enabled=False):
        _fresh_function()(1.0)
    assert capsys.readouterr().err == ""


def test_compile_notes_nest_and_listen_only_while_open(capsys):
    with compile_notice():
        with compile_notice():
            _fresh_function()(1.0)
        _fresh_function()(1.0)  # the outer context has said it already
    _fresh_function()(1.0)  # no context open: silent
    assert capsys.readouterr().err.splitlines() == [COMPILING]
    assert _progress._NoticeState.open == 0
    with compile_notice():  # a new outermost context speaks again
        _fresh_function()(1.0)
    assert capsys.readouterr().err.splitlines() == [COMPILING]


def test_compile_note_is_silent_when_numba_events_fail(monkeypatch, capsys):
    def broken():
        raise AttributeError("another numba: no event.Listener")

    monkeypatch.setattr(_progress, "_listener", broken)
    with compile_notice():
        assert _fresh_function()(1.0) == 2.0
    monkeypatch.undo()
    monkeypatch.setattr(sys, "stderr", None)  # writing fails inside the listener
    with compile_notice():
        assert _fresh_function()(1.0) == 2.0  # the compilation still succeeds
    monkeypatch.undo()
    assert capsys.readouterr().err == ""


def test_a_pipeline_says_when_its_kernels_compile(cells, monkeypatch, capsys):
    """A cold kernel (Numba's compile event, sent by a stand-in) is announced above the bar."""
    from numba.core import event

    import fastdeconv.kernels.markers as markers

    real = markers.group_sums_sparse

    def cold(*args):
        with event.trigger_event("numba:compile", data={}):
            pass
        return real(*args)

    monkeypatch.setattr(markers, "group_sums_sparse", cold)
    _signature(cells, progress=True)
    err = capsys.readouterr().err
    assert err.count(COMPILING) == 1 and err.index(COMPILING) < err.index("240/240 cells")
    _signature(cells, progress=False)  # no bar: no note
    assert capsys.readouterr().err == ""


# ------------------------------------------------------------------- the command line
@pytest.mark.parametrize("quiet", [False, True])
@pytest.mark.parametrize("command", ["signature", "simulate", "linseed"])
def test_commands_pass_progress_unless_quiet(command, quiet, cells, bulk, tmp_path,
                                             monkeypatch):
    counts, labels = cells
    frame = pd.DataFrame(counts.toarray(), index=[f"g{i}" for i in range(counts.shape[0])],
                         columns=[f"c{i}" for i in range(counts.shape[1])])
    frame.to_csv(tmp_path / "counts.tsv", sep="\t", index_label="gene")
    pd.DataFrame({"cell": frame.columns, "type": labels}).to_csv(
        tmp_path / "labels.tsv", sep="\t", index=False)
    bulk.to_csv(tmp_path / "bulk.tsv", sep="\t", index_label="gene")
    seen = {}

    def stub(*args, **kwargs):
        seen.update(kwargs)
        raise ValueError("stopped by the test")

    target = {"signature": "fastdeconv.signature.build_signature",
              "simulate": "fastdeconv.simulate.pseudobulk",
              "linseed": "fastdeconv.reference_free.linseed"}[command]
    monkeypatch.setattr(target, stub)
    cells_in = ["--counts", str(tmp_path / "counts.tsv"), "--labels", str(tmp_path / "labels.tsv")]
    argv = {
        "signature": ["signature", *cells_in, "--output", str(tmp_path / "s.tsv")],
        "simulate": ["simulate", *cells_in, "--samples", "3", "--output-bulk",
                     str(tmp_path / "b.tsv"), "--output-truth", str(tmp_path / "t.tsv")],
        "linseed": ["linseed", "--bulk", str(tmp_path / "bulk.tsv"), "--cell-types", "3",
                    "--output", str(tmp_path / "p.tsv")],
    }[command]
    assert main(argv + (["--quiet"] if quiet else [])) == 1  # the stub's error
    assert seen["progress"] is (False if quiet else None)
