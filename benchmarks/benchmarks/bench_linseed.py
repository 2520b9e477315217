"""asv benchmarks: the reference-free LinSeed pipeline, whole and stage by stage.

The data are GSE19830 (rat liver/brain/lung mixtures, 13841 genes x 33
samples) from the shared data folder when present (``FASTDECONV_DATA`` or
``../shared/data`` beside the repository), otherwise a seeded synthetic
mixture of the same shape.  The analysis uses the top 10000 genes and 100
permutations, the settings of the R package's README.  ``setup`` runs the
pipeline once (compiling or loading the Numba kernels) and prepares each
stage's input, so ``time_*`` measure warm calls.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from fastdeconv.reference_free import (
    _find_corners,
    _linearity,
    _normalise,
    _permutation_pvalues,
    _prepare,
    _saddlepoint_pvalues,
    _project,
    _proportions,
    estimate_k,
    linseed,
)


def _load(folder, n_genes, n_samples, k, seed):
    """A shared dataset's mixture (genes x samples), or a seeded synthetic stand-in of its shape."""
    root = Path(os.environ.get("FASTDECONV_DATA", Path(__file__).resolve().parents[2].parent
                               / "shared" / "data"))
    path = root / folder / "mixture.tsv.gz"
    if path.is_file():
        return pd.read_csv(path, sep="\t", index_col=0)
    rng = np.random.default_rng(seed)
    H = rng.dirichlet(np.ones(k), size=n_samples).T
    W = rng.gamma(0.5, 300.0, size=(n_genes, k)) + 5.0
    G = W @ H * rng.lognormal(0.0, 0.05, size=(n_genes, n_samples))
    return pd.DataFrame(G, index=[f"g{i}" for i in range(n_genes)])


def load_gse19830():
    """GSE19830 mixture (13841 genes x 33 samples) or a synthetic stand-in of the same shape."""
    return _load("shenorr_GSE19830", 13841, 33, 3, 0)


class LinseedGSE19830:
    """LinSeed on GSE19830: 10000 genes, 100 permutations, k = 3."""

    timeout = 600

    def setup(self):
        self.bulk = load_gse19830()
        linseed(self.bulk, 3)  # compile / load the kernels
        _, values, top, _ = _prepare(self.bulk, 10000, "auto", None, None)
        self.G = np.ascontiguousarray(values[top])
        self.X, self.sq, self.tss, self.R = _normalise(self.G)
        self.block = 10000 // 25
        self.power, self.degree, self.n_edges, self.weights = _linearity(
            self.X, self.R, self.sq, self.tss, 0.0, self.block, None)
        p = _permutation_pvalues(self.X, self.R, self.sq, self.tss, self.power, self.degree,
                                 self.n_edges, 0.0, 100, np.random.default_rng(0))
        self.keep = np.flatnonzero(p < 0.01)
        self.Xf = np.ascontiguousarray(self.X[self.keep])
        self.mu, self.V, self.Y = _project(self.Xf, 3)
        corners_y = _find_corners(self.Y, 3, 1000.0, 8, np.random.default_rng(0))[0]
        self.corners = self.mu + corners_y.T @ self.V.T

    def time_total(self):
        linseed(self.bulk, 3)

    def peakmem_total(self):
        linseed(self.bulk, 3)

    def time_total_auto_k(self):
        linseed(self.bulk, "auto")

    def time_stage_preprocess(self):
        _, values, top, _ = _prepare(self.bulk, 10000, "auto", None, None)
        _normalise(np.ascontiguousarray(values[top]))

    def time_stage_linearity(self):
        _linearity(self.X, self.R, self.sq, self.tss, 0.0, self.block, None)

    def time_stage_permutation(self):
        _permutation_pvalues(self.X, self.R, self.sq, self.tss, self.power, self.degree,
                             self.n_edges, 0.0, 100, np.random.default_rng(0))

    def time_stage_saddlepoint(self):
        _saddlepoint_pvalues(self.power, self.degree, self.weights)

    def time_stage_choose_k(self):
        estimate_k(self.Xf)

    def time_stage_corners(self):
        mu, V, Y = _project(self.Xf, 3)
        _find_corners(Y, 3, 1000.0, 8, np.random.default_rng(0))

    def time_stage_proportions(self):
        _proportions(self.corners, self.G, self.keep, None)

    def track_n_significant(self):
        return int(self.keep.size)

    track_n_significant.unit = "genes"


def load_gse11058():
    """GSE11058 mixture (584 genes x 12 samples) or a synthetic stand-in of the same shape."""
    return _load("abbas_GSE11058", 584, 12, 4, 1)


class ReferenceFreeMethods:
    """Every method of the reference-free pipeline at its defaults (automatic k)."""

    params = (["GSE19830", "GSE11058"], ["simplex", "dualsimplex", "nmf", "ica", "anchors"])
    param_names = ["dataset", "method"]
    timeout = 600

    def setup(self, dataset, method):
        if method == "ica":  # asv skips a benchmark whose setup raises NotImplementedError
            try:
                import sklearn  # noqa: F401
            except ImportError:
                raise NotImplementedError("scikit-learn is not installed") from None
        self.bulk = load_gse19830() if dataset == "GSE19830" else load_gse11058()
        linseed(self.bulk, "auto", method=method)

    def time_linseed(self, dataset, method):
        linseed(self.bulk, "auto", method=method)


def timeraw_first_call_gse11058():
    """A fresh process: import fastdeconv, read 584 x 12 and run LinSeed once (warm cache).

    The issue-14 fixed cost; reading the small table takes a few milliseconds of it.
    """
    return f"""
import sys
sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})
import fastdeconv
from bench_linseed import load_gse11058
fastdeconv.linseed(load_gse11058(), "auto", progress=False)
"""
