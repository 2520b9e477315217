"""What each rule for the number of cell types picks, on every case of the reference-free study.

For each case of :mod:`study_reference_free` (the two given designed-mixture
datasets, designed mixtures of their measured pure samples, PBMC pseudo-bulk)
runs :func:`fastdeconv.reference_free.linseed` with ``n_types="auto"`` and each
``k_rule`` (``"spectrum"``, ``"mdl"``, ``"bcv"``), and prints the k picked
against the true k, the r of the proportions at that k and the seconds, then
per rule how often it picked the true k and its worst and mean r.

Usage::

    python benchmarks/k_rules.py [--data ../shared/data] [--quick] [--out k_rules.tsv]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from study_reference_free import cases  # noqa: E402

from fastdeconv.metrics import evaluate  # noqa: E402
from fastdeconv.reference_free import linseed  # noqa: E402
from fastdeconv.n_types import K_RULES  # noqa: E402


def run(data_dir, quick=False):
    rows = []
    for case, mix, truth, k in cases(data_dir, quick):
        line = [f"{case:34s} true {k}:"]
        for rule in K_RULES:
            t = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = linseed(mix, "auto", k_rule=rule, progress=False)
            seconds = time.perf_counter() - t
            r = evaluate(res.proportions, truth, match="best").overall["pearson_r"]
            rows.append(dict(case=case, rule=rule, true_k=k, k=res.n_types, r=r,
                             seconds=seconds))
            line.append(f"{rule} {res.n_types} (r {r:.3f}, {seconds:.1f} s)")
        print("  ".join(line), flush=True)
    return pd.DataFrame(rows)


def summary(table):
    out = table.groupby("rule").apply(lambda g: pd.Series({
        "true k picked": f"{(g.k == g.true_k).sum()}/{len(g)}",
        "too many": int((g.k > g.true_k).sum()), "too few": int((g.k < g.true_k).sum()),
        "worst r": g.r.min(), "mean r": g.r.mean(), "median s": g.seconds.median()}),
        include_groups=False)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--quick", action="store_true", help="one seed per simulated family")
    ap.add_argument("--out", default=None, help="write the per-case table (TSV)")
    a = ap.parse_args(argv)
    table = run(a.data, a.quick)
    if a.out:
        table.to_csv(a.out, sep="\t", index=False)
    print()
    print(table.pivot_table(index="case", columns="rule", values="k").assign(
        true=table.groupby("case").true_k.first()).to_string())
    print()
    print(summary(table).round(3).to_string())


if __name__ == "__main__":
    main()
