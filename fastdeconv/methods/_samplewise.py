"""Running a per-sample Numba kernel over the samples of a problem, in threads.

The peer methods that fit every sample on its own with a loop of exact NNLS
solves (:mod:`fastdeconv.methods.dwls`, :mod:`fastdeconv.methods.fardeep`)
share how they hand samples to their kernel: blocks of samples (the widths of
:func:`fastdeconv.solvers._batch.chunk_bounds`, which do not depend on the
thread count, so neither do the answers) as C-contiguous rows, in the
threads of :func:`fastdeconv._parallel.thread_map`, with the solvers' default
cap on active-set changes.  Only NumPy is imported at module level.

Examples
--------
>>> import numpy as np
>>> from fastdeconv.methods._problem import RegressionProblem
>>> from fastdeconv.methods._samplewise import SampleRun
>>> run = SampleRun(RegressionProblem(np.eye(2), np.arange(6.0).reshape(2, 3)), n_vars=2)
>>> run.max_iter, run.status.shape
(60, (3,))
>>> sums = np.empty(3)
>>> run.each_block(lambda BT, j0, j1: sums.__setitem__(slice(j0, j1), BT.sum(axis=1)))
>>> sums.tolist()
[3.0, 5.0, 7.0]
"""

from __future__ import annotations

import numpy as np

from fastdeconv.methods._problem import MethodFit

__all__ = ["SampleRun"]


class SampleRun:
    """The per-sample diagnostics of a run, and a driver over blocks of samples.

    Parameters
    ----------
    problem : RegressionProblem
        The pipeline's problem.
    n_vars : int
        Unknowns of each NNLS solve (for the default cap on active-set changes).

    Attributes
    ----------
    max_iter : int
        Cap on active-set changes per solve (the problem's, or ``5 n_vars + 50``).
    tol : float
        Relative dual tolerance of each solve.
    rounds, n_iter : ndarray of int64, shape (m,)
        For the kernel to fill: re-weighting or trimming rounds, and
        active-set changes of the last solve.
    status : ndarray of int8, shape (m,)
        For the kernel to fill: 0 where every solve converged.
    """

    def __init__(self, problem, n_vars):
        from fastdeconv.kernels.nnls import default_max_iter

        self.problem = problem
        self.max_iter = int(
            problem.max_iter if problem.max_iter >= 0 else default_max_iter.py_func(n_vars)
        )
        self.tol = float(problem.tol)
        m = problem.B.shape[1]
        self.rounds = np.zeros(m, dtype=np.int64)
        self.n_iter = np.zeros(m, dtype=np.int64)
        self.status = np.zeros(m, dtype=np.int8)

    def each_block(self, kernel):
        """Call ``kernel(BT, j0, j1)`` for every block of samples, in worker threads.

        Parameters
        ----------
        kernel : callable
            Called with the block's samples as C-contiguous float64 rows
            (``B[:, j0:j1].T``) and its bounds; it writes its results into
            arrays sliced ``[j0:j1]`` (and should release the GIL).
        """
        from fastdeconv._parallel import thread_map
        from fastdeconv.solvers._batch import chunk_bounds

        B = self.problem.B

        def run(bound):
            j0, j1 = bound
            kernel(np.ascontiguousarray(B[:, j0:j1].T, dtype=np.float64), j0, j1)

        thread_map(run, chunk_bounds(B.shape[0], B.shape[1]), self.problem.n_jobs)

    def fit(self, coefficients, gene_weights=None):
        """The :class:`~fastdeconv.methods._problem.MethodFit` of the run.

        Parameters
        ----------
        coefficients : ndarray, shape (k, m)
        gene_weights : ndarray, shape (n, m), optional

        Returns
        -------
        MethodFit
        """
        return MethodFit(np.ascontiguousarray(coefficients), self.status == 0, self.n_iter,
                         self.rounds, gene_weights)
