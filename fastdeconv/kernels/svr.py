"""Linear nu-support vector regression (libsvm's nu-SVR), solved exactly, many samples per call.

The problem is libsvm's nu-SVR with a linear kernel as libsvm implements it
(Chang & Lin 2002; ``solve_nu_svr`` of libsvm): for one sample ``z`` (n genes)
and a matrix ``X`` (n x k),

    min_{w, b, eps, xi, xi*}  1/2 |w|^2 + C (nu n eps + sum_i (xi_i + xi*_i))
    s.t.  z_i - x_i'w - b <= eps + xi_i,  x_i'w + b - z_i <= eps + xi*_i,  xi, xi* >= 0,

whose dual in ``a, a*`` (``beta = a - a*``, ``K = X X'``) is

    min  1/2 beta' K beta - z' beta
    s.t. 0 <= a_i, a*_i <= C,  sum(a) = sum(a*) = C nu n / 2,

and ``w = X' beta``.  (libsvm's documentation writes the problem with bounds
``C / n`` and ``sum(a + a*) <= C nu``; its code solves the version above --
the documented one with ``C`` multiplied by ``n`` -- and that is what e1071,
scikit-learn and CIBERSORT run.)  ``w`` is unique (the primal is strongly
convex in ``w``); ``beta``, ``b`` and ``eps`` need not be.

The solver, in three stages of which the first almost always ends it:

1. **Interior point**: Mehrotra's primal-dual predictor-corrector method on
   the primal in ``(w, b, eps, xi, xi*)``.  The slacks are eliminated gene by
   gene, so each iteration factors one ``(k + 2) x (k + 2)`` matrix (O(n k^2)
   to form) whatever the conditioning of the signature: about 20 iterations
   on LM22, where libsvm's SMO needs 10^5 to 10^7 pair updates.  Once the
   duality measure is small, every iteration tries the exact *polish*: from
   the iterate's slacks and multipliers, a guess of which variables are at 0,
   at ``C`` or between; the equality-constrained problem on the free
   variables (a symmetric system of at most ``k + 4`` unknowns: ``beta`` on
   the free set and the two tube levels) is solved directly, and the result
   is accepted when it is feasible and meets the optimality conditions of
   every variable to the requested tolerance.  When the tube has width 0 (an
   exact fit) the free genes share one level and carry ``beta`` in
   ``[-C, C]``.
2. When no free set is exact (degenerate problems: genes present twice, more
   genes on the tube than a nonsingular system allows) the interior point
   itself is the answer once its duality gap and residuals are below the
   tolerance, relative (it then stops at a duality measure 1e-17 times the
   first, where its ``w`` is exact to rounding).
3. Otherwise (never met on the data sets tried) **SMO**: libsvm's
   ``Solver_NU`` (pairs of the same class, the working set chosen with
   second-order information, Fan, Chen & Lin 2005) from the quantile start at
   the last ``w``, with kernel rows formed on demand (``K = X X'`` has rank
   ``k``: a row is ``X x_i``, O(n k), and the residuals are updated through
   ``X (X' dbeta)``), polished like the interior point each time it reaches
   a tolerance 100 times tighter than the last.

The answers are therefore exact to the KKT tolerance, not to an iterative
method's stopping rule (libsvm's default ``1e-3`` leaves ``w`` wrong in the
third digit on LM22, and its single-precision kernel cache limits it to about
1e-5).

Optimality is measured in residual units (``r = z - X w``): within each class
the largest residual of a variable that may increase minus the smallest of
one that may decrease (libsvm's stopping quantity).

References
----------
Schoelkopf B., Smola A. J., Williamson R. C., Bartlett P. L. (2000) New support
vector algorithms. Neural Comput 12(5):1207-1245. doi:10.1162/089976600300015565
Chang C.-C., Lin C.-J. (2002) Training nu-support vector regression: theory and
algorithms. Neural Comput 14(8):1959-1977. doi:10.1162/089976602760128081
Fan R.-E., Chen P.-H., Lin C.-J. (2005) Working set selection using second order
information for training support vector machines. J Mach Learn Res 6:1889-1918.
Mehrotra S. (1992) On the implementation of a primal-dual interior point method.
SIAM J Optim 2(4):575-601. doi:10.1137/0802028
Newman A. M. et al. (2015) Robust enumeration of cell subsets from tissue
expression profiles. Nat Methods 12:453-457. doi:10.1038/nmeth.3337
"""

from __future__ import annotations

import math

import numpy as np

from fastdeconv._jit import jit, jit_helper
from fastdeconv.kernels._linalg import chol_solve
from fastdeconv.kernels.mixture import _cholesky

__all__ = ["nu_svr"]

CONVERGED = 0
MAX_ITER = 1
#: libsvm's floor for a non-positive curvature of a pair
TAU = 1e-12
#: libsvm's default stopping tolerance: SMO's first target before the first polish
FIRST_EPS = 1e-3
#: cap on interior-point iterations
IPM_MAX_ITER = 100
#: the interior-point method stops (without an exact free set) when the duality measure
#: has fallen by this factor: its iterate is then optimal far below any tolerance asked
IPM_MU_FLOOR = 1e-17


@jit_helper
def _copy(dst, src):
    """``dst[:] = src`` as a loop (slice assignment costs Numba much more to compile)."""
    for i in range(dst.shape[0]):
        dst[i] = src[i]


@jit_helper
def _fill(dst, value):
    """``dst[:] = value`` as a loop."""
    for i in range(dst.shape[0]):
        dst[i] = value


@jit_helper
def _residuals(X, z, beta, v, r):
    """``v = X' beta`` and ``r = z - X v`` from scratch (no accumulated rounding)."""
    n, k = X.shape
    _fill(v, 0.0)
    for t in range(n):
        bt = beta[t]
        if bt != 0.0:
            for c in range(k):
                v[c] += bt * X[t, c]
    for t in range(n):
        s = 0.0
        for c in range(k):
            s += X[t, c] * v[c]
        r[t] = z[t] - s


@jit_helper
def _violation(a, s, r, C):
    """libsvm's nu stopping quantity: the worst violating pair's gap, over both classes."""
    n = r.shape[0]
    up_p = -np.inf   # max r over a < C
    low_p = np.inf   # min r over a > 0
    up_n = -np.inf   # max r over a* > 0
    low_n = np.inf   # min r over a* < C
    for t in range(n):
        rt = r[t]
        if a[t] < C and rt > up_p:
            up_p = rt
        if a[t] > 0.0 and rt < low_p:
            low_p = rt
        if s[t] > 0.0 and rt > up_n:
            up_n = rt
        if s[t] < C and rt < low_n:
            low_n = rt
    return max(up_p - low_p, up_n - low_n, 0.0)


@jit_helper
def _argsort(x, order):
    """``order = argsort(x)`` by heap sort (np.argsort costs Numba seconds to compile)."""
    n = x.shape[0]
    for i in range(n):
        order[i] = i
    # build the heap, then pop the largest to the end
    for root in range(n // 2 - 1, -1, -1):
        _sift(x, order, root, n)
    for end in range(n - 1, 0, -1):
        tmp = order[0]
        order[0] = order[end]
        order[end] = tmp
        _sift(x, order, 0, end)


@jit_helper
def _sift(x, order, root, size):
    while True:
        child = 2 * root + 1
        if child >= size:
            return
        if child + 1 < size and x[order[child + 1]] > x[order[child]]:
            child += 1
        if x[order[child]] > x[order[root]]:
            tmp = order[root]
            order[root] = order[child]
            order[child] = tmp
            root = child
        else:
            return


@jit_helper
def _start(X, z, w0, q, C, a, s, beta, v, r):
    """A feasible start from the residuals of ``w0``: mass ``C q`` on the largest (a)
    and on the smallest (a*) residuals, as the optimum of the tube at ``w0`` puts it."""
    n, k = X.shape
    for t in range(n):
        acc = z[t]
        for c in range(k):
            acc -= X[t, c] * w0[c]
        r[t] = acc
    order = np.empty(n, dtype=np.int64)
    _argsort(r, order)
    _fill(a, 0.0)
    _fill(s, 0.0)
    left = C * q
    for m in range(n):
        if left <= 0.0:
            break
        take = min(left, C)
        a[order[n - 1 - m]] = take
        left -= take
    left = C * q
    for m in range(n):
        if left <= 0.0:
            break
        take = min(left, C)
        s[order[m]] = take
        left -= take
    for t in range(n):
        beta[t] = a[t] - s[t]
    _residuals(X, z, beta, v, r)


@jit_helper
def _kernel_column(X, i, out):
    """``out = X x_i``: row ``i`` of ``K = X X'`` formed on demand (O(n k))."""
    n, k = X.shape
    for t in range(n):
        acc = 0.0
        for c in range(k):
            acc += X[t, c] * X[i, c]
        out[t] = acc


@jit_helper
def _smo(X, Kd, C, eps, max_iter, a, s, beta, r, v, col_p, col_n, dv, it):
    """libsvm's Solver_NU iterations until the violation is below ``eps``; returns the count.

    Pairs of the same class; the first index the most violating, the second by
    second-order information (Fan, Chen & Lin 2005).  Kernel rows are formed on
    demand and the residuals updated through ``X (X' dbeta)``: O(n k) per
    iteration whatever ``n``.
    """
    n, k = X.shape
    while it < max_iter:
        gmaxp = -np.inf
        gmaxp2 = -np.inf
        ip = -1
        gmaxn = -np.inf
        gmaxn2 = -np.inf
        inn = -1
        for t in range(n):
            rt = r[t]
            if a[t] < C and rt >= gmaxp:
                gmaxp = rt
                ip = t
            if a[t] > 0.0 and -rt >= gmaxp2:
                gmaxp2 = -rt
            if s[t] > 0.0 and rt >= gmaxn:
                gmaxn = rt
                inn = t
            if s[t] < C and -rt >= gmaxn2:
                gmaxn2 = -rt
        if max(gmaxp + gmaxp2, gmaxn + gmaxn2) < eps:
            break
        if ip >= 0:
            _kernel_column(X, ip, col_p)
        if inn >= 0:
            _kernel_column(X, inn, col_n)
        jmin = -1
        jpos = True
        obj_min = np.inf
        for t in range(n):
            if ip >= 0 and a[t] > 0.0:
                d = gmaxp - r[t]
                if d > 0.0:
                    quad = Kd[ip] + Kd[t] - 2.0 * col_p[t]
                    obj = -(d * d) / (quad if quad > 0.0 else TAU)
                    if obj <= obj_min:
                        obj_min = obj
                        jmin = t
                        jpos = True
            if inn >= 0 and s[t] < C:
                d = gmaxn - r[t]
                if d > 0.0:
                    quad = Kd[inn] + Kd[t] - 2.0 * col_n[t]
                    obj = -(d * d) / (quad if quad > 0.0 else TAU)
                    if obj <= obj_min:
                        obj_min = obj
                        jmin = t
                        jpos = False
        if jmin < 0:
            break
        j = jmin
        if jpos:
            i = ip
            quad = Kd[i] + Kd[j] - 2.0 * col_p[j]
            xi_, xj_ = a[i], a[j]
            delta = (r[j] - r[i]) / (quad if quad > 0.0 else TAU)
        else:
            i = inn
            quad = Kd[i] + Kd[j] - 2.0 * col_n[j]
            xi_, xj_ = s[i], s[j]
            delta = (r[i] - r[j]) / (quad if quad > 0.0 else TAU)
        # libsvm's update of a pair with equal labels, clipped to the box
        total = xi_ + xj_
        ni = xi_ - delta
        nj = xj_ + delta
        if total > C:
            if ni > C:
                ni = C
                nj = total - C
        else:
            if nj < 0.0:
                nj = 0.0
                ni = total
        if total > C:
            if nj > C:
                nj = C
                ni = total - C
        else:
            if ni < 0.0:
                ni = 0.0
                nj = total
        if jpos:
            a[i] = ni
            a[j] = nj
            dbi = ni - xi_
            dbj = nj - xj_
        else:
            s[i] = ni
            s[j] = nj
            dbi = xi_ - ni
            dbj = xj_ - nj
        beta[i] += dbi
        beta[j] += dbj
        for c in range(k):
            dv[c] = dbi * X[i, c] + dbj * X[j, c]
            v[c] += dv[c]
        for t in range(n):
            acc = 0.0
            for c in range(k):
                acc += X[t, c] * dv[c]
            r[t] -= acc
        it += 1
    return it


@jit_helper
def _lu_factor(M, piv, m):
    """In-place LU factorisation of ``M[:m, :m]`` with partial pivoting; False if singular."""
    scale = 0.0
    for i in range(m):
        for j in range(m):
            scale = max(scale, abs(M[i, j]))
    if not scale > 0.0:
        return False
    for c in range(m):
        p = c
        big = abs(M[c, c])
        for i in range(c + 1, m):
            if abs(M[i, c]) > big:
                big = abs(M[i, c])
                p = i
        piv[c] = p
        if not big > 1e-13 * scale:
            return False
        if p != c:
            for j in range(m):
                tmp = M[c, j]
                M[c, j] = M[p, j]
                M[p, j] = tmp
        for i in range(c + 1, m):
            f = M[i, c] / M[c, c]
            M[i, c] = f
            if f != 0.0:
                for j in range(c + 1, m):
                    M[i, j] -= f * M[c, j]
    return True


@jit_helper
def _lu_apply(M, piv, m, x):
    """Solve with the factors of :func:`_lu_factor`, in place."""
    for c in range(m):  # the row interchanges first (the factor's rows were swapped whole)
        p = piv[c]
        if p != c:
            tmp = x[c]
            x[c] = x[p]
            x[p] = tmp
    for c in range(m):
        for i in range(c + 1, m):
            x[i] -= M[i, c] * x[c]
    for c in range(m - 1, -1, -1):
        acc = x[c]
        for j in range(c + 1, m):
            acc -= M[c, j] * x[j]
        x[c] = acc / M[c, c]


@jit_helper
def _states(a, s, C, sa, ss):
    """Bound states of SMO's variables: 0 at zero, 1 between the bounds, 2 at ``C``."""
    for t in range(a.shape[0]):
        sa[t] = 0 if a[t] <= 0.0 else (2 if a[t] >= C else 1)
        ss[t] = 0 if s[t] <= 0.0 else (2 if s[t] >= C else 1)


@jit_helper
def _polish(X, z, q, C, tol_abs, sa, ss, pa, ps, pbeta, pv, pr):
    """The exact optimum for a guess of every variable's state (``sa``, ``ss``: 0 at
    zero, 1 free, 2 at ``C``).  Returns True when the result is feasible and
    optimal to ``tol_abs`` (then ``pa, ps, pbeta, pv, pr`` hold it), False otherwise.

    The free variables solve the equality-constrained problem on them:
    ``K_FF beta_F + rho = z_F - K_FB beta_B`` with one tube level ``rho`` per
    class and the class sums ``C q``.  When some gene is free in both classes
    the tube has width 0 (an exact fit of those genes): then every free gene
    has ``beta`` in ``[-C, C]``, one level, ``sum(beta) = 0``, and the class
    sums are met by adding equal amounts to ``a`` and ``a*`` of the free genes.
    """
    n, k = X.shape
    cap = k + 2  # a nonsingular system has at most k + 2 free variables
    free = np.empty(cap, dtype=np.int64)
    grp = np.empty(cap, dtype=np.int64)
    merged = False
    for t in range(n):
        if sa[t] == 1 and ss[t] == 1:
            merged = True
    nf = 0
    n_grp0 = 0
    n_grp1 = 0
    for t in range(n):
        fp = sa[t] == 1
        fn = ss[t] == 1
        pa[t] = 0.0
        ps[t] = 0.0
        if fp or fn:
            if nf == cap:  # more free variables than a nonsingular system allows: leave it
                return False  # to the interior point (duplicated genes, or not there yet)
            if not merged and ((fp and ss[t] != 0) or (fn and sa[t] != 0)):
                return False
            free[nf] = t
            g = 0 if (merged or fp) else 1
            grp[nf] = g
            nf += 1
            if g == 0:
                n_grp0 += 1
            else:
                n_grp1 += 1
        else:
            if sa[t] == 2:
                pa[t] = C
            if ss[t] == 2:
                ps[t] = C
    sum_bp = 0.0
    sum_bn = 0.0
    for t in range(n):
        sum_bp += pa[t]
        sum_bn += ps[t]
        pbeta[t] = pa[t] - ps[t]
    # pr = z - X (X_B' beta_B): the right-hand side on the free rows
    _residuals(X, z, pbeta, pv, pr)
    size = nf + (1 if n_grp0 > 0 else 0) + (1 if n_grp1 > 0 else 0)
    if size > 0:
        M = np.zeros((size, size))
        rhs = np.zeros(size)
        row0 = nf
        row1 = nf + (1 if n_grp0 > 0 else 0)
        for f in range(nf):
            ti = free[f]
            for g in range(f + 1):
                tj = free[g]
                acc = 0.0
                for c in range(k):
                    acc += X[ti, c] * X[tj, c]
                M[f, g] = acc
                M[g, f] = acc
            rhs[f] = pr[ti]
            row = row0 if grp[f] == 0 else row1
            M[f, row] = 1.0
            M[row, f] = 1.0
        if merged:
            rhs[row0] = -(sum_bp - sum_bn)
        else:
            if n_grp0 > 0:
                rhs[row0] = C * q - sum_bp
            if n_grp1 > 0:
                rhs[row1] = -(C * q - sum_bn)
        piv = np.empty(size, dtype=np.int64)
        if not _lu_factor(M, piv, size):  # singular (duplicated genes): the interior
            return False  # point's own answer is used instead
        _lu_apply(M, piv, size, rhs)
        slack = 1e-11 * C
        room = 0.0
        for f in range(nf):
            val = rhs[f]
            low = -C if merged else (0.0 if grp[f] == 0 else -C)
            high = C if merged else (C if grp[f] == 0 else 0.0)
            if val < low - slack or val > high + slack:
                return False
            val = min(max(val, low), high)
            rhs[f] = val
            room += C - abs(val)
            t = free[f]
            if val > 0.0:
                pa[t] = val
            else:
                ps[t] = -val
        if merged:
            # the class sums: equal amounts on a and a* of the free genes, in proportion
            # to the room each has below C
            extra = C * q - sum_bp
            for f in range(nf):
                extra -= pa[free[f]] if rhs[f] > 0.0 else 0.0
            if extra < -1e-10 * C * max(q, 1.0) or extra > room + 1e-10 * C * max(q, 1.0):
                return False
            share = min(max(extra, 0.0) / room, 1.0) if room > 0.0 else 0.0
            for f in range(nf):
                t = free[f]
                add = share * (C - abs(rhs[f]))
                pa[t] += add
                ps[t] += add
        for t in range(n):
            pbeta[t] = pa[t] - ps[t]
        _residuals(X, z, pbeta, pv, pr)
    # the equalities (a class without free variables must meet its sum with its bounds)
    sum_p = 0.0
    sum_n = 0.0
    for t in range(n):
        sum_p += pa[t]
        sum_n += ps[t]
    if abs(sum_p - C * q) > 1e-10 * C * max(q, 1.0) or abs(sum_n - C * q) > 1e-10 * C * max(q, 1.0):
        return False
    return _violation(pa, ps, pr, C) <= tol_abs


@jit_helper
def _ipm_direction(X, L, d, rp, rc, sl, rd_t, rd_xi, rd_xs, ds, dl, dth, dxi, dxs, u):
    """One Newton direction of the primal-dual method for the right-hand side ``rc``.

    Constraints ``j = 0..3`` per gene: the upper tube side, the lower one,
    ``xi >= 0`` and ``xi* >= 0`` (rows of ``d, rp, rc, sl, lm, ds, dl``).  The
    slacks of the tube sides are eliminated per gene, leaving the
    ``(k + 2)`` normal equations factored in ``L``.
    """
    n, k = X.shape
    kk = k + 2
    for j in range(4):
        for t in range(n):
            u[j, t] = d[j, t] * rp[j, t] + rc[j, t] / sl[j, t]
    # right-hand side of the normal equations
    for c in range(kk):
        dth[c] = -rd_t[c]
    for t in range(n):
        r_xi = -rd_xi[t] + u[0, t] + u[2, t]
        r_xs = -rd_xs[t] + u[1, t] + u[3, t]
        dxi[t] = r_xi
        dxs[t] = r_xs
        # - G' u on the theta block: w: X'(u1 - u2), b: sum(u1 - u2), eps: sum(u1 + u2)
        c1 = d[0, t] * r_xi / (d[0, t] + d[2, t])
        c2 = d[1, t] * r_xs / (d[1, t] + d[3, t])
        gw = u[0, t] - u[1, t] - c1 + c2
        for c in range(k):
            dth[c] += gw * X[t, c]
        dth[k] += u[0, t] - u[1, t] - c1 + c2
        dth[k + 1] += u[0, t] + u[1, t] - c1 - c2
    chol_solve(L, kk, dth, dth)
    for t in range(n):
        xw = 0.0
        for c in range(k):
            xw += X[t, c] * dth[c]
        g1 = -(xw + dth[k] + dth[k + 1])
        g2 = xw + dth[k] - dth[k + 1]
        dxi[t] = (dxi[t] + d[0, t] * g1) / (d[0, t] + d[2, t])
        dxs[t] = (dxs[t] + d[1, t] * g2) / (d[1, t] + d[3, t])
        gd0 = g1 - dxi[t]
        gd1 = g2 - dxs[t]
        gd2 = -dxi[t]
        gd3 = -dxs[t]
        ds[0, t] = -rp[0, t] - gd0
        ds[1, t] = -rp[1, t] - gd1
        ds[2, t] = -rp[2, t] - gd2
        ds[3, t] = -rp[3, t] - gd3
        for j in range(4):
            dl[j, t] = -d[j, t] * ds[j, t] + rc[j, t] / sl[j, t]


@jit_helper
def _max_step(sl, lm, ds, dl):
    step = 1.0
    n = sl.shape[1]
    for j in range(4):
        for t in range(n):
            if ds[j, t] < 0.0:
                step = min(step, -sl[j, t] / ds[j, t])
            if dl[j, t] < 0.0:
                step = min(step, -lm[j, t] / dl[j, t])
    return step


@jit_helper
def _ipm_init(X, z, q, C, th, sl, lm, W1):
    """A strictly feasible start: ``w = 0``, ``b = 0``, ``eps = 1``, a wide slack, and
    ``a = a* = C nu / 2`` on every gene.  Returns the duality measure ``mu``."""
    n, k = X.shape
    xi, xs = W1[0], W1[1]
    for c in range(k + 2):
        th[c] = 0.0
    th[k + 1] = 1.0
    a0 = C * q / n
    mu = 0.0
    for t in range(n):
        xi[t] = max(abs(z[t]) - 1.0, 0.0) + 1.0
        xs[t] = xi[t]
        lm[0, t] = a0
        lm[1, t] = a0
        lm[2, t] = C - a0
        lm[3, t] = C - a0
        sl[0, t] = xi[t] + 1.0 - z[t]
        sl[1, t] = xs[t] + 1.0 + z[t]
        sl[2, t] = xi[t]
        sl[3, t] = xs[t]
        for j in range(4):
            mu += sl[j, t] * lm[j, t]
    return mu / (4.0 * n)


@jit_helper
def _ipm_residuals(X, z, q, C, th, sl, lm, rp, W1, rd_t):
    """The residuals of the primal (``rp``) and dual (``rd_t``, ``W1[4:6]``)
    equations at the current point; returns the duality measure ``mu``."""
    n, k = X.shape
    xi, xs, rd_xi, rd_xs = W1[0], W1[1], W1[4], W1[5]
    for c in range(k):
        rd_t[c] = th[c]
    sum1 = 0.0
    sum2 = 0.0
    mu = 0.0
    for t in range(n):
        xw = 0.0
        dif = lm[0, t] - lm[1, t]
        for c in range(k):
            xw += X[t, c] * th[c]
            rd_t[c] -= dif * X[t, c]
        sum1 += lm[0, t]
        sum2 += lm[1, t]
        rd_xi[t] = C - lm[0, t] - lm[2, t]
        rd_xs[t] = C - lm[1, t] - lm[3, t]
        rp[0, t] = -xw - th[k] - th[k + 1] - xi[t] + sl[0, t] + z[t]
        rp[1, t] = xw + th[k] - th[k + 1] - xs[t] + sl[1, t] - z[t]
        rp[2, t] = -xi[t] + sl[2, t]
        rp[3, t] = -xs[t] + sl[3, t]
        for j in range(4):
            mu += sl[j, t] * lm[j, t]
    rd_t[k] = sum2 - sum1
    rd_t[k + 1] = 2.0 * C * q - sum1 - sum2
    return mu / (4.0 * n)


@jit_helper
def _ipm_step(X, XT, Y, th, sl, lm, W4, W1, Wk, N, L, mu):
    """One predictor-corrector step (Mehrotra) from the residuals in ``W4[1]``,
    ``Wk[2]``, ``W1[4:6]``; False when the normal equations are not positive definite.
    ``XT`` is ``X'`` (C-contiguous), ``Y`` (k, n) scratch; the normal equations are
    formed in ``N`` and factored into ``L``."""
    n, k = X.shape
    kk = k + 2
    d, rp, rc, ds, dl, ds_a, dl_a, u = W4[0], W4[1], W4[2], W4[3], W4[4], W4[5], W4[6], W4[7]
    xi, xs, dxi, dxs, rd_xi, rd_xs = W1[0], W1[1], W1[2], W1[3], W1[4], W1[5]
    dth, rd_t = Wk[1], Wk[2]
    for j in range(4):
        for t in range(n):
            d[j, t] = lm[j, t] / sl[j, t]
    # the normal equations in (w, b, eps), slacks eliminated gene by gene (lower triangle)
    # (X' diag(ep) X as dot products of contiguous rows of X' and of Y = X' diag(ep))
    ep, em = u[0], u[1]
    sp = 0.0
    sm = 0.0
    for t in range(n):
        e1 = d[0, t] * d[2, t] / (d[0, t] + d[2, t])
        e2 = d[1, t] * d[3, t] / (d[1, t] + d[3, t])
        ep[t] = e1 + e2
        em[t] = e1 - e2
        sp += ep[t]
        sm += em[t]
    for c in range(k):
        yc = Y[c]
        xc = XT[c]
        lb = 0.0
        le = 0.0
        for t in range(n):
            yc[t] = ep[t] * xc[t]
            lb += yc[t]
            le += em[t] * xc[t]
        N[k, c] = lb
        N[k + 1, c] = le
    G = np.dot(Y, X)  # X' diag(ep) X by BLAS
    for c in range(k):
        for i in range(c, k):
            N[i, c] = G[i, c]
        N[c, c] += 1.0
    N[k, k] = sp
    N[k + 1, k] = sm
    N[k + 1, k + 1] = sp
    if not _cholesky(N, L):
        # near the end the scaling spans ~30 orders of magnitude: a pivot lost to
        # rounding is restored by a relative nudge of the diagonal (the step stays a
        # descent step; the iterates stay interior)
        for c in range(kk):
            N[c, c] *= 1.0 + 1e-12
        if not _cholesky(N, L):
            return False
    # predictor (affine scaling)
    for j in range(4):
        for t in range(n):
            rc[j, t] = -sl[j, t] * lm[j, t]
    _ipm_direction(X, L, d, rp, rc, sl, rd_t, rd_xi, rd_xs, ds_a, dl_a, dth, dxi, dxs, u)
    step = _max_step(sl, lm, ds_a, dl_a)
    mu_aff = 0.0
    for j in range(4):
        for t in range(n):
            mu_aff += (sl[j, t] + step * ds_a[j, t]) * (lm[j, t] + step * dl_a[j, t])
    mu_aff /= 4.0 * n
    sigma = (mu_aff / mu) ** 3
    # corrector (second-order term and centring)
    for j in range(4):
        for t in range(n):
            rc[j, t] = -sl[j, t] * lm[j, t] - ds_a[j, t] * dl_a[j, t] + sigma * mu
    _ipm_direction(X, L, d, rp, rc, sl, rd_t, rd_xi, rd_xs, ds, dl, dth, dxi, dxs, u)
    step = min(1.0, 0.99 * _max_step(sl, lm, ds, dl))
    for c in range(kk):
        th[c] += step * dth[c]
    for t in range(n):
        xi[t] += step * dxi[t]
        xs[t] += step * dxs[t]
        for j in range(4):
            sl[j, t] += step * ds[j, t]
            lm[j, t] += step * dl[j, t]
    return True


@jit_helper
def _ipm_states(sl, lm, W1, sa, ss):
    """Which variables the interior point puts at 0, between the bounds, or at ``C``:
    ``a_i`` is at 0 when its slack exceeds it, at ``C`` when ``xi_i`` exceeds
    ``C - a_i``'s multiplier, free otherwise (the same for ``a*_i``)."""
    xi, xs = W1[0], W1[1]
    for t in range(sl.shape[1]):
        sa[t] = 0 if sl[0, t] > lm[0, t] else (2 if xi[t] > lm[2, t] else 1)
        ss[t] = 0 if sl[1, t] > lm[1, t] else (2 if xs[t] > lm[3, t] else 1)


@jit_helper
def _ipm_gap(X, z, q, C, th, sl, lm, rp, W1, rd_t, mu):
    """How far the interior point is from optimal, relative: the duality gap over
    the objective, and the primal and dual residuals over the data's scale."""
    n, k = X.shape
    xi, xs, rd_xi, rd_xs = W1[0], W1[1], W1[4], W1[5]
    obj = 0.0
    for c in range(k):
        obj += 0.5 * th[c] * th[c]
    hinge = 2.0 * q * th[k + 1]
    worst = 0.0
    for t in range(n):
        hinge += xi[t] + xs[t]
        for j in range(4):
            worst = max(worst, abs(rp[j, t]))
        worst = max(worst, abs(rd_xi[t]), abs(rd_xs[t]))
    for c in range(k + 2):
        worst = max(worst, abs(rd_t[c]))
    obj += C * hinge
    gap = 4.0 * n * mu / (1.0 + abs(obj))
    return max(gap, worst / (_scale(z, X, th) * (1.0 + C * n)))


@jit_helper
def _scale(z, X, v):
    """The size of the residuals' terms: the KKT tolerance is relative to it."""
    n, k = X.shape
    big = 1.0
    for t in range(n):
        big = max(big, abs(z[t]))
        acc = 0.0
        for c in range(k):
            acc += X[t, c] * v[c]
        big = max(big, abs(acc))
    return big


@jit_helper
def _diag(X):
    """Squared norms of the rows of ``X``: the diagonal of ``K = X X'``."""
    n, k = X.shape
    Kd = np.empty(n)
    for t in range(n):
        acc = 0.0
        for c in range(k):
            acc += X[t, c] * X[t, c]
        Kd[t] = acc
    return Kd


@jit
def nu_svr(X, Z, nus, C, tol, max_iter, interior, W, n_iter, status, duals):
    """Linear nu-SVR (libsvm's scaling) of every row of ``Z`` for every ``nu``, exactly.

    Parameters
    ----------
    X : ndarray, shape (n, k)
        C-contiguous float64: the features (genes x cell types).
    Z : ndarray, shape (m, n)
        C-contiguous float64: the responses (samples as rows), used as given.
    nus : ndarray, shape (p,)
        Values of nu, each in (0, 1].
    C : float
        Positive cost.
    tol : float
        KKT tolerance (libsvm's violation, in residual units) relative to
        ``max(1, |z|_inf, |X w|_inf)``.
    max_iter : int
        Cap on SMO iterations when SMO is needed; ``-1`` means libsvm's
        ``max(10^7, 100 n)``.
    interior : bool
        Start with the interior-point method (what the callers do); False runs
        SMO alone (libsvm's algorithm, with the exact polish: slow on
        ill-conditioned signatures; kept as the fallback, and for testing).
    W : ndarray, shape (m, p, k)
        Output: ``w = X' (a - a*)`` of every fit.
    n_iter : ndarray of int64, shape (m, p)
        Output: interior-point plus SMO iterations.
    status : ndarray of int8, shape (m, p)
        Output: 0 converged, 1 iteration cap reached.
    duals : ndarray, shape (m, p, 2, n) or (0, 0, 0, 0)
        Output when not empty: ``a`` and ``a*`` of every fit.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.kernels.svr import nu_svr
    >>> X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 1.0]])
    >>> Z = (X @ np.array([1.0, 2.0]))[None, :]
    >>> W, it, st = np.empty((1, 1, 2)), np.empty((1, 1), np.int64), np.empty((1, 1), np.int8)
    >>> nu_svr(X, Z, np.array([0.5]), 100.0, 1e-11, -1, True, W, it, st, np.empty((0, 0, 0, 0)))
    >>> np.round(W[0, 0], 8).tolist(), st.tolist()
    ([1.0, 2.0], [[0]])
    """
    n, k = X.shape
    kk = k + 2
    m = Z.shape[0]
    p = nus.shape[0]
    if max_iter < 0:
        max_iter = max(10_000_000, 100 * n)
    keep = duals.shape[0] == m and m > 0
    Kd = _diag(X)
    # SMO's state and the polish's candidate
    a = np.empty(n)
    s = np.empty(n)
    beta = np.empty(n)
    v = np.empty(k)
    r = np.empty(n)
    pa = np.empty(n)
    ps = np.empty(n)
    pbeta = np.empty(n)
    pv = np.empty(k)
    pr = np.empty(n)
    col_p = np.empty(n)
    col_n = np.empty(n)
    dv = np.empty(k)
    sa = np.empty(n, dtype=np.int8)
    ss = np.empty(n, dtype=np.int8)
    # the interior point's
    sl = np.empty((4, n))
    lm = np.empty((4, n))
    W4 = np.empty((8, 4, n))
    W1 = np.empty((6, n))
    Wk = np.empty((3, kk))
    N = np.zeros((kk, kk))
    L = np.zeros((kk, kk))
    th = Wk[0]
    XT = np.empty((k, n))
    for t in range(n):
        for c in range(k):
            XT[c, t] = X[t, c]
    Y = np.empty((k, n))
    for j in range(m):
        z = Z[j]
        for h in range(p):
            q = nus[h] * n / 2.0
            it = 0
            polished = False
            interior_ok = False
            if interior:
                mu0 = _ipm_init(X, z, q, C, th, sl, lm, W1)
                while True:
                    mu = _ipm_residuals(X, z, q, C, th, sl, lm, W4[1], W1, Wk[2])
                    if mu < 1e-3 * mu0:
                        _ipm_states(sl, lm, W1, sa, ss)
                        tol_abs = tol * _scale(z, X, th)
                        if _polish(X, z, q, C, tol_abs, sa, ss, pa, ps, pbeta, pv, pr):
                            polished = True
                            break
                    if (mu < IPM_MU_FLOOR * mu0 or it >= IPM_MAX_ITER
                            or not _ipm_step(X, XT, Y, th, sl, lm, W4, W1, Wk, N, L, mu)):
                        # no exact free set (a degenerate problem: an exact fit, a tube
                        # of width ~0): the interior point itself, if it is optimal
                        interior_ok = _ipm_gap(X, z, q, C, th, sl, lm, W4[1], W1, Wk[2],
                                               mu) <= tol
                        break
                    it += 1
            st = CONVERGED
            if interior_ok:
                polished = True
                for c in range(k):
                    pv[c] = th[c]
                for t in range(n):
                    pa[t] = lm[0, t]
                    ps[t] = lm[1, t]
            if not polished:
                # SMO from the quantile start at the interior point's w (or at 0)
                finite = interior
                for c in range(k):
                    v[c] = th[c] if interior else 0.0
                    finite = finite and math.isfinite(v[c])
                if not finite:
                    _fill(v, 0.0)
                _start(X, z, v, q, C, a, s, beta, v, r)
                eps = FIRST_EPS
                it_smo = 0
                while True:
                    tol_abs = tol * _scale(z, X, v)
                    last = eps <= tol_abs
                    if last:  # the final round, below the tolerance, for the updates' rounding
                        eps = 0.5 * tol_abs
                    it_smo = _smo(X, Kd, C, eps, max_iter, a, s, beta, r, v, col_p, col_n, dv,
                                  it_smo)
                    _residuals(X, z, beta, v, r)
                    tol_abs = tol * _scale(z, X, v)
                    if _violation(a, s, r, C) <= tol_abs:
                        break
                    _states(a, s, C, sa, ss)
                    if _polish(X, z, q, C, tol_abs, sa, ss, pa, ps, pbeta, pv, pr):
                        polished = True
                        break
                    if it_smo >= max_iter or last:
                        st = MAX_ITER
                        break
                    eps *= 1e-2
                it += it_smo
            n_iter[j, h] = it
            status[j, h] = st
            _copy(W[j, h], pv if polished else v)
            if keep:
                _copy(duals[j, h, 0], pa if polished else a)
                _copy(duals[j, h, 1], ps if polished else s)
