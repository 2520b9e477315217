"""Per-group sufficient statistics of a count matrix: the marker kernels.

One pass over a genes x cells count matrix (dense, or the three arrays of a
CSR/CSC matrix) accumulates, for every gene and every group of cells:

* the sum and the sum of squares of the raw counts,
* the sum of the library-size-normalised values ``x * scale[c]`` (e.g. CPM),
* the sum and the sum of squares of ``log1p`` of the normalised values,
* the number of cells with a non-zero count.

Everything the marker tests need follows from these sums, so no statistic ever
loops over genes in Python.  The kernels (:func:`group_sums_dense`,
:func:`group_sums_sparse`) are serial and ``nogil``; the threads that share
the rows live in :meth:`fastdeconv.inputs.counts.Counts.group_sums`, and the
tests on the sums (NumPy/SciPy, not kernels) in :mod:`fastdeconv.marker_stats`.
"""

from __future__ import annotations

import math

import numpy as np

from fastdeconv._deprecated import moved_names
from fastdeconv._jit import jit, jit_helper

__all__ = ["SUM_NAMES", "group_sums_dense", "group_sums_sparse"]

#: names of the arrays returned by the sum kernels, in order
SUM_NAMES = ("count_sum", "count_sq", "norm_sum", "log_sum", "log_sq", "nnz")


@jit_helper
def _accumulate(acc, g, k, x, v):
    """Add one non-zero entry to the interleaved accumulator ``acc[g, k, :]``."""
    lv = math.log1p(v)
    a = acc[g, k]
    a[0] += x
    a[1] += x * x
    a[2] += v
    a[3] += lv
    a[4] += lv * lv
    a[5] += 1.0


@jit
def group_sums_dense(X, rows_are_genes, groups, n_groups, scale, row_start, row_stop):
    """Per-group sums of a dense count matrix in one pass over rows ``[row_start, row_stop)``.

    Parameters
    ----------
    X : ndarray, shape (n_rows, n_cols), C-contiguous
        Counts.  Genes x cells when ``rows_are_genes`` is true, cells x genes
        otherwise (pass ``X.T`` of an F-ordered genes x cells matrix).
    rows_are_genes : bool
        Orientation of ``X``.
    groups : ndarray of int64, shape (n_cells,)
        Group index of each cell, in ``[0, n_groups)``.
    n_groups : int
        Number of groups.
    scale : ndarray of float64, shape (n_cells,)
        Per-cell normalisation factor (``1e6 / library_size`` for CPM).
    row_start, row_stop : int
        The rows of ``X`` to visit (a chunk, so that threads can share the work).

    Returns
    -------
    acc : ndarray, shape (n_genes, n_groups, 6)
        Sums over the visited cells of each group of ``x``, ``x**2``,
        ``x*scale``, ``log1p(x*scale)``, ``log1p(x*scale)**2`` and ``x != 0``
        (in the order of :data:`SUM_NAMES`).  Interleaved so that one entry
        updates one cache line.
    n_visited : int
        Number of non-zero entries accumulated (a diagnostic).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[1.0, 0.0, 3.0], [0.0, 2.0, 2.0]])
    >>> acc, n = group_sums_dense(X, True, np.array([0, 1, 1]), 2, np.ones(3), 0, 2)
    >>> acc[:, :, 0], n
    (array([[1., 3.],
           [0., 4.]]), 4)
    """
    n_genes = X.shape[0] if rows_are_genes else X.shape[1]
    acc = np.zeros((n_genes, n_groups, 6))
    n_visited = 0
    for r in range(row_start, row_stop):
        for j in range(X.shape[1]):
            x = float(X[r, j])
            if x != 0.0:
                if rows_are_genes:
                    g, c = r, j
                else:
                    g, c = j, r
                _accumulate(acc, g, groups[c], x, x * scale[c])
                n_visited += 1
    return acc, n_visited


@jit
def group_sums_sparse(
    indptr, indices, data, n_genes, rows_are_genes, groups, n_groups, scale, row_start, row_stop
):
    """Per-group sums of a compressed sparse (CSR or CSC) matrix over rows ``[row_start, row_stop)``.

    Parameters
    ----------
    indptr, indices, data : ndarray
        The compressed arrays.  For a genes x cells CSR matrix (or a cells x
        genes CSC one) the compressed rows are genes: ``rows_are_genes=True``.
        For a genes x cells CSC matrix (or cells x genes CSR, the AnnData
        layout) the compressed rows are cells: ``rows_are_genes=False``.
        Duplicate entries are summed, as scipy does.
    n_genes : int
        Number of genes.
    rows_are_genes : bool
        Whether the compressed axis is the gene axis.
    groups : ndarray of int64, shape (n_cells,)
        Group index of each cell.
    n_groups : int
        Number of groups.
    scale : ndarray of float64, shape (n_cells,)
        Per-cell normalisation factor.
    row_start, row_stop : int
        The compressed rows to visit.

    Returns
    -------
    acc : ndarray, shape (n_genes, n_groups, 6)
        As in :func:`group_sums_dense`.
    n_visited : int
        Number of stored non-zero entries accumulated.

    Examples
    --------
    >>> import numpy as np
    >>> import scipy.sparse as sp
    >>> X = sp.csr_array(np.array([[1.0, 0.0, 3.0], [0.0, 2.0, 2.0]]))
    >>> acc, n = group_sums_sparse(X.indptr, X.indices, X.data, 2, True,
    ...                            np.array([0, 1, 1]), 2, np.ones(3), 0, 2)
    >>> acc[:, :, 5]
    array([[1., 1.],
           [0., 2.]])
    """
    acc = np.zeros((n_genes, n_groups, 6))
    n_visited = 0
    for r in range(row_start, row_stop):
        for p in range(indptr[r], indptr[r + 1]):
            x = float(data[p])
            if x != 0.0:
                if rows_are_genes:
                    g, c = r, indices[p]
                else:
                    g, c = indices[p], r
                _accumulate(acc, g, groups[c], x, x * scale[c])
                n_visited += 1
    return acc, n_visited


#: the statistics on the sums that lived here until they moved to fastdeconv.marker_stats
__getattr__ = moved_names(
    __name__,
    {name: "fastdeconv.marker_stats" for name in
     ("welch_t", "poisson_lrt", "nb_dispersion", "nb_lrt", "bh_fdr")},
)
