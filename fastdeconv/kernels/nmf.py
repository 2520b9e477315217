"""HALS kernel for non-negative matrix factorisation ``G ~ W H`` (squared loss).

Hierarchical alternating least squares updates one column of a factor at a
time, each update the exact minimiser over that column with the others fixed,
clipped at a tiny floor.  It needs only the Gram form of the problem: for the
factor ``X`` (rows x k) of ``min ||G_X - X F||^2`` with the other factor ``F``
fixed, the Gram matrix ``F F'`` (k x k) and the projections ``G_X F'``
(rows x k).  With ``W`` (genes x k): ``X = W``, ``gram = H H'``,
``proj = G H'``; with ``H'`` (samples x k): ``X = H'``, ``gram = W' W``,
``proj = G' W``.  The caller computes the products with BLAS; one sweep here
costs ``O(rows k^2)``.

The rows of ``X`` are independent given the Gram form (an update of column
``j`` of row ``i`` reads only row ``i``), so the kernel walks the rows in the
outer loop and the columns in order inside; the numbers are those of the
usual column-by-column sweep.

References
----------
Cichocki, A., Phan, A.-H. (2009). Fast local algorithms for large scale
nonnegative matrix and tensor factorizations. IEICE Transactions on
Fundamentals E92-A, 708-721.  Gillis, N., Glineur, F. (2012). Accelerated
multiplicative updates and hierarchical ALS algorithms for nonnegative matrix
factorization. Neural Computation 24, 1085-1105.
"""

from __future__ import annotations

import numpy as np

from fastdeconv._jit import jit

__all__ = ["hals_update"]


@jit
def hals_update(X, gram, proj, max_sweeps, delta, floor):
    """HALS sweeps over the columns of ``X`` given the Gram form, in place.

    Each sweep updates, for every row ``i`` and column ``j`` in order,
    ``X[i, j] = max(floor, X[i, j] + (proj[i, j] - X[i] @ gram[:, j]) / gram[j, j])``
    (a column with ``gram[j, j] <= 0`` is left alone).  Sweeps repeat, as in
    Gillis and Glineur's accelerated HALS, while the squared change of a sweep
    exceeds ``delta**2`` times that of the first sweep, at most ``max_sweeps``
    times.

    Parameters
    ----------
    X : ndarray, shape (rows, k)
        The factor, float64, C-contiguous; updated in place.
    gram : ndarray, shape (k, k)
        Gram matrix of the other factor (symmetric, float64).
    proj : ndarray, shape (rows, k)
        Projections of the data on the other factor (float64, C-contiguous).
    max_sweeps : int
        Most sweeps (>= 1).
    delta : float
        Stop once a sweep changes ``X`` by at most ``delta`` times the first
        sweep's change (Frobenius norms); 0 stops only at a sweep that changes nothing.
    floor : float
        Smallest value kept (for example 1e-16), so that no column dies by rounding.

    Returns
    -------
    n_sweeps : int
        Sweeps done.
    change : float
        Squared Frobenius norm of the last sweep's change.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.kernels.nmf import hals_update
    >>> H = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])
    >>> W = np.array([[2.0, 0.0], [1.0, 3.0]])
    >>> X = np.ones((2, 2))
    >>> n_sweeps, change = hals_update(X, H @ H.T, (W @ H) @ H.T, 200, 0.0, 1e-16)
    >>> X.round(8).tolist(), n_sweeps < 200
    ([[2.0, 0.0], [1.0, 3.0]], True)
    """
    rows, k = X.shape
    first = 0.0
    change = 0.0
    n_sweeps = 0
    for s in range(max_sweeps):
        change = 0.0
        for i in range(rows):
            for j in range(k):
                g = gram[j, j]
                if g <= 0.0:
                    continue
                acc = proj[i, j]
                for c in range(k):
                    acc -= X[i, c] * gram[c, j]
                new = X[i, j] + acc / g
                if new < floor:
                    new = floor
                d = new - X[i, j]
                change += d * d
                X[i, j] = new
        n_sweeps += 1
        if s == 0:
            first = change
            if first <= 0.0:
                break
        elif change <= delta * delta * first:
            break
    return n_sweeps, change
