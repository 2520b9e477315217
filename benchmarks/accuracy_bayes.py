"""How the defaults of the probabilistic method were chosen: worst case over real and held-out data.

Each variant of ``deconvolve(bulk, counts, labels=...)`` is scored on

* ``newman_GSE65133``: 20 PBMC microarrays with flow-cytometry truth, the
  1336-cell PBMC reference ``hao_pbmc_sc_subset`` (another platform: the
  cross-platform case), five coarse types (B incl. plasma cells, CD4 T incl.
  Tregs, CD8 T, NK, monocytes), cell fractions;
* held-out pseudo-bulk: for seeds 0-3 the cells of every type are split in
  two, the reference built from one half, 60 mixtures of raw counts made
  from the other (:func:`fastdeconv.simulate.split_pseudobulk`), scored over
  every type against the true cell fractions (RNA fractions for the
  ``fractions="rna"`` variant);

and the table reports the pooled Pearson r on each and the worst of the
two (newman, the lowest pseudo-bulk seed).  A default is the variant with
the best worst case, never the best mean (see the guide, "The probabilistic
method").  Nothing here is tuned to one table.

Run from the repository root (about two minutes)::

    python benchmarks/accuracy_bayes.py
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import fastdeconv
from fastdeconv.metrics import evaluate, group_types
from fastdeconv.simulate import split_pseudobulk

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy_singlecell import load_hao, load_newman, newman_truth  # noqa: E402

#: hao cell types summed into the coarse groups of the flow truth (plasma cells are B cells)
GROUPS = {
    "B": ["B cells", "Plasma cells"],
    "CD4 T": ["T cells CD4 conv", "Tregs"],
    "CD8 T": ["T cells CD8"],
    "NK": ["NK cells"],
    "Monocytes": ["Monocytes"],
}

VARIANTS = [
    ("bayes, update map (default)", dict(method="bayes")),
    ("bayes, update mle", dict(method="bayes", update_reference="mle")),
    ("bayes, no update", dict(method="bayes", update_reference=False)),
    ("bayes, keep ribo/mito", dict(method="bayes", exclude=())),
    ("bayes, rna fractions", dict(method="bayes", fractions="rna")),
    ("signature + nnls (cells)", dict(method="nnls")),
    ("signature + simplex (cells)", dict(method="simplex")),
]


def _run(bulk, counts, labels, options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fastdeconv.deconvolve(bulk, counts, labels=labels, progress=False, **options)


def main(seeds=(0, 1, 2, 3), n_samples=60):
    counts, labels = load_hao()
    bulk, truth = load_newman()
    flow = newman_truth(truth)
    rows = {}
    for name, options in VARIANTS:
        est = group_types(_run(bulk, counts, labels, options).proportions, GROUPS)
        ev = evaluate(est, flow.loc[est.index, est.columns])
        rows[name] = {"newman pooled": ev.overall["pearson_r"],
                      "newman per-type": ev.per_type["pearson_r"].mean()}
    scores = {name: [] for name, _ in VARIANTS}
    for seed in seeds:
        split = split_pseudobulk(counts, labels, n_samples, seed=seed)
        pb = split.pseudobulk
        for name, options in VARIANTS:
            res = _run(pb.bulk, split.reference_counts, split.reference_labels, options)
            types = [t for t in res.proportions.columns if t in pb.cell_fractions.columns]
            true = pb.rna_fractions if options.get("fractions") == "rna" else pb.cell_fractions
            ev = evaluate(res.proportions[types], true[types])
            scores[name].append((ev.overall["pearson_r"], ev.per_type["pearson_r"].mean()))
    for name, values in scores.items():
        a = np.array(values)
        rows[name].update({"pb pooled mean": a[:, 0].mean(), "pb pooled min": a[:, 0].min(),
                           "pb per-type mean": a[:, 1].mean()})
    table = pd.DataFrame(rows).T
    table["worst pooled"] = table[["newman pooled", "pb pooled min"]].min(axis=1)
    print(table.round(3).to_string())
    return table


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
