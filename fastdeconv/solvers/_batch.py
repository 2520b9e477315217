"""The threaded driver that solves many samples: project a chunk with BLAS, then solve it.

The samples (columns of ``B``) are cut into chunks.  Each worker thread takes a
chunk, projects it with one single-threaded BLAS call (``C = B_chunk' W A``,
which reads the chunk straight out of the caller's array, converting only that
chunk when the dtype is not float64), and hands ``C`` to a ``nogil`` Numba
kernel that solves its samples one after another.  Running BLAS threads and
solver threads at once oversubscribes the cores; this pipeline keeps every
core busy with one thing at a time.  Peak memory is the input, the ``k x m``
result and one chunk per worker: never a second copy of ``B``.

Only Python threads and ``nogil`` kernels are used (no ``parallel=True``), so
the driver is safe to call from several Python threads at once and from code
that already runs its own thread pool.
"""

from __future__ import annotations

import numpy as np

from fastdeconv._parallel import resolve_n_jobs, thread_map
from fastdeconv.kernels._active_set import gram_batch
from fastdeconv.kernels.nnls import default_max_iter
from fastdeconv.kernels.robust import huber_batch
from fastdeconv.kernels.simplex import augment_gram

# Bytes of bulk data per chunk: large enough to amortise Python and BLAS call
# overhead and to give BLAS wide blocks (measured: 16 MiB beat 4 MiB by 20% on
# 20000 genes x 1000 samples, and matched it on wide inputs), small enough that
# one chunk per worker is a negligible addition to memory.
CHUNK_BYTES = 16 << 20
MIN_CHUNK, MAX_CHUNK = 16, 4096
MIN_CHUNKS = 8


def chunk_size(n_rows, m):
    """Samples per chunk for a bulk matrix with ``n_rows`` genes and ``m`` samples.

    The width deliberately does not depend on the number of worker threads:
    BLAS rounding depends on the chunk shape, so a width chosen per thread
    count would make results depend on ``n_jobs``.

    Parameters
    ----------
    n_rows : int
        Genes (rows of ``B``; ``k`` for precomputed projections).
    m : int
        Samples.

    Returns
    -------
    int
        Chunk width, at least :data:`MIN_CHUNK`; inputs are split into at least
        :data:`MIN_CHUNKS` chunks when they have enough samples.

    Examples
    --------
    >>> from fastdeconv.solvers._batch import chunk_size
    >>> chunk_size(5000, 100000)
    419
    """
    width = CHUNK_BYTES // (8 * max(n_rows, 1))
    width = min(max(width, MIN_CHUNK), MAX_CHUNK)
    # At least MIN_CHUNKS chunks when there are enough samples, so threads have
    # work; the width never depends on the number of workers, so neither do
    # the results (BLAS rounding depends on the chunk shape).
    width = min(width, max(MIN_CHUNK, -(-m // MIN_CHUNKS)))
    return int(width)


def chunk_bounds(n_rows, m):
    """``(j0, j1)`` of every chunk of samples, of :func:`chunk_size` samples each.

    Examples
    --------
    >>> from fastdeconv.solvers._batch import chunk_bounds
    >>> chunk_bounds(5000, 40)
    [(0, 16), (16, 32), (32, 40)]
    """
    width = chunk_size(n_rows, m)
    return [(j0, min(j0 + width, m)) for j0 in range(0, m, width)]


class BatchProblem:
    """One batched solve: the Gram matrix and how to project a chunk of samples.

    Parameters
    ----------
    gram : ndarray, shape (k, k)
        ``A' W A``.
    project : callable
        ``project(j0, j1) -> ndarray (j1 - j0, k)``, C-contiguous float64: the
        rows ``(A' W B[:, j0:j1])'``.
    m : int
        Number of samples.
    n_rows : int
        Rows of the data each chunk touches (for the chunk size).
    residual : callable or None
        ``residual(j0, j1, X_chunk) -> ndarray (j1 - j0,)`` of residual norms,
        or None to skip them.
    locate_nonfinite : callable
        ``locate_nonfinite(j0, j1) -> str`` describing where non-finite
        values are, for the error message.
    signature, weights : ndarray, optional
        ``A`` (n x k, C-contiguous) and the gene weights (n,), for losses that
        need the raw data (Huber).
    raw : callable, optional
        ``raw(j0, j1) -> ndarray (j1 - j0, n)``: the samples themselves as
        C-contiguous float64 rows, for losses that need the raw data.
    """

    def __init__(
        self, gram, project, m, n_rows, residual, locate_nonfinite, signature=None, weights=None, raw=None
    ):
        self.gram = gram
        self.project = project
        self.m = m
        self.n_rows = n_rows
        self.residual = residual
        self.locate_nonfinite = locate_nonfinite
        self.signature = signature
        self.weights = weights
        self.raw = raw


def solve_batch(problem, kind, *, slack=False, n_jobs=None, max_iter=-1, tol=1e-11, huber=None,
                gene_weights=False):
    """Solve every sample of ``problem`` with the NNLS or simplex kernel.

    Parameters
    ----------
    problem : BatchProblem
        The Gram matrix and chunk projector.
    kind : {"nnls", "simplex"}
        Which problem.
    slack : bool, optional
        For ``kind="simplex"``: ``sum(x) <= 1`` via a slack variable.
    n_jobs : int or None, optional
        Worker threads (see :func:`fastdeconv._parallel.resolve_n_jobs`).
    max_iter : int, optional
        Cap on active-set changes per sample (``-1``: ``5 k + 50``, with ``k``
        counting the slack variable of ``sum(x) <= 1``).
    tol : float, optional
        Relative dual tolerance.
    huber : tuple (c, max_rounds, rtol), optional
        Solve Huber's loss by IRLS instead of least squares (needs
        ``problem.signature`` and ``problem.raw``): Huber's constant, the cap
        on re-weighting rounds, the relative change at which they stop.
    gene_weights : bool, optional
        With ``huber``: also return every sample's final Huber gene weights.

    Returns
    -------
    X : ndarray, shape (m, ka)
        Solutions, one row per sample (with the slack variable last).
    n_iter : ndarray of int64, shape (m,)
    status : ndarray of int8, shape (m,)
    residual : ndarray, shape (m,) or None
        Residual norms when ``problem.residual`` is given.
    rounds : ndarray of int64, shape (m,)
        Re-weighting rounds (zeros for least squares).
    weights : ndarray, shape (m, n) or None
        The final Huber weights (without the problem's own gene weights), when
        asked for.

    Raises
    ------
    ValueError
        If a sample's projection is not finite (NaN or inf in the data).
    """
    gram = problem.gram
    k = gram.shape[0]
    m = problem.m
    # the two small helpers run as plain Python here (same arithmetic, in the same
    # order): compiling them for a Python caller would add to every first run
    if huber is not None:  # the Huber kernel forms its own (re-weighted) Gram matrices
        Qa, rho = gram, 0.0
    elif kind == "simplex":
        Qa, rho = augment_gram.py_func(gram, bool(slack))
    elif kind == "nnls":
        Qa, rho = gram, 0.0
    else:  # pragma: no cover - internal
        raise ValueError(f"unknown kind {kind!r}")
    ka = k + 1 if (kind == "simplex" and slack) else k
    if max_iter < 0:
        max_iter = default_max_iter.py_func(ka)
    X = np.empty((m, ka))
    n_iter = np.zeros(m, dtype=np.int64)
    status = np.zeros(m, dtype=np.int8)
    rounds = np.zeros(m, dtype=np.int64)
    resid = np.empty(m) if problem.residual is not None else None
    W = None
    if huber is not None:
        A = problem.signature
        n = A.shape[0]
        w0 = problem.weights if problem.weights is not None else np.ones(n)
        c_huber, max_rounds, rtol = huber
        if gene_weights:
            W = np.empty((m, n))

    def run(bound):
        j0, j1 = bound
        data = problem.raw(j0, j1) if huber is not None else problem.project(j0, j1)
        if not np.isfinite(data).all():
            raise ValueError(problem.locate_nonfinite(j0, j1))
        Xc, it, st = X[j0:j1], n_iter[j0:j1], status[j0:j1]
        if huber is not None:
            Wc = W[j0:j1] if W is not None else np.empty((1, n))
            huber_batch(
                A, w0, gram, data, Xc, Wc, it, rounds[j0:j1], st, kind == "simplex", bool(slack),
                float(c_huber), int(max_rounds), float(rtol), int(max_iter), float(tol),
            )
        else:
            gram_batch(
                Qa, float(rho), data, Xc, it, st, kind == "simplex", int(max_iter), float(tol)
            )
        if resid is not None:
            resid[j0:j1] = problem.residual(j0, j1, X[j0:j1, :k])

    bounds = chunk_bounds(problem.n_rows, m)
    # BLAS runs single-threaded inside the driver: the workers are the
    # parallelism, and results must not depend on the BLAS thread count (it
    # changes the rounding of A'B).  Tiny problems run in the caller's thread and
    # skip the (process-wide) switch: threads cost more than they save there, and
    # BLAS does not thread them anyway.  Chunk widths do not depend on the number
    # of workers, so neither do the results.
    tiny = problem.n_rows * m * k < (1 << 16)
    workers = resolve_n_jobs(n_jobs)  # checked even when a tiny problem does not use it
    thread_map(run, bounds, 1 if tiny else workers, blas=not tiny)
    return X, n_iter, status, resid, rounds, W


__all__ = ["BatchProblem", "solve_batch", "chunk_size"]
