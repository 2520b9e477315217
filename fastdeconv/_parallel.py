"""Threads for every pipeline: how many, BLAS kept single-threaded, one map helper.

Every parallel loop in fastdeconv -- the batched solvers, LinSeed's linearity
blocks, the per-group sums of single-cell counts -- runs through
:func:`thread_map`: Python threads calling ``nogil`` Numba kernels (never
``parallel=True``), so the library is safe to call from a user's own thread
pool.  While they run, BLAS is limited to one thread (:func:`single_threaded_blas`):
our threads are the parallelism, and results must not depend on the BLAS
thread count, which changes the rounding of matrix products.

``n_jobs`` means the same everywhere (:func:`resolve_n_jobs`): ``None`` or
``-1`` all available cores, ``-2`` all but one, a positive number that many.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext

import numpy as np

__all__ = ["available_cores", "resolve_n_jobs", "single_threaded_blas", "thread_map", "read_ahead"]


def available_cores():
    """Number of CPU cores this process may run on.

    Returns
    -------
    int
        The size of the CPU affinity set (or ``os.cpu_count()``).

    Examples
    --------
    >>> from fastdeconv._parallel import available_cores
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

    Raises
    ------
    TypeError
        If ``n_jobs`` is not an integer or None.
    ValueError
        If ``n_jobs`` is 0.

    Examples
    --------
    >>> from fastdeconv._parallel import resolve_n_jobs
    >>> resolve_n_jobs(3)
    3
    >>> resolve_n_jobs(-1) == resolve_n_jobs(None) >= 1
    True
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


class _BlasLimit:
    """The process-wide BLAS thread limit, shared by concurrent callers.

    BLAS libraries have no per-thread setting, so callers share one limit
    through a reference count: the first one in sets it, the last one out
    restores the original setting.  One instance lives in this module; it is
    the only process-wide state fastdeconv keeps.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._users = 0
        self._limiter = None
        self._controller = None

    def enter(self):
        with self._lock:
            if self._users == 0:
                try:
                    if self._controller is None:
                        # The controller sees the BLAS libraries loaded when it is
                        # made: load SciPy's own BLAS first (L-BFGS-B and scipy.linalg
                        # use it, not NumPy's), or it would keep all its threads.
                        import scipy.linalg  # noqa: F401
                        from threadpoolctl import ThreadpoolController

                        self._controller = ThreadpoolController()
                    self._limiter = self._controller.limit(limits=1, user_api="blas")
                except Exception:  # pragma: no cover - threadpoolctl unavailable or failing
                    self._limiter = None
            self._users += 1

    def exit(self):
        with self._lock:
            self._users -= 1
            if self._users == 0 and self._limiter is not None:
                self._limiter.restore_original_limits()
                self._limiter = None


_BLAS = _BlasLimit()


@contextmanager
def single_threaded_blas():
    """Limit BLAS to one thread while the block runs (re-entrant, thread-safe).

    Yields
    ------
    None

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv._parallel import single_threaded_blas
    >>> with single_threaded_blas():
    ...     float(np.ones((3, 3)).dot(np.ones(3)).sum())
    9.0
    """
    _BLAS.enter()
    try:
        yield
    finally:
        _BLAS.exit()


def thread_map(func, items, n_jobs=None, *, blas=True):
    """Apply ``func`` to every item in worker threads; return the results in order.

    Items are handed out in the order given (put the largest first).  When one
    call raises, the items not yet started are skipped and the first error is
    raised in the caller's thread.

    Parameters
    ----------
    func : callable
        Called as ``func(item)``; should release the GIL (``nogil`` kernels,
        BLAS calls) for the threads to run in parallel.
    items : sequence
        The work items.
    n_jobs : int or None, optional
        Worker threads (see :func:`resolve_n_jobs`); never more than there are
        items.  With one worker everything runs in the caller's thread.
    blas : bool, optional
        Hold BLAS to one thread while the items run (default True); False when
        ``func`` does no BLAS work or the work is too small to matter.

    Returns
    -------
    list
        ``[func(item) for item in items]``.

    Examples
    --------
    >>> from fastdeconv._parallel import thread_map
    >>> thread_map(lambda x: x * x, [1, 2, 3], n_jobs=2)
    [1, 4, 9]
    """
    items = list(items)
    workers = max(1, min(resolve_n_jobs(n_jobs), len(items)))
    failed = threading.Event()

    def run(item):
        if failed.is_set():
            return None
        try:
            return func(item)
        except BaseException:
            failed.set()
            raise

    with single_threaded_blas() if blas else nullcontext():
        if workers == 1:
            return [func(item) for item in items]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(run, item) for item in items]
            return [future.result() for future in futures]


def read_ahead(read, items):
    """``read(*item)`` for every item, in order, the next one read in a thread meanwhile.

    For reading blocks of a file while the caller works on the current block: the
    read waits on the disk (h5py and zarr release the GIL), the work on the cores.  At
    most two results are alive at once.

    Parameters
    ----------
    read : callable
    items : sequence of tuple
        Arguments of each call.

    Yields
    ------
    object
        ``read(*item)``, in the order of ``items``.

    Examples
    --------
    >>> from fastdeconv._parallel import read_ahead
    >>> list(read_ahead(lambda a, b: a + b, [(1, 2), (3, 4)]))
    [3, 7]
    """
    from concurrent.futures import ThreadPoolExecutor

    items = list(items)
    if len(items) < 2:
        for item in items:
            yield read(*item)
        return
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(read, *items[0])
        for i in range(len(items)):
            result = pending.result()
            if i + 1 < len(items):
                pending = pool.submit(read, *items[i + 1])
            yield result
