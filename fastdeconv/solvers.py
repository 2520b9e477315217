"""Array API of the exact solvers: validation once at the boundary, then dispatch.

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

from fastdeconv.kernels.batch import BatchProblem, HuberLoss, solve_batch
from fastdeconv.kernels.robust import HUBER_C
from fastdeconv.kernels.simplex import project_simplex_kernel

DEFAULT_TOL = 1e-11


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


def _as_real_array(value, name):
    arr = np.asarray(value)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.floating)
        or np.issubdtype(arr.dtype, np.integer)
        or arr.dtype == np.bool_
    ):
        raise TypeError(f"{name} must hold real numbers, got an array of dtype {arr.dtype}")
    return arr


def _check_finite_small(arr, name):
    if not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        where = ", ".join(str(int(i)) for i in bad)
        raise ValueError(
            f"{name} contains NaN or inf (first at index ({where})); "
            "remove or impute non-finite values before solving"
        )


def _validate_signature(A):
    A = _as_real_array(A, "A")
    if A.ndim != 2:
        raise ValueError(f"A must be a 2-D (genes x cell types) matrix, got shape {A.shape}")
    if A.shape[0] == 0 or A.shape[1] == 0:
        raise ValueError(f"A is empty (shape {A.shape}); it needs at least one row and one column")
    A = np.ascontiguousarray(A, dtype=np.float64)
    _check_finite_small(A, "A")
    return A


def _validate_rhs(B, n, name="B", what="genes"):
    B = _as_real_array(B, name)
    if B.ndim not in (1, 2):
        raise ValueError(f"{name} must be 1-D (one sample) or 2-D ({what} x samples), got shape {B.shape}")
    if B.shape[0] != n:
        raise ValueError(
            f"{name} has {B.shape[0]} rows but A has {n}: the rows of both must be the same {what}, in the same order"
        )
    if B.ndim == 2 and B.shape[1] == 0:
        raise ValueError(f"{name} has no samples (shape {B.shape})")
    return B


def _validate_weights(weights, n):
    if weights is None:
        return None
    w = _as_real_array(weights, "weights").astype(np.float64, copy=False)
    if w.shape != (n,):
        raise ValueError(f"weights must have shape ({n},), one per gene (row of A), got {w.shape}")
    _check_finite_small(w, "weights")
    if (w < 0).any():
        raise ValueError(f"weights must be non-negative; weights[{int(np.argmin(w))}] = {w.min()}")
    if not (w > 0).any():
        raise ValueError("all weights are zero: at least one gene must carry weight")
    return w


def _validate_options(max_iter, tol):
    if max_iter is None:
        max_iter = -1
    elif isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
        raise ValueError(f"max_iter must be a positive integer or None, got {max_iter!r}")
    if tol is None:
        tol = DEFAULT_TOL
    elif not (isinstance(tol, (float, int, np.floating)) and 0 <= tol < 1):
        raise ValueError(f"tol must be a number in [0, 1), got {tol!r}")
    return int(max_iter), float(tol)


def _locator(B2, name):
    def locate(j0, j1):
        chunk = B2[:, j0:j1]
        bad = ~np.isfinite(chunk)
        if bad.any():
            i, j = np.argwhere(bad)[0]
            return (
                f"{name} contains NaN or inf (first at row {int(i)}, column {int(j0 + j)}); "
                "remove or impute non-finite values before solving"
            )
        return (
            f"the projection A'{name} overflowed for samples {j0}..{j1 - 1}: the values are too "
            "large for float64 arithmetic; rescale the data"
        )

    return locate


def _finish(X, n_iter, status, resid, rounds, k, one_sample, max_iter, return_info, loss=None):
    X = X[:, :k].T
    n_bad = int(np.count_nonzero(status != 0))
    if n_bad:
        cap = max_iter if max_iter > 0 else "5k+50"
        if loss is None:
            what = f"before the optimality (KKT) conditions held (iteration cap max_iter={cap})"
        else:
            what = (
                "before the Huber re-weighting settled or the optimality conditions held "
                f"(caps max_reweight={loss.max_rounds}, max_iter={cap})"
            )
        warnings.warn(
            f"{n_bad} of {status.size} samples stopped {what}; raise the cap or check "
            "info.converged",
            ConvergenceWarning,
            stacklevel=3,
        )
    if one_sample:
        X = X[:, 0]
    if not return_info:
        return X
    if resid is None:
        resid = np.full(status.shape, np.nan)
    converged = status == 0
    if one_sample:
        resid, n_iter, converged, rounds = (a.reshape(()) for a in (resid, n_iter, converged, rounds))
    return X, SolveInfo(resid, n_iter, converged, rounds)


def _dense_problem(A, B, weights):
    n, k = A.shape
    B2 = B[:, None] if B.ndim == 1 else B
    WA = A if weights is None else A * weights[:, None]
    sqrt_w = None if weights is None else np.sqrt(weights)

    def chunk_of(j0, j1):
        chunk = B2[:, j0:j1]
        if chunk.dtype != np.float64:
            chunk = chunk.astype(np.float64)
        return chunk

    def project(j0, j1):
        return np.ascontiguousarray(chunk_of(j0, j1).T @ WA)

    def residual(j0, j1, Xc):
        R = chunk_of(j0, j1) - A @ Xc.T
        if sqrt_w is not None:
            R *= sqrt_w[:, None]
        return np.sqrt(np.einsum("ij,ij->j", R, R))

    def raw(j0, j1):
        return np.ascontiguousarray(chunk_of(j0, j1).T)

    gram = WA.T @ A
    gram = 0.5 * (gram + gram.T)
    problem = BatchProblem(
        gram, project, B2.shape[1], n, residual, _locator(B2, "B"), signature=A, weights=weights, raw=raw
    )
    return problem


def _validate_loss(loss, huber_c, max_reweight, reweight_tol):
    if loss in (None, "squared"):
        return None
    if loss != "huber":
        raise ValueError(f"loss must be 'squared' or 'huber', got {loss!r}")
    if not (isinstance(huber_c, (int, float, np.floating)) and np.isfinite(huber_c) and huber_c > 0):
        raise ValueError(f"huber_c must be a positive number (1.345 is usual), got {huber_c!r}")
    if isinstance(max_reweight, bool) or not isinstance(max_reweight, (int, np.integer)) or max_reweight < 0:
        raise ValueError(f"max_reweight must be a non-negative integer, got {max_reweight!r}")
    if not (isinstance(reweight_tol, (int, float, np.floating)) and 0 <= reweight_tol < 1):
        raise ValueError(f"reweight_tol must be a number in [0, 1), got {reweight_tol!r}")
    return HuberLoss(huber_c, max_reweight, reweight_tol)


def _solve_dense(kind, A, B, weights, slack, n_jobs, return_info, max_iter, tol, loss=None):
    A = _validate_signature(A)
    B = _validate_rhs(B, A.shape[0])
    weights = _validate_weights(weights, A.shape[0])
    max_iter, tol = _validate_options(max_iter, tol)
    problem = _dense_problem(A, B, weights)
    if not return_info:
        problem.residual = None
    X, n_iter, status, resid, rounds = solve_batch(
        problem, kind, slack=slack, n_jobs=n_jobs, max_iter=max_iter, tol=tol, loss=loss
    )
    return _finish(
        X, n_iter, status, resid, rounds, A.shape[1], B.ndim == 1, max_iter, return_info, loss
    )


def _validate_constraint(constraint):
    if constraint not in ("eq", "le"):
        raise ValueError(
            f"constraint must be 'eq' (sum(x) == 1) or 'le' (sum(x) <= 1), got {constraint!r}"
        )
    return constraint == "le"


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
    B : array_like, shape (n,) or (n, m)
        Bulk: one sample, or genes x samples. float32, Fortran order and
        read-only arrays are used in place (only chunks are converted).
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
    loss = _validate_loss(loss, huber_c, max_reweight, reweight_tol)
    return _solve_dense("nnls", A, B, weights, False, n_jobs, return_info, max_iter, tol, loss)


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
    B : array_like, shape (n,) or (n, m)
        Bulk: one sample, or genes x samples.
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
    slack = _validate_constraint(constraint)
    loss = _validate_loss(loss, huber_c, max_reweight, reweight_tol)
    return _solve_dense("simplex", A, B, weights, slack, n_jobs, return_info, max_iter, tol, loss)


def _validate_gram(AtA, AtB, btb):
    AtA = _as_real_array(AtA, "AtA")
    if AtA.ndim != 2 or AtA.shape[0] != AtA.shape[1] or AtA.shape[0] == 0:
        raise ValueError(f"AtA must be a non-empty square (k x k) matrix, got shape {AtA.shape}")
    AtA = np.ascontiguousarray(AtA, dtype=np.float64)
    _check_finite_small(AtA, "AtA")
    scale = np.abs(AtA).max()
    if np.abs(AtA - AtA.T).max() > 1e-10 * max(scale, np.finfo(float).tiny):
        raise ValueError("AtA is not symmetric: pass the Gram matrix A'A (or A'WA)")
    if (np.diag(AtA) < 0).any():
        raise ValueError("AtA has negative diagonal entries: it is not a Gram matrix A'A")
    AtB = _validate_rhs(AtB, AtA.shape[0], "AtB", "cell types")
    AtB2 = AtB[:, None] if AtB.ndim == 1 else AtB
    if btb is not None:
        btb = _as_real_array(btb, "btb").astype(np.float64, copy=False).reshape(-1)
        if btb.shape != (AtB2.shape[1],):
            raise ValueError(f"btb must hold one value b'b per sample ({AtB2.shape[1]}), got shape {btb.shape}")
        _check_finite_small(btb, "btb")
    return AtA, AtB, AtB2, btb


def _solve_gram(kind, AtA, AtB, btb, slack, n_jobs, return_info, max_iter, tol):
    AtA, AtB, AtB2, btb = _validate_gram(AtA, AtB, btb)
    max_iter, tol = _validate_options(max_iter, tol)
    k = AtA.shape[0]

    def project(j0, j1):
        return np.ascontiguousarray(AtB2[:, j0:j1].T, dtype=np.float64)

    residual = None
    if return_info and btb is not None:

        def residual(j0, j1, Xc):
            C = project(j0, j1)
            rss = btb[j0:j1] - 2.0 * np.einsum("ij,ij->i", Xc, C) + np.einsum("ij,jl,il->i", Xc, AtA, Xc)
            return np.sqrt(np.maximum(rss, 0.0))

    problem = BatchProblem(AtA, project, AtB2.shape[1], k, residual, _locator(AtB2, "AtB"))
    X, n_iter, status, resid, rounds = solve_batch(
        problem, kind, slack=slack, n_jobs=n_jobs, max_iter=max_iter, tol=tol
    )
    return _finish(X, n_iter, status, resid, rounds, k, AtB.ndim == 1, max_iter, return_info)


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
    slack = _validate_constraint(constraint)
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
    arr = np.asarray(_as_real_array(v, "v"), dtype=np.float64)
    if arr.ndim not in (1, 2) or arr.shape[0] == 0:
        raise ValueError(f"v must be a non-empty vector or matrix, got shape {arr.shape}")
    _check_finite_small(arr, "v")
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
