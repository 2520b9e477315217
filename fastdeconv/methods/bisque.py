"""Bisque: the bulk brought gene by gene to the single-cell reference's scale, then fitted.

Jew et al. (2020) correct the platform and batch effects between a bulk and a
single-cell reference by a linear transformation of every gene of the bulk.
Without bulk samples of the reference's donors (the package's
``use.overlap=FALSE``, the case of a pipeline), ``"bisque"`` follows
``ReferenceBasedDecomposition`` / ``SemisupervisedTransformBulk`` of the R
package BisqueRNA (1.0.5):

1. the reference: each type's mean relative expression over all its cells
   (``GenerateSCReference``), in counts per million;
2. each donor's pseudo-bulk as the reference predicts it,
   ``Y = ref @ props`` (``props``: the donor's share of cells of each type);
   per gene its mean ``mu_g`` over donors and the shrunken spread
   ``s_g = sqrt(sum_d (Y_gd - mu_g)^2 / n_donors + 1)``;
3. the bulk in counts per million over the genes used, then every gene
   z-scored across the bulk samples (R's ``scale``: standard deviation with
   ``n - 1``) and mapped to ``z s_g + mu_g``; genes constant across the bulk
   samples (no transformation can be learned) are dropped;
4. per sample, least squares on the reference with ``x >= 0``, ``sum(x) = 1``
   (``lsei::pnnls(sum=1)``), solved exactly by the core solver.

The proportions are cell fractions (the reference is a mean over cells, each
normalised to one million counts).  The transformation uses every bulk sample
at once: a sample's estimate depends on the others, at least two are needed,
and the pipeline must pass all of them in one call (the record is
``batch_dependent``).  The signature's values are not used, only its genes.
The transformation assumes that the compositions of the bulk samples spread
like those of the reference's donors: it gives every gene of the bulk the
donors' mean and spread, so when the spreads match the estimates still
shrink towards the donors' mean composition by about ``sqrt((d - 1) / d)``
for ``d`` donors (the spread of the donors is taken with ``d``, that of the
bulk with ``m - 1``).

Differences from the package, from what the pipeline's
:class:`~fastdeconv.methods._problem.CellContext` holds: a cell's relative
expression is over all genes of the reference (Bisque: counts per million
over the genes used), and the genes that no cell of the reference's types
expresses are dropped (Bisque drops the genes of zero variance across cells).

Examples
--------
>>> import numpy as np
>>> from fastdeconv.inputs.counts import as_counts
>>> from fastdeconv.methods import REGRESSION
>>> from fastdeconv.methods._problem import CellContext, RegressionProblem
>>> rng = np.random.default_rng(0)
>>> base = np.vstack([np.r_[np.full(10, 20.0), np.full(10, 2.0)],
...                   np.r_[np.full(10, 2.0), np.full(10, 20.0)]]).T  # 20 genes x 2 types
>>> labels = np.repeat(["A", "B"], 30)
>>> donors = np.repeat(["d1", "d2", "d3", "d1", "d2", "d3"], [16, 10, 4, 4, 10, 16])
>>> ctx = CellContext.from_counts(as_counts(rng.poisson(base[:, np.repeat([0, 1], 30)])),
...                               labels, ["A", "B"], subjects=donors)
>>> truth = np.array([[0.2, 0.5, 0.8], [0.8, 0.5, 0.2]])  # as the donors' shares of A: .8 .5 .2
>>> bulk = 3.0 * base @ truth + 40.0  # another platform: a scale and an offset on every gene
>>> fit = REGRESSION.get("bisque").fit(RegressionProblem(base, bulk, cells=ctx))
>>> fit.coefficients.round(2).tolist()  # shrunk towards 0.5 by sqrt(2 / 3) (3 donors)
[[0.26, 0.5, 0.74], [0.74, 0.5, 0.26]]
>>> REGRESSION.get("simplex").fit(RegressionProblem(base, bulk)).coefficients.round(2).tolist()
[[0.0, 0.5, 1.0], [1.0, 0.5, 0.0]]
"""

from __future__ import annotations

import warnings

import numpy as np

from fastdeconv.methods import REGRESSION, Method
from fastdeconv.methods._cells import require_cells
from fastdeconv.methods._problem import MethodFit

__all__ = ["bisque_transform"]

_BISQUE = (
    "Jew B., Alvarez M., Rahmani E., Miao Z., Ko A., Garske K. M., Sul J. H., Pietilainen K. H., "
    "Pajukanta P., Halperin E. (2020) Accurate estimation of cell composition in bulk "
    "expression through robust integration of single-cell information. Nat Commun 11:1971. "
    "doi:10.1038/s41467-020-15816-6"
)


def bisque_transform(bulk, ctx):
    """Bisque's reference and its gene-wise transformation of the bulk (no overlapping donors).

    Parameters
    ----------
    bulk : ndarray, shape (n, m)
        Bulk samples on the genes of ``ctx`` (any linear scale), ``m >= 2``.
    ctx : CellContext
        A single-cell reference with at least two donors or batches.

    Returns
    -------
    reference : ndarray, shape (n, k)
        Mean counts per million of each type over its cells.
    transformed : ndarray, shape (n, m)
        The bulk mapped gene by gene to the reference's scale (NaN rows for
        the genes no transformation is learned for).
    usable : ndarray of bool, shape (n,)
        The genes to fit: expressed in the reference and not constant across
        the bulk samples.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.methods._problem import CellContext
    >>> from fastdeconv.methods.bisque import bisque_transform
    >>> profiles = np.array([[[0.6, 0.6], [0.2, 0.2]], [[0.4, 0.4], [0.8, 0.8]]])
    >>> ctx = CellContext(np.ones(2), np.array([4, 4]), ("d1", "d2"), profiles,
    ...                   np.array([[3, 1], [1, 3]]), np.zeros((2, 2)))
    >>> ref, y, usable = bisque_transform(np.array([[1.0, 3.0], [2.0, 2.0]]), ctx)
    >>> ref.round().tolist(), usable.tolist()
    ([[600000.0, 200000.0], [400000.0, 800000.0]], [True, True])
    """
    ref = ctx.cell_mean() * 1e6
    cells = ctx.subject_cells.astype(np.float64)
    props = cells / np.where(cells.sum(axis=0) > 0, cells.sum(axis=0), 1.0)
    pseudo = ref @ props
    mu = pseudo.mean(axis=1)
    spread = np.sqrt(((pseudo - mu[:, None]) ** 2).sum(axis=1) / pseudo.shape[1] + 1.0)
    totals = bulk.sum(axis=0)
    cpm = bulk * (1e6 / np.where(totals > 0, totals, 1.0))
    sd = cpm.std(axis=1, ddof=1)
    usable = (sd > 0) & np.isfinite(sd) & (ref.sum(axis=1) > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (cpm - cpm.mean(axis=1, keepdims=True)) / sd[:, None]
    transformed = z * spread[:, None] + mu[:, None]
    transformed[~usable] = np.nan
    return ref, transformed, usable


def _fit_bisque(problem):
    """``"bisque"``: the gene-wise transformation of all samples, then simplex least squares."""
    from fastdeconv.solvers._core import solve
    from fastdeconv.solvers.api import warn_unconverged

    ctx = require_cells(problem, "bisque", min_subjects=2)
    if problem.m < 2:
        raise ValueError(
            "method='bisque' learns its transformation from the spread of every gene across the "
            f"bulk samples and needs at least 2 of them (3 or more recommended); got {problem.m}"
        )
    if ctx.n_subjects == 2:
        warnings.warn(
            "method='bisque' with only 2 donors or batches in subjects=: Bisque runs, but its "
            "authors recommend at least 3 for reliable estimates",
            UserWarning, stacklevel=3,
        )
    ref, Y, usable = bisque_transform(problem.B, ctx)
    if usable.sum() < problem.k:
        raise ValueError(
            f"method='bisque': only {int(usable.sum())} of {problem.n} genes vary across the bulk "
            f"samples and are expressed in the reference, fewer than the {problem.k} cell types"
        )
    X, info = solve(np.ascontiguousarray(ref[usable]), np.ascontiguousarray(Y[usable]),
                    kind="simplex", n_jobs=problem.n_jobs, max_iter=problem.max_iter,
                    tol=problem.tol)
    warn_unconverged(info.status, problem.max_iter, stacklevel=3)
    gene_w = np.broadcast_to(usable.astype(np.float64)[:, None], (problem.n, problem.m))
    # judged on the transformed bulk it fits (the genes it cannot use left out)
    fitted = np.full((problem.n, problem.m), np.nan)
    fitted[usable] = ref[usable] @ X
    observed = np.where(usable[:, None], np.nan_to_num(Y), 0.0)
    return MethodFit(X, info.converged, info.n_iter, info.n_reweight, gene_w, fitted=fitted,
                     observed=observed)


REGRESSION.register(Method(
    "bisque",
    "Bisque: every gene of the bulk moved to the single-cell reference's scale, then "
    "sum-to-one NNLS (single cells with subjects; all samples at once)",
    fit=_fit_bisque, normalise=False, weights="unsupported", background=False,
    losses=("squared",), references=(_BISQUE,), needs=("cells", "subjects"),
    batch_dependent=True, cell_fractions=True,
))
