"""Threaded driver that solves many samples: project a chunk with BLAS, then solve it.

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

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext

import numpy as np

from fastdeconv.kernels._active_set import CONVERGED, NOT_FINITE
from fastdeconv.kernels.nnls import default_max_iter, nnls_gram_batch
from fastdeconv.kernels.robust import huber_batch
from fastdeconv.kernels.simplex import augment_gram, simplex_gram_batch

# Bytes of bulk data per chunk: large enough to amortise Python and BLAS call
# overhead and to give BLAS wide blocks (measured: 16 MiB beat 4 MiB by 20% on
# 20000 genes x 1000 samples, and matched it on wide inputs), small enough that
# one chunk per worker is a negligible addition to memory.
CHUNK_BYTES = 16 << 20
MIN_CHUNK, MAX_CHUNK = 16, 4096
MIN_CHUNKS = 8


def available_cores():
    """Number of CPU cores this process may run on.

    Returns
    -------
    int
        The size of the CPU affinity set (or ``os.cpu_count()``).

    Examples
    --------
    >>> from fastdeconv.kernels.batch import available_cores
    >>> available_cores() >= 1
    True
    """
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def resolve_n_jobs(n_jobs):
    """Turn a user's ``n_jobs`` into a positive thread count.

    Parameters
    ----------
    n_jobs : int or None
        ``None`` or ``-1``: all available cores; ``-2``: all but one, and so on;
        a positive number: that many threads.

    Returns
    -------
    int
        The number of worker threads.

    Examples
    --------
    >>> from fastdeconv.kernels.batch import resolve_n_jobs
    >>> resolve_n_jobs(3)
    3
    """
    cores = available_cores()
    if n_jobs is None:
        return cores
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)):
        raise TypeError(f"n_jobs must be an integer or None, got {n_jobs!r}")
    n_jobs = int(n_jobs)
    if n_jobs == 0:
        raise ValueError("n_jobs must not be 0: use None or -1 for all cores, or a positive count")
    if n_jobs < 0:
        return max(1, cores + 1 + n_jobs)
    return n_jobs


_blas_lock = threading.Lock()
_blas_users = 0
_blas_limiter = None
_controller = None


@contextmanager
def single_threaded_blas():
    """Limit BLAS to one thread while any driver call is running.

    The limit is process-wide (BLAS libraries have no per-thread setting), so
    concurrent callers share it through a reference count: the first one in sets
    it, the last one out restores the original setting.

    Yields
    ------
    None
    """
    global _blas_users, _blas_limiter, _controller
    with _blas_lock:
        if _blas_users == 0:
            try:
                if _controller is None:
                    from threadpoolctl import ThreadpoolController

                    _controller = ThreadpoolController()
                _blas_limiter = _controller.limit(limits=1, user_api="blas")
            except Exception:  # pragma: no cover - threadpoolctl unavailable or failing
                _blas_limiter = None
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0 and _blas_limiter is not None:
                _blas_limiter.restore_original_limits()
                _blas_limiter = None


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
    >>> from fastdeconv.kernels.batch import chunk_size
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


class HuberLoss:
    """Options of the Huber loss solved by IRLS (:mod:`fastdeconv.kernels.robust`).

    Parameters
    ----------
    c : float
        Huber's constant in units of the residual scale.
    max_rounds : int
        Cap on re-weighting rounds.
    rtol : float
        Relative change of the coefficients at which the rounds stop.
    """

    def __init__(self, c, max_rounds, rtol):
        self.c = float(c)
        self.max_rounds = int(max_rounds)
        self.rtol = float(rtol)


def solve_batch(problem, kind, *, slack=False, n_jobs=None, max_iter=-1, tol=1e-11, loss=None):
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
        Worker threads (see :func:`resolve_n_jobs`).
    max_iter : int, optional
        Cap on active-set changes per sample (``-1``: ``5 k + 50``, with ``k``
        counting the slack variable of ``sum(x) <= 1``).
    tol : float, optional
        Relative dual tolerance.
    loss : HuberLoss, optional
        Solve the Huber loss by IRLS instead of least squares (needs
        ``problem.signature`` and ``problem.raw``).

    Returns
    -------
    X : ndarray, shape (m, k)
        Solutions, one row per sample.
    n_iter : ndarray of int64, shape (m,)
    status : ndarray of int8, shape (m,)
    residual : ndarray, shape (m,) or None
        Residual norms when ``problem.residual`` is given.
    rounds : ndarray of int64, shape (m,)
        Re-weighting rounds (zeros for least squares).

    Raises
    ------
    ValueError
        If a sample's projection is not finite (NaN or inf in the data).
    """
    gram = problem.gram
    k = gram.shape[0]
    m = problem.m
    if kind == "simplex":
        Qa, rho = augment_gram(gram, slack)
    elif kind == "nnls":
        Qa, rho = gram, 0.0
    else:  # pragma: no cover - internal
        raise ValueError(f"unknown kind {kind!r}")
    ka = Qa.shape[0]
    if max_iter < 0:
        max_iter = default_max_iter(ka)
    X = np.empty((m, ka))
    n_iter = np.zeros(m, dtype=np.int64)
    status = np.zeros(m, dtype=np.int8)
    rounds = np.zeros(m, dtype=np.int64)
    resid = np.empty(m) if problem.residual is not None else None
    if loss is not None:
        A = problem.signature
        w0 = problem.weights if problem.weights is not None else np.ones(A.shape[0])

    workers = max(1, min(resolve_n_jobs(n_jobs), m))
    width = chunk_size(problem.n_rows, m)
    bounds = [(j0, min(j0 + width, m)) for j0 in range(0, m, width)]
    failed = threading.Event()

    def run(bound):
        if failed.is_set():
            return
        j0, j1 = bound
        data = problem.raw(j0, j1) if loss is not None else problem.project(j0, j1)
        if not np.isfinite(data).all():
            failed.set()
            raise ValueError(problem.locate_nonfinite(j0, j1))
        Xc, it, st = X[j0:j1], n_iter[j0:j1], status[j0:j1]
        if loss is not None:
            huber_batch(
                A, w0, gram, data, Xc, it, rounds[j0:j1], st, kind == "simplex", slack,
                loss.c, loss.max_rounds, loss.rtol, max_iter, tol,
            )
        elif kind == "nnls":
            nnls_gram_batch(Qa, data, Xc, it, st, max_iter, tol)
        else:
            simplex_gram_batch(Qa, rho, data, Xc, it, st, max_iter, tol)
        if resid is not None:
            resid[j0:j1] = problem.residual(j0, j1, X[j0:j1, :k])

    # BLAS runs single-threaded inside the driver: the workers are the
    # parallelism, and results must not depend on the BLAS thread count (it
    # changes the rounding of A'B).  Tiny problems skip the (process-wide) switch;
    # BLAS does not thread them anyway.
    tiny = len(bounds) == 1 and problem.n_rows * m * k < (1 << 16)
    with nullcontext() if tiny else single_threaded_blas():
        if workers == 1 or len(bounds) == 1:
            for bound in bounds:
                run(bound)
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                futures = [pool.submit(run, b) for b in bounds]
                for future in futures:
                    future.result()
    return X, n_iter, status, resid, rounds


__all__ = [
    "BatchProblem",
    "HuberLoss",
    "solve_batch",
    "resolve_n_jobs",
    "available_cores",
    "chunk_size",
    "single_threaded_blas",
    "CONVERGED",
    "NOT_FINITE",
]
