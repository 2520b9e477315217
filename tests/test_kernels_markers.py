"""Tests of the group-sum kernels of fastdeconv.kernels.markers against naive NumPy."""

from __future__ import annotations

import numba
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

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


@pytest.mark.parametrize("name", ["welch_t", "poisson_lrt", "nb_dispersion", "nb_lrt", "bh_fdr"])
def test_statistics_moved_to_marker_stats_with_a_deprecation_warning(name):
    from fastdeconv import marker_stats

    with pytest.warns(DeprecationWarning, match=f"use fastdeconv.marker_stats.{name}"):
        old = getattr(mk, name)
    assert old is getattr(marker_stats, name)
    with pytest.raises(AttributeError):
        mk.no_such_statistic  # noqa: B018
