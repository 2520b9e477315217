"""Simplex-corner kernels for LinSeed: successive projection, and the refinement objective.

The genes, projected onto the (k-1)-dimensional affine subspace of the
row-normalised data, are points ``y_i``; written with a trailing 1 they are the
rows of ``Ya`` (n, k).  A simplex with corners ``c_1..c_k`` is the k x k matrix
``E`` whose columns are ``(c_j, 1)``; a point's barycentric coordinates are
``a_i = E^{-1} (y_i, 1)`` (they sum to 1 and are all >= 0 inside the simplex).

References
----------
Araujo, M. C. U. et al. (2001). The successive projections algorithm for variable
selection in spectroscopic multicomponent analysis. Chemometrics and Intelligent
Laboratory Systems 57, 65-73.  Gillis, N., Vavasis, S. A. (2014). Fast and robust
recursive algorithms for separable nonnegative matrix factorization. IEEE TPAMI 36,
698-714.  Bioucas-Dias, J. M. (2009). A variable splitting augmented Lagrangian
approach to linear spectral unmixing (SISAL). WHISPERS 2009.
"""

from __future__ import annotations

import numpy as np

from fastdeconv._jit import jit

__all__ = ["successive_projection", "simplex_objective"]


@jit
def successive_projection(P, k):
    """Successive projection algorithm (SPA): ``k`` extreme rows of ``P``.

    Repeatedly picks the row of largest norm and projects every row onto the
    orthogonal complement of the picked one.  Deterministic (ties go to the
    lowest index).

    Parameters
    ----------
    P : ndarray, shape (n, d)
        Points as rows (for a simplex: the projected genes with a trailing 1).
    k : int
        Number of rows to pick, ``k <= min(n, d)``.

    Returns
    -------
    index : ndarray of int64, shape (k,)
        The picked rows, in order of picking.
    residual : ndarray, shape (k,)
        The norm of each picked row at the time it was picked (a diagnostic: a
        residual near 0 means the data hold fewer than ``k`` extreme directions).

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.kernels.corners import successive_projection
    >>> P = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0], [0.5, 0.5, 1.0], [0.0, 0.0, 1.0]])
    >>> successive_projection(P, 3)[0]
    array([0, 1, 3])
    """
    n, d = P.shape
    Rm = P.copy()
    index = np.zeros(k, dtype=np.int64)
    residual = np.zeros(k)
    norms = np.zeros(n)
    for t in range(k):
        best = -1.0
        jbest = 0
        for i in range(n):
            s = 0.0
            for c in range(d):
                s += Rm[i, c] * Rm[i, c]
            norms[i] = s
            if s > best:
                best = s
                jbest = i
        index[t] = jbest
        residual[t] = np.sqrt(best)
        if best <= 0.0:
            continue
        u = Rm[jbest].copy() / np.sqrt(best)
        for i in range(n):
            dot = 0.0
            for c in range(d):
                dot += Rm[i, c] * u[c]
            for c in range(d):
                Rm[i, c] -= dot * u[c]
    return index, residual


@jit
def simplex_objective(corners, Ya, hinge_weight):
    """Hinge-penalised volume of a simplex, and its gradient.

    ``f(E) = log|det E| + hinge_weight * sum_i sum_j min(a_ij, 0)^2``: the
    log-volume of the simplex plus a squared hinge on the negative barycentric
    coordinates of the points outside it (their reconstruction error by the
    simplex, in barycentric units).  A large ``hinge_weight`` gives the
    minimum-volume simplex enclosing the data; a small one lets outlying points
    stay outside.

    Parameters
    ----------
    corners : ndarray, shape ((k - 1) * k,)
        The corners' coordinates, the (k-1) x k matrix (one column per corner)
        flattened in C order.
    Ya : ndarray, shape (n, k)
        The points with a trailing 1.
    hinge_weight : float
        Weight of the hinge term.

    Returns
    -------
    value : float
        ``f(E)`` (``inf`` for a degenerate simplex).
    gradient : ndarray, shape ((k - 1) * k,)
        Its gradient with respect to ``corners``.
    n_outside : int
        Number of points with a negative barycentric coordinate.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.kernels.corners import simplex_objective
    >>> Ya = np.array([[0.2, 0.2, 1.0], [0.5, 0.1, 1.0]])
    >>> corners = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]).ravel()
    >>> value, grad, n_out = simplex_objective(corners, Ya, 100.0)
    >>> round(value, 6), n_out
    (0.0, 0)
    """
    k = Ya.shape[1]
    E = np.ones((k, k))
    for r in range(k - 1):
        for c in range(k):
            E[r, c] = corners[r * k + c]
    sign, logdet = np.linalg.slogdet(E)
    grad = np.zeros((k - 1) * k)
    if sign == 0.0 or not np.isfinite(logdet):
        return np.inf, grad, 0
    Q = np.linalg.inv(E)
    A = Ya @ Q.T
    n = A.shape[0]
    M = np.zeros((k, k))
    penalty = 0.0
    n_outside = 0
    for i in range(n):
        outside = False
        for j in range(k):
            a = A[i, j]
            if a < 0.0:
                outside = True
                penalty += a * a
                g = 2.0 * hinge_weight * a
                for c in range(k):
                    M[j, c] += g * A[i, c]
        if outside:
            n_outside += 1
    G = Q.T - Q.T @ M
    for r in range(k - 1):
        for c in range(k):
            grad[r * k + c] = G[r, c]
    return logdet + hinge_weight * penalty, grad, n_outside
