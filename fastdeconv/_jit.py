"""The one place that sets Numba compilation flags.

Every kernel in :mod:`fastdeconv.kernels` is compiled through :func:`jit`, so the
flags are uniform: ``nogil=True`` lets Python threads run kernels concurrently,
``cache=True`` stores the machine code on disk so only the first-ever import pays
for compilation, and ``error_model="numpy"`` makes division by zero produce
inf/NaN instead of raising inside the hot loop.  ``fastmath`` is deliberately
off: the active-set solvers compare floating-point numbers to decide
convergence, and fast-math reassociation or NaN assumptions would change those
decisions.  No global ``numba.config`` is touched.
"""

from __future__ import annotations

import numba

JIT_OPTIONS = {"nogil": True, "cache": True, "error_model": "numpy", "fastmath": False}


def jit(*signature, **overrides):
    """Compile a kernel with the project's standard Numba flags.

    Parameters
    ----------
    *signature
        Optional explicit Numba signature(s), passed through to :func:`numba.njit`.
    **overrides
        Flag overrides (rarely needed; prefer the defaults).

    Returns
    -------
    callable
        A decorator, or the compiled dispatcher when used without parentheses.

    Examples
    --------
    >>> from fastdeconv._jit import jit
    >>> @jit(cache=False)  # functions typed at a prompt have no file to cache to
    ... def add(a, b):
    ...     return a + b
    >>> add(1.0, 2.0)
    3.0
    """
    options = {**JIT_OPTIONS, **overrides}
    if len(signature) == 1 and callable(signature[0]):
        return numba.njit(**options)(signature[0])
    return numba.njit(*signature, **options)
