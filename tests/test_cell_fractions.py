"""RNA fractions -> cell fractions: to_cell_fractions and fit_rna_content.

Oracles: the formula written out in NumPy, planted RNA contents recovered from
synthetic fractions, and the designed mixtures of GSE11058 (cell lines mixed
by cell count) for the calibration.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastdeconv
from fastdeconv import to_cell_fractions
from fastdeconv.cli import main
from fastdeconv.fractions import fit_rna_content, held_out_cell_fractions
from fastdeconv.metrics import evaluate


def _rna_fractions(cells, content):
    """Cell fractions -> RNA fractions (the forward model), written out."""
    rna = cells.to_numpy() * np.asarray(content)[None, :]
    return pd.DataFrame(rna / rna.sum(axis=1, keepdims=True), index=cells.index,
                        columns=cells.columns)


def _dirichlet(n, k, seed):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.dirichlet(np.ones(k), size=n),
                        index=[f"s{i}" for i in range(n)],
                        columns=[f"type_{j}" for j in range(k)])


@given(k=st.integers(2, 8), n=st.integers(1, 20), seed=st.integers(0, 2**31 - 1))
def test_to_cell_fractions_matches_the_formula_and_inverts_the_model(k, n, seed):
    cells = _dirichlet(n, k, seed)
    content = np.random.default_rng(seed + 1).uniform(0.1, 10.0, size=k)
    rna = _rna_fractions(cells, content)
    back = to_cell_fractions(rna, dict(zip(cells.columns, content, strict=True)))
    np.testing.assert_allclose(back.to_numpy(), cells.to_numpy(), rtol=1e-10, atol=1e-14)
    # the formula, written out
    f = rna.to_numpy() / content[None, :]
    np.testing.assert_allclose(back.to_numpy(), f / f.sum(axis=1, keepdims=True), rtol=1e-12)
    assert back.index.equals(rna.index) and back.columns.equals(rna.columns)
    # only ratios matter
    scaled = to_cell_fractions(rna, pd.Series(content * 7.5, index=cells.columns))
    np.testing.assert_allclose(scaled.to_numpy(), back.to_numpy(), rtol=1e-12)


def test_to_cell_fractions_zero_and_nan_rows_and_extra_types():
    p = pd.DataFrame({"A": [0.0, np.nan, 0.2], "B": [0.0, np.nan, 0.8]})
    out = to_cell_fractions(p, {"A": 2.0, "B": 1.0, "unused": 5.0})
    assert (out.iloc[0] == 0).all()
    assert out.iloc[1].isna().all()
    np.testing.assert_allclose(out.iloc[2], [0.1 / 0.9, 0.8 / 0.9])
    # a one-column table works like a Series
    table = pd.DataFrame({"rna_content": [2.0, 1.0]}, index=["A", "B"])
    pd.testing.assert_frame_equal(to_cell_fractions(p, table), out)


@pytest.mark.parametrize(
    "content, message",
    [
        ({"A": 1.0}, "no value for the cell type(s) ['B']"),
        ({"A": 1.0, "B": 0.0}, "finite and positive"),
        ({"A": 1.0, "B": -2.0}, "finite and positive"),
        ({"A": 1.0, "B": np.nan}, "finite and positive"),
        ({"A": 1.0, "B": np.inf}, "finite and positive"),
        ({"A": 1.0, "B": "lots"}, "numeric"),
        (pd.DataFrame({"x": [1.0, 2.0], "y": [1.0, 2.0]}, index=["A", "B"]), "one value per"),
    ],
)
def test_to_cell_fractions_bad_content(content, message):
    p = pd.DataFrame({"A": [0.5], "B": [0.5]})
    with pytest.raises(ValueError) as info:
        to_cell_fractions(p, content)
    assert message in str(info.value)


def test_deconvolution_result_method_and_unexplained_column():
    data = fastdeconv.simulate.synthetic(n_genes=300, n_types=3, n_samples=8, seed=4)
    res = fastdeconv.deconvolve(data.bulk, data.signature, method="simplex")
    content = {"type_1": 1.0, "type_2": 2.0, "type_3": 0.5}
    pd.testing.assert_frame_equal(res.to_cell_fractions(content),
                                  to_cell_fractions(res.proportions, content))
    le = fastdeconv.deconvolve(data.bulk, data.signature, method="simplex_le")
    with pytest.raises(ValueError, match="unexplained"):
        le.to_cell_fractions(content)
    out = le.to_cell_fractions({**content, "unexplained": 1.0})
    np.testing.assert_allclose(out.sum(axis=1), 1.0)


def test_signature_result_uses_the_same_conversion():
    rate = np.full((60, 40), 5.0)
    rate[:10, :20] = 60.0  # markers of A
    rate[10:20, 20:] = 60.0  # markers of B
    counts = pd.DataFrame(np.random.default_rng(0).poisson(rate),
                          index=[f"g{i}" for i in range(60)])
    labels = np.repeat(["A", "B"], 20)
    counts.iloc[:, 20:] *= 3  # type B: three times the library size
    sig = fastdeconv.build_signature(counts, labels, n_markers=5)
    p = pd.DataFrame({"A": [0.5, 0.2], "B": [0.5, 0.8]})
    expected = to_cell_fractions(p, sig.rna_content)
    pd.testing.assert_frame_equal(to_cell_fractions(p, sig), expected)  # a SignatureResult as contents
    with pytest.warns(DeprecationWarning, match="to_cell_fractions"):  # the old, reversed form
        pd.testing.assert_frame_equal(sig.to_cell_fractions(p), expected)
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="not types of this signature"):
        sig.to_cell_fractions(p.rename(columns={"B": "C"}))


@given(k=st.integers(2, 6), seed=st.integers(0, 2**31 - 1))
def test_fit_rna_content_recovers_planted_contents(k, seed):
    cells = _dirichlet(12, k, seed)
    content = np.random.default_rng(seed + 1).uniform(0.2, 5.0, size=k)
    rna = _rna_fractions(cells, content)
    fitted = fit_rna_content(rna, cells)
    assert list(fitted.index) == list(cells.columns) and fitted.name == "rna_content"
    np.testing.assert_allclose(np.exp(np.log(fitted).mean()), 1.0, rtol=1e-12)
    expected = content / np.exp(np.log(content).mean())
    np.testing.assert_allclose(fitted.to_numpy(), expected, rtol=1e-5)


def test_fit_rna_content_best_match_and_errors():
    cells = _dirichlet(10, 3, 7)
    rna = _rna_fractions(cells, [1.0, 2.0, 4.0])
    comps = rna.set_axis(["component_3", "component_1", "component_2"], axis=1)
    fitted = fit_rna_content(comps, cells, match="best")
    np.testing.assert_allclose(fitted / fitted.iloc[0], [1.0, 2.0, 4.0], rtol=1e-5)
    with pytest.raises(ValueError, match="at least 2 matched cell types"):
        fit_rna_content(rna[["type_0"]], cells)
    with pytest.raises(ValueError, match="no sample has a positive estimate"):
        fit_rna_content(rna * 0.0, cells)
    with pytest.raises(ValueError, match="share no cell type names"):
        fit_rna_content(comps, cells)


def _write(df, path, index_label):
    df.to_csv(path, sep="\t", index_label=index_label)
    return path


def test_cli_fit_then_convert(tmp_path, capsys):
    data = fastdeconv.simulate.synthetic(n_genes=400, n_types=3, n_samples=20, seed=5)
    content = pd.Series([1.0, 3.0, 0.5], index=data.signature.columns)
    # bulk of cells with unequal RNA content: its RNA fractions are not the cell fractions
    rna = _rna_fractions(data.proportions, content.to_numpy())
    bulk = data.signature @ rna.T
    bulk_path = _write(bulk, tmp_path / "bulk.tsv", "gene")
    sig_path = _write(data.signature, tmp_path / "sig.tsv", "gene")
    truth_path = _write(data.proportions.T, tmp_path / "truth.tsv", "cell_type")
    est, fitted, cells = tmp_path / "rna.tsv", tmp_path / "content.tsv", tmp_path / "cells.tsv"
    assert main(["deconvolve", "--bulk", str(bulk_path), "--signature", str(sig_path),
                 "--output", str(est), "--quiet"]) == 0
    assert main(["evaluate", "--estimate", str(est), "--truth", str(truth_path),
                 "--fit-rna-content", str(fitted)]) == 0
    out = capsys.readouterr().out
    assert "relative RNA content per cell type" in out
    table = pd.read_csv(fitted, sep="\t", index_col=0)
    assert table.index.name == "cell_type" and list(table.columns) == ["rna_content"]
    ratio = table["rna_content"] / table["rna_content"].iloc[0]
    np.testing.assert_allclose(ratio, content / content.iloc[0], rtol=1e-3)
    assert main(["deconvolve", "--bulk", str(bulk_path), "--signature", str(sig_path),
                 "--output", str(cells), "--rna-content", str(fitted)]) == 0
    assert "cell fractions" in capsys.readouterr().out
    converted = pd.read_csv(cells, sep="\t", index_col=0)
    np.testing.assert_allclose(converted.to_numpy(), data.proportions.to_numpy(), atol=1e-3)


def test_cli_bad_rna_content_is_one_line_error(tmp_path, capsys):
    data = fastdeconv.simulate.synthetic(n_genes=200, n_types=2, n_samples=4, seed=6)
    bulk = _write(data.bulk, tmp_path / "bulk.tsv", "gene")
    sig = _write(data.signature, tmp_path / "sig.tsv", "gene")
    bad = tmp_path / "content.tsv"
    bad.write_text("cell_type\trna_content\ntype_1\t1.0\n")
    out = tmp_path / "out.tsv"
    assert main(["deconvolve", "--bulk", str(bulk), "--signature", str(sig), "--output",
                 str(out), "--rna-content", str(bad), "--quiet"]) != 0
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("fastdeconv: error: --rna-content:")
    assert "type_2" in err[0] and not out.exists()


@pytest.mark.slow
def test_abbas_calibrated_rna_content(dataset):
    """GSE11058 mixes cell lines by cell count: the gap to its truth is one factor per line.

    Fitted on all samples (an oracle) the four factors bring r to 0.99; fitted
    on the other mixture designs and applied to the held-out one
    (leave-one-mixture-out, :func:`fastdeconv.fractions.held_out_cell_fractions`),
    r is 0.98.
    """
    data = dataset("abbas_GSE11058")
    truth = data["truth"].T
    est = fastdeconv.deconvolve(data["mixture"], data["reference"]).proportions
    base = evaluate(est, truth).overall["pearson_r"]
    content = fit_rna_content(est, truth)
    assert content["THP-1"] > content["IM-9"]  # the monocytic line carries more RNA per cell
    held_out, oracle = held_out_cell_fractions(est, truth)
    oracle = evaluate(oracle, truth).overall
    assert oracle["pearson_r"] > 0.985 and oracle["rmse"] < 0.025, oracle
    cv = evaluate(held_out, truth).overall
    assert cv["pearson_r"] > 0.97 > base, (cv, base)


def test_cli_plot_shows_the_cell_fractions_it_writes(tmp_path, monkeypatch):
    import fastdeconv.plotting

    data = fastdeconv.simulate.synthetic(n_genes=300, n_types=2, n_samples=5, seed=9)
    bulk = _write(data.bulk, tmp_path / "bulk.tsv", "gene")
    sig = _write(data.signature, tmp_path / "sig.tsv", "gene")
    content = _write(pd.DataFrame({"rna_content": [1.0, 4.0]}, index=data.signature.columns),
                     tmp_path / "content.tsv", "cell_type")
    drawn = {}
    monkeypatch.setattr(fastdeconv.plotting, "plot_proportions",
                        lambda frame, path=None, **kw: drawn.setdefault("frame", frame))
    out = tmp_path / "cells.tsv"
    assert main(["deconvolve", "--bulk", str(bulk), "--signature", str(sig), "--output", str(out),
                 "--rna-content", str(content), "--plot", str(tmp_path / "p.png"),
                 "--quiet"]) == 0
    written = pd.read_csv(out, sep="\t", index_col=0)
    np.testing.assert_allclose(drawn["frame"].to_numpy(), written.to_numpy(), atol=1e-12)
