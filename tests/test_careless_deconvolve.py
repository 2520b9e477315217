"""Issue 13: careless input to ``deconvolve`` never answers wrongly, and its advice can be followed.

Each test is named after the item of the issue it guards: a signature with one
cell type, transposed tables (and the memory they must not cost), normalised
profiles taken for logs, and every message that advises an option: the CLI
must print a flag that ``fastdeconv deconvolve --help`` lists, and following
it must work.  The figures name their dataset and method.
"""

from __future__ import annotations

import inspect
import re
import shlex
import tracemalloc

import numpy as np
import pandas as pd
import pytest

import fastdeconv
from fastdeconv.cli import build_parser, deconvolve as cli_deconvolve, main
from fastdeconv.errors import InputProblem
from fastdeconv.inputs import SCALES, check_orientation
from fastdeconv.simulate import synthetic


def _run(command):
    return main(shlex.split(command))


def _error(capsys):
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("fastdeconv: error: ") and "Traceback" not in err
    return lines[0]


def _write(df, path, index_label="gene"):
    df.to_csv(path, sep="\t", index_label=index_label)
    return path


@pytest.fixture(scope="module")
def small():
    return synthetic(n_genes=300, n_types=4, n_samples=12, seed=5)


def _props(path):
    return pd.read_csv(path, sep="\t", index_col=0)


# --------------------------------------------------------------------------- one cell type


def test_one_cell_type_signature_is_refused(small, tmp_path, capsys):
    one = small.signature[["type_1"]]
    with pytest.raises(ValueError, match=r"1 cell type \('type_1'\).*at least two cell types"):
        fastdeconv.deconvolve(small.bulk, one)
    for method in ("simplex", "simplex_le"):
        with pytest.raises(ValueError, match="at least two cell types"):
            fastdeconv.deconvolve(small.bulk, one, method=method)
    bulk, sig = _write(small.bulk, tmp_path / "b.tsv"), _write(one, tmp_path / "s.tsv")
    out = tmp_path / "p.tsv"
    assert _run(f"deconvolve --bulk {bulk} --signature {sig} --output {out}") == 1
    assert "at least two cell types" in _error(capsys)
    assert not out.exists()


# --------------------------------------------------------------------------- orientation


@pytest.mark.parametrize(
    "which, flags",
    [
        ("bulk", ["--transpose-bulk"]),
        ("signature", ["--transpose-signature"]),
        ("both", ["--transpose-bulk", "--transpose-signature"]),
    ],
)
def test_transposed_table_is_named_with_its_flag(small, tmp_path, capsys, which, flags):
    bulk, sig = small.bulk, small.signature
    tb, ts = which in ("bulk", "both"), which in ("signature", "both")
    expected = fastdeconv.deconvolve(bulk, sig, progress=False).proportions
    # Python: an InputProblem naming the keywords; the keywords fix it
    with pytest.raises(InputProblem, match="look(s)? transposed") as info:
        fastdeconv.deconvolve(bulk.T if tb else bulk, sig.T if ts else sig)
    keywords = sorted(k for k, on in (("transpose_bulk", tb), ("transpose_signature", ts)) if on)
    assert sorted(info.value.keywords()) == keywords
    fixed = fastdeconv.deconvolve(bulk.T if tb else bulk, sig.T if ts else sig,
                                  **{k: True for k in keywords}).proportions
    pd.testing.assert_frame_equal(fixed, expected)
    # the command line: the flags, and following them gives the same numbers
    bpath = _write(bulk.T if tb else bulk, tmp_path / "bulk.tsv", "sample" if tb else "gene")
    spath = _write(sig.T if ts else sig, tmp_path / "sig.tsv", "cell_type" if ts else "gene")
    out = tmp_path / "p.tsv"
    base = f"deconvolve --bulk {bpath} --signature {spath} --output {out} -q"
    assert _run(base) == 1
    line = _error(capsys)
    assert all(flag in line for flag in flags) and "(Python only)" not in line
    assert not out.exists()
    assert _run(base + " " + " ".join(flags)) == 0
    np.testing.assert_allclose(_props(out).to_numpy(), expected.to_numpy(), atol=1e-12)


def test_signature_wider_than_tall_is_taken_for_transposed(small):
    # names alone cannot tell (the genes are spelled differently), the shape can:
    # a signature needs more genes than cell types
    sig = small.signature.rename(index=lambda g: g.lower()).T
    with pytest.raises(InputProblem, match="looks transposed.*transpose_signature=True"):
        fastdeconv.deconvolve(small.bulk, sig)


def test_bulk_wider_than_tall_sharing_no_gene_hints_transpose_bulk(small):
    bulk = small.bulk.rename(index=lambda g: "x" + g).T
    with pytest.raises(InputProblem, match="share no gene name.*transpose_bulk=True"):
        fastdeconv.deconvolve(bulk, small.signature)


def test_orientation_is_not_guessed_for_correct_input(small):
    # sample names that happen to be gene names of the signature do not trip the check
    bulk = small.bulk.copy()
    bulk.columns = list(small.signature.index[: bulk.shape[1]])
    check_orientation(bulk, small.signature)
    res = fastdeconv.deconvolve(bulk, small.signature)
    assert res.proportions.shape == (bulk.shape[1], 4)


def test_transposed_bulk_costs_memory_linear_in_genes():
    # 30 000 genes: a genes x genes matrix would take 7.2 GB
    rng = np.random.default_rng(0)
    genes = [f"g{i}" for i in range(30_000)]
    sig = pd.DataFrame(rng.gamma(1.0, 100.0, (30_000, 3)), index=genes, columns=list("ABC"))
    bulk = pd.DataFrame(rng.gamma(1.0, 100.0, (30_000, 4)), index=genes).T
    tracemalloc.start()
    try:
        with pytest.raises(InputProblem, match="bulk looks transposed"):
            fastdeconv.deconvolve(bulk, sig)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 200e6


# --------------------------------------------------------------------------- log scale


def test_normalised_profile_signature_is_accepted(small, tmp_path, capsys):
    # columns summing to 1 (BayesPrism's phi, any probability profile) are linear
    profile = small.signature / small.signature.sum(axis=0)
    res = fastdeconv.deconvolve(small.bulk, profile)
    assert np.isfinite(res.proportions.to_numpy()).all()
    percent = 100 * profile
    pd.testing.assert_frame_equal(
        fastdeconv.deconvolve(small.bulk, percent).proportions, res.proportions
    )
    bulk = _write(small.bulk, tmp_path / "b.tsv")
    sig = _write(profile, tmp_path / "phi.tsv")
    assert _run(f"deconvolve --bulk {bulk} --signature {sig} --output {tmp_path / 'p.tsv'}") == 0


def test_log_signature_is_caught_and_unlogged_by_signature_scale(small):
    for scale, log in (("log2", np.log2), ("log2p1", lambda x: np.log2(x + 1)),
                       ("log1p", np.log1p)):
        logged = log(small.signature.clip(lower=1.0))
        with pytest.raises(InputProblem, match="signature looks log-transformed") as info:
            fastdeconv.deconvolve(small.bulk, logged)
        assert info.value.keywords() == ["signature_scale"] * 4
        fastdeconv.deconvolve(small.bulk, logged, signature_scale=scale)


# --------------------------------------------------------------------------- advice


def _sig_genes(small, n):
    return list(small.signature.index[:n])


def _case(small, name):
    """(bulk, signature, the remedy the message must print) for one advice path."""
    bulk, sig = small.bulk.copy(), small.signature.copy()
    if name == "log2 bulk":
        return np.log2(bulk.clip(lower=2.0)), sig, "--scale log2"
    if name == "log2(x + 1) bulk":
        return np.log2(bulk + 1), sig, "--scale log2p1"
    if name == "ln(x + 1) bulk":
        return np.log1p(bulk), sig, "--scale log1p"
    if name == "negative log2 bulk":
        return np.log2(bulk.clip(lower=0.2)), sig, "--scale log2"
    if name == "log2 bulk with -inf":
        with np.errstate(divide="ignore"):
            logged = np.log2(bulk.where(bulk > 1.0, 0.0))
        return logged, sig, "--scale log2"
    if name == "log2 signature":
        return bulk, np.log2(sig.clip(lower=2.0)), "--signature-scale log2"
    if name == "linear signature called log2":
        return bulk, sig, "--signature-scale linear"
    if name == "duplicated bulk genes":
        bulk.index = list(bulk.index[:-1]) + [bulk.index[0]]
        return bulk, sig, "--duplicates sum"
    if name == "duplicated signature genes":
        sig.index = list(sig.index[:-1]) + [sig.index[0]]
        return bulk, sig, "--duplicates sum"
    if name == "case mismatch":
        return bulk.rename(index=str.upper), sig.rename(index=str.lower), "--case-insensitive"
    if name == "Ensembl versions":
        ens = {g: f"ENSG{i:011d}" for i, g in enumerate(sig.index)}
        bulk = bulk.rename(index=lambda g: ens[g] + ".3")
        return bulk, sig.rename(index=ens), "--strip-version"
    if name == "NaN in the bulk":
        bulk.iloc[3, 2] = np.nan
        return bulk, sig, "--missing drop"
    if name == "NaN in the signature":
        sig.iloc[5, 1] = np.nan
        return bulk, sig, "--missing drop"
    if name == "too few genes":
        return bulk.iloc[:40], sig, "--min-genes 40"
    raise AssertionError(name)


ADVICE = [
    "log2 bulk", "log2(x + 1) bulk", "ln(x + 1) bulk", "negative log2 bulk", "log2 bulk with -inf",
    "log2 signature", "linear signature called log2", "duplicated bulk genes",
    "duplicated signature genes", "case mismatch", "Ensembl versions", "NaN in the bulk",
    "NaN in the signature", "too few genes",
]


@pytest.fixture(scope="module")
def deconvolve_help():
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert main(["deconvolve", "--help"]) == 0
    return buffer.getvalue()


@pytest.mark.parametrize("name", ADVICE)
def test_every_advice_prints_a_flag_that_exists_and_works(small, tmp_path, capsys, name,
                                                          deconvolve_help):
    bulk, sig, remedy = _case(small, name)
    extra = "--signature-scale log2" if name == "linear signature called log2" else ""
    bpath, spath = _write(bulk, tmp_path / "bulk.tsv"), _write(sig, tmp_path / "sig.tsv")
    out = tmp_path / "props.tsv"
    base = f"deconvolve --bulk {bpath} --signature {spath} --output {out} -q"
    assert _run(f"{base} {extra}") == 1
    line = _error(capsys)
    assert remedy in line, line
    assert "(Python only)" not in line and not re.search(r"[a-z_]=\S", line), line
    for flag in re.findall(r"(?<![\w-])--[a-z][a-z-]+", line):
        assert re.search(rf"(?<![\w-]){flag}\b", deconvolve_help), flag
    assert not out.exists()
    assert _run(f"{base} {remedy}") == 0, capsys.readouterr().err  # (replacing a wrong option)
    assert _props(out).shape[0] == small.bulk.shape[1]


def test_flags_table_covers_every_remedy_of_the_library():
    # every keyword a deconvolve run can be advised has a flag that exists
    parser = build_parser()
    (sub,) = [a for a in parser._actions if hasattr(a, "choices") and a.choices
              and "deconvolve" in a.choices]
    options = {o for a in sub.choices["deconvolve"]._actions for o in a.option_strings}
    assert set(cli_deconvolve.FLAGS.values()) <= options
    assert sub.choices["deconvolve"].get_default("flags") is cli_deconvolve.FLAGS
    keywords = set(inspect.signature(fastdeconv.deconvolve).parameters)
    assert set(cli_deconvolve.FLAGS) <= keywords
    assert cli_deconvolve.SCALES == SCALES


def _help_entries(text):
    """Option -> its help text, from argparse's help."""
    entries, current = {}, None
    for line in text.split("options:", 1)[1].splitlines():
        match = re.match(r"  (-\w, )?(--[a-z-]+)", line)
        if match:
            current = match.group(2)
            entries[current] = line[match.end():]
        elif current and line.startswith("      "):
            entries[current] += " " + line.strip()
    return {k: " ".join(v.split()) for k, v in entries.items()}


def test_help_shows_the_library_defaults(deconvolve_help):
    defaults = inspect.signature(fastdeconv.deconvolve).parameters
    assert "the library's" not in deconvolve_help
    entries = _help_entries(deconvolve_help)
    for keyword in ("method", "genes", "n_markers", "min_fold_change", "robust", "scale",
                    "signature_scale", "duplicates", "missing"):
        value = defaults[keyword].default
        value = f"{value:g}" if isinstance(value, float) else value
        assert f"(default: {value})" in entries[cli_deconvolve.FLAGS[keyword]], keyword


def test_marker_options_reach_the_library(small, tmp_path, capsys):
    bulk, sig = _write(small.bulk, tmp_path / "b.tsv"), _write(small.signature, tmp_path / "s.tsv")
    out = tmp_path / "p.tsv"
    assert _run(f"deconvolve --bulk {bulk} --signature {sig} --output {out} --genes markers "
                "--n-markers 7 --min-fold-change 1.5 -q") == 0
    api = fastdeconv.deconvolve(small.bulk, small.signature, genes="markers", n_markers=7,
                                min_fold_change=1.5, progress=False)
    np.testing.assert_allclose(_props(out).to_numpy(), api.proportions.to_numpy(), atol=1e-12)
    assert _run(f"deconvolve --bulk {bulk} --signature {sig} --output {out} "
                "--min-fold-change 0.5") == 2


# --------------------------------------------------------------------------- figures


def _capture_titles(monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    titles = []
    original = Figure.savefig

    def savefig(fig, *args, **kwargs):
        texts = [t.get_text() for t in fig.texts]
        texts += [ax.get_title() for ax in fig.axes]
        if fig._suptitle is not None:
            texts.append(fig._suptitle.get_text())
        titles.append(" | ".join(texts))
        return original(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", savefig)
    return titles


def test_deconvolve_figures_name_dataset_and_method(small, tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    titles = _capture_titles(monkeypatch)
    bulk = _write(small.bulk, tmp_path / "mixture_A.tsv")
    sig = _write(small.signature, tmp_path / "lm_sig.tsv")
    assert _run(f"deconvolve --bulk {bulk} --signature {sig} --output {tmp_path / 'p.tsv'} "
                f"--method simplex --plot {tmp_path / 'p.png'} --plot-fit {tmp_path / 'f.png'} "
                "-q") == 0
    assert len(titles) == 2
    for text in titles:
        assert "mixture_A.tsv" in text and "lm_sig.tsv" in text and "simplex" in text


# --------------------------------------------------------------------------- values


def test_huge_values_are_refused_not_answered_with_nan(small):
    for table in ("bulk", "signature"):
        bulk, sig = small.bulk.copy(), small.signature.copy()
        (bulk if table == "bulk" else sig).iloc[0, 0] = 1e308
        with pytest.raises(ValueError, match=rf"{table} has 1 value\(s\) above 1e\+30"):
            fastdeconv.deconvolve(bulk, sig)


def test_missing_weight_is_not_taken_as_zero(small):
    weights = pd.Series(1.0, index=small.signature.index)
    weights.iloc[3] = np.nan
    with pytest.raises(ValueError, match="weights must be finite"):
        fastdeconv.deconvolve(small.bulk, small.signature, weights=weights)
