"""Tests of fastdeconv.regression: the reference-based pipeline and its result."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.optimize
import scipy.stats

import fastdeconv
from fastdeconv.io import read_table, write_table
from fastdeconv.regression import DeconvolutionResult, deconvolve, select_marker_genes
from fastdeconv.solvers import ConvergenceWarning

TYPES = ["T cells", "B cells", "NK cells", "Monocytes"]


def make_data(n_genes=200, n_samples=12, seed=0, noise=0.0):
    """Signature with marker structure and bulk = S @ P (+ multiplicative noise)."""
    rng = np.random.default_rng(seed)
    k = len(TYPES)
    sig = rng.gamma(0.8, 50.0, size=(n_genes, k)) + 1.0
    for t in range(k):  # 25 strong markers per type
        sig[t * 25:(t + 1) * 25, t] *= 20.0
    props = rng.dirichlet(np.ones(k), size=n_samples)
    bulk = sig @ props.T
    if noise:
        bulk *= np.exp(rng.normal(0.0, noise, size=bulk.shape))
    genes = [f"G{i}" for i in range(n_genes)]
    samples = [f"S{j}" for j in range(n_samples)]
    return (
        pd.DataFrame(bulk, index=genes, columns=samples),
        pd.DataFrame(sig, index=genes, columns=TYPES),
        pd.DataFrame(props, index=samples, columns=TYPES),
    )


@pytest.fixture
def data():
    return make_data()


# --- exact recovery and agreement with the solvers ----------------------------


@pytest.mark.parametrize("method", ["nnls", "simplex", "simplex_le"])
@pytest.mark.parametrize("robust", ["huber", None])
def test_planted_proportions_recovered(data, method, robust):
    bulk, sig, props = data
    res = deconvolve(bulk, sig, method=method, robust=robust)
    np.testing.assert_allclose(res.proportions[TYPES].to_numpy(), props.to_numpy(), atol=1e-8)
    assert res.fit["converged"].all()
    np.testing.assert_allclose(res.fit["r2"], 1.0, atol=1e-10)
    np.testing.assert_allclose(res.proportions.sum(axis=1), 1.0, atol=1e-10)


def test_plain_nnls_equals_scipy_and_keeps_raw_coefficients():
    bulk, sig, _ = make_data(noise=0.2, seed=1)
    bulk = bulk * 3.0  # bulk on another scale: NNLS coefficients sum to ~3
    res = deconvolve(bulk, sig, method="nnls", robust=None, background=False)
    ref = np.column_stack(
        [scipy.optimize.nnls(sig.to_numpy(), bulk[c].to_numpy())[0] for c in bulk.columns]
    )
    np.testing.assert_allclose(res.coefficients.to_numpy(), ref.T, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(res.proportions.to_numpy(), (ref / ref.sum(0)).T, rtol=1e-7)
    assert res.fit["total"].between(2.0, 4.0).all()


def test_simplex_equals_core_solver():
    bulk, sig, _ = make_data(noise=0.2, seed=2)
    res = deconvolve(bulk, sig, method="simplex", robust=None)
    X = fastdeconv.simplex_lstsq(sig.to_numpy(), bulk.to_numpy())
    np.testing.assert_allclose(res.proportions.to_numpy(), X.T, atol=1e-10)


def test_wls_uses_weights_and_requires_them():
    bulk, sig, _ = make_data(noise=0.2, seed=3)
    w = np.random.default_rng(3).uniform(0.1, 2.0, size=len(sig))
    res = deconvolve(bulk, sig, method="wls", weights=w, robust=None, background=False)
    X = fastdeconv.nnls(sig.to_numpy(), bulk.to_numpy(), weights=w)
    np.testing.assert_allclose(res.coefficients.to_numpy(), X.T, rtol=1e-8, atol=1e-10)
    # a Series is matched by gene name (order does not matter)
    ws = pd.Series(w, index=sig.index).iloc[::-1]
    res2 = deconvolve(bulk, sig, method="wls", weights=ws, robust=None, background=False)
    np.testing.assert_allclose(res2.coefficients.to_numpy(), X.T, rtol=1e-8, atol=1e-10)
    with pytest.raises(ValueError, match="needs per-gene weights"):
        deconvolve(bulk, sig, method="wls")
    with pytest.raises(ValueError, match="weights has 3 entries"):
        deconvolve(bulk, sig, weights=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="non-negative"):
        deconvolve(bulk, sig, weights=-w)


def test_simplex_le_reports_unexplained_fraction(data):
    bulk, sig, props = data
    # 30% of each sample comes from cells the signature does not have, expressing
    # genes outside the signature's markers only weakly
    other = np.random.default_rng(7).gamma(0.5, 2.0, size=len(sig))
    mixed = 0.7 * bulk + 0.3 * other[:, None]
    res = deconvolve(mixed, sig, method="simplex_le", robust=None)
    assert "unexplained" in res.proportions.columns
    np.testing.assert_allclose(res.proportions.sum(axis=1), 1.0, atol=1e-10)
    np.testing.assert_allclose(res.proportions["unexplained"], 0.3, atol=0.02)
    np.testing.assert_allclose(res.proportions[TYPES], 0.7 * props, atol=0.02)


def test_background_level_is_recovered_and_not_a_proportion(data):
    bulk, sig, props = data
    res = deconvolve(bulk + 25.0, sig, method="nnls")
    np.testing.assert_allclose(res.fit["background"], 25.0, rtol=1e-6)
    np.testing.assert_allclose(res.proportions.to_numpy(), props.to_numpy(), atol=1e-7)
    plain = deconvolve(bulk + 25.0, sig, method="nnls", background=False)
    assert np.abs(plain.proportions - props).to_numpy().max() > 0.01
    with pytest.raises(ValueError, match="background=True needs method"):
        deconvolve(bulk, sig, method="simplex", background=True)


def test_huber_resists_outlier_genes():
    bulk, sig, props = make_data(seed=5, noise=0.05)
    corrupted = bulk.copy()
    rng = np.random.default_rng(5)
    bad = rng.choice(len(bulk), size=15, replace=False)
    corrupted.iloc[bad] *= 30.0  # cross-hybridisation-like outliers
    robust = deconvolve(corrupted, sig)
    plain = deconvolve(corrupted, sig, robust=None)
    err_robust = np.abs(robust.proportions - props).to_numpy().max()
    err_plain = np.abs(plain.proportions - props).to_numpy().max()
    assert err_robust < 0.05 < err_plain
    # the outlier genes are the ones down-weighted
    w = robust.gene_weights.iloc[bad]
    assert (w.median(axis=1) < 0.2).all()
    assert robust.fit["n_reweight"].gt(0).all()


def test_fit_statistics_match_naive():
    bulk, sig, _ = make_data(noise=0.3, seed=6)
    res = deconvolve(bulk, sig, method="simplex", robust=None)
    S, B = sig.to_numpy(), bulk.to_numpy()
    R = S @ res.coefficients.to_numpy().T
    for j, name in enumerate(bulk.columns):
        b, r = B[:, j], R[:, j]
        row = res.fit.loc[name]
        assert row["residual_norm"] == pytest.approx(np.linalg.norm(b - r), rel=1e-10)
        assert row["rmse"] == pytest.approx(np.sqrt(np.mean((b - r) ** 2)), rel=1e-10)
        assert row["r2"] == pytest.approx(1 - np.sum((b - r) ** 2) / np.sum((b - b.mean()) ** 2), rel=1e-10)
        assert row["pearson_r"] == pytest.approx(scipy.stats.pearsonr(b, r)[0], rel=1e-10)


def test_n_jobs_does_not_change_the_answer():
    bulk, sig, _ = make_data(noise=0.2, seed=8, n_samples=40)
    a = deconvolve(bulk, sig, n_jobs=1)
    b = deconvolve(bulk, sig, n_jobs=2)
    pd.testing.assert_frame_equal(a.proportions, b.proportions, atol=1e-12, rtol=0)


# --- gene selection -----------------------------------------------------------


def test_marker_rule():
    sig = pd.DataFrame(
        {"A": [100.0, 1.0, 10.0, 50.0, 30.0], "B": [1.0, 90.0, 9.0, 40.0, 2.0]},
        index=["a1", "b1", "flat", "weak", "a2"],
    )
    plain = dict(pseudocount=0.0)
    assert select_marker_genes(sig, min_per_type=0, **plain) == ["a1", "b1", "a2"]
    assert select_marker_genes(sig, n_markers=1, min_per_type=0, **plain) == ["a1", "b1"]
    # a type without genes of fold change 2 still keeps its best genes
    assert select_marker_genes(sig, min_fold_change=50.0, min_per_type=1, **plain) == ["a1", "b1"]
    # default pseudocount = mean value (33.3): a2's (30+c)/(2+c) = 1.79 < 2 drops out
    assert select_marker_genes(sig, min_per_type=0) == ["a1", "b1"]
    with pytest.raises(ValueError, match="n_markers"):
        select_marker_genes(sig, n_markers=0)
    with pytest.raises(ValueError, match="pseudocount"):
        select_marker_genes(sig, pseudocount=-1.0)


def test_marker_rule_prefers_expressed_genes_and_is_scale_free():
    rng = np.random.default_rng(12)
    expressed = rng.gamma(2.0, 100.0, size=(40, 3)) * np.repeat(np.eye(3) * 9 + 1, [14, 13, 13], axis=0)
    noisy = rng.gamma(0.3, 0.05, size=(60, 3))  # ratios of tiny numbers can be huge
    sig = pd.DataFrame(np.vstack([expressed, noisy]), index=[f"g{i}" for i in range(100)])
    chosen = select_marker_genes(sig, n_markers=10, min_per_type=0)
    assert all(int(g[1:]) < 40 for g in chosen)
    assert any(int(g[1:]) >= 40 for g in select_marker_genes(sig, n_markers=10, pseudocount=0.0))
    assert select_marker_genes(sig * 1000.0, n_markers=10, min_per_type=0) == chosen


def test_auto_selects_markers_only_for_large_signatures(data):
    bulk, sig, props = data
    # 200 genes for 4 types: a curated signature (<= 200 per type), used whole
    assert deconvolve(bulk, sig).genes_used == list(sig.index)
    bulk, sig, props = make_data(n_genes=1000, n_samples=5, seed=11)
    big = deconvolve(bulk, sig)  # > 200 genes per type: markers
    assert big.genes_used == select_marker_genes(sig, n_markers=100)
    assert len(big.genes_used) <= 4 * 100
    np.testing.assert_allclose(big.proportions.to_numpy(), props.to_numpy(), atol=1e-8)
    assert deconvolve(bulk, sig, n_markers=30).genes_used == select_marker_genes(sig, n_markers=30)
    assert deconvolve(bulk, sig, genes="all").genes_used == list(sig.index)
    bulk, sig, _ = data
    assert deconvolve(bulk, sig, genes="markers", n_markers=20).genes_used == select_marker_genes(
        sig, n_markers=20
    )


def test_explicit_gene_list(data):
    bulk, sig, props = data
    chosen = [f"G{i}" for i in range(0, 200, 2)] + ["not-a-gene"]
    res = deconvolve(bulk, sig, genes=chosen)
    assert res.genes_used == [f"G{i}" for i in range(0, 200, 2)]
    with pytest.raises(ValueError, match="only 2 of the 2 genes"):
        deconvolve(bulk, sig, genes=["G1", "G2"])
    with pytest.raises(ValueError, match="genes must be"):
        deconvolve(bulk, sig, genes="best")


# --- inputs and errors --------------------------------------------------------


def test_nan_and_inf_errors_name_genes_and_samples(data):
    bulk, sig, _ = data
    bad = bulk.copy()
    bad.loc["G7", "S3"] = np.nan
    with pytest.raises(ValueError, match=r"bulk has 1 NaN.*\['G7'\].*\['S3'\]"):
        deconvolve(bad, sig)
    bad.loc["G7", "S3"] = np.inf
    with pytest.raises(ValueError, match=r"infinite.*\['G7'\].*\['S3'\]"):
        deconvolve(bad, sig)
    sig_bad = sig.copy()
    sig_bad.iloc[0, 1] = np.nan
    with pytest.raises(ValueError, match=r"signature has 1 NaN.*\['G0'\].*\['B cells'\]"):
        deconvolve(bulk, sig_bad)


def test_negative_values_error(data):
    bulk, sig, _ = data
    bad = bulk.copy()
    bad.iloc[4, 2] = -1.0
    with pytest.raises(ValueError, match="negative"):
        deconvolve(bad, sig)


def test_log_scale_error_and_options(data):
    bulk, sig, props = data
    logged = np.log2(bulk)
    with pytest.raises(ValueError, match="look.* log-transformed"):
        deconvolve(logged, sig)
    res = deconvolve(logged, sig, scale="log2")
    np.testing.assert_allclose(res.proportions.to_numpy(), props.to_numpy(), atol=1e-8)
    res = deconvolve(np.log2(bulk + 1), sig, scale="log2p1")
    np.testing.assert_allclose(res.proportions.to_numpy(), props.to_numpy(), atol=1e-8)
    # asserting the linear scale skips the check (the data are then used as given)
    deconvolve(logged, sig, scale="linear")
    with pytest.raises(ValueError, match="signature looks log-transformed"):
        deconvolve(bulk, np.log2(sig + 1))
    with pytest.raises(ValueError, match="scale must be one of"):
        deconvolve(bulk, sig, scale="log10")


def test_no_overlap_and_too_few_genes(data):
    bulk, sig, _ = data
    renamed = bulk.set_axis([f"X{i}" for i in range(len(bulk))], axis=0)
    with pytest.raises(ValueError, match="share no gene"):
        deconvolve(renamed, sig)
    with pytest.raises(ValueError, match="too few common genes"):
        deconvolve(bulk.iloc[:40], sig)
    res = deconvolve(bulk.iloc[:40], sig, min_genes=20)
    assert res.gene_match.n_matched == 40 and len(res.gene_match.missing) == 160


def test_duplicated_genes_raise_or_sum(data):
    bulk, sig, props = data
    # split each of the first 10 genes into two rows with the same name
    half = bulk.iloc[:10] / 2.0
    dup = pd.concat([half, half, bulk.iloc[10:]])
    with pytest.raises(ValueError, match="duplicated gene name"):
        deconvolve(dup, sig)
    res = deconvolve(dup, sig, duplicates="sum")
    np.testing.assert_allclose(res.proportions.to_numpy(), props.to_numpy(), atol=1e-8)


def test_case_insensitive_and_ensembl_versions(data):
    bulk, sig, props = data
    ens = [f"ENSG{i:011d}" for i in range(len(sig))]
    sig_e = sig.set_axis(ens, axis=0)
    bulk_e = bulk.set_axis([f"{g}.{i % 7 + 1}" for i, g in enumerate(ens)], axis=0)
    with pytest.raises(ValueError, match="share no gene"):
        deconvolve(bulk_e, sig_e)
    res = deconvolve(bulk_e, sig_e, strip_version=True)
    np.testing.assert_allclose(res.proportions.to_numpy(), props.to_numpy(), atol=1e-8)
    bulk_l = bulk.set_axis([g.lower() for g in bulk.index], axis=0)
    res = deconvolve(bulk_l, sig, case_insensitive=True)
    assert res.gene_match.n_matched == len(sig)


def test_array_input_with_gene_lists(data):
    bulk, sig, props = data
    res = deconvolve(
        bulk.to_numpy()[::-1], sig.to_numpy(), bulk_genes=list(bulk.index[::-1]),
        signature_genes=list(sig.index), cell_types=TYPES,
    )
    np.testing.assert_allclose(res.proportions.to_numpy(), props.to_numpy(), atol=1e-8)
    assert list(res.proportions.columns) == TYPES
    # unnamed arrays of the same length are matched by position
    res = deconvolve(bulk.to_numpy(), sig.to_numpy())
    np.testing.assert_allclose(res.proportions.to_numpy(), props.to_numpy(), atol=1e-8)


def test_anndata_input_with_layer(data):
    anndata = pytest.importorskip("anndata")
    bulk, sig, props = data
    ad = anndata.AnnData(
        X=np.zeros(bulk.T.shape),
        obs=pd.DataFrame(index=bulk.columns),
        var=pd.DataFrame(index=bulk.index),
        layers={"tpm": bulk.T.to_numpy()},
    )
    res = deconvolve(ad, sig, layer="tpm")
    np.testing.assert_allclose(res.proportions.to_numpy(), props.to_numpy(), atol=1e-8)


def test_file_path_input(tmp_path, data):
    bulk, sig, props = data
    write_table(bulk, tmp_path / "bulk.tsv.gz", index_label="gene")
    write_table(sig, tmp_path / "sig.csv", index_label="gene")
    res = deconvolve(tmp_path / "bulk.tsv.gz", str(tmp_path / "sig.csv"))
    np.testing.assert_allclose(res.proportions.to_numpy(), props.to_numpy(), atol=1e-8)


def test_all_zero_sample_gives_nan_and_warning(data):
    bulk, sig, props = data
    bulk = bulk.copy()
    bulk["S5"] = 0.0
    with pytest.warns(UserWarning, match=r"1 sample\(s\) are zero.*'S5'"):
        res = deconvolve(bulk, sig, method="nnls")
    assert res.proportions.loc["S5"].isna().all()
    assert res.fit.loc["S5", ["r2", "pearson_r", "rmse"]].isna().all()
    assert not res.fit.loc["S5", "converged"]
    others = res.proportions.drop(index="S5")
    np.testing.assert_allclose(others.to_numpy(), props.drop(index="S5").to_numpy(), atol=1e-8)
    assert "all zero" in res.summary()


def test_sample_explained_by_background_only_gives_nan_and_warning(data):
    bulk, sig, _ = data
    bulk = bulk.copy()
    bulk["flat"] = 40.0  # constant: the background term explains it entirely
    with pytest.warns(UserWarning, match=r"explained by no cell type.*'flat'"):
        res = deconvolve(bulk, sig, method="nnls")
    assert res.proportions.loc["flat"].isna().all()
    assert res.fit.loc["flat", "background"] == pytest.approx(40.0)
    assert np.isnan(res.fit.loc["flat", "r2"])  # constant bulk: R^2 undefined


def test_log_scale_given_for_linear_values_is_refused(data):
    # 2**x of linear values overflows or is absurd: never a silent answer
    bulk, sig, _ = data
    for scale in ("log2", "log2p1", "log1p"):
        with pytest.raises(ValueError, match=r"looks linear already; pass scale='linear'"):
            deconvolve(bulk, sig, scale=scale)
    with pytest.raises(ValueError, match=r"pass signature_scale='linear'"):
        deconvolve(bulk, sig, signature_scale="log2")


def test_collinear_signature_warns_naming_types(data):
    bulk, sig, _ = data
    sig = sig.copy()
    sig["T cells 2"] = sig["T cells"] * 1.5 + 1e-6 * np.arange(len(sig))
    with pytest.warns(UserWarning, match=r"nearly collinear cell types.*'T cells'.*'T cells 2'|"
                      r"nearly collinear cell types.*'T cells 2'.*'T cells'"):
        deconvolve(bulk, sig, min_genes=10)


def test_unsettled_reweighting_is_not_reported_as_converged():
    bulk, sig, _ = make_data(seed=5, noise=0.3)
    with pytest.warns(ConvergenceWarning, match="before the Huber re-weighting settled"):
        res = deconvolve(bulk, sig, method="nnls", max_reweight=1, reweight_tol=0.0)
    assert not res.fit["converged"].any()
    assert (res.fit["n_reweight"] == 1).all()
    assert deconvolve(bulk, sig).fit["converged"].all()


def test_invalid_options(data):
    bulk, sig, _ = data
    with pytest.raises(ValueError, match="method must be one of"):
        deconvolve(bulk, sig, method="svr")
    with pytest.raises(ValueError, match="robust must be"):
        deconvolve(bulk, sig, robust="tukey")
    with pytest.raises(ValueError, match="max_reweight"):
        deconvolve(bulk, sig, max_reweight=-1)


# --- the result -----------------------------------------------------------------


def test_result_summary_and_frames(data, tmp_path):
    bulk, sig, _ = data
    res = deconvolve(bulk.iloc[10:], sig)
    assert isinstance(res, DeconvolutionResult)
    text = str(res)
    assert "12 sample(s) into 4 cell types" in text
    assert "190 of 200 signature genes found in the bulk; missing 10" in text
    assert "Mean proportions" in text and "Monocytes" in text
    assert list(res.fit.columns) == [
        "residual_norm", "rmse", "r2", "pearson_r", "converged", "total", "background",
        "n_iter", "n_reweight",
    ]
    frame = res.to_frame()
    assert list(frame.columns[:4]) == TYPES and frame.shape == (12, 13)
    res.write(tmp_path / "p.csv", fit_path=tmp_path / "fit.tsv")
    back = read_table(tmp_path / "p.csv")
    pd.testing.assert_frame_equal(back, res.proportions, check_names=False, rtol=1e-12)
    assert read_table(tmp_path / "fit.tsv").shape == (12, 9)
    assert res.gene_weights.shape == (190, 12)


def test_plots(data, tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    bulk, sig, _ = data
    res = deconvolve(bulk, sig)
    fig = res.plot_proportions(tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 0 and fig is not None
    res.plot_fit(tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 0


def test_progress_bar(capsys):
    bulk, sig, _ = make_data(n_samples=300, seed=9)
    deconvolve(bulk, sig, progress=True, robust=None)
    err = capsys.readouterr().err
    assert "300/300 samples" in err
    deconvolve(bulk, sig, robust=None)  # default: stderr is not a terminal here
    deconvolve(bulk, sig, progress=False, robust=None)
    assert capsys.readouterr().err == ""


def test_progress_bar_default_needs_a_terminal_and_more_than_4096_samples(monkeypatch):
    import io
    import sys

    from fastdeconv._progress import MIN_TOTAL, progress_bar

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    assert MIN_TOTAL == 4096
    monkeypatch.setattr(sys, "stderr", Terminal())
    with progress_bar(MIN_TOTAL) as small, progress_bar(MIN_TOTAL + 1) as large:
        assert small.disable and not large.disable
    assert f"0/{MIN_TOTAL + 1} samples" in sys.stderr.getvalue()
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal
    with progress_bar(MIN_TOTAL + 1) as bar:
        assert bar.disable


def test_module_is_callable_like_the_function(data):
    import fastdeconv.deconvolve as module

    bulk, sig, props = data
    res = module(bulk, sig)
    np.testing.assert_allclose(res.proportions.to_numpy(), props.to_numpy(), atol=1e-8)
    assert fastdeconv.deconvolve(bulk, sig).proportions.shape == props.shape


def test_to_cell_fractions_moved_to_fractions_with_a_warning():
    from fastdeconv.fractions import to_cell_fractions

    with pytest.warns(DeprecationWarning, match="use fastdeconv.fractions.to_cell_fractions"):
        from fastdeconv.deconvolve import to_cell_fractions as old
    assert old is to_cell_fractions


def test_no_warning_on_clean_input(data):
    bulk, sig, _ = data
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        deconvolve(bulk, sig)
