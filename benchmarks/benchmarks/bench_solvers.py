"""asv benchmarks of the core solvers: batched speed, peak memory, cold start."""

from __future__ import annotations

import numpy as np

import fastdeconv

from .common import make_problem

SIZES = ["500x10x100000", "5000x20x100000", "20000x30x1000", "5000x20x1000"]


def _parse(size):
    return tuple(int(v) for v in size.split("x"))


class BatchSolve:
    """End-to-end batched solves (projection A'B included), all cores."""

    params = (SIZES, ["nnls", "simplex"])
    param_names = ["n_genes x n_types x n_samples", "solver"]
    timeout = 600
    number = 1
    repeat = (3, 7, 120.0)

    def setup(self, size, solver):
        n, k, m = _parse(size)
        self.S, self.B = make_problem(n, k, m)
        self.solve = fastdeconv.nnls if solver == "nnls" else fastdeconv.simplex_lstsq
        self.solve(self.S, self.B[:, :64])  # compile / load the cache outside the timing

    def time_solve(self, size, solver):
        self.solve(self.S, self.B)

    def peakmem_solve(self, size, solver):
        self.solve(self.S, self.B)

    def track_mean_iterations(self, size, solver):
        _, info = self.solve(self.S, self.B[:, :2000], return_info=True)
        return float(info.n_iter.mean())

    track_mean_iterations.unit = "active-set changes"


class SingleSample:
    """Per-call overhead of the array API on one small sample."""

    def setup(self):
        rng = np.random.default_rng(0)
        self.S = rng.lognormal(size=(500, 10))
        self.b = self.S @ rng.dirichlet(np.ones(10))
        fastdeconv.simplex_lstsq(self.S, self.b)

    def time_simplex_one_sample(self):
        fastdeconv.simplex_lstsq(self.S, self.b)

    def time_nnls_one_sample(self):
        fastdeconv.nnls(self.S, self.b)


class ThreadScaling:
    """The same batch with 1 and 2 worker threads."""

    params = [1, 2]
    param_names = ["n_jobs"]

    def setup(self, n_jobs):
        self.S, self.B = make_problem(5000, 20, 20000)
        fastdeconv.simplex_lstsq(self.S, self.B[:, :64], n_jobs=n_jobs)

    def time_simplex(self, n_jobs):
        fastdeconv.simplex_lstsq(self.S, self.B, n_jobs=n_jobs)


def timeraw_cold_start():
    """A fresh process: import fastdeconv and solve a small problem (warm disk cache)."""
    return """
import numpy as np
import fastdeconv
S = np.random.default_rng(0).lognormal(size=(200, 8))
fastdeconv.nnls(S, S[:, :3])
fastdeconv.simplex_lstsq(S, S[:, :3])
"""


def timeraw_first_compilation():
    """A fresh process with an empty Numba cache: the first-ever NNLS, simplex and Huber solves.

    What a user's very first ``fastdeconv deconvolve`` waits for (the cache is
    a new temporary folder, so every kernel these calls need is compiled).
    ``benchmarks/compile_time.py`` breaks it down by pipeline.
    """
    return """
import os, tempfile
cache = tempfile.TemporaryDirectory()
os.environ["NUMBA_CACHE_DIR"] = cache.name  # read when Numba is first imported, below
import numpy as np
import fastdeconv
from fastdeconv.simulate import synthetic
data = synthetic(n_genes=500, n_types=5, n_samples=20, seed=0)
S = np.ascontiguousarray(data.signature.to_numpy())
fastdeconv.nnls(S, S[:, :3])
fastdeconv.simplex_lstsq(S, S[:, :3])
fastdeconv.deconvolve(data.bulk, data.signature)
cache.cleanup()
"""


timeraw_first_compilation.number = 1
timeraw_first_compilation.repeat = 3
timeraw_first_compilation.timeout = 600
