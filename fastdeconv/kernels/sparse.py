"""Projections of a sparse bulk straight from its compressed rows: no dense copy.

A bulk read block by block (spots x genes, as AnnData stores it) is projected onto
the signature as ``A' b`` for every sample by one pass over the stored non-zeros;
genes outside the fit are skipped by a map, duplicated names land on the same row.
The sums the fit statistics need (``sum b``, ``sum b^2`` over the genes used, the
sample's total over every common gene) are gathered in the same pass, so the
residual norm, R^2 and Pearson r follow from the Gram form without a second pass.
The values stay in their stored type (float32 counts are read as float32) and are
accumulated in float64.
"""

from __future__ import annotations

import numpy as np

from fastdeconv._jit import jit

__all__ = ["project_csr_rows", "project_dense_rows", "N_SUMS"]

#: Sums gathered per sample: over the genes used ``sum b`` and ``sum b^2``, over the
#: common genes ``sum b``, and the number of stored values that are negative or not
#: finite.
N_SUMS = 4


@jit
def project_csr_rows(indptr, indices, data, row_map, common, A, r0, r1, out, sums):
    """Project rows ``r0:r1`` of a CSR matrix (samples x genes) onto ``A``.

    Parameters
    ----------
    indptr, indices, data : ndarray
        The CSR arrays (any integer type for the indices, float32 or float64 values).
    row_map : ndarray of int64, shape (n_genes,)
        Row of ``A`` for each gene of the matrix; -1 for a gene not in the fit.
    common : ndarray of bool, shape (n_genes,)
        Genes that count toward the sample's total.
    A : ndarray, shape (n_used, q)
        The matrix to project on (C-contiguous, float64).
    r0, r1 : int
        Rows (samples) to project.
    out : ndarray, shape (n_rows, q)
        ``out[i] = sum_g A[row_map[g]] * x[i, g]`` for ``i`` in ``r0:r1`` (rows
        ``r0:r1`` are overwritten).
    sums : ndarray, shape (n_rows, N_SUMS)
        Per row: ``sum x`` and ``sum x^2`` over the genes in the fit, ``sum x`` over
        the common genes, the count of negative or non-finite values.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> from fastdeconv.kernels.sparse import project_csr_rows, N_SUMS
    >>> X = sp.csr_array(np.array([[1.0, 0.0, 2.0], [0.0, 3.0, 0.0]]))
    >>> A = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> out, sums = np.zeros((2, 2)), np.zeros((2, N_SUMS))
    >>> project_csr_rows(X.indptr, X.indices, X.data, np.arange(3), np.ones(3, bool), A,
    ...                  0, 2, out, sums)
    >>> out.tolist(), sums[:, :3].tolist()
    ([[3.0, 2.0], [0.0, 3.0]], [[3.0, 5.0, 3.0], [3.0, 9.0, 3.0]])
    """
    q = A.shape[1]
    acc = np.empty(q)
    for i in range(r0, r1):
        # scalars and a local accumulator (sums kept in an array run six times slower);
        # the genes in the fit are added two at a time (a quarter faster: half the
        # accumulator's loads and stores)
        acc[:] = 0.0
        s1 = 0.0
        s2 = 0.0
        st = 0.0
        bad = 0.0
        r_held = -1
        v_held = 0.0
        for p in range(indptr[i], indptr[i + 1]):
            v = np.float64(data[p])
            if v == 0.0:  # (stored zeros: the same sums, in the same order, as none)
                continue
            g = indices[p]
            if not (v >= 0.0 and v < np.inf):
                bad += 1.0
            if common[g]:
                st += v
            r = row_map[g]
            if r < 0:
                continue
            s1 += v
            s2 += v * v
            if r_held < 0:
                r_held = r
                v_held = v
            else:
                for c in range(q):
                    acc[c] += A[r_held, c] * v_held + A[r, c] * v
                r_held = -1
        if r_held >= 0:
            for c in range(q):
                acc[c] += A[r_held, c] * v_held
        out[i, :] = acc
        sums[i, 0] = s1
        sums[i, 1] = s2
        sums[i, 2] = st
        sums[i, 3] = bad


@jit
def project_dense_rows(X, row_map, common, A, r0, r1, out, sums):
    """The same as :func:`project_csr_rows` for a dense block (samples x genes).

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.kernels.sparse import project_dense_rows, N_SUMS
    >>> X = np.array([[1.0, 0.0, 2.0], [0.0, 3.0, 0.0]], dtype=np.float32)
    >>> A = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> out, sums = np.zeros((2, 2)), np.zeros((2, N_SUMS))
    >>> project_dense_rows(X, np.array([0, -1, 2]), np.ones(3, bool), A, 0, 2, out, sums)
    >>> out.tolist(), sums[:, :3].tolist()
    ([[3.0, 2.0], [0.0, 0.0]], [[3.0, 5.0, 3.0], [0.0, 0.0, 3.0]])
    """
    n = X.shape[1]
    indices = np.arange(n)
    indptr = np.array([0, n])
    for i in range(r0, r1):  # one row at a time through the CSR kernel
        project_csr_rows(indptr, indices, X[i], row_map, common, A, 0, 1,
                         out[i:i + 1], sums[i:i + 1])
