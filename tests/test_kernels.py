"""Kernel-level tests against naive NumPy versions: Cholesky updates, the
active-set engine's diagnostics, and the Numba-callable single-sample kernels."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize
from hypothesis import given
from hypothesis import strategies as st

from fastdeconv._jit import jit
from fastdeconv.kernels import nnls_gram_kernel, project_simplex_kernel, simplex_gram_kernel
from fastdeconv.kernels import _active_set, _linalg
from fastdeconv._parallel import resolve_n_jobs
from fastdeconv.solvers._batch import chunk_size
from reference import kkt_violation, naive_project_simplex


# The helpers have no Python entry point (fastdeconv._jit.jit_helper): call them
# from compiled functions, as the kernels do.
@jit(cache=False)
def chol_add(L, p, Q, P, j):
    return _linalg.chol_add(L, p, Q, P, j)


@jit(cache=False)
def chol_remove(L, p, P, q):
    return _linalg.chol_remove(L, p, P, q)


@jit(cache=False)
def chol_solve(L, p, rhs, out):
    _linalg.chol_solve(L, p, rhs, out)


@jit(cache=False)
def initial_factor(Q):
    return _active_set.initial_factor(Q)


@given(st.integers(0, 2**32 - 1), st.integers(1, 15))
def test_cholesky_add_and_remove_match_numpy(seed, k):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((k + 5, k))
    Q = A.T @ A
    L = np.zeros((k, k))
    P = np.zeros(k, dtype=np.int64)
    p = 0
    free = []
    for j in rng.permutation(k):
        assert chol_add(L, p, Q, P, j)
        p += 1
        free.append(j)
        if p > 1 and rng.random() < 0.4:
            q = int(rng.integers(p))
            p = chol_remove(L, p, P, q)
            free.pop(q)
        assert list(P[:p]) == free
        Lp = L[:p, :p]
        np.testing.assert_allclose(np.triu(Lp, 1), 0, atol=0)
        assert (np.diag(Lp) > 0).all()
        sub = Q[np.ix_(free, free)]
        np.testing.assert_allclose(Lp @ Lp.T, sub, atol=1e-10 * np.abs(Q).max())
        rhs = rng.standard_normal(p)
        out = np.zeros(k)
        chol_solve(L, p, np.r_[rhs, np.zeros(k - p)], out)
        np.testing.assert_allclose(sub @ out[:p], rhs, atol=1e-8 * np.linalg.cond(sub))


def test_dependent_columns_are_refused():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((10, 3))
    A = np.column_stack([A, A[:, 0] - 2 * A[:, 2], np.zeros(10)])
    L0, P0, p0 = initial_factor(A.T @ A)
    assert p0 == 3 and list(P0[:3]) == [0, 1, 2]


@given(st.integers(0, 2**32 - 1), st.integers(1, 25), st.integers(1, 10))
def test_single_sample_kernels_solve_the_problem(seed, n, k):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, k))
    b = rng.standard_normal(n)
    x, n_iter, status = nnls_gram_kernel(A.T @ A, A.T @ b)
    assert status == 0 and n_iter >= 0
    assert kkt_violation(A, b, x) < 1e-9
    xs, _ = scipy.optimize.nnls(A, b)
    assert np.sum((A @ x - b) ** 2) <= np.sum((A @ xs - b) ** 2) + 1e-9 * max(1, b @ b)
    y, _, status = simplex_gram_kernel(A.T @ A, A.T @ b)
    assert status == 0 and abs(y.sum() - 1) < 1e-14
    assert kkt_violation(A, b, y, simplex=True) < 1e-9


def test_kernel_reports_non_finite_and_cap():
    Q = np.eye(3)
    _, _, status = nnls_gram_kernel(Q, np.array([1.0, np.nan, 0.0]))
    assert status == 2
    rng = np.random.default_rng(1)
    A = rng.standard_normal((40, 30))
    b = rng.standard_normal(40)
    _, n_iter, status = nnls_gram_kernel(A.T @ A, A.T @ b, 1)
    assert status == 1 and n_iter >= 1


@given(st.integers(0, 2**32 - 1), st.integers(1, 20))
def test_projection_kernel_matches_naive(seed, k):
    v = np.random.default_rng(seed).uniform(-5, 5, k)
    np.testing.assert_allclose(project_simplex_kernel(v, 1.0), naive_project_simplex(v), atol=1e-9)


def test_chunking_and_jobs():
    assert chunk_size(5000, 100000) == 419  # 16 MiB of float64 columns of 5000 genes
    assert chunk_size(10, 10) == 16  # never below MIN_CHUNK
    assert chunk_size(10, 800) == 100  # at least MIN_CHUNKS chunks when there are enough samples
    assert resolve_n_jobs(-1) >= 1
    with pytest.raises(TypeError):
        resolve_n_jobs(1.5)
