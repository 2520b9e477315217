"""Bootstrap over genes on the Gram form: every replicate re-weights a k x k problem.

A bootstrap replicate draws the genes with replacement; gene ``g`` enters
``c_g`` times (``c ~ Multinomial(n, 1/n)``).  For a least-squares fit with
gene weights ``w`` the replicate's problem is the original one with weights
``c w``, so only its Gram form changes::

    Q_r = S' diag(c w) S,        h_r = S' diag(c w) b.

A replicate is stored sparsely (compressed rows): the genes drawn at least
once (``genes[ptr[r]:ptr[r + 1]]``) and their multiplicities (``mult``),
about ``(1 - 1/e) n`` genes per replicate; its Gram matrix ``Q_r`` is given.
The augmentation of the simplex problem and the initial Cholesky factor of
every replicate are formed once per block of samples, so a (sample,
replicate) of least squares costs ``h_r`` (``O(n k)``) and one exact
active-set solve (:mod:`fastdeconv.kernels._active_set`: NNLS, or the simplex
problem, with a slack variable for ``sum(x) <= 1``).  A sample may multiply
the weights by factors of its own ``u``: its Gram matrix is then
``Q_r - sum_g c_g w_g (1 - u_g) s_g s_g'``, touching only the genes whose
factor is not 1 (formed directly when they are most of the genes).

Huber's loss (:func:`fastdeconv.kernels.robust.huber_batch`: the residual
scale is the normalised median absolute deviation, re-estimated until it
matches the fit) is minimised on every replicate, with the scale of the
replicate's own residuals: holding the full fit's Huber weights instead
ignores how the weights follow the noise, and understates the variance
(measured: nominal 90% intervals covered 70-80%).  Re-weighting, as the
method does, takes tens of rounds; here the fit at one scale takes Newton
steps on the piecewise-quadratic loss (the genes within the cut keep their
squares, the others enter through their clipped residuals: Madsen and
Nielsen 1990), each an exact active-set solve on a Gram matrix updated only
for the genes that cross the cut, and the scale solves its one-dimensional
fixed-point equation by fixed-point and regula falsi steps.  Both stop at
the point the method's re-weighting converges to.  A replicate where they
reach their cap (about 1 in 5000, measured) is fitted by the method's own
re-weighting rounds instead.

Each sample's answers depend only on its own column and the replicates (the
loops have a fixed order per sample), never on which other samples share a
block or on the number of threads.

References
----------
B. Efron and R. J. Tibshirani, *An Introduction to the Bootstrap*, Chapman &
Hall, 1993 (resampling pairs, chapter 9). doi:10.1201/9780429246593
K. Madsen and H. B. Nielsen, "Finite algorithms for robust linear regression",
*BIT* 30 (1990) 682-699. doi:10.1007/BF01933216
"""

from __future__ import annotations

import numpy as np

from fastdeconv._jit import jit, jit_helper
from fastdeconv.kernels._active_set import (
    CONVERGED,
    MAX_ITER,
    NOT_FINITE,
    active_set,
    initial_factor,
    new_workspace,
)
from fastdeconv.kernels.robust import MAD_TO_SD, _median
from fastdeconv.kernels.simplex import augment_gram

#: Newton steps at one scale before the scale moves on (at a scale far from its fixed
#: point too few genes may be within the cut for the steps to be fast)
_INNER_STEPS = 8


@jit_helper
def _add_rank_one(Q, S, g, scale):
    """``Q[a, e] += scale * S[g, a] * S[g, e]`` on the upper triangle ``e >= a``."""
    k = Q.shape[0]
    for a in range(k):
        sa = scale * S[g, a]
        if sa == 0.0:
            continue
        for e in range(a, k):
            Q[a, e] += sa * S[g, e]


@jit_helper
def _copy(dst, src):
    """``dst[:] = src`` for 1-D or 2-D arrays, written out (a slice assignment compiles
    NumPy's broadcasting machinery and its error messages: seconds of first compilation)."""
    flat_dst = dst.reshape(-1)
    flat_src = src.reshape(-1)
    for i in range(flat_dst.shape[0]):
        flat_dst[i] = flat_src[i]


@jit_helper
def _fill(dst, value):
    """``dst[:] = value``, written out (see :func:`_copy`)."""
    flat = dst.reshape(-1)
    for i in range(flat.shape[0]):
        flat[i] = value


@jit_helper
def _prepared(Q, simplex, slack):
    """``(Qr, rho, init)``: the matrix the engine solves with (``Q`` upper triangle in,
    mirrored here; augmented for the simplex problem), its weight and initial factor."""
    k = Q.shape[0]
    for a in range(k):
        for e in range(a + 1, k):
            Q[e, a] = Q[a, e]
    if simplex:
        Qr, rho = augment_gram(Q, slack)
    else:
        Qr, rho = Q, 0.0
    return Qr, rho, initial_factor(Qr)


@jit_helper
def _solve(Qr, rho, init, lin, cut, vO, simplex, max_iter, tol, x, c, ws):
    """Minimise ``1/2 x'Qx - x'(lin + cut vO)`` exactly into ``x`` (the one engine call)."""
    k = lin.shape[0]
    for a in range(x.shape[0]):
        c[a] = (lin[a] + cut * vO[a] if a < k else 0.0) + rho
    return active_set(Qr, c, x, simplex, max_iter, tol, init, ws)


@jit_helper
def _weighted(S, b, w, u, t0, t1, genes, mult, Q, simplex, slack, max_iter, tol, x, h, zero, Qs,
              c, ws, shared):
    """Least squares on the drawn genes with weights ``c w u``; ``shared = (Qa, rho, L0, P0,
    p0)`` of the replicate's own Gram form ``Q`` serves when every factor is 1."""
    k = S.shape[1]
    for a in range(k):
        h[a] = 0.0
    n_other = 0
    for t in range(t0, t1):
        g = genes[t]
        cb = mult[t] * w[g] * u[t - t0] * b[g]
        if cb != 0.0:
            for a in range(k):
                h[a] += cb * S[g, a]
        if u[t - t0] != 1.0 and w[g] != 0.0:
            n_other += 1
    if n_other == 0:
        Qa, rho, L0, P0, p0 = shared
        return _solve(Qa, rho, (L0, P0, p0), h, 0.0, zero, simplex, max_iter, tol, x, c, ws)
    if 2 * n_other > t1 - t0:  # most genes re-weighted: form the matrix directly
        _fill(Qs, 0.0)
        for t in range(t0, t1):
            cu = mult[t] * w[genes[t]] * u[t - t0]
            if cu != 0.0:
                _add_rank_one(Qs, S, genes[t], cu)
    else:
        _copy(Qs, Q)
        for t in range(t0, t1):
            g = genes[t]
            if u[t - t0] != 1.0 and w[g] != 0.0:
                _add_rank_one(Qs, S, g, mult[t] * w[g] * (u[t - t0] - 1.0))
    Qr, rho, init = _prepared(Qs, simplex, slack)
    return _solve(Qr, rho, init, h, 0.0, zero, simplex, max_iter, tol, x, c, ws)


@jit_helper
def _residuals(S, b, sw, x, t0, t1, genes, mult, e, pool):
    """Scaled residuals ``sqrt(w) (b - S x)`` of the drawn genes into ``e``, and the scale's
    sample (``|e|`` of the ``n`` resampled genes: each drawn gene ``mult`` times) into
    ``pool``; returns ``max |sqrt(w) b|``."""
    k = S.shape[1]
    p = 0
    bmax = 0.0
    for t in range(t0, t1):
        g = genes[t]
        fit = 0.0
        for a in range(k):
            fit += S[g, a] * x[a]
        e[t - t0] = (b[g] - fit) * sw[g]
        bmax = max(bmax, abs(b[g]) * sw[g])
        for _ in range(int(mult[t])):
            pool[p] = abs(e[t - t0])
            p += 1
    return bmax


@jit_helper
def _huber_loss(e, t0, t1, mult, cut):
    """Huber's loss of the drawn genes' scaled residuals, each counted ``mult`` times."""
    total = 0.0
    for t in range(t0, t1):
        a = abs(e[t - t0])
        total += mult[t] * (0.5 * a * a if a <= cut else cut * a - 0.5 * cut * cut)
    return total


@jit_helper
def _split(S, b, w, sw, e, t0, t1, genes, mult, cut, side, Qc, hI, vO):
    """Put every drawn gene on its side of the cut (0 within, -1/+1 below/above the fit),
    updating the Newton step's Gram matrix ``Qc`` (upper triangle), the squares' linear
    term ``hI`` and the clipped residuals' ``vO``; returns how many genes moved."""
    k = S.shape[1]
    moved = 0
    for t in range(t0, t1):
        et = e[t - t0]
        new = 0.0 if abs(et) <= cut else (1.0 if et > 0.0 else -1.0)
        old = side[t - t0]
        if new == old:
            continue
        side[t - t0] = new
        g = genes[t]
        if w[g] == 0.0:
            continue
        moved += 1
        cw = mult[t] * w[g]
        if old == 0.0 or new == 0.0:  # into or out of the squares
            sign = -1.0 if old == 0.0 else 1.0
            _add_rank_one(Qc, S, g, sign * cw)
            for a in range(k):
                hI[a] += sign * cw * b[g] * S[g, a]
        f = mult[t] * sw[g] * (new - old)
        for a in range(k):
            vO[a] += f * S[g, a]
    return moved


@jit_helper
def _huber_at_cut(S, b, w, sw, t0, t1, genes, mult, simplex, slack, cut, rtol, max_iter, tol, x,
                  scr, ws):
    """Minimise Huber's loss at a fixed cut from ``x`` by Newton steps; returns
    (n_iter, status, steps) with status 1 after :data:`_INNER_STEPS` steps.

    A Newton step minimises the quadratic of the current split exactly; when no gene
    crosses the cut on a full step, that is the minimum of Huber's loss.  A step that
    does not lower the loss, even shortened to an eighth (few genes within the cut make
    it long and poor), is replaced by the re-weighted step (weights ``min(1, cut/|e|)``),
    which always lowers it.
    """
    e, e_old, pool, side, Qc, hI, vO, Qw, hw, zero, c, x_old, x_new = scr
    k = S.shape[1]
    ka = x.shape[0]
    it = 0
    st = CONVERGED
    _split(S, b, w, sw, e, t0, t1, genes, mult, cut, side, Qc, hI, vO)
    steps = 0
    newton = True
    loss = 0.0
    while steps < _INNER_STEPS:
        if newton:  # a new step from x
            loss = _huber_loss(e, t0, t1, mult, cut)
            for a in range(ka):
                x_old[a] = x[a]
            for t in range(t0, t1):
                e_old[t - t0] = e[t - t0]
        for a in range(k):
            hw[a] = hI[a]
            for a2 in range(a, k):
                Qw[a, a2] = Qc[a, a2]
        if not newton:  # the re-weighted step: the clipped genes with weights cut / |e|
            for t in range(t0, t1):
                g = genes[t]
                if side[t - t0] != 0.0 and w[g] != 0.0:
                    f = mult[t] * w[g] * cut / abs(e_old[t - t0])
                    _add_rank_one(Qw, S, g, f)
                    for a in range(k):
                        hw[a] += f * b[g] * S[g, a]
        Qr, rho, init = _prepared(Qw, simplex, slack)
        it, st = _solve(Qr, rho, init, hw, cut if newton else 0.0, vO, simplex, max_iter, tol,
                        x_new, c, ws)
        steps += 1
        if st != CONVERGED:
            return it, st, steps
        step = 1.0
        while True:  # shorten a Newton step (at most 3 times) until the loss decreases
            for a in range(ka):
                x[a] = x_old[a] + step * (x_new[a] - x_old[a])
            _residuals(S, b, sw, x, t0, t1, genes, mult, e, pool)
            lower = _huber_loss(e, t0, t1, mult, cut) <= loss * (1.0 + 1e-12)
            if lower or not newton or step < 0.2:
                break
            step *= 0.5
        if newton and not lower:  # no decrease: the re-weighted step from x_old instead
            newton = False
            continue
        moved = _split(S, b, w, sw, e, t0, t1, genes, mult, cut, side, Qc, hI, vO)
        if newton and step == 1.0 and moved == 0:
            return it, st, steps  # the quadratic's minimum is the loss's
        change = 0.0  # of the full step: a shortened one is no sign of convergence
        size = 0.0
        for a in range(ka):
            change = max(change, abs(x_new[a] - x_old[a]))
            size = max(size, abs(x[a]))
        newton = True
        if change <= rtol * size:
            return it, st, steps
    return it, MAX_ITER, steps


@jit_helper
def _huber(S, b, w, sw, t0, t1, genes, mult, Q, simplex, slack, c_huber, max_rounds, rtol,
           max_iter, tol, x, scr, scratch, ws):
    """Huber's loss with the MAD scale on one replicate, from ``x``; returns
    (n_iter, status, Newton steps).

    The scale ``s`` must equal the MAD of the residuals of the fit at cut
    ``c_huber s`` (where the method's re-weighting converges): a
    one-dimensional equation ``phi(s) = s``, positive below the root and
    negative above, solved by fixed-point (and secant) steps until they
    bracket the root, then by regula falsi (Illinois); every ``phi`` is a fit
    at that cut (:func:`_huber_at_cut`) from the last.
    """
    e, e_old, pool, side, Qc, hI, vO, Qw, hw, zero, c, x_old, x_new = scr
    k = S.shape[1]
    for a in range(k):  # every gene within the cut to begin with: the replicate's Gram form
        hI[a] = 0.0
        vO[a] = 0.0
        for a2 in range(a, k):
            Qc[a, a2] = Q[a, a2]
    p = 0
    for t in range(t0, t1):
        side[t - t0] = 0.0
        p += int(mult[t])
        cwb = mult[t] * w[genes[t]] * b[genes[t]]
        if cwb != 0.0:
            for a in range(k):
                hI[a] += cwb * S[genes[t], a]
    bmax = _residuals(S, b, sw, x, t0, t1, genes, mult, e, pool)
    s = MAD_TO_SD * _median(pool[:p], scratch[:p])
    if not s > 1e-12 * bmax:
        return 0, CONVERGED, 0  # (nearly) exact fit on most genes: nothing to re-weight
    steps = 0
    s_lo = s_hi = g_lo = g_hi = s_prev = g_prev = 0.0
    bracket = False
    last_low = False
    while steps < max_rounds:
        it, st, n = _huber_at_cut(S, b, w, sw, t0, t1, genes, mult, simplex, slack, c_huber * s,
                                  rtol, max_iter, tol, x, scr, ws)
        steps += n
        phi = MAD_TO_SD * _median(pool[:p], scratch[:p])
        if not phi > 1e-12 * bmax:
            return it, st, steps  # (nearly) exact fit on most genes: nothing to re-weight
        g = phi - s
        if st == MAX_ITER and n == _INNER_STEPS:
            s = s + g  # far from this scale's minimum: move the scale, bracket unchanged
            continue
        if st != CONVERGED or abs(g) <= rtol * s:
            return it, st, steps
        low = g > 0.0
        if low:
            s_lo, g_lo = s, g
        else:
            s_hi, g_hi = s, g
        if not bracket:
            if s_lo > 0.0 and s_hi > 0.0:
                bracket = True
            else:
                # a secant step through the last two scales when it goes the way g
                # points, by at most 4 g, else a fixed-point step s = phi(s) (> 0)
                s_next = s + g
                if s_prev > 0.0 and g != g_prev:
                    secant = s - g * (s - s_prev) / (g - g_prev)
                    if (secant - s) * g > 0.0 and abs(secant - s) <= 4.0 * abs(g) and secant > 0.0:
                        s_next = secant
                s_prev, g_prev = s, g
                s = s_next
                continue
        elif low == last_low:  # Illinois: the other end was kept twice, halve its value
            if low:
                g_hi *= 0.5
            else:
                g_lo *= 0.5
        last_low = low
        if abs(s_hi - s_lo) <= rtol * s:
            return it, st, steps
        s = s_lo + g_lo * (s_hi - s_lo) / (g_lo - g_hi)
    return 0, MAX_ITER, steps


@jit_helper
def _irls(S, b, w, sw, u, t0, t1, genes, mult, Q, simplex, slack, c_huber, max_rounds, rtol,
          max_iter, tol, x, h, zero, Qs, c, ws, shared, scr, scratch):
    """Huber's loss on one replicate by the method's own re-weighting rounds, from ``x``
    (the fallback when the Newton steps reach their cap); returns (n_iter, status, rounds)."""
    e, e_old, pool, side, Qc, hI, vO, Qw, hw, zero2, c2, x_old, x_new = scr
    ka = x.shape[0]
    p = 0
    for t in range(t0, t1):
        p += int(mult[t])
    it = 0
    for n_round in range(1, max_rounds + 1):
        bmax = _residuals(S, b, sw, x, t0, t1, genes, mult, e, pool)
        scale = MAD_TO_SD * _median(pool[:p], scratch[:p])
        if not scale > 1e-12 * bmax:
            return it, CONVERGED, n_round
        cut = c_huber * scale
        for t in range(t0, t1):
            a = abs(e[t - t0])
            u[t - t0] = 1.0 if a <= cut else cut / a
        for a in range(ka):
            x_old[a] = x[a]
        it, st = _weighted(S, b, w, u, t0, t1, genes, mult, Q, simplex, slack, max_iter, tol, x,
                           h, zero, Qs, c, ws, shared)
        if st != CONVERGED:
            return it, st, n_round
        change = 0.0
        size = 0.0
        for a in range(ka):
            change = max(change, abs(x[a] - x_old[a]))
            size = max(size, abs(x[a]))
        if change <= rtol * size:
            return it, CONVERGED, n_round
    return it, MAX_ITER, max_rounds


@jit
def bootstrap_block(S, BT, w, U, ptr, genes, mult, Q, simplex, slack, c_huber, max_rounds, rtol,
                    max_iter, tol, X, n_iter, rounds, status):
    """Solve every replicate of every sample of a block (one sample per row of ``BT``), serially.

    With ``c_huber > 0`` each replicate minimises Huber's loss with the MAD
    scale of its own residuals, as :func:`fastdeconv.kernels.robust.huber_batch`
    does.  Replicate 0 must be the data themselves (every multiplicity 1):
    its fit starts from the weighted fit with the factors ``U`` (ones, or the
    fit's Huber weights: a warm start), and its solution is where every
    other replicate starts.

    Parameters
    ----------
    S : ndarray, shape (n, k)
        Signature, float64, C-contiguous.
    BT : ndarray, shape (mc, n)
        The block's samples as rows.
    w : ndarray, shape (n,)
        The fixed gene weights.
    U : ndarray, shape (mc, n) or (1, n)
        Each sample's factors on the weights (one row: shared by all
        samples); with ``c_huber > 0`` only the start of replicate 0.  A
        sample whose row has a non-finite value is skipped (NaN output).
    ptr : ndarray of int64, shape (R + 1,)
        Replicate ``r`` holds the entries ``ptr[r]:ptr[r + 1]`` of ``genes``/``mult``.
    genes : ndarray of int64
        The genes drawn (each once per replicate).
    mult : ndarray of float64
        How many times each was drawn.
    Q : ndarray, shape (R, k, k)
        ``S' diag(c_r w) S`` of every replicate (symmetric).
    simplex, slack : bool
        The simplex problem (else NNLS); with ``slack`` ``sum(x) <= 1``.
    c_huber : float
        Huber's constant in units of the residual scale; 0: least squares
        with the factors ``U`` held fixed.
    max_rounds : int
        Cap on Huber's Newton steps per replicate.
    rtol : float
        Relative change at which the Huber steps (and the scale) stop.
    max_iter : int
        Cap on active-set changes per solve.
    tol : float
        Relative dual tolerance.
    X : ndarray, shape (mc, R, ka)
        Output: the solutions (``ka = k + 1`` with the slack last when
        ``slack``); NaN for a skipped sample.
    n_iter, rounds : ndarray of int64, shape (mc, R)
        Output: active-set changes of the last solve, Huber's Newton steps.
    status : ndarray of int8, shape (mc, R)
        Output: 0 converged, 1 a cap reached, 2 non-finite numbers (and 2 for
        a skipped sample).

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.kernels.bootstrap import bootstrap_block
    >>> S = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    >>> b = S @ np.array([0.3, 0.7])
    >>> ptr = np.array([0, 2]); genes = np.array([0, 2]); mult = np.array([2.0, 1.0])
    >>> Q = (S[genes].T * mult) @ S[genes]
    >>> X = np.empty((1, 1, 2)); st = np.empty((1, 1), np.int8)
    >>> it = np.empty((1, 1), np.int64); rounds = np.empty((1, 1), np.int64)
    >>> w = np.ones(3)
    >>> bootstrap_block(S, b[None, :], w, w[None, :], ptr, genes, mult, Q[None], False, False,
    ...                 0.0, 0, 1e-5, 60, 1e-11, X, it, rounds, st)
    >>> X.round(10).ravel().tolist(), st.ravel().tolist()
    ([0.3, 0.7], [0])
    """
    mc, n = BT.shape
    k = S.shape[1]
    R = ptr.shape[0] - 1
    ka = X.shape[2]
    # the replicates' own matrices, augmented and factored once for the block
    Qa = np.zeros((R, ka, ka))
    rho = np.zeros(R)
    L0 = np.zeros((R, ka, ka))
    P0 = np.zeros((R, ka), dtype=np.int64)
    p0 = np.zeros(R, dtype=np.int64)
    Qs = np.empty((k, k))
    for r in range(R):
        _copy(Qs, Q[r])
        Qr, rr, init = _prepared(Qs, simplex, slack)
        _copy(Qa[r], Qr)
        rho[r] = rr
        _copy(L0[r], init[0])
        _copy(P0[r], init[1])
        p0[r] = init[2]
    sw = np.empty(n)
    for g in range(n):
        sw[g] = np.sqrt(w[g])
    ws = new_workspace(ka)
    h = np.empty(k)
    zero = np.zeros(k)
    c = np.empty(ka)
    u = np.empty(n)  # factors of the drawn genes (replicate order)
    scratch = np.empty(n)
    scr = (np.empty(n), np.empty(n), np.empty(n), np.empty(n), np.empty((k, k)), np.empty(k),
           np.empty(k), np.empty((k, k)), np.empty(k), zero, c, np.empty(ka), np.empty(ka))
    for s in range(mc):
        b = BT[s]
        us = U[0] if U.shape[0] == 1 else U[s]
        live = False
        finite = True
        for g in range(n):
            if not np.isfinite(us[g]):
                finite = False
            if b[g] * w[g] * us[g] != 0.0:
                live = True
        if not (live and finite):
            for r in range(R):
                _fill(X[s, r], np.nan)
                n_iter[s, r] = 0
                rounds[s, r] = 0
                status[s, r] = NOT_FINITE
            continue
        for r in range(R):
            t0 = ptr[r]
            t1 = ptr[r + 1]
            x = X[s, r]
            it = 0
            st = CONVERGED
            if c_huber > 0.0 and r > 0:
                for a in range(ka):
                    x[a] = X[s, 0, a]
            else:
                for t in range(t0, t1):
                    u[t - t0] = us[genes[t]]
                it, st = _weighted(S, b, w, u, t0, t1, genes, mult, Q[r], simplex, slack,
                                   max_iter, tol, x, h, zero, Qs, c, ws,
                                   (Qa[r], rho[r], L0[r], P0[r], p0[r]))
            n_step = 0
            if c_huber > 0.0 and st == CONVERGED:
                it, st, n_step = _huber(S, b, w, sw, t0, t1, genes, mult, Q[r], simplex, slack,
                                        c_huber, max_rounds, rtol, max_iter, tol, x, scr, scratch,
                                        ws)
                if st == MAX_ITER:  # the method's re-weighting, from the fit of the data
                    for a in range(ka):
                        x[a] = X[s, 0, a]
                    it, st, n_irls = _irls(S, b, w, sw, u, t0, t1, genes, mult, Q[r], simplex,
                                           slack, c_huber, max_rounds, rtol, max_iter, tol, x, h,
                                           zero, Qs, c, ws, (Qa[r], rho[r], L0[r], P0[r], p0[r]),
                                           scr, scratch)
                    n_step += n_irls
            n_iter[s, r] = it
            rounds[s, r] = n_step
            status[s, r] = st
