"""FARDEEP's adaptive least trimmed squares, one sample at a time.

FARDEEP (Hao et al. 2019) fits ``b ~ A x`` with ``x >= 0`` after removing
outlier genes, found by the package's adaptive trimming (``alts``):

1. NNLS on every gene; ``k_up``: the number of absolute residuals above
   their median, minus one (an upper bound on the number of outliers);
2. trim the ``ceil(alpha1 k_up)`` genes with the largest residuals and refit;
3. repeat: with the new residuals, ``k_up <- min(k_up, #{|r| > k median|r|} - 1)``
   (when that count is below 2, ``k`` is lowered by one until the count of
   the *first* fit's residuals above ``k`` medians is at least 2, as the
   package does), the trimmed number grows by ``alpha2``:
   ``min(ceil(alpha1 alpha2^t k_up0), k_up)`` genes with the largest current
   residuals are trimmed; stop when that number reaches ``k_up``, and refit
   without those ``k_up`` genes.

The threshold ``k`` is chosen per sample over a grid (``low``, ``low + step``,
..., ``up``) by the package's BIC-like criterion (``tuningBIC``) of the final
fit: ``(n - o) log(sse / (n - o)) + (o + p + 1)(log(n - o) + 1)`` with ``o``
the number of outliers, ``p`` the number of signature columns and ``sse`` the
sum of squared ``log2`` absolute residuals (``lognorm``) or of squared
residuals over the kept genes; the winning ``k`` (as modified by the
lowering above) is then run once more for the answer, as ``fardeep()`` does.

Every ``k`` of the grid is walked at once.  Until a ``k`` stops, its trimmed
sets are the same as for every other ``k`` (the trimmed number does not depend
on ``k`` before the stop), so the intermediate fits are shared; only the
final fits differ, and those are shared by every ``k`` that stops at the same
round with the same ``k_up``.  A sample thus costs a handful of fits per
distinct outcome instead of about six per grid point.

References
----------
Y. Hao, M. Yan, B. R. Heath, Y. L. Lei, Y. Xie, "Fast and robust deconvolution
of tumor infiltrating lymphocyte from expression profiles using least trimmed
squares", *PLoS Comput. Biol.* 15 (2019) e1006976.
doi:10.1371/journal.pcbi.1006976
"""

from __future__ import annotations

import numpy as np

from fastdeconv._jit import jit, jit_helper
from fastdeconv.kernels._active_set import CONVERGED, active_set, initial_factor, new_workspace

_LOG2 = np.log(2.0)


@jit_helper
def _fit_kept(A, b, keep, nk, Ag, bg, x, ws, max_iter, tol):
    """NNLS of ``b`` on the rows ``keep[:nk]`` of ``A``; returns (n_iter, status)."""
    ka = A.shape[1]
    Q = np.zeros((ka, ka))
    c = np.zeros(ka)
    _add_rows(A, b, keep, 0, nk, Ag, bg, Q, c)
    simplex = ka < 0  # False, as a run-time value: the engine's cached compilation is reused
    return active_set(Q, c, x, simplex, max_iter, tol, initial_factor(Q), ws)


@jit_helper
def _add_rows(A, b, rows, i0, i1, Ag, bg, Q, c):
    """Add the genes ``rows[i0:i1]`` to the Gram form ``Q = A'A``, ``c = A'b`` (kept symmetric)."""
    nb = i1 - i0
    if nb <= 0:
        return
    ka = A.shape[1]
    for i in range(nb):
        g = rows[i0 + i]
        for a in range(ka):
            Ag[i, a] = A[g, a]
        bg[i] = b[g]
    At = Ag[:nb].T
    D = np.dot(At, Ag[:nb])
    d = np.dot(At, bg[:nb])
    for a in range(ka):
        c[a] += d[a]
        Q[a, a] += D[a, a]
        for e in range(a + 1, ka):
            v = 0.5 * (D[a, e] + D[e, a])
            Q[a, e] += v
            Q[e, a] += v


@jit_helper
def _abs_residuals(A, b, x, r):
    """``r = |b - A x|`` on every gene."""
    r[:] = np.dot(A, x)
    for g in range(b.shape[0]):
        r[g] = abs(b[g] - r[g])


@jit_helper
def _count_above(sorted_r, threshold):
    """How many entries of the ascending ``sorted_r`` exceed ``threshold``."""
    return sorted_r.shape[0] - np.searchsorted(sorted_r, threshold, side="right")


@jit_helper
def _median_sorted(s):
    n = s.shape[0]
    h = n // 2
    if n % 2 == 1:
        return s[h]
    return 0.5 * (s[h - 1] + s[h])


@jit_helper
def _criterion(A, b, x, keep, nk, n_out, p, lognorm, floor):
    """The package's BIC of a final fit (``tuningBIC``)."""
    sse = 0.0
    for i in range(nk):
        g = keep[i]
        v = b[g]
        for a in range(A.shape[1]):
            v -= A[g, a] * x[a]
        if lognorm:
            # the package's log2|r|; an exact zero (-inf there, making every k's
            # criterion infinite) is held at the rounding level of the data
            v = np.log(max(abs(v), floor)) / _LOG2
        sse += v * v
    return nk * np.log(sse / nk) + (n_out + p + 1.0) * (np.log(nk) + 1.0)


@jit_helper
def alts_grid(A, b, ks, alpha1, alpha2, p, lognorm, criterion, k_final, scratch, x_out, trimmed,
              max_iter, tol):
    """The package's ``alts`` for every threshold in ``ks`` at once (see the module).

    Parameters
    ----------
    A : ndarray, shape (n, ka)
        Design (signature, with a leading column of ones for an intercept).
    b : ndarray, shape (n,)
        The sample.
    ks : ndarray, shape (G,)
        Thresholds ``k`` (in medians of the absolute residuals).
    alpha1, alpha2 : float
        First trimmed share of ``k_up`` and its growth factor (> 1).
    p : int
        Number of signature columns for the criterion.
    lognorm : bool
        Criterion on ``log2`` absolute residuals.
    criterion : ndarray, shape (G,)
        Output: the criterion of each ``k``'s final fit.
    k_final : ndarray, shape (G,)
        Output: each ``k`` as the trimming left it (lowered when too few
        residuals exceeded it).
    scratch : tuple
        Work arrays: ``(Ag, bg, r, order, s, r0, order0, s0, kcur, kup, active,
        stopped, memo_k, memo_c, ws)``.
    x_out : ndarray, shape (ka,)
        Output (with one ``k``): the final fit.
    trimmed : ndarray of bool, shape (n,)
        Output (with one ``k``): the trimmed genes.
    max_iter, tol
        Options of each NNLS solve.

    Returns
    -------
    rounds : int
        Trimming rounds (of the last ``k`` to stop).
    n_iter : int
        Active-set changes of the last solve.
    status : int
        0 if every solve converged, else the first failing solve's status.
    """
    Ag, bg, r, order, s, r0, order0, s0, kcur, kup, active, stopped, memo_k, memo_c, ws = scratch
    n, ka = A.shape
    G = ks.shape[0]
    x = np.empty(ka)
    status = CONVERGED
    bmax = 0.0
    for g in range(n):
        bmax = max(bmax, abs(b[g]))
    floor = bmax * 2.220446049250313e-16
    if not floor > 0.0:
        floor = 5e-324
    # the first fit, on every gene
    for g in range(n):
        order0[g] = g
    it, st = _fit_kept(A, b, order0, n, Ag, bg, x, ws, max_iter, tol)
    if st != CONVERGED:
        status = st
    _abs_residuals(A, b, x, r0)
    order0[:] = np.argsort(r0, kind="mergesort")  # stable, as R's order()
    for i in range(n):
        s0[i] = r0[order0[i]]
    med0 = _median_sorted(s0)
    kup0 = max(_count_above(s0, med0) - 1, 0)
    # with a zero median, lowering k cannot raise the count above this
    positive0 = _count_above(s0, 0.0)
    kle = alpha1 * kup0
    for gi in range(G):
        kcur[gi] = ks[gi]
        kup[gi] = kup0
        active[gi] = True
    n_active = G
    n_keep = n - int(np.ceil(kle))
    keep = order0  # the genes of the next fit: the first n_keep of this order
    rounds = 0
    while n_active > 0:
        rounds += 1
        it, st = _fit_kept(A, b, keep, n_keep, Ag, bg, x, ws, max_iter, tol)
        if st != CONVERGED and status == CONVERGED:
            status = st
        _abs_residuals(A, b, x, r)
        order[:] = np.argsort(r, kind="mergesort")
        for i in range(n):
            s[i] = r[order[i]]
        med = _median_sorted(s)
        kle = alpha2 * kle
        low_unc = np.ceil(kle)
        n_memo = 0  # the distinct k_up of the thresholds that stop this round
        n_stopped = 0
        for gi in range(G):
            if not active[gi]:
                continue
            temp = _count_above(s, kcur[gi] * med) - 1
            while temp <= 0:
                if (med0 <= 0.0 and positive0 <= 1) or n < 2:
                    temp = 0  # the package would lower k forever: no outliers left
                    break
                kcur[gi] -= 1.0
                temp = _count_above(s0, kcur[gi] * med0) - 1
            if temp < kup[gi]:
                kup[gi] = temp
            if low_unc < kup[gi]:
                continue  # k_low < k_up: trim further, on the shared path
            # stop: the final fit leaves out the kup largest residuals of this round
            active[gi] = False
            n_active -= 1
            k_final[gi] = kcur[gi]
            stopped[n_stopped] = gi
            n_stopped += 1
            seen = False
            for q in range(n_memo):
                seen = seen or memo_k[q] == kup[gi]
            if not seen:
                memo_k[n_memo] = kup[gi]
                n_memo += 1
        if n_memo > 0:
            # the final fits keep nested prefixes of this round's order: their Gram
            # matrices are running sums over the genes, from the smallest prefix up
            memo_k[:n_memo] = np.sort(memo_k[:n_memo])[::-1]
            Q = np.zeros((ka, ka))
            c = np.zeros(ka)
            done = 0
            for q in range(n_memo):
                nk = n - memo_k[q]
                _add_rows(A, b, order, done, nk, Ag, bg, Q, c)
                done = nk
                simplex = ka < 0  # a run-time False (see _fit_kept)
                it, st = active_set(Q, c, x_out, simplex, max_iter, tol, initial_factor(Q), ws)
                if st != CONVERGED and status == CONVERGED:
                    status = st
                memo_c[q] = _criterion(A, b, x_out, order, nk, memo_k[q], p, lognorm, floor)
                if G == 1:
                    for i in range(n):
                        trimmed[order[i]] = i >= nk
            for i in range(n_stopped):
                gi = stopped[i]
                for q in range(n_memo):
                    if memo_k[q] == kup[gi]:
                        criterion[gi] = memo_c[q]
        # the others trim ceil(kle) genes: the next fit keeps the first n_keep of this
        # order (read before the next round overwrites it)
        n_keep = n - int(low_unc)
        keep = order
    return rounds, it, status


@jit
def fardeep_batch(A, BT, ks, alpha1, alpha2, p, lognorm, X, T, k_used, rounds, n_iter, status,
                  max_iter, tol):
    """FARDEEP of every row of ``BT`` (one sample per row), serially.

    Parameters
    ----------
    A : ndarray, shape (n, ka)
        Design, C-contiguous float64: the signature, with a leading column of
        ones when the model has an intercept.
    BT : ndarray, shape (m, n)
        Samples as rows, C-contiguous.
    ks : ndarray, shape (G,)
        Grid of the threshold ``k``.
    alpha1, alpha2 : float
        The package's ``alpha1`` (in (0, 1]) and ``alpha2`` (> 1).
    p : int
        Signature columns counted by the criterion.
    lognorm : bool
        Criterion on ``log2`` absolute residuals (the package's default).
    X : ndarray, shape (m, ka)
        Output coefficients.
    T : ndarray of bool, shape (m, n)
        Output: True for the genes trimmed from each sample's final fit.
    k_used : ndarray, shape (m,)
        Output: the threshold of the answer.
    rounds, n_iter : ndarray of int64, shape (m,)
        Output trimming rounds, and active-set changes of the last solve.
    status : ndarray of int8, shape (m,)
        Output: 0 when every solve converged.
    max_iter : int
        Cap on active-set changes per solve.
    tol : float
        Relative dual tolerance of each solve.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.kernels.trimming import fardeep_batch
    >>> rng = np.random.default_rng(0)
    >>> S = rng.lognormal(size=(100, 3))
    >>> b = S @ np.array([0.2, 0.3, 0.5]) * rng.lognormal(0, 0.05, 100)
    >>> b[:5] *= 50.0  # five grossly wrong genes
    >>> A = np.ascontiguousarray(np.column_stack([np.ones(100), S]))
    >>> X = np.empty((1, 4)); T = np.zeros((1, 100), bool); k = np.empty(1)
    >>> z = lambda t: np.zeros(1, t)
    >>> fardeep_batch(A, b[None, :].copy(), 1.0 + 0.1 * np.arange(91), 0.1, 1.5, 3, True,
    ...               X, T, k, z(np.int64), z(np.int64), z(np.int8), 100, 1e-11)
    >>> int(T[0, :5].sum()), int(T[0].sum())  # one fewer than exceed k medians, as the package
    (4, 4)
    >>> (X[0, 1:] / X[0, 1:].sum()).round(2).tolist()  # the fifth outlier is in the intercept
    [0.21, 0.31, 0.48]
    """
    n, ka = A.shape
    G = ks.shape[0]
    scratch = (
        np.empty((n, ka)), np.empty(n), np.empty(n), np.empty(n, dtype=np.int64), np.empty(n),
        np.empty(n), np.empty(n, dtype=np.int64), np.empty(n), np.empty(G),
        np.empty(G, dtype=np.int64), np.empty(G, dtype=np.bool_), np.empty(G, dtype=np.int64),
        np.empty(G, dtype=np.int64), np.empty(G), new_workspace(ka),
    )
    criterion = np.empty(G)
    k_mod = np.empty(G)
    one_k = np.empty(1)
    one_c = np.empty(1)
    one_mod = np.empty(1)
    for s in range(BT.shape[0]):
        b = BT[s]
        alts_grid(A, b, ks, alpha1, alpha2, p, lognorm, criterion, k_mod, scratch, X[s], T[s],
                  max_iter, tol)
        best = 0
        for gi in range(1, G):  # the first minimum, as R's which.min (NaN never wins)
            if criterion[gi] < criterion[best] or (
                    criterion[best] != criterion[best] and criterion[gi] == criterion[gi]):
                best = gi
        one_k[0] = k_mod[best]
        k_used[s] = k_mod[best]
        rd, it, st = alts_grid(A, b, one_k, alpha1, alpha2, p, lognorm, one_c, one_mod, scratch,
                               X[s], T[s], max_iter, tol)
        rounds[s] = rd
        n_iter[s] = it
        status[s] = st
