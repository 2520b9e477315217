"""method="music": MuSiC's weighted NNLS (Wang et al. 2019, doi:10.1038/s41467-018-08023-x).

Oracles: a naive NumPy transcription of the R package's ``music_basis`` /
``music_prop`` / ``music.iter`` / ``music.basic`` on raw cells (SciPy's
Lawson-Hanson NNLS on the explicitly weighted system), and the published
behaviour on a planted case: genes that vary between donors weigh less, and
the weighted fit beats plain NNLS when the bulk's donor differs from the
reference's.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from scipy.optimize import nnls as scipy_nnls

from fastdeconv.inputs.counts import as_counts
from fastdeconv.methods import REGRESSION
from fastdeconv.methods._problem import CellContext, RegressionProblem

REGRESSION.names()  # the registry's own modules first, in its order
importlib.import_module("fastdeconv.methods.music")  # registers "music" until it is listed

TYPES = ["A", "B", "C"]


def simulate(n_genes=60, subjects=4, cells=12, noisy=0.3, noisy_sd=0.8, calm_sd=0.05,
             sizes=(1.0, 3.0, 6.0), seed=0):
    """Cells of 3 types from several donors; a share of the genes vary strongly between donors.

    Returns counts (genes x cells), labels, donors, the mean profiles (relative,
    genes x types), the per-gene donor spread and a function drawing a new donor.
    """
    rng = np.random.default_rng(seed)
    mu = rng.gamma(0.7, 1.0, size=(n_genes, len(TYPES))) + 0.05
    for t in range(len(TYPES)):
        mu[t * 8:(t + 1) * 8, t] *= 12.0  # markers
    mu /= mu.sum(axis=0)
    spread = np.where(rng.random(n_genes) < noisy, noisy_sd, calm_sd)
    size = 2000.0 * np.asarray(sizes)

    def donor_profiles():
        prof = mu * np.exp(spread[:, None] * rng.standard_normal(mu.shape))
        return prof / prof.sum(axis=0)

    blocks, labels, donors = [], [], []
    for s in range(subjects):
        prof = donor_profiles()
        for t, name in enumerate(TYPES):
            lib = rng.uniform(0.7, 1.3, size=cells) * size[t]
            blocks.append(rng.poisson(prof[:, [t]] * lib))
            labels += [name] * cells
            donors += [f"d{s}"] * cells
    return np.hstack(blocks), np.array(labels), np.array(donors), mu, spread, donor_profiles, size


def context(counts, labels, donors):
    return CellContext.from_counts(as_counts(counts), labels, TYPES, subjects=donors)


# --- a transcription of the R package ----------------------------------------------------


def naive_design(counts, labels, donors):
    """music_basis on raw cells: D = M.theta * M.S, Sigma (0 where unknown), M.S."""
    rel = counts / counts.sum(axis=0)
    subjects = np.unique(donors)
    theta = np.full((counts.shape[0], len(TYPES), subjects.size), np.nan)
    for k, t in enumerate(TYPES):
        for s, d in enumerate(subjects):
            cells = (labels == t) & (donors == d)
            if cells.any():
                theta[:, k, s] = rel[:, cells].mean(axis=1)
    m_theta = np.nanmean(theta, axis=2)
    sigma = np.nan_to_num(np.nanvar(theta, axis=2, ddof=1))
    m_s = np.array([counts[:, labels == t].sum(axis=0).mean() for t in TYPES])
    return m_theta * m_s, sigma, m_s


def naive_music(D, Sigma, MS, b, *, iter_max=1000, nu=1e-4, eps=0.01, centered=False,
                normalize=False):
    """music_prop's per-sample step, line by line."""
    keep = b > 0
    X, V, Y = D[keep], Sigma[keep], b[keep] / b.sum()
    if centered:
        X, Y = X - X.mean(), Y - Y.mean()
    if normalize:
        X = X / np.std(X, ddof=1)
        Y = Y / np.std(Y, ddof=1)
    else:
        Y = Y * 100
    x0, _ = scipy_nnls(X, Y)
    r = Y - X @ x0
    w = 1 / (nu + r**2 + V @ (x0 * MS) ** 2)
    x, _ = scipy_nnls(X * np.sqrt(w)[:, None], Y * np.sqrt(w))
    p = x / x.sum()
    r = np.sqrt(w) * (Y - X @ x)
    for it in range(1, iter_max + 1):
        w = 1 / (nu + r**2 + V @ (x * MS) ** 2)
        x, _ = scipy_nnls(X * np.sqrt(w)[:, None], Y * np.sqrt(w))
        p_new = x / x.sum()
        r_new = np.sqrt(w) * (Y - X @ x)
        if np.abs(p_new - p).sum() < eps:
            return p_new, w, keep, it
        p, r = p_new, r_new
    return p, w, keep, iter_max


def music(S, B, ctx, **options):
    return REGRESSION.get("music").fit(RegressionProblem(S, B, options=options, cells=ctx))


@pytest.fixture(scope="module")
def small():
    counts, labels, donors, mu, spread, draw, size = simulate()
    rng = np.random.default_rng(5)
    truth = rng.dirichlet(np.ones(3), size=4).T
    bulk = np.column_stack([draw() @ (size * truth[:, j]) * 50 for j in range(4)])
    bulk = np.round(bulk)
    bulk[:5, 1] = 0.0  # genes the sample misses are dropped for that sample
    return counts, labels, donors, bulk, truth


@pytest.mark.parametrize("variant", [{}, {"centered": True}, {"normalize": True},
                                     {"eps": 1e-6, "nu": 1e-3}])
def test_music_matches_the_r_loop(small, variant):
    counts, labels, donors, bulk, _ = small
    D, Sigma, MS = naive_design(counts, labels, donors)
    fit = music(D, bulk, context(counts, labels, donors), **variant)
    for j in range(bulk.shape[1]):
        p, w, keep, rounds = naive_music(D, Sigma, MS, bulk[:, j], **variant)
        np.testing.assert_allclose(fit.coefficients[:, j], p, atol=1e-8)
        np.testing.assert_allclose(fit.gene_weights[keep, j], w, rtol=1e-6)
        assert not fit.gene_weights[~keep, j].any()
        assert fit.n_reweight[j] == rounds
    assert fit.converged.all()
    np.testing.assert_allclose(fit.coefficients.sum(axis=0), 1.0)


def test_music_signature_values_are_not_used(small):
    counts, labels, donors, bulk, _ = small
    ctx = context(counts, labels, donors)
    D = naive_design(counts, labels, donors)[0]
    a = music(D, bulk, ctx).coefficients
    b = music(np.ones_like(D), bulk, ctx).coefficients
    np.testing.assert_array_equal(a, b)


def test_music_iteration_cap_is_reported(small):
    counts, labels, donors, bulk, _ = small
    fit = music(np.ones((bulk.shape[0], 3)), bulk, context(counts, labels, donors),
                iter_max=1, eps=1e-12)
    assert not fit.converged.any()
    assert (fit.n_reweight == 1).all()


# --- the published behaviour -------------------------------------------------------------


def test_music_downweights_donor_variable_genes_and_beats_nnls():
    counts, labels, donors, mu, spread, draw, size = simulate(
        n_genes=150, subjects=6, cells=20, noisy=0.4, noisy_sd=1.0, seed=3)
    ctx = context(counts, labels, donors)
    D = naive_design(counts, labels, donors)[0]
    rng = np.random.default_rng(11)
    truth = rng.dirichlet(np.ones(3), size=30).T
    # every bulk sample is a new donor: its profiles differ most on the donor-variable genes
    bulk = np.column_stack([draw() @ (size * truth[:, j]) for j in range(truth.shape[1])])
    fit = music(D, bulk, ctx)
    noisy = spread > 0.5
    # relative to the expression: weights of donor-variable genes are lower
    expressed = D.sum(axis=1)
    ratio = np.median(fit.gene_weights[noisy] * expressed[noisy, None] ** 2) / np.median(
        fit.gene_weights[~noisy] * expressed[~noisy, None] ** 2)
    assert ratio < 0.3
    plain = REGRESSION.get("nnls").fit(RegressionProblem(D, bulk)).coefficients
    plain = plain / plain.sum(axis=0)
    rmse_music = np.sqrt(np.mean((fit.coefficients - truth) ** 2))
    rmse_nnls = np.sqrt(np.mean((plain - truth) ** 2))
    assert rmse_music < 0.6 * rmse_nnls, (rmse_music, rmse_nnls)


def test_music_gives_cell_fractions_from_library_sizes():
    """The design holds the library sizes: a bulk mixed by cells gives back the cell shares."""
    counts, labels, donors, mu, spread, draw, size = simulate(noisy=0.0, calm_sd=0.0, cells=40)
    ctx = context(counts, labels, donors)
    cells = np.array([[0.2], [0.3], [0.5]])
    bulk = (mu * ctx.rna_content) @ cells
    fit = music(np.ones((mu.shape[0], 3)), bulk, ctx)
    np.testing.assert_allclose(fit.coefficients, cells, atol=0.02)
    rna = cells[:, 0] * ctx.rna_content / (cells[:, 0] @ ctx.rna_content)
    assert np.abs(fit.coefficients[:, 0] - rna).max() > 0.1  # not the RNA shares


# --- refusals ----------------------------------------------------------------------------


def test_music_needs_cells_and_two_donors(small):
    counts, labels, donors, bulk, _ = small
    S = np.ones((bulk.shape[0], 3))
    with pytest.raises(ValueError, match="labels="):
        music(S, bulk, None)
    one = CellContext.from_counts(as_counts(counts), labels, TYPES)
    with pytest.raises(ValueError, match="subjects="):
        music(S, bulk, one)


@pytest.mark.parametrize("key, value", [("nu", -1.0), ("eps", 0.0), ("iter_max", 0),
                                        ("centered", "maybe")])
def test_music_bad_options_name_the_key(small, key, value):
    counts, labels, donors, bulk, _ = small
    with pytest.raises(ValueError, match=rf"method_options=\{{'{key}'"):
        music(np.ones((bulk.shape[0], 3)), bulk, context(counts, labels, donors), **{key: value})


def test_music_record():
    record = REGRESSION.get("music")
    assert record.needs == ("cells", "subjects")
    assert not record.normalise and not record.background and record.weights == "unsupported"
    assert set(record.options) == {"iter_max", "nu", "eps", "centered", "normalize"}
    assert any("10.1038/s41467-018-08023-x" in ref for ref in record.references)
