"""Multinomial mixture fit: the maximum (penalised) likelihood proportions of one bulk sample.

For a sample with counts ``x`` (genes) and reference profiles ``phi``
(genes x states, every column summing to 1) the model is
``x ~ Multinomial(N, phi @ theta)`` with ``theta`` on the simplex and a
Dirichlet(``alpha``) prior.  With ``a = alpha - 1 >= 0`` the kernels maximise

    f(theta) = sum_g x_g log(mu_g) + sum_k a_k log(theta_k),   mu = phi @ theta,

which is concave, by the EM fixed point (InstaPrism's update, the expectation
of BayesPrism's Gibbs sampler):

    theta_k <- (theta_k sum_g x_g phi_gk / mu_g + a_k) / (N + sum(a)),

accelerated by SQUAREM (Varadhan & Roland 2008, scheme S3 with the R
package's adaptive step bound and a monotonicity safeguard): plain EM
crawls when states are nearly collinear.  Near the maximiser, Newton steps
take over: the quadratic model is maximised exactly on the simplex by the
active-set engine, with a backtracking line search.  The model starts from
the expected information of the sample's reads at the even mixture of the
profiles (one ``n k^2`` product per chunk of samples, from the profiles alone,
so no sample's answer depends on the others), is refined by BFGS updates,
and is replaced by the exact Hessian (``n k^2`` per sample) only when a step
shrinks the KKT residual less than twofold.

Stopping rule: the optimality (KKT) conditions on the simplex.  With
``d = grad f(theta)`` and ``lambda = N + sum(a)`` (the Lagrange multiplier
of ``sum(theta) = 1``), a maximiser has ``d_k = lambda`` where ``theta_k > 0``
and ``d_k <= lambda`` where ``theta_k = 0``.  The kernel stops at the first
iterate where, with ``r_k = d_k / lambda - 1``,
``max_k max(theta_k abs(r_k), r_k) <= tol``,
checked at the returned point itself; samples that reach the iteration cap
report status 1.

Genes with ``x_g = 0`` do not enter ``f`` (``sum_g mu_g = 1`` always), so the
kernels skip them: sparse counts cost what their non-zeros cost.

References
----------
Chu T., Wang Z., Pe'er D., Danko C. G. (2022) Cell type and gene expression
deconvolution with BayesPrism enables Bayesian integrative analysis across bulk
and single-cell RNA sequencing in oncology. Nat Cancer 3:505-517.
doi:10.1038/s43018-022-00356-3
Hu M., Chikina M. (2024) InstaPrism: an R package for fast implementation of
BayesPrism. Bioinformatics 40(7):btae440. doi:10.1093/bioinformatics/btae440
Varadhan R., Roland C. (2008) Simple and globally convergent methods for
accelerating the convergence of any EM algorithm. Scand J Stat 35(2):335-353.
doi:10.1111/j.1467-9469.2007.00585.x
"""

from __future__ import annotations

import numpy as np

from fastdeconv._jit import jit, jit_helper
from fastdeconv.kernels._active_set import active_set, initial_factor, new_workspace

#: status codes (as the active-set kernels')
CONVERGED, MAX_ITER, NONFINITE, STALLED = 0, 1, 2, 3

#: SQUAREM runs until the KKT residual is below this, then Newton steps finish
NEWTON_SWITCH = 3e-1
#: most objective evaluations of the SQUAREM phase
SQUAREM_EVALS = 60
#: a quasi-Newton step must shrink the KKT residual at least this much, else the exact
#: Hessian is formed (the first model is the shared expected information, refined by BFGS)
QN_RATE = 0.5

#: SQUAREM's step bounds (the R package's step.min0, step.max0 and mstep)
_STEP_MIN, _STEP_MAX0, _MSTEP = 1.0, 1.0, 4.0


#: floating-point reassociation lets LLVM vectorise the dot products over states (the
#: answer changes by rounding only; the KKT test, not bitwise equality, defines it)
_FAST = {"reassoc", "contract"}


@jit_helper(fastmath=_FAST)
def _evaluate(phi, x, theta, a, grad):
    """``f(theta)`` and its gradient ``grad`` (written), in one pass over ``phi``.

    Returns -inf when a gene with counts has ``mu_g <= 0`` (the likelihood is 0).
    """
    n, k = phi.shape
    for j in range(k):
        grad[j] = 0.0
    ll = 0.0
    for g in range(n):
        xg = x[g]
        if xg > 0.0:
            mu = 0.0
            for j in range(k):
                mu += phi[g, j] * theta[j]
            if not mu > 0.0:
                return -np.inf
            ll += xg * np.log(mu)
            w = xg / mu
            for j in range(k):
                grad[j] += w * phi[g, j]
    for j in range(k):
        if a[j] > 0.0:
            if not theta[j] > 0.0:
                return -np.inf
            ll += a[j] * np.log(theta[j])
            grad[j] += a[j] / theta[j]
    return ll


@jit_helper
def _em_step(theta, grad, lam, out):
    """The EM update from ``theta`` and the gradient there (``grad`` includes ``a / theta``)."""
    k = theta.shape[0]
    total = 0.0
    for j in range(k):
        # theta_j * (sum_g x_g phi_gj / mu_g) + a_j, since grad_j includes a_j / theta_j
        out[j] = theta[j] * grad[j] / lam
        total += out[j]
    for j in range(k):  # remove rounding drift off the simplex
        out[j] /= total


@jit_helper
def _kkt(theta, grad, lam):
    """``max_k max(theta_k |r_k|, r_k)`` with ``r_k = grad_k / lam - 1``."""
    worst = 0.0
    for j in range(theta.shape[0]):
        r = grad[j] / lam - 1.0
        v = theta[j] * abs(r)
        if r > v:
            v = r
        if v > worst:
            worst = v
    return worst


@jit_helper
def _hessian(phi, x, theta, a, H, psi):
    """``H = sum_g x_g phi_g phi_g' / mu_g^2 + diag(a / theta^2)``: minus the Hessian of ``f``.

    Rows of ``phi`` scaled by ``sqrt(x_g) / mu_g`` go to ``psi`` (genes with counts only), and
    one BLAS call forms ``psi' psi``.
    """
    n, k = phi.shape
    p = 0
    for g in range(n):
        xg = x[g]
        if xg > 0.0:
            mu = 0.0
            for j in range(k):
                mu += phi[g, j] * theta[j]
            s = np.sqrt(xg) / mu
            for j in range(k):
                psi[p, j] = s * phi[g, j]
            p += 1
    P = psi[:p]
    H[:, :] = np.dot(P.T, P)
    for j in range(k):
        if a[j] > 0.0:
            H[j, j] += a[j] / (theta[j] * theta[j])


@jit_helper
def _newton_direction(H, theta, grad, y, Qa, c, ws, qp_tol):
    """The maximiser ``y`` on the simplex of the quadratic model of ``f`` at ``theta``.

    ``max_y grad'(y - theta) - (y - theta)' H (y - theta) / 2`` is the simplex-constrained
    least-squares problem ``min y' H y / 2 - (H theta + grad)' y``, solved exactly by the
    active-set engine (with the ``rho 11'`` augmentation of the simplex solver).
    """
    k = theta.shape[0]
    rho = 0.0
    for i in range(k):
        rho += H[i, i]
    rho /= k
    if not rho > 0.0:
        rho = 1.0
    for i in range(k):
        ci = grad[i]
        for j in range(k):
            Qa[i, j] = H[i, j] + rho
            ci += H[i, j] * theta[j]
        c[i] = ci + rho
    init = initial_factor(Qa)
    return active_set(Qa, c, y, True, 5 * k + 50, qp_tol, init, ws)


@jit_helper
def _free_step(H, grad, lam, theta, d, M):
    """Newton step ``d`` on the support of ``theta`` (``sum(d) = 0``); False if singular.

    Maximises ``(grad - lam)' d - d' H d / 2`` over the states with a share:
    ``d = u - (1'u / 1'v) v`` with ``H u = grad - lam`` and ``H v = 1`` on the
    support.  Unlike the model's maximiser ``y`` (whose linear term ``H theta +
    grad`` is of the order of the counts), it is computed from ``grad - lam``,
    which goes to 0 at the answer, so its relative accuracy does not degrade
    there.
    """
    k = theta.shape[0]
    idx = np.empty(k, dtype=np.int64)
    p = 0
    for j in range(k):
        d[j] = 0.0
        if theta[j] > 0.0:
            idx[p] = j
            p += 1
    if p < 2:
        return False
    Hf = M[:p, :p]
    rhs = np.empty((p, 2))
    for i in range(p):
        for j in range(p):
            Hf[i, j] = H[idx[i], idx[j]]
        rhs[i, 0] = grad[idx[i]] - lam
        rhs[i, 1] = 1.0
    L = np.zeros((p, p))
    if not _cholesky(Hf, L):
        return False
    sol = _cholesky_solve(L, rhs)
    su = 0.0
    sv = 0.0
    for i in range(p):
        su += sol[i, 0]
        sv += sol[i, 1]
    if not sv > 0.0:
        return False
    for i in range(p):
        d[idx[i]] = sol[i, 0] - su / sv * sol[i, 1]
    return True


@jit_helper
def _cholesky(A, L):
    """Lower Cholesky factor of ``A`` into ``L``; False when ``A`` is not positive definite."""
    p = A.shape[0]
    for j in range(p):
        v = A[j, j]
        for m in range(j):
            v -= L[j, m] * L[j, m]
        if not v > 1e-14 * abs(A[j, j]) or not v > 0.0:
            return False
        L[j, j] = np.sqrt(v)
        for i in range(j + 1, p):
            w = A[i, j]
            for m in range(j):
                w -= L[i, m] * L[j, m]
            L[i, j] = w / L[j, j]
    return True


@jit_helper
def _cholesky_solve(L, B):
    """Solve ``L L' X = B`` by forward and back substitution."""
    p, q = B.shape
    X = B.copy()
    for c in range(q):
        for i in range(p):
            v = X[i, c]
            for j in range(i):
                v -= L[i, j] * X[j, c]
            X[i, c] = v / L[i, i]
        for i in range(p - 1, -1, -1):
            v = X[i, c]
            for j in range(i + 1, p):
                v -= L[j, i] * X[j, c]
            X[i, c] = v / L[i, i]
    return X


@jit_helper
def em_sample(phi, x, theta, a, tol, max_iter, work, H, Qa, psi, ws, H0):
    """Fit one sample in place: ``theta`` (start in, maximiser out).

    SQUAREM cycles bring ``theta`` near the maximiser (until the KKT residual is below
    :data:`NEWTON_SWITCH`, or for at most :data:`SQUAREM_EVALS` evaluations), then
    Newton steps (the quadratic model maximised exactly on the simplex, with a
    backtracking line search) finish with quadratic convergence; the boundary
    (states with no share) is found exactly by the model's active set.

    Parameters
    ----------
    phi : ndarray, shape (n, k)
        Profiles, columns summing to 1, C-contiguous.
    x : ndarray, shape (n,)
        Counts (any non-negative scale).
    theta : ndarray, shape (k,)
        Starting point (positive, summing to 1); overwritten by the answer.
    a : ndarray, shape (k,)
        ``alpha - 1 >= 0``.
    tol, max_iter : float, int
        KKT tolerance and the cap on objective evaluations.
    work : ndarray, shape (8, k)
        Scratch.
    H, Qa : ndarray, shape (k, k)
        Scratch.
    psi : ndarray, shape (n, k)
        Scratch.
    ws : tuple
        The active-set engine's workspace (:func:`new_workspace`).
    H0 : ndarray, shape (k, k)
        The expected information per read at the samples' mean profile (see
        :func:`expected_information`): ``N H0`` is the first Newton model, which
        BFGS refines; an exact Hessian is formed only when that converges
        slowly.  Zeros: start from an exact Hessian.

    Returns
    -------
    (n_eval, n_newton, status, f) : (int, int, int, float)
        Objective evaluations and Newton steps used, status, objective at the answer.
    """
    k = theta.shape[0]
    n_newton = 0
    N = 0.0
    for g in range(x.shape[0]):
        N += x[g]
    A = 0.0
    for j in range(k):
        A += a[j]
    lam = N + A
    grad, t1, t2, tn, r, v, y, c = (
        work[0], work[1], work[2], work[3], work[4], work[5], work[6], work[7]
    )
    step_max = _STEP_MAX0
    n_eval = 0
    f0 = _evaluate(phi, x, theta, a, grad)
    n_eval += 1
    if not np.isfinite(f0):
        return n_eval, n_newton, NONFINITE, f0
    # --- SQUAREM phase
    while n_eval < SQUAREM_EVALS and n_eval < max_iter:
        kkt = _kkt(theta, grad, lam)
        if kkt <= tol:
            return n_eval, n_newton, CONVERGED, f0
        if kkt <= NEWTON_SWITCH:
            break
        _em_step(theta, grad, lam, t1)
        f1 = _evaluate(phi, x, t1, a, grad)
        n_eval += 1
        if not np.isfinite(f1):
            return n_eval, n_newton, NONFINITE, f0
        _em_step(t1, grad, lam, t2)
        sr2 = 0.0
        sv2 = 0.0
        for j in range(k):
            r[j] = t1[j] - theta[j]
            v[j] = t2[j] - t1[j] - r[j]
            sr2 += r[j] * r[j]
            sv2 += v[j] * v[j]
        alpha = np.sqrt(sr2 / sv2) if sv2 > 0.0 else 1.0
        if alpha < _STEP_MIN:
            alpha = _STEP_MIN
        if alpha > step_max:
            alpha = step_max
        accepted = False
        if alpha > 1.0:
            feasible = True
            total = 0.0
            for j in range(k):
                tn[j] = theta[j] + 2.0 * alpha * r[j] + alpha * alpha * v[j]
                if not tn[j] > 0.0:
                    feasible = False
                total += tn[j]
            if feasible:
                for j in range(k):
                    tn[j] /= total
                fe = _evaluate(phi, x, tn, a, grad)  # stabilising EM step from there
                n_eval += 1
                if np.isfinite(fe):
                    _em_step(tn, grad, lam, t1)
                    fn = _evaluate(phi, x, t1, a, grad)
                    n_eval += 1
                    if np.isfinite(fn) and fn >= f0:
                        for j in range(k):
                            theta[j] = t1[j]
                        f0 = fn
                        accepted = True
                        if alpha == step_max:
                            step_max *= _MSTEP
        if not accepted:  # the plain (monotone) EM point; shrink the step bound
            if alpha == step_max and step_max > _STEP_MAX0:
                step_max = max(_STEP_MAX0, step_max / _MSTEP)
            for j in range(k):
                theta[j] = t2[j]
            f0 = _evaluate(phi, x, theta, a, grad)
            n_eval += 1
            if not np.isfinite(f0):
                return n_eval, n_newton, NONFINITE, f0
    # --- Newton phase: exact Hessians, refreshed only when the quasi-Newton (BFGS) updates
    # in between stop converging fast (the Hessian costs n k^2, a gradient n k)
    have = False
    if H0[0, 0] > 0.0:  # the shared model, scaled to this sample's reads
        for i in range(k):
            for j in range(k):
                H[i, j] = N * H0[i, j]
            if a[i] > 0.0:
                H[i, i] += a[i] / (theta[i] * theta[i])
        have = True
    force = False
    kkt_prev = np.inf
    while True:
        kkt = _kkt(theta, grad, lam)
        if kkt <= tol:
            return n_eval, n_newton, CONVERGED, f0
        if n_eval >= max_iter:
            return n_eval, n_newton, MAX_ITER, f0
        fresh = force or not have or kkt > QN_RATE * kkt_prev
        if fresh:
            _hessian(phi, x, theta, a, H, psi)
            n_newton += 1
            have = True
        force = False
        kkt_prev = kkt
        _newton_direction(H, theta, grad, y, Qa, c, ws, 1e-13)
        same_support = True
        for j in range(k):
            if (y[j] > 0.0) != (theta[j] > 0.0):
                same_support = False
        if same_support and _free_step(H, grad, lam, theta, r, Qa):
            pass  # the step on the support, from the small numbers grad - lam directly
        else:
            for j in range(k):
                r[j] = y[j] - theta[j]
        slope = 0.0
        for j in range(k):
            slope += grad[j] * r[j]
        if not slope > 0.0:
            if not fresh:  # the updated model misleads: try the exact Hessian
                force = True
                continue
            # no ascent direction left: theta is optimal up to rounding
            return n_eval, n_newton, CONVERGED if kkt <= 10.0 * tol else STALLED, f0
        t = 1.0
        moved = False
        # near the maximiser the increase is below the rounding of f itself and a
        # line search cannot see it: the quadratic model is exact there, take its step
        tiny = fresh and slope <= 1e-11 * (abs(f0) + 1.0)
        while t > 1e-10 and n_eval < max_iter:
            total = 0.0
            for j in range(k):
                tn[j] = theta[j] + t * r[j]
                if tn[j] < 0.0:
                    tn[j] = 0.0
                total += tn[j]
            for j in range(k):
                tn[j] /= total
            fn = _evaluate(phi, x, tn, a, t1)
            n_eval += 1
            if np.isfinite(fn) and (tiny or fn >= f0 + 1e-4 * t * slope):
                moved = True
                break
            if np.isfinite(fn) and fn >= f0 and t < 1e-3:
                moved = True
                break
            t *= 0.5
        if not moved:
            if not fresh:
                force = True
                continue
            return n_eval, n_newton, CONVERGED if kkt <= 10.0 * tol else STALLED, f0
        _bfgs_update(H, theta, tn, grad, t1, v, c)
        for j in range(k):
            theta[j] = tn[j]
            grad[j] = t1[j]
        f0 = fn


@jit_helper
def _bfgs_update(H, old, new, g_old, g_new, s, Hs):
    """BFGS update of ``H`` (minus the Hessian) with the step ``new - old`` (skipped if flat)."""
    k = old.shape[0]
    ys = 0.0
    for j in range(k):
        s[j] = new[j] - old[j]
    for i in range(k):
        v = 0.0
        for j in range(k):
            v += H[i, j] * s[j]
        Hs[i] = v
    sHs = 0.0
    for j in range(k):
        sHs += s[j] * Hs[j]
        ys += (g_old[j] - g_new[j]) * s[j]
    if not (sHs > 0.0 and ys > 1e-12 * sHs):
        return
    for i in range(k):
        yi = g_old[i] - g_new[i]
        for j in range(k):
            H[i, j] += yi * (g_old[j] - g_new[j]) / ys - Hs[i] * Hs[j] / sHs


@jit_helper
def expected_information(phi, H0, psi):
    """``H0 = phi' diag(1 / m) phi`` at the even mixture ``m = phi 1 / k`` of the profiles.

    The expected information of one read when the mixture's profile is ``m``;
    for a sample of ``N`` reads the Newton model starts from ``N H0`` and BFGS
    updates move it toward the sample's own Hessian.  It depends on the
    profiles alone, so every sample's answer is the same whatever other
    samples it is fitted with.
    """
    n, k = phi.shape
    p = 0
    for g in range(n):
        mg = 0.0
        for j in range(k):
            mg += phi[g, j]
        mg /= k
        if mg > 0.0:
            s = 1.0 / np.sqrt(mg)
            for j in range(k):
                psi[p, j] = s * phi[g, j]
            p += 1
    P = psi[:p]
    H0[:, :] = np.dot(P.T, P)


@jit(nogil=True)
def em_batch(phi, X, theta, a, tol, max_iter, n_eval, n_newton, status, objective):
    """Fit every row of ``X`` (one sample per row) in place.

    Parameters
    ----------
    phi : ndarray, shape (n, k)
        Profiles (columns sum to 1), C-contiguous float64.
    X : ndarray, shape (m, n)
        Samples as rows, C-contiguous float64.
    theta : ndarray, shape (m, k)
        Starting points in, maximisers out.
    a : ndarray, shape (k,)
        ``alpha - 1``.
    tol : float
        KKT tolerance.
    max_iter : int
        Cap on EM-map evaluations per sample.
    n_eval, n_newton, status : ndarray of int64, int64, int8, shape (m,)
        Written: objective evaluations and exact Hessians used, status (0 converged,
        1 cap, 2 zero likelihood or non-finite, 3 stalled at rounding level).
    objective : ndarray, shape (m,)
        Written: ``f`` at the answer.
    """
    n, k = phi.shape
    work = np.empty((8, k))
    H = np.empty((k, k))
    Qa = np.empty((k, k))
    psi = np.empty((n, k))
    ws = new_workspace(k)
    H0 = np.empty((k, k))
    expected_information(phi, H0, psi)
    for i in range(X.shape[0]):
        it, nt, st, f = em_sample(phi, X[i], theta[i], a, tol, max_iter, work, H, Qa, psi, ws,
                                  H0)
        n_eval[i] = it
        n_newton[i] = nt
        status[i] = st
        objective[i] = f


@jit_helper
def _summarise(phi, x, theta, a, groups, contents, fisher, z, Zsum, se, se_cells, stats, H, psi, M):
    """Per-sample statistics at the answer (see :func:`summary_batch`)."""
    n, k = phi.shape
    T = se.shape[0]
    N = 0.0
    for g in range(n):
        N += x[g]
    sx = 0.0
    sm = 0.0
    sxx = 0.0
    smm = 0.0
    sxm = 0.0
    chi2 = 0.0
    for g in range(n):
        mu = 0.0
        for j in range(k):
            mu += phi[g, j] * theta[j]
        xg = x[g]
        sx += xg
        sm += mu
        sxx += xg * xg
        smm += mu * mu
        sxm += xg * mu
        e = N * mu
        if e > 0.0:
            chi2 += (xg - e) * (xg - e) / e
            if z and xg > 0.0:
                w = xg / mu
                for j in range(k):
                    Zsum[g, j] += w * phi[g, j] * theta[j]
    n_free = 0
    for j in range(k):
        if theta[j] > 1e-9:
            n_free += 1
    df = n - n_free
    if df < 1:
        df = 1
    disp = chi2 / df
    cx = sxx - sx * sx / n
    cm = smm - sm * sm / n
    stats[0] = (sxm - sx * sm / n) / np.sqrt(cx * cm) if cx > 0.0 and cm > 0.0 else np.nan
    stats[1] = disp
    if not fisher:
        return
    for t in range(T):
        se[t] = np.nan
        se_cells[t] = np.nan
    _hessian(phi, x, theta, a, H, psi)
    idx = np.empty(k, dtype=np.int64)
    p = 0
    for j in range(k):
        if theta[j] > 1e-9:
            idx[p] = j
            p += 1
    cov = np.zeros((k, k))
    if p > 1:
        Hf = M[:p, :p]
        for i in range(p):
            for j in range(p):
                Hf[i, j] = H[idx[i], idx[j]]
        L = np.zeros((p, p))
        if not _cholesky(Hf, L):
            return
        C = _cholesky_solve(L, np.eye(p))
        one = np.zeros(p)
        s = 0.0
        for i in range(p):
            for j in range(p):
                one[i] += C[i, j]
            s += one[i]
        if not s > 0.0:
            return
        for i in range(p):
            for j in range(p):
                cov[idx[i], idx[j]] = C[i, j] - one[i] * one[j] / s
    covG = np.zeros((T, T))
    shares = np.zeros(T)
    for i in range(k):
        shares[groups[i]] += theta[i]
        for j in range(k):
            covG[groups[i], groups[j]] += cov[i, j]
    for t in range(T):
        v = covG[t, t] * disp
        se[t] = np.sqrt(v) if v > 0.0 else 0.0
    if contents.shape[0] == T:
        W = 0.0
        w = np.empty(T)
        for t in range(T):
            w[t] = shares[t] / contents[t]
            W += w[t]
        J = np.empty((T, T))
        for t in range(T):
            for u in range(T):
                J[t, u] = ((1.0 if t == u else 0.0) - w[t] / W) / contents[u] / W
        for t in range(T):
            v = 0.0
            for u in range(T):
                ju = J[t, u]
                if ju != 0.0:
                    for q in range(T):
                        v += ju * covG[u, q] * J[t, q]
            v *= disp
            se_cells[t] = np.sqrt(v) if v > 0.0 else 0.0


@jit(nogil=True)
def summary_batch(phi, X, theta, a, groups, contents, fisher, z, Zsum, se, se_cells, stats):
    """Statistics of every fitted sample (rows of ``X``), in one pass per sample.

    Parameters
    ----------
    phi : ndarray, shape (n, k)
        Profiles of the fit.
    X : ndarray, shape (m, n)
        Samples as rows.
    theta : ndarray, shape (m, k)
        The fitted shares (rows with NaN are skipped by the caller).
    a : ndarray, shape (k,)
        ``alpha - 1`` of the fit (the prior's curvature enters the information).
    groups : ndarray of int64, shape (k,)
        Group (cell type) of every column of ``phi``, in ``[0, T)``.
    contents : ndarray, shape (T,) or (0,)
        Reads per cell of every group, for the errors of the cell fractions
        (empty: not computed).
    fisher, z : bool
        Compute the standard errors; accumulate the expected counts.
    Zsum : ndarray, shape (n, k)
        Added to: ``sum_s x_gs phi_gk theta_ks / mu_gs`` (with ``z``).
    se, se_cells : ndarray, shape (m, T)
        Written (with ``fisher``): standard errors of the group shares (the
        inverse observed Fisher information on the simplex, times the Pearson
        dispersion) and of the cell fractions (delta method).
    stats : ndarray, shape (m, 2)
        Written: Pearson r of ``x`` with ``mu``, and the Pearson dispersion.
    """
    n, k = phi.shape
    H = np.empty((k, k))
    M = np.empty((k, k))
    psi = np.empty((n, k))
    for i in range(X.shape[0]):
        _summarise(phi, X[i], theta[i], a, groups, contents, fisher, z, Zsum, se[i],
                   se_cells[i], stats[i], H, psi, M)
