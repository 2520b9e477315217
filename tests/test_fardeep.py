"""method="fardeep": the R package's fardeep(), alts(), tuningBIC() against a NumPy transcription.

Oracles: a planted exact mixture; a line-by-line transcription of the
package's loops with scipy's NNLS (every threshold of the grid run on its
own); planted outlier genes (a few genes of the bulk multiplied by 50), which
pull plain NNLS off and which the trimming removes; the final fit against
scipy.optimize.nnls on the kept genes.
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
from fastdeconv.methods.fardeep import FARDEEP_OPTIONS, fit_fardeep, threshold_grid  # noqa: E402


def problem(S, B, n_jobs=None, **options):
    B = B[:, None] if B.ndim == 1 else B
    return RegressionProblem(np.ascontiguousarray(S), np.ascontiguousarray(B), n_jobs=n_jobs,
                             options=dict(FARDEEP_OPTIONS, **options))


def contaminated(seed, n=150, k=3, noise=0.1, n_bad=5, factor=50.0):
    rng = np.random.default_rng(seed)
    S = rng.lognormal(size=(n, k))
    p = rng.dirichlet(np.ones(k))
    b = S @ p * rng.lognormal(0.0, noise, n)
    bad = rng.choice(n, n_bad, replace=False)
    b[bad] *= factor
    return S, b, p, bad


# ---------------------------------------------------------------- the package, transcribed

def _first_above(sorted_r, threshold):
    """R's min(which(sorted_r > threshold)), 1-based; Inf when there is none."""
    idx = np.flatnonzero(sorted_r > threshold)
    return idx[0] + 1 if idx.size else np.inf


def r_alts(x, y, alpha1, alpha2, k, intercept):
    n = len(y)
    X1 = np.column_stack([np.ones(n), x]) if intercept else x
    beta = scipy_nnls(X1, y)[0]
    res = np.abs(y - X1 @ beta)
    order_id = np.argsort(res, kind="stable")
    res_int = res[order_id]
    k_up = n - _first_above(res_int, np.median(res_int))
    k_low_ex = alpha1 * k_up
    keep = order_id[np.arange(1, n + 1) < n - np.ceil(k_low_ex) + 1]
    pos = np.arange(1, n + 1)
    while True:
        beta = scipy_nnls(X1[keep], y[keep])[0]
        res_new = np.abs(y - X1 @ beta)
        order_id = np.argsort(res_new, kind="stable")
        temp = n - _first_above(res_new[order_id], k * np.median(res_new))
        while temp <= 0:
            k = k - 1
            temp = n - _first_above(res_int, k * np.median(res_int))
        k_up = min(temp, k_up)
        k_low_ex = alpha2 * k_low_ex
        k_low = min(np.ceil(k_low_ex), k_up)
        out = pos > n - k_low
        keep = order_id[pos < n - k_low + 1]
        if np.all(out == (pos > n - k_up)):
            break
    beta = scipy_nnls(X1[keep], y[keep])[0]
    return beta, order_id[out], keep, k, X1


def r_fardeep(x, y, alpha1=0.1, alpha2=1.5, up=10.0, low=1.0, intercept=True, lognorm=True):
    n, p = x.shape
    bic, para = [], []
    for j in threshold_grid(low, up, 0.1):  # tuningBIC
        beta, outliers, keep, k, X1 = r_alts(x, y, alpha1, alpha2, j, intercept)
        res = y[keep] - X1[keep] @ beta
        if lognorm:
            res = np.log2(np.abs(res))
        no = outliers.size
        bic.append((n - no) * np.log(res @ res / (n - no)) + (no + p + 1) * (np.log(n - no) + 1))
        para.append(k)
    k = para[int(np.argmin(bic))]
    beta, outliers, _, _, _ = r_alts(x, y, alpha1, alpha2, k, intercept)  # fardeep()
    return beta, np.sort(outliers)


# ---------------------------------------------------------------- tests

def test_is_registered_with_its_options():
    record = REGRESSION.get("fardeep")
    assert record.normalise and record.weights == "unsupported" and not record.background
    assert record.losses == ("squared",)
    assert set(record.options) == set(FARDEEP_OPTIONS) == set(record.option_docs)
    assert any("10.1371/journal.pcbi.1006976" in ref for ref in record.references)


def test_planted_exact_mixture_is_recovered():
    rng = np.random.default_rng(3)
    S = rng.lognormal(1.0, 1.0, (120, 5))
    P = rng.dirichlet(np.ones(5), size=4).T
    fit = fit_fardeep(problem(S, S @ P))
    assert fit.converged.all()
    np.testing.assert_allclose(fit.coefficients, P, atol=1e-9)


@pytest.mark.parametrize("seed, intercept, lognorm, alpha1, alpha2", [
    (0, True, True, 0.1, 1.5),
    (1, True, True, 0.1, 1.5),
    (2, False, False, 0.1, 1.5),
    (3, True, False, 0.3, 1.2),
    (4, False, True, 0.1, 2.0),
    (5, True, True, 0.05, 1.5),
])
def test_matches_the_packages_loops_transcribed(seed, intercept, lognorm, alpha1, alpha2):
    S, b, _, _ = contaminated(seed, n=90 + 10 * seed, noise=0.05 + 0.05 * seed)
    beta, outliers = r_fardeep(S, b, alpha1, alpha2, intercept=intercept, lognorm=lognorm)
    fit = fit_fardeep(problem(S, b, alpha1=alpha1, alpha2=alpha2, intercept=intercept,
                              lognorm=lognorm))
    ours = fit.coefficients[:, 0]
    np.testing.assert_allclose(ours, beta[1:] if intercept else beta, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(np.flatnonzero(fit.gene_weights[:, 0] == 0), outliers)
    assert set(np.unique(fit.gene_weights)) <= {0.0, 1.0}


@pytest.mark.parametrize("seed", range(4))
def test_planted_outliers_are_trimmed_where_nnls_is_pulled_off(seed):
    S, b, p, bad = contaminated(seed, n=200, k=4, noise=0.1, n_bad=10)
    x = scipy_nnls(S, b)[0]
    nnls_error = np.abs(x / x.sum() - p).max()
    fit = fit_fardeep(problem(S, b))
    est = fit.coefficients[:, 0] / fit.coefficients[:, 0].sum()
    trimmed = np.flatnonzero(fit.gene_weights[:, 0] == 0)
    # the package trims one fewer than the residuals above k medians: 9 of the 10 at least
    assert np.isin(bad, trimmed).sum() >= bad.size - 1
    assert nnls_error > 0.15
    assert np.abs(est - p).max() < 0.4 * nnls_error


def test_final_fit_is_the_nnls_of_the_kept_genes():
    S, b, _, _ = contaminated(9, n=120, k=5, noise=0.3)
    fit = fit_fardeep(problem(S, b))
    kept = fit.gene_weights[:, 0] == 1
    A = np.column_stack([np.ones(S.shape[0]), S])
    oracle = scipy_nnls(A[kept], b[kept])[0][1:]
    np.testing.assert_allclose(fit.coefficients[:, 0], oracle, rtol=1e-8, atol=1e-10)


def test_same_answer_for_any_thread_count_and_run():
    rng = np.random.default_rng(0)
    S, b, _, _ = contaminated(1, n=100)
    B = np.column_stack([b * rng.lognormal(0, 0.2, b.size) for _ in range(40)])
    one = fit_fardeep(problem(S, B, n_jobs=1))
    for fit in (fit_fardeep(problem(S, B, n_jobs=2)), fit_fardeep(problem(S, B, n_jobs=2))):
        np.testing.assert_array_equal(fit.coefficients, one.coefficients)
        np.testing.assert_array_equal(fit.gene_weights, one.gene_weights)


def test_threshold_grid_is_rs_seq():
    np.testing.assert_allclose(threshold_grid(1.0, 10.0, 0.1), np.linspace(1, 10, 91))
    assert threshold_grid(2.0, 2.0, 0.1).tolist() == [2.0]
    assert threshold_grid(1.0, 2.05, 0.5).tolist() == [1.0, 1.5, 2.0]


@pytest.mark.parametrize("key, value, error, words", [
    ("alpha1", 0.0, ValueError, "> 0"),
    ("alpha1", 1.5, ValueError, "<= 1"),
    ("alpha2", 1.0, ValueError, "> 1"),
    ("low", 0.0, ValueError, "> 0"),
    ("step", -0.1, ValueError, "> 0"),
    ("intercept", 1, ValueError, "True or False"),
    ("up", "ten", TypeError, "number"),
])
def test_bad_options_name_the_key(key, value, error, words):
    S, b, _, _ = contaminated(0, n=40)
    with pytest.raises(error, match=rf"method_options=\{{'{key}': \.\.\.\}}.*{words}"):
        fit_fardeep(problem(S, b, **{key: value}))
    with pytest.raises(ValueError, match="must not exceed"):
        fit_fardeep(problem(S, b, low=5.0, up=2.0))


def test_through_the_pipeline():
    from fastdeconv.simulate import synthetic

    data = synthetic(n_genes=200, n_types=4, n_samples=6, seed=0)
    res = fastdeconv.deconvolve(data.bulk, data.signature, method="fardeep",
                                method_options={"step": 0.5})
    np.testing.assert_allclose(res.proportions.sum(axis=1), 1.0)
    assert res.fit["converged"].all()
    with pytest.raises(ValueError, match="alpha2"):
        fastdeconv.deconvolve(data.bulk, data.signature, method="fardeep",
                              method_options={"alpha2": 0.5})
    with pytest.raises(ValueError, match="background"):
        fastdeconv.deconvolve(data.bulk, data.signature, method="fardeep", background=True)


def test_reading_the_registry_imports_no_numba():
    """The command line reads the record for --help: the method's module must stay light."""
    import subprocess
    import sys

    code = ("import sys, fastdeconv.methods.fardeep as m; "
            "print('numba' in sys.modules, m.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "fastdeconv.methods.fardeep"]
