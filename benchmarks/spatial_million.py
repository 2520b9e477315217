"""10^6 spots from a backed .h5ad (or zarr) store through the command line: time, memory, accuracy.

What it measures (issue 12, target: 10^6 spots x 2000 genes x 20 types in
<= 30 s with peak memory <= 8 GB on 2 cores): the command a user types,

    fastdeconv deconvolve --bulk spots.h5ad --signature signature.tsv --output out.tsv

run as a subprocess on ``--threads`` cores (CPU affinity, and
``OMP_NUM_THREADS`` etc. set to it), reporting its wall time (process start
to exit: imports, reading, fit and writing the output all count), its peak
resident memory (``ru_maxrss`` from ``os.wait4``, as ``/usr/bin/time -v``
reports it) and the accuracy of the proportions it wrote against the stored
truth (pooled Pearson r over all spot x type entries, RMSE).  For safety on
a shared machine the subprocess is stopped when its resident memory exceeds
``--kill-above`` GB (reported as such).

The data (``benchmarks/_spatial_data.py``: 2000 genes, 20 types, gamma
profiles with markers (``--profiles``), Poisson counts, Dirichlet(0.5)
proportions, ``--density`` non-zero entries; the first 10^4 spots are those
of ``compare_spatial.py --spots 10000``) are written once to ``--dir`` and
reused while the generator's parameters match:

* ``spots_<n>_<profiles>_d<density>_s<seed>.h5ad`` (or ``.zarr`` with
  ``--zarr``): an AnnData, spots x genes, whose ``X`` is float32 CSR (int64 ``indptr``),
  uncompressed, written block by block of 10^4 spots
  (``anndata.io.write_elem`` for the first block, then
  ``anndata.io.sparse_dataset(...).append``), so the whole matrix is never in
  memory; it reads back with ``anndata.read_h5ad(path, backed="r")``;
* ``<store>.truth.npy``: the true proportions, spots x types (signature order);
* ``signature_<profiles>_s<seed>.tsv``: genes x types, first column ``gene``;
* ``<store>.json``: the generator's parameters, written last (a store without
  it is incomplete and is rewritten);
* ``out_<store>.tsv``: what the command wrote.

At 60% non-zeros 10^6 x 2000 is 1.2e9 values, about 9.6 GB on disk; the free
space is checked first (lower ``--density`` or choose another ``--dir``).

Re-run from the repository root::

    python benchmarks/spatial_million.py --spots 1000000 --dir /tmp/spatial1m
    python benchmarks/spatial_million.py --spots 1000000 --dir /tmp/spatial1m --zarr
    python benchmarks/spatial_million.py --spots 20000 --dir /tmp/spatial20k   # quick check
    python benchmarks/spatial_million.py --spots 20000 --dir /tmp/spatial20k \\
        --cli-args="--method nnls --robust none"
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _spatial_data import BLOCK, iter_blocks, limited, spatial_model, spot_names  # noqa: E402

TARGET_SECONDS = 30.0
TARGET_GB = 8.0
#: elements per storage chunk of X's data/indices/indptr (8 MB of float32)
CHUNK = 1 << 21


def paths(folder, n_spots, profiles, density, seed, zarr, output="tsv"):
    """The files of one data set: store, truth, signature and metadata."""
    store = f"spots_{n_spots}_{profiles}_d{density:g}_s{seed}" + (".zarr" if zarr else ".h5ad")
    return dict(store=folder / store, truth=folder / (store + ".truth.npy"),
                signature=folder / f"signature_{profiles}_s{seed}.tsv",
                meta=folder / (store + ".json"), output=folder / f"out_{store}.{output}")


def check_space(folder, n_spots, n_genes, density):
    """Refuse to start when ``folder``'s disk cannot hold the store (with 10% to spare)."""
    need = n_spots * n_genes * density * 8 * 1.1 + n_spots * 200 + 2e8
    free = shutil.disk_usage(folder).free
    if free < need:
        raise SystemExit(
            f"{folder} has {free / 1e9:.1f} GB free, the store needs about {need / 1e9:.1f} GB: "
            "lower --density, --spots, or choose another --dir"
        )


def _remove(path):
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def write_store(model, n_spots, files, zarr, threads):
    """Write the counts (chunked CSR), truth and signature; reuse them if complete."""
    import anndata as ad
    from anndata.io import sparse_dataset, write_elem

    meta = dict(model.params, n_spots=n_spots, format="zarr" if zarr else "h5ad")
    meta.pop("library")  # a float computed from the others
    if files["meta"].exists() and json.loads(files["meta"].read_text()) == meta \
            and files["store"].exists() and files["truth"].exists():
        print(f"reusing {files['store']}", flush=True)
        return
    for key in ("meta", "store", "truth"):
        _remove(files[key])
    model.signature.to_csv(files["signature"], sep="\t", index_label="gene")
    tmp = files["store"].with_name(files["store"].stem + ".partial" + files["store"].suffix)
    _remove(tmp)
    skeleton = ad.AnnData(obs=pd.DataFrame(index=spot_names(0, n_spots)),
                          var=pd.DataFrame(index=model.signature.index))
    kwargs = dict(indptr_dtype=np.int64, chunks=(CHUNK,))
    if zarr:  # (not write_zarr: it consolidates the metadata, after which X cannot be added)
        import zarr as zarr_lib

        group = zarr_lib.open_group(tmp, mode="w", zarr_format=ad.settings.zarr_write_format)
        kwargs["compressor"] = None
    else:
        import h5py

        group = h5py.File(tmp, "w")
    write_elem(group, "/", skeleton)  # obs, var and the empty slots; X follows block by block
    truth = np.lib.format.open_memmap(files["truth"].with_suffix(".partial.npy"), mode="w+",
                                      dtype=np.float64,
                                      shape=(n_spots, model.signature.shape[1]))
    t0 = time.perf_counter()
    X = None
    try:
        for start, block, block_truth in iter_blocks(model, n_spots, threads=threads):
            truth[start:start + block.shape[0]] = block_truth
            if X is None:
                write_elem(group, "X", block, dataset_kwargs=kwargs)
                X = sparse_dataset(group["X"])
            else:
                X.append(block)
            done = start + block.shape[0]
            if done % (20 * BLOCK) == 0 or done == n_spots:
                print(f"  written {done} of {n_spots} spots, {time.perf_counter() - t0:.0f} s",
                      flush=True)
    finally:
        if not zarr:
            group.close()
    truth.flush()
    del truth
    if zarr:
        zarr_lib.consolidate_metadata(str(tmp))  # the skeleton's consolidated metadata lacks X
    files["truth"].with_suffix(".partial.npy").rename(files["truth"])
    tmp.rename(files["store"])
    files["meta"].write_text(json.dumps(meta, indent=1))


def _rss_gb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024 / 1e9
    except OSError:
        pass
    return 0.0


def run_cli(cmd, threads, kill_above):
    """Run ``cmd`` on ``threads`` cores: (wall s, peak GB, exit status, note)."""
    env, preexec = limited(threads)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, preexec_fn=preexec)
    note = ""
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if _rss_gb(proc.pid) > kill_above:
            proc.kill()
            note = f"stopped: resident memory above --kill-above {kill_above:g} GB"
        time.sleep(0.05)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_maxrss * 1024 / 1e9, proc.returncode, note


def accuracy(output, truth_file, signature, n_spots):
    """Pooled Pearson r and RMSE of the written proportions against the truth."""
    from fastdeconv.metrics import pearson_r, rmse

    if str(output).endswith(".h5ad"):
        import anndata

        est = anndata.read_h5ad(output).obsm["fastdeconv_proportions"]
    else:
        est = pd.read_csv(output, sep="\t", index_col=0)
    names = spot_names(0, n_spots)
    if list(est.index) != names:
        est = est.reindex(names)
    P = est[list(signature.columns)].to_numpy(dtype=np.float64)
    truth = np.load(truth_file, mmap_mode="r")
    ok = np.isfinite(P).all(axis=1)
    return pearson_r(P[ok], truth[ok]), rmse(P[ok], truth[ok]), int((~ok).sum())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spots", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/spatial1m"),
                        help="where the data are written once and reused (default /tmp/spatial1m)")
    parser.add_argument("--density", type=float, default=0.6,
                        help="fraction of non-zero counts (default 0.6)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profiles", choices=["gamma", "synthetic"], default="gamma",
                        help="the signature's model (default gamma; see _spatial_data.py)")
    parser.add_argument("--zarr", action="store_true", help="a zarr store instead of .h5ad")
    parser.add_argument("--threads", type=int, default=2, help="cores for the command (default 2)")
    parser.add_argument("--repeats", type=int, default=1, help="runs of the command (default 1)")
    parser.add_argument("--cli", default=str(Path(sys.executable).with_name("fastdeconv")),
                        help="the fastdeconv command (default: beside this Python)")
    parser.add_argument("--cli-args", default="",
                        help='further options of `fastdeconv deconvolve`, one string, e.g. '
                             '--cli-args="--method nnls --robust none"')
    parser.add_argument("--kill-above", type=float, default=16.0,
                        help="stop the command above this resident memory, GB (default 16)")
    parser.add_argument("--write-only", action="store_true", help="write the data, run nothing")
    parser.add_argument("--output", choices=["tsv", "h5ad"], default="tsv",
                        help="what the command writes: the proportions as a TSV table, or an "
                        "AnnData (.h5ad: the spots' names and the results in .obsm)")
    args = parser.parse_args(argv)

    args.dir.mkdir(parents=True, exist_ok=True)
    model = spatial_model(density=args.density, seed=args.seed, profiles=args.profiles)
    n_genes, n_types = model.signature.shape
    files = paths(args.dir, args.spots, args.profiles, args.density, args.seed, args.zarr,
                  args.output)
    if not files["meta"].exists():
        check_space(args.dir, args.spots, n_genes, args.density)
    t0 = time.perf_counter()
    write_store(model, args.spots, files, args.zarr, args.threads)
    size = sum(p.stat().st_size for p in files["store"].rglob("*")) if args.zarr \
        else files["store"].stat().st_size
    print(f"data: {files['store']} ({size / 1e9:.2f} GB), ready in "
          f"{time.perf_counter() - t0:.0f} s", flush=True)
    if args.write_only:
        return

    output = files["output"]
    cmd = [args.cli, "deconvolve", "--bulk", str(files["store"]),
           "--signature", str(files["signature"]), "--output", str(output),
           *shlex.split(args.cli_args)]
    print("$ " + shlex.join(cmd), flush=True)
    runs = []
    for _ in range(args.repeats):
        _remove(output)
        wall, peak, status, note = run_cli(cmd, args.threads, args.kill_above)
        runs.append((wall, peak))
        print(f"  run: {wall:.1f} s, peak {peak:.2f} GB, exit status {status} {note}", flush=True)
        if status != 0:
            raise SystemExit(f"the command failed (exit status {status}) {note}")
    wall = float(np.median([w for w, _ in runs]))
    peak = max(p for _, p in runs)
    r, err, nan_spots = accuracy(output, files["truth"], model.signature, args.spots)
    nan = f" ({nan_spots} spots NaN)" if nan_spots else ""
    print()
    print("| spots | store | command options | wall s | peak GB | pooled r | RMSE | "
          f"<= {TARGET_SECONDS:g} s | <= {TARGET_GB:g} GB |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    print(f"| {args.spots} | {files['store'].suffix} {size / 1e9:.1f} GB | "
          f"{args.cli_args or '(defaults)'} | {wall:.1f} | {peak:.2f} | {r:.4f}{nan} | {err:.4f} | "
          f"{'yes' if wall <= TARGET_SECONDS else 'no'} | {'yes' if peak <= TARGET_GB else 'no'} |")
    print(f"({args.threads} cores, median of {len(runs)} run(s); {n_genes} genes x {n_types} "
          f"types, {args.profiles} profiles, density {args.density:g})")


if __name__ == "__main__":
    main()
