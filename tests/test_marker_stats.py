"""Tests of fastdeconv.marker_stats (t and likelihood-ratio tests, FDR) against SciPy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize, stats

from test_kernels_markers import _counts

from fastdeconv import marker_stats as mk


def _stats_inputs(seed):
    x, groups, k = _counts(seed)
    lx = np.log1p(x)
    s = np.column_stack([lx[:, groups == j].sum(axis=1) for j in range(k)])
    ss = np.column_stack([(lx[:, groups == j] ** 2).sum(axis=1) for j in range(k)])
    return x, lx, groups, k, s, ss, np.bincount(groups, minlength=k)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_welch_t_matches_scipy(seed):
    _, lx, groups, k, s, ss, n = _stats_inputs(seed)
    t, p, _ = mk.welch_t(s, ss, n)
    for j in range(k):
        ref = stats.ttest_ind(lx[:, groups == j], lx[:, groups != j], axis=1, equal_var=False)
        ok = np.isfinite(ref.statistic)
        np.testing.assert_allclose(t[ok, j], ref.statistic[ok], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(p[ok, j], ref.pvalue[ok], rtol=1e-9, atol=1e-14)
        # scipy gives nan for a gene that is 0 everywhere; we report no evidence
        assert np.all(t[~ok, j] == 0.0) and np.all(p[~ok, j] == 1.0)


def test_welch_t_no_spread_but_different_means_is_certain():
    # group: 3 cells all 2.0; rest: 3 cells all 0.0 -> infinite t, p = 0
    t, p, _ = mk.welch_t(np.array([[6.0, 0.0]]), np.array([[12.0, 0.0]]), np.array([3, 3]))
    assert np.isinf(t[0, 0]) and t[0, 0] > 0 and p[0, 0] == 0.0


def _naive_poisson_lrt(y, lib, mask):
    def loglik(rate_in, rate_out):
        mu = np.where(mask, rate_in, rate_out) * lib
        return stats.poisson.logpmf(y, mu).sum()

    r0 = y.sum() / lib.sum()
    r_in = y[mask].sum() / lib[mask].sum()
    r_out = y[~mask].sum() / lib[~mask].sum()
    return 2.0 * (loglik(r_in, r_out) - loglik(r0, r0))


def test_poisson_lrt_matches_naive_per_gene():
    x, groups, k = _counts(3)
    lib = x.sum(axis=0) + 1.0  # offsets need not equal the column sums
    y = np.column_stack([x[:, groups == j].sum(axis=1) for j in range(k)])
    lib_g = np.bincount(groups, weights=lib, minlength=k)
    g, p = mk.poisson_lrt(y, lib_g)
    for gene in range(1, 12):
        for j in range(k):
            ref = _naive_poisson_lrt(x[gene], lib, groups == j)
            assert g[gene, j] == pytest.approx(ref, rel=1e-8, abs=1e-8)
            assert p[gene, j] == pytest.approx(stats.chi2.sf(ref, 1), rel=1e-6, abs=1e-12)
    assert np.all(g[0] == 0.0) and np.all(p[0] == 1.0)


def test_poisson_rate_is_the_maximum_likelihood_estimate():
    rng = np.random.default_rng(4)
    lib = rng.uniform(500, 3000, 30)
    y = rng.poisson(lib * 0.002).astype(float)
    best = optimize.minimize_scalar(
        lambda r: -stats.poisson.logpmf(y, r * lib).sum(), bounds=(1e-5, 0.1), method="bounded",
        options={"xatol": 1e-12},
    )
    assert best.x == pytest.approx(y.sum() / lib.sum(), rel=1e-4)


def test_nb_dispersion_method_of_moments():
    x, groups, k = _counts(5)
    n = np.bincount(groups, minlength=k)
    cs = np.column_stack([x[:, groups == j].sum(axis=1) for j in range(k)])
    cq = np.column_stack([(x[:, groups == j] ** 2).sum(axis=1) for j in range(k)])
    phi = mk.nb_dispersion(cs, cq, n)
    for gene in range(1, 10):
        num = den = 0.0
        for j in range(k):
            v = x[gene, groups == j]
            m = v.mean()
            num += ((v - m) ** 2).sum() - v.size * m
            den += v.size * m * m
        assert phi[gene] == pytest.approx(max(num / den, 1e-8), rel=1e-10)


def test_nb_lrt_matches_naive_per_gene():
    x, groups, k = _counts(6)
    n = np.bincount(groups, minlength=k)
    cs = np.column_stack([x[:, groups == j].sum(axis=1) for j in range(k)])
    cq = np.column_stack([(x[:, groups == j] ** 2).sum(axis=1) for j in range(k)])
    g, p = mk.nb_lrt(cs, n, cq)
    theta = 1.0 / mk.nb_dispersion(cs, cq, n)
    for gene in range(1, 12):
        y, th = x[gene], theta[gene]

        def loglik(mu):
            return stats.nbinom.logpmf(y, th, th / (th + mu)).sum()

        for j in range(k):
            mask = groups == j
            alt = loglik(np.where(mask, y[mask].mean(), y[~mask].mean()))
            ref = 2.0 * (alt - loglik(np.full(y.size, y.mean())))
            assert g[gene, j] == pytest.approx(ref, rel=1e-7, abs=1e-7)
            assert p[gene, j] == pytest.approx(stats.chi2.sf(ref, 1), rel=1e-6, abs=1e-12)


def test_nb_mean_is_the_maximum_likelihood_estimate():
    rng = np.random.default_rng(7)
    y = rng.negative_binomial(3.0, 0.4, 40).astype(float)
    th = 3.0
    best = optimize.minimize_scalar(
        lambda mu: -stats.nbinom.logpmf(y, th, th / (th + mu)).sum(), bounds=(0.01, 50.0),
        method="bounded", options={"xatol": 1e-12},
    )
    assert best.x == pytest.approx(y.mean(), rel=1e-4)


def _handwritten_bh_fdr(pvalues, axis=0):
    """The Benjamini-Hochberg adjustment fastdeconv wrote by hand before it used SciPy's."""
    p = np.moveaxis(np.asarray(pvalues, dtype=np.float64), axis, -1)
    m = p.shape[-1]
    if m == 0:
        return np.moveaxis(p.copy(), -1, axis)
    order = np.argsort(p, axis=-1, kind="stable")
    ranked = np.take_along_axis(p, order, axis=-1) * m / np.arange(1, m + 1)
    ranked = np.minimum.accumulate(ranked[..., ::-1], axis=-1)[..., ::-1]
    out = np.empty_like(p)
    np.put_along_axis(out, order, np.minimum(ranked, 1.0), axis=-1)
    return np.moveaxis(out, -1, axis)


@settings(deadline=None)
@given(
    st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=1, max_size=60),
    st.integers(1, 3),
)
def test_bh_fdr_matches_scipy_and_the_former_implementation(pvals, n_cols):
    p = np.column_stack([np.roll(np.asarray(pvals), j) for j in range(n_cols)])
    q = mk.bh_fdr(p, axis=0)
    for j in range(n_cols):
        np.testing.assert_allclose(q[:, j], stats.false_discovery_control(p[:, j]), rtol=1e-12)
    np.testing.assert_allclose(mk.bh_fdr(p.T, axis=1), q.T, rtol=1e-12)
    np.testing.assert_allclose(q, _handwritten_bh_fdr(p, axis=0), rtol=1e-12, atol=0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bh_fdr_on_marker_pvalues_equals_the_former_implementation(seed):
    _, _, _, _, s, ss, n = _stats_inputs(seed)
    _, p, _ = mk.welch_t(s, ss, n)
    np.testing.assert_allclose(mk.bh_fdr(p, axis=0), _handwritten_bh_fdr(p, axis=0),
                               rtol=1e-12, atol=0)


def test_bh_fdr_empty():
    assert mk.bh_fdr(np.empty((0, 3)), axis=0).shape == (0, 3)


@pytest.mark.parametrize("axis", [0, 1])
def test_bh_fdr_leaves_nan_out_of_the_family(axis):
    # scipy refuses NaN; a NaN p-value stays NaN and the others are adjusted among
    # themselves (R's p.adjust).  The hand-written version made the whole slice NaN.
    p = np.array([[0.01, 0.2], [np.nan, 0.04], [0.03, 0.5], [0.02, np.nan]])
    p = p if axis == 0 else p.T
    q = mk.bh_fdr(p, axis=axis)
    assert np.array_equal(np.isnan(q), np.isnan(p))
    for j in range(2):
        col = p[:, j] if axis == 0 else p[j]
        got = q[:, j] if axis == 0 else q[j]
        ok = ~np.isnan(col)
        np.testing.assert_allclose(got[ok], stats.false_discovery_control(col[ok]), rtol=1e-12)
    assert np.isnan(mk.bh_fdr(np.array([np.nan, np.nan]))).all()
