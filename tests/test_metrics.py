"""Tests of fastdeconv.metrics against naive numpy/scipy computations."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats

from fastdeconv.metrics import bias, ccc, evaluate, pearson_r, rmse


def _naive_ccc(x, y):
    """Lin (1989), eq. 2, written out with population moments."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    sxy = np.sum((x - x.mean()) * (y - y.mean())) / len(x)
    return 2 * sxy / (x.var() + y.var() + (x.mean() - y.mean()) ** 2)


def _frames(seed=0, n=25, k=4, noise=0.05):
    rng = np.random.default_rng(seed)
    types = [f"T{i}" for i in range(k)]
    samples = [f"s{i}" for i in range(n)]
    truth = pd.DataFrame(rng.dirichlet(np.ones(k), size=n), index=samples, columns=types)
    est = (truth + rng.normal(0, noise, size=truth.shape)).clip(lower=0)
    return est, truth


finite = st.floats(-1e3, 1e3, allow_nan=False)


@given(arrays(np.float64, st.integers(3, 30), elements=finite), st.integers(0, 10_000))
def test_single_metrics_match_scipy_numpy(x, seed):
    y = x * 0.5 + np.random.default_rng(seed).normal(0, 1, size=x.size)
    if np.ptp(x) > 1e-3 and np.ptp(y) > 1e-3:  # well-conditioned: compare to 1e-9
        assert pearson_r(x, y) == pytest.approx(stats.pearsonr(x, y)[0], abs=1e-9)
        assert ccc(x, y) == pytest.approx(_naive_ccc(x, y), abs=1e-9)
    assert rmse(x, y) == pytest.approx(np.sqrt(np.mean((x - y) ** 2)), rel=1e-12)
    assert bias(x, y) == pytest.approx(np.mean(x) - np.mean(y), abs=1e-9)


def test_metric_edge_cases():
    assert np.isnan(pearson_r([1.0, 1.0, 1.0], [0.1, 0.2, 0.3]))
    assert ccc([0.2, 0.2], [0.2, 0.2]) == 1.0
    assert ccc([0.2, 0.2], [0.4, 0.4]) == 0.0
    assert ccc([0.1, 0.5, 0.9], [0.1, 0.5, 0.9]) == pytest.approx(1.0)
    # perfect correlation with a scale error: r = 1 but CCC < 1
    assert pearson_r([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert ccc([1, 2, 3], [2, 4, 6]) < 0.7
    with pytest.raises(ValueError, match="same number"):
        rmse([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="empty"):
        bias([], [])


def test_evaluate_matches_naive_computation():
    est, truth = _frames(seed=1)
    ev = evaluate(est, truth)
    e, t = est.to_numpy(), truth.to_numpy()
    assert ev.overall["pearson_r"] == pytest.approx(
        stats.pearsonr(e.ravel(), t.ravel())[0], abs=1e-12
    )
    assert ev.overall["rmse"] == pytest.approx(np.sqrt(np.mean((e - t) ** 2)), rel=1e-12)
    assert ev.overall["ccc"] == pytest.approx(_naive_ccc(e.ravel(), t.ravel()), abs=1e-12)
    assert ev.overall["bias"] == pytest.approx(np.mean(e - t), abs=1e-15)
    assert ev.overall["n"] == e.size
    for j, name in enumerate(truth.columns):
        row = ev.per_type.loc[name]
        assert row["pearson_r"] == pytest.approx(stats.pearsonr(e[:, j], t[:, j])[0], abs=1e-12)
        assert row["rmse"] == pytest.approx(np.sqrt(np.mean((e[:, j] - t[:, j]) ** 2)), rel=1e-12)
        assert row["ccc"] == pytest.approx(_naive_ccc(e[:, j], t[:, j]), abs=1e-12)
        assert row["bias"] == pytest.approx(np.mean(e[:, j] - t[:, j]), abs=1e-15)
        assert row["mean_truth"] == pytest.approx(t[:, j].mean())
    for i, s in enumerate(truth.index):
        assert ev.per_sample.loc[s, "rmse"] == pytest.approx(np.sqrt(np.mean((e[i] - t[i]) ** 2)))
    assert ev.notes == []


def test_evaluate_aligns_names_and_samples():
    est, truth = _frames(seed=2)
    shuffled = est.iloc[::-1, ::-1]
    a, b = evaluate(est, truth), evaluate(shuffled, truth)
    assert a.overall == pytest.approx(b.overall)
    pd.testing.assert_frame_equal(a.per_type, b.per_type.loc[a.per_type.index])


def test_evaluate_notes_unmatched_types_and_samples():
    est, truth = _frames(seed=3)
    est = est.rename(columns={"T3": "Extra"}).iloc[:20]
    ev = evaluate(est, truth, samples="common")
    assert list(ev.per_type.index) == ["T0", "T1", "T2"]
    assert ev.unmatched_estimate == ["Extra"] and ev.unmatched_truth == ["T3"]
    text = " ".join(ev.notes)
    assert "Extra" in text and "T3" in text and "20 common samples" in text
    assert "note:" in ev.summary()


def test_evaluate_renormalize():
    est, truth = _frames(seed=4, k=5)
    sub = truth[["T0", "T1"]]
    sub = sub.div(sub.sum(axis=1), axis=0)
    ev = evaluate(est, sub, renormalize=True)
    np.testing.assert_allclose(ev.estimate.sum(axis=1), 1.0)
    plain = evaluate(est, sub)
    assert plain.overall["rmse"] != pytest.approx(ev.overall["rmse"])


def test_evaluate_best_matching_recovers_permutation():
    est, truth = _frames(seed=5, k=5, noise=0.02)
    perm = [3, 0, 4, 1, 2]
    comps = est.iloc[:, perm].copy()
    comps.columns = [f"component_{i + 1}" for i in range(5)]
    ev = evaluate(comps, truth, match="best")
    expected = {f"component_{i + 1}": truth.columns[p] for i, p in enumerate(perm)}
    assert ev.matching == {k: expected[k] for k in ev.matching}
    assert len(ev.matching) == 5
    named = evaluate(est, truth)
    assert ev.overall == pytest.approx(named.overall)


def test_best_matching_is_optimal_by_brute_force():
    rng = np.random.default_rng(6)
    truth = pd.DataFrame(rng.dirichlet(np.ones(4), size=12), columns=list("abcd"))
    est = pd.DataFrame(rng.dirichlet(np.ones(5), size=12), columns=[f"c{i}" for i in range(5)])
    ev = evaluate(est, truth, match="best")
    corr = np.array([[stats.pearsonr(est[c], truth[t])[0] for t in truth] for c in est])
    best = max(
        sum(corr[r, c] for c, r in enumerate(rows)) for rows in itertools.permutations(range(5), 4)
    )
    got = sum(
        corr[list(est.columns).index(c), list(truth.columns).index(t)]
        for c, t in ev.matching.items()
    )
    assert got == pytest.approx(best)
    assert len(ev.unmatched_estimate) == 1
    assert "more components" in " ".join(ev.notes)


def test_constant_truth_type_gives_nan_r_with_note():
    est, truth = _frames(seed=7)
    truth["T0"] = 0.0
    ev = evaluate(est, truth)
    assert np.isnan(ev.per_type.loc["T0", "pearson_r"])
    assert np.isfinite(ev.per_type.loc["T0", "rmse"])
    assert any("undefined" in n for n in ev.notes)


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda e, t: (e.add_prefix("x"), t), "share no cell type names"),
        (lambda e, t: (e, t.T), "transposed"),
        (lambda e, t: (e.set_axis([f"z{i}" for i in range(len(e))]), t), "share no sample ids"),
        (lambda e, t: (e.where(e > 0.9), t), "NaN"),
        (lambda e, t: (e.iloc[:0], t), "empty"),
        (lambda e, t: (e.assign(T1=["a"] * len(e)), t), "non-numeric"),
        (lambda e, t: (pd.concat([e, e.iloc[:1]]), t), "duplicated sample"),
        (lambda e, t: (np.ones(5), t), "2-D"),
    ],
)
def test_evaluate_rejects_bad_input(change, match):
    est, truth = _frames(seed=8)
    e, t = change(est, truth)
    with pytest.raises(ValueError, match=match):
        evaluate(e, t)


def test_evaluate_bad_match_and_result_objects():
    est, truth = _frames(seed=9)
    with pytest.raises(ValueError, match="match must be"):
        evaluate(est, truth, match="hungarian")

    class Result:
        proportions = est

    assert evaluate(Result(), truth).overall == pytest.approx(evaluate(est, truth).overall)


def test_summary_and_to_frame():
    est, truth = _frames(seed=10)
    ev = evaluate(est, truth)
    frame = ev.to_frame()
    assert list(frame.index) == list(truth.columns) + ["overall"]
    assert frame.loc["overall", "rmse"] == pytest.approx(ev.overall["rmse"])
    text = str(ev)
    assert text.splitlines()[0] == "Evaluation of 25 samples x 4 cell types"
    assert "overall" in text and "ccc" in text
