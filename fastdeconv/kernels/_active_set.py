"""The active-set engine shared by the NNLS and simplex-constrained kernels.

Both problems are solved on the Gram form ``min 1/2 x'Qx - c'x`` with
``Q = A'A`` (k x k) and ``c = A'b``, so the per-sample cost does not depend on
the number of genes.  The engine is Lawson & Hanson's active-set method in the
Gram form of Bro & de Jong (FNNLS):

* **warm start** -- all (independent) columns free, solve the unconstrained
  (or sum-constrained) system, drop the non-positive entries, repeat; this
  yields a feasible point that is optimal on its free set, which is where the
  classic algorithm would arrive after many single additions;
* **main loop** -- add the column with the largest positive dual (gradient),
  solve on the new free set; if some entries turn non-positive, step back to
  the boundary along the segment and drop the variables that hit zero;
* **Cholesky updates** -- the factor of ``Q`` on the free set is updated by one
  row on addition and by Givens rotations on removal (:mod:`._linalg`);
* **termination guards** -- a column that is numerically dependent on the free
  set, or whose entry would not become positive, is blocked until the free set
  changes (the anti-cycling rule), and an iteration cap reports status 1.

For the simplex constraint (``x >= 0``, ``sum x = 1``) the caller passes the
augmented ``Q + rho 11'`` and ``c + rho 1``, which leaves the objective unchanged
on the feasible set but makes the free-set systems positive definite whenever
the equality-constrained problem is well posed; the free-set system is solved
with the sum constraint through its Lagrange multiplier ``mu``.

References
----------
C. L. Lawson and R. J. Hanson, *Solving Least Squares Problems*, Prentice-Hall,
1974, chapter 23.
R. Bro and S. de Jong, "A fast non-negativity-constrained least squares
algorithm", *J. Chemometrics* 11 (1997) 393-401. doi:10.1002/(SICI)1099-128X(199709/10)11:5<393::AID-CEM483>3.0.CO;2-L
"""

from __future__ import annotations

import numpy as np

from fastdeconv._jit import jit, jit_helper
from fastdeconv.kernels._linalg import chol_add, chol_remove, chol_solve

CONVERGED = 0
MAX_ITER = 1
NOT_FINITE = 2


@jit_helper
def new_workspace(k):
    """Allocate the scratch arrays of the engine for ``k`` variables.

    Parameters
    ----------
    k : int
        Number of variables.

    Returns
    -------
    tuple of ndarray
        ``(L, P, pos, blocked, z, u, v)``.
    """
    L = np.zeros((k, k))
    P = np.zeros(k, dtype=np.int64)
    pos = np.full(k, -1, dtype=np.int64)
    blocked = np.zeros(k, dtype=np.bool_)
    z = np.zeros(k)
    u = np.zeros(k)
    v = np.zeros(k)
    return L, P, pos, blocked, z, u, v


@jit_helper
def initial_factor(Q):
    """Cholesky factor of ``Q`` on a maximal set of independent columns.

    The warm start of every sample begins from this factor, which depends on
    ``Q`` only: computing it once per batch and copying it per sample saves
    the ``O(k^3)`` factorisation in the per-sample loop.

    Parameters
    ----------
    Q : ndarray, shape (k, k)
        Gram matrix.

    Returns
    -------
    tuple
        ``(L0, P0, p0)``: the factor, the columns in factor order, their number.
    """
    k = Q.shape[0]
    L0 = np.zeros((k, k))
    P0 = np.zeros(k, dtype=np.int64)
    p0 = np.int64(0)  # typed, not the literal 0: one specialisation of chol_add
    for j in range(k):
        if chol_add(L0, p0, Q, P0, j):
            p0 += 1
    return L0, P0, p0


@jit_helper
def _solve_free(L, p, P, c, simplex, z, u, v):
    """Optimum on the free set: ``z`` (length p, factor order) and multiplier ``mu``."""
    for r in range(p):
        u[r] = c[P[r]]
    chol_solve(L, p, u, z)
    if not simplex:
        return 0.0
    for r in range(p):
        v[r] = 1.0
    chol_solve(L, p, v, v)
    su = 0.0
    sv = 0.0
    for r in range(p):
        su += z[r]
        sv += v[r]
    mu = (su - 1.0) / sv
    for r in range(p):
        z[r] -= mu * v[r]
    return mu


@jit_helper(cache=True)  # shared by the batch kernels: a later process reuses it
def active_set(Q, c, x, simplex, max_iter, tol, init, ws):
    """Solve one sample's problem in place with the active-set method.

    Parameters
    ----------
    Q : ndarray, shape (k, k)
        Gram matrix (augmented by ``rho 11'`` for the simplex problem).
    c : ndarray, shape (k,)
        Linear term ``A'b`` (plus ``rho`` for the simplex problem).
    x : ndarray, shape (k,)
        Output: the solution.
    simplex : bool
        Impose ``sum(x) == 1`` (else plain non-negativity).
    max_iter : int
        Cap on the number of active-set changes.
    tol : float
        Relative tolerance on the dual: a variable is added only if its
        gradient exceeds ``tol`` times the magnitude of the terms it sums.
    init : tuple
        ``(L0, P0, p0)`` from :func:`initial_factor` of ``Q``.
    ws : tuple of ndarray
        Scratch space from :func:`new_workspace`.

    Returns
    -------
    n_iter : int
        Active-set changes made (warm-start passes included).
    status : int
        0 converged (KKT conditions hold to ``tol``), 1 iteration cap reached,
        2 non-finite numbers met.
    """
    L, P, pos, blocked, z, u, v = ws
    L0, P0, p0 = init
    k = c.shape[0]
    for j in range(k):
        pos[j] = -1
        blocked[j] = False
        x[j] = 0.0
        if not np.isfinite(c[j]):
            return 0, NOT_FINITE

    # Warm start: every independent column free, drop non-positives, repeat.
    p = p0
    for r in range(p0):
        P[r] = P0[r]
        for col in range(r + 1):
            L[r, col] = L0[r, col]
    n_iter = 0
    mu = 0.0
    while p > 0:
        mu = _solve_free(L, p, P, c, simplex, z, u, v)
        removed = False
        for r in range(p - 1, -1, -1):
            if not z[r] > 0.0:
                p = chol_remove(L, p, P, r)
                removed = True
        if not removed:
            break
        n_iter += 1
    for r in range(p):
        pos[P[r]] = r
        x[P[r]] = z[r]
    if simplex and p == 0:
        # Degenerate: start from the best vertex of the simplex.
        best = np.int64(-1)
        best_val = np.inf
        for j in range(k):
            val = 0.5 * Q[j, j] - c[j]
            if val < best_val and Q[j, j] > 0.0:
                best_val = val
                best = j
        if best < 0 or not chol_add(L, np.int64(0), Q, P, best):
            return n_iter, NOT_FINITE
        p = 1
        pos[best] = 0
        x[best] = 1.0
        mu = c[best] - Q[best, best]  # the free-set gradient c - Qx - mu vanishes

    status = CONVERGED
    while True:
        # Dual: gradient of the Lagrangian for every variable held at zero.
        enter = np.int64(-1)  # typed: a literal would compile chol_add once more
        best_g = 0.0
        for j in range(k):
            if pos[j] >= 0 or blocked[j]:
                continue
            g = c[j] - mu
            scale = abs(c[j]) + abs(mu)
            for r in range(p):
                t = Q[j, P[r]] * x[P[r]]
                g -= t
                scale += abs(t)
            if g > tol * scale and g > best_g:
                best_g = g
                enter = j
        if enter < 0:
            break
        if n_iter >= max_iter:
            status = MAX_ITER
            break
        n_iter += 1
        if not chol_add(L, p, Q, P, enter):
            blocked[enter] = True
            continue
        pos[enter] = p
        p += 1

        first = True
        while True:
            mu_new = _solve_free(L, p, P, c, simplex, z, u, v)
            if first and not z[pos[enter]] > 0.0:
                # Rounding: the entering variable would not move; undo and block it.
                p = chol_remove(L, p, P, pos[enter])
                pos[enter] = -1
                blocked[enter] = True
                break
            first = False
            alpha = 1.0
            amin = -1
            for r in range(p):
                if not z[r] > 0.0:
                    xr = x[P[r]]
                    a = xr / (xr - z[r])
                    if not a >= 0.0:
                        a = 0.0
                    if a < alpha:
                        alpha = a
                        amin = r
            if amin < 0:
                for r in range(p):
                    x[P[r]] = z[r]
                mu = mu_new
                for j in range(k):
                    blocked[j] = False
                break
            for r in range(p):
                col = P[r]
                x[col] += alpha * (z[r] - x[col])
            x[P[amin]] = 0.0
            for r in range(p - 1, -1, -1):
                col = P[r]
                if not x[col] > 0.0:
                    x[col] = 0.0
                    pos[col] = -1
                    p = chol_remove(L, p, P, r)
            for r in range(p):
                pos[P[r]] = r
            n_iter += 1
            if n_iter >= max_iter:
                status = MAX_ITER
                break
        if status == MAX_ITER:
            break

    if simplex:
        total = 0.0
        for j in range(k):
            total += x[j]
        if total > 0.0:
            for j in range(k):
                x[j] /= total
    return n_iter, status


@jit
def gram_batch(Q, rho, C, X, n_iter, status, simplex, max_iter, tol):
    """Solve the NNLS or simplex problem for every row of ``C`` (one sample per row), serially.

    One kernel for both problems, with ``simplex`` a run-time flag, so the
    engine compiles once (a constant ``True``/``False`` would make Numba
    compile :func:`active_set` once per constant, and the batch twice).

    Parameters
    ----------
    Q : ndarray, shape (ka, ka)
        Gram matrix shared by all samples; for the simplex problem augmented
        by :func:`fastdeconv.kernels.simplex.augment_gram` (``ka = k + 1``
        with a slack variable for ``sum(x) <= 1``, else ``ka = k``).
    rho : float
        The augmentation weight (0 for NNLS; unused there).
    C : ndarray, shape (m, k)
        ``(A'B)'``: one row per sample, C-contiguous.
    X : ndarray, shape (m, ka)
        Output solutions (with the slack in the last column when present).
    n_iter : ndarray of int64, shape (m,)
        Output active-set changes.
    status : ndarray of int8, shape (m,)
        Output status codes (0 converged, 1 cap reached, 2 non-finite).
    simplex : bool
        Impose ``x`` on the simplex (else ``x >= 0``).
    max_iter : int
        Cap on active-set changes per sample.
    tol : float
        Relative dual tolerance.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.kernels._active_set import gram_batch
    >>> A = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> C = np.ascontiguousarray((A.T @ np.array([[2.0, -1.0, 1.0]]).T).T)
    >>> X = np.empty((1, 2)); it = np.zeros(1, np.int64); st = np.zeros(1, np.int8)
    >>> gram_batch(A.T @ A, 0.0, C, X, it, st, False, 60, 1e-11)
    >>> X.round(6).tolist(), st.tolist()
    ([[1.5, 0.0]], [0])
    """
    ka = Q.shape[0]
    k = C.shape[1]
    init = initial_factor(Q)
    ws = new_workspace(ka)
    c = np.empty(ka)
    for s in range(C.shape[0]):
        if simplex:
            for j in range(k):
                c[j] = C[s, j] + rho
            for j in range(k, ka):
                c[j] = rho
            cs = c
        else:
            cs = C[s]
        it, st = active_set(Q, cs, X[s], simplex, max_iter, tol, init, ws)
        n_iter[s] = it
        status[s] = st
