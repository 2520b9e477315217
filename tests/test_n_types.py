"""Rules for the number of cell types (fastdeconv.n_types): planted k, oracles, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from fastdeconv import n_types as nt
from fastdeconv.n_types import (
    K_RULES,
    KChoice,
    bcv_folds,
    bicross_validation_k,
    choose_k,
    mdl_k,
    spectrum_k,
)


def planted(k, n=400, m=24, noise=0.02, seed=0):
    """G = W H times log-normal noise: W gamma profiles, H Dirichlet proportions (k x m)."""
    rng = np.random.default_rng(seed + 17 * k)
    W = rng.gamma(0.3, 10.0, (n, k))
    H = rng.dirichlet(np.ones(k), m).T
    G = W @ H * rng.lognormal(0.0, noise, (n, m))
    return G, W, H


def rownorm(G):
    return G / G.sum(axis=1, keepdims=True)


def nnls_fits(G, ks, planted_k=None, W=None, H=None):
    """k -> (W, H): the planted factorisation at the planted k, an NNLS alternation elsewhere."""
    fits = {}
    for k in ks:
        if k == planted_k:
            fits[k] = (W, H)
        else:
            fits[k] = nt._nmf(G, k, 100, 1e-9, None)
    return fits


# ------------------------------------------------------------ planted k


@pytest.mark.parametrize("k", [2, 3, 4, 5, 6])
def test_spectrum_recovers_planted_k(k):
    G, _, _ = planted(k)
    assert spectrum_k(rownorm(G)).k == k


@pytest.mark.parametrize("k", [2, 3, 4, 5, 6])
def test_bcv_recovers_planted_k(k):
    G, _, _ = planted(k)
    choice = bicross_validation_k(rownorm(G), range(1, 10))
    assert choice.k == k
    assert choice.details["k_min"] == k
    assert choice.details["k_one_se"] <= k


@pytest.mark.parametrize("k", [2, 3, 4, 5, 6])
def test_mdl_recovers_planted_k_with_planted_fit(k):
    G, W, H = planted(k)
    ks = range(1, 9)
    choice = mdl_k(G, nnls_fits(G, ks, k, W, H))
    assert choice.k == k
    terms = choice.details["data_length"] + choice.details["penalty"]
    np.testing.assert_allclose(choice.scores, terms)


@pytest.mark.parametrize("k", [2, 4, 6])
def test_mdl_recovers_planted_k_with_nnls_alternation(k):
    G, _, _ = planted(k)
    assert mdl_k(G, nnls_fits(G, range(1, 9))).k == k


@pytest.mark.parametrize("k", [2, 3, 5])
def test_bcv_nmf_recovers_planted_k_when_pure_samples_span_the_cone(k):
    """The NMF variant predicts a held-out sample as a non-negative combination of the
    profiles fitted on the others: it needs the retained samples to span the cone (here
    each type has a pure sample in both column folds).  Without them it overshoots
    (Dirichlet(1) proportions: k=2 -> 4, k=3 -> 6), see bicross_validation_k."""
    G, W, H = planted(k, n=150, m=16)
    H[:, : 2 * k] = np.repeat(np.eye(k), 2, axis=1)  # columns 2t and 2t+1: pure type t
    G = W @ H * np.random.default_rng(k).lognormal(0.0, 0.02, G.shape)
    choice = bicross_validation_k(rownorm(G), range(1, 7), method="nmf")
    assert choice.k == k


# ----------------------------------------------------------- oracles


def naive_bcv(G, ks, h, l):
    """Owen & Perry's held-out error, one pseudo-inverse of the truncated SVD per fold and k."""
    n, m = G.shape
    out = np.zeros(len(ks))
    for a in range(h):
        for b in range(l):
            I = np.array([i % h == a for i in range(n)])
            J = np.array([j % l == b for j in range(m)])
            A, B = G[I][:, J], G[I][:, ~J]
            C, D = G[~I][:, J], G[~I][:, ~J]
            U, s, Vt = np.linalg.svd(D, full_matrices=False)
            for i, k in enumerate(ks):
                Dk = (U[:, :k] * s[:k]) @ Vt[:k]
                out[i] += np.sum((A - B @ np.linalg.pinv(Dk, rcond=1e-10) @ C) ** 2)
    return out


@pytest.mark.parametrize("folds", [(2, 2), (3, 2), (2, 3), (5, 4)])
def test_bcv_matches_naive_loop(folds):
    G, _, _ = planted(3, n=90, m=13, noise=0.1)
    X = rownorm(G)
    ks = [1, 2, 3, 4, 5, 6]
    choice = bicross_validation_k(X, ks, n_row_folds=folds[0], n_col_folds=folds[1])
    np.testing.assert_allclose(choice.scores, naive_bcv(X, ks, *folds), rtol=1e-9)
    np.testing.assert_allclose(choice.details["fold_errors"].sum(axis=0), choice.scores)
    assert choice.details["fold_errors"].shape == (folds[0] * folds[1], len(ks))


def test_bcv_exact_low_rank_predicts_held_out_blocks_exactly():
    """Owen & Perry: with rank(D) = rank(G) = k, B D^+ C equals A."""
    G, _, _ = planted(4, noise=0.0)
    choice = bicross_validation_k(G, [3, 4, 5, 6])
    total = np.sum(G**2)
    assert choice.score_of(4) < 1e-18 * total
    assert choice.score_of(3) > 1e-6 * total
    # past the rank, the pseudo-inverse's cut repeats the error at the rank
    assert choice.score_of(6) < 1e-18 * total


def test_bcv_nmf_block_fits_satisfy_nnls_kkt():
    """W_B and H_C of the NMF variant are exact NNLS solutions (KKT), checked with scipy."""
    from scipy.optimize import nnls

    G, _, _ = planted(3, n=60, m=10, noise=0.05)
    D, B, C = G[20:, 4:], G[:20, 4:], G[20:, :4]
    W_D, H_D = nt._nmf(D, 3, 100, 1e-9, None)
    W_B = nt._nnls(H_D.T, np.ascontiguousarray(B.T)).T
    H_C = nt._nnls(W_D, C)
    for i in range(B.shape[0]):
        np.testing.assert_allclose(W_B[i], nnls(H_D.T, B[i])[0], atol=1e-8)
    for j in range(C.shape[1]):
        np.testing.assert_allclose(H_C[:, j], nnls(W_D, C[:, j])[0], atol=1e-8)


def test_mdl_matches_debcam_formula_with_scipy_nnls():
    """MDL = nm/2 log(mse) + (k-1) m/2 log(n) + k n/2 log(m) on the norm-filtered genes,
    the profiles refitted by NNLS on the column-normalised proportions (debCAM's CAMASest)."""
    from scipy.optimize import nnls

    rng = np.random.default_rng(3)
    G, _, _ = planted(3, n=60, m=9, noise=0.1, seed=3)
    fits = {k: (rng.random((60, k)), rng.random((k, 9)) + 0.01) for k in (1, 2, 3, 4)}
    choice = mdl_k(G, fits)
    norm = np.linalg.norm(G, axis=1)
    lo, hi = np.quantile(norm, [0.05, 0.95])
    keep = (norm > lo) & (norm <= hi)
    n = int(keep.sum())
    expected = []
    for k, (_, H) in sorted(fits.items()):
        A = (H / H.sum(axis=0)).T  # samples x k, rows sum to 1
        S = np.array([nnls(A, g)[0] for g in G[keep]])
        mse = np.mean((G[keep] - S @ A.T) ** 2)
        expected.append(n * 9 / 2 * np.log(mse) + (k - 1) * 9 / 2 * np.log(n)
                        + k * n / 2 * np.log(9))
    np.testing.assert_allclose(choice.scores, expected, rtol=1e-9)
    assert choice.k == [1, 2, 3, 4][int(np.argmin(expected))]
    assert choice.details["scored"].sum() == n


def test_mdl_without_refit_scores_the_product_as_given():
    G, W, H = planted(3, n=50, m=8)
    fits = {3: (2.0 * W, 0.5 * H)}  # same product, H columns not summing to 1
    c = mdl_k(G, fits, refit=False, norm_quantiles=None)
    mse = np.mean((G - W @ H) ** 2)
    np.testing.assert_allclose(c.scores[0], 400 / 2 * np.log(mse) + 2 * 8 / 2 * np.log(50)
                               + 3 * 50 / 2 * np.log(8), rtol=1e-12)


def test_spectrum_wraps_the_existing_rule():
    from fastdeconv.reference_free import estimate_k

    G, _, _ = planted(4)
    X = rownorm(G)
    c = spectrum_k(X)
    d = estimate_k(X)
    assert c.k == d.k
    assert c.details["k_variance"] == d.k_variance and c.details["k_noise"] == d.k_noise
    np.testing.assert_allclose(c.scores, 1.0 - d.explained[c.ks - 1], atol=1e-15)
    # candidates clip the pick
    assert spectrum_k(X, [2, 3]).k == 3
    assert spectrum_k(X, [5, 6]).k == 5


def test_choose_k_dispatches():
    G, W, H = planted(3, n=200, m=16)
    X = rownorm(G)
    assert K_RULES == ("spectrum", "mdl", "bcv")
    assert choose_k("spectrum", X).k == spectrum_k(X).k
    b = choose_k("bcv", X, range(1, 6), n_col_folds=3)
    direct = bicross_validation_k(X, range(1, 6), n_col_folds=3)
    np.testing.assert_array_equal(b.scores, direct.scores)
    fits = nnls_fits(G, [2, 3, 4], 3, W, H)
    m = choose_k("mdl", G, fits=fits)
    assert m.k == 3 and m.rule == "mdl"
    sub = choose_k("mdl", G, [2, 3], fits=fits)
    assert sub.ks.tolist() == [2, 3]
    np.testing.assert_array_equal(sub.scores, m.scores[:2])
    for rule in K_RULES:
        assert isinstance(choose_k(rule, X if rule != "mdl" else G, fits=fits if rule == "mdl"
                                   else None), KChoice)


# -------------------------------------------------------- properties


@pytest.mark.parametrize("n,h", [(7, 2), (10, 3), (24, 5), (3, 3)])
def test_folds_cover_every_entry_exactly_once(n, h):
    m, l = 11, 4
    rows, cols = bcv_folds(n, h), bcv_folds(m, l)
    count = np.zeros((n, m), dtype=int)
    for a in range(h):
        for b in range(l):
            count[np.ix_(rows == a, cols == b)] += 1
    assert (count == 1).all()
    sizes = np.bincount(rows)
    assert sizes.max() - sizes.min() <= 1  # balanced, interleaved


def test_bcv_and_mdl_are_deterministic_and_thread_independent():
    G, _, _ = planted(3, n=120, m=12)
    X = rownorm(G)
    a = bicross_validation_k(X, range(1, 6), method="nmf", n_jobs=1)
    b = bicross_validation_k(X, range(1, 6), method="nmf", n_jobs=2)
    np.testing.assert_array_equal(a.scores, b.scores)
    fits = nnls_fits(G, [2, 3, 4])
    np.testing.assert_array_equal(mdl_k(G, fits, n_jobs=1).scores, mdl_k(G, fits, n_jobs=2).scores)
    s1 = bicross_validation_k(X, range(1, 6))
    s2 = bicross_validation_k(X, range(1, 6))
    np.testing.assert_array_equal(s1.scores, s2.scores)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_permuting_samples_or_genes_keeps_the_pick_on_planted_data(seed):
    """The folds follow the index order, so a permutation changes the blocks and the
    scores.  Past the planted rank the error curve is flat (noise), so the argmin can
    move up a little (4 -> 5 or 6 for 7 of 20 gene permutations of this case); it
    never drops below the planted k, and the one-standard-error pick does not move."""
    G, _, _ = planted(4)
    X = rownorm(G)
    rng = np.random.default_rng(seed)
    for Y in (X[:, rng.permutation(X.shape[1])], X[rng.permutation(X.shape[0])]):
        c = bicross_validation_k(Y, range(1, 9))
        assert 4 <= c.k <= 6
        assert c.details["k_one_se"] == 4
    assert spectrum_k(X[:, rng.permutation(X.shape[1])]).k == spectrum_k(X).k


def test_mdl_is_invariant_to_sample_order():
    G, W, H = planted(3, n=100, m=10)
    fits = nnls_fits(G, [2, 3, 4], 3, W, H)
    p = np.random.default_rng(0).permutation(10)
    permuted = {k: (Wk, Hk[:, p]) for k, (Wk, Hk) in fits.items()}
    np.testing.assert_allclose(mdl_k(G[:, p], permuted).scores, mdl_k(G, fits).scores, rtol=1e-10)


def test_one_se_rule_picks_smallest_k_within_one_standard_error():
    G, _, _ = planted(3, n=200, m=16, noise=0.2)
    c = bicross_validation_k(rownorm(G), range(1, 8), one_se=True)
    best = int(np.argmin(c.scores))
    within = c.scores <= c.scores[best] + c.details["standard_error"][best]
    assert c.k == c.ks[np.flatnonzero(within)[0]] == c.details["k_one_se"]
    assert c.k <= c.details["k_min"]


# ---------------------------------------------------------- bad input


def test_bad_ks():
    X = rownorm(planted(2, n=50, m=8)[0])
    with pytest.raises(ValueError, match="ks is empty"):
        bicross_validation_k(X, [])
    with pytest.raises(ValueError, match="ks holds k=8"):
        bicross_validation_k(X, [2, 8])
    with pytest.raises(ValueError, match="ks holds k=5.*n_col_folds=2"):
        bicross_validation_k(X, [5])  # the retained block has 4 samples
    with pytest.raises(ValueError, match="ks must hold integers >= 1"):
        bicross_validation_k(X, [0, 2])
    with pytest.raises(TypeError, match="ks must hold integers"):
        bicross_validation_k(X, [2.5])
    with pytest.raises(TypeError, match="ks must be a sequence"):
        bicross_validation_k(X, object())
    with pytest.raises(ValueError, match="ks is empty"):
        spectrum_k(X, [])
    with pytest.raises(ValueError, match="ks holds k=9"):
        spectrum_k(X, [9])


def test_bad_folds_and_method():
    X = rownorm(planted(2, n=50, m=8)[0])
    with pytest.raises(ValueError, match="n_col_folds"):
        bicross_validation_k(X, [2], n_col_folds=1)
    with pytest.raises(ValueError, match="n_col_folds"):
        bicross_validation_k(X, [2], n_col_folds=9)
    with pytest.raises(ValueError, match="n_row_folds"):
        bicross_validation_k(X, [2], n_row_folds=1)
    with pytest.raises(ValueError, match="method"):
        bicross_validation_k(X, [2], method="pca")
    with pytest.raises(ValueError, match="method='svd'"):
        bicross_validation_k(X - 0.5, [2], method="nmf")
    with pytest.raises(ValueError, match="n_folds=3 is more than"):
        bcv_folds(2, 3)


def test_bad_matrix():
    with pytest.raises(ValueError, match="G must be a 2-D"):
        bicross_validation_k(np.ones(10), [1])
    with pytest.raises(ValueError, match="G contains NaN"):
        bicross_validation_k(np.full((10, 4), np.nan), [1])
    with pytest.raises(ValueError, match="X has 3 rows"):
        spectrum_k(np.ones((3, 5)))
    with pytest.raises(ValueError, match="G must be a 2-D"):
        mdl_k(np.ones((1, 5)), {1: (np.ones((1, 1)), np.ones((1, 5)))})


def test_bad_fits():
    G, W, H = planted(3, n=40, m=6)
    with pytest.raises(ValueError, match="fits is empty"):
        mdl_k(G, {})
    with pytest.raises(ValueError, match="fits holds k=6"):
        mdl_k(G, {6: (np.ones((40, 6)), np.ones((6, 6)))})
    with pytest.raises(ValueError, match=r"fits\[3\] has W of shape \(40, 2\)"):
        mdl_k(G, {3: (W[:, :2], H)})
    with pytest.raises(TypeError, match="fits must be a mapping"):
        mdl_k(G, [(W, H)])
    with pytest.raises(TypeError, match=r"fits\[3\] must be a pair"):
        mdl_k(G, {3: W})
    zero = H.copy()
    zero[:, 0] = 0.0
    with pytest.raises(ValueError, match="refit=False"):
        mdl_k(G, {3: (W, zero)})
    with pytest.raises(ValueError, match="norm_quantiles"):
        mdl_k(G, {3: (W, H)}, norm_quantiles=(0.9, 0.1))
    with pytest.raises(TypeError, match="norm_quantiles"):
        mdl_k(G, {3: (W, H)}, norm_quantiles=0.5)


def test_bad_dispatch():
    G, W, H = planted(3, n=40, m=6)
    with pytest.raises(ValueError, match="rule"):
        choose_k("aic", G)
    with pytest.raises(ValueError, match="pass fits="):
        choose_k("mdl", G)
    with pytest.raises(ValueError, match="fits is used by rule='mdl' only"):
        choose_k("bcv", G, [2], fits={3: (W, H)})
    with pytest.raises(ValueError, match="ks holds k=.2."):
        choose_k("mdl", G, [2, 3], fits={3: (W, H)})
    with pytest.raises(TypeError, match="variance"):
        choose_k("spectrum", rownorm(G), variance=0.9)
    with pytest.raises(KeyError, match="not a candidate"):
        choose_k("mdl", G, fits={3: (W, H)}).score_of(2)
