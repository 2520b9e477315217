"""method="epic": EPIC's weighted fit with other cells (Racle et al. 2017, doi:10.7554/eLife.26476).

Oracles: cvxpy on EPIC's constrained weighted least squares (the package's
``constrOptim`` approximates the same minimum), a transcription of the
package's gene weights (``rowSums(refProfiles / (refProfiles.var + 1e-12))``
capped at 100 x their median) and of its ``scaleCounts``, and a planted
tumour sample whose "other cells" share and cell fractions are known.
"""

from __future__ import annotations

import warnings

import cvxpy as cp
import numpy as np
import pytest

from fastdeconv.inputs.counts import as_counts
from fastdeconv.methods import REGRESSION
from fastdeconv.methods._problem import CellContext, RegressionProblem

REGRESSION.names()  # the registry's own modules first, in its order; then "epic" registers
from fastdeconv.methods.epic import EPIC_MRNA_PER_CELL, OTHER_CELLS, mrna_per_cell  # noqa: E402

TYPES = ("B cells", "Monocytes", "Neutrophils", "NK cells")
MRNA = np.array([0.4016, 1.4196, 0.1300, 0.4396])


def epic(S, B, **kw):
    options = kw.pop("options", {})
    return REGRESSION.get("epic").fit(RegressionProblem(S, B, options=options, **kw))


def cvx_fit(S, b, w, other_cells=True):
    """min sum w (S x - b)^2, x >= 0, 0 <= sum(x) <= 1 (or == 1), scaled for the solver."""
    scale = np.abs(b).max()
    x = cp.Variable(S.shape[1])
    cons = [x >= 0, cp.sum(x) <= 1] if other_cells else [x >= 0, cp.sum(x) == 1]
    cp.Problem(cp.Minimize(cp.sum(cp.multiply(w, cp.square(S @ x / scale - b / scale)))),
               cons).solve(solver=cp.CLARABEL, tol_gap_abs=1e-12, tol_gap_rel=1e-12,
                           tol_feas=1e-12)
    return x.value


def tumour(n_all=800, n_sig=40, seed=0, noise=0.0, samples=6):
    """TPM profiles of 4 immune types and a tumour that does not express their markers.

    Returns the full-gene reference and tumour, the signature genes, planted
    cell fractions (types + other) and the bulk on all genes.
    """
    rng = np.random.default_rng(seed)
    ref = rng.gamma(0.5, 1.0, size=(n_all, 4))
    per = n_sig // 4
    for t in range(4):
        ref[t * per:(t + 1) * per, t] *= 40.0
    tum = rng.gamma(0.5, 1.0, size=n_all)
    tum[:n_sig] = 0.0
    ref, tum = ref / ref.sum(axis=0) * 1e6, tum / tum.sum() * 1e6
    cells = rng.dirichlet(np.ones(5), size=samples).T  # 4 types + other cells, per sample
    mrna = np.r_[MRNA, 0.4][:, None] * cells
    mrna /= mrna.sum(axis=0)
    bulk = ref @ mrna[:4] + np.outer(tum, mrna[4])
    bulk *= np.exp(noise * rng.standard_normal(bulk.shape))
    return ref, bulk, np.arange(n_sig), cells, mrna


# --- the fit -----------------------------------------------------------------------------


@pytest.mark.parametrize("other_cells", [True, False])
def test_epic_fit_is_the_constrained_weighted_minimum(other_cells):
    rng = np.random.default_rng(1)
    S = rng.gamma(1.0, 100.0, size=(30, 4))
    B = S @ rng.dirichlet(np.ones(4), size=5).T * rng.uniform(0.3, 1.4, size=5)
    B *= np.exp(0.3 * rng.standard_normal(B.shape))
    w = rng.uniform(0.2, 3.0, size=30)
    fit = epic(S, B, weights=w, options={"scale": "none", "fractions": "mrna",
                                         "other_cells": other_cells})
    for j in range(B.shape[1]):
        np.testing.assert_allclose(fit.coefficients[:, j], cvx_fit(S, B[:, j], w, other_cells),
                                   atol=1e-6)
    total = fit.coefficients.sum(axis=0)
    assert (total <= 1 + 1e-12).all()
    expected = 1.0 - total if other_cells else 0.0
    np.testing.assert_allclose(fit.extra[OTHER_CELLS], expected, atol=1e-12)
    assert fit.converged.all()


def test_epic_planted_other_cells_on_the_common_scale():
    ref, bulk, sig, cells, mrna = tumour()
    totals = dict(bulk_totals=bulk.sum(axis=0), signature_totals=ref.sum(axis=0))
    S, B = ref[sig] / 7.0, bulk[sig] * 3.0  # any scale: EPIC brings both to 1e6 per column
    totals = dict(bulk_totals=totals["bulk_totals"] * 3.0,
                  signature_totals=totals["signature_totals"] / 7.0)
    got = epic(S, B, options={"scale": "common", "fractions": "mrna", **totals})
    np.testing.assert_allclose(got.coefficients, mrna[:4], atol=1e-9)
    np.testing.assert_allclose(got.extra[OTHER_CELLS], mrna[4], atol=1e-9)
    cells_fit = epic(S, B, cell_types=TYPES, options={"scale": "common", **totals})
    np.testing.assert_allclose(cells_fit.coefficients, cells[:4], atol=1e-9)
    np.testing.assert_allclose(cells_fit.extra[OTHER_CELLS], cells[4], atol=1e-9)
    # scaled over the signature genes only, the tumour's share is invisible
    given = epic(S, B, options={"scale": "auto", "fractions": "mrna"})
    assert given.extra[OTHER_CELLS].max() < 0.02 < mrna[4].min()


def test_epic_other_cells_tracked_with_noise():
    ref, bulk, sig, cells, mrna = tumour(n_sig=100, seed=2, noise=0.1, samples=40)
    totals = dict(bulk_totals=bulk.sum(axis=0), signature_totals=ref.sum(axis=0))
    fit = epic(ref[sig], bulk[sig], options=dict(totals, fractions="mrna"))
    assert np.abs(fit.extra[OTHER_CELLS] - mrna[4]).max() < 0.08
    assert np.corrcoef(fit.extra[OTHER_CELLS], mrna[4])[0, 1] > 0.97


# --- gene weights from the reference's variability ---------------------------------------


def donors_cells(seed=0, n_genes=50, subjects=3, cells=8):
    rng = np.random.default_rng(seed)
    mu = rng.gamma(0.6, 1.0, size=(n_genes, 2)) + 0.02
    blocks, labels, donors = [], [], []
    for s in range(subjects):
        prof = mu * np.exp(0.5 * rng.standard_normal(mu.shape))
        for t, name in enumerate(("B cells", "Monocytes")):
            blocks.append(rng.poisson(prof[:, [t]] * rng.uniform(20, 60, size=cells)))
            labels += [name] * cells
            donors += [f"d{s}"] * cells
    return np.hstack(blocks), np.array(labels), np.array(donors)


def naive_epic_weights(counts, labels, donors, S):
    """refProfiles.var: sd over donors of the per-donor type mean CPM, scaled as refProfiles."""
    cpm = counts / counts.sum(axis=0) * 1e6
    types = ("B cells", "Monocytes")
    per = np.stack([np.stack([cpm[:, (labels == t) & (donors == d)].mean(axis=1)
                              for d in np.unique(donors)], axis=1) for t in types], axis=1)
    ref = np.stack([cpm[:, labels == t].mean(axis=1) for t in types], axis=1)  # cells' mean
    var = per.std(axis=2, ddof=1)
    factor = S.sum(axis=0) / ref.sum(axis=0)  # refProfiles.var takes refProfiles' normFact
    w = np.nansum(S / (var * factor + 1e-12), axis=1)
    med = np.median(w[w > 0])
    return np.minimum(w, 100 * med)


@pytest.mark.parametrize("scale", ["none", "given"])
def test_epic_variability_weights_transcribe_the_package(scale):
    counts, labels, donors = donors_cells()
    ctx = CellContext.from_counts(as_counts(counts), labels, ["B cells", "Monocytes"],
                                  subjects=donors)
    cpm = counts / counts.sum(axis=0) * 1e6
    S = np.stack([cpm[:, labels == t].mean(axis=1) for t in ("B cells", "Monocytes")], axis=1)
    B = S @ np.array([[0.3, 0.6], [0.5, 0.2]])
    fit = epic(S, B, cells=ctx, options={"scale": scale, "fractions": "mrna"})
    S_epic = S / S.sum(axis=0) * 1e6 if scale == "given" else S
    w = naive_epic_weights(counts, labels, donors, S_epic)
    np.testing.assert_allclose(fit.gene_weights[:, 0], w, rtol=1e-9)
    unweighted = epic(S, B, cells=ctx, options={"weights": "none", "scale": scale})
    assert (unweighted.gene_weights == 1).all()


def test_epic_weights_are_capped_and_skip_unknown_variability():
    # gene 0 is the same in both donors (weight S / 1e-12, capped at 100 x the median);
    # type 1 is seen in one donor only: its variability is unknown and it adds no weight
    prof = np.array([[[0.5, 0.5], [0.1, np.nan]], [[0.2, 0.4], [0.3, np.nan]],
                     [[0.2, 0.1], [0.3, np.nan]], [[0.1, 0.0], [0.3, np.nan]]])
    ctx = CellContext(np.ones(2), np.array([8, 4]), ("d1", "d2"), prof,
                      np.array([[4, 4], [4, 0]]), np.zeros((4, 2)))
    S = np.array([[0.5, 0.1], [0.3, 0.3], [0.15, 0.3], [0.05, 0.3]])
    fit = epic(S, S @ np.array([[0.5], [0.5]]), cells=ctx, options={"scale": "none"})
    sd = np.array([0.0, np.sqrt(0.02), np.sqrt(0.005), np.sqrt(0.005)])
    w = S[:, 0] / (sd + 1e-12)
    w = np.minimum(w, 100 * np.median(w[w > 0]))
    assert w[0] < 1e3 and w[1:].max() < w[0]  # the cap, 100 x the median, is reached
    np.testing.assert_allclose(fit.gene_weights[:, 0], w, rtol=1e-9)


# --- mRNA per cell -----------------------------------------------------------------------


def test_mrna_per_cell_names_and_lineages():
    values, other, defaulted = mrna_per_cell(
        ["Bcells", "T cells CD4 memory resting", "NK cells activated", "Macrophages M2",
         "Neutrophils", "Tregs", "Plasma cells"])
    assert values.tolist() == [0.4016, 0.3952, 0.4396, 1.4196, 0.13, 0.3952, 0.4]
    assert other == EPIC_MRNA_PER_CELL["otherCells"] and defaulted == ["Plasma cells"]
    values, other, _ = mrna_per_cell(["B cells", "Monocytes"], "b cells=2,otherCells=3")
    assert values.tolist() == [2.0, 1.4196] and other == 3.0
    values, other, _ = mrna_per_cell(["B cells", "Monocytes"], rna_content=np.array([2e3, 6e3]))
    assert values.tolist() == [2e3, 6e3] and other == 4e3  # the median of the types' contents
    with pytest.raises(ValueError, match="mrna_per_cell"):
        mrna_per_cell(["B cells"], {"B cells": -1})
    with pytest.raises(ValueError, match="other_mrna"):
        mrna_per_cell(["B cells"], other="lots")


def test_epic_warns_when_a_type_takes_the_default():
    S = np.array([[10.0, 1.0], [1.0, 10.0], [3.0, 3.0]])
    B = S @ np.array([[0.3], [0.3]])
    with pytest.warns(UserWarning, match="Platelets"):
        fit = epic(S, B, cell_types=("B cells", "Platelets"), options={"scale": "none"})
    # 0.3 / 0.4016, 0.3 / 0.4 and 0.4 / 0.4, renormalised
    raw = np.array([0.3 / 0.4016, 0.3 / 0.4, 1.0])
    np.testing.assert_allclose(fit.coefficients[:, 0], raw[:2] / raw.sum(), atol=1e-9)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        epic(S, B, cell_types=("B cells", "Platelets"),
             options={"scale": "none", "mrna_per_cell": {"Platelets": 0.05}})


def test_epic_options_from_the_command_line():
    """--method-option KEY=VALUE text, as the registry reads it, reaches the fit."""
    record = REGRESSION.get("epic")
    options = record.resolve_options({"mrna_per_cell": "B cells=0.5,Monocytes=2",
                                      "other_mrna": "0.25", "other_cells": "true"})
    S = np.array([[10.0, 1.0], [1.0, 10.0], [3.0, 3.0]])
    B = S @ np.array([[0.3], [0.2]])
    fit = epic(S, B, cell_types=("B cells", "Monocytes"), options=dict(options, scale="none"))
    raw = np.array([0.3 / 0.5, 0.2 / 2.0, 0.5 / 0.25])
    np.testing.assert_allclose(fit.coefficients[:, 0], raw[:2] / raw.sum(), atol=1e-9)
    np.testing.assert_allclose(fit.extra[OTHER_CELLS], raw[2] / raw.sum(), atol=1e-9)


def test_epic_through_deconvolve():
    import pandas as pd

    import fastdeconv

    rng = np.random.default_rng(4)
    genes = [f"G{i}" for i in range(60)]
    sig = pd.DataFrame(rng.gamma(1.0, 50.0, size=(60, 3)), index=genes,
                       columns=["B cells", "Monocytes", "NK cells"])
    truth = rng.dirichlet(np.ones(3), size=4).T * 0.7
    bulk = pd.DataFrame(sig.to_numpy() @ truth, index=genes, columns=list("abcd"))
    res = fastdeconv.deconvolve(bulk, sig, method="epic", progress=False,
                                method_options={"fractions": "mrna", "scale": "none"})
    np.testing.assert_allclose(res.proportions[list(sig.columns)].to_numpy().T, truth, atol=1e-8)
    np.testing.assert_allclose(res.proportions[OTHER_CELLS], 0.3, atol=1e-8)


# --- refusals ----------------------------------------------------------------------------


@pytest.mark.parametrize("key, value", [("scale", "tpm"), ("weights", "mad"),
                                        ("fractions", "rna"), ("other_cells", "perhaps"),
                                        ("other_mrna", -2.0), ("mrna_per_cell", 3.0)])
def test_epic_bad_options_name_the_key(key, value):
    S = np.array([[10.0, 1.0], [1.0, 10.0], [3.0, 3.0]])
    with pytest.raises(ValueError, match=rf"method_options=\{{'{key}'"):
        epic(S, S[:, :1], cell_types=("B cells", "Monocytes"), options={key: value})


def test_epic_refuses_what_it_lacks():
    S = np.array([[10.0, 1.0], [1.0, 10.0], [3.0, 3.0]])
    with pytest.raises(ValueError, match="subjects="):
        epic(S, S[:, :1], options={"weights": "variability"})
    with pytest.raises(ValueError, match="scale='given'"):
        epic(S, S[:, :1], options={"scale": "common"})


def test_epic_record():
    record = REGRESSION.get("epic")
    assert record.extra_columns == (OTHER_CELLS,) and not record.normalise
    assert not record.background and record.losses == ("squared",)
    assert any("10.7554/eLife.26476" in ref for ref in record.references)
