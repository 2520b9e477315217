"""asv benchmarks of the probabilistic method (``deconvolve(..., method="bayes")``), stage by stage.

Synthetic data of a single-cell reference's shape: ``n`` genes, ``k`` states with
gamma-distributed profiles, Dirichlet proportions and Poisson counts of 1e7 reads
per bulk sample.  The stages: the kernel fit of ``theta`` (``fit_mixture``), the
reference update (``update_profiles``), the standard errors (``fisher_errors``),
and the pipeline end to end from tables.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

import fastdeconv
from fastdeconv.bayes import expected_counts_total, fisher_errors, update_profiles
from fastdeconv.solvers.mixture import fit_mixture


def _problem(n, k, m, seed=0):
    rng = np.random.default_rng(seed)
    phi = rng.gamma(0.3, 1.0, size=(n, k)) + 1e-8
    phi /= phi.sum(axis=0)
    theta = rng.dirichlet(np.ones(k), size=m).T
    X = rng.poisson(1e7 * phi @ theta).astype(np.float64)
    return np.ascontiguousarray(phi), X, theta


class MixtureFit:
    """The kernel: theta of every sample (SQUAREM + Newton, KKT stop)."""

    params = ([(5000, 20), (15000, 50)], [100, 1000])
    param_names = ["genes_states", "n_samples"]
    timeout = 600
    number = 1
    repeat = (3, 5, 120.0)

    def setup(self, shape, m):
        n, k = shape
        self.phi, self.X, _ = _problem(n, k, m)
        fit_mixture(self.phi, self.X[:, :2])

    def time_fit(self, shape, m):
        fit_mixture(self.phi, self.X)

    def track_evaluations_per_sample(self, shape, m):
        return float(fit_mixture(self.phi, self.X[:, :100])[1].n_eval.mean())

    track_evaluations_per_sample.unit = "evaluations"


class ReferenceUpdate:
    """Z summed over samples, then the MAP (per gene and type) and MLE (shared) updates."""

    params = (["map", "mle"],)
    param_names = ["mode"]
    timeout = 600
    number = 1

    def setup(self, mode):
        self.phi, X, theta = _problem(15000, 12, 200)
        self.Z = expected_counts_total(self.phi, theta, X)

    def time_update(self, mode):
        update_profiles(self.phi, self.Z, mode=mode)


class Uncertainty:
    """Fisher-information standard errors with the quasi-likelihood dispersion."""

    timeout = 600
    number = 1

    def setup(self):
        self.phi, self.X, self.theta = _problem(15000, 12, 200)

    def time_fisher_errors(self):
        fisher_errors(self.phi, self.theta, self.X)


class BayesPipeline:
    """Tables in, cell fractions out: reference sums, gene filters, fit, update, errors."""

    timeout = 900
    number = 1
    repeat = (2, 3, 300.0)

    def setup(self):
        rng = np.random.default_rng(1)
        n, k, cells = 5000, 10, 100
        genes = [f"g{i}" for i in range(n)]
        prof = rng.gamma(0.3, 1.0, size=(n, k))
        counts = np.column_stack([rng.poisson(prof[:, t] * 2.0, size=(cells, n)).T for t in range(k)])
        self.counts = pd.DataFrame(counts, index=genes)
        self.labels = np.repeat([f"type{t}" for t in range(k)], cells)
        theta = rng.dirichlet(np.ones(k), size=500).T
        self.bulk = pd.DataFrame(rng.poisson(1e7 * (prof / prof.sum(0)) @ theta), index=genes)
        fastdeconv.deconvolve(self.bulk.iloc[:, :5], self.counts, labels=self.labels, method="bayes")

    def time_pipeline(self):
        fastdeconv.deconvolve(self.bulk, self.counts, labels=self.labels, method="bayes")

    def peakmem_pipeline(self):
        fastdeconv.deconvolve(self.bulk, self.counts, labels=self.labels, method="bayes")
