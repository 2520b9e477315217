"""Tests of the core solvers against exact oracles (cvxpy + Clarabel, scipy), KKT
conditions, planted solutions and degenerate inputs."""

from __future__ import annotations

import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import scipy.optimize
from hypothesis import given
from hypothesis import strategies as st

import fastdeconv
from fastdeconv import ConvergenceWarning, SolveInfo
from reference import cvxpy_lstsq, kkt_violation, naive_project_simplex, objective

KKT_TOL = 1e-9


def make_problem(seed, n, k, kind):
    """A random problem; ``kind`` plants a degeneracy."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, k))
    if kind == "positive":  # expression-like: positive, correlated columns
        A = rng.lognormal(1.0, 1.0, (n, k))
    elif kind == "duplicate" and k >= 2:
        A[:, -1] = A[:, 0]
    elif kind == "collinear" and k >= 3:
        A[:, 2] = A[:, 0] + 0.5 * A[:, 1]
    elif kind == "zero_col":
        A[:, 0] = 0.0
    b = rng.standard_normal(n)
    if kind == "positive":
        b = A @ rng.dirichlet(np.ones(k)) * rng.lognormal(0, 0.3) + 0.1 * rng.standard_normal(n)
    return A, b


problems = st.tuples(
    st.integers(0, 2**32 - 1),
    st.integers(1, 40),
    st.integers(1, 12),
    st.sampled_from(["gaussian", "positive", "duplicate", "collinear", "zero_col"]),
)


def unique_solution(A):
    s = np.linalg.svd(A, compute_uv=False)
    return A.shape[0] >= A.shape[1] and s[-1] > 1e-6 * s[0]


# ---------------------------------------------------------------- oracles


@given(problems)
def test_nnls_matches_scipy_and_cvxpy(spec):
    A, b = make_problem(*spec)
    x, info = fastdeconv.nnls(A, b, return_info=True)
    assert bool(info.converged)
    assert (x >= 0).all()
    assert kkt_violation(A, b, x) < KKT_TOL
    f = objective(A, b, x)
    xs, _ = scipy.optimize.nnls(A, b)
    xc, fc = cvxpy_lstsq(A, b, constraint="nonneg")
    tol = 1e-9 * max(1.0, b @ b)
    assert f <= objective(A, b, xs) + tol
    assert f <= fc + tol
    assert float(info.residual_norm) == pytest.approx(np.sqrt(f), rel=1e-9, abs=1e-12)
    if unique_solution(A):
        np.testing.assert_allclose(x, xs, atol=1e-7 * max(1.0, np.abs(xs).max()))


@given(problems)
def test_simplex_matches_cvxpy(spec):
    A, b = make_problem(*spec)
    x, info = fastdeconv.simplex_lstsq(A, b, return_info=True)
    assert bool(info.converged)
    assert (x >= 0).all()
    assert abs(x.sum() - 1.0) < 1e-14
    assert kkt_violation(A, b, x, simplex=True) < KKT_TOL
    xc, fc = cvxpy_lstsq(A, b, constraint="eq")
    assert objective(A, b, x) <= fc + 1e-9 * max(1.0, b @ b)
    if unique_solution(A):
        np.testing.assert_allclose(x, xc, atol=1e-6)


@given(problems)
def test_simplex_le_matches_cvxpy(spec):
    A, b = make_problem(*spec)
    x = fastdeconv.simplex_lstsq(A, b, constraint="le")
    assert (x >= 0).all() and x.sum() <= 1.0 + 1e-14
    _, fc = cvxpy_lstsq(A, b, constraint="le")
    assert objective(A, b, x) <= fc + 1e-9 * max(1.0, b @ b)


@given(problems, st.integers(0, 2**32 - 1))
def test_weighted_matches_cvxpy(spec, wseed):
    A, b = make_problem(*spec)
    w = np.random.default_rng(wseed).uniform(0.0, 3.0, A.shape[0])
    w[0] = 1.0  # never all zero
    x = fastdeconv.nnls(A, b, weights=w)
    _, fc = cvxpy_lstsq(A, b, constraint="nonneg", w=w)
    assert objective(A, b, x, w) <= fc + 1e-9 * max(1.0, b @ (w * b))
    assert kkt_violation(A, b, x, w=w) < KKT_TOL
    y = fastdeconv.simplex_lstsq(A, b, weights=w)
    _, gc = cvxpy_lstsq(A, b, constraint="eq", w=w)
    assert objective(A, b, y, w) <= gc + 1e-9 * max(1.0, b @ (w * b))


def test_weights_equal_row_scaling():
    rng = np.random.default_rng(7)
    A = rng.lognormal(size=(50, 5))
    B = rng.lognormal(size=(50, 8))
    w = rng.uniform(0.1, 2, 50)
    s = np.sqrt(w)
    np.testing.assert_allclose(
        fastdeconv.nnls(A, B, weights=w), fastdeconv.nnls(A * s[:, None], B * s[:, None]), atol=1e-12
    )
    np.testing.assert_allclose(
        fastdeconv.simplex_lstsq(A, B, weights=w),
        fastdeconv.simplex_lstsq(A * s[:, None], B * s[:, None]),
        atol=1e-12,
    )


# ---------------------------------------------------------------- planted solutions


@pytest.mark.parametrize("seed", range(5))
def test_planted_sparse_nnls_recovered(seed):
    rng = np.random.default_rng(seed)
    A = rng.lognormal(0, 1, (300, 20))
    x_true = np.where(rng.random(20) < 0.5, rng.uniform(0.1, 5, 20), 0.0)
    B = np.column_stack([A @ x_true, A @ (2 * x_true)])
    X = fastdeconv.nnls(A, B)
    np.testing.assert_allclose(X[:, 0], x_true, atol=1e-10)
    np.testing.assert_allclose(X[:, 1], 2 * x_true, atol=1e-10)


@pytest.mark.parametrize("seed", range(5))
def test_planted_simplex_recovered(seed):
    rng = np.random.default_rng(seed)
    A = rng.lognormal(0, 1, (300, 15))
    x_true = rng.dirichlet(np.full(15, 0.3))
    x_true[x_true < 0.02] = 0
    x_true /= x_true.sum()
    x = fastdeconv.simplex_lstsq(A, A @ x_true)
    np.testing.assert_allclose(x, x_true, atol=1e-10)


# ---------------------------------------------------------------- degenerate inputs


def test_duplicated_columns_share_the_optimum():
    rng = np.random.default_rng(1)
    A = rng.lognormal(size=(40, 4))
    A = np.column_stack([A, A[:, 1]])
    b = A[:, :4] @ np.array([0.1, 0.4, 0.3, 0.2])
    x = fastdeconv.simplex_lstsq(A, b)
    assert x[1] + x[4] == pytest.approx(0.4, abs=1e-10)
    np.testing.assert_allclose(x[[0, 2, 3]], [0.1, 0.3, 0.2], atol=1e-10)
    y = fastdeconv.nnls(A, b)
    assert objective(A, b, y) < 1e-20 * (b @ b)


def test_zero_column():
    rng = np.random.default_rng(2)
    A = rng.lognormal(size=(30, 4))
    A[:, 2] = 0
    b = 0.3 * A @ np.array([0.2, 0.5, 0.0, 0.3]) + 0.01 * rng.lognormal(size=30)
    assert fastdeconv.nnls(A, b)[2] == 0
    # On the simplex a zero column acts as the slack of "sum <= 1" for the others.
    x = fastdeconv.simplex_lstsq(A, b)
    others = fastdeconv.simplex_lstsq(A[:, [0, 1, 3]], b, constraint="le")
    np.testing.assert_allclose(x[[0, 1, 3]], others, atol=1e-12)
    assert x[2] == pytest.approx(1 - others.sum(), abs=1e-12)


def test_more_types_than_genes():
    rng = np.random.default_rng(3)
    A = rng.lognormal(size=(5, 12))
    b = A @ rng.dirichlet(np.ones(12))
    x, info = fastdeconv.simplex_lstsq(A, b, return_info=True)
    assert bool(info.converged) and abs(x.sum() - 1) < 1e-14
    assert float(info.residual_norm) < 1e-9 * np.linalg.norm(b)
    y, info = fastdeconv.nnls(A, b, return_info=True)
    assert float(info.residual_norm) < 1e-9 * np.linalg.norm(b)


def test_all_zero_sample():
    rng = np.random.default_rng(4)
    A = rng.lognormal(size=(30, 4))
    B = np.column_stack([np.zeros(30), A @ np.full(4, 0.25)])
    X, info = fastdeconv.nnls(A, B, return_info=True)
    assert (X[:, 0] == 0).all() and info.converged.all()
    Y = fastdeconv.simplex_lstsq(A, B)
    assert Y[:, 0].sum() == pytest.approx(1.0)
    assert kkt_violation(A, B[:, 0], Y[:, 0], simplex=True) < KKT_TOL


@pytest.mark.parametrize("scale", [1e-8, 1e8])
def test_extreme_scales(scale):
    rng = np.random.default_rng(5)
    A = rng.lognormal(size=(100, 6))
    b = A @ np.array([0.5, 0.0, 0.2, 0.3, 0.0, 0.0]) + 0.01 * rng.standard_normal(100)
    x0 = fastdeconv.nnls(A, b)
    np.testing.assert_allclose(fastdeconv.nnls(A * scale, b * scale), x0, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(fastdeconv.nnls(A, b * scale), x0 * scale, rtol=1e-9, atol=1e-12 * scale)
    s0 = fastdeconv.simplex_lstsq(A, b)
    np.testing.assert_allclose(fastdeconv.simplex_lstsq(A * scale, b * scale), s0, atol=1e-10)


def test_float32_fortran_and_readonly_inputs():
    rng = np.random.default_rng(6)
    A = rng.lognormal(size=(200, 7))
    B = rng.lognormal(size=(200, 50))
    expected = fastdeconv.nnls(A, B)
    A32, B32 = A.astype(np.float32), B.astype(np.float32)
    np.testing.assert_allclose(
        fastdeconv.nnls(A32, B32), fastdeconv.nnls(A32.astype(float), B32.astype(float)), atol=1e-12
    )
    BF = np.asfortranarray(B)
    AF = np.asfortranarray(A)
    np.testing.assert_allclose(fastdeconv.nnls(AF, BF), expected, atol=1e-12)
    Bro = B.copy()
    Bro.flags.writeable = False
    np.testing.assert_allclose(fastdeconv.nnls(A, Bro), expected, atol=1e-12)
    np.testing.assert_allclose(fastdeconv.nnls(A, B[:, ::2]), expected[:, ::2], atol=1e-12)
    np.testing.assert_allclose(fastdeconv.nnls(A, B.astype(np.int64)), fastdeconv.nnls(A, B.astype(np.int64).astype(float)))


# ---------------------------------------------------------------- batching and threads


def test_batch_equals_per_sample_and_chunks():
    rng = np.random.default_rng(8)
    A = rng.lognormal(size=(60, 9))
    B = A @ rng.dirichlet(np.ones(9), 3000).T + 0.05 * rng.standard_normal((60, 3000))
    for solve in (fastdeconv.nnls, fastdeconv.simplex_lstsq):
        X1 = solve(A, B, n_jobs=1)
        X2 = solve(A, B, n_jobs=2)
        np.testing.assert_array_equal(X1, X2)
        for j in (0, 17, 1023, 2999):
            np.testing.assert_allclose(solve(A, B[:, j]), X1[:, j], atol=1e-13)


def test_results_do_not_depend_on_n_jobs():
    rng = np.random.default_rng(16)
    A = rng.lognormal(size=(500, 20))
    B = A @ rng.dirichlet(np.ones(20), 3001).T * rng.lognormal(0, 0.1, (500, 3001))
    for solve in (fastdeconv.nnls, fastdeconv.simplex_lstsq):
        ref = solve(A, B, n_jobs=1)
        for n_jobs in (2, 3, 7):
            np.testing.assert_array_equal(solve(A, B, n_jobs=n_jobs), ref)


def test_residuals_and_info_shapes():
    rng = np.random.default_rng(9)
    A = rng.lognormal(size=(40, 5))
    B = rng.lognormal(size=(40, 30))
    w = rng.uniform(0.5, 2, 40)
    X, info = fastdeconv.simplex_lstsq(A, B, weights=w, return_info=True)
    assert isinstance(info, SolveInfo)
    assert info.residual_norm.shape == info.n_iter.shape == info.converged.shape == (30,)
    expected = np.linalg.norm(np.sqrt(w)[:, None] * (A @ X - B), axis=0)
    np.testing.assert_allclose(info.residual_norm, expected, rtol=1e-12)


def test_thread_safety_from_a_thread_pool():
    from threadpoolctl import threadpool_info

    before = [(d["prefix"], d["num_threads"]) for d in threadpool_info()]
    rng = np.random.default_rng(10)
    A = rng.lognormal(size=(300, 8))
    Bs = [rng.lognormal(size=(300, 400)) for _ in range(8)]
    serial = [fastdeconv.simplex_lstsq(A, B, n_jobs=1) for B in Bs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        parallel = list(pool.map(lambda B: fastdeconv.simplex_lstsq(A, B, n_jobs=2), Bs))
    for a, b in zip(serial, parallel):
        np.testing.assert_array_equal(a, b)
    after = [(d["prefix"], d["num_threads"]) for d in threadpool_info()]
    assert before == after, "the BLAS thread setting must be restored"
    assert threading.active_count() < 50


def test_kernels_callable_from_user_numba_code():
    import numba

    from fastdeconv.kernels import nnls_gram_kernel, simplex_gram_kernel

    @numba.njit(parallel=True)
    def solve_all(Q, C):
        m, k = C.shape
        out = np.empty((m, k))
        out2 = np.empty((m, k))
        for s in numba.prange(m):
            x, _, _ = nnls_gram_kernel(Q, C[s], -1, 1e-11)
            y, _, _ = simplex_gram_kernel(Q, C[s], -1, 1e-11)
            out[s] = x
            out2[s] = y
        return out, out2

    rng = np.random.default_rng(11)
    A = rng.lognormal(size=(80, 6))
    B = rng.lognormal(size=(80, 64))
    X, Y = solve_all(A.T @ A, np.ascontiguousarray((A.T @ B).T))
    np.testing.assert_allclose(X.T, fastdeconv.nnls(A, B), atol=1e-12)
    np.testing.assert_allclose(Y.T, fastdeconv.simplex_lstsq(A, B), atol=1e-12)


# ---------------------------------------------------------------- Gram form


def test_gram_entry_points_match():
    rng = np.random.default_rng(12)
    A = rng.lognormal(size=(70, 6))
    B = rng.lognormal(size=(70, 20))
    Q, C = A.T @ A, A.T @ B
    btb = np.einsum("ij,ij->j", B, B)
    X, info = fastdeconv.nnls_gram(Q, C, btb=btb, return_info=True)
    np.testing.assert_allclose(X, fastdeconv.nnls(A, B), atol=1e-11)
    np.testing.assert_allclose(info.residual_norm, np.linalg.norm(A @ X - B, axis=0), rtol=1e-6)
    Y = fastdeconv.simplex_lstsq_gram(Q, C)
    np.testing.assert_allclose(Y, fastdeconv.simplex_lstsq(A, B), atol=1e-11)
    Z, info = fastdeconv.simplex_lstsq_gram(Q, C[:, 0], constraint="le", return_info=True)
    assert np.isnan(info.residual_norm)  # unknown without btb
    np.testing.assert_allclose(Z, fastdeconv.simplex_lstsq(A, B[:, 0], constraint="le"), atol=1e-11)


# ---------------------------------------------------------------- simplex projection


@given(st.integers(0, 2**32 - 1), st.integers(1, 30), st.floats(0.1, 10))
def test_project_simplex_matches_bisection(seed, k, total):
    v = np.random.default_rng(seed).standard_normal(k) * 3
    p = fastdeconv.project_simplex(v, total)
    assert (p >= 0).all() and p.sum() == pytest.approx(total, rel=1e-12)
    np.testing.assert_allclose(p, naive_project_simplex(v, total), atol=1e-9)


def test_project_simplex_columns():
    V = np.random.default_rng(13).standard_normal((5, 4))
    P = fastdeconv.project_simplex(V)
    for j in range(4):
        np.testing.assert_allclose(P[:, j], fastdeconv.project_simplex(V[:, j]))


# ---------------------------------------------------------------- bad input


A_OK = np.abs(np.random.default_rng(14).standard_normal((10, 3))) + 0.1


@pytest.mark.parametrize(
    "A, B, message",
    [
        (A_OK, np.ones(9), "rows"),
        (A_OK, np.ones((10, 0)), "no samples"),
        (A_OK, np.ones((10, 2, 2)), "1-D"),
        (np.ones(10), np.ones(10), "2-D"),
        (np.ones((0, 3)), np.ones(0), "empty"),
        (np.where(np.eye(10, 3) > 0, np.nan, A_OK), np.ones(10), "NaN or inf"),
        (A_OK, np.r_[np.ones(9), np.inf], "row 9, column 0"),
        (A_OK, np.column_stack([np.ones(10), np.r_[np.nan, np.ones(9)]]), "row 0, column 1"),
    ],
)
def test_bad_shapes_and_values(A, B, message):
    for solve in (fastdeconv.nnls, fastdeconv.simplex_lstsq):
        with pytest.raises(ValueError, match=message):
            solve(A, B)


def test_nan_found_in_a_late_chunk_with_threads():
    B = np.ones((10, 5000))
    B[3, 4321] = np.nan
    with pytest.raises(ValueError, match="row 3, column 4321"):
        fastdeconv.nnls(A_OK, B, n_jobs=2)


def test_bad_types_and_options():
    b = np.ones(10)
    with pytest.raises(TypeError, match="real numbers"):
        fastdeconv.nnls(A_OK, np.array(["a"] * 10))
    with pytest.raises(TypeError, match="real numbers"):
        fastdeconv.nnls(A_OK, b.astype(complex))
    with pytest.raises(ValueError, match="non-negative"):
        fastdeconv.nnls(A_OK, b, weights=-np.ones(10))
    with pytest.raises(ValueError, match="shape"):
        fastdeconv.nnls(A_OK, b, weights=np.ones(3))
    with pytest.raises(ValueError, match="all weights are zero"):
        fastdeconv.nnls(A_OK, b, weights=np.zeros(10))
    with pytest.raises(ValueError, match="constraint"):
        fastdeconv.simplex_lstsq(A_OK, b, constraint="ge")
    with pytest.raises(ValueError, match="max_iter"):
        fastdeconv.nnls(A_OK, b, max_iter=0)
    with pytest.raises(ValueError, match="tol"):
        fastdeconv.nnls(A_OK, b, tol=2.0)
    with pytest.raises(ValueError, match="n_jobs"):
        fastdeconv.nnls(A_OK, b, n_jobs=0)
    with pytest.raises(ValueError, match="not symmetric"):
        fastdeconv.nnls_gram(np.array([[1.0, 2.0], [0.0, 1.0]]), np.ones(2))
    with pytest.raises(ValueError, match="square"):
        fastdeconv.nnls_gram(np.ones((2, 3)), np.ones(2))
    with pytest.raises(ValueError, match="btb"):
        fastdeconv.nnls_gram(np.eye(2), np.ones((2, 3)), btb=np.ones(2))


def test_iteration_cap_warns_and_reports():
    rng = np.random.default_rng(15)
    A = rng.standard_normal((50, 30))
    b = rng.standard_normal(50)
    with pytest.warns(ConvergenceWarning, match="max_iter"):
        x, info = fastdeconv.nnls(A, b, max_iter=1, return_info=True)
    assert not bool(info.converged) and (x >= 0).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fastdeconv.nnls(A, b)
