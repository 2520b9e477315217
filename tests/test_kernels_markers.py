"""Tests of fastdeconv.kernels.markers against naive NumPy / SciPy versions."""

from __future__ import annotations

import numba
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize, stats

from fastdeconv.kernels import markers as mk


def _counts(seed=0, n_genes=40, n_cells=60, n_groups=3):
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, n_groups, n_cells)
    groups[:n_groups] = np.arange(n_groups)  # every group present
    mu = rng.gamma(0.6, 3.0, size=(n_genes, n_groups))[:, groups]
    lib = rng.uniform(0.5, 2.0, n_cells)
    x = rng.negative_binomial(2.0, 2.0 / (2.0 + mu * lib)).astype(np.float64)
    x[0] = 0.0  # an all-zero gene
    return x, groups.astype(np.int64), n_groups


def _naive_sums(x, groups, n_groups, scale):
    v = x * scale[None, :]
    lv = np.log1p(v)
    cols = []
    for arr in (x, x * x, v, lv, lv * lv, (x != 0).astype(float)):
        cols.append(np.column_stack([arr[:, groups == k].sum(axis=1) for k in range(n_groups)]))
    return cols


def _sums(acc):
    return [acc[:, :, j] for j in range(6)]


@pytest.mark.parametrize("layout", ["C", "F", "csr", "csc", "int64", "float32", "chunks"])
def test_group_sums_match_naive(layout):
    x, groups, k = _counts(1)
    scale = 1e6 / np.maximum(x.sum(axis=0), 1.0)
    expected = _naive_sums(x, groups, k, scale)
    if layout == "C":
        acc, n = mk.group_sums_dense(np.ascontiguousarray(x), True, groups, k, scale, 0, x.shape[0])
    elif layout == "F":
        xt = np.asfortranarray(x).T
        acc, n = mk.group_sums_dense(xt, False, groups, k, scale, 0, xt.shape[0])
    elif layout in ("int64", "float32"):
        xd = x.astype(layout)
        acc, n = mk.group_sums_dense(xd, True, groups, k, scale, 0, x.shape[0])
    elif layout == "chunks":
        a1, n1 = mk.group_sums_dense(x, True, groups, k, scale, 0, 17)
        a2, n2 = mk.group_sums_dense(x, True, groups, k, scale, 17, x.shape[0])
        acc, n = a1 + a2, n1 + n2
    else:
        m = sp.csr_array(x) if layout == "csr" else sp.csc_array(x)
        acc, n = mk.group_sums_sparse(
            m.indptr, m.indices, m.data, x.shape[0], layout == "csr", groups, k, scale,
            0, m.indptr.size - 1,
        )
    assert n == np.count_nonzero(x)
    for got, want in zip(_sums(acc), expected):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-9)


def test_sparse_duplicate_entries_are_summed():
    # (0, 0) stored twice: scipy sums duplicates, so must the kernel (except nnz)
    m = sp.csr_array((np.array([1.0, 2.0, 5.0]), np.array([0, 0, 1]), np.array([0, 2, 3])), (2, 2))
    acc, _ = mk.group_sums_sparse(
        m.indptr, m.indices, m.data, 2, True, np.array([0, 1]), 2, np.ones(2), 0, 2
    )
    np.testing.assert_array_equal(acc[:, :, 0], m.toarray())


def test_kernel_callable_from_user_numba_code():
    x, groups, k = _counts(2)
    m = sp.csc_array(x)
    scale = np.ones(x.shape[1])

    @numba.njit
    def user(indptr, indices, data):
        acc, n = mk.group_sums_sparse(indptr, indices, data, 40, False, groups, k, scale, 0, 60)
        return acc[:, :, 0].sum(), n

    total, n = user(m.indptr, m.indices, m.data)
    assert total == pytest.approx(x.sum())
    assert n == m.nnz


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


@settings(deadline=None)
@given(
    st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=1, max_size=60),
    st.integers(1, 3),
)
def test_bh_fdr_matches_scipy(pvals, n_cols):
    p = np.column_stack([np.roll(np.asarray(pvals), j) for j in range(n_cols)])
    q = mk.bh_fdr(p, axis=0)
    for j in range(n_cols):
        np.testing.assert_allclose(q[:, j], stats.false_discovery_control(p[:, j]), rtol=1e-12)
    np.testing.assert_allclose(mk.bh_fdr(p.T, axis=1), q.T, rtol=1e-12)


def test_bh_fdr_empty():
    assert mk.bh_fdr(np.empty((0, 3)), axis=0).shape == (0, 3)


@settings(deadline=None, max_examples=40)
@given(
    st.integers(1, 12),
    st.integers(1, 15),
    st.integers(1, 4),
    st.floats(0.05, 1.0),
    st.integers(0, 2**32 - 1),
)
def test_group_sums_property_all_layouts(n_genes, n_cells, n_groups, density, seed):
    rng = np.random.default_rng(seed)
    x = rng.poisson(3.0, size=(n_genes, n_cells)) * (rng.random((n_genes, n_cells)) < density)
    x = x.astype(np.float64)
    groups = rng.integers(0, n_groups, n_cells).astype(np.int64)
    scale = rng.uniform(0.5, 2.0, n_cells)
    expected = _naive_sums(x, groups, n_groups, scale)
    csr, csc = sp.csr_array(x), sp.csc_array(x)
    results = [
        mk.group_sums_dense(x, True, groups, n_groups, scale, 0, n_genes)[0],
        mk.group_sums_dense(np.ascontiguousarray(x.T), False, groups, n_groups, scale, 0, n_cells)[0],
        mk.group_sums_sparse(csr.indptr, csr.indices, csr.data, n_genes, True, groups, n_groups,
                             scale, 0, n_genes)[0],
        mk.group_sums_sparse(csc.indptr, csc.indices, csc.data, n_genes, False, groups, n_groups,
                             scale, 0, n_cells)[0],
    ]
    for acc in results:
        for got, want in zip(_sums(acc), expected):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
