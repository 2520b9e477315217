"""The exact solvers: public array API over a no-re-check core and a threaded driver.

- :mod:`fastdeconv.solvers.api`: :func:`nnls`, :func:`simplex_lstsq`, the
  Gram-form entry points and :func:`project_simplex`; they validate the user's
  arrays and options once;
- :mod:`fastdeconv.solvers._core`: the same solves for pipelines that have
  validated their inputs (no re-checks, no warnings);
- :mod:`fastdeconv.solvers.mixture`: :func:`multinomial_map`, the maximum
  (penalised) likelihood proportions of a multinomial mixture, and its core
  :func:`fit_mixture` for pipelines;
- :mod:`fastdeconv.solvers._batch`: the threaded driver that projects chunks
  of samples with BLAS and hands them to the Numba kernels of
  :mod:`fastdeconv.kernels`.
"""

from fastdeconv.solvers.api import (
    ConvergenceWarning,
    SolveInfo,
    nnls,
    nnls_gram,
    project_simplex,
    simplex_lstsq,
    simplex_lstsq_gram,
)
from fastdeconv.solvers.mixture import MixtureInfo, multinomial_map

__all__ = [
    "nnls",
    "simplex_lstsq",
    "nnls_gram",
    "simplex_lstsq_gram",
    "project_simplex",
    "multinomial_map",
    "MixtureInfo",
    "SolveInfo",
    "ConvergenceWarning",
]
