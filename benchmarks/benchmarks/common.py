"""Shared data generators for the asv suite (seeded, cheap to build at large sizes)."""

from __future__ import annotations

import numpy as np


def make_problem(n, k, m, seed=0):
    """Signature ``S`` (n x k) and bulk ``B`` (n x m) with known structure.

    ``B = S P + 0.05 N Q``: Dirichlet proportions ``P`` plus a low-rank term
    outside the span of ``S`` (``N`` is n x 5), so solutions are not exact and
    the active set is exercised, while building a 5000 x 100000 bulk takes a
    second rather than the minute that dense random noise would.  It is built
    in column blocks, so the process's peak memory is the bulk itself (what the
    ``peakmem_`` benchmarks then measure is the solver's addition to it).
    """
    rng = np.random.default_rng(seed)
    S = rng.lognormal(2.0, 1.5, (n, k))
    P = rng.dirichlet(np.full(k, 0.7), m).T
    N = rng.lognormal(2.0, 1.5, (n, 5))
    Q = rng.uniform(0.0, 1.0, (5, m))
    B = np.empty((n, m))
    step = max(1, (1 << 24) // (8 * n))  # build in column blocks: no n x m temporaries
    for j0 in range(0, m, step):
        j1 = min(j0 + step, m)
        B[:, j0:j1] = S @ P[:, j0:j1]
        B[:, j0:j1] += 0.05 * (N @ Q[:, j0:j1])
    return S, B
