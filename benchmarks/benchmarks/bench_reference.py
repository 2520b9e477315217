"""asv benchmarks: building a signature from a large sparse single-cell matrix.

The data mimic a droplet (10x-like) reference: 10**5 cells x 20000 genes,
sparse, ``density`` of the entries non-zero (2 % ~ 400 detected genes per
cell, 5 % ~ 1000), 10 cell types with 50 planted markers each.  ``setup``
builds the matrix and compiles the kernel on a small copy, so ``time_*``
measures the warm call only.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from fastdeconv import build_signature


def make_sparse_counts(n_genes=20000, n_cells=100_000, density=0.02, n_types=10, seed=0):
    """Genes x cells CSC counts (cells compressed, as AnnData's CSR transposed) and labels.

    Each cell stores ``density * n_genes`` entries: a fifth on the 50 marker
    genes of its type (with larger counts), the rest drawn from a skewed gene
    popularity.
    A gene drawn twice for a cell is a duplicate entry, which the kernels sum
    like scipy does; the benchmark does not need canonical storage.
    """
    rng = np.random.default_rng(seed)
    per_cell = max(1, int(round(density * n_genes)))
    popularity = rng.lognormal(0.0, 1.5, n_genes)
    popularity /= popularity.sum()
    indices = rng.choice(n_genes, size=n_cells * per_cell, p=popularity).astype(np.int32)
    labels = rng.integers(0, n_types, n_cells)
    # the first fifth of each cell's entries are markers of its type (genes 50 t .. 50 t + 49)
    n_mark = max(1, per_cell // 5)
    grid = indices.reshape(n_cells, per_cell)
    grid[:, :n_mark] = 50 * labels[:, None] + rng.integers(0, 50, (n_cells, n_mark))
    data = (1.0 + rng.poisson(0.7, indices.size)).astype(np.float32)
    data.reshape(n_cells, per_cell)[:, :n_mark] += 4.0
    indptr = np.arange(0, (n_cells + 1) * per_cell, per_cell, dtype=np.int64)
    counts = sp.csc_array((data, indices, indptr), shape=(n_genes, n_cells))
    return counts, np.array([f"type{t}" for t in range(n_types)])[labels]


class BuildSignatureSparse:
    """``build_signature`` on 10**5 cells x 20000 genes (sparse), per test method."""

    params = (["t-test", "nb"], [0.02, 0.05])
    param_names = ["method", "density"]
    timeout = 600

    def setup(self, method, density):
        self.counts, self.labels = make_sparse_counts(density=density)
        small, small_labels = make_sparse_counts(n_genes=500, n_cells=400, density=0.3)
        build_signature(small, small_labels, method=method, n_markers=5)  # compile

    def time_build_signature(self, method, density):
        build_signature(self.counts, self.labels, method=method, n_markers=50)

    def peakmem_build_signature(self, method, density):
        build_signature(self.counts, self.labels, method=method, n_markers=50)


class ClusterCells:
    """Clustering 2 * 10**4 cells x 20000 genes (no labels) into 10 groups."""

    timeout = 600

    def setup(self):
        from fastdeconv.signature import cluster_cells

        self.cluster_cells = cluster_cells
        self.counts, _ = make_sparse_counts(n_cells=20_000, density=0.02)
        small, _ = make_sparse_counts(n_genes=500, n_cells=400, density=0.3)
        cluster_cells(small, 3, n_top_genes=100, n_init=1)

    def time_cluster_cells(self):
        self.cluster_cells(self.counts, 10, n_init=3)
