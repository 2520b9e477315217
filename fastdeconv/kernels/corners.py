"""Simplex-corner kernels for LinSeed: successive projection, the refinement objective and
its minimiser (BFGS, :func:`minimise_corners`).

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

from fastdeconv._jit import jit, jit_helper

__all__ = ["successive_projection", "simplex_objective", "minimise_corners"]


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
    return _objective(corners, Ya, hinge_weight, np.zeros(0), np.zeros((0, 0)), 0.0)


@jit_helper
def _objective(corners, Ya, hinge_weight, sample_base, sample_dirs, sample_weight):
    """:func:`simplex_objective`, plus (``sample_weight > 0``) the dual simplex's hinge.

    The dual term is ``sample_weight * sum(min(m * H, 0)^2)`` with the corners'
    sample-space profiles ``H = sample_base + corners' @ sample_dirs`` (k x m;
    ``sample_base`` (m,), ``sample_dirs`` ((k-1), m)): the samples outside the
    sample simplex (negative proportions).
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
    value = logdet + hinge_weight * penalty
    if sample_weight > 0.0:
        m = sample_base.shape[0]
        for c in range(k):
            for t in range(m):
                h = sample_base[t]
                for r in range(k - 1):
                    h += corners[r * k + c] * sample_dirs[r, t]
                h *= m
                if h < 0.0:
                    value += sample_weight * h * h
                    g = 2.0 * sample_weight * h * m
                    for r in range(k - 1):
                        grad[r * k + c] += g * sample_dirs[r, t]
    return value, grad, n_outside


@jit
def minimise_corners(start, Ya, hinge_weight, sample_base, sample_dirs, sample_weight,
                     max_iter, gtol, ftol):
    """Minimise the corner objective from ``start`` by BFGS with a backtracking line search.

    The objective is :func:`simplex_objective` (with ``sample_weight > 0`` also
    the dual simplex's hinge on the corners' sample-space profiles; see
    ``_objective``).  The dimension is ``(k-1) k`` (at most a few hundred), so
    the inverse Hessian is kept dense.  A step that leaves the domain (a
    degenerate simplex, objective ``inf``) or does not decrease the objective
    enough (Armijo, ``1e-4``) is halved; a full step whose end is still steep
    (Wolfe's curvature condition, ``0.9``) is doubled while that pays.  A
    direction nearly orthogonal to the gradient, a failed line search or a
    stalled quasi-Newton step restart the inverse Hessian from the identity.  Stops when the largest gradient
    entry is at most ``gtol``, when an iteration lowers the objective by at
    most ``ftol`` relative to it (the criteria of scipy's L-BFGS-B), or after
    ``max_iter`` iterations.

    Parameters
    ----------
    start : ndarray, shape ((k - 1) * k,)
        The starting corners, flattened as for :func:`simplex_objective`.
    Ya : ndarray, shape (n, k)
        The points with a trailing 1.
    hinge_weight : float
        Weight of the hinge on points outside the simplex.
    sample_base : ndarray, shape (m,)
        With ``sample_dirs`` (shape ((k-1), m)) and ``sample_weight``: the dual
        term (pass ``np.zeros(0)``, ``np.zeros((0, 0))`` and 0.0 for none).
    sample_dirs : ndarray
    sample_weight : float
    max_iter : int
        Most iterations.
    gtol, ftol : float
        Gradient and relative-decrease tolerances.

    Returns
    -------
    corners : ndarray, shape ((k - 1) * k,)
    value : float
    n_iter : int
    converged : bool

    References
    ----------
    Nocedal, J., Wright, S. J. (2006). Numerical Optimization, 2nd ed., Springer:
    chapter 6 (BFGS, the scaling 6.20 of the first inverse Hessian) and 3.1 (Armijo).

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.kernels.corners import minimise_corners
    >>> rng = np.random.default_rng(0)
    >>> A = rng.dirichlet(np.ones(3), 400)                   # points inside a triangle
    >>> C = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])     # its corners, one per column
    >>> Ya = np.column_stack([A @ C.T, np.ones(400)])
    >>> start = (0.5 * C + 0.5 / 3).ravel()                  # a smaller triangle inside
    >>> x, value, n_iter, ok = minimise_corners(start, Ya, 1e4, np.zeros(0),
    ...                                         np.zeros((0, 0)), 0.0, 1000, 1e-5, 2.2e-9)
    >>> bool(np.abs(x.reshape(2, 3) - C).max() < 0.05), ok
    (True, True)
    """
    d = start.shape[0]
    x = start.copy()
    f, g, _ = _objective(x, Ya, hinge_weight, sample_base, sample_dirs, sample_weight)
    if not np.isfinite(f):
        return x, f, 0, False
    Hinv = np.eye(d)
    first = True
    converged = False
    it = 0
    for it in range(1, max_iter + 1):
        if np.abs(g).max() <= gtol:
            converged = True
            it -= 1
            break
        p = -(Hinv @ g)
        slope = 0.0
        for i in range(d):
            slope += g[i] * p[i]
        # not a descent direction, or almost orthogonal to the gradient (a spoilt inverse
        # Hessian): restart from the gradient
        if slope >= -1e-8 * np.sqrt((g @ g) * (p @ p)):
            Hinv = np.eye(d)
            p = -g.copy()
            slope = -(g @ g)
            first = True
        fresh = first
        step = 1.0
        if first:
            step = min(1.0, 1.0 / np.abs(g).max())
        accepted = False
        halved = False
        x_new = x
        f_new = f
        g_new = g
        for _ in range(80):
            x_new = x + step * p
            f_new, g_new, _ = _objective(x_new, Ya, hinge_weight, sample_base, sample_dirs,
                                         sample_weight)
            if np.isfinite(f_new) and f_new <= f + 1e-4 * step * slope:
                accepted = True
                break
            step *= 0.5
            halved = True
        if not accepted:
            if not fresh:  # the quasi-Newton direction failed: try the gradient once more
                Hinv = np.eye(d)
                first = True
                continue
            converged = np.abs(g).max() <= 1e3 * gtol
            break
        # the first step tried was accepted but the slope is still steep (the curvature
        # condition of Wolfe fails): extrapolate, doubling the step while it pays
        for _ in range(40):
            if halved or g_new @ p >= 0.9 * slope:
                break
            trial = 2.0 * step
            x_t = x + trial * p
            f_t, g_t, _ = _objective(x_t, Ya, hinge_weight, sample_base, sample_dirs,
                                     sample_weight)
            if not (np.isfinite(f_t) and f_t <= f + 1e-4 * trial * slope and f_t < f_new):
                break
            step, x_new, f_new, g_new = trial, x_t, f_t, g_t
        s = x_new - x
        y = g_new - g
        sy = s @ y
        decrease = f - f_new
        x = x_new
        g = g_new
        f_old = f
        f = f_new
        if sy > 1e-12 * np.sqrt((s @ s) * (y @ y)):
            if first:  # scale the initial inverse Hessian (Nocedal & Wright 6.20)
                Hinv = np.eye(d) * (sy / (y @ y))
                first = False
            rho = 1.0 / sy
            Hy = Hinv @ y
            yHy = y @ Hy
            for i in range(d):
                for j in range(d):
                    Hinv[i, j] += (-rho * (s[i] * Hy[j] + Hy[i] * s[j])
                                   + (rho * rho * yHy + rho) * s[i] * s[j])
        if decrease <= ftol * max(abs(f_old), abs(f), 1.0):
            if np.abs(g).max() <= 1e3 * gtol or (fresh and not halved):
                converged = True
                break
            # a tiny decrease from a halved or quasi-Newton step with a large gradient
            # left: not converged; start again from the gradient
            Hinv = np.eye(d)
            first = True
    return x, f, it, converged

