"""The likelihood method: multinomial mixture of single-cell profiles (BayesPrism's model).

Registered as ``"bayes"`` in :data:`fastdeconv.methods.REGRESSION` with
``reference="counts"``: :func:`fastdeconv.deconvolve` then runs the pipeline
of :mod:`fastdeconv.bayes` (profiles from labelled single cells, gene
filters, the reference update, cell fractions, errors), which calls this
record's ``fit`` for every fit of ``theta``.

Examples
--------
>>> import numpy as np
>>> from fastdeconv.methods import REGRESSION
>>> from fastdeconv.methods._problem import MixtureProblem
>>> phi = np.array([[0.7, 0.1], [0.2, 0.1], [0.1, 0.8]])
>>> x = 1000 * phi @ np.array([[0.25], [0.75]])
>>> fit = REGRESSION.get("bayes").fit(MixtureProblem(phi, x, np.ones(2)))
>>> fit.coefficients.round(6).ravel().tolist(), fit.converged.tolist()
([0.25, 0.75], [True])
"""

from __future__ import annotations

import numpy as np

from fastdeconv.methods import REGRESSION, Method
from fastdeconv.methods._problem import MethodFit

__all__ = ["LOGLIK"]

#: Name of the extra per-sample value holding the objective at the answer.
LOGLIK = "loglik"

_BAYESPRISM = (
    "Chu T., Wang Z., Pe'er D., Danko C. G. (2022) Cell type and gene expression deconvolution "
    "with BayesPrism enables Bayesian integrative analysis across bulk and single-cell RNA "
    "sequencing in oncology. Nat Cancer 3:505-517. doi:10.1038/s43018-022-00356-3"
)
_INSTAPRISM = (
    "Hu M., Chikina M. (2024) InstaPrism: an R package for fast implementation of BayesPrism. "
    "Bioinformatics 40(7):btae440. doi:10.1093/bioinformatics/btae440"
)
_SQUAREM = (
    "Varadhan R., Roland C. (2008) Simple and globally convergent methods for accelerating the "
    "convergence of any EM algorithm. Scand J Stat 35(2):335-353. "
    "doi:10.1111/j.1467-9469.2007.00585.x"
)


def _fit_mixture(problem):
    """``"bayes"``: the maximum (penalised) likelihood ``theta`` of every sample."""
    from fastdeconv.solvers.mixture import fit_mixture, warn_mixture

    theta, info = fit_mixture(
        problem.phi, problem.X, alpha=problem.alpha, tol=problem.tol,
        max_iter=problem.max_iter, n_jobs=problem.n_jobs, theta0=problem.theta0,
    )
    warn_mixture(info.status, problem.max_iter, stacklevel=7)  # at the caller of deconvolve
    return MethodFit(
        theta, info.converged, info.n_eval, np.zeros_like(info.n_newton), None,
        {LOGLIK: info.loglik, "n_newton": info.n_newton},
    )


REGRESSION.register(Method(
    "bayes",
    "multinomial mixture of single-cell profiles by likelihood, with reference update "
    "(BayesPrism's model; needs single-cell counts and labels)",
    fit=_fit_mixture, normalise=False, weights="unsupported", losses=("likelihood",),
    references=(_BAYESPRISM, _INSTAPRISM, _SQUAREM), reference="counts",
))
