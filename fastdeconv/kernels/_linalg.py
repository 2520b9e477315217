"""Small dense linear algebra shared by the active-set kernels.

The active-set solvers keep a Cholesky factor ``L`` of the Gram matrix
restricted to the current free (passive) set ``P[:p]``, in the order in which
columns entered.  Adding a column appends a row to ``L`` (one triangular
solve, O(p^2)); removing one deletes its row and restores the triangle with
Givens rotations (O(p^2)).  A column that is (numerically) a linear
combination of the free columns is refused instead of producing a singular
factor, which is how collinear, duplicated and all-zero columns and ``k > n``
problems are handled.

All functions work in place on preallocated arrays so the per-sample loop
allocates nothing.
"""

from __future__ import annotations

import math

from fastdeconv._jit import jit_helper

# A column whose squared distance to the span of the free columns is below this
# fraction of its squared norm is treated as linearly dependent (~450 ulps).
DEPENDENCE_RTOL = 1e-13


@jit_helper
def chol_add(L, p, Q, P, j):
    """Append column ``j`` to the Cholesky factor of ``Q[P[:p]][:, P[:p]]``.

    Parameters
    ----------
    L : ndarray, shape (k, k)
        Lower-triangular factor; rows/columns ``:p`` are valid on entry.
    p : int
        Current size of the free set.
    Q : ndarray, shape (k, k)
        Symmetric positive semi-definite Gram matrix.
    P : ndarray of int64, shape (k,)
        Free-set indices in factor order; ``P[p]`` is set on success.
    j : int
        Column to add.

    Returns
    -------
    bool
        True if the column was added (the factor is now ``p + 1`` wide), False
        if it is numerically dependent on the free columns (nothing changes).
    """
    diag = Q[j, j]
    if not diag > 0.0:
        return False
    s = 0.0
    for r in range(p):
        acc = Q[P[r], j]
        for c in range(r):
            acc -= L[r, c] * L[p, c]
        v = acc / L[r, r]
        L[p, r] = v
        s += v * v
    d2 = diag - s
    if d2 <= DEPENDENCE_RTOL * diag:
        return False
    L[p, p] = math.sqrt(d2)
    P[p] = j
    return True


@jit_helper
def chol_remove(L, p, P, q):
    """Remove position ``q`` from a free set of size ``p`` and its factor.

    Parameters
    ----------
    L : ndarray, shape (k, k)
        Lower-triangular factor of the free set, updated in place.
    p : int
        Current size of the free set.
    P : ndarray of int64
        Free-set indices in factor order, updated in place.
    q : int
        Position (not column index) to remove, ``0 <= q < p``.

    Returns
    -------
    int
        The new size, ``p - 1``.
    """
    for i in range(q, p - 1):
        P[i] = P[i + 1]
        for c in range(i + 2):
            L[i, c] = L[i + 1, c]
    # Rows q..p-2 are now lower Hessenberg; rotate columns (i, i+1) to restore.
    for i in range(q, p - 1):
        a = L[i, i]
        b = L[i, i + 1]
        r = math.hypot(a, b)
        if r == 0.0:
            continue
        cs = a / r
        sn = b / r
        for row in range(i, p - 1):
            x = L[row, i]
            y = L[row, i + 1]
            L[row, i] = cs * x + sn * y
            L[row, i + 1] = -sn * x + cs * y
        L[i, i + 1] = 0.0
    return p - 1


@jit_helper
def chol_solve(L, p, rhs, out):
    """Solve ``L L^T out = rhs`` for the leading ``p`` entries.

    Parameters
    ----------
    L : ndarray, shape (k, k)
        Lower-triangular factor (leading ``p x p`` block used).
    p : int
        System size.
    rhs : ndarray
        Right-hand side (first ``p`` entries used).
    out : ndarray
        Solution, first ``p`` entries written (may alias ``rhs``).
    """
    for r in range(p):
        acc = rhs[r]
        for c in range(r):
            acc -= L[r, c] * out[c]
        out[r] = acc / L[r, r]
    for r in range(p - 1, -1, -1):
        acc = out[r]
        for c in range(r + 1, p):
            acc -= L[c, r] * out[c]
        out[r] = acc / L[r, r]
