"""The contract between the regression pipeline and its methods.

:func:`fastdeconv.deconvolve` reads, matches and checks the user's tables,
then hands every registered regression method the same
:class:`RegressionProblem` (checked arrays and options already in the one
vocabulary the solvers speak) and receives a :class:`MethodFit`.  A method is
one function ``fit(problem) -> MethodFit``; everything else -- names, gene
selection, normalisation, fit statistics, the result -- is the pipeline's.

Examples
--------
>>> import numpy as np
>>> from fastdeconv.methods._problem import MethodFit, RegressionProblem
>>> S = np.array([[10.0, 1.0], [1.0, 8.0], [5.0, 5.0]])
>>> problem = RegressionProblem(S, S @ np.array([[0.25], [0.75]]))
>>> problem.k, problem.m, problem.loss
(2, 1, 'squared')
>>> X = np.linalg.lstsq(problem.S, problem.B, rcond=None)[0]
>>> MethodFit.exact(X).converged.tolist()
[True]
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["RegressionProblem", "MixtureProblem", "MethodFit"]


@dataclass(frozen=True)
class RegressionProblem:
    """What every regression method is given: checked arrays and solver options.

    Every array is validated by the pipeline; a method trusts it (no
    re-checks).

    Attributes
    ----------
    S : ndarray, shape (n, k)
        Signature on the genes used, float64, C-contiguous, finite and
        non-negative.  When the pipeline fits a background level its last
        column is constant (the method treats it like any other column).
    B : ndarray, shape (n, m)
        Bulk samples on the same genes, float64, finite, non-negative; no
        sample is zero on every gene.
    weights : ndarray, shape (n,), optional
        Fixed non-negative gene weights (at least one positive), or None.
    huber : tuple (c, max_rounds, rtol), optional
        Minimise Huber's loss with constant ``c`` (in units of the residual
        scale) by at most ``max_rounds`` re-weighting rounds, stopping when no
        coefficient moves by more than ``rtol`` of the largest; None: squares.
    n_jobs : int, optional
        Worker threads (see :func:`fastdeconv._parallel.resolve_n_jobs`).
    max_iter : int, default -1
        Cap on active-set changes per sample; -1 is the solvers' default.
    tol : float, default 1e-11
        Relative tolerance on the optimality conditions.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.methods._problem import RegressionProblem
    >>> p = RegressionProblem(np.eye(3), np.ones((3, 4)), huber=(1.345, 500, 1e-5))
    >>> p.loss, p.n, p.k, p.m
    ('huber', 3, 3, 4)
    """

    S: np.ndarray
    B: np.ndarray
    weights: np.ndarray | None = None
    huber: tuple | None = None
    n_jobs: int | None = None
    max_iter: int = -1
    tol: float = 1e-11

    @property
    def loss(self):
        """``"huber"`` or ``"squared"``: the loss the method minimises."""
        return "squared" if self.huber is None else "huber"

    @property
    def n(self):
        """Number of genes."""
        return self.S.shape[0]

    @property
    def k(self):
        """Number of columns of the signature (cell types, plus the background)."""
        return self.S.shape[1]

    @property
    def m(self):
        """Number of samples."""
        return self.B.shape[1]


@dataclass(frozen=True)
class MethodFit:
    """What every regression method returns: coefficients and per-sample diagnostics.

    Attributes
    ----------
    coefficients : ndarray, shape (k, m)
        One column per sample, one row per column of ``problem.S``.
    converged : ndarray of bool, shape (m,)
        True where the method's optimality conditions held.
    n_iter : ndarray of int, shape (m,)
        Iterations of the (last) solve per sample.
    n_reweight : ndarray of int, shape (m,)
        Robust re-weighting rounds per sample (zeros for least squares).
    gene_weights : ndarray, shape (n, m), optional
        Final weight of every gene in every fit (fixed weights times robust
        weights); None when they are the fixed weights (or 1).
    extra : dict of str to ndarray of shape (m,)
        Values of the record's ``extra_columns`` (e.g. ``"unexplained"``).

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.methods._problem import MethodFit
    >>> fit = MethodFit.exact(np.array([[0.25], [0.75]]))
    >>> fit.n_iter.tolist(), fit.gene_weights is None
    ([0], True)
    """

    coefficients: np.ndarray
    converged: np.ndarray
    n_iter: np.ndarray
    n_reweight: np.ndarray
    gene_weights: np.ndarray | None = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def exact(cls, coefficients, **kwargs):
        """A fit by a direct method: every sample converged, no iterations.

        Parameters
        ----------
        coefficients : ndarray, shape (k, m)
            The solutions.
        **kwargs
            Other fields (``gene_weights``, ``extra``).

        Returns
        -------
        MethodFit

        Examples
        --------
        >>> import numpy as np
        >>> from fastdeconv.methods._problem import MethodFit
        >>> MethodFit.exact(np.ones((2, 3))).n_reweight.tolist()
        [0, 0, 0]
        """
        m = coefficients.shape[1]
        zeros = np.zeros(m, dtype=np.int64)
        return cls(coefficients, np.ones(m, dtype=bool), zeros, zeros.copy(), **kwargs)


@dataclass(frozen=True)
class MixtureProblem:
    """What a likelihood method is given: profiles, counts and the fit's options.

    Attributes
    ----------
    phi : ndarray, shape (n, k)
        Profiles of the states on the genes used: positive, every column
        summing to 1, C-contiguous float64.
    X : ndarray, shape (n, m)
        Bulk counts (or linear-scale values) on the same genes, finite and
        non-negative; no sample is zero on every gene.
    alpha : ndarray, shape (k,)
        Dirichlet prior parameters (at least 1).
    n_jobs : int, optional
        Worker threads.
    max_iter : int
        Cap on objective evaluations per sample.
    tol : float
        KKT tolerance.
    theta0 : ndarray, shape (k, m), optional
        Starting points (positive, columns summing to 1): a warm start.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.methods._problem import MixtureProblem
    >>> p = MixtureProblem(np.full((3, 2), 1 / 3), np.ones((3, 4)), np.ones(2))
    >>> p.n, p.k, p.m
    (3, 2, 4)
    """

    phi: np.ndarray
    X: np.ndarray
    alpha: np.ndarray
    n_jobs: int | None = None
    max_iter: int = 2000
    tol: float = 1e-8
    theta0: np.ndarray | None = None

    @property
    def n(self):
        """Number of genes."""
        return self.phi.shape[0]

    @property
    def k(self):
        """Number of states."""
        return self.phi.shape[1]

    @property
    def m(self):
        """Number of samples."""
        return self.X.shape[1]
