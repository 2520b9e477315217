"""The solvers' core for pipelines: arrays already checked, no re-checks, no warnings.

The public functions (:mod:`fastdeconv.solvers.api`) validate the user's arrays
and options once and call :func:`solve` or :func:`solve_gram`; pipelines that
have validated their inputs themselves call them directly.  Both return the
solutions as cell types x samples and a :class:`CoreInfo`; the caller decides
what to warn about.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fastdeconv.solvers._batch import BatchProblem, solve_batch
from fastdeconv.solvers._validate import DEFAULT_TOL

__all__ = ["CoreInfo", "solve", "solve_gram", "project_rows"]


@dataclass(frozen=True)
class CoreInfo:
    """Per-sample diagnostics of a core solve.

    Attributes
    ----------
    status : ndarray of int8, shape (m,)
        0 converged, 1 a cap was reached, 2 non-finite numbers.
    n_iter : ndarray of int64, shape (m,)
        Active-set changes (last solve of a Huber fit).
    n_reweight : ndarray of int64, shape (m,)
        Huber re-weighting rounds (zeros for least squares).
    residual_norm : ndarray, shape (m,) or None
        ``||sqrt(w) (A x - b)||`` when asked for.
    gene_weights : ndarray, shape (n, m) or None
        Final gene weights of a Huber fit (the fixed weights times the Huber
        weights of the last solve) when asked for.
    """

    status: np.ndarray
    n_iter: np.ndarray
    n_reweight: np.ndarray
    residual_norm: np.ndarray | None = None
    gene_weights: np.ndarray | None = None

    @property
    def converged(self):
        """True where the optimality conditions held (and the re-weighting settled)."""
        return self.status == 0


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


def _dense_problem(A, B2, weights, residuals):
    n = A.shape[0]
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
    return BatchProblem(
        gram, project, B2.shape[1], n, residual if residuals else None, _locator(B2, "B"),
        signature=A, weights=weights, raw=raw,
    )


def _info(status, n_iter, rounds, resid, W, weights):
    if W is not None:
        W = W.T
        if weights is not None:
            W = W * weights[:, None]
    return CoreInfo(status, n_iter, rounds, resid, W)


def solve(
    A,
    B,
    *,
    kind,
    slack=False,
    weights=None,
    huber=None,
    n_jobs=None,
    max_iter=-1,
    tol=DEFAULT_TOL,
    residuals=False,
    gene_weights=False,
):
    """Solve every column of ``B`` exactly; inputs are trusted (no checks).

    Parameters
    ----------
    A : ndarray, shape (n, k)
        Signature, float64, C-contiguous, finite.
    B : ndarray, shape (n, m)
        Bulk, float32 or float64, any memory order (chunks are converted).
    kind : {"nnls", "simplex"}
        ``x >= 0``, or ``x`` on the simplex.
    slack : bool, optional
        With ``kind="simplex"``: ``sum(x) <= 1`` instead of ``== 1``.
    weights : ndarray, shape (n,), optional
        Non-negative gene weights (float64).
    huber : tuple (c, max_rounds, rtol), optional
        Minimise Huber's loss by IRLS instead of squares.
    n_jobs : int or None, optional
        Worker threads.
    max_iter : int, optional
        Cap on active-set changes per sample (``-1``: the default ``5 k + 50``).
    tol : float, optional
        Relative dual tolerance.
    residuals : bool, optional
        Also compute the residual norms.
    gene_weights : bool, optional
        With ``huber``: also return the final gene weights.

    Returns
    -------
    X : ndarray, shape (k, m)
        Solutions, cell types x samples (a slack variable is dropped).
    info : CoreInfo

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.solvers._core import solve
    >>> A = np.array([[10.0, 1.0], [1.0, 8.0], [5.0, 5.0]])
    >>> X, info = solve(A, A @ np.array([[0.25], [0.75]]), kind="simplex")
    >>> X.round(10).ravel().tolist(), bool(info.converged[0])
    ([0.25, 0.75], True)
    """
    k = A.shape[1]
    problem = _dense_problem(A, B, weights, residuals)
    X, n_iter, status, resid, rounds, W = solve_batch(
        problem, kind, slack=slack, n_jobs=n_jobs, max_iter=max_iter, tol=tol, huber=huber,
        gene_weights=gene_weights and huber is not None,
    )
    return X[:, :k].T, _info(status, n_iter, rounds, resid, W, weights)


def solve_gram(AtA, AtB, *, kind, slack=False, btb=None, n_jobs=None, max_iter=-1, tol=DEFAULT_TOL,
               residuals=False):
    """Solve from a Gram matrix and projections; inputs are trusted (no checks).

    Parameters
    ----------
    AtA : ndarray, shape (k, k)
        Symmetric Gram matrix, float64, C-contiguous.
    AtB : ndarray, shape (k, m)
        Projections.
    kind, slack, n_jobs, max_iter, tol
        As in :func:`solve`.
    btb : ndarray, shape (m,), optional
        ``b'b`` per sample, for the residual norms.
    residuals : bool, optional
        Compute residual norms (needs ``btb``).

    Returns
    -------
    X : ndarray, shape (k, m)
    info : CoreInfo

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.solvers._core import solve_gram
    >>> A = np.array([[10.0, 1.0], [1.0, 8.0], [5.0, 5.0]])
    >>> b = A @ np.array([0.25, 0.75])
    >>> X, _ = solve_gram(A.T @ A, (A.T @ b)[:, None], kind="nnls")
    >>> X.round(10).ravel().tolist()
    [0.25, 0.75]
    """
    k = AtA.shape[0]

    def project(j0, j1):
        return np.ascontiguousarray(AtB[:, j0:j1].T, dtype=np.float64)

    residual = None
    if residuals and btb is not None:

        def residual(j0, j1, Xc):
            C = project(j0, j1)
            rss = btb[j0:j1] - 2.0 * np.einsum("ij,ij->i", Xc, C) + np.einsum("ij,jl,il->i", Xc, AtA, Xc)
            return np.sqrt(np.maximum(rss, 0.0))

    problem = BatchProblem(AtA, project, AtB.shape[1], k, residual, _locator(AtB, "AtB"))
    X, n_iter, status, resid, rounds, _ = solve_batch(
        problem, kind, slack=slack, n_jobs=n_jobs, max_iter=max_iter, tol=tol
    )
    return X[:, :k].T, _info(status, n_iter, rounds, resid, None, None)


def project_rows(A, block, row_map=None, common=None, *, n_jobs=None):
    """``A' b`` and the sums of the fit statistics for every row ``b`` of a block of samples.

    One pass over the block's stored values (CSR, or dense rows), in worker threads
    (:func:`fastdeconv.kernels.sparse.project_csr_rows`); nothing is densified.

    Parameters
    ----------
    A : ndarray, shape (n_used, q)
        float64, C-contiguous.
    block : scipy CSR matrix, :class:`fastdeconv.inputs.blocks.CSRRows` or ndarray
        Samples x genes.
    row_map : ndarray of int64, shape (n_genes,), optional
        Row of ``A`` for each gene (-1: not used); default: the identity.
    common : ndarray of bool, shape (n_genes,), optional
        Genes counted in each sample's total; default: all.
    n_jobs : int, optional
        Worker threads.

    Returns
    -------
    proj : ndarray, shape (m, q)
    sums : ndarray, shape (m, N_SUMS)
        ``sum b``, ``sum b^2`` over the genes used, ``sum b`` over ``common``, the
        count of negative or non-finite values.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> from fastdeconv.solvers._core import project_rows
    >>> proj, sums = project_rows(np.eye(2), sp.csr_array(np.array([[1.0, 2.0]])))
    >>> proj.tolist(), sums[0, :2].tolist()
    ([[1.0, 2.0]], [3.0, 5.0])
    """
    from fastdeconv._parallel import resolve_n_jobs, thread_map
    from fastdeconv.kernels.sparse import N_SUMS, project_csr_rows, project_dense_rows

    n_genes = block.shape[1]
    row_map = np.arange(n_genes, dtype=np.int64) if row_map is None else row_map
    common = np.ones(n_genes, dtype=np.bool_) if common is None else common
    m = block.shape[0]
    out = np.empty((m, A.shape[1]))
    sums = np.empty((m, N_SUMS))
    if hasattr(block, "indptr"):
        indptr, indices, data = block.indptr, block.indices, block.data

        def run(bounds):
            project_csr_rows(indptr, indices, data, row_map, common, A, bounds[0], bounds[1],
                             out, sums)
    else:
        X = np.ascontiguousarray(block)
        if X.dtype not in (np.float32, np.float64):
            X = X.astype(np.float64)

        def run(bounds):
            project_dense_rows(X, row_map, common, A, bounds[0], bounds[1], out, sums)
    n_jobs = resolve_n_jobs(n_jobs)
    step = max(256, -(-m // max(4 * n_jobs, 1)))
    thread_map(run, [(j, min(j + step, m)) for j in range(0, m, step)], n_jobs, blas=False)
    return out, sums
