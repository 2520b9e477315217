"""The public array API of the exact solvers: validation once at the boundary, then the core.

Everything follows the deconvolution model ``G = S P``: ``A`` is the signature
(genes x cell types), ``B`` the bulk (genes x samples) and the result ``X`` the
proportions (cell types x samples).  Each column of ``B`` is an independent
problem; all are solved exactly by the active-set kernels in
:mod:`fastdeconv.kernels`, many at a time in threads.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from fastdeconv.kernels.robust import HUBER_C
from fastdeconv.kernels.simplex import project_simplex_kernel
from fastdeconv.solvers import _core
from fastdeconv.solvers._validate import (
    as_real_array,
    check_finite_small,
    validate_constraint,
    validate_gram,
    validate_loss,
    validate_options,
    validate_rhs,
    validate_signature,
    validate_weights,
)


class ConvergenceWarning(UserWarning):
    """Some samples reached the iteration cap before the optimality conditions held.

    Examples
    --------
    >>> import warnings
    >>> import numpy as np
    >>> import fastdeconv
    >>> rng = np.random.default_rng(15)
    >>> A, b = rng.standard_normal((50, 30)), rng.standard_normal(50)
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     x = fastdeconv.nnls(A, b, max_iter=1)
    >>> caught[0].category.__name__
    'ConvergenceWarning'
    """


@dataclass(frozen=True)
class SolveInfo:
    """Diagnostics of a batched solve, one entry per sample.

    Attributes
    ----------
    residual_norm : ndarray
        ``||sqrt(w) * (A x - b)||_2`` per sample (NaN where it cannot be known,
        e.g. Gram-form input without ``btb``).
    n_iter : ndarray of int
        Active-set changes made per sample.
    converged : ndarray of bool
        True where the KKT conditions hold to the tolerance (and, for the
        Huber loss, the re-weighting settled).
    n_reweight : ndarray of int
        Re-weighting rounds of the Huber loss (zeros for least squares).

    Examples
    --------
    >>> import numpy as np, fastdeconv
    >>> A = np.eye(2)
    >>> x, info = fastdeconv.nnls(A, np.array([1.0, -1.0]), return_info=True)
    >>> bool(info.converged), float(info.residual_norm)
    (True, 1.0)
    """

    residual_norm: np.ndarray
    n_iter: np.ndarray
    converged: np.ndarray
    n_reweight: np.ndarray


def warn_unconverged(status, max_iter, huber=None, stacklevel=3):
    """Warn (:class:`ConvergenceWarning`) when some samples stopped at a cap.

    Parameters
    ----------
    status : ndarray of int8
        Per-sample status codes of the core solve.
    max_iter : int
        The active-set cap used (``-1``: the default).
    huber : tuple, optional
        The Huber options used, for the message.
    stacklevel : int, optional
        Passed to :func:`warnings.warn`.
    """
    n_bad = int(np.count_nonzero(status != 0))
    if not n_bad:
        return
    cap = max_iter if max_iter > 0 else "5k+50"
    if huber is None:
        what = f"before the optimality (KKT) conditions held (iteration cap max_iter={cap})"
    else:
        what = (
            "before the Huber re-weighting settled or the optimality conditions held "
            f"(caps max_reweight={huber[1]}, max_iter={cap})"
        )
    warnings.warn(
        f"{n_bad} of {status.size} samples stopped {what}; raise the cap or check "
        "info.converged",
        ConvergenceWarning,
        stacklevel=stacklevel + 1,
    )


def _finish(X, info, one_sample, max_iter, return_info, huber=None):
    warn_unconverged(info.status, max_iter, huber, stacklevel=4)
    if one_sample:
        X = X[:, 0]
    if not return_info:
        return X
    resid = info.residual_norm
    if resid is None:
        resid = np.full(info.status.shape, np.nan)
    n_iter, converged, rounds = info.n_iter, info.converged, info.n_reweight
    if one_sample:
        resid, n_iter, converged, rounds = (a.reshape(()) for a in (resid, n_iter, converged, rounds))
    return X, SolveInfo(resid, n_iter, converged, rounds)


def _solve_sparse(kind, A, B, weights, slack, n_jobs, return_info, max_iter, tol, huber):
    """A scipy.sparse bulk (genes x samples): projected from its non-zeros, never densified
    whole (squares: from the Gram form; Huber's loss: one dense block of samples at a time)."""
    A = validate_signature(A)
    n, k = A.shape
    if B.ndim != 2 or B.shape[0] != n:
        raise ValueError(f"B must have {n} rows (genes, as A), got shape {B.shape}")
    if B.shape[1] == 0:
        validate_rhs(np.zeros((n, 0)), n)  # the dense refusal of a bulk with no samples
    rows = B.T if B.format == "csc" else B.T.tocsr()  # samples x genes, CSR
    if not np.all(np.isfinite(rows.data)):
        raise ValueError("B contains NaN or inf; remove or impute non-finite values before "
                         "solving")
    weights = validate_weights(weights, n)
    max_iter, tol = validate_options(max_iter, tol)
    if huber is not None:  # per-sample weights: dense blocks of samples
        m = rows.shape[0]
        parts = [_core.solve(A, np.ascontiguousarray(rows[j:j + 4096].toarray().T,
                                                     dtype=np.float64),
                             kind=kind, slack=slack, weights=weights, huber=huber,
                             n_jobs=n_jobs, max_iter=max_iter, tol=tol, residuals=return_info)
                 for j in range(0, m, 4096)]
        X = np.hstack([p[0] for p in parts]) if parts else np.zeros((k, 0))
        info = _core.CoreInfo(*(np.concatenate([getattr(p[1], f) for p in parts])
                                if parts else np.zeros(0)
                                for f in ("status", "n_iter", "n_reweight")),
                              np.concatenate([p[1].residual_norm for p in parts])
                              if return_info and parts else None)
        return _finish(X, info, False, max_iter, return_info, huber)
    WA = A if weights is None else A * weights[:, None]
    proj, sums = _core.project_rows(np.ascontiguousarray(WA), rows, n_jobs=n_jobs)
    gram = WA.T @ A
    btb = None
    if return_info:
        btb = sums[:, 1] if weights is None else np.asarray(
            rows.multiply(rows) @ weights).ravel()
    X, info = _core.solve_gram(0.5 * (gram + gram.T), np.ascontiguousarray(proj.T), kind=kind,
                               slack=slack, btb=btb, n_jobs=n_jobs, max_iter=max_iter, tol=tol,
                               residuals=return_info)
    return _finish(X, info, False, max_iter, return_info)


def _solve_dense(kind, A, B, weights, slack, n_jobs, return_info, max_iter, tol, huber=None):
    import scipy.sparse as sp

    if sp.issparse(B):
        return _solve_sparse(kind, A, B, weights, slack, n_jobs, return_info, max_iter, tol,
                             huber)
    A = validate_signature(A)
    B = validate_rhs(B, A.shape[0])
    weights = validate_weights(weights, A.shape[0])
    max_iter, tol = validate_options(max_iter, tol)
    X, info = _core.solve(
        A, B[:, None] if B.ndim == 1 else B, kind=kind, slack=slack, weights=weights,
        huber=huber, n_jobs=n_jobs, max_iter=max_iter, tol=tol, residuals=return_info,
    )
    return _finish(X, info, B.ndim == 1, max_iter, return_info, huber)


def _solve_gram(kind, AtA, AtB, btb, slack, n_jobs, return_info, max_iter, tol):
    AtA, AtB, AtB2, btb = validate_gram(AtA, AtB, btb)
    max_iter, tol = validate_options(max_iter, tol)
    X, info = _core.solve_gram(
        AtA, AtB2, kind=kind, slack=slack, btb=btb, n_jobs=n_jobs, max_iter=max_iter, tol=tol,
        residuals=return_info,
    )
    return _finish(X, info, AtB.ndim == 1, max_iter, return_info)


def nnls(
    A,
    B,
    *,
    weights=None,
    loss="squared",
    huber_c=HUBER_C,
    max_reweight=500,
    reweight_tol=1e-5,
    n_jobs=None,
    return_info=False,
    max_iter=None,
    tol=None,
):
    """Non-negative least squares for one or many samples.

    Solves ``min_x ||A x - b||_2`` subject to ``x >= 0`` exactly, for every
    column ``b`` of ``B``, with an active-set method on the Gram form (see
    :doc:`/theory`).

    Parameters
    ----------
    A : array_like, shape (n, k)
        Signature: genes x cell types.
    B : array_like or scipy.sparse matrix, shape (n,) or (n, m)
        Bulk: one sample, or genes x samples. float32, Fortran order and
        read-only arrays are used in place (only chunks are converted); a
        sparse matrix is projected from its non-zeros (CSC in place), never
        densified whole.
    weights : array_like, shape (n,), optional
        Non-negative per-gene weights: minimise ``sum_i w_i (A x - b)_i^2``.
    loss : {"squared", "huber"}, optional
        ``"squared"`` (default): least squares. ``"huber"``: Huber's robust
        loss, solved exactly per round by iteratively re-weighted least squares
        with the residual scale re-estimated (normalised MAD) every round; genes
        a sample does not fit lose influence. See :mod:`fastdeconv.kernels.robust`.
    huber_c : float, optional
        Huber's constant in residual-scale units (default 1.345: 95% efficiency
        under normal errors).
    max_reweight : int, optional
        Cap on Huber re-weighting rounds (default 500); a sample that reaches it
        is reported as not converged.
    reweight_tol : float, optional
        Huber rounds stop when no coefficient moves by more than this fraction
        of the largest one (default 1e-5).
    n_jobs : int, optional
        Worker threads; ``None`` (default) or ``-1`` uses every available core.
    return_info : bool, optional
        Also return a :class:`SolveInfo` (residual norms, iterations, convergence).
    max_iter : int, optional
        Cap on active-set changes per sample (default ``5 k + 50``); a sample
        that reaches it triggers a :class:`ConvergenceWarning`.
    tol : float, optional
        Relative tolerance on the dual (KKT) conditions (default ``1e-11``).

    Returns
    -------
    X : ndarray, shape (k,) or (k, m)
        The solutions, cell types x samples.
    info : SolveInfo
        Only when ``return_info`` is True.

    Raises
    ------
    ValueError
        On NaN or inf, mismatched or empty shapes, or invalid options.
    TypeError
        On non-numeric input.

    See Also
    --------
    simplex_lstsq : the same with ``sum(x) == 1``.
    nnls_gram : the same from a precomputed Gram matrix.

    Notes
    -----
    The result agrees with :func:`scipy.optimize.nnls` to rounding error; it is
    computed from ``A'A`` and ``A'B`` (one BLAS call per chunk of samples), so its
    cost per sample does not grow with the number of genes.

    Examples
    --------
    >>> import numpy as np
    >>> import fastdeconv
    >>> S = np.array([[10.0, 1.0], [1.0, 8.0], [5.0, 5.0]])
    >>> p = np.array([0.25, 0.75])
    >>> fastdeconv.nnls(S, S @ p).round(10)
    array([0.25, 0.75])
    >>> X = fastdeconv.nnls(S, np.column_stack([S @ p, -S @ p]))
    >>> X.shape
    (2, 2)
    """
    huber = validate_loss(loss, huber_c, max_reweight, reweight_tol)
    return _solve_dense("nnls", A, B, weights, False, n_jobs, return_info, max_iter, tol, huber)


def simplex_lstsq(
    A,
    B,
    *,
    weights=None,
    constraint="eq",
    loss="squared",
    huber_c=HUBER_C,
    max_reweight=500,
    reweight_tol=1e-5,
    n_jobs=None,
    return_info=False,
    max_iter=None,
    tol=None,
):
    """Least squares on the probability simplex, for one or many samples.

    Solves ``min_x ||A x - b||_2`` subject to ``x >= 0`` and ``sum(x) == 1``
    (or ``sum(x) <= 1`` with ``constraint="le"``) exactly, for every column of
    ``B``, with an active-set method on the Gram form (see :doc:`/theory`).

    Parameters
    ----------
    A : array_like, shape (n, k)
        Signature: genes x cell types.
    B : array_like or scipy.sparse matrix, shape (n,) or (n, m)
        Bulk: one sample, or genes x samples; a sparse matrix is projected from
        its non-zeros (CSC in place), never densified whole.
    weights : array_like, shape (n,), optional
        Non-negative per-gene weights: minimise ``sum_i w_i (A x - b)_i^2``.
    constraint : {"eq", "le"}, optional
        ``"eq"`` (default): proportions sum to exactly 1. ``"le"``: they sum to
        at most 1 and ``1 - sum(x)`` is the part of the sample the signature
        does not explain.
    loss : {"squared", "huber"}, optional
        ``"squared"`` (default): least squares. ``"huber"``: Huber's robust
        loss, solved exactly per round by iteratively re-weighted least squares
        with the residual scale re-estimated (normalised MAD) every round; genes
        a sample does not fit lose influence. See :mod:`fastdeconv.kernels.robust`.
    huber_c : float, optional
        Huber's constant in residual-scale units (default 1.345: 95% efficiency
        under normal errors).
    max_reweight : int, optional
        Cap on Huber re-weighting rounds (default 500); a sample that reaches it
        is reported as not converged.
    reweight_tol : float, optional
        Huber rounds stop when no coefficient moves by more than this fraction
        of the largest one (default 1e-5).
    n_jobs : int, optional
        Worker threads; ``None`` (default) or ``-1`` uses every available core.
    return_info : bool, optional
        Also return a :class:`SolveInfo`.
    max_iter : int, optional
        Cap on active-set changes per sample (default ``5 k + 50``, ``k``
        counting the slack variable of ``constraint="le"``).
    tol : float, optional
        Relative tolerance on the dual (KKT) conditions (default ``1e-11``).

    Returns
    -------
    X : ndarray, shape (k,) or (k, m)
        The solutions; with ``constraint="eq"`` every column sums to 1 to within
        a few units of rounding.
    info : SolveInfo
        Only when ``return_info`` is True.

    Raises
    ------
    ValueError
        On NaN or inf, mismatched or empty shapes, or invalid options.

    See Also
    --------
    nnls : without the sum constraint.
    simplex_lstsq_gram : from a precomputed Gram matrix.

    Examples
    --------
    >>> import numpy as np
    >>> import fastdeconv
    >>> S = np.array([[10.0, 1.0], [1.0, 8.0], [5.0, 5.0]])
    >>> b = 2.0 * S @ np.array([0.25, 0.75])      # twice the mass
    >>> x = fastdeconv.simplex_lstsq(S, b)
    >>> float(x.sum())
    1.0
    >>> fastdeconv.simplex_lstsq(S, 0.5 * S @ np.array([0.25, 0.75]), constraint="le").round(10)
    array([0.125, 0.375])
    """
    slack = validate_constraint(constraint)
    huber = validate_loss(loss, huber_c, max_reweight, reweight_tol)
    return _solve_dense("simplex", A, B, weights, slack, n_jobs, return_info, max_iter, tol, huber)


def nnls_gram(AtA, AtB, *, btb=None, n_jobs=None, return_info=False, max_iter=None, tol=None):
    """Non-negative least squares from a precomputed Gram matrix.

    Solves ``min_x 1/2 x' AtA x - x' Atb`` subject to ``x >= 0`` for every
    column of ``AtB``, which is ``min ||A x - b||`` when ``AtA = A'A`` and
    ``AtB = A'B``. Useful when the same signature is applied to data that arrive
    in pieces, or when ``A'B`` comes from a sparse or out-of-core product.

    Parameters
    ----------
    AtA : array_like, shape (k, k)
        Symmetric positive semi-definite Gram matrix (``A' W A`` for weights).
    AtB : array_like, shape (k,) or (k, m)
        Projections ``A' W B``.
    btb : array_like, shape (m,), optional
        ``b' W b`` per sample; only used to report residual norms.
    n_jobs, return_info, max_iter, tol
        As in :func:`nnls`.

    Returns
    -------
    X : ndarray, shape (k,) or (k, m)
        The solutions.
    info : SolveInfo
        Only when ``return_info`` is True; ``residual_norm`` is NaN unless
        ``btb`` is given (it is then computed from the Gram form, accurate to
        about ``sqrt(eps) ||b||``).

    See Also
    --------
    nnls : from the signature and bulk directly.

    Examples
    --------
    >>> import numpy as np
    >>> import fastdeconv
    >>> S = np.array([[10.0, 1.0], [1.0, 8.0], [5.0, 5.0]])
    >>> b = S @ np.array([0.25, 0.75])
    >>> fastdeconv.nnls_gram(S.T @ S, S.T @ b).round(10)
    array([0.25, 0.75])
    """
    return _solve_gram("nnls", AtA, AtB, btb, False, n_jobs, return_info, max_iter, tol)


def simplex_lstsq_gram(
    AtA, AtB, *, btb=None, constraint="eq", n_jobs=None, return_info=False, max_iter=None, tol=None
):
    """Simplex-constrained least squares from a precomputed Gram matrix.

    Parameters
    ----------
    AtA : array_like, shape (k, k)
        Symmetric positive semi-definite Gram matrix.
    AtB : array_like, shape (k,) or (k, m)
        Projections ``A' W B``.
    btb : array_like, shape (m,), optional
        ``b' W b`` per sample; only used to report residual norms.
    constraint : {"eq", "le"}, optional
        As in :func:`simplex_lstsq`.
    n_jobs, return_info, max_iter, tol
        As in :func:`simplex_lstsq`.

    Returns
    -------
    X : ndarray, shape (k,) or (k, m)
        The solutions.
    info : SolveInfo
        Only when ``return_info`` is True.

    See Also
    --------
    simplex_lstsq : from the signature and bulk directly.

    Examples
    --------
    >>> import numpy as np
    >>> import fastdeconv
    >>> S = np.array([[10.0, 1.0], [1.0, 8.0], [5.0, 5.0]])
    >>> b = S @ np.array([0.25, 0.75])
    >>> fastdeconv.simplex_lstsq_gram(S.T @ S, S.T @ b).round(10)
    array([0.25, 0.75])
    """
    slack = validate_constraint(constraint)
    return _solve_gram("simplex", AtA, AtB, btb, slack, n_jobs, return_info, max_iter, tol)


def project_simplex(v, total=1.0):
    """Euclidean projection onto the simplex ``{x >= 0, sum(x) = total}``.

    Parameters
    ----------
    v : array_like, shape (k,) or (k, m)
        A vector, or a matrix whose columns are projected one by one.
    total : float, optional
        The simplex's sum (default 1); must be positive.

    Returns
    -------
    ndarray
        The projection(s), same shape as ``v``.

    References
    ----------
    L. Condat, "Fast projection onto the simplex and the l1 ball",
    *Math. Program.* 158 (2016) 575-585. doi:10.1007/s10107-015-0946-7

    Examples
    --------
    >>> import numpy as np
    >>> import fastdeconv
    >>> fastdeconv.project_simplex(np.array([0.5, 0.8, -1.0])).round(6)
    array([0.35, 0.65, 0.  ])
    """
    arr = np.asarray(as_real_array(v, "v"), dtype=np.float64)
    if arr.ndim not in (1, 2) or arr.shape[0] == 0:
        raise ValueError(f"v must be a non-empty vector or matrix, got shape {arr.shape}")
    check_finite_small(arr, "v")
    if not (np.isfinite(total) and total > 0):
        raise ValueError(f"total must be a positive finite number, got {total!r}")
    if arr.ndim == 1:
        return project_simplex_kernel(np.ascontiguousarray(arr), float(total))
    out = np.empty_like(arr)
    for j in range(arr.shape[1]):
        out[:, j] = project_simplex_kernel(np.ascontiguousarray(arr[:, j]), float(total))
    return out


__all__ = [
    "nnls",
    "simplex_lstsq",
    "nnls_gram",
    "simplex_lstsq_gram",
    "project_simplex",
    "SolveInfo",
    "ConvergenceWarning",
]
