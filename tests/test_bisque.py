"""method="bisque": Bisque's bulk transformation (Jew et al. 2020, doi:10.1038/s41467-020-15816-6).

Oracles: a transcription of BisqueRNA's ``GenerateSCReference``,
``CalculateSCCellProportions`` and ``SemisupervisedTransformBulk`` on raw
cells, with cvxpy for the sum-to-one NNLS (``lsei::pnnls(sum=1)``); and the
published behaviour: a per-gene affine platform shift between reference and
bulk is undone, where a plain fit is biased.
"""

from __future__ import annotations

import importlib

import cvxpy as cp
import numpy as np
import pytest

from fastdeconv.inputs.counts import as_counts
from fastdeconv.methods import REGRESSION
from fastdeconv.methods._problem import CellContext, RegressionProblem

REGRESSION.names()  # the registry's own modules first, in its order
importlib.import_module("fastdeconv.methods.bisque")  # registers "bisque" until it is listed

TYPES = ["A", "B", "C"]


def donors_cells(n_genes=80, subjects=5, cells=40, seed=0):
    """Cells of 3 types from donors of different compositions; the true mean profiles."""
    rng = np.random.default_rng(seed)
    mu = rng.gamma(0.6, 1.0, size=(n_genes, 3)) + 0.05
    for t in range(3):
        mu[t * 10:(t + 1) * 10, t] *= 15.0
    mu /= mu.sum(axis=0)
    comps = rng.dirichlet(3 * np.ones(3), size=subjects)
    blocks, labels, donors = [], [], []
    for s in range(subjects):
        n_t = np.maximum(1, np.round(comps[s] * cells * 3)).astype(int)
        for t, name in enumerate(TYPES):
            blocks.append(rng.poisson(mu[:, [t]] * rng.uniform(800, 1200, size=n_t[t])))
            labels += [name] * n_t[t]
            donors += [f"d{s}"] * n_t[t]
    return np.hstack(blocks), np.array(labels), np.array(donors), mu


def context(counts, labels, donors):
    return CellContext.from_counts(as_counts(counts), labels, TYPES, subjects=donors)


def naive_bisque(counts, labels, donors, bulk):
    """ReferenceBasedDecomposition(use.overlap=FALSE), step by step."""
    cpm = counts / counts.sum(axis=0) * 1e6
    sc_ref = np.stack([cpm[:, labels == t].mean(axis=1) for t in TYPES], axis=1)
    subjects = np.unique(donors)
    props = np.stack([[np.mean(labels[donors == d] == t) for t in TYPES] for d in subjects],
                     axis=1)
    y_train = sc_ref @ props
    bulk = bulk / bulk.sum(axis=0) * 1e6  # CountsToCPM
    rows = []
    for g in range(bulk.shape[0]):
        y = y_train[g]
        center = y.mean()
        shrink = np.sqrt(np.sum((y - center) ** 2) / y.size + 1)
        x = bulk[g]
        scaled = (x - x.mean()) / np.std(x, ddof=1) if np.std(x) > 0 else x * np.nan
        rows.append(scaled * shrink + center)
    y_pred = np.array(rows)
    keep = ~np.isnan(y_pred).any(axis=1)
    out = []
    for j in range(bulk.shape[1]):
        p = cp.Variable(3)
        A, b = sc_ref[keep] / 1e6, y_pred[keep, j] / 1e6
        cp.Problem(cp.Minimize(cp.sum_squares(A @ p - b)), [p >= 0, cp.sum(p) == 1]).solve(
            solver=cp.CLARABEL, tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
        out.append(p.value)
    return np.array(out).T, keep


def bisque(B, ctx, S=None):
    S = np.ones((B.shape[0], 3)) if S is None else S
    return REGRESSION.get("bisque").fit(RegressionProblem(S, B, cells=ctx))


def test_bisque_matches_the_r_steps():
    counts, labels, donors, mu = donors_cells(n_genes=40, subjects=4, cells=15)
    rng = np.random.default_rng(3)
    truth = rng.dirichlet(np.ones(3), size=6).T
    bulk = (mu @ truth) * rng.uniform(0.5, 2.0, size=(40, 1)) * 1e4
    bulk[7] = 0.0  # not expressed in the bulk: no transformation, dropped
    expected, keep = naive_bisque(counts, labels, donors, bulk)
    fit = bisque(bulk, context(counts, labels, donors))
    np.testing.assert_allclose(fit.coefficients, expected, atol=1e-6)
    np.testing.assert_array_equal(fit.gene_weights[:, 0] > 0, keep)
    assert not keep[7] and keep.sum() == 39
    assert fit.converged.all()
    np.testing.assert_allclose(fit.coefficients.sum(axis=0), 1.0)


def test_bisque_undoes_a_per_gene_platform_shift():
    """Bulk samples of the donors' compositions, each gene scaled and shifted on its own.

    Bisque gives every gene the donors' mean and spread, so it recovers the
    compositions, shrunk towards the donors' mean by sqrt((d - 1) / d) (the
    donors' spread is taken over d, the bulk's over m - 1); a fit on the
    reference is biased by the shift.
    """
    counts, labels, donors, mu = donors_cells(n_genes=120, subjects=10, cells=40, seed=1)
    ctx = context(counts, labels, donors)
    rng = np.random.default_rng(7)
    comps = ctx.subject_cells / ctx.subject_cells.sum(axis=0)
    truth = comps[:, rng.permutation(10)]
    clean = ctx.cell_mean() @ truth * 1e6
    scale = np.exp(rng.normal(0.0, 0.8, size=(120, 1)))  # gene by gene: probe / platform
    offset = rng.uniform(0.0, 2.0, size=(120, 1)) * clean.mean(axis=1, keepdims=True)
    bulk = clean * scale + offset
    fit = bisque(bulk, ctx).coefficients
    mean = comps.mean(axis=1, keepdims=True)
    shrunk = mean + np.sqrt(9 / 10) * (truth - mean)

    def rmse(est, ref=truth):
        return np.sqrt(np.mean((est - ref) ** 2))

    plain = REGRESSION.get("simplex").fit(RegressionProblem(ctx.cell_mean() * 1e6, bulk))
    nnls = REGRESSION.get("nnls").fit(RegressionProblem(ctx.cell_mean(), bulk)).coefficients
    assert rmse(fit, shrunk) < 0.01
    assert rmse(fit) < 0.02
    assert rmse(fit) < 0.2 * min(rmse(plain.coefficients), rmse(nnls / nnls.sum(axis=0)))


def test_bisque_estimates_depend_on_the_other_samples():
    """Why the record is batch_dependent: the pipeline must not split the samples."""
    counts, labels, donors, mu = donors_cells(n_genes=40, subjects=4, cells=15)
    ctx = context(counts, labels, donors)
    truth = np.random.default_rng(2).dirichlet(np.ones(3), size=6).T
    bulk = mu @ truth * 1e5
    all_at_once = bisque(bulk, ctx).coefficients
    halves = np.hstack([bisque(bulk[:, :3], ctx).coefficients,
                        bisque(bulk[:, 3:], ctx).coefficients])
    assert np.abs(all_at_once - halves).max() > 0.05
    assert REGRESSION.get("bisque").batch_dependent


def test_bisque_refusals():
    counts, labels, donors, mu = donors_cells(n_genes=30, subjects=3, cells=10)
    bulk = mu @ np.array([[0.2, 0.5], [0.3, 0.3], [0.5, 0.2]]) * 1e5
    ctx = context(counts, labels, donors)
    with pytest.raises(ValueError, match="at least 2"):
        bisque(bulk[:, :1], ctx)
    with pytest.raises(ValueError, match="labels="):
        bisque(bulk, None)
    one = CellContext.from_counts(as_counts(counts), labels, TYPES)
    with pytest.raises(ValueError, match="subjects="):
        bisque(bulk, one)
    two = context(counts, labels, np.where(donors == "d2", "d1", donors))
    with pytest.warns(UserWarning, match="at least 3"):
        bisque(bulk, two)
    flat = np.ones_like(bulk)
    with pytest.raises(ValueError, match="vary across the bulk"):
        bisque(flat, ctx)


def test_bisque_record():
    record = REGRESSION.get("bisque")
    assert record.needs == ("cells", "subjects")
    assert not record.normalise and not record.background and record.weights == "unsupported"
    assert any("10.1038/s41467-020-15816-6" in ref for ref in record.references)
