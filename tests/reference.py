"""Reference implementations (oracles) the solvers are tested against.

cvxpy with the Clarabel interior-point solver at tight tolerances is the exact
oracle; it is given the QR-reduced problem ``||R x - Q'b||`` (same minimiser,
better conditioned than the raw one).  cvxpy's default OSQP is not used: its
errors of 1e-6 to 1e-3 are far above what we test.
"""

from __future__ import annotations

import numpy as np

CLARABEL_TIGHT = {
    "tol_gap_abs": 1e-12,
    "tol_gap_rel": 1e-12,
    "tol_feas": 1e-12,
    "tol_ktratio": 1e-10,
    "max_iter": 500,
}
# Clarabel occasionally stalls short of the tightest tolerances; it is then
# re-run at these (still far tighter than its defaults of 1e-8).
CLARABEL_FALLBACK = {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10, "max_iter": 500}


def qr_reduce(A, b, w=None):
    """Return ``(R, Q'b, ||b||^2 - ||Q'b||^2)`` for the (weighted) problem."""
    if w is not None:
        s = np.sqrt(w)
        A = A * s[:, None]
        b = b * s
    Q, R = np.linalg.qr(A, mode="reduced")
    qb = Q.T @ b
    return R, qb, float(b @ b - qb @ qb)


def cvxpy_lstsq(A, b, *, constraint=None, w=None):
    """Minimise ``||sqrt(w)(A x - b)||^2`` with cvxpy + Clarabel.

    Parameters
    ----------
    constraint : None, "nonneg", "eq" or "le"
        ``"nonneg"``: x >= 0; ``"eq"``: x >= 0 and sum(x) == 1;
        ``"le"``: x >= 0 and sum(x) <= 1.

    Returns
    -------
    x : ndarray
    objective : float
        ``||sqrt(w)(A x - b)||^2`` at the oracle's solution, recomputed in NumPy.
    """
    import cvxpy as cp

    R, qb, _ = qr_reduce(A, b, w)
    k = A.shape[1]
    x = cp.Variable(k)
    cons = [x >= 0]
    if constraint == "eq":
        cons.append(cp.sum(x) == 1)
    elif constraint == "le":
        cons.append(cp.sum(x) <= 1)
    prob = cp.Problem(cp.Minimize(cp.sum_squares(R @ x - qb)), cons)
    try:
        prob.solve(solver="CLARABEL", **CLARABEL_TIGHT)
    except cp.error.SolverError:
        prob.solve(solver="CLARABEL", **CLARABEL_FALLBACK)
    xv = np.asarray(x.value, dtype=float)
    # The interior-point solution is feasible only to ~1e-12: clean it.
    xv = np.maximum(xv, 0.0)
    if constraint == "eq":
        xv /= xv.sum()
    return xv, objective(A, b, xv, w)


def objective(A, b, x, w=None):
    """``||sqrt(w)(A x - b)||^2`` computed directly."""
    r = A @ x - b
    if w is not None:
        r = r * np.sqrt(w)
    return float(r @ r)


def kkt_violation(A, b, x, *, simplex=False, w=None):
    """Largest violation of the KKT conditions, relative to the problem's scale.

    For NNLS: ``x >= 0``, gradient ``g = A'W(Ax - b) >= 0`` and ``x_i g_i = 0``.
    For the simplex problem the gradient is shifted by the multiplier ``mu`` of
    the sum constraint: ``g + mu >= 0`` and ``(g + mu)_i = 0`` where ``x_i > 0``.

    Returns
    -------
    float
        max(primal infeasibility, dual infeasibility, complementarity), scaled
        by ``||A||_F (||A||_F ||x|| + ||b||)``.
    """
    WA = A if w is None else A * w[:, None]
    g = WA.T @ (A @ x - b)
    scale = np.linalg.norm(A) * (np.linalg.norm(A) * np.linalg.norm(x) + np.linalg.norm(b))
    scale = max(scale, 1e-300)
    primal = max(0.0, -x.min())
    if simplex:
        primal = max(primal, abs(x.sum() - 1.0))
        support = x > 1e-9 * max(x.max(), 1e-300)
        mu = -np.median(g[support]) if support.any() else -g.min()
        g = g + mu
    dual = max(0.0, -g.min()) / scale
    comp = np.max(np.abs(x * g)) / max(scale * np.abs(x).max(), 1e-300)
    return max(primal, dual, comp)


def naive_project_simplex(v, total=1.0):
    """Projection onto the simplex by bisection on the threshold (slow, obvious)."""
    lo, hi = v.min() - total, v.max()
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if np.maximum(v - mid, 0).sum() > total:
            lo = mid
        else:
            hi = mid
    return np.maximum(v - 0.5 * (lo + hi), 0)
