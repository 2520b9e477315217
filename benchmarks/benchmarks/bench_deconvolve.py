"""asv benchmarks of the reference-based workflow (`fastdeconv.deconvolve`) end to end."""

from __future__ import annotations

import pandas as pd

import fastdeconv

from .common import make_problem


class Deconvolve:
    """Tables in, proportions out: gene matching, checks, marker genes, solve, fit statistics.

    With NNLS (with and without Huber's loss); the default method is timed by
    :class:`Methods` (DWLS's per-sample cross-validation makes 20 000 samples slow).
    """

    params = ([1000, 20000], ["huber", None])
    param_names = ["n_samples", "robust"]
    timeout = 600
    number = 1
    repeat = (3, 5, 120.0)

    def setup(self, m, robust):
        S, B = make_problem(5000, 20, m)
        genes = [f"g{i}" for i in range(S.shape[0])]
        self.signature = pd.DataFrame(S, index=genes, columns=[f"type_{j}" for j in range(S.shape[1])])
        self.bulk = pd.DataFrame(B, index=genes, columns=[f"s{j}" for j in range(m)])
        fastdeconv.deconvolve(self.bulk.iloc[:, :20], self.signature, "nnls", robust=robust,
                              progress=False)

    def time_deconvolve(self, m, robust):
        fastdeconv.deconvolve(self.bulk, self.signature, "nnls", robust=robust, progress=False)

    def peakmem_deconvolve(self, m, robust):
        fastdeconv.deconvolve(self.bulk, self.signature, "nnls", robust=robust, progress=False)

    def track_mean_reweighting_rounds(self, m, robust):
        res = fastdeconv.deconvolve(self.bulk.iloc[:, :500], self.signature, "nnls",
                                    robust=robust, progress=False)
        return float(res.fit["n_reweight"].mean())

    track_mean_reweighting_rounds.unit = "rounds"


class Methods:
    """Every signature method at its defaults (``"auto"``: the default, DWLS with Huber's loss)
    on a curated-signature-sized problem: 500 genes x 20 types x 1000 samples."""

    params = (["auto", "nnls", "dwls", "fardeep", "nusvr"],)
    param_names = ["method"]
    timeout = 600
    number = 1
    repeat = (3, 5, 120.0)

    def setup(self, method):
        S, B = make_problem(500, 20, 1000)
        genes = [f"g{i}" for i in range(S.shape[0])]
        self.signature = pd.DataFrame(S, index=genes, columns=[f"type_{j}" for j in range(S.shape[1])])
        self.bulk = pd.DataFrame(B, index=genes, columns=[f"s{j}" for j in range(B.shape[1])])
        fastdeconv.deconvolve(self.bulk.iloc[:, :10], self.signature, method, progress=False)

    def time_method(self, method):
        fastdeconv.deconvolve(self.bulk, self.signature, method, progress=False)


class Spatial:
    """Spots stored sparse (AnnData with CSR float32 counts, 2000 genes x 20 types, ~55% of
    the entries non-zero): ``deconvolve`` at its defaults for counts stored sparse, and the
    core solver on the same CSC matrix. The issue-12 figures come from
    ``benchmarks/compare_spatial.py`` (with flashdeconv side by side); this tracks them."""

    params = ([10_000, 100_000],)
    param_names = ["n_spots"]
    timeout = 900
    number = 1
    repeat = (3, 5, 120.0)

    def setup(self, m):
        import anndata
        import numpy as np
        import scipy.sparse as sp

        rng = np.random.default_rng(0)
        n, k = 2000, 20
        S = rng.gamma(0.5, 50.0, size=(n, k))
        for t in range(k):
            S[t * 50:(t + 1) * 50, t] *= 20
        blocks = []
        for j0 in range(0, m, 10_000):
            P = rng.dirichlet(np.full(k, 0.5), size=min(10_000, m - j0)).T
            mu = S @ P
            blocks.append(sp.csr_array(rng.poisson(mu / mu.sum(0) * 2000).astype(np.float32).T))
        X = sp.vstack(blocks, format="csr")
        genes = [f"g{i}" for i in range(n)]
        self.signature = pd.DataFrame(S, index=genes, columns=[f"type_{j}" for j in range(k)])
        self.spots = anndata.AnnData(X, obs=pd.DataFrame(index=[f"s{j}" for j in range(m)]),
                                     var=pd.DataFrame(index=genes))
        self.S, self.B = S, X.T  # (CSC: genes x spots)
        fastdeconv.deconvolve(self.spots[:100].copy(), self.signature, progress=False)
        fastdeconv.nnls(S, self.B[:, :100])

    def time_deconvolve_defaults(self, m):
        fastdeconv.deconvolve(self.spots, self.signature, progress=False)

    def peakmem_deconvolve_defaults(self, m):
        fastdeconv.deconvolve(self.spots, self.signature, progress=False)

    def time_core_nnls(self, m):
        fastdeconv.nnls(self.S, self.B)
