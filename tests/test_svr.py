"""CIBERSORT's nu-SVR (method "nusvr") and its exact kernel.

Oracles: libsvm's nu-SVR problem solved by cvxpy (the primal, with libsvm's
scaling: bounds ``C``, class sums ``C nu n / 2``), the optimality (KKT)
conditions of the dual, planted proportions, and a NumPy copy of
CIBERSORT's choice of ``nu``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import fastdeconv
from fastdeconv.kernels.svr import nu_svr
from fastdeconv.methods import REGRESSION
from fastdeconv.methods._problem import RegressionProblem

# the registry's own modules first, so that importing this method's module here does not
# change the order in which the registry lists its methods
REGRESSION.names()
from fastdeconv.methods.svr import (  # noqa: E402
    NUSVR_OPTIONS, _choose, check_nusvr_options, fit_nusvr,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
NUS = (0.25, 0.5, 0.75)


def solve(X, Z, nus, C=1.0, interior=True, tol=1e-11):
    """The kernel on samples ``Z`` (rows, used as given): w (m, p, k), duals, iterations, status."""
    X = np.ascontiguousarray(X, dtype=np.float64)
    Z = np.ascontiguousarray(np.atleast_2d(Z), dtype=np.float64)
    m, n = Z.shape
    p, k = len(nus), X.shape[1]
    W = np.empty((m, p, k))
    n_iter = np.empty((m, p), dtype=np.int64)
    status = np.empty((m, p), dtype=np.int8)
    duals = np.empty((m, p, 2, n))
    nu_svr(X, Z, np.asarray(nus, dtype=np.float64), C, tol, -1, interior, W, n_iter, status,
           duals)
    return W, duals, n_iter, status


def cvx_w(X, z, nu, C):
    """libsvm's nu-SVR primal by cvxpy: |w|^2/2 + C (nu n eps + the tube's overshoots), least."""
    cp = pytest.importorskip("cvxpy")
    n, k = X.shape
    w, b, eps = cp.Variable(k), cp.Variable(), cp.Variable()
    r = z - X @ w - b
    objective = 0.5 * cp.sum_squares(w) + C * (nu * n * eps + cp.sum(cp.pos(r - eps))
                                              + cp.sum(cp.pos(-r - eps)))
    cp.Problem(cp.Minimize(objective)).solve(
        solver=cp.CLARABEL, tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
    return w.value


def primal_objective(X, z, w, nu, C):
    """The primal at ``w`` with the best intercept and tube: |w|^2/2 + C (sum of the q
    largest residuals - sum of the q smallest), q = nu n / 2 (the last one in part)."""
    r = np.sort(z - X @ w)
    q = nu * len(z) / 2
    whole = int(np.floor(q))
    part = q - whole

    def top(v):
        return v[:whole].sum() + (part * v[whole] if whole < len(v) else 0.0)

    return 0.5 * w @ w + C * (top(r[::-1]) - top(r))


def violation(z, X, a, s, C):
    """libsvm's stopping quantity: the worst violating pair within each class."""
    r = z - X @ (X.T @ (a - s))
    up_p = r[a < C].max(initial=-np.inf) - r[a > 0].min(initial=np.inf)
    up_n = r[s > 0].max(initial=-np.inf) - r[s < C].min(initial=np.inf)
    return max(up_p, up_n, 0.0)


def random_problem(rng, n=None, k=None):
    n = int(rng.integers(10, 60)) if n is None else n
    k = int(rng.integers(1, 6)) if k is None else k
    X = rng.standard_normal((n, k)) * rng.uniform(0.2, 3.0)
    z = X @ rng.standard_normal(k) + rng.uniform(0.05, 2.0) * rng.standard_normal(n)
    return X, z + rng.uniform(-2.0, 2.0)


def newman():
    folder = DATA / "newman_GSE65133"
    if not folder.is_dir():
        pytest.skip(f"shared dataset folder {folder} is absent")
    from fastdeconv.io import read_dataset

    d = read_dataset(folder)
    genes = d["reference"].index.intersection(d["mixture"].index)
    return d["reference"].loc[genes].to_numpy(float), d["mixture"].loc[genes].to_numpy(float)


# ------------------------------------------------------------------ the kernel


def test_kernel_matches_cvxpy_on_random_problems():
    """Both solvers: the interior point (with its polish) and SMO (libsvm's algorithm)."""
    rng = np.random.default_rng(11)
    nus = (0.1, 0.25, 0.5, 0.75, 1.0)
    for _ in range(5):
        X, z = random_problem(rng)
        C = float(rng.choice([0.1, 1.0, 10.0]))
        fits = [solve(X, z, nus, C, interior=interior) for interior in (True, False)]
        assert all((status == 0).all() for _, _, _, status in fits)
        for h, nu in enumerate(nus):
            w_ref = cvx_w(X, z, nu, C)
            ref = primal_objective(X, z, w_ref, nu, C)
            scale = max(1.0, np.abs(w_ref).max())
            for W, _, _, _ in fits:
                np.testing.assert_allclose(W[0, h], w_ref, atol=1e-6 * scale)
                assert primal_objective(X, z, W[0, h], nu, C) <= ref + 1e-9 * abs(ref)


def test_duals_meet_the_kkt_conditions():
    rng = np.random.default_rng(3)
    for _ in range(4):
        X, z = random_problem(rng)
        n = len(z)
        C = float(rng.choice([0.5, 1.0, 5.0]))
        W, duals, _, _ = solve(X, z, NUS, C)
        for h, nu in enumerate(NUS):
            a, s = duals[0, h]
            assert a.min() >= 0 and s.min() >= 0 and a.max() <= C and s.max() <= C
            np.testing.assert_allclose([a.sum(), s.sum()], C * nu * n / 2, rtol=1e-12)
            np.testing.assert_allclose(X.T @ (a - s), W[0, h], atol=1e-12 * C * n)
            assert violation(z, X, a, s, C) <= 1e-10 * max(1.0, np.abs(z).max())


def test_ill_conditioned_signature_lm22():
    """LM22 (22 collinear columns), where libsvm's SMO needs up to 10^7 pair updates:
    the exact optimum in tens of interior-point iterations, as cvxpy finds it."""
    S, B = newman()
    X = (S - S.mean()) / S.std(ddof=1)
    Z = ((B - B.mean(0)) / B.std(0, ddof=1)).T[:4]
    W, duals, n_iter, status = solve(X, Z, NUS)
    assert (status == 0).all() and n_iter.max() < 60
    for j in range(Z.shape[0]):
        for h in range(len(NUS)):
            a, s = duals[j, h]
            assert violation(Z[j], X, a, s, 1.0) <= 1e-9
    np.testing.assert_allclose(W[0, 1], cvx_w(X, Z[0], 0.5, 1.0), atol=1e-7)


def test_exact_fit_and_duplicated_genes():
    """Degenerate problems: a tube of width 0 (the sample is exactly X w + b) and
    genes present twice (free variables that no system determines one by one)."""
    rng = np.random.default_rng(8)
    X = rng.standard_normal((40, 3))
    W, _, _, status = solve(X, X @ np.array([0.5, -1.0, 2.0]) + 3.0, NUS, C=10.0)
    assert (status == 0).all()
    np.testing.assert_allclose(W[0], np.tile([0.5, -1.0, 2.0], (3, 1)), atol=1e-9)
    X, z = random_problem(rng, n=30, k=3)
    X2, z2 = np.vstack([X, X[:10]]), np.concatenate([z, z[:10]])
    W, _, _, status = solve(X2, z2, NUS)
    assert (status == 0).all()
    for h, nu in enumerate(NUS):
        np.testing.assert_allclose(W[0, h], cvx_w(X2, z2, nu, 1.0), atol=1e-6)


# ------------------------------------------------------------------ the method


def proportions(fit):
    return fit.coefficients / fit.coefficients.sum(axis=0)


def test_planted_proportions_are_recovered():
    rng = np.random.default_rng(2)
    S = rng.lognormal(size=(120, 4))
    P = rng.dirichlet(np.ones(4), size=6).T
    fit = fit_nusvr(RegressionProblem(S, S @ P, options=dict(NUSVR_OPTIONS)))
    assert fit.converged.all()
    np.testing.assert_allclose(proportions(fit), P, atol=1e-9)
    # on the bulk's scale: the coefficients are the planted amounts
    np.testing.assert_allclose(fit.coefficients, P, atol=1e-9)


def cibersort_numpy(S, B, nus=NUS, C=1.0):
    """CIBERSORT.R's CoreAlg, step by step, with our kernel as e1071's svm()."""
    X = (S - S.mean()) / S.std(ddof=1)
    out, picks = [], []
    for y in B.T:
        y = (y - y.mean()) / y.std(ddof=1)
        W, _, _, _ = solve(X, y, nus, C)
        rmses, props = [], []
        for w in W[0]:
            w = np.where(w < 0, 0.0, w)
            w = w / w.sum()
            rmses.append(np.sqrt(np.mean((X @ w - y) ** 2)))
            props.append(w)
        picks.append(int(np.argmin(rmses)))
        out.append(props[picks[-1]])
    return np.array(out).T, picks


def test_cibersort_selection_rule():
    rng = np.random.default_rng(5)
    S = rng.lognormal(size=(80, 4))
    P = rng.dirichlet(np.ones(4), size=12).T
    B = S @ P * rng.lognormal(0.0, 0.4, size=(80, 12))
    expected, picks = cibersort_numpy(S, B)
    assert len(set(picks)) > 1  # the choice matters on these samples
    fit = fit_nusvr(RegressionProblem(S, B))
    np.testing.assert_allclose(proportions(fit), expected, atol=1e-12)


def test_choose_smallest_rmse_first_on_ties_none_when_nonpositive():
    X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    z = X @ np.array([0.3, 0.7])
    W = np.array([[[1.0, 1.0], [3.0, 7.0], [0.3, 0.7]],   # 2nd and 3rd equal, best
                  [[-1.0, 0.0], [0.0, -2.0], [-1.0, -1.0]]])  # nothing positive
    kept, which = _choose(W, X, np.vstack([z, z]))
    assert which.tolist() == [1, -1]
    np.testing.assert_allclose(kept, [[0.3, 0.7], [0.0, 0.0]])


def test_invariant_to_the_scale_of_the_bulk():
    rng = np.random.default_rng(4)
    S = rng.lognormal(size=(60, 3))
    B = S @ rng.dirichlet(np.ones(3), size=5).T * rng.lognormal(0, 0.2, size=(60, 5))
    one = fit_nusvr(RegressionProblem(S, B))
    big = fit_nusvr(RegressionProblem(S, 1000.0 * B))
    np.testing.assert_allclose(proportions(big), proportions(one), rtol=1e-9)
    np.testing.assert_allclose(big.coefficients, 1000.0 * one.coefficients, rtol=1e-9)


def test_answers_do_not_depend_on_the_thread_count():
    rng = np.random.default_rng(6)
    S = rng.lognormal(size=(50, 3))
    B = S @ rng.dirichlet(np.ones(3), size=48).T * rng.lognormal(0, 0.3, size=(50, 48))
    one = fit_nusvr(RegressionProblem(S, B, n_jobs=1))
    two = fit_nusvr(RegressionProblem(S, B, n_jobs=2))
    assert np.array_equal(one.coefficients, two.coefficients)
    assert np.array_equal(one.n_iter, two.n_iter)


def test_constant_sample_and_zero_column():
    rng = np.random.default_rng(7)
    S = rng.lognormal(size=(40, 3))
    S[:, 1] = 0.0  # a type expressed nowhere: a constant column once standardised
    B = np.column_stack([S @ [0.4, 0.0, 0.6] * rng.lognormal(0, 0.1, 40), np.full(40, 5.0)])
    fit = fit_nusvr(RegressionProblem(S, B))
    assert fit.converged.all()
    assert fit.coefficients[:, 0].sum() > 0
    assert abs(fit.coefficients[1, 0]) <= 1e-12 * fit.coefficients[:, 0].sum()
    assert (fit.coefficients[:, 1] == 0).all()  # constant: no type explains it
    X = (S - S.mean()) / S.std(ddof=1)
    z = (B[:, 0] - B[:, 0].mean()) / B[:, 0].std(ddof=1)
    W, _, _, _ = solve(X, z, (0.5,))
    assert abs(W[0, 0, 1]) <= 1e-12  # w of a constant column is c sum(a - a*) = 0


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"nu": 0.0}, ValueError, r"method_options=\{'nu': \.\.\.\} must be a finite number > 0"),
        ({"nu": (0.5, 1.5)}, ValueError, r"method_options=\{'nu': \.\.\.\}.*got 1.5"),
        ({"nu": ()}, ValueError, r"method_options=\{'nu': \.\.\.\}.*got none"),
        ({"nu": "half"}, TypeError, r"method_options=\{'nu': \.\.\.\} must be a number"),
        ({"C": 0.0}, ValueError, r"method_options=\{'C': \.\.\.\} must be a finite number > 0"),
        ({"C": float("inf")}, ValueError, r"method_options=\{'C': \.\.\.\}"),
    ],
)
def test_bad_options_are_refused_naming_the_key(options, error, match):
    with pytest.raises(error, match=match):
        check_nusvr_options({**NUSVR_OPTIONS, **options})
    with pytest.raises(error, match=match):
        fit_nusvr(RegressionProblem(np.eye(3), np.ones((3, 1)), options=options))


def test_registered_and_through_the_pipeline():
    record = REGRESSION.get("nusvr")
    assert record.normalise and record.weights == "unsupported" and not record.background
    assert record.losses == ("squared",) and record.options == NUSVR_OPTIONS
    assert any("10.1038/nmeth.3337" in ref for ref in record.references)
    rng = np.random.default_rng(9)
    genes = [f"g{i}" for i in range(150)]
    sig = pd.DataFrame(rng.lognormal(3.0, 1.0, size=(150, 4)), index=genes,
                       columns=list("ABCD"))
    truth = rng.dirichlet(np.ones(4), size=8)
    bulk = pd.DataFrame((sig.to_numpy() @ truth.T) * rng.lognormal(0, 0.05, (150, 8)),
                        index=genes, columns=[f"s{j}" for j in range(8)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = fastdeconv.deconvolve(bulk, sig, method="nusvr", progress=False)
        half = fastdeconv.deconvolve(bulk, sig, method="nusvr", progress=False,
                                     method_options={"nu": 0.5})
    np.testing.assert_allclose(res.proportions.to_numpy(), truth, atol=0.03)
    np.testing.assert_allclose(res.proportions.sum(axis=1), 1.0)
    assert not np.allclose(half.proportions.to_numpy(), res.proportions.to_numpy(), atol=1e-12)
    with pytest.raises(ValueError, match="background"):
        fastdeconv.deconvolve(bulk, sig, method="nusvr", background=True, progress=False)
