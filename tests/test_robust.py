"""The Huber loss (IRLS) of the solvers: oracle at the fixed point, planted outliers, batching."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastdeconv
from fastdeconv.kernels.robust import HUBER_C, MAD_TO_SD


def huber_oracle(A, b, w0, scale, c, constraint):
    """Minimise sum_i huber(sqrt(w0_i) r_i / scale) with cvxpy + Clarabel.

    Gene weights act as row scaling, as they do for least squares.
    """
    import cvxpy as cp

    k = A.shape[1]
    x = cp.Variable(k)
    r = cp.multiply(np.sqrt(w0) / scale, b - A @ x)
    # cvxpy's huber(u, M) = u^2 (|u| <= M), 2M|u| - M^2 beyond: twice the usual rho.
    obj = cp.sum(cp.huber(r, c))
    cons = [x >= 0]
    if constraint == "eq":
        cons.append(cp.sum(x) == 1)
    prob = cp.Problem(cp.Minimize(obj), cons)
    prob.solve(solver="CLARABEL")
    return prob.value


def huber_objective(A, b, w0, x, scale, c):
    u = np.abs(b - A @ x) * np.sqrt(w0) / scale
    return float(np.sum(np.where(u <= c, u**2, 2 * c * u - c**2)))


def contaminated(seed, n, k):
    rng = np.random.default_rng(seed)
    A = rng.lognormal(1.0, 1.0, (n, k))
    x_true = rng.dirichlet(np.ones(k))
    b = A @ x_true * (1 + 0.05 * rng.standard_normal(n))
    bad = rng.choice(n, size=max(1, n // 10), replace=False)
    b[bad] *= rng.uniform(5, 20, bad.size)
    return A, b, x_true


@settings(max_examples=25)
@given(st.integers(0, 2**32 - 1), st.integers(30, 120), st.integers(2, 8), st.sampled_from(["nnls", "eq"]))
def test_fixed_point_is_the_huber_estimate_at_its_scale(seed, n, k, constraint):
    A, b, _ = contaminated(seed, n, k)
    w0 = np.random.default_rng(seed + 1).uniform(0.5, 2.0, n)
    solve = fastdeconv.nnls if constraint == "nnls" else fastdeconv.simplex_lstsq
    x, info = solve(A, b, weights=w0, loss="huber", reweight_tol=1e-10, return_info=True)
    assert bool(info.converged)
    scale = MAD_TO_SD * np.median(np.abs(b - A @ x) * np.sqrt(w0))
    ours = huber_objective(A, b, w0, x, scale, HUBER_C)
    best = huber_oracle(A, b, w0, scale, HUBER_C, constraint)
    assert ours <= best * (1 + 1e-6) + 1e-9


@pytest.mark.parametrize("seed", range(4))
def test_outliers_lose_influence(seed):
    A, b, x_true = contaminated(seed, 300, 5)
    robust = fastdeconv.simplex_lstsq(A, b, loss="huber")
    plain = fastdeconv.simplex_lstsq(A, b)
    assert np.abs(robust - x_true).max() < 0.03
    assert np.abs(robust - x_true).max() < np.abs(plain - x_true).max()


def test_exact_data_needs_no_reweighting():
    rng = np.random.default_rng(0)
    A = rng.lognormal(size=(50, 4))
    x_true = np.array([0.1, 0.2, 0.3, 0.4])
    x, info = fastdeconv.simplex_lstsq(A, A @ x_true, loss="huber", return_info=True)
    np.testing.assert_allclose(x, x_true, atol=1e-10)
    assert int(info.n_reweight) == 0 and bool(info.converged)


def test_batch_threads_and_le_constraint():
    rng = np.random.default_rng(1)
    A = rng.lognormal(size=(80, 6))
    B = A @ rng.dirichlet(np.ones(6), 700).T * rng.lognormal(0, 0.2, (80, 700))
    X1, info = fastdeconv.nnls(A, B, loss="huber", n_jobs=1, return_info=True)
    X2 = fastdeconv.nnls(A, B, loss="huber", n_jobs=2)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_allclose(fastdeconv.nnls(A, B[:, 5], loss="huber"), X1[:, 5], atol=1e-13)
    assert info.n_reweight.shape == (700,) and info.converged.all() and (info.n_reweight > 0).all()
    Y = fastdeconv.simplex_lstsq(0.5 * A, B[:, :20], constraint="le", loss="huber")
    assert (Y.sum(axis=0) <= 1 + 1e-12).all()


def test_huber_options_are_validated():
    A = np.eye(3)
    b = np.ones(3)
    with pytest.raises(ValueError, match="loss"):
        fastdeconv.nnls(A, b, loss="l1")
    with pytest.raises(ValueError, match="huber_c"):
        fastdeconv.nnls(A, b, loss="huber", huber_c=0)
    with pytest.raises(ValueError, match="max_reweight"):
        fastdeconv.nnls(A, b, loss="huber", max_reweight=-1)
    with pytest.raises(ValueError, match="reweight_tol"):
        fastdeconv.simplex_lstsq(A, b, loss="huber", reweight_tol=5)
    B = np.ones((3, 40))
    B[1, 33] = np.inf
    with pytest.raises(ValueError, match="row 1, column 33"):
        fastdeconv.nnls(A, B, loss="huber")


def test_round_cap_reports_not_converged():
    A, b, _ = contaminated(3, 200, 6)
    with pytest.warns(fastdeconv.ConvergenceWarning):
        _, info = fastdeconv.nnls(A, b, loss="huber", max_reweight=1, reweight_tol=0.0, return_info=True)
    assert not bool(info.converged)


# ------------------------------------------ the kernel's own median (issue 13: compile time)


@functools.lru_cache(maxsize=None)
def _median_kernel():
    from fastdeconv._jit import jit
    from fastdeconv.kernels import robust

    @jit(cache=False)
    def median(r):
        return robust._median(r, np.empty_like(r))

    return median


@given(
    st.integers(0, 2**32 - 1),
    st.integers(1, 60),
    st.sampled_from(["normal", "ties", "sorted", "reversed", "constant"]),
)
@settings(deadline=None)
def test_median_kernel_equals_numpy_median_exactly(seed, n, kind):
    # the Huber scale uses a median written in the kernel instead of Numba's np.median,
    # which compiled for seconds; the value must be numpy's, bit for bit
    rng = np.random.default_rng(seed)
    r = {
        "normal": rng.standard_normal(n),
        "ties": rng.integers(0, 4, n).astype(float),
        "sorted": np.sort(rng.standard_normal(n)),
        "reversed": np.sort(rng.standard_normal(n))[::-1].copy(),
        "constant": np.full(n, 0.25),
    }[kind]
    keep = r.copy()
    assert _median_kernel()(r) == np.median(r)
    np.testing.assert_array_equal(r, keep)  # its input is left as it was


def test_median_kernel_of_nan_and_empty_is_nan():
    median = _median_kernel()
    assert np.isnan(median(np.array([1.0, np.nan, 2.0])))
    assert np.isnan(median(np.empty(0)))


def test_single_sample_huber_kernel_is_the_batch_kernel_on_one_row():
    from fastdeconv._jit import jit
    from fastdeconv.kernels import robust
    from fastdeconv.kernels.robust import huber_batch, huber_irls

    @jit(cache=False)
    def weighted_gram(A, b, w0):
        Q0, c0 = np.empty((A.shape[1], A.shape[1])), np.empty(A.shape[1])
        robust._weighted_gram(A, b, w0, Q0, c0)
        return Q0

    A, b, x_true = contaminated(3, 120, 4)
    w0 = np.ones(len(b))
    x = np.zeros(4)
    rounds, n_iter, status = huber_irls(A, b, w0, x, True, False, HUBER_C, 50, 1e-8, 100, 1e-11)
    X = np.empty((1, 4))
    W = np.empty((1, len(b)))
    it, rd, st_ = np.zeros(1, np.int64), np.zeros(1, np.int64), np.zeros(1, np.int8)
    huber_batch(A, w0, weighted_gram(A, b, w0), b[None, :].copy(), X, W, it, rd, st_, True, False,
                HUBER_C, 50, 1e-8, 100, 1e-11)
    np.testing.assert_array_equal(x, X[0])
    assert (rounds, n_iter, status) == (rd[0], it[0], st_[0]) and status == 0
