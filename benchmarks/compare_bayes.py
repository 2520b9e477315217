"""fastdeconv's probabilistic deconvolution against the PyPI BayesPrism ports.

Runs, in one process and on the same inputs, the Python ports of BayesPrism
found on PyPI and fastdeconv, and prints one table of time and accuracy:

* ``pybayesprism`` (NumPy, a line-by-line port of the R package: Gibbs
  sampler over cell states, MAP reference update, final Gibbs over types);
* ``bayesprism`` (PyTorch, "pure functional" port of the same algorithm);
* ``fastdeconv bayes``: ``fastdeconv.deconvolve(bulk, counts, method="bayes",
  labels=labels)`` (printed as "not available" until that API exists);
* ``fastdeconv regression``: the current default, ``build_signature(counts,
  labels)`` then ``deconvolve(bulk, signature)``.

Every method gets the same single-cell reference (raw UMI counts of
``hao_pbmc_sc_subset`` with its cell-type labels), the same genes (those of
the reference that the bulk measures) and the same bulk, with its default
options; the peers use their default chains (1000 iterations, burn-in 500,
thinning 2) and their "final" theta (after the reference update).

Datasets

``newman``
    The 20 PBMC microarrays of ``newman_GSE65133`` (linear intensities,
    rounded to integers because the Gibbs samplers need counts), reference of
    all hao cells.  Estimates and flow truth are summed into five coarse
    groups (B incl. plasma cells, CD4 T incl. Tregs, CD8 T, NK, monocytes) and
    renormalised over them.
``pseudobulk``
    Held-out pseudo-bulk (:func:`fastdeconv.simulate.split_pseudobulk`: half
    of each type's cells form the reference, 500-cell Dirichlet(1) mixtures
    of raw counts are made from the other half), scored over all 11 types
    against the true cell fractions (``pb-cells``) and RNA fractions
    (``pb-rna``).

Scores: pooled Pearson r over all (sample, type) values, the mean of the
per-type r across samples, and the RMSE.  Time is wall-clock
(:func:`time.perf_counter`) of the whole call, input preparation included
(the CPU time of the process and its reaped workers is shown beside it, a
check on a busy machine);
memory is the peak resident set of the process and its worker processes
during the call, above what it was at the start (sampled from ``/proc``
every 20 ms, so torch, numba and multiprocessing are all counted).  The
speed ratio compares seconds per bulk sample, so a peer run on fewer
samples (``--max-peer-samples``) is still compared fairly.

Run from the repository root (the peers must be installed in the same
environment, e.g. ``pip install bayesprism pybayesprism``)::

    python benchmarks/compare_bayes.py                      # everything, hours with the peers
    python benchmarks/compare_bayes.py --quick              # 1000 genes, 8 pseudo-bulks
    python benchmarks/compare_bayes.py --peer none          # fastdeconv only, seconds
    python benchmarks/compare_bayes.py --peer bayesprism --quick --max-peer-samples 2
    python benchmarks/compare_bayes.py --scale              # fastdeconv on 10^4 x 15000 x 50
    python benchmarks/compare_bayes.py --markdown table.md

The datasets are read from ``../shared/data`` (or ``$FASTDECONV_DATA``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import threading
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

import fastdeconv
from fastdeconv.io import read_table
from fastdeconv.metrics import evaluate, group_types
from fastdeconv.simulate import split_pseudobulk

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("FASTDECONV_DATA", ROOT.parent / "shared" / "data"))

#: Newman flow subsets summed into the five coarse groups (as in accuracy_singlecell.py)
NEWMAN_TRUTH_GROUPS = {
    "B": ["B cells naive", "B cells memory"],
    "CD4 T": ["T cells CD4 naive", "T cells CD4 memory resting", "T cells CD4 memory activated"],
    "CD8 T": ["T cells CD8"],
    "NK": ["NK cells resting"],
    "Monocytes": ["Monocytes"],
}
#: hao cell types summed into the same groups (plasma cells count as B here)
HAO_GROUPS = {
    "B": ["B cells", "Plasma cells"],
    "CD4 T": ["T cells CD4 conv", "Tregs"],
    "CD8 T": ["T cells CD8"],
    "NK": ["NK cells"],
    "Monocytes": ["Monocytes"],
}
PEERS = ("pybayesprism", "bayesprism")


# ---------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------


@dataclass
class Problem:
    """One deconvolution problem, the same for every method.

    Attributes
    ----------
    name : str
        Dataset label of the table.
    bulk : pandas.DataFrame
        Genes x samples, non-negative integers (as floats).
    counts : pandas.DataFrame
        Genes x cells raw counts of the reference, same genes as ``bulk``.
    labels : pandas.Series
        Cell type of each reference cell, indexed like ``counts.columns``.
    truths : dict
        Row label -> (samples x types truth, groups or None).  ``groups``
        maps truth groups to reference types to sum before scoring.
    """

    name: str
    bulk: pd.DataFrame
    counts: pd.DataFrame
    labels: pd.Series
    truths: dict = field(default_factory=dict)


def load_hao(data=DATA):
    """Counts (genes x cells DataFrame) and labels (Series by cell) of hao_pbmc_sc_subset."""
    folder = data / "hao_pbmc_sc_subset"
    counts = read_table(folder / "counts.tsv.gz")
    labels = read_table(folder / "cell_labels.tsv", numeric=False)["cell_type"]
    return counts, labels.loc[counts.columns]


def gene_subset(genes, n_genes, seed=0):
    """A seeded random subset of ``n_genes`` of ``genes`` (all of them when None), in order."""
    genes = pd.Index(genes)
    if n_genes is None or n_genes >= genes.size:
        return genes
    rng = np.random.default_rng(seed)
    return genes[np.sort(rng.choice(genes.size, n_genes, replace=False))]


def newman_problem(counts, labels, n_genes=None, data=DATA):
    """The 20 PBMC microarrays with flow truth, on the genes shared with the reference."""
    folder = data / "newman_GSE65133"
    mixture = read_table(folder / "mixture.tsv.gz")
    truth = read_table(folder / "truth.tsv")
    expressed = counts.index[counts.sum(axis=1) > 0]
    genes = gene_subset(expressed.intersection(mixture.index, sort=False), n_genes)
    bulk = mixture.loc[genes].round()
    truth5 = group_types(truth.T, NEWMAN_TRUTH_GROUPS)
    return Problem(
        "newman", bulk, counts.loc[genes], labels, {"newman": (truth5, HAO_GROUPS, "cells")}
    )


def pseudobulk_problem(counts, labels, n_samples, n_genes=None, seed=0):
    """Held-out pseudo-bulk of raw counts; the reference is the other half of the cells."""
    split = split_pseudobulk(counts, labels, n_samples, seed=seed)
    ref = split.reference_counts
    expressed = ref.index[np.asarray(ref.sum(axis=1)) > 0]
    genes = gene_subset(expressed, n_genes)
    pb = split.pseudobulk
    truths = {
        "pb-cells": (pb.cell_fractions, None, "cells"),
        "pb-rna": (pb.rna_fractions, None, "rna"),
    }
    return Problem(
        "pseudobulk", pb.bulk.loc[genes].astype(float), ref.loc[genes],
        split.reference_labels.loc[ref.columns], truths,
    )


def limit_samples(problem, n):
    """The problem restricted to its first ``n`` bulk samples (all when None)."""
    if n is None or n >= problem.bulk.shape[1]:
        return problem
    return Problem(problem.name, problem.bulk.iloc[:, :n], problem.counts, problem.labels,
                   problem.truths)


# ---------------------------------------------------------------------------
# measuring
# ---------------------------------------------------------------------------


def _rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _descendants(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{p}/task/{tid}/children") as fh:
                    kids = [int(c) for c in fh.read().split()]
            except OSError:
                kids = []
            out.extend(kids)
            todo.extend(kids)
    return out


class PeakMemory:
    """Peak resident memory (MiB) of this process and its children above the start.

    A thread samples ``/proc`` every ``interval`` seconds; where ``/proc`` is
    missing, the ``ru_maxrss`` high-water mark increase is used instead (a
    lower bound: it moves only when the old peak is exceeded).
    """

    def __init__(self, interval=0.02):
        self.interval = interval
        self.peak_mib = float("nan")
        self._proc = Path("/proc/self/status").exists()

    def _total(self):
        pid = os.getpid()
        return _rss_kib(pid) + sum(_rss_kib(c) for c in _descendants(pid))

    def _watch(self):
        while not self._stop.wait(self.interval):
            self._peak = max(self._peak, self._total())

    def __enter__(self):
        if self._proc:
            self._base = self._peak = self._total()
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._watch, daemon=True)
            self._thread.start()
        else:
            import resource

            self._base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return self

    def __exit__(self, *exc):
        if self._proc:
            self._stop.set()
            self._thread.join()
            self._peak = max(self._peak, self._total())
            self.peak_mib = (self._peak - self._base) / 1024
        else:
            import resource

            now = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            self.peak_mib = (now - self._base) / 1024
        return False


@contextlib.contextmanager
def quiet(verbose):
    """Silence a peer's prints and progress bars unless ``verbose``."""
    if verbose:
        yield
        return
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# ---------------------------------------------------------------------------
# methods: each takes a Problem and returns {"cells": df, "rna": df}
# (samples x types; a method with one kind of output returns it under both)
# ---------------------------------------------------------------------------


@contextlib.contextmanager
def _pybayesprism_type_names(types):
    """Work around a pybayesprism 0.1.0 bug in its default path.

    Its final Gibbs run without a tumour key names the theta columns with the
    *gene* names (``ThetaPost.new(X.index, X.columns, ...)``), which fails
    unless there are as many genes as cell types.  For the duration, a wrong
    name list is replaced by the cell types; nothing else is changed.
    """
    from pybayesprism import theta_post

    original = theta_post.ThetaPost.new

    def new(bulk_id, cell_type, gibbs_list):
        if len(cell_type) != len(gibbs_list[0]["theta_n"]):
            cell_type = list(types)
        return original(bulk_id, cell_type, gibbs_list)

    theta_post.ThetaPost.new = new
    try:
        yield
    finally:
        theta_post.ThetaPost.new = original


def run_pybayesprism(problem, n_jobs):
    """pybayesprism with its defaults; the final theta per cell type."""
    from pybayesprism import extract, prism

    reference = problem.counts.T  # cells x genes
    mixture = problem.bulk.T.astype(np.int64)  # samples x genes, the sampler needs ints
    # an array, not a list: Prism.new calls pd.unique on it (pandas 3 refuses lists)
    labels = problem.labels.astype(str).to_numpy(dtype=object)
    model = prism.Prism.new(
        reference=reference, input_type="count.matrix", cell_type_labels=labels,
        cell_state_labels=None, key=None, mixture=mixture,
    )
    # fresh dicts: run() stores n.cores into its mutable default arguments
    with _pybayesprism_type_names(model.phi_cellType.phi.index):
        res = model.run(n_cores=n_jobs, update_gibbs=True, gibbs_control={}, opt_control={})
    theta = extract.get_fraction(res, "final", "type")
    theta.index = problem.bulk.columns
    return {"cells": theta, "rna": theta}


def run_bayesprism(problem, n_jobs):
    """bayesprism (PyTorch) with its defaults; the final theta per cell type."""
    from returns.maybe import Nothing, Some

    import bayesprism

    reference = problem.counts.to_numpy(dtype=np.float32).T  # cells x genes
    mixture = problem.bulk.to_numpy(dtype=np.float32).T  # samples x genes
    made = bayesprism.new_prism(
        reference=reference, cell_type_labels=tuple(problem.labels.astype(str)),
        cell_state_labels=Nothing, mixture=mixture,
        gene_names=Some(tuple(problem.bulk.index)),
        bulk_names=Some(tuple(problem.bulk.columns)),
    ).unwrap()
    fitted = bayesprism.run_prism(
        made, gibbs_control=Some(bayesprism.GibbsControl(num_threads=n_jobs))
    ).unwrap()
    theta = bayesprism.get_fraction(fitted, "final", "type").unwrap()
    # via a dict: polars' to_pandas() needs pyarrow, which the port does not require
    theta = pd.DataFrame(theta.to_dict(as_series=False)).set_index("bulk_id")
    theta.index = problem.bulk.columns
    return {"cells": theta, "rna": theta}


def run_fastdeconv_bayes(problem, n_jobs):
    """``fastdeconv.deconvolve(bulk, counts, method="bayes", labels=labels)``."""
    out = {}
    for kind in sorted({k for _, _, k in problem.truths.values()}):
        res = fastdeconv.deconvolve(
            problem.bulk, problem.counts, method="bayes", labels=problem.labels,
            fractions=kind, n_jobs=n_jobs, progress=False,
        )
        out[kind] = res.proportions
    return out


def run_fastdeconv_regression(problem, n_jobs):
    """The regression default: build_signature, then deconvolve (nnls)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # small types have few markers
        sig = fastdeconv.build_signature(problem.counts, problem.labels, n_jobs=n_jobs)
    res = fastdeconv.deconvolve(problem.bulk, sig.signature, n_jobs=n_jobs, progress=False)
    return {"rna": res.proportions, "cells": res.to_cell_fractions(sig)}


METHODS = {
    "pybayesprism": run_pybayesprism,
    "bayesprism": run_bayesprism,
    "fastdeconv bayes": run_fastdeconv_bayes,
    "fastdeconv regression": run_fastdeconv_regression,
}


def score(estimate, truth, groups):
    """Pooled r, mean per-type r and RMSE of a samples x types estimate."""
    est = estimate.astype(float)
    if groups is not None:
        est = group_types(est, groups)
    else:
        est = est.div(est.sum(axis=1), axis=0)
    tru = truth.loc[est.index]
    ev = evaluate(est, tru)
    per_type = ev.per_type["pearson_r"]  # undefined (NaN) with one sample
    return {
        "pooled r": ev.overall["pearson_r"],
        "per-type r": float(per_type.mean()) if per_type.notna().any() else np.nan,
        "RMSE": ev.overall["rmse"],
    }


def _cpu_seconds():
    """User + system CPU time of this process and its reaped worker processes."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def run_method(name, problem, n_jobs, verbose):
    """Time one method on one problem; the table rows of its truths."""
    rows = []
    base = {"method": name, "samples": problem.bulk.shape[1], "genes": problem.bulk.shape[0]}
    try:
        with PeakMemory() as mem, quiet(verbose or name.startswith("fastdeconv")):
            c0, t0 = _cpu_seconds(), time.perf_counter()
            out = METHODS[name](problem, n_jobs)
            seconds = time.perf_counter() - t0
            cpu = _cpu_seconds() - c0
    except Exception as exc:  # a peer that fails, or the API not written yet
        what = "not available" if name == "fastdeconv bayes" else "failed"
        msg = f"{what}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        print(f"  {name} on {problem.name}: {msg}", flush=True)
        if verbose:
            traceback.print_exc(file=sys.stdout)
        return [dict(base, dataset=d, note=msg) for d in problem.truths]
    print(f"  {name} on {problem.name}: {seconds:.1f} s (CPU {cpu:.1f} s), "
          f"+{mem.peak_mib:.0f} MiB", flush=True)
    for dataset, (truth, groups, kind) in problem.truths.items():
        rows.append(dict(base, dataset=dataset, **{"time (s)": seconds,
                         "s/sample": seconds / problem.bulk.shape[1],
                         "CPU (s)": cpu,
                         "peak MiB": mem.peak_mib}, **score(out[kind], truth, groups)))
    return rows


def speed_ratios(table, peers):
    """Columns 'x vs PEER': the peer's seconds per sample over this method's."""
    table = table.reindex(columns=table.columns.union(["s/sample"], sort=False))
    for peer in peers:
        col = f"x vs {peer}"
        ref = table.loc[table["method"] == peer].set_index("dataset")["s/sample"]
        table[col] = [
            ref.get(d, np.nan) / s if pd.notna(s) and s > 0 else np.nan
            for d, s in zip(table["dataset"], table["s/sample"])
        ]
        table.loc[table["method"] == peer, col] = np.nan
    return table


# ---------------------------------------------------------------------------
# scale
# ---------------------------------------------------------------------------


def synthetic_scale(n_samples=10_000, n_genes=15_000, n_states=50, depth=1e7,
                    cells_per_state=20, cell_depth=3000, seed=0):
    """A large synthetic problem: reference cells and Poisson bulk counts.

    Profiles ``phi`` (genes x states) are normalised Gamma(0.3) draws,
    fractions Dirichlet(1), bulk counts Poisson(depth * phi @ theta); the
    reference has ``cells_per_state`` Poisson cells of each state.
    """
    rng = np.random.default_rng(seed)
    phi = rng.gamma(0.3, size=(n_genes, n_states))
    phi /= phi.sum(axis=0)
    theta = rng.dirichlet(np.ones(n_states), size=n_samples)  # samples x states
    genes = [f"g{i}" for i in range(n_genes)]
    states = [f"state{k:02d}" for k in range(n_states)]
    bulk = np.empty((n_genes, n_samples), dtype=np.float32)
    for start in range(0, n_samples, 500):
        stop = min(start + 500, n_samples)
        bulk[:, start:stop] = rng.poisson(depth * (phi @ theta[start:stop].T))
    labels = np.repeat(states, cells_per_state)
    cells = rng.poisson(cell_depth * phi[:, np.repeat(np.arange(n_states), cells_per_state)])
    cell_ids = [f"c{i}" for i in range(labels.size)]
    return (
        pd.DataFrame(bulk, index=genes, columns=[f"s{i}" for i in range(n_samples)]),
        pd.DataFrame(cells.astype(np.float32), index=genes, columns=cell_ids),
        pd.Series(labels, index=cell_ids),
        pd.DataFrame(theta, columns=states),
    )


def run_scale(n_jobs):
    """Time fastdeconv's bayes API alone on the 10,000 x 15,000 x 50 problem."""
    t0 = time.perf_counter()
    bulk, counts, labels, theta = synthetic_scale()
    print(f"\n== scale: {bulk.shape[1]} samples x {bulk.shape[0]} genes x "
          f"{labels.nunique()} states (made in {time.perf_counter() - t0:.0f} s) ==", flush=True)
    try:
        with PeakMemory() as mem:
            t0 = time.perf_counter()
            res = fastdeconv.deconvolve(bulk, counts, method="bayes", labels=labels,
                                        fractions="rna", n_jobs=n_jobs, progress=False)
            seconds = time.perf_counter() - t0
    except Exception as exc:
        print(f"fastdeconv bayes: not available ({type(exc).__name__}: {exc})")
        return
    est = res.proportions
    est.index = theta.index = bulk.columns
    ev = evaluate(est[theta.columns], theta)
    print(f"fastdeconv bayes: {seconds:.1f} s, +{mem.peak_mib:.0f} MiB, "
          f"pooled r {ev.overall['pearson_r']:.4f}, RMSE {ev.overall['rmse']:.4f}")


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------


def format_table(table):
    cols = ["method", "dataset", "samples", "genes", "time (s)", "s/sample", "CPU (s)",
            "peak MiB",
            "pooled r", "per-type r", "RMSE"]
    cols += [c for c in table.columns if c.startswith("x vs ")] + ["note"]
    return table.reindex(columns=cols).dropna(axis=1, how="all")


def to_markdown(table):
    """The table as a GitHub markdown table (numbers to 3 significant digits)."""
    def cell(v):
        if isinstance(v, float):
            return "" if np.isnan(v) else f"{v:.3g}"
        return str(v).replace("|", "/")

    lines = ["| " + " | ".join(table.columns) + " |",
             "| " + " | ".join("---" for _ in table.columns) + " |"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |"
              for row in table.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--peer", choices=[*PEERS, "all", "none"], default="all",
                        help="which PyPI port(s) to run (default: all)")
    parser.add_argument("--quick", action="store_true",
                        help="a seeded random 1000 of the genes and 8 pseudo-bulks")
    parser.add_argument("--genes", type=int, help="random subset of genes (all by default)")
    parser.add_argument("--n-pseudobulk", type=int, help="pseudo-bulk samples (default 20)")
    parser.add_argument("--max-peer-samples", type=int,
                        help="give the peers only the first N bulk samples of each dataset")
    parser.add_argument("--n-jobs", type=int, default=os.cpu_count(),
                        help="cores for every method (default: all)")
    parser.add_argument("--no-regression", action="store_true",
                        help="skip the regression baseline")
    parser.add_argument("--scale", action="store_true",
                        help="also time fastdeconv alone on 10^4 samples x 15000 genes x 50")
    parser.add_argument("--markdown", type=Path, help="write the table as markdown")
    parser.add_argument("--verbose", action="store_true", help="show the peers' output")
    args = parser.parse_args(argv)
    if not DATA.is_dir():
        parser.error(f"shared datasets not found at {DATA} (set FASTDECONV_DATA)")
    n_genes = args.genes if args.genes is not None else (1000 if args.quick else None)
    n_pb = args.n_pseudobulk if args.n_pseudobulk is not None else (8 if args.quick else 20)
    peers = list(PEERS) if args.peer == "all" else [] if args.peer == "none" else [args.peer]

    counts, labels = load_hao()
    problems = [newman_problem(counts, labels, n_genes), pseudobulk_problem(counts, labels, n_pb,
                                                                            n_genes)]
    print(f"reference: hao_pbmc_sc_subset {counts.shape[1]} cells, {labels.nunique()} types; "
          f"n_jobs={args.n_jobs}" + (f"; {n_genes} random genes" if n_genes else ""), flush=True)
    # the peers first: pybayesprism forks worker processes, which is safest
    # before numba has started its threads
    methods = peers + ["fastdeconv bayes"] + ([] if args.no_regression else
                                              ["fastdeconv regression"])
    rows = []
    for problem in problems:
        print(f"== {problem.name}: {problem.bulk.shape[1]} samples x "
              f"{problem.bulk.shape[0]} genes ==", flush=True)
        for name in methods:
            p = limit_samples(problem, args.max_peer_samples) if name in peers else problem
            rows.extend(run_method(name, p, args.n_jobs, args.verbose))
    table = format_table(speed_ratios(pd.DataFrame(rows), peers))
    pd.set_option("display.width", 250)
    pd.set_option("display.max_columns", 30)
    print()
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}", na_rep=""))
    if args.markdown:
        args.markdown.write_text(to_markdown(table))
        print(f"table written to {args.markdown}")
    if args.scale:
        run_scale(args.n_jobs)
    return table


if __name__ == "__main__":
    sys.exit(0 if main() is not None else 1)
