"""Active-set non-negative least squares on the Gram form, one sample at a time.

``min ||A x - b||^2`` subject to ``x >= 0`` is solved from ``Q = A'A`` and
``c = A'b`` only (see :mod:`fastdeconv.kernels._active_set` for the method and
its references), so the cost per sample is independent of the number of genes
once the projection ``A'B`` has been computed with BLAS for a whole block.
"""

from __future__ import annotations

import numpy as np

from fastdeconv._jit import jit, jit_helper
from fastdeconv.kernels._active_set import active_set, initial_factor, new_workspace


@jit_helper
def default_max_iter(k):
    """Default cap on active-set changes for ``k`` variables: ``5 k + 50``.

    Parameters
    ----------
    k : int
        Number of variables.

    Returns
    -------
    int
        The cap.
    """
    return 5 * k + 50


@jit
def nnls_gram_kernel(AtA, Atb, max_iter=-1, tol=1e-11):
    """Solve one NNLS problem given its Gram form; callable from ``@njit`` code.

    Parameters
    ----------
    AtA : ndarray, shape (k, k)
        ``A'A`` (symmetric positive semi-definite), float64.
    Atb : ndarray, shape (k,)
        ``A'b``, float64.
    max_iter : int, optional
        Cap on active-set changes; ``-1`` (default) means ``5 k + 50``.
    tol : float, optional
        Relative tolerance on the dual (KKT) conditions.

    Returns
    -------
    x : ndarray, shape (k,)
        The minimiser of ``||A x - b||^2`` over ``x >= 0``.
    n_iter : int
        Active-set changes made.
    status : int
        0 converged, 1 iteration cap reached, 2 non-finite input.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.kernels import nnls_gram_kernel
    >>> A = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> b = np.array([2.0, -1.0, 1.0])
    >>> x, n_iter, status = nnls_gram_kernel(A.T @ A, A.T @ b)
    >>> np.round(x, 6).tolist(), status
    ([1.5, 0.0], 0)
    """
    k = Atb.shape[0]
    if max_iter < 0:
        max_iter = default_max_iter(k)
    x = np.zeros(k)
    n_iter, status = active_set(
        AtA, Atb, x, np.bool_(False), max_iter, tol, initial_factor(AtA), new_workspace(k)
    )
    return x, n_iter, status
