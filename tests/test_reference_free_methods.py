"""The reference-free pipeline's methods, nulls, scales, restarts and stability (issue 14)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import rankdata

from fastdeconv.factorization import agreement
from fastdeconv.reference_free import (
    METHODS,
    _average_ranks,
    linseed,
    sinkhorn_scale,
)
from tests.test_reference_free import _match_r, _planted

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="module")
def planted():
    return _planted(seed=3)


def test_average_ranks_equal_scipy_rankdata():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n, m = rng.integers(1, 15), rng.integers(1, 12)
        G = rng.integers(0, 4, size=(n, m)).astype(float)  # many ties
        np.testing.assert_array_equal(_average_ranks(G), rankdata(G, axis=1))
    G = rng.random((500, 33))
    np.testing.assert_array_equal(_average_ranks(G), rankdata(G, axis=1))


def test_sinkhorn_scale_rows_columns_and_factors():
    rng = np.random.default_rng(1)
    G = rng.gamma(0.5, 10.0, size=(300, 12)) + 1e-3
    V, r, c, it, ok = sinkhorn_scale(G)
    assert ok
    np.testing.assert_allclose(V.sum(axis=1), 1.0, rtol=1e-10)
    np.testing.assert_allclose(V.sum(axis=0), 300 / 12, rtol=1e-10)
    np.testing.assert_allclose(V, r[:, None] * G * c[None, :], rtol=1e-10)
    assert it < 10000
    # the scaling of a matrix already scaled is the identity
    V2, r2, c2, _, _ = sinkhorn_scale(V)
    np.testing.assert_allclose(V2, V, rtol=1e-9)
    # bad input is refused, an unbalanceable zero pattern is reported
    for bad in (G * np.nan, -G, np.vstack([G, np.zeros(12)])):
        with pytest.raises(ValueError, match="G "):
            sinkhorn_scale(bad)
    Z = G.copy()
    Z[5:, 0] = 0.0  # sample 0 carried by 5 of 300 genes: it cannot take its share n / m
    assert not sinkhorn_scale(Z, max_iter=200)[4]


def test_agreement_matches_components_before_comparing():
    P = np.array([[0.1, 0.5, 0.9], [0.9, 0.5, 0.1]])
    assert agreement(P, [P[::-1]]) == 1.0
    assert agreement(P, [P + np.array([[0.02, 0, 0], [-0.02, 0, 0]])]) == 0.0
    assert agreement(P, []) == 1.0


@pytest.mark.parametrize("method", METHODS)
def test_every_method_recovers_planted_proportions(planted, method):
    bulk, truth, _ = planted
    res = linseed(bulk, 3, method=method, pvalue=0.05)
    P = res.proportions
    np.testing.assert_allclose(P.sum(axis=1), 1.0, atol=1e-12)
    assert (P.to_numpy() >= 0).all()
    r, rmse = _match_r(P, truth)
    assert r > 0.95, (method, r, rmse)
    assert res.info["method"] == method
    assert 0.0 <= res.info["stability"] <= 1.0
    assert res.signature.shape == (len(bulk), 3)
    assert set(res.markers) == set(P.columns)
    assert "method" in res.summary() or method in res.summary()


def test_sum_to_one_scale_sums_and_recovers(planted):
    bulk, truth, _ = planted
    res = linseed(bulk, 3, component_scale="sum_to_one", pvalue=0.05)
    np.testing.assert_allclose(res.proportions.sum(axis=1), 1.0, atol=1e-12)
    assert _match_r(res.proportions, truth)[0] > 0.95


def test_restarts_auto_stop_when_the_best_repeats(planted):
    bulk, _, _ = planted
    res = linseed(bulk, 3, n_restarts="auto", pvalue=0.05)
    funs = res.info["start_objectives"]
    assert len(funs) == res.info["n_starts"] >= 2
    best = funs.min()
    assert np.sum(np.abs(funs - best) <= 1e-6 * max(1.0, abs(best))) >= 2
    fixed = linseed(bulk, 3, n_restarts=3, pvalue=0.05)
    assert fixed.info["n_starts"] == 4


def test_same_answer_for_every_seed_with_the_defaults(planted):
    bulk, _, _ = planted
    ref = linseed(bulk, 3, seed=0, pvalue=0.05).proportions
    for seed in (1, 7):
        other = linseed(bulk, 3, seed=seed, pvalue=0.05).proportions
        assert np.abs(other.to_numpy() - ref.to_numpy()).max() <= 0.01


@pytest.mark.skipif(not (DATA / "abbas_GSE11058").is_dir(),
                    reason="../shared/data/abbas_GSE11058 is absent")
def test_gse11058_same_answer_for_seeds_0_to_9():
    """The issue's stability target on real data: seeds 0-9 agree to 0.01."""
    from fastdeconv.io import read_dataset

    mix = read_dataset(DATA / "abbas_GSE11058")["mixture"]
    runs = [linseed(mix, "auto", seed=s, progress=False) for s in range(10)]
    ref = runs[0].proportions.to_numpy()
    for res in runs[1:]:
        assert res.proportions.shape == runs[0].proportions.shape
        assert np.abs(res.proportions.to_numpy() - ref).max() <= 0.01
    assert runs[0].info["stability"] >= 0.5


def _given_r(name):
    from fastdeconv.io import read_dataset
    from fastdeconv.metrics import evaluate

    data = read_dataset(DATA / name)
    res = linseed(data["mixture"], "auto", progress=False)
    return evaluate(res.proportions, data["truth"].T, match="best").overall["pearson_r"]


@pytest.mark.skipif(not (DATA / "shenorr_GSE19830").is_dir(),
                    reason="../shared/data/shenorr_GSE19830 is absent")
def test_gse19830_at_least_the_r_package():
    """Issue 14: the defaults (automatic k) at least the R package's r (0.853) on GSE19830."""
    assert _given_r("shenorr_GSE19830") >= 0.853


@pytest.mark.skipif(not (DATA / "abbas_GSE11058").is_dir(),
                    reason="../shared/data/abbas_GSE11058 is absent")
@pytest.mark.xfail(strict=True, reason=(
    "issue 14 target not reached: 0.856 with the defaults against the R package's 0.914 on "
    "GSE11058 (0.895 with hinge_weight=10, which loses up to 0.09 on whole-transcriptome "
    "RNA mixes); settings that reach it there (sum_to_one with hinge_weight=1: 0.934) lose "
    "0.17 on count pseudo-bulk, and the reference-based NNLS with the measured pure "
    "profiles gives only 0.864 (docs/linseed.md, 'Beyond LinSeed')"))
def test_gse11058_at_least_the_r_package():
    assert _given_r("abbas_GSE11058") >= 0.914


@pytest.mark.parametrize("args", ["--method anchors", "--method dualsimplex --k-rule bcv",
                                  "--method nmf --restarts 2 --component-scale sum_to_one",
                                  "--null permutation --permutations 40 --pvalue 0.05"])
def test_command_line_runs_every_option(planted, tmp_path, capsys, args):
    from fastdeconv.cli import main

    bulk, truth, _ = planted
    path = tmp_path / "bulk.tsv"
    bulk.to_csv(path, sep="\t", index_label="gene")
    out = tmp_path / "p.tsv"
    assert main(["linseed", "--bulk", str(path), "--cell-types", "3", "--output", str(out),
                 *args.split()]) == 0
    P = pd.read_csv(out, sep="\t", index_col=0)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, atol=1e-9)
    assert _match_r(P, truth)[0] > 0.9
    assert "stability" in capsys.readouterr().out


def test_mdl_and_bcv_rules_pick_the_planted_k():
    bulk, _, _ = _planted(seed=21, k=3, n_samples=16)
    for rule in ("mdl", "bcv"):
        res = linseed(bulk, "auto", k_rule=rule, pvalue=0.05)
        assert res.n_types == 3, rule
        assert res.k_diagnostics.rule == rule
        assert res.k_diagnostics.rule_choice.k == 3


def test_plots_work_for_a_factorisation(planted, tmp_path):
    pytest.importorskip("matplotlib")
    bulk, _, _ = planted
    res = linseed(bulk, 3, method="nmf", pvalue=0.05)
    fig = res.plot(tmp_path / "nmf.png")
    assert (tmp_path / "nmf.png").stat().st_size > 0
    assert len(fig.axes) == 4


def test_ica_without_scikit_learn_names_the_remedy(planted, monkeypatch, tmp_path, capsys):
    """No scikit-learn: the error says what to install, or which method to use instead."""
    import builtins

    from fastdeconv.cli import main
    from fastdeconv.errors import InputProblem

    real_import = builtins.__import__

    def no_sklearn(name, *args, **kwargs):
        if name == "sklearn" or name.startswith("sklearn."):
            raise ImportError("No module named 'sklearn'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sklearn)
    bulk, _, _ = planted
    with pytest.raises(InputProblem, match=r"pip install fastdeconv\[ica\].*method='simplex'"):
        linseed(bulk, 3, method="ica", pvalue=0.05)
    path = tmp_path / "bulk.tsv"
    bulk.to_csv(path, sep="\t", index_label="gene")
    out = tmp_path / "p.tsv"
    assert main(["linseed", "--bulk", str(path), "--cell-types", "3", "--output", str(out),
                 "--method", "ica"]) == 1
    assert "--method simplex" in capsys.readouterr().err
    assert not out.exists()



def test_review_fixes_nmf_restarts_bcv_fixed_k_and_generator_seed(planted):
    """n_restarts=0 with NMF, BCV with too few samples, a fixed k, a Generator seed."""
    from fastdeconv.errors import InputProblem

    bulk, _, _ = planted
    res = linseed(bulk, 3, method="nmf", n_restarts=0, pvalue=0.05)
    assert res.info["n_starts"] == 1 and "not measured" in res.summary()
    assert res.info["k_rule"] is None and "k given" in res.summary()
    with pytest.raises(InputProblem, match="k_rule='spectrum'"):
        linseed(bulk.iloc[:, :3], "auto", k_rule="bcv", pvalue=0.05)
    for method in ("nmf", "ica"):
        linseed(bulk, 3, method=method, seed=np.random.default_rng(1), pvalue=0.05)


def test_corner_search_does_not_stop_on_a_spoilt_hessian():
    """The reviewer's case: BFGS used to stop at 10.04 with a gradient of 3.3 (optimum 4.51)."""
    from fastdeconv.kernels.corners import minimise_corners, simplex_objective

    rng = np.random.default_rng(3)
    for k in (4, 5, 6):
        A = rng.dirichlet(np.ones(k) * 0.5, 500)
        C = rng.normal(size=(k - 1, k))
        Y = A @ C.T + rng.normal(scale=0.03, size=(500, k - 1))
        Ya = np.ascontiguousarray(np.column_stack([Y, np.ones(500)]))
        x0 = np.ascontiguousarray((0.6 * C + 0.4 * C.mean(1, keepdims=True)).ravel()
                                  + 0.05 * rng.normal(size=(k - 1) * k))
    e0, e1 = np.zeros(0), np.zeros((0, 0))
    x, value, _, ok = minimise_corners(x0, Ya, 1000.0, e0, e1, 0.0, 1000, 1e-5, 2.2e-9)
    assert ok and value < 4.6
    assert np.abs(simplex_objective(x, Ya, 1000.0)[1]).max() < 1e-2
