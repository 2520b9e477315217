"""Tests of the multinomial mixture fit (:func:`fastdeconv.multinomial_map`) and the helpers of
the probabilistic method (:mod:`fastdeconv.bayes`): an exact cvxpy + Clarabel oracle (the
log-likelihood is an exponential-cone objective), the KKT conditions recomputed in NumPy,
planted solutions, invariances, degenerate inputs, and the coverage of the Fisher errors."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import fastdeconv
from fastdeconv import ConvergenceWarning
from fastdeconv.bayes import (
    excluded_genes,
    fisher_errors,
    mixture_reference,
    outlier_genes,
    update_profiles,
)
from reference import CLARABEL_FALLBACK, CLARABEL_TIGHT

#: KKT tolerance checked on every answer (the solver's default is 1e-8)
KKT_TOL = 1e-7
#: Known defect (reported, not fixed here): when a state has a small interior share
#: (theta_k ~ 1e-4..1e-3) the Newton phase can stall with R_k - 1 ~ 1e-7 > tol, because the
#: quadratic model is solved for y = theta + d rather than for the step d (the gradient's
#: information cancels against H theta); the kernel then returns status 1 ("reached max_iter")
#: after a few dozen evaluations.  The answer itself is as accurate as cvxpy's.  Reproducer:
#: ``random_problem(2659748483)`` (alpha 1) or ``random_problem(88)`` with alpha=1.5.  While
#: True, the randomised oracle tests accept that stall (status 1 well below max_iter, R_k - 1
#: <= 1e-6); set to False once fixed, and every answer must have status 0 and KKT <= 1e-7.
NEWTON_STALL_BUG = False


# ---------------------------------------------------------------- helpers


def normalise(phi):
    return phi / phi.sum(axis=0)


def objective(phi, x, theta, alpha=1.0):
    """``sum_g x_g log(phi theta)_g + sum_k (alpha_k - 1) log theta_k`` (phi normalised)."""
    a = np.broadcast_to(np.asarray(alpha, dtype=float), theta.shape) - 1.0
    live = x > 0
    with np.errstate(divide="ignore"):
        f = float(x[live] @ np.log(phi[live] @ theta))
        if (a > 0).any():
            f += float(a[a > 0] @ np.log(theta[a > 0]))
    return f


def kkt(phi, x, theta, alpha=1.0):
    """``(max_k theta_k |R_k - 1|, max_k R_k - 1)`` with R as in the solver's stopping rule."""
    a = np.broadcast_to(np.asarray(alpha, dtype=float), theta.shape) - 1.0
    lam = x.sum() + a.sum()
    mu = phi @ theta
    live = x > 0
    R = phi[live].T @ (x[live] / mu[live])
    if (a > 0).any():
        R = R + np.where(a > 0, a / np.where(theta > 0, theta, 1.0), 0.0)
    r = R / lam - 1.0
    return float(np.max(theta * np.abs(r))), float(np.max(r))


def assert_kkt(phi, x, theta, alpha=1.0, tol=KKT_TOL):
    scaled, positive = kkt(phi, x, theta, alpha)
    assert scaled <= tol, f"theta_k |R_k - 1| = {scaled:.3g}"
    assert positive <= tol, f"R_k - 1 = {positive:.3g}"
    assert (theta >= 0).all() and abs(theta.sum() - 1.0) < 1e-12


def cvxpy_map(phi, x, alpha=1.0):
    """The maximiser over the simplex from cvxpy + Clarabel; returns (theta, status)."""
    import cvxpy as cp

    k = phi.shape[1]
    a = np.broadcast_to(np.asarray(alpha, dtype=float), (k,)) - 1.0
    live = x > 0
    N = x.sum()
    th = cp.Variable(k)
    obj = (x[live] / N) @ cp.log(phi[live] @ th)  # scaled by 1/N: better conditioned
    if (a > 0).any():
        obj = obj + (a / N) @ cp.log(th)
    prob = cp.Problem(cp.Maximize(obj), [th >= 0, cp.sum(th) == 1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "solution may be inaccurate": reported by status
        try:
            prob.solve(solver=cp.CLARABEL, **CLARABEL_TIGHT)
        except cp.error.SolverError:
            prob.solve(solver=cp.CLARABEL, **CLARABEL_FALLBACK)
    v = np.maximum(np.asarray(th.value, dtype=float), 0.0)
    return v / v.sum(), prob.status


def curvature(phi, x, theta, alpha=1.0):
    """Smallest eigenvalue / N of minus the Hessian on the simplex's tangent space."""
    k = phi.shape[1]
    a = np.broadcast_to(np.asarray(alpha, dtype=float), (k,)) - 1.0
    live = x > 0
    mu = phi[live] @ theta
    P = phi[live] * (np.sqrt(x[live]) / mu)[:, None]
    prior = np.zeros(k)
    prior[a > 0] = a[a > 0] / theta[a > 0] ** 2
    H = P.T @ P + np.diag(prior)
    B = np.linalg.svd(np.eye(k) - 1.0 / k)[0][:, : k - 1]  # orthonormal basis of sum(d) = 0
    return float(np.linalg.eigvalsh(B.T @ H @ B)[0]) / x.sum()


def random_problem(seed):
    """Random gamma profiles with exact zeros, a planted theta with zeros, Poisson counts."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 61))
    k = int(rng.integers(2, 9))
    phi = rng.gamma(0.7, 1.0, (n, k))
    phi[rng.random((n, k)) < 0.2] = 0.0
    phi[np.arange(n), rng.integers(0, k, n)] += rng.gamma(1.0, 1.0, n)  # no all-zero gene
    theta = rng.dirichlet(np.ones(k))
    theta[rng.random(k) < 0.3] = 0.0
    if theta.sum() == 0:
        theta[0] = 1.0
    theta /= theta.sum()
    N = 10 ** rng.uniform(1.5, 5.0)
    x = rng.poisson(N * normalise(phi) @ theta).astype(float)
    if x.sum() == 0:
        x[int(np.argmax(phi @ theta))] = 1.0
    return phi, x


def check_against_oracle(phi_raw, x, alpha=1.0, *, tolerate_stall=False):
    phi = normalise(phi_raw)
    with warnings.catch_warnings():
        if tolerate_stall and NEWTON_STALL_BUG:
            warnings.simplefilter("ignore", ConvergenceWarning)
        theta, info = fastdeconv.multinomial_map(phi_raw, x, alpha=alpha, return_info=True)
    if tolerate_stall and NEWTON_STALL_BUG and info.status[0] == 1:
        assert info.n_eval[0] < 200  # a stall, not the evaluation cap
        assert_kkt(phi, x, theta, alpha, tol=1e-6)
    else:
        assert info.status.tolist() == [0]
        assert_kkt(phi, x, theta, alpha)
    ours = objective(phi, x, theta, alpha)
    assert ours == pytest.approx(float(info.loglik[0]), rel=1e-10, abs=1e-9)
    tc, status = cvxpy_map(phi, x, alpha)
    theirs = objective(phi, x, tc, alpha)
    assert ours >= theirs - 1e-9 * (abs(theirs) + 1.0)
    if status == "optimal" and curvature(phi, x, theta, alpha) > 1e-2:  # unique, well posed
        np.testing.assert_allclose(theta, tc, atol=1e-6)
    return theta, tc


# ---------------------------------------------------------------- 1, 2: oracle and KKT


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1))
@example(0)
@example(27)  # n < k: a whole face of maximisers (objective compared only)
@example(108)
@example(2659748483)  # NEWTON_STALL_BUG
def test_maximum_likelihood_matches_cvxpy(seed):
    """ML theta has an objective at least cvxpy's, the KKT conditions, and cvxpy's theta."""
    phi, x = random_problem(seed)
    check_against_oracle(phi, x, tolerate_stall=True)


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([1.5, 3.0]))
@example(88, 1.5)  # NEWTON_STALL_BUG
def test_map_matches_cvxpy_random(seed, alpha):
    """MAP theta (alpha > 1) on random problems: objective and theta as cvxpy's, KKT."""
    phi, x = random_problem(seed)
    theta, _ = check_against_oracle(phi, x, alpha, tolerate_stall=True)
    assert (theta > 0).all()


def test_boundary_optimum_is_exact_zero():
    """States with no share come out exactly 0, where cvxpy's are ~0, with R_k <= 1."""
    boundary = 0
    for seed in range(20):
        phi, x = random_problem(seed)
        theta, tc = check_against_oracle(phi, x)
        zero = theta == 0
        if zero.any():
            boundary += 1
            assert (tc[zero] < 1e-6).all()
    assert boundary >= 5  # the generator does reach the boundary


@pytest.mark.parametrize("alpha", [1.5, 3.0])
@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5, 7, 11])
def test_map_matches_cvxpy(seed, alpha):
    """MAP theta (Dirichlet alpha > 1) matches cvxpy's and is strictly inside the simplex."""
    phi, x = random_problem(seed)
    theta, _ = check_against_oracle(phi, x, alpha)
    assert (theta > 0).all()


def test_map_with_per_state_alpha():
    """A vector alpha (ones and a 5) is the prior cvxpy is given, state by state."""
    phi, x = random_problem(3)
    alpha = np.ones(phi.shape[1])
    alpha[-1] = 5.0
    theta, _ = check_against_oracle(phi, x, alpha)
    assert theta[-1] > 0


def test_kkt_holds_on_every_sample_of_a_batch():
    """Every column of a 30-sample batch satisfies the KKT conditions with status 0."""
    rng = np.random.default_rng(5)
    phi_raw = rng.gamma(0.5, 1.0, (80, 6))
    phi = normalise(phi_raw)
    X = rng.poisson(phi @ rng.dirichlet(np.full(6, 0.4), 30).T * rng.uniform(50, 1e5, 30))
    theta, info = fastdeconv.multinomial_map(phi_raw, X, return_info=True)
    assert theta.shape == (6, 30)
    assert (info.status == 0).all()
    for j in range(30):
        assert_kkt(phi, X[:, j].astype(float), theta[:, j])


# ---------------------------------------------------------------- 3: planted recovery


def test_planted_recovery_large_counts():
    """1e8 multinomial reads, k=10 states, 2000 genes: the planted theta to 1e-3."""
    rng = np.random.default_rng(11)
    phi = normalise(rng.gamma(0.5, 1.0, (2000, 10)))
    truth = rng.dirichlet(np.ones(10), 3).T
    truth[3, 0] = 0.0  # one state absent from one sample
    truth[:, 0] /= truth[:, 0].sum()
    X = np.column_stack([rng.multinomial(10**8, phi @ truth[:, j]) for j in range(3)])
    theta, info = fastdeconv.multinomial_map(phi, X, return_info=True)
    assert (info.status == 0).all()
    np.testing.assert_allclose(theta, truth, atol=1e-3)
    for j in range(3):
        assert_kkt(phi, X[:, j].astype(float), theta[:, j])
    # Poisson counts of the same mean: the same answer to the same precision
    Y = rng.poisson(1e8 * phi @ truth)
    np.testing.assert_allclose(fastdeconv.multinomial_map(phi, Y), truth, atol=1e-3)


# ---------------------------------------------------------------- 4: invariances


@pytest.mark.parametrize("scale", [1e-3, 1e4])
def test_sample_scale_does_not_change_theta(scale):
    """A sample multiplied by 1e-3 or 1e4 gives the same theta (1e-8)."""
    rng = np.random.default_rng(2)
    phi = rng.gamma(0.8, 1.0, (200, 5))
    x = rng.poisson(1e4 * normalise(phi) @ rng.dirichlet(np.ones(5))).astype(float)
    base = fastdeconv.multinomial_map(phi, x)
    np.testing.assert_allclose(fastdeconv.multinomial_map(phi, x * scale), base, atol=1e-8)


def test_samples_independent_of_batch_and_threads():
    """Each sample's theta is that of its fit alone, with n_jobs 1 or 2 (all-zero one: NaN)."""
    rng = np.random.default_rng(8)
    n, k, m = 60, 5, 100
    phi = rng.gamma(0.6, 1.0, (n, k))
    X = rng.poisson(normalise(phi) @ rng.dirichlet(np.full(k, 0.5), m).T * 2000).astype(float)
    X[:, 17] = 0.0
    one, info1 = fastdeconv.multinomial_map(phi, X, n_jobs=1, return_info=True)
    two = fastdeconv.multinomial_map(phi, X, n_jobs=2)
    np.testing.assert_allclose(one, two, rtol=0, atol=1e-12)
    assert np.isnan(one[:, 17]).all() and info1.status[17] == -1
    live = np.delete(np.arange(m), 17)
    assert (info1.status[live] == 0).all() and not np.isnan(one[:, live]).any()
    for j in [0, 16, 18, 50, 99]:
        alone = fastdeconv.multinomial_map(phi, X[:, j])
        np.testing.assert_allclose(alone, one[:, j], rtol=0, atol=1e-12)
    # reversed order of samples: same columns
    rev = fastdeconv.multinomial_map(phi, X[:, ::-1], n_jobs=2)
    np.testing.assert_allclose(rev[:, ::-1], one, rtol=0, atol=1e-12)


def test_profile_scale_does_not_change_theta():
    """Profiles are normalised per column: rescaling a column does not change theta."""
    rng = np.random.default_rng(4)
    phi = rng.gamma(0.8, 1.0, (100, 4))
    x = rng.poisson(5e3 * normalise(phi) @ np.array([0.1, 0.2, 0.3, 0.4])).astype(float)
    a = fastdeconv.multinomial_map(phi, x)
    b = fastdeconv.multinomial_map(phi * np.array([1e-3, 1.0, 7.0, 1e5]), x)
    np.testing.assert_allclose(a, b, atol=1e-8)


# ---------------------------------------------------------------- 5: input checks, degenerate


def _bad_inputs():
    rng = np.random.default_rng(0)
    phi = rng.gamma(1.0, 1.0, (10, 3))
    x = rng.poisson(50, 10).astype(float)
    nan_phi = phi.copy()
    nan_phi[2, 1] = np.nan
    neg_phi = phi.copy()
    neg_phi[0, 0] = -1.0
    zero_col = phi.copy()
    zero_col[:, 1] = 0.0
    nan_x = x.copy()
    nan_x[3] = np.nan
    neg_x = x.copy()
    neg_x[3] = -2.0
    inf_x = x.copy()
    inf_x[0] = np.inf
    return [
        ((nan_phi, x), {}, "profiles"),
        ((neg_phi, x), {}, "profiles"),
        ((zero_col, x), {}, "profile 1"),
        ((phi[:, 0], x), {}, "profiles"),
        ((np.zeros((10, 0)), x), {}, "profiles"),
        ((phi, nan_x), {}, "counts"),
        ((phi, neg_x), {}, "counts"),
        ((phi, inf_x), {}, "counts"),
        ((phi, x[:9]), {}, "counts"),
        ((phi, np.ones((11, 2))), {}, "counts"),
        ((phi, x), {"alpha": 0.5}, "alpha"),
        ((phi, x), {"alpha": [1.0, 0.99, 2.0]}, "alpha"),
        ((phi, x), {"alpha": np.nan}, "alpha"),
        ((phi, x), {"tol": 0.0}, "tol"),
        ((phi, x), {"tol": -1e-8}, "tol"),
        ((phi, x), {"max_iter": 0}, "max_iter"),
    ]


@pytest.mark.parametrize("args, kwargs, name", _bad_inputs())
def test_bad_inputs_name_the_argument(args, kwargs, name):
    """Bad values raise ValueError whose message names the argument."""
    with pytest.raises(ValueError, match=name):
        fastdeconv.multinomial_map(*args, **kwargs)


def test_all_zero_sample_is_nan_without_warning():
    """An all-zero sample gives NaN theta, status -1, and no ConvergenceWarning."""
    phi = np.array([[0.7, 0.1], [0.2, 0.1], [0.1, 0.8]])
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        theta, info = fastdeconv.multinomial_map(phi, np.zeros(3), return_info=True)
    assert np.isnan(theta).all() and info.status.tolist() == [-1]


def test_gene_no_state_expresses_warns():
    """Counts on a gene that is zero in every profile: ConvergenceWarning and status 2."""
    phi = np.array([[0.7, 0.1], [0.3, 0.9], [0.0, 0.0]])
    x = np.array([[10.0, 10.0], [20.0, 20.0], [5.0, 0.0]])
    with pytest.warns(ConvergenceWarning, match="zero likelihood"):
        theta, info = fastdeconv.multinomial_map(phi, x, return_info=True)
    assert info.status.tolist() == [2, 0]
    assert_kkt(normalise(phi), x[:, 1], theta[:, 1])


def test_iteration_cap_warns():
    """max_iter=2 on near-collinear profiles: ConvergenceWarning and status 1."""
    rng = np.random.default_rng(0)
    n, k = 300, 8
    phi = rng.gamma(1.0, 1.0, (n, 1)) * rng.lognormal(0.0, 0.05, (n, k))
    x = rng.poisson(1e5 * normalise(phi) @ rng.dirichlet(np.full(k, 0.5))).astype(float)
    full, info = fastdeconv.multinomial_map(phi, x, return_info=True)
    assert info.status.tolist() == [0] and info.n_eval[0] > 2
    with pytest.warns(ConvergenceWarning, match="max_iter=2"):
        capped, info2 = fastdeconv.multinomial_map(phi, x, max_iter=2, return_info=True)
    assert info2.status.tolist() == [1] and not info2.converged[0]
    assert abs(capped.sum() - 1.0) < 1e-12 and (capped >= 0).all()
    assert objective(normalise(phi), x, capped) <= objective(normalise(phi), x, full) + 1e-9


# ---------------------------------------------------------------- 7: Fisher errors


@pytest.fixture(scope="module")
def replicates():
    """400 multinomial samples (2e5 reads, 500 genes) from one interior theta, and their fits."""
    rng = np.random.default_rng(2024)
    phi = normalise(rng.gamma(0.5, 1.0, (500, 4)))
    truth = np.array([0.4, 0.3, 0.2, 0.1])
    X = rng.multinomial(200_000, phi @ truth, size=400).T.astype(float)
    theta, info = fastdeconv.multinomial_map(phi, X, return_info=True)
    assert (info.status == 0).all()
    return phi, truth, X, theta


def test_fisher_intervals_cover(replicates):
    """Nominal 90% intervals theta +- 1.645 se cover the truth 85-95% of the time per state."""
    phi, truth, X, theta = replicates
    se, se_cells, disp = fisher_errors(phi, theta, X)
    assert se_cells is None and se.shape == theta.shape
    assert (se > 0).all()
    cover = (np.abs(theta - truth[:, None]) <= 1.645 * se).mean(axis=1)
    assert ((cover >= 0.85) & (cover <= 0.95)).all(), cover
    # the errors are about the spread of the estimates
    np.testing.assert_allclose(se.mean(axis=1), theta.std(axis=1), rtol=0.15)


def test_fisher_group_sums_cover(replicates):
    """Errors of states summed into two types: equal for the two, and covering 85-95%."""
    phi, truth, X, theta = replicates
    groups = np.array([0, 1, 0, 1])
    se, _, _ = fisher_errors(phi, theta, X, groups=groups)
    assert se.shape == (2, theta.shape[1])
    np.testing.assert_allclose(se[0], se[1], rtol=1e-8)  # p0 = 1 - p1
    p = np.vstack([theta[0] + theta[2], theta[1] + theta[3]])
    t = np.array([truth[0] + truth[2], truth[1] + truth[3]])
    cover = (np.abs(p - t[:, None]) <= 1.645 * se).mean(axis=1)
    assert ((cover >= 0.85) & (cover <= 0.95)).all(), cover
    # everything in one group: the sum is 1, no uncertainty
    se1, _, _ = fisher_errors(phi, theta[:, :5], X[:, :5], groups=np.zeros(4, dtype=int))
    np.testing.assert_allclose(se1, 0.0, atol=1e-9)  # rounding of ~1e-3 errors


def test_fisher_dispersion_and_scale(replicates):
    """Dispersion of multinomial data is 0.8..1.2; counts x10 leave se unchanged (1e-6)."""
    phi, truth, X, theta = replicates
    se, _, disp = fisher_errors(phi, theta[:, :40], X[:, :40])
    assert ((disp > 0.8) & (disp < 1.2)).all()
    theta10 = fastdeconv.multinomial_map(phi, 10 * X[:, :40])
    se10, _, disp10 = fisher_errors(phi, theta10, 10 * X[:, :40])
    np.testing.assert_allclose(se10, se, rtol=1e-6)
    np.testing.assert_allclose(disp10, 10 * disp, rtol=1e-6)  # Pearson chi2 is not scale-free


def test_fisher_nan_sample_and_boundary():
    """A NaN theta column gives NaN errors; a state at 0 gets se 0."""
    phi = np.array([[0.6, 0.1, 0.3], [0.3, 0.2, 0.3], [0.1, 0.7, 0.4]])
    theta = np.array([[0.5, np.nan], [0.5, np.nan], [0.0, np.nan]])
    X = np.array([[350.0, 0.0], [250.0, 0.0], [400.0, 0.0]])
    se, _, disp = fisher_errors(phi, theta, X)
    assert np.isnan(se[:, 1]).all() and np.isnan(disp[1])
    assert se[2, 0] == 0.0 and se[0, 0] > 0
    np.testing.assert_allclose(se[0, 0], se[1, 0], rtol=1e-10)


# ---------------------------------------------------------------- 8: reference update


def shifted(phi, gamma):
    psi = phi * np.exp(gamma)
    return psi / psi.sum(axis=0)


def test_update_map_recovers_shifted_profile():
    """Z proportional to a shifted profile, 1e9 counts: mode "map" recovers it (1e-3)."""
    rng = np.random.default_rng(3)
    phi = normalise(rng.gamma(1.0, 1.0, (60, 3)))
    gamma = rng.normal(0.0, 0.7, (60, 3))
    target = shifted(phi, gamma)
    Z = 1e9 * target * np.array([0.5, 0.3, 0.2])
    psi, shifts = update_profiles(phi, Z, mode="map")
    np.testing.assert_allclose(psi.sum(axis=0), 1.0, rtol=1e-12)
    np.testing.assert_allclose(psi, target, rtol=1e-3)
    np.testing.assert_allclose(shifted(phi, shifts), psi, rtol=1e-10)
    # the prior centres the shifts: psi fixes gamma up to a constant per type
    np.testing.assert_allclose(shifts - shifts.mean(axis=0), gamma - gamma.mean(axis=0), atol=1e-3)


def test_update_tiny_sigma_keeps_profile():
    """With sigma = 1e-6 the prior pins the shifts at 0: psi equals phi."""
    rng = np.random.default_rng(6)
    phi = normalise(rng.gamma(1.0, 1.0, (40, 3)))
    Z = 1e3 * shifted(phi, rng.normal(0.0, 1.0, (40, 3)))
    psi, shifts = update_profiles(phi, Z, mode="map", sigma=1e-6)
    np.testing.assert_allclose(psi, phi, rtol=1e-6)
    assert np.abs(shifts).max() < 1e-6


def test_update_mle_one_shift_per_gene():
    """Mode "mle": one shift per gene shared by all types, recovering a shared shift."""
    rng = np.random.default_rng(9)
    phi = normalise(rng.gamma(1.0, 1.0, (50, 4)))
    g = rng.normal(0.0, 0.5, 50)
    target = shifted(phi, g[:, None])
    Z = 1e8 * target * np.array([0.4, 0.3, 0.2, 0.1])
    psi, shifts = update_profiles(phi, Z, mode="mle")
    for t in range(1, 4):
        np.testing.assert_array_equal(shifts[:, t], shifts[:, 0])
    np.testing.assert_allclose(psi, target, rtol=1e-3)
    with pytest.raises(ValueError, match="mode"):
        update_profiles(phi, Z, mode="gibbs")


# ---------------------------------------------------------------- 9: genes and reference


def test_excluded_genes():
    """Ribosomal/mitochondrial symbols are found (any case); look-alikes are not."""
    genes = ["CD3E", "RPL13A", "mt-Co1", "MTOR", "RPE65", "MRPS12", "HBB", "HBEGF", "Rps27"]
    out = excluded_genes(genes)
    assert out == {"ribosomal": ["RPL13A", "MRPS12", "Rps27"], "mitochondrial": ["mt-Co1"]}
    assert excluded_genes(genes, ["hemoglobin"]) == {"hemoglobin": ["HBB"]}
    assert excluded_genes(["CD3E", "MTOR", "HBEGF"], ["ribosomal", "mitochondrial", "hemoglobin"]) \
        == {"ribosomal": [], "mitochondrial": [], "hemoglobin": []}
    with pytest.raises(ValueError, match="exclude"):
        excluded_genes(genes, ["ribosome"])


def test_outlier_genes():
    """A gene above 1% of reads in >10% of samples is an outlier; in exactly 10% it is not."""
    index = [f"g{i}" for i in range(20000)] + ["HUGE"]
    values = np.ones((20001, 10))
    values[-1, :2] = 500.0  # 2 of 10 samples
    assert outlier_genes(pd.DataFrame(values, index=index)) == ["HUGE"]
    values[-1, 1] = 1.0  # 1 of 10 samples: not more than 10%
    assert outlier_genes(pd.DataFrame(values, index=index)) == []
    values[:, 3] = 0.0  # an all-zero sample flags nothing
    assert outlier_genes(pd.DataFrame(values, index=index)) == []


def test_outlier_cut_follows_the_gene_set_size():
    """On 200 genes the cut is 200 times the mean share (100%): no gene is an outlier."""
    index = [f"g{i}" for i in range(199)] + ["BIG"]
    values = np.ones((200, 10))
    values[-1] = 5.0  # 2.5% of every sample: an outlier among 20,000 genes, not among 200
    assert outlier_genes(pd.DataFrame(values, index=index)) == []
    big = np.ones((20000, 10))
    big[-1] = 500.0
    assert outlier_genes(pd.DataFrame(big, index=[f"g{i}" for i in range(20000)])) == ["g19999"]


def test_mixture_reference_sums_states():
    """Counts are summed per state, states map to types, RNA per cell per type."""
    counts = np.array([[4, 2, 0, 0, 1], [0, 1, 3, 5, 2], [1, 1, 1, 1, 1]])
    ref = mixture_reference(counts, ["A", "A", "B", "B", "B"], states=[0, 0, 0, 1, 1])
    assert list(ref.counts.columns) == ["A: 0", "B: 0", "B: 1"]
    np.testing.assert_array_equal(ref.counts.to_numpy(), [[6, 0, 1], [1, 3, 7], [2, 1, 2]])
    assert ref.state_type.tolist() == ["A", "B", "B"]
    assert ref.n_cells.tolist() == [2, 1, 2]
    assert ref.rna_per_cell().to_dict() == pytest.approx({"A": 4.5, "B": 14 / 3})
    prof = ref.profiles(ref.counts.index)
    np.testing.assert_allclose(prof.sum(axis=0), 1.0, rtol=1e-12)
    assert (prof.to_numpy() > 0).all()
    with pytest.raises(ValueError, match="two"):
        mixture_reference(counts, ["A"] * 5)
