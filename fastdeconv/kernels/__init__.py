"""Numba kernels: numbers in, numbers out; no pandas, no I/O, no globals.

The single-sample solvers here can be called from a user's own ``@numba.njit``
code, including inside a ``prange`` loop.
"""

from fastdeconv.kernels.nnls import nnls_gram_kernel
from fastdeconv.kernels.simplex import project_simplex_kernel, simplex_gram_kernel

__all__ = ["nnls_gram_kernel", "simplex_gram_kernel", "project_simplex_kernel"]
