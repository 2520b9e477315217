"""Maximum-likelihood proportions of a multinomial mixture, many samples at a time.

The model of the probabilistic method (BayesPrism, InstaPrism): the counts
``x`` of a sample are ``Multinomial(N, phi @ theta)`` with profiles ``phi``
(genes x states, columns summing to 1) and proportions ``theta`` on the
simplex, with a Dirichlet(``alpha``) prior.  :func:`multinomial_map` is the
public, validated entry point; :func:`fit_mixture` is the core for pipelines
(arrays already checked).  Samples are cut into chunks, and each worker thread
hands a chunk (transposed to rows, converted only chunk by chunk) to the
``nogil`` kernel :func:`fastdeconv.kernels.mixture.em_batch`, with BLAS held
to one thread.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from fastdeconv._parallel import resolve_n_jobs, thread_map
from fastdeconv.solvers._batch import chunk_bounds

__all__ = [
    "MixtureInfo", "fit_mixture", "summarise_mixture", "multinomial_map", "DEFAULT_TOL",
    "DEFAULT_MAX_ITER",
]

#: KKT tolerance: ``max_k max(theta_k |R_k - 1|, R_k - 1)`` with ``R = grad / (N + sum(alpha - 1))``;
#: the log-likelihood is then within ``N log(1 + tol)`` of its maximum (Cover 1984)
DEFAULT_TOL = 1e-8
#: cap on objective evaluations per sample (a few dozen are typical)
DEFAULT_MAX_ITER = 2000


@dataclass(frozen=True)
class MixtureInfo:
    """Per-sample diagnostics of a mixture fit.

    Attributes
    ----------
    status : ndarray of int8, shape (m,)
        0 converged (the KKT conditions hold to ``tol``), 1 the evaluation cap
        was reached, 2 the likelihood is zero (a gene with counts that no
        state expresses) or a number was not finite; 3 the Newton steps stalled
        at rounding level before the KKT conditions held to ``tol`` (the answer
        is then accurate to about the conditioning of the profiles times the
        machine precision); -1 an all-zero sample (nothing to fit: NaN
        proportions).
    n_eval : ndarray of int64, shape (m,)
        Objective (and gradient) evaluations: the cost of SQUAREM's EM steps
        and of the Newton line searches.
    n_newton : ndarray of int64, shape (m,)
        Exact Hessians formed (``n k^2`` each); the Newton steps between them
        use quasi-Newton (BFGS) updates of the last one.
    loglik : ndarray, shape (m,)
        The objective at the answer: ``sum_g x_g log((phi theta)_g)`` plus
        ``sum_k (alpha_k - 1) log(theta_k)``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.solvers.mixture import MixtureInfo
    >>> info = MixtureInfo(np.zeros(2, np.int8), np.ones(2, np.int64), np.zeros(2, np.int64),
    ...                    np.zeros(2))
    >>> info.converged.tolist()
    [True, True]
    """

    status: np.ndarray
    n_eval: np.ndarray
    n_newton: np.ndarray
    loglik: np.ndarray

    @property
    def converged(self):
        """True where the optimality conditions held."""
        return self.status == 0


def fit_mixture(phi, X, *, alpha=None, tol=DEFAULT_TOL, max_iter=DEFAULT_MAX_ITER, n_jobs=None,
                theta0=None):
    """Fit every column of ``X`` (no checks: arrays from a pipeline that checked them).

    Parameters
    ----------
    phi : ndarray, shape (n, k)
        Profiles: finite, non-negative, every column summing to 1, C-contiguous float64.
    X : ndarray, shape (n, m)
        Counts: finite and non-negative (any float or int dtype, any order).
    alpha : ndarray, shape (k,), optional
        Dirichlet parameters, each at least 1 (default: 1, maximum likelihood).
    tol, max_iter : float, int
        KKT tolerance and cap on objective evaluations per sample.
    n_jobs : int, optional
        Worker threads.
    theta0 : ndarray, shape (k, m), optional
        Starting points (positive, columns summing to 1); default uniform.

    Returns
    -------
    theta : ndarray, shape (k, m)
        The maximisers (NaN columns for all-zero samples).
    info : MixtureInfo
    """
    from fastdeconv.kernels.mixture import em_batch

    n, k = phi.shape
    m = X.shape[1]
    a = np.zeros(k) if alpha is None else np.ascontiguousarray(alpha, dtype=np.float64) - 1.0
    theta = np.empty((m, k))
    n_eval = np.zeros(m, dtype=np.int64)
    n_newton = np.zeros(m, dtype=np.int64)
    status = np.zeros(m, dtype=np.int8)
    loglik = np.full(m, np.nan)
    bounds = chunk_bounds(n, m)

    def run(bound):
        j0, j1 = bound
        rows = np.ascontiguousarray(X[:, j0:j1].T, dtype=np.float64)
        if theta0 is None:
            start = np.full((j1 - j0, k), 1.0 / k)
        else:
            start = np.ascontiguousarray(theta0[:, j0:j1].T, dtype=np.float64)
        zero = ~(rows > 0).any(axis=1)
        live = np.flatnonzero(~zero)
        if live.size < rows.shape[0]:
            rows, start = np.ascontiguousarray(rows[live]), np.ascontiguousarray(start[live])
        out = (np.zeros(live.size, np.int64), np.zeros(live.size, np.int64),
               np.zeros(live.size, np.int8), np.empty(live.size))
        em_batch(phi, rows, start, a, float(tol), int(max_iter), *out)
        cols = j0 + live
        theta[cols] = start
        n_eval[cols], n_newton[cols], status[cols], loglik[cols] = out
        dead = j0 + np.flatnonzero(zero)
        theta[dead] = np.nan
        status[dead] = -1

    thread_map(run, bounds, n_jobs=resolve_n_jobs(n_jobs))
    return np.ascontiguousarray(theta.T), MixtureInfo(status, n_eval, n_newton, loglik)


def summarise_mixture(phi, X, theta, *, alpha=None, groups=None, contents=None, fisher=True,
                      z=False, n_jobs=None, advance=None):
    """Per-sample statistics of a fit, computed chunk by chunk in threads (no n x m temporaries).

    Parameters
    ----------
    phi : ndarray, shape (n, k)
        The fit's profiles (C-contiguous float64).
    X : ndarray, shape (n, m)
        The counts.
    theta : ndarray, shape (k, m)
        The fitted shares (NaN columns: all-zero samples, skipped).
    alpha : ndarray, shape (k,), optional
        The fit's Dirichlet parameters (default 1).
    groups : ndarray of int, shape (k,), optional
        Group (cell type) of every column (default: each its own).
    contents : ndarray, shape (T,), optional
        Reads per cell of every group: also the errors of the cell fractions.
    fisher : bool, default True
        Compute the standard errors (one Hessian per sample).
    z : bool, default False
        Also return the expected counts summed over samples (``n x k``).
    n_jobs : int, optional
    advance : callable, optional
        Called with the number of samples of every finished chunk, from the
        worker threads (e.g. :func:`fastdeconv._progress.advancer` of a bar).

    Returns
    -------
    dict
        ``pearson_r`` and ``dispersion`` (m,), ``se`` and ``se_cells`` (T, m) or
        None, ``z_total`` (n, k) or None.
    """
    from fastdeconv.kernels.mixture import summary_batch

    n, k = phi.shape
    m = X.shape[1]
    a = np.zeros(k) if alpha is None else np.ascontiguousarray(alpha, dtype=np.float64) - 1.0
    codes = np.arange(k) if groups is None else np.asarray(groups, dtype=np.int64)
    T = int(codes.max()) + 1
    cont = np.empty(0) if contents is None else np.ascontiguousarray(contents, dtype=np.float64)
    se = np.full((m, T), np.nan)
    se_c = np.full((m, T), np.nan)
    stats = np.full((m, 2), np.nan)
    bounds = chunk_bounds(n, m)

    z_total = np.zeros((n, k)) if z else None
    # the chunks' Z are added in chunk order as they arrive (the same sum whatever the
    # threads), holding only those that arrived early: not one n x k table per chunk
    pending = {}
    added = [0]
    lock = threading.Lock()

    def run(item):
        index, (j0, j1) = item
        live = j0 + np.flatnonzero(np.isfinite(theta[:, j0:j1]).all(axis=0))
        Zc = np.zeros((n, k)) if z else np.zeros((1, 1))
        if live.size:
            rows = np.ascontiguousarray(X[:, live].T, dtype=np.float64)
            th = np.ascontiguousarray(theta[:, live].T)
            out = (np.empty((live.size, T)), np.empty((live.size, T)), np.empty((live.size, 2)))
            summary_batch(phi, rows, th, a, codes, cont, bool(fisher), bool(z), Zc, *out)
            se[live], se_c[live], stats[live] = out
        if z:
            with lock:
                pending[index] = Zc
                while added[0] in pending:
                    z_total[...] += pending.pop(added[0])
                    added[0] += 1
        if advance is not None:
            advance(j1 - j0)

    thread_map(run, list(enumerate(bounds)), n_jobs=resolve_n_jobs(n_jobs))
    return {
        "pearson_r": stats[:, 0],
        "dispersion": stats[:, 1],
        "se": np.ascontiguousarray(se.T) if fisher else None,
        "se_cells": np.ascontiguousarray(se_c.T) if fisher and contents is not None else None,
        "z_total": z_total,
    }


def multinomial_map(profiles, counts, *, alpha=1.0, tol=None, max_iter=None, n_jobs=None,
                    return_info=False):
    """Proportions maximising a multinomial mixture's likelihood (times a Dirichlet prior).

    For each sample (column of ``counts``) solves

    ``max_theta sum_g x_g log(sum_k theta_k phi_gk) + sum_k (alpha_k - 1) log(theta_k)``

    over the simplex (``theta >= 0``, ``sum(theta) = 1``), where ``phi`` is
    ``profiles`` with every column divided by its sum: the model of
    BayesPrism and InstaPrism, whose EM fixed point this accelerates
    (SQUAREM, then Newton steps solved exactly on the simplex).  The
    objective is concave; the answer satisfies its optimality (KKT)
    conditions to ``tol``.

    Parameters
    ----------
    profiles : array_like, shape (n, k)
        Expression profiles of the ``k`` states (genes x states), non-negative;
        each column is normalised to sum 1.
    counts : array_like, shape (n,) or (n, m)
        Counts of one sample or of ``m`` samples (genes x samples), non-negative.
        The answer does not change when a sample is multiplied by a constant.
    alpha : float or array_like of shape (k,), default 1.0
        Dirichlet prior parameters, at least 1 (1: maximum likelihood; below 1
        the posterior has no maximum).
    tol : float, optional
        KKT tolerance (default 1e-8): stop when ``max_k max(theta_k |R_k - 1|,
        R_k - 1) <= tol`` with ``R = grad / (N + sum(alpha - 1))``.
    max_iter : int, optional
        Cap on objective evaluations per sample (default 2000).
    n_jobs : int, optional
        Worker threads; None or -1 all cores.
    return_info : bool, default False
        Also return a :class:`MixtureInfo`.

    Returns
    -------
    theta : ndarray, shape (k,) or (k, m)
        Proportions (of the reads), summing to 1 per sample; NaN for a sample
        with no counts.
    info : MixtureInfo
        Only with ``return_info=True``.

    Raises
    ------
    ValueError
        On negative, NaN or inf values, a profile that is zero everywhere,
        mismatched shapes, ``alpha < 1`` or a bad option.

    Warns
    -----
    fastdeconv.solvers.ConvergenceWarning
        When samples reach ``max_iter`` or have zero likelihood (a gene with
        counts that no state expresses).

    References
    ----------
    .. [1] Chu T. et al. (2022) Nat Cancer 3:505-517. doi:10.1038/s43018-022-00356-3
    .. [2] Hu M., Chikina M. (2024) Bioinformatics 40(7):btae440. doi:10.1093/bioinformatics/btae440
    .. [3] Varadhan R., Roland C. (2008) Scand J Stat 35:335-353.
       doi:10.1111/j.1467-9469.2007.00585.x

    Examples
    --------
    >>> import numpy as np
    >>> import fastdeconv
    >>> phi = np.array([[0.7, 0.1], [0.2, 0.1], [0.1, 0.8]])
    >>> x = 1000 * phi @ np.array([0.25, 0.75])
    >>> fastdeconv.multinomial_map(phi, x).round(6)
    array([0.25, 0.75])
    >>> theta, info = fastdeconv.multinomial_map(phi, np.column_stack([x, 3 * x]), return_info=True)
    >>> theta.round(6).tolist(), info.converged.tolist()
    ([[0.25, 0.25], [0.75, 0.75]], [True, True])
    """
    from fastdeconv._checks import check_float, check_int
    from fastdeconv.solvers._validate import as_real_array

    phi = as_real_array(profiles, "profiles")
    if phi.ndim != 2 or phi.shape[0] == 0 or phi.shape[1] == 0:
        raise ValueError(f"profiles must be a non-empty 2-D array (genes x states), got shape {phi.shape}")
    if not np.isfinite(phi).all() or (phi < 0).any():
        raise ValueError("profiles must be finite and non-negative")
    sums = phi.sum(axis=0)
    if (sums <= 0).any():
        j = int(np.flatnonzero(sums <= 0)[0])
        raise ValueError(f"profile {j} (column {j} of profiles) is zero on every gene")
    phi = np.ascontiguousarray(phi / sums, dtype=np.float64)
    X = as_real_array(counts, "counts")
    one = X.ndim == 1
    if one:
        X = X[:, None]
    if X.ndim != 2 or X.shape[0] != phi.shape[0]:
        raise ValueError(
            f"counts must have one row per gene of profiles ({phi.shape[0]}), got shape {X.shape}"
        )
    if not np.isfinite(X).all() or (X < 0).any():
        raise ValueError("counts must be finite and non-negative (raw counts or linear-scale values)")
    k = phi.shape[1]
    alpha_v = np.broadcast_to(np.asarray(alpha, dtype=np.float64), (k,)).copy()
    if not np.isfinite(alpha_v).all() or (alpha_v < 1).any():
        raise ValueError(f"alpha must be at least 1 (1: maximum likelihood), got {alpha!r}")
    tol = DEFAULT_TOL if tol is None else check_float(tol, "tol")
    max_iter = DEFAULT_MAX_ITER if max_iter is None else check_int(max_iter, "max_iter")
    theta, info = fit_mixture(phi, X, alpha=alpha_v, tol=tol, max_iter=max_iter, n_jobs=n_jobs)
    warn_mixture(info.status, max_iter)
    theta_out = theta[:, 0] if one else theta
    return (theta_out, info) if return_info else theta_out


def warn_mixture(status, max_iter, stacklevel=3):
    """Warn (ConvergenceWarning) about samples that did not converge.

    Parameters
    ----------
    status : ndarray of int8
        :attr:`MixtureInfo.status`.
    max_iter : int
        The cap used, for the message.
    stacklevel : int, optional
        Passed to :func:`warnings.warn`.
    """
    import warnings

    from fastdeconv.solvers.api import ConvergenceWarning

    capped = int(np.count_nonzero(status == 1))
    broken = int(np.count_nonzero(status == 2))
    stalled = int(np.count_nonzero(status == 3))
    if stalled:
        warnings.warn(
            f"{stalled} sample(s) stopped at rounding level before the optimality conditions "
            "held to tol (nearly collinear profiles); the answers are accurate to about the "
            "profiles' conditioning times machine precision: loosen tol to accept them",
            ConvergenceWarning, stacklevel=stacklevel,
        )
    if capped:
        warnings.warn(
            f"{capped} sample(s) reached max_iter={max_iter} objective evaluations before the "
            "optimality conditions held; raise max_iter or loosen tol",
            ConvergenceWarning, stacklevel=stacklevel,
        )
    if broken:
        warnings.warn(
            f"{broken} sample(s) have zero likelihood: a gene with counts is zero in every "
            "profile; give profiles a pseudo-count or drop such genes",
            ConvergenceWarning, stacklevel=stacklevel,
        )
