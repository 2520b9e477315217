"""method="dwls": the R package's solveDampenedWLS against a literal NumPy transcription.

Oracles: a planted exact mixture; a line-by-line NumPy transcription of the
package's loop (findDampeningConstant's cross-validation over the same gene
subsets, then the damped rounds) with scipy's NNLS and least squares; the KKT
conditions of an inner weighted NNLS, checked against scipy.optimize.nnls on
the sqrt(w)-scaled problem.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import nnls as scipy_nnls

import fastdeconv
from fastdeconv.methods import REGRESSION
from fastdeconv.methods._problem import RegressionProblem

# the registry's own modules first, so that importing this method's module here does not
# change the order in which the registry lists its methods
REGRESSION.names()
from fastdeconv.methods.dwls import DWLS_OPTIONS, _subsets, fit_dwls, packed_outer  # noqa: E402


def problem(S, B, **options):
    B = B[:, None] if B.ndim == 1 else B
    return RegressionProblem(np.ascontiguousarray(S), np.ascontiguousarray(B),
                             options=dict(DWLS_OPTIONS, **options))


def noisy_case(seed, n=60, k=4, noise=0.3):
    rng = np.random.default_rng(seed)
    S = rng.lognormal(1.0, 1.5, (n, k))
    p = rng.dirichlet(np.ones(k))
    b = S @ p * rng.lognormal(0.0, noise, n)
    return S, b, p


def r_dwls(S, b, MT, max_rounds=1000, tol=0.01):
    """The package's solveDampenedWLS, literally, on given gene subsets (columns of MT).

    Returns the (unnormalised) solution, the dampening exponent j, the rounds
    and the weights of the last solve.
    """
    x0 = scipy_nnls(S, b)[0]  # solveOLSInternal

    def ws_scaled(sol):  # (1 / (S sol))^2 / min(...)
        with np.errstate(divide="ignore"):
            ws = 1.0 / (S @ sol) ** 2
        return ws / ws.min()

    ws = ws_scaled(x0)  # findDampeningConstant
    top = ws[np.isfinite(ws)].max()
    js = range(1, int(np.ceil(np.log2(top))) + 1) if top > 1 else [1]
    scores = []
    for j in js:
        damped = np.minimum(ws, 2.0 ** (j - 1))
        sols = []
        for r in range(MT.shape[1]):
            sub = MT[:, r] > 0
            sw = np.sqrt(damped[sub])
            coef = np.linalg.lstsq(S[sub] * sw[:, None], b[sub] * sw, rcond=None)[0]  # lm
            sols.append(coef * x0.sum() / coef.sum())
        scores.append(np.mean(np.var(np.array(sols), axis=0, ddof=1)))
    j = list(js)[int(np.argmin(scores))]
    sol, rounds = x0, 0
    while rounds < max_rounds:  # solveDampenedWLSj, damped
        damped = np.minimum(ws_scaled(sol), 2.0 ** (j - 1))
        sw = np.sqrt(damped)
        new = scipy_nnls(S * sw[:, None], b * sw)[0]
        avg = (new + 4.0 * sol) / 5.0
        change = np.abs(avg - sol).sum()
        sol, rounds = avg, rounds + 1
        if change <= tol * sol.sum():
            break
    return sol, j, rounds, damped


def kernel_exponent(S, b, MT):
    """The exponent j the kernel chooses for one sample."""
    from fastdeconv.kernels.dwls import dwls_batch

    k = S.shape[1]
    z = lambda dtype: np.zeros(1, dtype)  # noqa: E731
    j = z(np.int64)
    dwls_batch(S, packed_outer(S), S.T @ S, b[None, :].copy(), MT, 1, 0.01, np.empty((1, k)),
               np.empty((1, S.shape[0])), z(np.int64), z(np.int64), z(np.int8), j, 100, 1e-11)
    return int(j[0])


def test_is_registered_with_its_options():
    record = REGRESSION.get("dwls")
    assert record.normalise and record.weights == "unsupported" and not record.background
    assert record.losses == ("squared", "huber")  # robust=None: the published DWLS
    assert set(record.options) == set(DWLS_OPTIONS) == set(record.option_docs)
    assert any("10.1038/s41467-019-10802-z" in ref for ref in record.references)


def test_planted_exact_mixture_is_recovered():
    rng = np.random.default_rng(3)
    S = rng.lognormal(1.0, 1.0, (120, 5))
    P = rng.dirichlet(np.ones(5), size=6).T
    fit = fit_dwls(problem(S, S @ P))
    assert fit.converged.all()
    np.testing.assert_allclose(fit.coefficients / fit.coefficients.sum(axis=0), P, atol=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2, 5, 8])
def test_matches_the_packages_loop_transcribed(seed):
    S, b, _ = noisy_case(seed)
    opts = dict(cv_repeats=20, seed=seed, tol=1e-6)
    MT = _subsets(S.shape[0], 20, 0.5, seed)
    sol, j, rounds, damped = r_dwls(S, b, MT, tol=1e-6)
    fit = fit_dwls(problem(S, b, **opts))
    assert kernel_exponent(S, b, MT) == j
    assert fit.n_reweight[0] == rounds and fit.converged[0]
    np.testing.assert_allclose(fit.coefficients[:, 0], sol, rtol=1e-9, atol=1e-12)
    # the weights are 1 / (S x)^2, scaled to a minimum of 1, capped at 2^(j - 1)
    np.testing.assert_allclose(fit.gene_weights[:, 0], damped, rtol=1e-9)
    assert fit.gene_weights[:, 0].max() <= 2.0 ** (j - 1) * (1 + 1e-12)


def test_default_rule_damped_and_stopped_at_tol():
    """Defaults: 100 subsets of half the genes, stop at an L1 step <= 0.01 x sum (the package's)."""
    S, b, _ = noisy_case(11, n=80, k=3)
    sol, j, rounds, _ = r_dwls(S, b, _subsets(80, 100, 0.5, 0))
    fit = fit_dwls(problem(S, b))
    assert fit.n_reweight[0] == rounds
    np.testing.assert_allclose(fit.coefficients[:, 0], sol, rtol=1e-9)


def test_inner_weighted_nnls_is_exact_kkt():
    """One round: x1 = (x_new + 4 x0) / 5 with x_new the weighted NNLS of the weights of x0."""
    for seed in range(4):
        S, b, _ = noisy_case(seed + 20, n=50, k=6, noise=0.5)
        fit = fit_dwls(problem(S, b, max_rounds=1, dampening=8))
        w = fit.gene_weights[:, 0]
        x0 = scipy_nnls(S, b)[0]
        x_new = 5.0 * fit.coefficients[:, 0] - 4.0 * x0
        sw = np.sqrt(w)
        oracle = scipy_nnls(S * sw[:, None], b * sw)[0]
        np.testing.assert_allclose(x_new, oracle, rtol=1e-7, atol=1e-9 * oracle.max())
        # KKT of min sum_g w_g (b - S x)_g^2, x >= 0
        x_new = np.where(x_new > 1e-9 * x_new.max(), x_new, 0.0)
        grad = S.T @ (w * (b - S @ x_new))
        scale = np.abs(S.T @ (w * b)).max()
        assert (grad <= 1e-8 * scale).all()
        assert np.abs(grad[x_new > 0]).max() <= 1e-8 * scale


def test_fixed_dampening_caps_the_weights():
    S, b, _ = noisy_case(4, noise=0.6)
    for j in (1, 3):
        fit = fit_dwls(problem(S, b, dampening=j))
        assert fit.gene_weights[:, 0].min() == pytest.approx(1.0)
        assert fit.gene_weights[:, 0].max() <= 2.0 ** (j - 1)
    # j = 1: every weight is 1, so the answer is the NNLS solution
    fit = fit_dwls(problem(S, b, dampening=1))
    x0 = scipy_nnls(S, b)[0]
    np.testing.assert_allclose(fit.coefficients[:, 0], x0, rtol=1e-9)


def test_deterministic_for_a_seed_and_same_for_any_thread_count():
    S, b, _ = noisy_case(7, n=70, k=4)
    rng = np.random.default_rng(0)
    B = np.column_stack([b * rng.lognormal(0, 0.2, b.size) for _ in range(40)])
    one = fit_dwls(RegressionProblem(S, B, n_jobs=1, options=dict(DWLS_OPTIONS, seed=3)))
    two = fit_dwls(RegressionProblem(S, B, n_jobs=2, options=dict(DWLS_OPTIONS, seed=3)))
    again = fit_dwls(RegressionProblem(S, B, n_jobs=2, options=dict(DWLS_OPTIONS, seed=3)))
    for fit in (two, again):
        np.testing.assert_array_equal(fit.coefficients, one.coefficients)
        np.testing.assert_array_equal(fit.gene_weights, one.gene_weights)
        np.testing.assert_array_equal(fit.n_reweight, one.n_reweight)
    # the subsets are the seed's: the kernel on them gives the same as the transcription
    sol, _, _, _ = r_dwls(S, B[:, 5], _subsets(70, 100, 0.5, 3))
    np.testing.assert_allclose(one.coefficients[:, 5], sol, rtol=1e-9)


@pytest.mark.parametrize("seed", [0, 2])
def test_rare_low_expression_type_is_estimated_better_than_by_nnls(seed):
    """The paper's point: under multiplicative noise, squares of highly expressed genes drown a
    rare cell type with low-expressed markers; the 1/(S x)^2 weights restore it."""
    rng = np.random.default_rng(seed)
    n, k, m = 150, 4, 40
    S = rng.lognormal(0.0, 0.5, (n, k)) * 0.05
    for t in range(k):
        S[30 * t:30 * (t + 1), t] *= 100 * (0.05 if t == 0 else 1)  # type 0: faint markers
    P = rng.dirichlet(np.ones(k), m).T
    P[0] *= 0.1
    P /= P.sum(axis=0)
    B = S @ P * rng.lognormal(0.0, 0.3, (n, m))
    X0 = np.array([scipy_nnls(S, B[:, j])[0] for j in range(m)]).T
    X0 /= X0.sum(axis=0)
    fit = fit_dwls(problem(S, B, cv_repeats=30))
    X1 = fit.coefficients / fit.coefficients.sum(axis=0)

    def rare_error(X):
        return np.mean(np.abs(X[0] - P[0]) / P[0])

    assert rare_error(X1) < 0.6 * rare_error(X0)
    assert np.abs(X1 - P).mean() < 0.7 * np.abs(X0 - P).mean()


def test_zero_solution_is_reported_not_crashed():
    S = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    fit = fit_dwls(problem(S, np.array([0.0, 0.0, 5.0])))
    assert fit.converged[0] and (fit.coefficients == 0).all()


@pytest.mark.parametrize("key, value, error, words", [
    ("cv_repeats", 1, ValueError, ">= 2"),
    ("cv_fraction", 1.0, ValueError, "< 1"),
    ("tol", -0.1, ValueError, ">= 0"),
    ("max_rounds", 0, ValueError, ">= 1"),
    ("dampening", 61, ValueError, "1..60"),
    ("seed", -1, ValueError, ">= 0"),
    ("cv_repeats", 2.5, TypeError, "integer"),
])
def test_bad_options_name_the_key(key, value, error, words):
    S, b, _ = noisy_case(0)
    with pytest.raises(error, match=rf"method_options=\{{'{key}': \.\.\.\}}.*{words}"):
        fit_dwls(problem(S, b, **{key: value}))


def test_a_direct_caller_may_give_some_options_only():
    S, b, _ = noisy_case(0)
    some = fit_dwls(RegressionProblem(S, b[:, None], options={"cv_repeats": 10}))
    full = fit_dwls(problem(S, b, cv_repeats=10))
    np.testing.assert_array_equal(some.coefficients, full.coefficients)


def test_through_the_pipeline():
    from fastdeconv.simulate import synthetic

    data = synthetic(n_genes=200, n_types=4, n_samples=6, seed=0)
    res = fastdeconv.deconvolve(data.bulk, data.signature, method="dwls",
                                method_options={"cv_repeats": 10})
    np.testing.assert_allclose(res.proportions.sum(axis=1), 1.0)
    assert res.fit["converged"].all()
    with pytest.raises(ValueError, match="cv_repeats"):
        fastdeconv.deconvolve(data.bulk, data.signature, method="dwls",
                              method_options={"cv_repeats": 0})
    with pytest.raises(ValueError, match="no option 'nu'"):
        fastdeconv.deconvolve(data.bulk, data.signature, method="dwls",
                              method_options={"nu": 0.5})
    with pytest.raises(ValueError, match="weights"):
        fastdeconv.deconvolve(data.bulk, data.signature, method="dwls",
                              weights=np.ones(len(data.signature)))


def test_reading_the_registry_imports_no_numba():
    """The command line reads the record for --help: the method's module must stay light."""
    import subprocess
    import sys

    code = ("import sys, fastdeconv.methods.dwls as m; "
            "print('numba' in sys.modules, m.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "fastdeconv.methods.dwls"]


def test_huber_refit_is_the_weighted_huber_fit_on_the_dwls_weights():
    from fastdeconv.solvers._core import solve

    rng = np.random.default_rng(7)
    S = rng.gamma(0.7, 100.0, size=(200, 4))
    P = rng.dirichlet(np.ones(4), size=6).T
    B = S @ P
    B[:6] *= 40.0  # outlier genes: DWLS's squares follow them, Huber's loss does not
    huber = (1.345, 500, 1e-5)
    plain = fit_dwls(RegressionProblem(S, B, options=dict(DWLS_OPTIONS)))
    robust = fit_dwls(RegressionProblem(S, B, options=dict(DWLS_OPTIONS), huber=huber))
    err = lambda X: np.abs(X / X.sum(axis=0) - P).max()  # noqa: E731
    assert err(robust.coefficients) < 0.5 * err(plain.coefficients)
    assert err(robust.coefficients) < 0.02
    for j in range(B.shape[1]):  # each sample: the core's weighted Huber fit on DWLS's weights
        w = plain.gene_weights[:, j] / plain.gene_weights[:, j].max()
        x, _ = solve(S, B[:, j:j + 1], kind="nnls", weights=w, huber=huber)
        np.testing.assert_allclose(robust.coefficients[:, j], x[:, 0], rtol=1e-9, atol=1e-12)
