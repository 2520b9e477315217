"""Tests of the mutual-linearity kernels against naive NumPy/SciPy versions."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from fastdeconv.kernels.linearity import (
    accumulate_block,
    pair_weights,
    saddlepoint_pvalues,
    window_sums,
)
from fastdeconv.reference_free import _linearity, _normalise, _permutation_pvalues


def _naive_weights(G, threshold=0.0):
    """Dense n x n edge weights: the R^2 of the identity fit and Spearman, as LinSeed defines them."""
    X = G / G.sum(axis=1, keepdims=True)
    n = len(X)
    W = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            xi, xj = X[i], X[j]
            tss_i = ((xi - xi.mean()) ** 2).sum()
            tss_j = ((xj - xj.mean()) ** 2).sum()
            if tss_i == 0 or tss_j == 0:
                continue
            rss = ((xi - xj) ** 2).sum()
            r2 = 0.5 * (1 - rss / tss_i) + 0.5 * (1 - rss / tss_j)
            rho = spearmanr(G[i], G[j]).statistic
            if r2 > 0 and rho > threshold:
                W[i, j] = r2 * rho
    return W


def _mixture(n=60, m=8, k=3, seed=0):
    rng = np.random.default_rng(seed)
    H = rng.dirichlet(np.ones(k), size=m).T
    W = rng.gamma(0.5, 10.0, size=(n, k))
    return W @ H * rng.lognormal(0, 0.05, size=(n, m))


@pytest.mark.parametrize("threshold", [0.0, 0.45])  # 0.45: not a Spearman value of 8 samples
def test_accumulate_block_matches_naive(threshold):
    G = _mixture()
    X, sq, tss, R = _normalise(G)
    naive = _naive_weights(G, threshold)
    n = len(G)
    power = np.zeros(n)
    degree = np.zeros(n, dtype=np.int64)
    hist_count = np.zeros(64, dtype=np.int64)
    hist_sum = np.zeros(64)
    total_edges = 0
    for a in range(0, n, 7):  # uneven blocks
        z = min(a + 7, n)
        e, _ = accumulate_block(X[a:z] @ X[a:].T, R[a:z] @ R[a:].T, a, sq, tss, threshold,
                                power, degree, hist_count, hist_sum)
        total_edges += e
    np.testing.assert_allclose(power, naive.sum(axis=1), rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(degree, (naive > 0).sum(axis=1))
    assert total_edges == int((naive > 0).sum()) // 2
    # the histogram of the edge weights: counts and exact sums per bin
    w = naive[np.triu_indices(n, 1)]
    w = w[w > 0]
    bins = np.minimum((w * 64).astype(int), 63)
    np.testing.assert_array_equal(hist_count, np.bincount(bins, minlength=64))
    np.testing.assert_allclose(hist_sum, np.bincount(bins, weights=w, minlength=64), rtol=1e-12)


def test_linearity_driver_independent_of_blocks_and_threads():
    G = _mixture(n=97, seed=3)
    X, sq, tss, R = _normalise(G)
    ref = _linearity(X, R, sq, tss, 0.0, 97, 1)
    for block, jobs in [(5, 1), (16, 2), (33, 3)]:
        got = _linearity(X, R, sq, tss, 0.0, block, jobs)
        np.testing.assert_allclose(got[0], ref[0], rtol=1e-12)
        np.testing.assert_array_equal(got[3].count, ref[3].count)
        np.testing.assert_array_equal(got[1], ref[1])
        assert got[2] == ref[2]
    # identical for the same block size whatever the number of threads
    a = _linearity(X, R, sq, tss, 0.0, 10, 1)
    b = _linearity(X, R, sq, tss, 0.0, 10, 4)
    np.testing.assert_array_equal(a[0], b[0])


def test_constant_and_zero_variance_genes_have_no_edges():
    G = _mixture(n=20)
    G[3] = 7.0  # constant gene: the NaN that crashes the R package
    G[5] = G[4] * 2.0  # exactly proportional pair: r2 == 1
    X, sq, tss, R = _normalise(G)
    power, degree, _, _ = _linearity(X, R, sq, tss, 0.0, 8, 1)
    assert np.isfinite(power).all()
    assert degree[3] == 0 and power[3] == 0.0
    w = pair_weights(X, R, sq, tss, np.array([4, 3]), np.array([5, 4]), 0.0)
    assert w[0] == pytest.approx(1.0)
    assert w[1] == 0.0


def test_pair_weights_match_naive():
    G = _mixture(n=25, seed=5)
    X, sq, tss, R = _normalise(G)
    naive = _naive_weights(G)
    rng = np.random.default_rng(1)
    i = rng.integers(0, 25, 200)
    j = (i + rng.integers(1, 25, 200)) % 25
    np.testing.assert_allclose(pair_weights(X, R, sq, tss, i, j, 0.0), naive[i, j], atol=1e-12)


def test_window_sums_match_loop():
    rng = np.random.default_rng(2)
    pool = rng.random((5, 30))
    cum = np.zeros((5, 31))
    cum[:, 1:] = np.cumsum(pool, axis=1)
    degree = rng.integers(0, 15, 12)
    power = rng.random(12) * 8
    starts = (rng.random((5, 12)) * (30 - degree + 1)).astype(np.int64)
    expect = np.zeros(12, dtype=np.int64)
    for b in range(5):
        for g in range(12):
            expect[g] += pool[b, starts[b, g]:starts[b, g] + degree[g]].sum() >= power[g]
    np.testing.assert_array_equal(window_sums(cum, starts, degree, power), expect)


def test_permutation_null_matches_edge_reassignment():
    """The pooled-window null gives each gene the p-value of LinSeed's edge re-assignment."""
    G = _mixture(n=40, m=6, seed=7)
    X, sq, tss, R = _normalise(G)
    power, degree, n_edges, _ = _linearity(X, R, sq, tss, 0.0, 40, 1)
    iters = 400
    ours = _permutation_pvalues(X, R, sq, tss, power, degree, n_edges, 0.0, iters,
                                np.random.default_rng(0))
    # naive: re-assign all edge weights with replacement, sum per vertex (the R package)
    naive_w = _naive_weights(G)
    iu = np.triu_indices(len(G), 1)
    mask = naive_w[iu] > 0
    ii, jj, vals = iu[0][mask], iu[1][mask], naive_w[iu][mask]
    rng = np.random.default_rng(1)
    count = np.zeros(len(G))
    for _ in range(iters):
        v = rng.choice(vals, size=vals.size, replace=True)
        stat = np.bincount(ii, v, len(G)) + np.bincount(jj, v, len(G))
        count += stat >= power - 1e-12
    naive = (count + 1) / (iters + 1)
    # Monte Carlo p-values of two independent runs: agree within sampling error
    assert np.abs(ours - naive).max() < 0.12
    assert np.corrcoef(ours, naive)[0, 1] > 0.95
    assert np.all(ours[degree == 0] == 1.0)


def test_saddlepoint_pvalues_match_the_sampled_null():
    """The saddlepoint tail of a sum of d draws from a weight distribution vs simulation."""
    rng = np.random.default_rng(0)
    weights = rng.beta(2.0, 5.0, 20000)
    from fastdeconv.reference_free import EdgeWeights, HISTOGRAM_BINS

    bins = np.minimum((weights * HISTOGRAM_BINS).astype(int), HISTOGRAM_BINS - 1)
    hist = EdgeWeights(np.bincount(bins, minlength=HISTOGRAM_BINS),
                       np.bincount(bins, weights=weights, minlength=HISTOGRAM_BINS))
    values, probs = hist.support()
    for d in (1, 4, 30):
        sums = rng.choice(weights, size=(100000, d)).sum(axis=1)
        for q in (0.5, 0.9, 0.99):
            x = np.quantile(sums, q)
            p = saddlepoint_pvalues(np.array([x]), np.array([d]), values, probs)[0]
            assert abs(p - (1 - q)) <= 0.12 * (1 - q) + 0.003, (d, q, p)
    # beyond the largest weight nothing reaches it; a gene without edges has p = 1
    p = saddlepoint_pvalues(np.array([5.0, 0.0]), np.array([4, 0]), values, probs)
    assert p[0] == 0.0 and p[1] == 1.0


def test_saddlepoint_null_agrees_with_the_permutation_null():
    """Both nulls give the same p-values up to the permutations' Monte Carlo error."""
    from fastdeconv.reference_free import _saddlepoint_pvalues

    G = _mixture(n=60, m=8, seed=11)
    X, sq, tss, R = _normalise(G)
    power, degree, n_edges, weights = _linearity(X, R, sq, tss, 0.0, 60, 1)
    exact = _saddlepoint_pvalues(power, degree, weights)
    sampled = _permutation_pvalues(X, R, sq, tss, power, degree, n_edges, 0.0, 4000,
                                   np.random.default_rng(0))
    assert np.abs(exact - sampled).max() < 0.05
    assert np.corrcoef(exact, sampled)[0, 1] > 0.99
