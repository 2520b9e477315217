"""The contract between the regression pipeline and its methods.

:func:`fastdeconv.deconvolve` reads, matches and checks the user's tables,
then hands every registered regression method the same
:class:`RegressionProblem` (checked arrays and options already in the one
vocabulary the solvers speak) and receives a :class:`MethodFit`.  A method is
one function ``fit(problem) -> MethodFit``; everything else -- names, gene
selection, normalisation, fit statistics, the result -- is the pipeline's.

Examples
--------
>>> import numpy as np
>>> from fastdeconv.methods._problem import MethodFit, RegressionProblem
>>> S = np.array([[10.0, 1.0], [1.0, 8.0], [5.0, 5.0]])
>>> problem = RegressionProblem(S, S @ np.array([[0.25], [0.75]]))
>>> problem.k, problem.m, problem.loss
(2, 1, 'squared')
>>> X = np.linalg.lstsq(problem.S, problem.B, rcond=None)[0]
>>> MethodFit.exact(X).converged.tolist()
[True]
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "RegressionProblem", "MixtureProblem", "MethodFit", "CellContext", "with_background",
    "fit_statistics",
]


@dataclass(frozen=True)
class CellContext:
    """What a labelled single-cell reference tells a method beyond its signature.

    Every array is on the genes of the problem (the rows of
    ``RegressionProblem.S``, in that order) and the cell types of its columns
    (without the background column).  Expression is relative (a cell's
    counts divided by its total over all genes of the reference: CPM / 1e6),
    the scale of :func:`fastdeconv.build_signature` divided by 1e6.

    Attributes
    ----------
    rna_content : ndarray, shape (k,)
        Mean total counts per cell of each type (its RNA per cell).
    n_cells : ndarray, shape (k,)
        Cells per type.
    subjects : tuple of str
        Names of the donors / batches (``("all",)`` without ``subjects=``).
    subject_profiles : ndarray, shape (n, k, s)
        Mean relative expression of each type in each subject; NaN where a
        subject has no cell of the type.
    subject_cells : ndarray, shape (k, s)
        Cells of each type in each subject.
    pseudobulk : ndarray, shape (n, s)
        Each subject's pseudo-bulk: the sum of its cells' counts divided by
        their total over all genes (what a bulk of that subject's cells would
        measure).

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.methods._problem import CellContext
    >>> ctx = CellContext(np.array([2e3, 5e3]), np.array([10, 4]), ("d1",),
    ...                   np.full((3, 2, 1), 0.1), np.array([[10], [4]]), np.full((3, 1), 0.1))
    >>> ctx.n_subjects
    1
    """

    rna_content: np.ndarray
    n_cells: np.ndarray
    subjects: tuple
    subject_profiles: np.ndarray
    subject_cells: np.ndarray
    pseudobulk: np.ndarray

    @property
    def n_subjects(self):
        """Number of subjects (donors or batches)."""
        return len(self.subjects)

    def cell_mean(self):
        """Mean relative expression of each type over all its cells, shape (n, k).

        The per-subject means weighted by the subject's cells of the type: the
        mean over every cell of the type, as a signature built from the cells is
        (:func:`fastdeconv.build_signature`, divided by 1e6).

        Returns
        -------
        ndarray, shape (n, k)

        Examples
        --------
        >>> import numpy as np
        >>> from fastdeconv.methods._problem import CellContext
        >>> ctx = CellContext(np.ones(1), np.array([4]), ("a", "b"), np.array([[[0.2, 0.6]]]),
        ...                   np.array([[3, 1]]), np.zeros((1, 2)))
        >>> ctx.cell_mean().round(3).tolist()
        [[0.3]]
        """
        cells = self.subject_cells.astype(np.float64)
        total = cells.sum(axis=1)
        summed = np.einsum("gks,ks->gk", np.nan_to_num(self.subject_profiles), cells)
        return summed / np.where(total > 0, total, 1.0)

    def subject_mean(self):
        """Mean over subjects of each type's relative expression, shape (n, k).

        Subjects without a cell of the type are left out (MuSiC's ``M.theta``).

        Returns
        -------
        ndarray, shape (n, k)
            0 for a type no subject has.
        """
        seen = self.subject_cells > 0
        count = seen.sum(axis=1)
        summed = np.where(seen[None], self.subject_profiles, 0.0).sum(axis=2)
        return summed / np.where(count > 0, count, 1)

    def subject_variance(self, ddof=1):
        """Variance over subjects of each type's relative expression, shape (n, k).

        Subjects without a cell of the type are left out; NaN where fewer than
        ``ddof + 1`` subjects have the type (MuSiC's ``Sigma``, R's ``var``).

        Parameters
        ----------
        ddof : int, optional
            Delta degrees of freedom (1: the unbiased variance).

        Returns
        -------
        ndarray, shape (n, k)
        """
        seen = self.subject_cells > 0
        count = seen.sum(axis=1)
        dev = np.where(seen[None], self.subject_profiles - self.subject_mean()[:, :, None], 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            var = (dev * dev).sum(axis=2) / (count - ddof)
        var[:, count <= ddof] = np.nan
        return var

    def take(self, rows):
        """The context on a subset of the genes (rows in the order given).

        Parameters
        ----------
        rows : array_like of int
            Gene positions.

        Returns
        -------
        CellContext

        Examples
        --------
        >>> import numpy as np
        >>> from fastdeconv.methods._problem import CellContext
        >>> ctx = CellContext(np.ones(2), np.ones(2), ("d1",), np.zeros((3, 2, 1)),
        ...                   np.ones((2, 1)), np.arange(3.0).reshape(3, 1))
        >>> ctx.take([2, 0]).pseudobulk.ravel().tolist()
        [2.0, 0.0]
        """
        rows = np.asarray(rows, dtype=np.int64)
        return CellContext(
            self.rna_content, self.n_cells, self.subjects,
            np.ascontiguousarray(self.subject_profiles[rows]), self.subject_cells,
            np.ascontiguousarray(self.pseudobulk[rows]),
        )

    @classmethod
    def from_counts(cls, counts, labels, cell_types, subjects=None, n_jobs=None):
        """Sum a labelled single-cell reference by cell type and subject, in one pass.

        Parameters
        ----------
        counts : Counts
            Raw counts, genes x cells (:func:`fastdeconv.inputs.counts.as_counts`).
        labels : array_like of str, shape (n_cells,)
            The cell type of every cell.
        cell_types : sequence of str
            The types, in the order of the signature's columns; cells of other
            types count in the pseudo-bulks only.
        subjects : array_like of str, shape (n_cells,), optional
            The donor or batch of every cell; None: one subject, ``"all"``.
        n_jobs : int, optional
            Threads for the sums.

        Returns
        -------
        CellContext
            On every gene of ``counts``, in its order.

        Examples
        --------
        >>> import numpy as np
        >>> from fastdeconv.inputs.counts import as_counts
        >>> from fastdeconv.methods._problem import CellContext
        >>> c = as_counts(np.array([[3, 1, 0, 2], [1, 3, 4, 2]]))
        >>> ctx = CellContext.from_counts(c, ["A", "A", "B", "B"], ["A", "B"],
        ...                               subjects=["d1", "d2", "d1", "d2"])
        >>> ctx.subjects, ctx.rna_content.tolist()
        (('d1', 'd2'), [4.0, 4.0])
        >>> ctx.subject_profiles[:, 0, :].tolist()  # type A in d1 and d2
        [[0.75, 0.25], [0.25, 0.75]]
        >>> ctx.pseudobulk.tolist()  # (3 + 0) / 8 and (1 + 2) / 8 ...
        [[0.375, 0.375], [0.625, 0.625]]
        """
        import pandas as pd

        labels = np.asarray(labels).astype(str)
        subj = (np.full(labels.size, "all") if subjects is None
                else np.asarray(subjects).astype(str))
        names, s_codes = np.unique(subj, return_inverse=True)
        k, n_s = len(cell_types), len(names)
        t_codes = pd.Index([str(t) for t in cell_types]).get_indexer(labels)
        typed = t_codes >= 0
        lib = counts.library_sizes()
        scale = np.where(lib > 0, 1.0 / np.where(lib > 0, lib, 1.0), 0.0)
        # groups: (type, subject) for typed cells, then one group per subject for the others
        groups = np.where(typed, t_codes * n_s + s_codes, k * n_s + s_codes).astype(np.int64)
        sums = counts.group_sums(groups, (k + 1) * n_s, scale, n_jobs)
        n = counts.n_genes
        rel = sums["norm_sum"][:, : k * n_s].reshape(n, k, n_s)
        cells = np.bincount(groups, minlength=(k + 1) * n_s)
        typed_cells = cells[: k * n_s].reshape(k, n_s)
        with np.errstate(invalid="ignore", divide="ignore"):
            profiles = np.where(typed_cells > 0, rel / typed_cells, np.nan)
        raw = sums["count_sum"].reshape(n, k + 1, n_s).sum(axis=1)
        totals = np.bincount(s_codes, weights=lib, minlength=n_s)
        pseudobulk = raw / np.where(totals > 0, totals, 1.0)
        n_cells = typed_cells.sum(axis=1)
        content = np.bincount(t_codes[typed], weights=lib[typed], minlength=k)
        rna = content / np.maximum(n_cells, 1)
        return cls(rna, n_cells, tuple(str(x) for x in names), np.ascontiguousarray(profiles),
                   typed_cells, np.ascontiguousarray(pseudobulk))


@dataclass(frozen=True)
class RegressionProblem:
    """What every regression method is given: checked arrays and solver options.

    Every array is validated by the pipeline; a method trusts it (no
    re-checks).

    Attributes
    ----------
    S : ndarray, shape (n, k)
        Signature on the genes used, float64, C-contiguous, finite and
        non-negative.  When the pipeline fits a background level its last
        column is constant (the method treats it like any other column).
    B : ndarray, shape (n, m)
        Bulk samples on the same genes, float64, finite, non-negative; no
        sample is zero on every gene.
    weights : ndarray, shape (n,), optional
        Fixed non-negative gene weights (at least one positive), or None.
    huber : tuple (c, max_rounds, rtol), optional
        Minimise Huber's loss with constant ``c`` (in units of the residual
        scale) by at most ``max_rounds`` re-weighting rounds, stopping when no
        coefficient moves by more than ``rtol`` of the largest; None: squares.
    n_jobs : int, optional
        Worker threads (see :func:`fastdeconv._parallel.resolve_n_jobs`).
    max_iter : int, default -1
        Cap on active-set changes per sample; -1 is the solvers' default.
    tol : float, default 1e-11
        Relative tolerance on the optimality conditions.
    options : dict
        The method's own options (its record's ``options`` updated with the
        user's ``method_options=``), already of the defaults' types.
    cells : CellContext, optional
        What the single-cell reference says beyond the signature, on the
        same genes (rows of ``S``): set when the user gave single cells
        (``labels=``), None otherwise.  Methods whose record ``needs`` cells
        are only called with it set.
    cell_types : tuple of str
        Names of the cell-type columns of ``S`` (not of a background column);
        empty when the caller has no names.
    bulk_totals : ndarray, shape (m,), optional
        Each sample's total over every gene bulk and signature share (before
        any gene selection): the scale of the sample.
    signature_totals : ndarray, shape (k,), optional
        The same for each cell type's profile (1e6 for a signature built from
        single cells: CPM over all the cells' genes).

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.methods._problem import RegressionProblem
    >>> p = RegressionProblem(np.eye(3), np.ones((3, 4)), huber=(1.345, 500, 1e-5))
    >>> p.loss, p.n, p.k, p.m
    ('huber', 3, 3, 4)
    """

    S: np.ndarray
    B: np.ndarray
    weights: np.ndarray | None = None
    huber: tuple | None = None
    n_jobs: int | None = None
    max_iter: int = -1
    tol: float = 1e-11
    options: dict = field(default_factory=dict)
    cells: CellContext | None = None
    cell_types: tuple = ()
    bulk_totals: np.ndarray | None = None
    signature_totals: np.ndarray | None = None

    @property
    def loss(self):
        """``"huber"`` or ``"squared"``: the loss the method minimises."""
        return "squared" if self.huber is None else "huber"

    @property
    def n(self):
        """Number of genes."""
        return self.S.shape[0]

    @property
    def k(self):
        """Number of columns of the signature (cell types, plus the background)."""
        return self.S.shape[1]

    @property
    def m(self):
        """Number of samples."""
        return self.B.shape[1]


@dataclass
class GramProblem:
    """A regression problem in Gram form: what a method's ``gram`` function is given.

    For the squared loss with gene weights ``W`` shared by every sample, the fit
    needs only ``S'WS`` (k x k) and each sample's ``S'Wb``: the pipeline computes them
    in one pass over a sparse or out-of-core bulk (:mod:`fastdeconv.blockwise`).

    Attributes
    ----------
    gram : ndarray, shape (k, k)
        ``S'WS``, symmetric, float64.
    projections : ndarray, shape (k, m)
        ``S'Wb`` per sample, float64.
    n_jobs, max_iter, tol, options, cell_types
        As in :class:`RegressionProblem`.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.methods._problem import GramProblem
    >>> GramProblem(np.eye(2), np.ones((2, 5))).m
    5
    """

    gram: np.ndarray
    projections: np.ndarray
    n_jobs: int | None = None
    max_iter: int = -1
    tol: float = 1e-11
    options: dict = field(default_factory=dict)
    cell_types: tuple = ()

    @property
    def k(self):
        """Number of columns of the signature."""
        return self.gram.shape[0]

    @property
    def m(self):
        """Number of samples."""
        return self.projections.shape[1]


@dataclass(frozen=True)
class MethodFit:
    """What every regression method returns: coefficients and per-sample diagnostics.

    Attributes
    ----------
    coefficients : ndarray, shape (k, m)
        One column per sample, one row per column of ``problem.S``.
    converged : ndarray of bool, shape (m,)
        True where the method's optimality conditions held.
    n_iter : ndarray of int, shape (m,)
        Iterations of the (last) solve per sample.
    n_reweight : ndarray of int, shape (m,)
        Robust re-weighting rounds per sample (zeros for least squares).
    gene_weights : ndarray, shape (n, m), optional
        Final weight of every gene in every fit (fixed weights times robust
        weights); None when they are the fixed weights (or 1).
    extra : dict of str to ndarray of shape (m,)
        Values of the record's ``extra_columns`` (e.g. ``"unexplained"``).
    fitted : ndarray, shape (n, m), optional
        The method's reconstruction of the data it fitted, when that is not
        ``S @ coefficients`` (a method that rescales the bulk or the
        signature, or reports cell fractions); the pipeline's fit statistics
        then compare it with ``observed``.
    observed : ndarray, shape (n, m), optional
        The data ``fitted`` reconstructs (default: the problem's ``B``), e.g. a
        transformed bulk.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.methods._problem import MethodFit
    >>> fit = MethodFit.exact(np.array([[0.25], [0.75]]))
    >>> fit.n_iter.tolist(), fit.gene_weights is None
    ([0], True)
    """

    coefficients: np.ndarray
    converged: np.ndarray
    n_iter: np.ndarray
    n_reweight: np.ndarray
    gene_weights: np.ndarray | None = None
    extra: dict = field(default_factory=dict)
    fitted: np.ndarray | None = None
    observed: np.ndarray | None = None

    @classmethod
    def exact(cls, coefficients, **kwargs):
        """A fit by a direct method: every sample converged, no iterations.

        Parameters
        ----------
        coefficients : ndarray, shape (k, m)
            The solutions.
        **kwargs
            Other fields (``gene_weights``, ``extra``).

        Returns
        -------
        MethodFit

        Examples
        --------
        >>> import numpy as np
        >>> from fastdeconv.methods._problem import MethodFit
        >>> MethodFit.exact(np.ones((2, 3))).n_reweight.tolist()
        [0, 0, 0]
        """
        m = coefficients.shape[1]
        zeros = np.zeros(m, dtype=np.int64)
        return cls(coefficients, np.ones(m, dtype=bool), zeros, zeros.copy(), **kwargs)


@dataclass(frozen=True)
class MixtureProblem:
    """What a likelihood method is given: profiles, counts and the fit's options.

    Attributes
    ----------
    phi : ndarray, shape (n, k)
        Profiles of the states on the genes used: positive, every column
        summing to 1, C-contiguous float64.
    X : ndarray, shape (n, m)
        Bulk counts (or linear-scale values) on the same genes, finite and
        non-negative; no sample is zero on every gene.
    alpha : ndarray, shape (k,)
        Dirichlet prior parameters (at least 1).
    n_jobs : int, optional
        Worker threads.
    max_iter : int
        Cap on objective evaluations per sample.
    tol : float
        KKT tolerance.
    theta0 : ndarray, shape (k, m), optional
        Starting points (positive, columns summing to 1): a warm start.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.methods._problem import MixtureProblem
    >>> p = MixtureProblem(np.full((3, 2), 1 / 3), np.ones((3, 4)), np.ones(2))
    >>> p.n, p.k, p.m
    (3, 2, 4)
    """

    phi: np.ndarray
    X: np.ndarray
    alpha: np.ndarray
    n_jobs: int | None = None
    max_iter: int = 2000
    tol: float = 1e-8
    theta0: np.ndarray | None = None

    @property
    def n(self):
        """Number of genes."""
        return self.phi.shape[0]

    @property
    def k(self):
        """Number of states."""
        return self.phi.shape[1]

    @property
    def m(self):
        """Number of samples."""
        return self.X.shape[1]


def with_background(S, background):
    """The design matrix: the signature, plus a constant column when fitting a background.

    The column sits at the signature's mean level, so its coefficient times
    that level is the background.  The one rule of the pipeline and of the
    bootstrap (:mod:`fastdeconv.uncertainty`).

    Parameters
    ----------
    S : ndarray, shape (n, k)
        Signature.
    background : bool
        Append the column.

    Returns
    -------
    ndarray, shape (n, k) or (n, k + 1)
        The design matrix.
    float or None
        The column's level (None without a background).

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.methods._problem import with_background
    >>> A, level = with_background(np.array([[1.0, 3.0], [5.0, 7.0]]), True)
    >>> A[:, 2].tolist(), level
    ([4.0, 4.0], 4.0)
    """
    if not background:
        return S, None
    level = float(S.mean()) if S.mean() > 0 else 1.0
    return np.ascontiguousarray(np.column_stack([S, np.full(S.shape[0], level)])), level


def fit_statistics(S, B, X, block=1024, fitted=None):
    """Residual norm, RMSE, R^2 and Pearson r of every column of B against ``S X``.

    Computed over blocks of samples, so the temporaries stay cache-sized instead of
    several genes x samples arrays.  ``fitted`` replaces ``S X`` when the method
    gave its own reconstruction (:attr:`MethodFit.fitted`; genes it could not use
    are NaN there: they count as fitted exactly).

    Parameters
    ----------
    S : ndarray, shape (n, k)
    B : ndarray, shape (n, m)
    X : ndarray, shape (k, m)
    block : int, optional
        Samples per block.
    fitted : ndarray, shape (n, m), optional

    Returns
    -------
    tuple of four ndarray, shape (m,)
        Residual norm, RMSE, R^2, Pearson r.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.methods._problem import fit_statistics
    >>> S = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> norm, rmse, r2, r = fit_statistics(S, S @ [[1.0], [2.0]], np.array([[1.0], [2.0]]))
    >>> norm.tolist(), r2.tolist(), r.round(12).tolist()
    ([0.0], [1.0], [1.0])
    """
    if fitted is not None and np.isnan(fitted).any():
        keep = ~np.isnan(fitted)
        B, fitted = np.where(keep, B, 0.0), np.where(keep, fitted, 0.0)
    n, m = B.shape
    rss, tss, cross, rr = (np.empty(m) for _ in range(4))
    for j0 in range(0, m, block):
        j1 = min(j0 + block, m)
        Bj = B[:, j0:j1]
        R = S @ X[:, j0:j1] if fitted is None else np.array(fitted[:, j0:j1])
        resid = Bj - R
        rss[j0:j1] = np.einsum("ij,ij->j", resid, resid)
        Bc = Bj - Bj.mean(axis=0)
        R -= R.mean(axis=0)
        tss[j0:j1] = np.einsum("ij,ij->j", Bc, Bc)
        cross[j0:j1] = np.einsum("ij,ij->j", Bc, R)
        rr[j0:j1] = np.einsum("ij,ij->j", R, R)
    return statistics_from_sums(rss, tss, cross, rr, n)


def statistics_from_sums(rss, tss, cross, rr, n):
    """Residual norm, RMSE, R^2 and Pearson r from each sample's sums of squares.

    Parameters
    ----------
    rss : ndarray
        ``||b - f||^2`` (``f`` the fitted bulk).
    tss, cross, rr : ndarray
        ``||b - mean b||^2``, ``(b - mean b)'(f - mean f)``, ``||f - mean f||^2``.
    n : int
        Genes.

    Returns
    -------
    tuple of four ndarray
        As :func:`fit_statistics` (R^2 NaN where the bulk is constant).

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.methods._problem import statistics_from_sums
    >>> [v.tolist() for v in statistics_from_sums(np.array([4.0]), np.array([8.0]),
    ...                                             np.array([2.0]), np.array([2.0]), 4)]
    [[2.0], [1.0], [0.5], [0.5]]
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(tss > 0, 1.0 - rss / np.where(tss > 0, tss, 1.0), np.nan)
        pearson = cross / np.sqrt(tss * rr)
    return np.sqrt(rss), np.sqrt(rss / n), r2, pearson
