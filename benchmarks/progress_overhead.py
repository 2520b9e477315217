"""What a progress bar costs a warm run: each long pipeline with ``progress=False`` and ``True``.

Runs, in one process with a warm Numba cache (a first small call of each
pipeline loads its kernels), each pipeline alternately without and with its
bars (drawn on stderr, which this script points at ``/dev/null`` so that the
terminal's speed does not count), and reports the median of ``--repeats``
runs of each and their ratio; the answers of the two runs are checked to be
identical.  Also times a bar with the compile note (``compiling=True``) on a
warm run, against a plain bar, over many bars.

The pipelines and sizes (about 2-10 s each on two cores):

* ``signature``: ``build_signature`` on 20,000 genes x 30,000 sparse cells, 12 types;
* ``pseudobulk``: ``pseudobulk`` of 1,000 samples of 500 of those cells;
* ``linseed``: ``linseed`` on 10,000 genes x 100 samples;
* ``bayes``: ``deconvolve(method="bayes")`` of 1,000 samples on 5,000 genes, 10 types.

Run from the project root::

    python benchmarks/progress_overhead.py               # 5 repeats
    python benchmarks/progress_overhead.py --repeats 3 --only linseed bayes
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time

import numpy as np
import pandas as pd
import scipy.sparse as sp


def _cells(n_genes=20000, n_cells=30000, k=12, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n_cells)
    mu = rng.gamma(0.3, 0.3, size=(n_genes, k)).astype(np.float32)
    for t in range(k):
        mu[50 * t:50 * (t + 1), t] *= 10
    blocks = []
    for c0 in range(0, n_cells, 5000):
        lab = labels[c0:c0 + 5000]
        lib = rng.lognormal(0, 0.3, lab.size).astype(np.float32)
        blocks.append(sp.csc_array(rng.poisson(mu[:, lab] * lib).astype(np.float32)))
    return sp.hstack(blocks, format="csc"), np.array([f"t{t}" for t in labels])


def _bayes_data(n_genes=5000, k=10, m=1000, seed=1):
    rng = np.random.default_rng(seed)
    genes = [f"g{i}" for i in range(n_genes)]
    prof = rng.gamma(0.6, 1.0, (n_genes, k))
    prof /= prof.sum(axis=0)
    blocks, labels = [], []
    for t in range(k):
        blocks.append(rng.poisson(prof[:, [t]] * rng.gamma(20, 500, 50)))
        labels += [f"t{t}"] * 50
    counts = pd.DataFrame(np.hstack(blocks), index=genes)
    bulk = pd.DataFrame(rng.poisson(prof @ rng.dirichlet(np.full(k, 2.0), m).T * 1e6)
                        .astype(float), index=genes)
    return bulk, counts, labels


def pipelines():
    """name -> (warm-up call, timed call(progress) -> answer to compare)."""
    import fastdeconv
    from fastdeconv.reference_free import linseed
    from fastdeconv.signature import build_signature
    from fastdeconv.simulate import pseudobulk, synthetic

    counts, labels = _cells()
    bulk = synthetic(n_genes=10000, n_types=5, n_samples=100, seed=1).bulk
    b_bulk, b_counts, b_labels = _bayes_data()
    return {
        "signature": (
            lambda: build_signature(counts[:, :2000], labels[:2000]),
            lambda p: build_signature(counts, labels, progress=p).signature,
        ),
        "pseudobulk": (
            lambda: pseudobulk(counts[:, :2000], labels[:2000], 10),
            lambda p: pseudobulk(counts, labels, 1000, progress=p).bulk,
        ),
        "linseed": (
            lambda: linseed(bulk.iloc[:500, :20], 3, n_permutations=20, pvalue=0.05),
            lambda p: linseed(bulk, 5, progress=p).proportions,
        ),
        "bayes": (
            lambda: fastdeconv.deconvolve(b_bulk.iloc[:, :5], b_counts, labels=b_labels,
                                          method="bayes"),
            lambda p: fastdeconv.deconvolve(b_bulk, b_counts, labels=b_labels, method="bayes",
                                            progress=p).proportions,
        ),
    }


def _timed(call):
    start = time.perf_counter()
    answer = call()
    return time.perf_counter() - start, answer


def bar_cost(n=2000):
    """Seconds per bar: a plain bar and one with the compile note, each opened and closed."""
    from fastdeconv._progress import progress_bar

    out = {}
    for compiling in (False, True, False, True):
        start = time.perf_counter()
        for _ in range(n):
            with progress_bar(10, True, compiling=compiling) as bar:
                bar.update(10)
        out[compiling] = (time.perf_counter() - start) / n
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", nargs="*", default=None)
    args = parser.parse_args(argv)
    out = sys.stdout
    with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
        runs = pipelines()
        rows = []
        for name, (warm, run) in runs.items():
            if args.only and name not in args.only:
                continue
            warm()
            times = {False: [], True: []}
            answers = {}
            for _ in range(args.repeats):
                for progress in (False, True):
                    seconds, answers[progress] = _timed(lambda p=progress: run(p))
                    times[progress].append(seconds)
            off, on = (statistics.median(times[p]) for p in (False, True))
            rows.append((name, off, on, answers[False].equals(answers[True])))
        bars = bar_cost()
    print(f"{'pipeline':<12} {'off (s)':>9} {'on (s)':>9} {'on/off':>7}  identical", file=out)
    for name, off, on, same in rows:
        print(f"{name:<12} {off:9.3f} {on:9.3f} {on / off:7.3f}  {same}", file=out)
    print(f"a bar opened and closed: {bars[False] * 1e6:.0f} us; with the compile note "
          f"(warm): {bars[True] * 1e6:.0f} us", file=out)


if __name__ == "__main__":
    main()
