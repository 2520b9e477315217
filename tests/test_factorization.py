"""Factorisations for reference-free deconvolution (fastdeconv.factorization, kernels/nmf.py).

Oracles: a naive NumPy HALS sweep, planted exact factorisations (unique: marker
genes and pure samples), the KKT conditions of NNLS and scipy.optimize.nnls.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

from fastdeconv.factorization import (
    Factorization,
    _finish,
    anchors,
    ica,
    match_components,
    nmf,
)
from fastdeconv.kernels.nmf import hals_update


# --------------------------------------------------------------------------- planted data


def _planted_markers(n=300, m=15, k=3, seed=0):
    """Exact G = W H with a unique NMF: 10 marker genes per type, k pure samples."""
    rng = np.random.default_rng(seed)
    W = rng.gamma(1.0, size=(n, k))
    for j in range(k):
        rows = np.arange(10 * j, 10 * (j + 1))
        W[rows] = 0.0
        W[rows, j] = rng.gamma(2.0, size=10) + 1.0
    H = rng.dirichlet(np.ones(k), size=m).T
    H[:, :k] = np.eye(k)
    return W, H


def _planted_anchors(n=200, m=12, k=4, seed=1):
    """Exact G = W H with one anchor gene per type (at rows ``anchor``), Dirichlet H."""
    rng = np.random.default_rng(seed)
    W = rng.gamma(1.0, size=(n, k))
    anchor = rng.choice(n, size=k, replace=False)
    W[anchor] = np.diag(rng.uniform(3.0, 6.0, size=k))
    H = rng.dirichlet(np.ones(k), size=m).T
    return W, H, anchor


def _scaled_H(W, H):
    """H in the units of a factorisation whose W columns sum to 1."""
    return H * W.sum(axis=0)[:, None]


def _match_rows(H_ref, H):
    """H's rows in the order of H_ref (matched on row-normalised profiles)."""
    perm = match_components(H_ref / H_ref.sum(1, keepdims=True), H / H.sum(1, keepdims=True))
    return H[perm], perm


# --------------------------------------------------------------------------- the kernel


def _naive_hals(X, gram, proj, sweeps, floor):
    X = X.copy()
    for _ in range(sweeps):
        for j in range(X.shape[1]):
            X[:, j] = np.maximum(floor, X[:, j] + (proj[:, j] - X @ gram[:, j]) / gram[j, j])
    return X


@pytest.mark.parametrize("sweeps", [1, 3])
def test_hals_kernel_matches_a_naive_numpy_sweep(sweeps):
    rng = np.random.default_rng(3)
    n, m, k = 40, 9, 4
    G = rng.gamma(1.0, size=(n, m))
    H = rng.gamma(1.0, size=(k, m))
    W = rng.gamma(1.0, size=(n, k))
    gram, proj = np.ascontiguousarray(H @ H.T), np.ascontiguousarray(G @ H.T)
    X = W.copy()
    done, change = hals_update(X, gram, proj, sweeps, 0.0, 1e-16)
    assert done == sweeps
    expected = _naive_hals(W, gram, proj, sweeps, 1e-16)
    np.testing.assert_allclose(X, expected, rtol=1e-12, atol=1e-14)
    assert (X >= 1e-16).all() and (X == 1e-16).any()  # some entries clipped at the floor
    # the last sweep's squared change
    before = _naive_hals(W, gram, proj, sweeps - 1, 1e-16)
    assert change == pytest.approx(float(((expected - before) ** 2).sum()), rel=1e-9)


def test_hals_kernel_stops_when_a_sweep_changes_little():
    rng = np.random.default_rng(4)
    G, H = rng.gamma(1.0, size=(30, 8)), rng.gamma(1.0, size=(3, 8))
    gram, proj = np.ascontiguousarray(H @ H.T), np.ascontiguousarray(G @ H.T)
    X = rng.gamma(1.0, size=(30, 3))
    done, _ = hals_update(X.copy(), gram, proj, 100, 0.1, 1e-16)
    assert 1 < done < 100
    Y = X.copy()
    hals_update(Y, gram, proj, 100, 0.1, 1e-16)
    np.testing.assert_allclose(Y, _naive_hals(X, gram, proj, done, 1e-16), rtol=1e-11)
    # a zero diagonal (a dead column) is left alone, not divided by
    gram0 = gram.copy()
    gram0[1, :] = gram0[:, 1] = 0.0
    Z = X.copy()
    hals_update(Z, gram0, proj, 2, 0.0, 1e-16)
    assert np.all(np.isfinite(Z)) and np.array_equal(Z[:, 1], X[:, 1])


# --------------------------------------------------------------------------- planted recovery


def test_nmf_recovers_a_planted_factorisation():
    W, H = _planted_markers()
    G = W @ H
    fit = nmf(G, 3, n_restarts=3, n_jobs=1)
    assert isinstance(fit, Factorization)
    got, perm = _match_rows(_scaled_H(W, H), fit.H)
    np.testing.assert_allclose(got, _scaled_H(W, H), atol=1e-6 * H.max() * W.sum(0).max())
    np.testing.assert_allclose(fit.W[:, perm], W / W.sum(0), atol=1e-8)
    assert fit.info["relative_error"] < 1e-9
    np.testing.assert_allclose(fit.W.sum(axis=0), 1.0, rtol=1e-12)
    assert fit.objective == pytest.approx(0.5 * ((G - fit.W @ fit.H) ** 2).sum(), abs=1e-20)
    assert fit.converged and fit.anchors is None and fit.info["empty_components"] == []
    assert fit.restarts.shape == (3,) and fit.objective == pytest.approx(fit.restarts.min())
    assert fit.stability == 1.0  # a unique factorisation: every restart finds it


def test_nmf_from_an_array_start():
    W, H = _planted_markers(seed=5)
    G = W @ H
    start = H * np.random.default_rng(0).lognormal(0.0, 0.2, size=H.shape) + 0.01
    fit = nmf(G, 3, init=start, n_restarts=1)
    got, _ = _match_rows(_scaled_H(W, H), fit.H)
    np.testing.assert_allclose(got, _scaled_H(W, H), atol=1e-6 * _scaled_H(W, H).max())
    assert fit.info["init"] == "array" and fit.stability == 1.0


def test_anchors_recovers_planted_anchors_and_H():
    W, H, anchor = _planted_anchors()
    G = W @ H
    fit = anchors(G, 4)
    assert sorted(fit.anchors.tolist()) == sorted(anchor.tolist())
    got, perm = _match_rows(_scaled_H(W, H), fit.H)
    np.testing.assert_allclose(got, _scaled_H(W, H), rtol=1e-6)
    np.testing.assert_allclose(fit.W[:, perm], W / W.sum(0), atol=1e-8)
    assert fit.info["relative_error"] < 1e-10 and fit.info["n_outside"] == 0
    assert fit.restarts.tolist() == [fit.objective] and fit.stability == 1.0
    # genes with no counts are left out and get zero rows of W
    G0 = np.vstack([G, np.zeros((1, G.shape[1]))])
    fit0 = anchors(G0, 4)
    assert np.array_equal(fit0.W[-1], np.zeros(4))
    np.testing.assert_allclose(fit0.H, fit.H, rtol=1e-12)


def test_ica_recovers_proportions_of_a_planted_non_gaussian_mixture():
    rng = np.random.default_rng(7)
    k = 4
    W = rng.lognormal(0.0, 1.5, size=(3000, k))  # heavy-tailed, independent across types
    H = rng.dirichlet(np.ones(k), size=25).T
    fit = ica(W @ H, k, seed=0)
    P = fit.proportions
    perm = match_components(H, P)
    r = [np.corrcoef(H[j], P[perm[j]])[0, 1] for j in range(k)]
    assert min(r) > 0.95, r
    assert fit.converged and fit.restarts.shape == (1,) and fit.stability == 1.0
    assert np.all(fit.info["skewness"] > 0)
    np.testing.assert_allclose(fit.W.sum(axis=0), 1.0)
    again = ica(W @ H, k, seed=0)
    assert np.array_equal(again.H, fit.H) and np.array_equal(again.W, fit.W)


# --------------------------------------------------------------------------- optimality of H


def _noisy(seed=11, n=400, m=20, k=3):
    rng = np.random.default_rng(seed)
    W, H = rng.gamma(0.5, size=(n, k)), rng.dirichlet(np.ones(k), size=m).T
    return W @ H * rng.lognormal(0.0, 0.3, size=(n, m))


def _check_nnls_optimal(G, W, H):
    from scipy.optimize import nnls

    grad = W.T @ (W @ H - G)  # gradient of 0.5||G - WH||^2 in H
    scale = np.abs(W.T @ G).max()
    assert grad.min() >= -1e-9 * scale
    assert np.abs(grad[H > 0]).max() <= 1e-9 * scale
    for j in range(G.shape[1]):
        x, _ = nnls(W, G[:, j])
        np.testing.assert_allclose(H[:, j], x, rtol=1e-7, atol=1e-10 * np.abs(x).max())


def test_nmf_H_is_the_nnls_solution_given_W():
    G = _noisy()
    fit = nmf(G, 3, n_restarts=2, n_jobs=1)
    assert fit.info["relative_error"] > 0.05  # a noisy fit: the bounds are active somewhere
    assert (fit.H == 0).any()
    _check_nnls_optimal(G, fit.W, fit.H)


def test_ica_H_is_the_nnls_solution_given_W():
    G = _noisy(seed=12, n=600)
    fit = ica(G, 3)
    _check_nnls_optimal(G, fit.W, fit.H)


# --------------------------------------------------------------------------- determinism, restarts


def test_nmf_is_deterministic_and_independent_of_threads():
    G = _noisy(seed=13, n=300)
    a = nmf(G, 3, n_restarts=4, seed=5, n_jobs=1)
    b = nmf(G, 3, n_restarts=4, seed=5, n_jobs=2)
    c = nmf(G, 3, n_restarts=4, seed=5, n_jobs=2)
    for x in (b, c):
        assert np.array_equal(a.W, x.W) and np.array_equal(a.H, x.H)
        assert np.array_equal(a.restarts, x.restarts) and a.stability == x.stability
    d = nmf(G, 3, n_restarts=4, seed=6, n_jobs=2)
    assert d.restarts[0] == a.restarts[0]  # restart 0 is the unperturbed start
    assert not np.array_equal(d.restarts[1:], a.restarts[1:])
    # restart r does not depend on how many restarts run
    e = nmf(G, 3, n_restarts=2, seed=5, n_jobs=1)
    assert np.array_equal(e.restarts, a.restarts[:2])


def _same(objs, G):
    """Objectives counted as the best one (nmf's rule for n_restarts="auto")."""
    return objs - objs.min() <= max(1e-6 * objs.min(), 1e-12 * 0.5 * (G**2).sum())


def test_auto_restarts_stop_once_the_best_objective_repeats():
    W, H = _planted_markers(seed=2)
    G = W @ H
    fit = nmf(G, 3, n_restarts="auto", n_jobs=2)
    assert fit.restarts.size == 4  # every start reaches the exact optimum (at rounding level)
    assert fit.restarts.max() < 1e-20 * (G**2).sum()
    G = _noisy(seed=14, n=200)
    fit = nmf(G, 4, n_restarts="auto", n_jobs=2, max_iter=50)
    objs = fit.restarts
    assert objs.size % 4 == 0 and objs.size <= 40
    # it stops when two runs reach the best objective, or agree with the best run's
    # proportions to 0.01 (not visible from the objectives alone); the earlier rounds
    # did not already meet the objective part of the rule
    for r in range(4, objs.size, 4):
        assert np.sum(_same(objs[:r], G)) < 2


def test_stability_counts_restarts_agreeing_with_the_best():
    G = _noisy(seed=15, n=300)
    fit = nmf(G, 3, n_restarts=5, n_jobs=2)
    assert fit.stability in {i / 5 for i in range(1, 6)}


def test_match_components_is_the_best_permutation():
    rng = np.random.default_rng(0)
    P = rng.dirichlet(np.ones(4), size=6).T
    perm = np.array([2, 0, 3, 1])
    got = match_components(P, P[np.argsort(perm)])
    assert np.array_equal(np.argsort(perm)[got], np.arange(4))
    assert got.dtype == np.int64
    with pytest.raises(ValueError, match="same shape"):
        match_components(P, P[:3])


def test_empty_components_are_zeroed_and_reported():
    G = np.abs(np.random.default_rng(0).standard_normal((10, 5)))
    W = np.abs(np.random.default_rng(1).standard_normal((10, 3)))
    W[:, 1] = 0.0
    H = np.ones((3, 5))
    fit = _finish(G, W, H, method="nmf", n_iter=0, converged=True, restarts=[0.0], stability=1.0)
    assert fit.info["empty_components"] == [1]
    assert np.array_equal(fit.W[:, 1], np.zeros(10)) and np.array_equal(fit.H[1], np.zeros(5))
    np.testing.assert_allclose(fit.W[:, [0, 2]].sum(0), 1.0)
    np.testing.assert_allclose(fit.W @ fit.H, W @ H)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("func", [nmf, ica, anchors])
@pytest.mark.parametrize(
    "G, k, error, match",
    [
        (np.ones((20, 5)), 1, ValueError, "k must be"),
        (np.ones((20, 5)), 2.5, TypeError, "k must be"),
        (np.ones((20, 3)), 3, ValueError, "samples"),
        (np.ones((3, 10)), 3, ValueError, "genes"),
        (np.ones(20), 2, ValueError, "2-D"),
        (np.full((20, 5), np.nan), 2, ValueError, "NaN"),
        (-np.ones((20, 5)), 2, ValueError, "negative"),
        (np.zeros((20, 5)), 2, ValueError, "all zero"),
        ([["a", "b", "c"]] * 5, 2, TypeError, "numeric"),
    ],
)
def test_bad_input_is_refused(func, G, k, error, match):
    with pytest.raises(error, match=match):
        func(G, k)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"n_restarts": 0}, ValueError, "n_restarts"),
        ({"n_restarts": "many"}, ValueError, "n_restarts"),
        ({"init": "random"}, ValueError, "init"),
        ({"init": np.ones((2, 5))}, ValueError, "init must have shape"),
        ({"init": -np.ones((3, 5))}, ValueError, "non-negative"),
        ({"tol": -1.0}, ValueError, "tol"),
        ({"max_iter": -1}, ValueError, "max_iter"),
        ({"n_jobs": 0}, ValueError, "n_jobs"),
    ],
)
def test_bad_nmf_options_are_refused(kwargs, error, match):
    G = np.random.default_rng(0).gamma(1.0, size=(20, 5))
    with pytest.raises(error, match=match):
        nmf(G, 3, **kwargs)


def test_ica_without_scikit_learn_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.decomposition", None)
    with pytest.raises(ImportError, match="pip install scikit-learn"):
        ica(np.random.default_rng(0).gamma(1.0, size=(50, 5)), 2)
