"""Factorisations of a bulk for reference-free deconvolution: NMF, ICA, anchor genes.

Every function models the bulk ``G`` (genes x samples, non-negative, linear
scale) as ``W H``: ``W`` (genes x k, >= 0) the unknown profiles, ``H``
(k x samples, >= 0) their amounts in each sample, and returns a
:class:`Factorization` normalised the same way: every column of ``W`` sums to
1 and ``H`` carries the scale (in the data's units, ``G ~ W @ H``), so
``H / H.sum(0)`` are the proportions.

- :func:`nmf`: least-squares NMF by accelerated HALS (a Numba kernel on the
  Gram form, :func:`fastdeconv.kernels.nmf.hals_update`), polished by exact
  alternating NNLS on the library's active-set solver, with seeded restarts.
- :func:`ica`: scikit-learn's FastICA with genes as observations, sources
  oriented to a positive heavy tail and rectified into ``W``; ``H`` by NNLS.
- :func:`anchors`: separable NMF: anchor genes by successive projection of
  the row-normalised data, every gene a convex combination of the anchors.

Arrays in, arrays out: no pandas here; the reference-free pipeline attaches
the names.

References
----------
Lee, D. D., Seung, H. S. (1999). Learning the parts of objects by non-negative
matrix factorization. Nature 401, 788-791.  Gillis, N. (2020). Nonnegative
Matrix Factorization. SIAM.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fastdeconv._checks import check_float, check_int

__all__ = ["Factorization", "nmf", "ica", "anchors", "match_components", "agreement"]

#: value below which HALS does not let an entry fall (Gillis and Glineur 2012)
FLOOR = 1e-16
#: sd of the log-normal factor that perturbs the starting ``H`` of restarts 1, 2, ...
PERTURB_SD = 0.5
#: share of its row's mean added to every entry of the starting ``H`` before perturbing
#: (so that zeros of an NNDSVD start move too)
PERTURB_FILL = 0.01
#: restarts run per round with ``n_restarts="auto"``
AUTO_ROUND = 4
#: most restarts with ``n_restarts="auto"``
AUTO_MAX = 40
#: relative difference of objectives counted as the same optimum (``n_restarts="auto"``)
AUTO_SAME = 1e-6
#: largest absolute difference of proportions of agreeing restarts (``stability``)
AGREE = 0.01
#: accelerated HALS: inner sweeps while a sweep changes the factor by more than
#: DELTA times the first one, at most 1 + ALPHA * (cost of the products / cost of a sweep)
DELTA = 0.1
ALPHA = 0.5
#: cap on inner sweeps per update
MAX_INNER = 50
#: most alternations of the exact NNLS polish
POLISH_STEPS = 20
#: the polish stops when an alternation lowers the objective by at most POLISH_TOL * tol
#: (relative): objectives of restarts then compare to better than ``tol``
POLISH_TOL = 1e-3


@dataclass
class Factorization:
    """A factorisation ``G ~ W H`` of a bulk (genes x samples).

    Attributes
    ----------
    W : ndarray, shape (n_genes, k)
        Profiles, >= 0, every column summing to 1 (an empty component's column is 0).
    H : ndarray, shape (k, n_samples)
        Amounts, >= 0, in the data's units (``G ~ W @ H``).
    objective : float
        ``0.5 * ||G - W H||_F^2`` of the returned ``W``, ``H``.
    n_iter : int
        Iterations of the method's main loop (HALS iterations of the best
        restart, FastICA's iterations, 0 for anchors).
    converged : bool
        Whether the main loop met its tolerance and every exact solve its
        optimality conditions.
    restarts : ndarray, shape (n_runs,)
        Objective of every run, in order (length 1 for one run).
    stability : float
        Share of runs whose proportions ``H / H.sum(0)`` agree with the best
        run's to 0.01 (largest absolute difference, after matching components
        with :func:`match_components`); 1.0 for one run.
    anchors : ndarray of int64, shape (k,) or None
        Anchor genes (rows of ``G``) of :func:`anchors`; None otherwise.
    info : dict
        Method-specific diagnostics; always ``"method"``, ``"empty_components"``
        (indices of components with an all-zero column of ``W`` or row of
        ``H``: both are set to zero) and ``"relative_error"``
        (``||G - W H||_F / ||G||_F``).

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.factorization import anchors
    >>> W = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.2, 0.8]])
    >>> H = np.array([[1.0, 2.0, 3.0], [3.0, 1.0, 2.0]])
    >>> fit = anchors(W @ H, 2)
    >>> fit.W.sum(axis=0).round(12).tolist(), round(fit.objective, 12)
    ([1.0, 1.0], 0.0)
    >>> fit.proportions.sum(axis=0).round(12).tolist()
    [1.0, 1.0, 1.0]
    """

    W: np.ndarray
    H: np.ndarray
    objective: float
    n_iter: int
    converged: bool
    restarts: np.ndarray
    stability: float
    anchors: np.ndarray | None = None
    info: dict = field(default_factory=dict)

    @property
    def proportions(self):
        """``H / H.sum(0)`` (k x samples; a sample with no fitted signal gets zeros)."""
        return _proportions(self.H)


# --------------------------------------------------------------------------- helpers


def _proportions(H):
    total = H.sum(axis=0)
    return np.divide(H, total, out=np.zeros_like(H), where=total > 0)


def match_components(P_ref, P):
    """The order of ``P``'s components that best matches ``P_ref`` (Hungarian method).

    Components (rows) are matched one to one minimising the summed absolute
    differences ``sum_s |P_ref[i, s] - P[perm[i], s]|`` over all pairs, by
    enumeration up to 7 components, else :func:`scipy.optimize.linear_sum_assignment`.

    Parameters
    ----------
    P_ref : array_like, shape (k, n_samples)
        The reference (for example proportions of the best run).
    P : array_like, shape (k, n_samples)
        The components to order.

    Returns
    -------
    perm : ndarray of int64, shape (k,)
        ``P[perm]`` is ``P`` in the order of ``P_ref``.

    Raises
    ------
    ValueError
        If the shapes differ or are not 2-D.

    References
    ----------
    Kuhn, H. W. (1955). The Hungarian method for the assignment problem.
    Naval Research Logistics Quarterly 2, 83-97.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.factorization import match_components
    >>> P = np.array([[0.2, 0.7], [0.8, 0.3]])
    >>> match_components(P, P[::-1]).tolist()
    [1, 0]
    """
    P_ref = np.asarray(P_ref, dtype=np.float64)
    P = np.asarray(P, dtype=np.float64)
    if P_ref.ndim != 2 or P_ref.shape != P.shape:
        raise ValueError(
            f"P_ref and P must be 2-D arrays of the same shape (k x samples), got "
            f"{P_ref.shape} and {P.shape}"
        )
    cost = np.abs(P_ref[:, None, :] - P[None, :, :]).sum(axis=2)
    return np.asarray(_assignment(cost), dtype=np.int64)


def _stability(best, Hs):
    """Share of the runs ``Hs`` whose proportions agree with run ``best``'s to AGREE."""
    if len(Hs) < 2:
        return 1.0
    return agreement(_proportions(Hs[best]), [_proportions(H) for H in Hs])


def _assignment(cost):
    """The column matched to each row of a square cost matrix at least total cost.

    Every permutation is scored for up to 7 rows (5040 of them), which spares
    small problems the import of :mod:`scipy.optimize` (a third of a second);
    larger ones use its Hungarian method.
    """
    k = cost.shape[0]
    if k > 7:
        from scipy.optimize import linear_sum_assignment

        return linear_sum_assignment(cost)[1]
    from itertools import permutations

    perms = np.array(list(permutations(range(k))))
    totals = cost[np.arange(k)[None, :], perms].sum(axis=1)
    return perms[int(np.argmin(totals))]


def agreement(P_best, others, tolerance=AGREE):
    """Share of solutions whose proportions agree with ``P_best`` to ``tolerance``.

    Components are matched one to one (Hungarian method on the summed
    absolute differences) before the largest absolute difference is taken, so
    a solution with its components in another order agrees.

    Parameters
    ----------
    P_best : ndarray, shape (k, n_samples)
        The reference proportions.
    others : sequence of ndarray, shape (k, n_samples)
        The solutions to compare (the reference itself may be among them).
    tolerance : float, default 0.01
        Largest absolute difference of an agreeing solution.

    Returns
    -------
    float
        The share in [0, 1] (1.0 for no solutions).

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.factorization import agreement
    >>> P = np.array([[0.2, 0.7], [0.8, 0.3]])
    >>> agreement(P, [P, P[::-1], P + [[0.1, 0.0], [-0.1, 0.0]]])
    0.6666666666666666
    """
    if not len(others):
        return 1.0
    agree = 0
    for P in others:
        perm = match_components(P_best, P)
        agree += float(np.abs(P_best - P[perm]).max()) <= tolerance
    return agree / len(others)




def _check_input(G, k):
    """``G`` as float64 C-contiguous (genes x samples) and ``k``, or a clear error."""
    k = check_int(k, "k", minimum=2)
    try:
        G = np.asarray(G, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"G must be a numeric array (genes x samples), got {type(G).__name__}: {err}"
        ) from None
    if G.ndim != 2:
        raise ValueError(f"G must be a 2-D array (genes x samples), got {G.ndim} dimensions")
    n, m = G.shape
    if not np.all(np.isfinite(G)):
        raise ValueError("G contains NaN or inf; remove or impute non-finite values first")
    if np.any(G < 0):
        raise ValueError(
            "G contains negative values; pass a non-negative bulk on the linear scale "
            "(undo a log transform with 2**G - 1)"
        )
    if m < k + 1:
        raise ValueError(
            f"k={k} needs at least k + 1 = {k + 1} samples (columns of G), got {m}; lower k "
            "(or pass G as genes x samples)"
        )
    if n <= k:
        raise ValueError(
            f"k={k} needs more than k genes (rows of G), got {n}; lower k (or pass G as "
            "genes x samples)"
        )
    if not np.any(G > 0):
        raise ValueError("G is all zero; there is nothing to factorise")
    return np.ascontiguousarray(G), k


def _objective(G, W, H):
    R = G - W @ H
    return 0.5 * float(np.einsum("ij,ij->", R, R))


def _nnls(A, B, n_jobs=1):
    """``argmin_{X>=0} ||A X - B||`` per column of ``B``, on the library's exact solver.

    Returns the solution and whether every column converged.  One thread by
    default: the factorisations run their restarts on the threads.
    """
    from fastdeconv.solvers._core import solve

    X, info = solve(np.ascontiguousarray(A, dtype=np.float64), B, kind="nnls", n_jobs=n_jobs)
    return X, bool(np.all(info.converged))


def _finish(G, W, H, *, method, n_iter, converged, restarts, stability, anchor_idx=None,
            info=None):
    """Normalise (columns of W sum to 1, scale into H), mark empty components, score."""
    W = np.array(W, dtype=np.float64)
    H = np.array(H, dtype=np.float64)
    scale = W.sum(axis=0)
    empty = (scale <= 0) | ~np.any(H > 0, axis=1)
    W[:, empty] = 0.0
    H[empty] = 0.0
    live = ~empty
    W[:, live] /= scale[live]
    H[live] *= scale[live][:, None]
    objective = _objective(G, W, H)
    norm = float(np.sqrt(np.einsum("ij,ij->", G, G)))
    info = dict(info or {})
    info["method"] = method
    info["empty_components"] = [int(j) for j in np.flatnonzero(empty)]
    info["relative_error"] = float(np.sqrt(2.0 * objective)) / norm if norm > 0 else 0.0
    return Factorization(
        W=W, H=H, objective=objective, n_iter=int(n_iter), converged=bool(converged),
        restarts=np.asarray(restarts, dtype=np.float64), stability=float(stability),
        anchors=anchor_idx, info=info,
    )


# --------------------------------------------------------------------------- NMF


def _nndsvd(G, k):
    """NNDSVD start (Boutsidis and Gallopoulos 2008): W (n x k), H (k x m)."""
    U, S, Vt = np.linalg.svd(G, full_matrices=False)
    n, m = G.shape
    W = np.zeros((n, k))
    H = np.zeros((k, m))
    W[:, 0] = np.sqrt(S[0]) * np.abs(U[:, 0])
    H[0] = np.sqrt(S[0]) * np.abs(Vt[0])
    for j in range(1, k):
        x, y = U[:, j], Vt[j]
        xp, xn = np.maximum(x, 0.0), np.maximum(-x, 0.0)
        yp, yn = np.maximum(y, 0.0), np.maximum(-y, 0.0)
        nxp, nyp, nxn, nyn = (float(np.linalg.norm(v)) for v in (xp, yp, xn, yn))
        mp, mn = nxp * nyp, nxn * nyn
        if mp >= mn:
            u, v, sigma, nu, nv = xp, yp, mp, nxp, nyp
        else:
            u, v, sigma, nu, nv = xn, yn, mn, nxn, nyn
        if sigma > 0:
            W[:, j] = np.sqrt(S[j] * sigma) * u / nu
            H[j] = np.sqrt(S[j] * sigma) * v / nv
    return W, H


def _hals(G, GT, gg, W, Ht, max_iter, tol):
    """Accelerated HALS from (W, H'), both updated in place; returns (iterations, converged)."""
    from fastdeconv.kernels.nmf import hals_update

    n, m = G.shape
    k = W.shape[1]
    inner_H = int(min(MAX_INNER, 1 + ALPHA * n / k))  # products O(nmk) / sweep O(mk^2)
    inner_W = int(min(MAX_INNER, 1 + ALPHA * m / k))  # products O(nmk) / sweep O(nk^2)
    prev = np.inf
    WtW = W.T @ W
    for it in range(1, max_iter + 1):
        GtW = np.ascontiguousarray(GT @ W)
        hals_update(Ht, np.ascontiguousarray(WtW), GtW, inner_H, DELTA, FLOOR)
        GHt = np.ascontiguousarray(G @ Ht)
        HtH = np.ascontiguousarray(Ht.T @ Ht)
        hals_update(W, HtH, GHt, inner_W, DELTA, FLOOR)
        WtW = W.T @ W
        # 0.5 ||G - W H||^2 from the Gram form; exactly when it nears rounding level
        obj = 0.5 * (gg - 2.0 * float(np.einsum("ij,ij->", W, GHt))
                     + float(np.einsum("ij,ij->", WtW, HtH)))
        if obj < 1e-6 * gg:
            obj = _objective(G, W, Ht.T)
        if np.isfinite(prev) and prev - obj <= tol * prev:
            return it, True
        prev = obj
    return max_iter, max_iter == 0


def _polish(G, W, H, tol):
    """Exact alternating NNLS: W = argmin ||G' - H'W'||, then H = argmin ||G - W H||, until
    an alternation lowers the objective by at most ``tol`` (relative; at most POLISH_STEPS)."""
    prev = _objective(G, W, H)
    ok = True
    steps = 0
    for steps in range(1, POLISH_STEPS + 1):
        Wt, ok_w = _nnls(H.T, G.T)
        W = Wt.T
        H, ok_h = _nnls(W, G)
        ok = ok_w and ok_h
        obj = _objective(G, W, H)
        if prev - obj <= tol * prev:
            break
        prev = obj
    else:  # the cap, with the objective still falling: not converged
        ok = False
    return np.ascontiguousarray(W), H, obj, steps, ok


def _start(G, H0, W0, r, seeds):
    """Starting (W, H') of restart ``r``: restart 0 the given start; later ones ``H0``
    perturbed by a log-normal factor and ``W0`` = NNLS of G' on it."""
    if r == 0 and W0 is not None:
        return np.array(W0, order="C"), np.array(H0.T, order="C")
    H = H0
    if r > 0:
        rng = np.random.default_rng(seeds[r])
        fill = PERTURB_FILL * H0.mean(axis=1, keepdims=True)
        fill[fill <= 0] = PERTURB_FILL * max(float(H0.mean()), FLOOR)
        H = (H0 + fill) * np.exp(PERTURB_SD * rng.standard_normal(H0.shape))
    Wt, _ = _nnls(H.T, G.T)
    return np.ascontiguousarray(Wt.T), np.array(H.T, order="C")


def _check_init(init, k, m):
    if init is None or (isinstance(init, str) and init == "svd"):
        return None
    if isinstance(init, str):
        raise ValueError(f"init must be None, 'svd' or an array (k x samples), got {init!r}")
    try:
        H0 = np.asarray(init, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(
            f"init must be None, 'svd' or an array (k x samples), got {type(init).__name__}"
        ) from None
    if H0.shape != (k, m):
        raise ValueError(
            f"init must have shape (k, n_samples) = {(k, m)}, got {H0.shape}; pass the "
            "starting H (for example simplex corners), or init='svd'"
        )
    if not np.all(np.isfinite(H0)) or np.any(H0 < 0):
        raise ValueError("init must be finite and non-negative")
    if not np.all(H0.any(axis=1)):
        raise ValueError("init has an all-zero row; every component needs a non-zero start")
    return H0


def nmf(G, k, *, init=None, n_restarts=10, seed=0, max_iter=2000, tol=1e-6, n_jobs=None):
    """Non-negative matrix factorisation ``G ~ W H`` (least squares), with restarts.

    Minimises ``0.5 * ||G - W H||_F^2`` over ``W >= 0`` (genes x k) and
    ``H >= 0`` (k x samples):

    1. Iterations of accelerated HALS (Gillis and Glineur 2012): each iteration
       updates ``H`` given ``W`` (from ``W'W`` and ``W'G``), then ``W`` given
       ``H`` (from ``HH'`` and ``GH'``); the products by BLAS, the column
       updates by the Numba kernel :func:`fastdeconv.kernels.nmf.hals_update`
       (several inner sweeps while they still change the factor by more than a
       tenth of the first sweep, at most ``1 + 0.5 * (cost of the products /
       cost of a sweep)``, capped at 50), entries kept above 1e-16 so that no
       column dies by rounding.  The data are divided by their mean first.
       Stops when an iteration lowers the objective by less than ``tol``
       (relative), or after ``max_iter`` iterations.
    2. An exact polish: alternating NNLS on the library's active-set solver,
       ``W = argmin_{W>=0} ||G' - H'W'||`` then ``H = argmin_{H>=0} ||G - W H||``,
       until an alternation lowers the objective by at most ``1e-3 * tol``
       (relative; at most 20 alternations), so the
       returned ``H`` satisfies the optimality (KKT) conditions of NNLS given
       ``W`` to the solver's tolerance.
    3. Restarts: restart 0 starts from ``init``; restart ``r >= 1`` from the
       starting ``H0`` plus 1 % of its row means, times
       ``exp(0.5 z)`` with ``z`` standard normal drawn from
       ``np.random.default_rng(np.random.SeedSequence(seed).spawn(...)[r])``,
       and ``W0`` the NNLS of ``G'`` on it.  The run with the smallest
       objective wins (the earliest on ties).  Restarts run in worker threads;
       the result does not depend on ``n_jobs``.

    Parameters
    ----------
    G : array_like, shape (n_genes, n_samples)
        Non-negative bulk, linear scale.
    k : int
        Number of components (>= 2).
    init : None, "svd" or array_like of shape (k, n_samples), optional
        Start: None or ``"svd"``, NNDSVD (Boutsidis and Gallopoulos 2008;
        deterministic); an array, the starting ``H`` (for example simplex
        corners), with ``W0`` its NNLS fit.
    n_restarts : int or "auto", default 10
        Number of runs (>= 1).  ``"auto"``: runs in rounds of 4 until the best
        objective has been reached (to a relative 1e-6, or both objectives
        below 1e-12 times ``0.5 ||G||^2``: an exact fit) by at least two runs,
        or 40 runs.
    seed : int, default 0
        Seed of the perturbations.
    max_iter : int, default 2000
        Most HALS iterations per run (0: the polish alone).
    tol : float, default 1e-6
        Relative decrease of the objective per iteration below which HALS stops.
    n_jobs : int or None, optional
        Worker threads for the restarts (None: all cores).

    Returns
    -------
    Factorization
        The best run, normalised (columns of ``W`` sum to 1); ``restarts``
        holds every run's objective, ``stability`` the share of runs whose
        proportions agree with the best run's to 0.01, ``info`` also
        ``"init"``, ``"iterations"`` (HALS iterations of every run),
        ``"polish_steps"`` and ``"best_restart"``.

    Raises
    ------
    ValueError
        For a ``G`` that is not 2-D, finite and non-negative with more than
        ``k`` genes and at least ``k + 1`` samples, a ``k`` below 2, or a bad
        option.
    TypeError
        For options of the wrong type.

    References
    ----------
    Cichocki, A., Phan, A.-H. (2009). Fast local algorithms for large scale
    nonnegative matrix and tensor factorizations. IEICE Transactions on
    Fundamentals E92-A, 708-721.
    Gillis, N., Glineur, F. (2012). Accelerated multiplicative updates and
    hierarchical ALS algorithms for nonnegative matrix factorization. Neural
    Computation 24, 1085-1105.
    Boutsidis, C., Gallopoulos, E. (2008). SVD based initialization: a head
    start for nonnegative matrix factorization. Pattern Recognition 41,
    1350-1362.
    Kim, J., Park, H. (2008). Nonnegative matrix factorization based on
    alternating nonnegativity constrained least squares and active set
    method. SIAM J. Matrix Anal. Appl. 30, 713-730.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.factorization import nmf
    >>> rng = np.random.default_rng(0)
    >>> W = rng.gamma(1.0, size=(200, 3))
    >>> W[:3] = np.eye(3)
    >>> H = rng.dirichlet(np.ones(3), size=12).T
    >>> fit = nmf(W @ H, 3, n_restarts=2, n_jobs=1)
    >>> bool(fit.info["relative_error"] < 1e-4), fit.H.shape, fit.restarts.size
    (True, (3, 12), 2)
    """
    from fastdeconv._parallel import resolve_n_jobs, thread_map

    G, k = _check_input(G, k)
    n, m = G.shape
    H0 = _check_init(init, k, m)
    auto = isinstance(n_restarts, str)
    if auto and n_restarts != "auto":
        raise ValueError(f"n_restarts must be a positive integer or 'auto', got {n_restarts!r}")
    if not auto:
        n_restarts = check_int(n_restarts, "n_restarts", minimum=1)
    seed = check_int(seed, "seed", minimum=0)
    max_iter = check_int(max_iter, "max_iter", minimum=0)
    tol = check_float(tol, "tol", minimum=0.0, allow_minimum=True)
    n_jobs = resolve_n_jobs(n_jobs)

    c = float(G.mean())  # HALS on data of mean 1 (the floor is absolute)
    Gs = G / c
    GsT = Gs.T
    gg = float(np.einsum("ij,ij->", Gs, Gs))
    total = AUTO_MAX if auto else n_restarts
    seeds = np.random.SeedSequence(seed).spawn(max(total, AUTO_MAX))
    W0 = None
    if H0 is None:
        W0, H0s = _nndsvd(Gs, k)
    else:
        H0s = H0 / c

    def run(r):
        W, Ht = _start(Gs, H0s, W0, r, seeds)
        its, hals_ok = _hals(Gs, GsT, gg, W, Ht, max_iter, tol)
        W, H, _, steps, nnls_ok = _polish(G, W, Ht.T * c, POLISH_TOL * tol)
        return W, H, _objective(G, W, H), its, hals_ok and nnls_ok, steps

    # the same optimum: within AUTO_SAME (relative) of the best, or both at rounding level
    # (objectives below 1e-12 * 0.5 ||G||^2: an exact factorisation), or the same
    # proportions to AGREE (runs stopped by ``tol`` at slightly different objectives)
    results = []
    while len(results) < total:
        stop = min(total, len(results) + (AUTO_ROUND if auto else total))
        results.extend(thread_map(run, range(len(results), stop), n_jobs))
        if auto:
            objs = np.array([res[2] for res in results])
            same = max(AUTO_SAME * objs.min(), 1e-12 * 0.5 * gg * c * c)
            best = int(np.argmin(objs))
            props = [_proportions(res[1] * res[0].sum(axis=0)[:, None]) for res in results]
            n_same = sum(
                objs[r] - objs[best] <= same
                or agreement(props[best], [props[r]]) == 1.0 for r in range(len(results)))
            if n_same >= 2:
                break
    objs = np.array([res[2] for res in results])
    best = int(np.argmin(objs))
    W, H, _, its, ok, steps = results[best]
    # proportions of every run in the normalisation of the result (columns of W sum to 1)
    stability = _stability(best, [res[1] * res[0].sum(axis=0)[:, None] for res in results])
    info = {
        "init": "svd" if init is None or isinstance(init, str) else "array",
        "iterations": np.array([res[3] for res in results], dtype=np.int64),
        "polish_steps": int(steps),
        "best_restart": best,
    }
    return _finish(G, W, H, method="nmf", n_iter=its, converged=ok, restarts=objs,
                   stability=stability, info=info)


# --------------------------------------------------------------------------- ICA


def ica(G, k, *, seed=0, max_iter=1000, tol=1e-4):
    """Reference-free factorisation by independent component analysis (FastICA).

    As in the deconvolution literature (Teschendorff et al. 2007; Kairov et
    al. 2017, DeconICA), the genes are the observations: scikit-learn's
    :class:`~sklearn.decomposition.FastICA` (``whiten="unit-variance"``,
    ``random_state=seed``) is fitted to ``G`` (genes x samples), giving ``k``
    independent sources in gene space (genes x k; the mixing matrix is
    samples x k).  A cell type's markers form a source's heavy tail, so every
    source is oriented so that its skewness is positive, then rectified
    (negative values set to 0) and normalised to sum 1: these are the columns
    of ``W``.  ``H`` is the NNLS fit of ``G`` on ``W`` by the library's exact
    active-set solver.  One run (``restarts`` has one entry, ``stability`` is
    1.0); deterministic for a seed.

    Parameters
    ----------
    G : array_like, shape (n_genes, n_samples)
        Non-negative bulk, linear scale.
    k : int
        Number of components (>= 2).
    seed : int, default 0
        FastICA's ``random_state``.
    max_iter : int, default 1000
        FastICA's iteration cap.
    tol : float, default 1e-4
        FastICA's tolerance.

    Returns
    -------
    Factorization
        ``converged`` is False when FastICA stopped at ``max_iter`` (its
        warning is not re-raised) or an NNLS solve did not converge;
        ``info`` also holds ``"skewness"`` (of each oriented source) and
        ``"mixing"`` (samples x k, signs as oriented).

    Raises
    ------
    ImportError
        If scikit-learn is not installed.
    ValueError
        For a bad ``G`` or ``k`` (as :func:`nmf`).

    References
    ----------
    Hyvarinen, A., Oja, E. (2000). Independent component analysis: algorithms
    and applications. Neural Networks 13, 411-430.
    Teschendorff, A. E. et al. (2007). Elucidating the altered transcriptional
    programs in breast cancer using independent component analysis. PLoS
    Computational Biology 3, e161.
    Kairov, U. et al. (2017). Determining the optimal number of independent
    components for reproducible transcriptomic data analysis. BMC Genomics 18, 712.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.factorization import ica
    >>> rng = np.random.default_rng(0)
    >>> W = rng.lognormal(0.0, 1.5, size=(2000, 3))
    >>> H = rng.dirichlet(np.ones(3), size=10).T
    >>> fit = ica(W @ H, 3)
    >>> fit.W.shape, fit.H.shape, fit.stability
    ((2000, 3), (3, 10), 1.0)
    """
    G, k = _check_input(G, k)
    seed = check_int(seed, "seed", minimum=0)
    max_iter = check_int(max_iter, "max_iter", minimum=1)
    tol = check_float(tol, "tol")
    try:
        from sklearn.decomposition import FastICA
        from sklearn.exceptions import ConvergenceWarning
    except ImportError:
        raise ImportError(
            "ica() needs scikit-learn: pip install scikit-learn (or pip install fastdeconv[ica])"
        ) from None
    import warnings

    model = FastICA(n_components=k, whiten="unit-variance", random_state=seed,
                    max_iter=max_iter, tol=tol)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        S = model.fit_transform(G)  # genes x k
    ica_ok = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    for w in caught:
        if not issubclass(w.category, ConvergenceWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    centred = S - S.mean(axis=0)
    skew = (centred**3).mean(axis=0) / np.maximum((centred**2).mean(axis=0), 1e-300) ** 1.5
    sign = np.where(skew < 0, -1.0, 1.0)
    S = S * sign
    W = np.maximum(S, 0.0)
    total = W.sum(axis=0)
    W = np.divide(W, total, out=np.zeros_like(W), where=total > 0)
    W = np.ascontiguousarray(W)
    H, nnls_ok = _nnls(W, G)
    info = {"skewness": skew * sign, "mixing": model.mixing_ * sign,
            "ica_iterations": int(model.n_iter_)}
    fit = _finish(G, W, H, method="ica", n_iter=model.n_iter_, converged=ica_ok and nnls_ok,
                  restarts=[0.0], stability=1.0, info=info)
    fit.restarts = np.array([fit.objective])
    return fit


# --------------------------------------------------------------------------- anchors


def anchors(G, k):
    """Separable NMF: ``k`` anchor genes, every gene a convex combination of them.

    In the spirit of CellDistinguisher (Newberg et al. 2018) and the anchor
    words of topic models (Arora et al. 2013): if every cell type has a gene
    expressed by it alone, the row-normalised data ``X`` (each gene's row
    divided by its sum; genes with zero sum are left out) lie in a simplex
    whose corners are those genes' rows.

    1. Anchors: successive projection (Gillis and Vavasis 2014;
       :func:`fastdeconv.kernels.corners.successive_projection`, deterministic)
       on ``X``.
    2. Corners ``C = X[anchors]`` (k x samples); every gene's row ``x_g`` is
       written as a convex combination ``a_g`` of the corners by the library's
       exact simplex-constrained solver (``min ||C' a - x_g||``, ``a >= 0``,
       ``sum a = 1``).
    3. ``W = diag(row sums of G) A`` (genes x k), ``H = C``; then columns of
       ``W`` are scaled to sum 1 and ``H`` takes the scale.

    No randomness: ``restarts`` has one entry, ``stability`` is 1.0,
    ``anchors`` holds the anchor genes' rows of ``G``.

    Parameters
    ----------
    G : array_like, shape (n_genes, n_samples)
        Non-negative bulk, linear scale.
    k : int
        Number of components (>= 2).

    Returns
    -------
    Factorization
        ``info`` also holds ``"spa_residual"`` (the successive projection's
        residual norm at each pick: one near 0 means fewer than ``k``
        directions) and ``"n_outside"`` (genes whose row is not reproduced by
        the simplex to 1e-8 relative: noise, or a missing anchor).

    Raises
    ------
    ValueError
        For a bad ``G`` or ``k`` (as :func:`nmf`), or fewer than ``k + 1``
        genes with a non-zero sum.

    References
    ----------
    Arora, S. et al. (2013). A practical algorithm for topic modeling with
    provable guarantees. ICML 2013, 280-288.
    Gillis, N., Vavasis, S. A. (2014). Fast and robust recursive algorithms
    for separable nonnegative matrix factorization. IEEE TPAMI 36, 698-714.
    Newberg, L. A. et al. (2018). Serial deconvolution of gene expression
    data: CellDistinguisher. BMC Bioinformatics 19.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.factorization import anchors
    >>> rng = np.random.default_rng(1)
    >>> W = rng.gamma(1.0, size=(100, 3))
    >>> W[[10, 20, 30]] = 5 * np.eye(3)
    >>> H = rng.dirichlet(np.ones(3), size=8).T
    >>> sorted(anchors(W @ H, 3).anchors.tolist())
    [10, 20, 30]
    """
    from fastdeconv.kernels.corners import successive_projection
    from fastdeconv.solvers._core import solve

    G, k = _check_input(G, k)
    n, m = G.shape
    rowsum = G.sum(axis=1)
    keep = np.flatnonzero(rowsum > 0)
    if keep.size <= k:
        raise ValueError(
            f"k={k} needs more than k genes with a non-zero sum, got {keep.size}; lower k"
        )
    X = np.ascontiguousarray(G[keep] / rowsum[keep, None])
    picked, residual = successive_projection(X, k)
    C = np.ascontiguousarray(X[picked])  # k x m
    A, info = solve(np.ascontiguousarray(C.T), X.T, kind="simplex", n_jobs=1)  # k x n_keep
    W = np.zeros((n, k))
    W[keep] = A.T * rowsum[keep, None]
    fit_rows = A.T @ C
    err = np.sqrt(((fit_rows - X) ** 2).sum(axis=1)) / np.sqrt((X**2).sum(axis=1))
    extra = {"spa_residual": residual, "n_outside": int(np.count_nonzero(err > 1e-8))}
    fit = _finish(G, W, C, method="anchors", n_iter=0, converged=bool(np.all(info.converged)),
                  restarts=[0.0], stability=1.0, anchor_idx=keep[picked].astype(np.int64),
                  info=extra)
    fit.restarts = np.array([fit.objective])
    return fit
