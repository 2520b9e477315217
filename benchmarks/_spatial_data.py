"""Synthetic spatial counts with known proportions, for the spatial benchmarks.

Shared by ``benchmarks/compare_spatial.py`` (fastdeconv against flashdeconv)
and ``benchmarks/spatial_million.py`` (10^6 spots from a backed file through
the command line).  The model, as issue 12 describes the data:

1. **Signature**, genes x types (``profiles="gamma"``, the default): a
   baseline per gene ``b_g ~ Gamma(1, 1)``, each type's profile
   ``b_g * Gamma(2, 1/2)`` per gene (differences between types with a
   coefficient of variation of 0.7), then 25 marker genes per type (disjoint
   sets) multiplied by 5 in that type only; each profile scaled to sum to
   10^6.  ``profiles="synthetic"`` takes instead the noise-free profiles of
   :func:`fastdeconv.simulate.synthetic` (log-normal baseline and type
   differences, 10 markers per type): more correlated types, on which
   flashdeconv's coordinate descent needs about twice the iterations.
2. **Proportions**, spots x types: one Dirichlet(``alpha``) draw per spot.
3. **Library size** of spot *i*: ``L * exp(N(0, lib_sd))``, with the scale
   ``L`` found by bisection so that the *expected* fraction of non-zero counts
   over the whole matrix is ``density`` (0.6 by default), computed exactly
   (``1 - exp(-mu)`` per entry) on a calibration sample of spots.
4. **Counts**: ``Poisson(library_i * (S @ p_i) / 10^6)`` per gene, stored as a
   float32 CSR matrix, spots x genes (AnnData's layout).

Spots are drawn in blocks of :data:`BLOCK` spots, each from its own seeded
stream (``SeedSequence([seed, block])``), so the first *n* spots are the same
whatever the total and however the blocks are grouped: the 10^4-spot data of
``compare_spatial.py`` are the first 10^4 spots of the 10^6-spot file.  The
counts are drawn by a small Numba kernel (one pass, no dense spots x genes
intermediate; about 0.2 s per 10^4 spots), blocks in parallel threads.

Examples
--------
>>> from _spatial_data import spatial_model, spots
>>> model = spatial_model()
>>> X, truth = spots(model, 300)
>>> X.shape, truth.shape, X.dtype.name
((300, 2000), (300, 20), 'float32')
>>> 0.55 < X.nnz / (X.shape[0] * X.shape[1]) < 0.65
True
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numba
import numpy as np
import pandas as pd
import scipy.sparse as sp

from fastdeconv.simulate import synthetic

#: spots per seeded block (fixed: changing it changes the data)
BLOCK = 10_000
#: spots of the calibration sample for the library scale
CALIBRATION = 2000
_CPM = 1e6
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "NUMBA_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


@dataclass(frozen=True)
class SpatialModel:
    """The generator's fixed parts: signature, library scale and parameters.

    Attributes
    ----------
    signature : pandas.DataFrame
        Genes x cell types, each column summing to 10^6 (what the tools get).
    library : float
        The library-size scale ``L`` giving the target density.
    density : float
        Target expected fraction of non-zero entries.
    alpha : float
        Dirichlet concentration of the proportions.
    lib_sd : float
        Standard deviation of the log library size across spots.
    seed : int
        Seed of everything.
    profiles : str
        How the signature was drawn (``"gamma"`` or ``"synthetic"``).

    Examples
    --------
    >>> from _spatial_data import spatial_model
    >>> spatial_model(n_genes=200, n_types=4).signature.shape
    (200, 4)
    """

    signature: pd.DataFrame
    library: float
    density: float
    alpha: float
    lib_sd: float
    seed: int
    profiles: str = "gamma"

    @property
    def params(self):
        """The parameters that define the data (for file metadata and reports)."""
        g, k = self.signature.shape
        return dict(n_genes=g, n_types=k, profiles=self.profiles, density=self.density,
                    alpha=self.alpha, lib_sd=self.lib_sd, seed=self.seed, library=self.library,
                    block=BLOCK)


def _block_draws(model, block, n):
    """Proportions (n x k) and library sizes (n,) of a block, and its kernel seed."""
    rng = np.random.default_rng(np.random.SeedSequence([model.seed, block]))
    k = model.signature.shape[1]
    prop = rng.dirichlet(np.full(k, model.alpha), size=BLOCK)[:n]
    lib = model.library * np.exp(rng.normal(0.0, model.lib_sd, size=BLOCK))[:n]
    kernel_seed = int(rng.integers(0, 2**31 - 1))
    return prop, lib, kernel_seed


def _expected_density(rates, prop, lib):
    """Mean of ``1 - exp(-mu)`` over the entries (the expected non-zero fraction)."""
    mu = (prop * lib[:, None]) @ rates
    return float(np.mean(-np.expm1(-mu)))


def gamma_profiles(n_genes, n_types, seed, *, n_markers=25, fold=5.0):
    """Gamma-distributed profiles with marker genes, genes x types, columns summing to 10^6.

    Examples
    --------
    >>> from _spatial_data import gamma_profiles
    >>> S = gamma_profiles(100, 3, 0, n_markers=5)
    >>> S.shape, bool(abs(S.sum(axis=0) - 1e6).max() < 1e-6)
    ((100, 3), True)
    """
    if n_markers * n_types > n_genes:
        raise ValueError(f"{n_markers} markers for each of {n_types} types need more than "
                         f"{n_genes} genes")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2**31 + 1]))
    profiles = rng.gamma(1.0, 1.0, size=(n_genes, 1)) * rng.gamma(2.0, 0.5, (n_genes, n_types))
    markers = rng.permutation(n_genes)[: n_markers * n_types].reshape(n_types, n_markers)
    for t in range(n_types):
        profiles[markers[t], t] *= fold
    return profiles * (_CPM / profiles.sum(axis=0))


def spatial_model(n_genes=2000, n_types=20, *, density=0.6, alpha=0.5, lib_sd=0.3, seed=0,
                  profiles="gamma"):
    """Build the generator: signature and the library scale for ``density``.

    Parameters
    ----------
    n_genes, n_types : int, default 2000, 20
        Genes and cell types.
    density : float, default 0.6
        Expected fraction of non-zero counts (0 < density < 1).
    alpha : float, default 0.5
        Dirichlet concentration of each spot's proportions (below 1: spots
        dominated by a few types).
    lib_sd : float, default 0.3
        Standard deviation of the log library size across spots.
    seed : int, default 0
        Seed of the signature, the calibration and every block of spots.
    profiles : {"gamma", "synthetic"}, default "gamma"
        The signature's model (see the module's description).

    Returns
    -------
    SpatialModel

    Examples
    --------
    >>> from _spatial_data import spatial_model
    >>> m = spatial_model(n_genes=500, n_types=5, density=0.3)
    >>> m.library > 0
    True
    """
    if not 0.0 < density < 1.0:
        raise ValueError(f"density must be between 0 and 1 (exclusive), got {density}")
    if profiles == "gamma":
        signature = pd.DataFrame(
            gamma_profiles(n_genes, n_types, seed),
            index=[f"gene_{i + 1:05d}" for i in range(n_genes)],
            columns=[f"type_{t + 1}" for t in range(n_types)],
        )
    elif profiles == "synthetic":
        signature = synthetic(n_genes=n_genes, n_types=n_types, n_samples=1, noise="none",
                              seed=seed).signature
    else:
        raise ValueError(f"profiles must be 'gamma' or 'synthetic', got {profiles!r}")
    rates = np.ascontiguousarray(signature.to_numpy().T / _CPM)  # types x genes, rows sum to 1
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2**31]))
    prop = rng.dirichlet(np.full(n_types, alpha), size=CALIBRATION)
    lib = np.exp(rng.normal(0.0, lib_sd, size=CALIBRATION))
    lo, hi = 1e-3, 1e9  # bisection on log L: the density rises monotonically with L
    for _ in range(60):
        mid = np.sqrt(lo * hi)
        if _expected_density(rates, prop, lib * mid) < density:
            lo = mid
        else:
            hi = mid
    return SpatialModel(signature, float(np.sqrt(lo * hi)), float(density), float(alpha),
                        float(lib_sd), int(seed), profiles)


@numba.njit(cache=True, nogil=True)
def _poisson_csr(rates, prop, lib, seed):  # pragma: no cover - compiled
    """Poisson counts of every spot (row) as CSR arrays, one pass, no dense temporary."""
    np.random.seed(seed)  # this thread's Numba stream: deterministic per block
    n, k = prop.shape
    g = rates.shape[1]
    data = np.empty(n * g, np.float32)
    indices = np.empty(n * g, np.int32)
    indptr = np.zeros(n + 1, np.int64)
    mu = np.empty(g)
    nnz = 0
    for i in range(n):
        mu[:] = 0.0
        for t in range(k):
            w = prop[i, t] * lib[i]
            for j in range(g):
                mu[j] += w * rates[t, j]
        for j in range(g):
            c = np.random.poisson(mu[j])
            if c > 0:
                data[nnz] = c
                indices[nnz] = j
                nnz += 1
        indptr[i + 1] = nnz
    return data[:nnz].copy(), indices[:nnz].copy(), indptr


def spot_block(model, block, n=BLOCK):
    """The first ``n`` spots of block number ``block``: counts and true proportions.

    Parameters
    ----------
    model : SpatialModel
    block : int
        Block number; its spots are ``block * BLOCK`` onwards.
    n : int, default BLOCK
        Spots kept (at most ``BLOCK``; the draws do not depend on it).

    Returns
    -------
    counts : scipy.sparse.csr_matrix
        ``n`` x genes, float32.
    truth : numpy.ndarray
        ``n`` x types, rows summing to 1.

    Examples
    --------
    >>> from _spatial_data import spatial_model, spot_block
    >>> m = spatial_model(n_genes=300, n_types=3)
    >>> a, ta = spot_block(m, 1, 50)
    >>> b, tb = spot_block(m, 1, 20)
    >>> bool((a[:20] != b).nnz == 0 and (ta[:20] == tb).all())
    True
    """
    if not 0 < n <= BLOCK:
        raise ValueError(f"n must be between 1 and {BLOCK}, got {n}")
    prop, lib, seed = _block_draws(model, block, n)
    rates = np.ascontiguousarray(model.signature.to_numpy().T / _CPM)
    data, indices, indptr = _poisson_csr(rates, prop, lib, seed)
    if indptr[-1] < np.iinfo(np.int32).max:
        indptr = indptr.astype(np.int32)
    X = sp.csr_matrix((data, indices, indptr), shape=(n, rates.shape[1]))
    return X, prop


def iter_blocks(model, n_spots, *, threads=2):
    """Yield ``(start, counts, truth)`` for the blocks covering the first ``n_spots`` spots.

    Blocks are drawn ``threads`` at a time in threads (the kernel releases
    the GIL) and yielded in order; at most ``2 * threads`` blocks are held.

    Examples
    --------
    >>> from _spatial_data import spatial_model, iter_blocks
    >>> m = spatial_model(n_genes=300, n_types=3)
    >>> [(s, X.shape[0]) for s, X, _ in iter_blocks(m, 25_000)]
    [(0, 10000), (10000, 10000), (20000, 5000)]
    """
    starts = list(range(0, n_spots, BLOCK))

    def one(start):
        X, truth = spot_block(model, start // BLOCK, min(BLOCK, n_spots - start))
        return start, X, truth

    with ThreadPoolExecutor(max(1, threads)) as pool:
        for i in range(0, len(starts), max(1, threads)):
            yield from pool.map(one, starts[i:i + max(1, threads)])


def spots(model, n_spots, *, threads=2):
    """The first ``n_spots`` spots in memory: float32 CSR counts and true proportions.

    Examples
    --------
    >>> from _spatial_data import spatial_model, spots
    >>> X, truth = spots(spatial_model(n_genes=300, n_types=3), 12_000)
    >>> X.shape, truth.shape
    ((12000, 300), (12000, 3))
    """
    parts, truths = [], []
    for _, X, truth in iter_blocks(model, n_spots, threads=threads):
        parts.append(X)
        truths.append(truth)
    X = sp.vstack(parts, format="csr")
    return X, np.vstack(truths)


def spot_names(start, stop):
    """Spot identifiers ``spot_0000001`` ... (1-based, 7 digits and more).

    Examples
    --------
    >>> from _spatial_data import spot_names
    >>> spot_names(0, 2)
    ['spot_0000001', 'spot_0000002']
    """
    return [f"spot_{i + 1:07d}" for i in range(start, stop)]


def grid_coords(n_spots):
    """Spot coordinates on a square grid (row-major), for tools that need them.

    The proportions have no spatial structure (each spot's is an independent
    draw), so spatial smoothing cannot help a tool here.

    Examples
    --------
    >>> from _spatial_data import grid_coords
    >>> grid_coords(5).tolist()
    [[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [1.0, 1.0]]
    """
    width = int(np.ceil(np.sqrt(n_spots)))
    i = np.arange(n_spots)
    return np.column_stack([i % width, i // width]).astype(np.float64)


def limited(threads):
    """Environment and ``preexec_fn`` that hold a subprocess to ``threads`` cores.

    The environment sets the BLAS/OpenMP/Numba thread counts; the function,
    run in the child before it starts, sets its CPU affinity to the first
    ``threads`` cores this process may use (which fastdeconv's ``n_jobs``
    default reads).

    Examples
    --------
    >>> from _spatial_data import limited
    >>> env, preexec = limited(2)
    >>> env["OMP_NUM_THREADS"], env["NUMBA_NUM_THREADS"]
    ('2', '2')
    """
    env = dict(os.environ, **{v: str(threads) for v in _THREAD_VARS})
    cores = sorted(os.sched_getaffinity(0))[:threads] if hasattr(os, "sched_getaffinity") else []

    def preexec():
        if cores:
            os.sched_setaffinity(0, cores)
    return env, preexec
