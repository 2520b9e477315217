"""Huber-loss regression by iteratively re-weighted least squares (IRLS), one sample at a time.

``min sum_i rho_c(sqrt(w_i) r_i / s)`` over ``x >= 0`` (NNLS) or the simplex,
where ``r = b - A x``, the gene weights ``w`` scale rows as they do for least
squares, ``rho_c`` is Huber's loss (quadratic up to ``c`` scale units,
linear beyond), and ``s`` is the residuals' normalised median absolute
deviation, re-estimated every round.  Each round turns the Huber loss into
weights ``min(1, c s / |r_i|)`` and solves the weighted problem exactly with the
active-set engine, so genes that a sample does not fit (cross-hybridising
probes, genes of cell types missing from the signature) lose influence instead
of dragging the proportions.  Rounds stop when the coefficients change by less
than a relative tolerance.

References
----------
P. J. Huber, "Robust estimation of a location parameter", *Ann. Math. Statist.*
35 (1964) 73-101. doi:10.1214/aoms/1177703732
P. W. Holland and R. E. Welsch, "Robust regression using iteratively reweighted
least-squares", *Commun. Stat. Theory Methods* 6 (1977) 813-827.
doi:10.1080/03610927708827533
"""

from __future__ import annotations

import numpy as np

from fastdeconv._jit import jit, jit_helper
from fastdeconv.kernels._active_set import (
    CONVERGED,
    MAX_ITER,
    active_set,
    initial_factor,
    new_workspace,
)
from fastdeconv.kernels.simplex import augment_gram

MAD_TO_SD = 1.482602218505602  # 1 / Phi^-1(3/4): the MAD of a normal sample estimates sigma
HUBER_C = 1.345  # 95% efficiency at the normal distribution
#: the pipelines' Huber options (c, most re-weighting rounds, rtol): deconvolve's defaults
DEFAULT_HUBER = (HUBER_C, 500, 1e-5)


@jit_helper
def _median(r, t):
    """The median of ``r`` (as :func:`numpy.median`), using ``t`` (same length) as scratch.

    Quickselect with a median-of-three pivot, written out here rather than
    calling ``np.median``: Numba's ``np.median`` compiles a tower of generic
    helpers that cost seconds on every first run, for the same value (the
    median is an order statistic, or the mean of two, whatever the method).
    """
    n = r.shape[0]
    if n == 0:
        return np.nan
    for i in range(n):
        v = r[i]
        if v != v:
            return np.nan  # NaN in, NaN out, as numpy.median
        t[i] = v
    k = (n - 1) >> 1  # the lower middle position
    low = 0
    high = n - 1
    while low < high:
        mid = (low + high) >> 1
        # median of three {low, mid, high} as the pivot, moved to high
        if t[mid] < t[low]:
            t[low], t[mid] = t[mid], t[low]
        if t[high] < t[mid]:
            t[high], t[mid] = t[mid], t[high]
        if t[mid] < t[low]:
            t[low], t[mid] = t[mid], t[low]
        pivot = t[mid]
        t[high], t[mid] = t[mid], t[high]
        i = low
        j = high - 1
        while True:
            while i < high and t[i] < pivot:
                i += 1
            while j >= low and pivot < t[j]:
                j -= 1
            if i >= j:
                break
            t[i], t[j] = t[j], t[i]
            i += 1
            j -= 1
        t[i], t[high] = t[high], t[i]  # the pivot in its place: t[:i] <= t[i] <= t[i+1:]
        if i == k:
            break
        if i < k:
            low = i + 1
        else:
            high = i - 1
    lower = t[k]
    if n & 1:
        return lower
    upper = t[k + 1]
    for i in range(k + 2, n):
        if t[i] < upper:
            upper = t[i]
    return (lower + upper) / 2


@jit_helper
def _weighted_gram(A, b, w, Q, c):
    """``Q = A' diag(w) A`` and ``c = A' diag(w) b`` (the leading k x k block)."""
    n, k = A.shape
    for a in range(k):
        c[a] = 0.0
        for e in range(k):
            Q[a, e] = 0.0
    for i in range(n):
        wi = w[i]
        if wi == 0.0:
            continue
        bi = b[i] * wi
        for a in range(k):
            wa = wi * A[i, a]
            c[a] += A[i, a] * bi
            for e in range(a, k):
                Q[a, e] += wa * A[i, e]
    for a in range(k):
        for e in range(a + 1, k):
            Q[e, a] = Q[a, e]


@jit_helper
def _downdated_gram(A, b, w0, hw, Q0, c0, D, db, Q, c):
    """``A' diag(w0 hw) A`` and ``A' diag(w0 hw) b`` from the full products ``Q0``, ``c0``.

    Huber weights are 1 for most genes, so only the down-weighted genes are
    gathered (rows scaled by ``sqrt(w0_i (1 - hw_i))`` into ``D``) and their
    share ``D'D`` is subtracted with one small BLAS product.
    """
    n, k = A.shape
    p = 0
    for i in range(n):
        if hw[i] >= 1.0:
            continue
        d = w0[i] * (1.0 - hw[i])
        if d <= 0.0:
            continue
        sd = np.sqrt(d)
        for a in range(k):
            D[p, a] = sd * A[i, a]
        db[p] = sd * b[i]
        p += 1
    if p == 0:
        for a in range(k):
            c[a] = c0[a]
            for e in range(k):
                Q[a, e] = Q0[a, e]
        return
    Dp = D[:p]
    G = np.dot(Dp.T, Dp)
    g = np.dot(Dp.T, db[:p])
    for a in range(k):
        c[a] = c0[a] - g[a]
        for e in range(k):
            Q[a, e] = Q0[a, e] - G[a, e]


@jit
def huber_irls(A, b, w0, x, simplex, slack, c_huber, max_rounds, rtol, max_iter, tol):
    """Huber regression of one sample by IRLS; callable from ``@njit`` code.

    Parameters
    ----------
    A : ndarray, shape (n, k)
        Signature (genes x cell types), float64.
    b : ndarray, shape (n,)
        One sample.
    w0 : ndarray, shape (n,)
        Fixed non-negative gene weights (ones for none).
    x : ndarray, shape (k,) or (k + 1,)
        Output: the solution (with the slack last when ``slack``).
    simplex : bool
        ``x`` on the simplex (else ``x >= 0``).
    slack : bool
        With ``simplex``: ``sum(x) <= 1`` through a slack variable.
    c_huber : float
        Huber's constant in units of the residual scale (1.345 is usual).
    max_rounds : int
        Cap on re-weighting rounds.
    rtol : float
        Stop when ``max|x_new - x| <= rtol * max|x_new|``.
    max_iter : int
        Cap on active-set changes per solve.
    tol : float
        Relative dual tolerance of each solve.

    Returns
    -------
    rounds : int
        Re-weighting rounds made (0: the plain weighted fit was exact).
    n_iter : int
        Active-set changes of the last solve.
    status : int
        0 converged, 1 a cap was reached (rounds or active-set changes),
        2 non-finite numbers.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.kernels.robust import huber_irls
    >>> rng = np.random.default_rng(0)
    >>> A = rng.lognormal(size=(200, 3))
    >>> b = A @ np.array([0.2, 0.3, 0.5]) * (1 + 0.01 * rng.standard_normal(200))
    >>> b[:5] *= 20.0  # five grossly wrong genes
    >>> x = np.zeros(3)
    >>> rounds, n_iter, status = huber_irls(A, b, np.ones(200), x, True, False, 1.345,
    ...                                     100, 1e-8, 100, 1e-11)
    >>> status, bool(np.abs(x - [0.2, 0.3, 0.5]).max() < 0.01)
    (0, True)
    """
    n, k = A.shape
    Q0 = np.empty((k, k))
    c0 = np.empty(k)
    _weighted_gram(A, b, w0, Q0, c0)
    BT = np.empty((1, n))
    for i in range(n):
        BT[0, i] = b[i]
    X = np.empty((1, x.shape[0]))
    W = np.empty((1, n))
    n_iter = np.zeros(1, dtype=np.int64)
    rounds = np.zeros(1, dtype=np.int64)
    status = np.zeros(1, dtype=np.int8)
    huber_batch(A, w0, Q0, BT, X, W, n_iter, rounds, status, simplex, slack, c_huber, max_rounds,
                rtol, max_iter, tol)
    for a in range(x.shape[0]):
        x[a] = X[0, a]
    return rounds[0], n_iter[0], np.int64(status[0])


@jit
def huber_batch(A, w0, Q0, BT, X, W, n_iter, rounds, status, simplex, slack, c_huber, max_rounds, rtol, max_iter, tol):
    """Huber regression by IRLS of every row of ``BT`` (one sample per row), serially.

    The IRLS loop lives here, written once: :func:`huber_irls` is this
    kernel run on one sample, so the two share one compiled body.

    Parameters
    ----------
    A : ndarray, shape (n, k)
        Signature.
    w0 : ndarray, shape (n,)
        Fixed gene weights.
    Q0 : ndarray, shape (k, k)
        ``A' diag(w0) A``, shared by all samples (the driver's Gram matrix).
    BT : ndarray, shape (m, n)
        Samples as rows, C-contiguous.
    X : ndarray, shape (m, ka)
        Output solutions.
    W : ndarray, shape (m, n) or (1, n)
        Output: each sample's final Huber gene weights (without ``w0``); with
        one row it is scratch shared by all samples (weights not kept).
    n_iter, rounds : ndarray of int64, shape (m,)
        Output active-set changes (last solve) and re-weighting rounds.
    status : ndarray of int8, shape (m,)
        Output status codes.
    simplex, slack, c_huber, max_rounds, rtol, max_iter, tol
        As in :func:`huber_irls`.
    """
    n, k = A.shape
    ka = k + 1 if (simplex and slack) else k
    keep = W.shape[0] == BT.shape[0]
    # scratch shared by the samples (each is written before it is read)
    Q = np.empty((k, k))
    c = np.empty(k)
    ca = np.empty(ka)
    c0 = np.empty(k)
    D = np.empty((n, k))
    db = np.empty(n)
    r = np.empty(n)
    scratch = np.empty(n)
    x_new = np.zeros(ka)
    ws = new_workspace(ka)
    for s in range(BT.shape[0]):
        # one sample: IRLS from the shared Q0, as described in huber_irls
        b = BT[s]
        x = X[s]
        hw = W[s] if keep else W[0]
        hw[:] = 1.0
        c0[:] = 0.0
        for i in range(n):
            wb = w0[i] * b[i]
            for a in range(k):
                c0[a] += A[i, a] * wb
        st_all = CONVERGED
        it = 0
        n_round = -1
        while True:
            _downdated_gram(A, b, w0, hw, Q0, c0, D, db, Q, c)
            if simplex:  # the same augmentation as the least-squares simplex kernel
                Qa, rho = augment_gram(Q, slack)
            else:
                Qa, rho = Q, 0.0
            for a in range(ka):
                ca[a] = (c[a] if a < k else 0.0) + rho
            it, st = active_set(Qa, ca, x_new, simplex, max_iter, tol, initial_factor(Qa), ws)
            if st != CONVERGED:
                st_all = st
            n_round += 1
            change = 0.0
            size = 0.0
            for a in range(ka):
                change = max(change, abs(x_new[a] - x[a]))
                size = max(size, abs(x_new[a]))
                x[a] = x_new[a]
            if st_all != CONVERGED or (n_round > 0 and change <= rtol * size):
                break
            if n_round >= max_rounds:
                st_all = MAX_ITER
                break
            # residuals, their scale, and the Huber weights for the next round
            bmax = 0.0
            for i in range(n):
                fit = 0.0
                for a in range(k):
                    fit += A[i, a] * x[a]
                sw = np.sqrt(w0[i])
                r[i] = abs(b[i] - fit) * sw
                bmax = max(bmax, abs(b[i]) * sw)
            scale = MAD_TO_SD * _median(r, scratch)
            if not scale > 1e-12 * bmax:
                break  # (nearly) exact fit on most genes: nothing to re-weight
            cut = c_huber * scale
            for i in range(n):
                hw[i] = 1.0 if r[i] <= cut else cut / r[i]
        rounds[s] = max(n_round, 0)
        n_iter[s] = it
        status[s] = st_all
