"""Fitting samples block by block: the regression pipeline's engine for any size of bulk.

:func:`fit_samples` fits an in-memory bulk in blocks of samples (the progress bar
advances between blocks).  :class:`BlockFitter` fits one block of a bulk that is
never held whole -- sparse counts, an AnnData file read lazily, a Dask array
(:mod:`fastdeconv.inputs.blocks`) -- and returns plain numbers, so that the same
object runs in the caller's threads or on Dask workers (it pickles).

Two ways through a block:

- **Gram form**, for methods whose record has ``gram`` and the squared loss
  (``nnls``, ``wls``, ``simplex``, ``simplex_le`` with ``robust=None``): one pass over
  the block's stored non-zeros projects every sample on the signature
  (:func:`fastdeconv.kernels.sparse.project_csr_rows`), the k x k solves follow, and
  the fit statistics come from the same sums -- the block is never densified;
- **dense**, for every other method (Huber's loss, DWLS, ...): the block is
  densified on the genes used only (genes x block, float64) and the method's ``fit``
  is called on it, exactly as for an in-memory bulk.

A sample's answer never depends on the block it falls in.

Examples
--------
>>> import numpy as np, scipy.sparse as sp
>>> from fastdeconv.blockwise import BlockFitter
>>> S = np.array([[10.0, 1.0], [1.0, 8.0], [5.0, 5.0]])
>>> B = sp.csr_array((S @ [[0.25, 0.5], [0.75, 0.5]]).T)   # samples x genes
>>> fitter = BlockFitter("simplex", S, row_map=np.arange(3), common=np.ones(3, bool))
>>> out = fitter(B)
>>> out[:, :2].round(10).tolist()
[[0.25, 0.75], [0.5, 0.5]]
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fastdeconv._progress import progress_bar
from fastdeconv.methods import REGRESSION
from fastdeconv.methods._problem import (
    CellContext, GramProblem, MethodFit, RegressionProblem, fit_statistics,
    statistics_from_sums, with_background,
)

__all__ = ["fit_samples", "BlockFitter", "BLOCK", "STATISTICS"]

#: Samples per call of a method on an in-memory bulk (the progress bar advances
#: between calls).
_BLOCK = 4096
#: Samples per block of a bulk read block by block: the dense path holds
#: genes used x BLOCK float64 values (260 MB for 2000 genes).
BLOCK = 16384
#: The per-sample numbers a block's fit returns after the coefficients and the
#: method's extra columns.
STATISTICS = ("converged", "n_iter", "n_reweight", "residual_norm", "rmse", "r2",
              "pearson_r", "zero", "none", "total_common")


def fit_samples(record, S, B, w0, solver, progress):
    """Fit every sample that is not zero on all genes, in blocks of samples.

    ``solver`` holds the other fields of the :class:`RegressionProblem`; a
    method whose record is ``batch_dependent`` gets all samples in one block.

    Returns one :class:`MethodFit` for all samples (NaN coefficients, extra
    columns and gene weights, not converged, for the all-zero samples) and the
    mask of those samples.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.blockwise import fit_samples
    >>> from fastdeconv.methods import REGRESSION
    >>> S = np.array([[10.0, 1.0], [1.0, 8.0], [5.0, 5.0]])
    >>> B = np.column_stack([S @ [0.25, 0.75], np.zeros(3)])
    >>> fit, zero = fit_samples(REGRESSION.get("simplex"), S, B, None, {}, False)
    >>> fit.coefficients[:, 0].round(10).tolist(), zero.tolist()
    ([0.25, 0.75], [False, True])
    """
    n, m = B.shape
    zero = ~np.any(B > 0, axis=0)
    X = np.full((S.shape[1], m), np.nan)
    converged = np.zeros(m, dtype=bool)
    n_iter = np.zeros(m, dtype=np.int64)
    n_reweight = np.zeros(m, dtype=np.int64)
    gene_w = np.full((n, m), np.nan)
    extra = {name: np.full(m, np.nan) for name in record.extra_columns}
    fixed = 1.0 if w0 is None else w0[:, None]
    fitted = observed = None  # the method's own reconstruction, when it gives one
    live = np.flatnonzero(~zero)
    block = max(live.size, 1) if record.batch_dependent else _BLOCK
    with progress_bar(m, progress, desc="deconvolve", compiling=True) as bar:
        bar.update(int(zero.sum()))
        for start in range(0, live.size, block):
            cols = live[start:start + block]
            per_sample = {} if solver.get("bulk_totals") is None else {
                "bulk_totals": solver["bulk_totals"][cols]}
            fit = record.fit(RegressionProblem(S, B[:, cols], w0, **{**solver, **per_sample}))
            X[:, cols] = fit.coefficients
            converged[cols] = fit.converged
            n_iter[cols] = fit.n_iter
            n_reweight[cols] = fit.n_reweight
            gene_w[:, cols] = fixed if fit.gene_weights is None else fit.gene_weights
            for name in record.extra_columns:
                extra[name][cols] = fit.extra[name]
            if fit.fitted is not None:
                if fitted is None:
                    fitted = np.full((n, m), np.nan)
                fitted[:, cols] = fit.fitted
            if fit.observed is not None:  # (a copy of B only for a method that transforms it)
                if observed is None:
                    observed = np.array(B, dtype=np.float64)
                observed[:, cols] = fit.observed
            bar.update(cols.size)
    return MethodFit(X, converged, n_iter, n_reweight, gene_w, extra, fitted, observed), zero


def no_cell_type(X, gram, bnorm2):
    """Samples explained by no cell type: ``||S x||`` at rounding level next to ``||b||``.

    Parameters
    ----------
    X : ndarray, shape (k, m)
        Cell-type coefficients (NaN for unfitted samples).
    gram : ndarray, shape (k, k)
        ``S'S`` of the cell-type columns.
    bnorm2 : ndarray, shape (m,)
        ``||b||^2`` per sample.

    Returns
    -------
    ndarray of bool, shape (m,)

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.blockwise import no_cell_type
    >>> no_cell_type(np.array([[0.0, 1.0]]), np.eye(1), np.array([4.0, 4.0])).tolist()
    [True, False]
    """
    Xf = np.nan_to_num(X)
    explained2 = np.einsum("ij,ik,kj->j", Xf, gram, Xf)
    return np.sqrt(np.maximum(explained2, 0.0)) <= 1e-9 * np.sqrt(bnorm2)


def _stacked(*columns):
    """The per-sample :data:`STATISTICS` as one float array (statistics NaN for zero samples)."""
    stats = np.column_stack(columns).astype(np.float64)
    stats[stats[:, STATISTICS.index("zero")] > 0, 3:7] = np.nan
    return stats


@dataclass
class BlockFitter:
    """Fit one block of samples (samples x all the bulk's genes); plain numbers out.

    Parameters
    ----------
    method : str
        A registered regression method.
    S : ndarray, shape (n_used, k)
        The signature's cell-type columns on the genes used.
    row_map : ndarray of int, shape (n_genes,)
        For each gene of the bulk (stored order) its row in ``S``, or -1.
    common : ndarray of bool, shape (n_genes,)
        The bulk's genes shared with the signature (each sample's total over them
        is reported, and given to methods as ``bulk_totals``).
    background : bool, optional
        Fit a constant background column (:func:`with_background`).
    weights : ndarray, shape (n_used,), optional
        Fixed gene weights.
    solver : dict, optional
        ``huber``, ``n_jobs``, ``max_iter``, ``tol`` of the :class:`RegressionProblem`.
    options : dict, optional
        The method's own options.
    cell_types : tuple of str, optional
    signature_totals : ndarray, shape (k,), optional
    cells : CellContext, optional
        On the genes used.
    scale : str, optional
        The bulk's stored scale (``"linear"``, ``"log1p"``, ``"log2p1"``, ``"log2"``):
        each block is un-logged first.

    Returns
    -------
    ndarray, shape (m_block, k_fit + len(extra_columns) + len(STATISTICS))
        Per sample: the coefficients (with the background's last), the method's extra
        columns, then :data:`STATISTICS`.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.blockwise import BlockFitter, STATISTICS
    >>> S = np.array([[10.0, 1.0], [1.0, 8.0], [5.0, 5.0]])
    >>> fitter = BlockFitter("nnls", S, row_map=np.arange(3), common=np.ones(3, bool))
    >>> out = fitter(np.vstack([S @ [2.0, 6.0], np.zeros(3)]))  # dense block, samples x genes
    >>> out[0, :2].round(10).tolist(), float(out[1, fitter.column("zero")])
    ([2.0, 6.0], 1.0)
    """

    method: str
    S: np.ndarray
    row_map: np.ndarray
    common: np.ndarray
    background: bool = False
    weights: np.ndarray | None = None
    solver: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)
    cell_types: tuple = ()
    signature_totals: np.ndarray | None = None
    cells: CellContext | None = None
    scale: str = "linear"

    def __post_init__(self):
        self.S = np.ascontiguousarray(self.S, dtype=np.float64)
        self.row_map = np.ascontiguousarray(self.row_map, dtype=np.int64)
        self.common = np.ascontiguousarray(self.common, dtype=np.bool_)
        self._S_fit, self._level = with_background(self.S, self.background)
        used = self.row_map[self.row_map >= 0]
        # genes of one name summed (duplicates="sum"): sum b^2 of the stored values is not
        # that of their sums, so such blocks take the dense path, which adds them first
        self._merged = bool(np.bincount(used, minlength=1).max() > 1) if used.size else False
        # the Gram matrices, the same for every block: once, and by einsum (BLAS's rounding
        # depends on its threads, and Dask's threads run blocks side by side)
        S_fit = self._S_fit
        W = np.ones(S_fit.shape[0]) if self.weights is None else self.weights
        gram_w = np.einsum("gi,g,gj->ij", S_fit, W, S_fit)
        self._gram_w = 0.5 * (gram_w + gram_w.T)
        self._gram = np.einsum("gi,gj->ij", S_fit, S_fit)
        # what each block is projected on: the weighted design for the fit (and the plain
        # one for the statistics); nothing for the dense path, which needs only the sums
        if not self.gram_form:
            A = np.zeros((S_fit.shape[0], 0))
        elif self.weights is None:
            A = S_fit
        else:
            A = np.hstack([S_fit * self.weights[:, None], S_fit])
        self._A = np.ascontiguousarray(A)
        self._S_colsum = S_fit.sum(axis=0)

    @property
    def record(self):
        """The method's record."""
        return REGRESSION.get(self.method)

    @property
    def gram_form(self):
        """Whether blocks are fitted from their projections (never densified)."""
        return (self.record.gram is not None and self.solver.get("huber") is None
                and self.scale != "log2" and not self._merged)

    @property
    def columns(self):
        """Names of the returned columns."""
        k = self.S.shape[1]
        names = [f"coef{i}" for i in range(k)] + (["background"] if self.background else [])
        return names + list(self.record.extra_columns) + list(STATISTICS)

    def column(self, name):
        """Position of a named column in the returned array."""
        return self.columns.index(name)

    @property
    def level(self):
        """The background column's level (None without a background)."""
        return self._level

    def __call__(self, block, block_info=None):
        """Fit the samples of ``block`` (samples x genes, CSR or dense)."""
        offset = 0 if not block_info else int(block_info[0]["array-location"][0][0])
        if not self.gram_form and hasattr(block, "tocsr"):
            block = block.tocsr()  # (rows as views: the dense path needs a scipy matrix)
        block = self._unlogged(block)
        proj, sums = self._project(block, self._A)
        bad = np.flatnonzero(sums[:, 3] > 0)
        if bad.size:
            raise ValueError(
                f"bulk sample {offset + int(bad[0])} (counting from 0) holds negative, NaN or "
                f"infinite values ({int(sums[bad[0], 3])} of them; {bad.size} such sample(s) "
                "in its block): deconvolution needs non-negative expression on a linear "
                "scale; remove or correct them"
            )
        from fastdeconv._parallel import single_threaded_blas

        # one BLAS thread: the blocks' own threads do the work, and BLAS's rounding must
        # not depend on how many threads it had (Dask runs blocks side by side)
        with single_threaded_blas():
            if self.gram_form:
                return self._gram_fit(proj, sums)
            return self._dense_fit(self._dense(block), sums)

    # -- the two ways through a block ------------------------------------------------

    def _gram_fit(self, proj, sums):
        k_fit = self._S_fit.shape[1]
        S_fit = self._S_fit
        gram_w = self._gram_w
        C_w = np.ascontiguousarray(proj[:, :k_fit].T)
        C = C_w if self.weights is None else np.ascontiguousarray(proj[:, k_fit:].T)
        s1, s2 = sums[:, 0], sums[:, 1]
        zero = s1 <= 0
        m = proj.shape[0]
        X = np.full((k_fit, m), np.nan)
        fit = None
        live = np.flatnonzero(~zero)
        if live.size:
            fit = self.record.gram(GramProblem(
                gram_w, np.ascontiguousarray(C_w[:, live]), n_jobs=self.solver.get("n_jobs"),
                max_iter=self.solver.get("max_iter", -1), tol=self.solver.get("tol", 1e-11),
                options=self.options, cell_types=self.cell_types))
            X[:, live] = fit.coefficients
        # fit statistics from the same sums: rss = b'b - 2 x'S'b + x'S'Sx, and so on
        gram = self._gram
        Xf = np.nan_to_num(X)
        n = S_fit.shape[0]
        # (einsum, not BLAS: a sample's numbers must not depend on the block's width)
        xGx = np.einsum("ij,ik,kj->j", Xf, gram, Xf)
        xC = np.einsum("ij,ij->j", Xf, C)
        fitted_sum = np.einsum("i,ij->j", self._S_colsum, Xf)
        norm, rmse, r2, pearson = statistics_from_sums(
            np.maximum(s2 - 2.0 * xC + xGx, 0.0), np.maximum(s2 - s1 * s1 / n, 0.0),
            xC - s1 * fitted_sum / n, np.maximum(xGx - fitted_sum * fitted_sum / n, 0.0), n)
        k = self.S.shape[1]
        none = no_cell_type(X[:k], gram[:k, :k], s2)
        converged, n_iter, n_reweight = (np.zeros(m) for _ in range(3))
        extra = np.full((m, len(self.record.extra_columns)), np.nan)
        if fit is not None:
            converged[live], n_iter[live], n_reweight[live] = (
                fit.converged, fit.n_iter, fit.n_reweight)
            for i, name in enumerate(self.record.extra_columns):
                extra[live, i] = fit.extra[name]
        return np.hstack([X.T, extra, _stacked(converged, n_iter, n_reweight, norm, rmse, r2,
                                               pearson, zero, none, sums[:, 2])])

    def _dense_fit(self, B, sums):
        record = self.record
        m = B.shape[1]
        problem = dict(self.solver, options=self.options, cell_types=self.cell_types,
                       bulk_totals=sums[:, 2].copy(), signature_totals=self.signature_totals)
        if self.cells is not None:
            problem["cells"] = self.cells
        fit, zero = fit_samples(record, self._S_fit, B, self.weights, problem, False)
        norm, rmse, r2, pearson = fit_statistics(
            self._S_fit, B if fit.observed is None else fit.observed,
            np.nan_to_num(fit.coefficients), fitted=fit.fitted)
        k = self.S.shape[1]
        none = no_cell_type(fit.coefficients[:k], self._gram[:k, :k],
                            np.einsum("ij,ij->j", B, B))
        extra = np.column_stack([fit.extra[name] for name in record.extra_columns]) \
            if record.extra_columns else np.zeros((m, 0))
        return np.hstack([fit.coefficients.T, extra, _stacked(
            fit.converged, fit.n_iter, fit.n_reweight, norm, rmse, r2, pearson, zero, none,
            sums[:, 2])])

    # -- helpers -------------------------------------------------------------------------

    def _unlogged(self, block):
        if self.scale == "linear":
            return block
        from fastdeconv.inputs.tables import unlog

        if hasattr(block, "indptr") and self.scale != "log2":  # zero stays zero
            from fastdeconv.inputs.blocks import CSRRows

            data = np.asarray(unlog(np.asarray(block.data, dtype=np.float64), self.scale))
            if isinstance(block, CSRRows):
                return CSRRows(block.indptr, block.indices, data, block.shape)
            block = block.copy()
            block.data = data
            return block
        dense = block.tocsr().toarray() if hasattr(block, "tocsr") else np.asarray(block)
        return np.asarray(unlog(dense.astype(np.float64), self.scale))

    def _project(self, block, A):
        """``(A' b, sums)`` for every sample of the block, in worker threads."""
        from fastdeconv.solvers._core import project_rows

        return project_rows(A, block, self.row_map, self.common,
                            n_jobs=self.solver.get("n_jobs"))

    def _dense(self, block):
        """The block on the genes used: genes x samples, float64 (duplicates summed)."""
        import scipy.sparse as sp

        if hasattr(block, "tocsr"):
            block = block.tocsr()
        if getattr(self, "_select", None) is None:  # (once per fitter: genes -> rows used)
            keep = np.flatnonzero(self.row_map >= 0)
            self._select = sp.csr_array((np.ones(keep.size), (keep, self.row_map[keep])),
                                        shape=(self.row_map.size, self.S.shape[0]))
        picked = block @ self._select
        picked = picked.toarray() if sp.issparse(picked) else np.asarray(picked)
        return np.ascontiguousarray(picked.T, dtype=np.float64)
