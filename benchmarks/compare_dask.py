"""Dask: the same spots in memory, on Dask's threads, and on a LocalCluster of processes.

    python benchmarks/compare_dask.py [--spots 200000] [--chunk 50000] [--repeats 3]

The spots of ``_spatial_data`` (2000 genes x 20 types, Poisson counts, 60% non-zero,
CSR float32) are deconvolved with ``deconvolve``'s defaults three ways, in one run:

1. an AnnData with the CSR matrix in memory (the reference);
2. an AnnData whose ``X`` is a Dask array of CSR chunks of ``--chunk`` spots read from
   an AnnData zarr store (``anndata.experimental.read_elem_lazy``), on Dask's default
   (threaded) scheduler;
3. the same on a ``distributed.LocalCluster`` of two worker processes with one thread
   each (the workers' first task loads the kernels from Numba's cache; a warm-up call
   runs before the timing).

It prints the median wall time of each, the ratio to the in-memory path, and whether
the proportions are identical to the in-memory ones (they must be, bit for bit). On
one 2-core machine a cluster cannot be faster than the threads: this measures what
Dask adds (reading and decompressing the chunks, scheduling, results sent back), which
a real cluster pays per chunk too, spread over its workers.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _spatial_data import spatial_model, spot_names, spots  # noqa: E402


def timed(call, repeats):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = call()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spots", type=int, default=200_000)
    parser.add_argument("--chunk", type=int, default=50_000, help="spots per Dask chunk")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    import anndata
    import dask.array as da
    import distributed

    import fastdeconv

    warnings.filterwarnings("ignore", message="Sending large graph")
    model = spatial_model()
    X, truth = spots(model, args.spots)
    names = spot_names(0, args.spots)
    var = pd.DataFrame(index=list(model.signature.index))
    obs = pd.DataFrame(index=names)
    signature = model.signature
    in_memory = anndata.AnnData(X, obs=obs, var=var)
    # the chunks are read by whoever runs the task, from an AnnData zarr store (as on a
    # cluster, where the workers read shared storage; data embedded in the graph would be
    # shipped from the client instead)
    import tempfile

    import zarr

    folder = tempfile.mkdtemp(prefix="compare_dask_")
    store = Path(folder) / "spots.zarr"
    in_memory.write_zarr(store)
    lazy = anndata.AnnData(
        anndata.experimental.read_elem_lazy(zarr.open(store, mode="r")["X"],
                                            chunks=(args.chunk, X.shape[1])),
        obs=obs, var=var)

    def run(adata):
        return fastdeconv.deconvolve(adata, signature, progress=False).proportions

    fastdeconv.deconvolve(in_memory[:500].copy(), signature, progress=False)  # warm-up
    rows = []
    t_mem, ref = timed(lambda: run(in_memory), args.repeats)
    rows.append(("in memory (CSR)", t_mem, True))
    t_thr, out = timed(lambda: run(lazy), args.repeats)
    rows.append((f"Dask, threads, chunks of {args.chunk}", t_thr,
                 np.array_equal(out.to_numpy(), ref.to_numpy(), equal_nan=True)))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster):
        run(lazy[:500])  # warm the workers
        t_cl, out = timed(lambda: run(lazy), args.repeats)
    rows.append(("Dask, LocalCluster (2 processes x 1 thread)", t_cl,
                 np.array_equal(out.to_numpy(), ref.to_numpy(), equal_nan=True)))
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
    r = np.corrcoef(np.nan_to_num(ref.to_numpy()).ravel(), truth.ravel())[0, 1]
    print(f"{args.spots} spots x {X.shape[1]} genes x {signature.shape[1]} types, "
          f"{X.nnz / X.shape[0] / X.shape[1]:.0%} non-zero; pooled r {r:.4f}; median of "
          f"{args.repeats}\n")
    print("| path | median s | / in memory | proportions identical |")
    print("| --- | --- | --- | --- |")
    for label, t, same in rows:
        print(f"| {label} | {t:.2f} | {t / t_mem:.2f} | {'yes' if same else 'NO'} |")
    return 0 if all(same for _, _, same in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
