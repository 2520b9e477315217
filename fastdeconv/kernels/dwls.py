"""Dampened weighted least squares (DWLS), one sample at a time.

DWLS (Tsoucas et al. 2019) fits a bulk sample ``b`` as ``S x`` with ``x >= 0``
where every gene is weighted by the inverse square of its fitted value,
``w_g = 1 / (S x)_g^2`` -- so that rare cell types, whose markers have small
values, are not drowned by the squared errors of highly expressed genes.  To
keep the lowest genes from taking over, the weights, scaled so that the
smallest is 1, are capped at ``2^(j-1)``; the exponent ``j`` (the "dampening
constant") is chosen per sample by cross-validation over random halves of the
genes.  The solution is then refined by a damped fixed-point iteration:

1. ``x0``: the non-negative least-squares solution;
2. ``j``: for every ``j = 1 .. ceil(log2(max finite w / min w))``, refit the
   unconstrained weighted least squares on the same ``R`` random gene subsets,
   rescale each solution to the sum of ``x0``, and keep the ``j`` whose
   coefficients vary least over the subsets (mean variance);
3. repeat: weights from the current ``x``, capped; ``x_new`` the weighted
   NNLS solution; ``x <- (x_new + 4 x) / 5``; stop when the step's L1 norm is
   at most ``tol`` times the sum of ``x``, or after ``max_rounds``.

Both the cross-validation and the iteration work on the Gram form.  With
``O_g`` the packed outer product ``s_g s_g'`` of gene ``g``'s signature row,
a weighted Gram matrix is ``sum_g w_g O_g``: one BLAS product per round, and
for the cross-validation, whose capped weights ``min(w_g, 2^(j-1))`` split the
genes into an uncapped part (weights ``w_g``) and a capped part (weight the
cap), the subsets' Gram matrices for every ``j`` are running sums over genes
ordered by the ``j`` at which they leave the cap: each gene enters each sum
once, so all ``J`` values of ``j`` cost one pass over the genes per subset (a
matrix product of the subsets' membership by the genes' outer products), not
``J`` passes.  The capped part is summed from the top (descending ``j``), so no
sum is ever a difference of large ones.

References
----------
D. Tsoucas, R. Dong, H. Chen, Q. Zhu, G. Guo, G.-C. Yuan, "Accurate estimation
of cell-type composition from gene expression data", *Nat. Commun.* 10 (2019)
2975. doi:10.1038/s41467-019-10802-z
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


@jit_helper
def _scaled_weights(S, x, cap, y, w):
    """DWLS weights of the fit ``S x``: ``(max y / y_g)^2`` (min 1), capped at ``cap``.

    ``cap`` may be inf (no cap: a gene fitted by 0 then gets inf).  Returns
    False when ``S x`` is zero on every gene (no weights exist).
    """
    n = S.shape[0]
    y[:] = np.dot(S, x)
    ymax = 0.0
    for g in range(n):
        if y[g] > ymax:
            ymax = y[g]
    if not ymax > 0.0:
        return False
    for g in range(n):
        if y[g] > 0.0:
            r = ymax / y[g]
            v = r * r
            w[g] = v if v < cap else cap
        else:
            w[g] = cap
    return True


@jit_helper
def _unpack(G, k, Q):
    """The symmetric ``k x k`` matrix of the packed upper triangle ``G`` (row-major)."""
    p = 0
    for a in range(k):
        for e in range(a, k):
            Q[a, e] = G[p]
            Q[e, a] = G[p]
            p += 1


@jit_helper
def _solve_packed(P, k, start, diag, X):
    """Solve ``R`` systems ``G_r x_r = h_r`` at once, in place; False if one is singular.

    ``P[:, r]`` holds system ``r``: the packed upper triangle of ``G_r``
    (row-major; ``start[j]`` is where row ``j`` begins) followed by ``h_r``.
    A right-looking Cholesky ``G = U'U`` then the two triangular solves, every
    operation applied to the ``R`` systems along the contiguous last axis, so
    it vectorises without reassociating any sum.  A system is singular when a
    pivot falls to ``1e-14`` of its diagonal entry (numerically rank-deficient,
    the test of :func:`fastdeconv.kernels.mixture._cholesky`).  ``X`` (k, R)
    receives the solutions.
    """
    R = P.shape[1]
    h = start[k]
    for j in range(k):
        for r in range(R):
            diag[j, r] = P[start[j], r]
    for j in range(k):
        sj = start[j]
        for r in range(R):
            v = P[sj, r]
            if not v > 1e-14 * abs(diag[j, r]) or not v > 0.0:
                return False
            diag[j, r] = 1.0 / np.sqrt(v)  # the diagonal entry is no longer needed
        for e in range(k - j):
            for r in range(R):
                P[sj + e, r] *= diag[j, r]
        for i in range(j + 1, k):
            si = start[i]
            ui = sj + i - j
            for e in range(k - i):
                for r in range(R):
                    P[si + e, r] -= P[ui, r] * P[ui + e, r]
    for j in range(k):  # U'z = h
        sj = start[j]
        for r in range(R):
            P[h + j, r] *= diag[j, r]
        for e in range(1, k - j):
            for r in range(R):
                P[h + j + e, r] -= P[h + j, r] * P[sj + e, r]
    for j in range(k - 1, -1, -1):  # U x = z
        sj = start[j]
        for r in range(R):
            X[j, r] = P[h + j, r]
        for e in range(1, k - j):
            for r in range(R):
                X[j, r] -= P[sj + e, r] * X[j + e, r]
        for r in range(R):
            X[j, r] *= diag[j, r]
    return True


@jit_helper
def choose_dampening(S, O, b, x0, MT, cap_limit, y, w, level, order, Z1, Z0, MTg):
    """The dampening exponent ``j`` of one sample by cross-validation (see the module).

    Parameters
    ----------
    S : ndarray, shape (n, k)
        Signature.
    O : ndarray, shape (n, k (k + 1) / 2)
        Packed outer products of the signature's rows.
    b : ndarray, shape (n,)
        The sample.
    x0 : ndarray, shape (k,)
        Its NNLS solution (not zero).
    MT : ndarray, shape (n, R)
        1 where gene ``g`` is in subset ``r``, else 0 (R >= 2).
    cap_limit : int
        Largest exponent tried (guards against a runaway weight range).
    y, w, level, order, Z1, Z0, MTg
        Scratch (see :func:`dwls_batch`).

    Returns
    -------
    int
        ``j >= 1``: the weights are capped at ``2^(j-1)``.  When no ``j`` can be
        scored (every subset fit rank-deficient) it is one more than the last
        one tried: every finite weight uncapped.
    """
    n, k = S.shape
    k2 = O.shape[1]
    K = k2 + k
    R = MT.shape[1]
    _scaled_weights(S, x0, np.inf, y, w)
    wmax = 1.0
    for g in range(n):
        if w[g] < np.inf and w[g] > wmax:
            wmax = w[g]
    J = 0
    while J < cap_limit and 2.0 ** J < wmax:
        J += 1
    if J < 1:
        return 1  # equal weights: every cap gives the same fit, and ties keep the first
    caps = np.empty(J + 1)  # caps[j] = 2^(j-1), j = 1..J
    for j in range(1, J + 1):
        caps[j] = 2.0 ** (j - 1)
    # level[g]: the first j whose cap 2^(j-1) the weight does not exceed (J + 1: capped throughout)
    counts = np.zeros(J + 2, dtype=np.int64)
    for g in range(n):
        lev = 1
        while lev <= J and caps[lev] < w[g]:
            lev += 1
        level[g] = lev
        counts[lev] += 1
    start = np.zeros(J + 3, dtype=np.int64)
    for lev in range(1, J + 2):
        start[lev + 1] = start[lev] + counts[lev]
    fill = start.copy()
    for g in range(n):
        order[fill[level[g]]] = g
        fill[level[g]] += 1
    for i in range(n):
        g = order[i]
        wg = w[g] if w[g] < np.inf else 0.0  # an inf weight is capped at every j: Z1 unused
        for p in range(k2):
            Z0[i, p] = O[g, p]
            Z1[i, p] = wg * O[g, p]
        for a in range(k):
            v = S[g, a] * b[g]
            Z0[i, k2 + a] = v
            Z1[i, k2 + a] = wg * v
        for r in range(R):
            MTg[i, r] = MT[g, r]
    # Gram entries (and right-hand sides) x subsets: the capped sums C_j over the genes
    # of level > j, from the top (C[j - 1] for j = 1..J), and the uncapped sums F_j
    C = np.empty((J, K, R))  # every C[j - 1] is written below
    acc = np.zeros((K, R))
    for j in range(J, 0, -1):
        i0 = start[j + 1]
        i1 = start[j + 2]
        if i1 > i0:
            acc += np.dot(Z0[i0:i1].T, MTg[i0:i1])
        C[j - 1] = acc
    total = 0.0
    for a in range(k):
        total += x0[a]
    start_row = np.empty(k + 1, dtype=np.int64)  # rows of the packed triangle, then h
    start_row[0] = 0
    for a in range(k):
        start_row[a + 1] = start_row[a] + k - a
    diag = np.empty((k, R))
    coef = np.empty((k, R))
    P = np.empty((K, R))
    F = np.zeros((K, R))
    best = -1
    best_score = np.inf
    for j in range(1, J + 1):
        i0 = start[j]
        i1 = start[j + 1]
        if i1 > i0:
            F += np.dot(Z1[i0:i1].T, MTg[i0:i1])
        cap = caps[j]
        for p in range(K):
            for r in range(R):
                P[p, r] = F[p, r] + cap * C[j - 1, p, r]
        if not _solve_packed(P, k, start_row, diag, coef):
            continue  # a rank-deficient subset: no score (the package's NA)
        # every subset's solution rescaled to the sum of x0; the mean variance over subsets
        for r in range(R):
            s = 0.0
            for a in range(k):
                s += coef[a, r]
            for a in range(k):
                coef[a, r] = coef[a, r] * total / s
        score = 0.0
        for a in range(k):
            mean = 0.0
            for r in range(R):
                mean += coef[a, r]
            mean /= R
            var = 0.0
            for r in range(R):
                d = coef[a, r] - mean
                var += d * d
            score += var / (R - 1)
        score /= k
        if score < best_score:  # a NaN score is never chosen; ties keep the first
            best_score = score
            best = j
    if best < 0:
        return J + 1
    return best


@jit
def dwls_batch(S, O, Q0, BT, MT, max_rounds, tol, X, W, rounds, n_iter, status, exponent,
               max_iter, nnls_tol):
    """DWLS of every row of ``BT`` (one sample per row), serially.

    Parameters
    ----------
    S : ndarray, shape (n, k)
        Signature, C-contiguous float64.
    O : ndarray, shape (n, k (k + 1) / 2)
        Packed outer products ``S[g, a] S[g, e]`` (``a <= e``, row-major), C-contiguous.
    Q0 : ndarray, shape (k, k)
        ``S'S``.
    BT : ndarray, shape (m, n)
        Samples as rows, C-contiguous.
    MT : ndarray, shape (n, R)
        Gene-subset membership of the cross-validation (1 in, 0 out), the same
        for every sample; ``R = 0`` skips the cross-validation and uses the
        exponent given in ``exponent[0]`` for every sample.
    max_rounds : int
        Cap on damped rounds.
    tol : float
        Stop when the L1 norm of a damped step is at most ``tol`` times the
        sum of the solution.
    X : ndarray, shape (m, k)
        Output solutions (not normalised).
    W : ndarray, shape (m, n) or (1, n)
        Output: the weights of each sample's last solve (min 1); one row is
        scratch shared by all samples (not kept).
    rounds, n_iter : ndarray of int64, shape (m,)
        Output damped rounds, and active-set changes of the last solve.
    status : ndarray of int8, shape (m,)
        Output: 0 converged, 1 a cap was reached, 2 non-finite numbers.
    exponent : ndarray of int64, shape (m,)
        Output: the dampening exponent ``j`` (weights capped at ``2^(j-1)``);
        0 for a sample whose NNLS solution is zero (nothing to weight).  With
        ``R = 0`` its first entry is read as the exponent to use.
    max_iter : int
        Cap on active-set changes per solve.
    nnls_tol : float
        Relative dual tolerance of each solve.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.kernels.dwls import dwls_batch
    >>> rng = np.random.default_rng(0)
    >>> S = rng.lognormal(size=(60, 3))
    >>> O = np.ascontiguousarray(S[:, [0, 0, 0, 1, 1, 2]] * S[:, [0, 1, 2, 1, 2, 2]])
    >>> BT = np.ascontiguousarray((S @ np.array([[0.2, 0.3, 0.5]]).T).T)
    >>> MT = (rng.random((60, 20)) < 0.5).astype(float)
    >>> X = np.empty((1, 3)); W = np.empty((1, 60)); it = np.zeros(1, np.int64)
    >>> rd = np.zeros(1, np.int64); st = np.zeros(1, np.int8); j = np.zeros(1, np.int64)
    >>> dwls_batch(S, O, S.T @ S, BT, MT, 1000, 0.01, X, W, rd, it, st, j, 100, 1e-11)
    >>> (X[0] / X[0].sum()).round(6).tolist(), st.tolist()
    ([0.2, 0.3, 0.5], [0])
    """
    n, k = S.shape
    k2 = O.shape[1]
    R = MT.shape[1]
    keep = W.shape[0] == BT.shape[0]
    fixed = exponent[0]
    simplex = k < 0  # False, as a run-time value: the engine's cached compilation is reused
    ws = new_workspace(k)
    init0 = initial_factor(Q0)
    c = np.empty(k)
    x = np.empty(k)
    x_new = np.empty(k)
    y = np.empty(n)
    wcv = np.empty(n)
    level = np.empty(n, dtype=np.int64)
    order = np.empty(n, dtype=np.int64)
    Z1 = np.empty((n, k2 + k))
    Z0 = np.empty((n, k2 + k))
    MTg = np.empty((n, max(R, 1)))
    Q = np.empty((k, k))
    wb = np.empty(n)
    for s in range(BT.shape[0]):
        b = BT[s]
        w = W[s] if keep else W[0]
        c[:] = np.dot(b, S)
        it, st = active_set(Q0, c, x, simplex, max_iter, nnls_tol, init0, ws)
        n_iter[s] = it
        rounds[s] = 0
        exponent[s] = 0
        if st != CONVERGED:
            status[s] = st
            X[s] = x
            w[:] = 1.0
            continue
        if not _scaled_weights(S, x, np.inf, y, w):
            status[s] = CONVERGED  # zero solution: nothing explains the sample
            X[s] = x
            w[:] = 1.0
            continue
        if R > 0:
            j = choose_dampening(S, O, b, x, MT, 60, y, wcv, level, order, Z1, Z0, MTg)
        else:
            j = fixed
        exponent[s] = j
        cap = 2.0 ** (j - 1)
        st_all = MAX_ITER
        n_round = 0
        while n_round < max_rounds:
            if not _scaled_weights(S, x, cap, y, w):
                st_all = CONVERGED
                break
            G = np.dot(w, O)
            _unpack(G, k, Q)
            for g in range(n):
                wb[g] = w[g] * b[g]
            c[:] = np.dot(wb, S)
            it, st = active_set(Q, c, x_new, simplex, max_iter, nnls_tol, initial_factor(Q), ws)
            n_iter[s] = it
            n_round += 1
            if st != CONVERGED:
                st_all = st
                break
            change = 0.0
            total = 0.0
            for a in range(k):
                v = (x_new[a] + 4.0 * x[a]) / 5.0
                change += abs(v - x[a])
                x[a] = v
                total += v
            if change <= tol * total:
                st_all = CONVERGED
                break
        rounds[s] = n_round
        status[s] = st_all
        X[s] = x
