"""Exact simplex-constrained least squares, and Euclidean projection onto the simplex.

``min ||A x - b||^2`` subject to ``x >= 0`` and ``sum(x) = 1`` is solved by the
active-set engine of :mod:`fastdeconv.kernels._active_set` on the Gram form.
On the feasible set ``(1'x)^2 = 1``, so the objective is unchanged when ``Q`` is
replaced by ``Q + rho 11'`` and ``c`` by ``c + rho 1``; this augmentation makes
the free-set KKT systems positive definite whenever the equality-constrained
problem has a unique solution (even if ``A'A`` itself is singular), and it is
what lets the same Cholesky machinery serve both problems.

The ``sum(x) <= 1`` variant appends a slack variable with a zero column: its
value is the unexplained remainder ``1 - sum(x)``.
"""

from __future__ import annotations

import numpy as np

from fastdeconv._jit import jit, jit_helper
from fastdeconv.kernels._active_set import active_set, initial_factor, new_workspace
from fastdeconv.kernels.nnls import default_max_iter


@jit_helper
def augment_gram(AtA, slack):
    """Return ``(Q + rho 11', rho)`` for the simplex problem.

    Parameters
    ----------
    AtA : ndarray, shape (k, k)
        Gram matrix ``A'A``.
    slack : bool
        Append a zero row and column (a slack variable for ``sum(x) <= 1``).

    Returns
    -------
    Qa : ndarray, shape (k, k) or (k + 1, k + 1)
        Augmented Gram matrix.
    rho : float
        The augmentation weight, the mean diagonal of ``A'A`` (1 if that is 0).
    """
    k = AtA.shape[0]
    ka = k + 1 if slack else k
    rho = 0.0
    for i in range(k):
        rho += AtA[i, i]
    rho /= k
    if not rho > 0.0:
        rho = 1.0
    Qa = np.full((ka, ka), rho)
    for i in range(k):
        for j in range(k):
            Qa[i, j] += AtA[i, j]
    return Qa, rho


@jit
def simplex_gram_kernel(AtA, Atb, max_iter=-1, tol=1e-11):
    """Solve one simplex-constrained least-squares problem; callable from ``@njit`` code.

    Parameters
    ----------
    AtA : ndarray, shape (k, k)
        ``A'A`` (symmetric positive semi-definite), float64.
    Atb : ndarray, shape (k,)
        ``A'b``, float64.
    max_iter : int, optional
        Cap on active-set changes; ``-1`` (default) means ``5 k + 50``.
    tol : float, optional
        Relative tolerance on the dual (KKT) conditions.

    Returns
    -------
    x : ndarray, shape (k,)
        The minimiser of ``||A x - b||^2`` over ``x >= 0, sum(x) = 1``.
    n_iter : int
        Active-set changes made.
    status : int
        0 converged, 1 iteration cap reached, 2 non-finite input.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.kernels import simplex_gram_kernel
    >>> A = np.eye(3)
    >>> b = np.array([0.7, 0.5, -0.2])
    >>> x, n_iter, status = simplex_gram_kernel(A.T @ A, A.T @ b)
    >>> np.round(x, 6).tolist(), status
    ([0.6, 0.4, 0.0], 0)
    """
    k = Atb.shape[0]
    if max_iter < 0:
        max_iter = default_max_iter(k)
    Qa, rho = augment_gram(AtA, np.bool_(False))
    c = Atb + rho
    x = np.zeros(k)
    n_iter, status = active_set(
        Qa, c, x, np.bool_(True), max_iter, tol, initial_factor(Qa), new_workspace(k)
    )
    return x, n_iter, status


@jit
def project_simplex_kernel(v, total=1.0):
    """Euclidean projection of ``v`` onto ``{x >= 0, sum(x) = total}``.

    The sort-based algorithm: find the threshold ``theta`` such that
    ``sum(max(v - theta, 0)) = total``.

    Parameters
    ----------
    v : ndarray, shape (k,)
        Point to project.
    total : float, optional
        Sum of the simplex (default 1).

    Returns
    -------
    ndarray, shape (k,)
        The projection.

    References
    ----------
    L. Condat, "Fast projection onto the simplex and the l1 ball",
    *Math. Program.* 158 (2016) 575-585. doi:10.1007/s10107-015-0946-7

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.kernels import project_simplex_kernel
    >>> project_simplex_kernel(np.array([0.5, 0.8, -1.0])).round(6).tolist()
    [0.35, 0.65, 0.0]
    """
    k = v.shape[0]
    s = np.sort(v)[::-1]
    cumsum = 0.0
    theta = 0.0
    for i in range(k):
        cumsum += s[i]
        t = (cumsum - total) / (i + 1)
        if i == k - 1 or s[i + 1] <= t:
            theta = t
            break
    out = np.empty(k)
    for i in range(k):
        out[i] = max(v[i] - theta, 0.0)
    return out
