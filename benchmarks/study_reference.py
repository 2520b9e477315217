"""Method selection for reference-based deconvolution, cross-validated by dataset.

Every *candidate* (a setting of :func:`fastdeconv.deconvolve`: a registered
regression method crossed with the pipeline's main switches) is scored on
every *case* of ``benchmarks/study_cases.py``: the given sets, split-half
pseudo-bulks of single cells, and simulations on real profiles with one known
perturbation each (platform shift, a missing cell type, outlier genes, count
noise, near-collinear types, an additive background, another platform's
scale).  The candidate for the default is chosen by its *worst case*, and the
choice is cross-validated leave-one-dataset-out, so that no figure of a
dataset decides the setting that is then scored on it.

Scores (:func:`fastdeconv.metrics.evaluate`): pooled Pearson r over all
(sample, type) entries, the mean of the per-type r (types whose truth is
constant left out; a constant estimate counts r = 0) and the pooled RMSE.  A
candidate that raises, or returns NaN for a scored entry, scores the worst
possible (r = -1, per-type r = -1, RMSE = 1) on that case.  A method that
reports cell fractions (from a single-cell reference with raw counts, or by
its own option ``fractions="cells"``, as EPIC's mRNA-per-cell correction) is
scored against the true cell fractions where a case has them (the hao
pseudo-bulks), the others against the RNA fractions; the given sets have
one truth for all.

Selection.  The *regret* of a candidate on a case is its shortfall from the
best candidate there (in pooled r; separately in per-type r and in RMSE).
Four summaries of a candidate's regrets (:data:`CRITERIA`), each a worst
case: its largest regret over the cases (``worst``); the mean of its three
largest (``worst3``: one unlucky case does not decide alone); its largest
regret after averaging each case setting over its seeds (``seeds``: the same
case built with other seeds counts once); and its largest regret averaged
over the cases of a dataset (``datasets``: the worst dataset).  A *dataset* is a group
of cases from one source: each given set, the hao pseudo-bulks, each
simulation family, the curated-signature, heteroscedastic RNA-seq and
designed-mixture families.  Leave-one-dataset-out: for each dataset, the
candidate with the smallest summary over the *other* datasets is chosen and
scored on the held-out one, next to the best candidate there, plain NNLS
and the current default.  The recommendation is the smallest summary over
all datasets; the report says how many folds chose it.

Candidates are read from the method registry at run time
(:data:`fastdeconv.methods.REGRESSION`).  The pipeline's own least-squares
methods (those with a Huber loss) get their default settings and one switch
at a time (``genes="all"``, ``n_markers`` 50 and 200, ``robust=None``,
``background=False`` where it is fitted), plus the combinations of
:data:`COMBINATIONS` (plain NNLS, plain simplex, ...).  The peers' methods
(their own loss) get one row each, their defaults, plus the few settings of
:data:`METHOD_VARIANTS` (skipped when the method is not registered).
Methods that need per-gene weights are skipped; methods that need single
cells run only on the cases that have them (``labels=``, and ``subjects=``
-- the sequencing lanes -- when they need it) and are reported beside the
selection, not in it (the default for a signature must run on every case).
Every candidate is the same dict of keywords on every case.

Run from the repository root::

    python benchmarks/study_reference.py                  # the whole study (12-18 min, 2 busy cores)
    python benchmarks/study_reference.py --quick          # one seed per setting, fewer samples
    python benchmarks/study_reference.py --write docs/accuracy.md   # also write the page

On a busy machine, run groups of cases in turn and report them together::

    python benchmarks/study_reference.py --families given hao --scores a.tsv > /dev/null
    python benchmarks/study_reference.py --families curated designed --scores b.tsv > /dev/null
    python benchmarks/study_reference.py --from-scores a.tsv b.tsv     # the report of both

(``--scores`` also writes the list of cases next to the scores,
``<name>.cases.tsv``; ``--from-scores`` reads both.)  ``--import MODULE``
imports a method module that is written but not yet in the registry's module
list (e.g. ``fastdeconv.methods.svr``), so that its method is a candidate.

The output is deterministic (seeded cases, exact solvers) apart from the
timings.  Data: ``../shared/data`` next to the repository (``$FASTDECONV_DATA``
overrides).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import re
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

import fastdeconv
from fastdeconv.methods import REGRESSION, SPOT_OPTIONS
from fastdeconv.metrics import evaluate

sys.path.insert(0, str(Path(__file__).resolve().parent))
import study_cases  # noqa: E402  (the cases live next to this script)

#: The three scores, whether larger is better, and how they are printed.
METRICS = {"pooled_r": (True, "{:.3f}"), "per_type_r": (True, "{:.2f}"),
           "rmse": (False, "{:.3f}")}
#: What a failed candidate scores on a case (the worst possible).
WORST = {"pooled_r": -1.0, "per_type_r": -1.0, "rmse": 1.0}
#: Short column names of the datasets in the tables.
SHORT = {
    "shenorr_GSE19830": "shenorr", "abbas_GSE11058": "abbas", "newman_GSE65133": "newman",
    "sim_cibersort_tutorial_LM22": "simLM22", "hao_pseudobulk": "hao_pb",
    "sim_platform": "platform", "sim_missing_type": "missing", "sim_outlier_genes": "outliers",
    "sim_count_noise": "counts", "sim_collinear": "collinear", "sim_background": "backgr",
    "sim_scale": "scale", "curated_signature": "curated", "sim_rnaseq_hetero": "hetero",
    "designed_mixtures": "designed", "spatial_spots": "spatial",
}
#: Datasets whose bulk is stored sparse: their default is chosen in a section of its own.
SPARSE_DATASETS = ("spatial_spots",)
#: The datasets added for the held-back data of issue 11 (their own table in the report).
NEW_DATASETS = ("curated_signature", "sim_rnaseq_hetero", "designed_mixtures", "spatial_spots")
PLAIN_NNLS = dict(method="nnls", genes="all", robust=None, background=False)
#: Combinations of the least-squares switches beyond one at a time: method -> changes.
COMBINATIONS = {
    "nnls": ({"robust": None, "background": False}, {"genes": "all", "robust": None},
             {"genes": "all", "background": False},
             {k: v for k, v in PLAIN_NNLS.items() if k != "method"},
             # gene weights by a rule on the signature (issue 12): one projection of the
             # bulk (Gram form) for robust=None, the fast path of spatial data
             {"weights": "poisson", "robust": None}, {"weights": "relative", "robust": None},
             {"weights": "poisson", "robust": None, "background": False},
             {"weights": "relative", "robust": None, "background": False},
             {"weights": "relative"}, {"weights": "poisson"}),
    "simplex": ({"genes": "all", "robust": None},
                {"weights": "poisson", "robust": None}, {"weights": "relative", "robust": None}),
}
#: Settings of the peers' methods worth a row of their own beside their defaults:
#: method -> changes (keywords of deconvolve; skipped when the method is not registered, or
#: has no such option).
#: (nu-SVR with ``genes="all"`` is left out: 10-15 s per whole-transcriptome case, a third of
#: the study's time, for the same answer as its default on the curated signatures.)
METHOD_VARIANTS = {
    "epic": ({"method_options": {"fractions": "mrna"}},),
}
#: Methods the report names when they are not registered (the peers' methods of issue 11).
EXPECTED = ("nusvr", "dwls", "fardeep")
#: Summaries of a candidate's regrets over the cases; the smallest is chosen.
CRITERIA = {"worst": "worst regret", "worst3": "mean of the 3 worst regrets",
            "seeds": "worst regret, seeds averaged",
            "datasets": "worst dataset, its cases averaged"}
#: Issue 11's targets for the given sets (pooled r, RMSE), for the page.
TARGETS = {"shenorr_GSE19830": (0.99, None), "abbas_GSE11058": (0.92, None),
           "newman_GSE65133": (0.71, None)}

_DECONVOLVE = inspect.signature(fastdeconv.deconvolve).parameters


# ---------------------------------------------------------------------------
# candidates
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """One setting of deconvolve: the same keywords on every case."""

    label: str
    options: tuple  # sorted (keyword, value) pairs
    cells: bool = False  # needs the single-cell reference (labels=)
    subjects: bool = False  # needs subjects= too

    @property
    def kwargs(self):
        return dict(self.options)


def _resolved(options):
    """The fully resolved switches of a setting (for spotting duplicates and the default)."""
    method = options.get("method", "auto")
    if method == "auto":
        method = REGRESSION.default_for("signature")
    record = REGRESSION.get(method)
    robust = options.get("robust", _DECONVOLVE["robust"].default)
    if robust == "auto":
        robust = "huber" if "huber" in record.losses else None
    background = options.get("background", _DECONVOLVE["background"].default)
    if background is None:
        background = record.background
    return (method, options.get("genes", _DECONVOLVE["genes"].default),
            options.get("n_markers", _DECONVOLVE["n_markers"].default), robust, bool(background),
            repr(sorted(options.get("method_options", {}).items())), options.get("weights"))


def _label(method, change):
    def word(k, v):
        return f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}"

    words = [word(k, v) for k, v in change.items() if k != "method_options"]
    words += [f"({word(k, v)})" for k, v in change.get("method_options", {}).items()]
    return " ".join([method] + words)


def candidates(methods=None):
    """The candidate settings, read from the registry; and notes on the methods left out.

    Parameters
    ----------
    methods : sequence of str, optional
        Only these registered methods (default: all).

    Returns
    -------
    (list of Candidate, list of str)
    """
    out, notes, seen = [], [], set()
    for record in REGRESSION:
        if methods and record.name not in methods:
            continue
        if record.weights == "required":
            notes.append(f"{record.name}: needs per-gene weights (weights=), no general setting")
            continue
        needs_cells = record.reference == "counts" or "cells" in record.needs
        if "subjects" in record.needs and "subjects" not in _DECONVOLVE:
            notes.append(f"{record.name}: needs subjects=, which deconvolve does not take yet")
            continue
        if needs_cells:
            out.append(Candidate(record.name, (("method", record.name),), cells=True,
                                 subjects="subjects" in record.needs))
            continue
        changes = [{}]
        if "huber" in record.losses:  # the pipeline's least squares: one switch at a time
            changes += [{"genes": "all"}, {"n_markers": 50}, {"n_markers": 200},
                        {"robust": None}]
            if record.background:
                changes.append({"background": False})
            changes += list(COMBINATIONS.get(record.name, ()))
        changes += [c for c in METHOD_VARIANTS.get(record.name, ())
                    if set(c.get("method_options", {})) <= set(record.options)]
        for change in changes:
            options = {"method": record.name, **change}
            key = _resolved(options)
            if key in seen:
                continue
            seen.add(key)
            label = _label(record.name, change)
            if options == PLAIN_NNLS:
                label += " (plain NNLS)"
            out.append(Candidate(label, tuple(sorted(options.items(), key=lambda kv: kv[0]))))
    missing = [m for m in EXPECTED if m not in REGRESSION and not methods]
    notes += [f"{m}: not registered when this ran" for m in missing]
    default = _resolved({})
    spots = _resolved({"method": REGRESSION.default_for("spots"), **SPOT_OPTIONS})
    out = [Candidate(c.label + " [default]", c.options)
           if not c.cells and _resolved(c.kwargs) == default else
           Candidate(c.label + " [default, counts stored sparse]", c.options)
           if not c.cells and _resolved(c.kwargs) == spots else c for c in out]
    return out, notes


# ---------------------------------------------------------------------------
# scoring
# ---------------------------------------------------------------------------


def score(estimate, truth, renormalize):
    """Pooled r, mean per-type r and RMSE of an estimate (samples x types) against the truth."""
    est = estimate.reindex(columns=truth.columns)
    if not np.all(np.isfinite(est.to_numpy(dtype=np.float64))):
        raise ValueError("NaN or missing estimates for scored entries")
    ev = evaluate(est, truth, renormalize=renormalize)
    r = ev.overall["pearson_r"]
    if not np.isfinite(r):
        raise ValueError("pooled r is undefined (constant estimate)")
    varies = truth.std(axis=0) > 0
    per_type = ev.per_type["pearson_r"].reindex(truth.columns)[varies.to_numpy()]
    return dict(pooled_r=float(r), per_type_r=float(per_type.fillna(0.0).mean()),
                rmse=float(ev.overall["rmse"]))


def _reports_cells(result, kwargs):
    """Whether a result holds cell fractions: the pipeline's ``fractions``, or the method's own
    option of that name (EPIC's mRNA-per-cell correction)."""
    if (getattr(result, "options", None) or {}).get("fractions") == "cells":
        return True
    record = REGRESSION.get(_resolved(kwargs)[0])
    return {**record.options, **kwargs.get("method_options", {})}.get("fractions") == "cells"


def run_one(candidate, case):
    """Score one candidate on one case; None when it does not apply (no cells)."""
    kwargs = candidate.kwargs
    reference = case.signature
    if candidate.cells:
        if case.cells is None:
            return None
        reference = case.cells.counts
        kwargs["labels"] = case.cells.labels
        if candidate.subjects:
            kwargs["subjects"] = case.cells.subjects
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = fastdeconv.deconvolve(case.bulk, reference, progress=False, **kwargs)
        seconds = time.perf_counter() - t0
        cells = _reports_cells(res, candidate.kwargs)
        truth = case.cells.cell_truth if cells and case.cells is not None else case.truth
        row = score(res.proportions, truth, case.renormalize)
        row.update(seconds=seconds, status="ok", truth="cells" if cells else "rna")
    except Exception as err:  # a failure scores the worst possible, and is reported
        row = dict(WORST, seconds=time.perf_counter() - t0,
                   status=f"failed: {type(err).__name__}: {str(err)[:120]}", truth="")
    return row


def run(cands, cases, log=None):
    """Every candidate on every case: a long table (one row per candidate and case)."""
    rows = []
    for i, case in enumerate(cases):
        t0 = time.perf_counter()
        for cand in cands:
            row = run_one(cand, case)
            if row is not None:
                rows.append(dict(candidate=cand.label, case=case.name, dataset=case.dataset,
                                 cells=cand.cells, **row))
        if log:
            log(f"[{i + 1}/{len(cases)}] {case.name}: {time.perf_counter() - t0:.1f} s")
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------
# selection
# ---------------------------------------------------------------------------


def regrets(scores, metric):
    """Candidates x cases: shortfall from the best signature candidate on each case."""
    larger, _ = METRICS[metric]
    wide = scores.pivot(index="candidate", columns="case", values=metric)
    pool = scores.loc[~scores.cells, "candidate"].unique()
    best = wide.loc[pool].max() if larger else wide.loc[pool].min()
    return (best - wide) if larger else (wide - best)


def _first_min(series):
    """Label of the smallest value; ties go to the earlier candidate (the simpler setting)."""
    values = series.to_numpy()
    return series.index[int(np.flatnonzero(values == values.min())[0])]


def _setting(case):
    """A case's setting: its name without the seed (``..._s<seed>``)."""
    return re.sub(r"_s\d+$", "", case)


def summarise(reg, criterion, case_dataset=None):
    """One summary (:data:`CRITERIA`) of each candidate's regrets (candidates x cases).

    ``case_dataset`` (case -> dataset) is needed by ``"datasets"``.
    """
    if criterion == "worst":
        return reg.max(axis=1)
    if criterion == "worst3":
        return reg.apply(lambda row: row.nlargest(3).mean(), axis=1)
    if criterion == "seeds":
        return reg.T.groupby(_setting).mean().T.max(axis=1)
    if criterion == "datasets":
        return reg.T.groupby(case_dataset).mean().T.max(axis=1)
    raise ValueError(f"criterion must be one of {', '.join(CRITERIA)}; got {criterion!r}")


def lodo(scores, metric, order, datasets, reference_labels, criterion="worst"):
    """Leave-one-dataset-out choice by the smallest ``criterion`` of the regrets in ``metric``.

    Returns the fold table and the final choice over all datasets.
    """
    larger, _ = METRICS[metric]
    reg = regrets(scores, metric).loc[order]
    case_dataset = scores.drop_duplicates("case").set_index("case")["dataset"]
    means = scores.groupby(["candidate", "dataset"])[metric].mean().unstack()
    rows = []
    for held in datasets:
        train = [c for c in reg.columns if case_dataset[c] != held]
        test = [c for c in reg.columns if case_dataset[c] == held]
        summary = summarise(reg[train], criterion, case_dataset)
        chosen = _first_min(summary)
        on_held = means.loc[order, held]
        best = on_held.idxmax() if larger else on_held.idxmin()
        row = dict(held_out=held, chosen=chosen, train_worst=summary[chosen],
                   chosen_score=on_held[chosen], best=best, best_score=on_held[best],
                   held_worst=reg.loc[chosen, test].max())
        for name, label in reference_labels.items():
            row[name] = on_held.get(label, np.nan)
        rows.append(row)
    return pd.DataFrame(rows), _first_min(summarise(reg, criterion, case_dataset))


def ranking(scores, metric, order):
    """Every candidate's regret summaries in ``metric``, smallest worst regret first."""
    reg = regrets(scores, metric).loc[order]
    case_dataset = scores.drop_duplicates("case").set_index("case")["dataset"]
    per_dataset = reg.T.groupby(case_dataset).mean().T
    return pd.DataFrame({
        "worst_regret": reg.max(axis=1), "worst_case": reg.idxmax(axis=1),
        "worst3": summarise(reg, "worst3"), "seeds": summarise(reg, "seeds"),
        "datasets": per_dataset.max(axis=1),
        "worst_dataset": per_dataset.idxmax(axis=1).map(lambda d: SHORT.get(d, d)),
        "mean_regret": reg.mean(axis=1),
    }).sort_values(["worst_regret", "mean_regret"], kind="stable")


# ---------------------------------------------------------------------------
# reports
# ---------------------------------------------------------------------------


def markdown_table(frame):
    """A DataFrame as a Markdown table (the index as first column when named)."""
    show = frame.reset_index() if frame.index.name else frame

    def cell(v):
        if isinstance(v, (float, np.floating)):
            return "" if np.isnan(v) else f"{v:.3f}"
        return str(v)

    lines = ["| " + " | ".join(map(str, show.columns)) + " |",
             "| " + " | ".join("---" for _ in show.columns) + " |"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |"
              for row in show.itertuples(index=False)]
    return "\n".join(lines)


def dataset_table(scores, order, datasets):
    """Candidate x dataset: mean pooled r / per-type r / RMSE over the dataset's cases."""
    means = scores.groupby(["candidate", "dataset"])[list(METRICS)].mean()
    failed = scores.assign(f=scores.status != "ok").groupby(["candidate", "dataset"])["f"].sum()
    reg = regrets(scores, "pooled_r").max(axis=1)
    table = pd.DataFrame(index=pd.Index(order, name="candidate"))
    for d in datasets:
        col = []
        for cand in order:
            if (cand, d) not in means.index:
                col.append("")
                continue
            m = means.loc[(cand, d)]
            text = " / ".join(fmt.format(m[k]) for k, (_, fmt) in METRICS.items())
            n_fail = int(failed.loc[(cand, d)])
            col.append(text + (f" ({n_fail} failed)" if n_fail else ""))
        table[SHORT.get(d, d)] = col
    table["worst regret (r)"] = [f"{reg[c]:.3f}" for c in order]
    table["seconds"] = [f"{scores.loc[scores.candidate == c, 'seconds'].sum():.1f}" for c in order]
    return table


def lodo_table(folds, metric):
    _, fmt = METRICS[metric]
    out = pd.DataFrame({
        "held out": [SHORT.get(d, d) for d in folds.held_out],
        "chosen on the others": folds.chosen,
        "its summary there": folds.train_worst.map("{:.3f}".format),
        "chosen, held out": folds.chosen_score.map(fmt.format),
        "best there": [f"{fmt.format(s)} ({b})" for b, s in zip(folds.best, folds.best_score)],
        "plain NNLS": folds["plain NNLS"].map(fmt.format),
        "current default": folds["current default"].map(fmt.format),
        "chosen's worst regret, held out": folds.held_worst.map("{:.3f}".format),
    })
    return out


def criteria_folds_table(sel, metric):
    """Per held-out dataset: the setting each criterion chooses on the others, its score there."""
    _, fmt = METRICS[metric]
    first = sel[(metric, "worst")][0]
    out = pd.DataFrame({"held out": [SHORT.get(d, d) for d in first.held_out]})
    for criterion, title in CRITERIA.items():
        f = sel[(metric, criterion)][0]
        out[f"by {title}"] = [f"{c} ({fmt.format(v)})" for c, v in zip(f.chosen, f.chosen_score)]
    out["best there"] = [f"{fmt.format(v)} ({b})" for b, v in zip(first.best, first.best_score)]
    return out


def case_list(cases):
    """One row per case: name, dataset, size, types, whether it has cells, what it is."""
    rows = [dict(case=c.name, dataset=c.dataset,
                 genes_x_samples=(f"{c.bulk.shape[1]} x {c.bulk.shape[0]}" if hasattr(c.bulk, "obs")
                                  else f"{c.bulk.shape[0]} x {c.bulk.shape[1]}"),
                 types=c.signature.shape[1], cells="yes" if c.cells is not None else "",
                 what=c.note) for c in cases]
    return pd.DataFrame(rows)


def targets_table(scores, labels):
    """The given sets with a target in issue 11: pooled r / per-type r / RMSE of some settings."""
    rows = []
    for name, (r_min, _) in TARGETS.items():
        got = scores[scores.case == name].set_index("candidate")
        if got.empty:
            continue
        row = {"dataset": name, "target (pooled r)": f">= {r_min}"}
        for title, label in labels.items():
            m = got.loc[label]
            row[title] = " / ".join(fmt.format(m[k]) for k, (_, fmt) in METRICS.items())
        best = got.pooled_r.idxmax()
        row["best setting here"] = f"{got.pooled_r.max():.3f} ({best})"
        rows.append(row)
    return pd.DataFrame(rows)


def settings_table(scores, labels, datasets):
    """Chosen candidates x case settings (seeds averaged) of ``datasets``: r / per-type r / RMSE."""
    sub = scores[scores.dataset.isin(datasets) & scores.candidate.isin(labels)].copy()
    sub["setting"] = sub.case.map(_setting)
    means = sub.groupby(["candidate", "setting"])[list(METRICS)].mean()
    settings = list(dict.fromkeys(sub.setting))
    table = pd.DataFrame(index=pd.Index(labels, name="candidate"))
    for st in settings:
        table[st] = [" / ".join(fmt.format(means.loc[(c, st), k])
                                for k, (_, fmt) in METRICS.items())
                     if (c, st) in means.index else "" for c in labels]
    return table


def _gram_form(label):
    """Whether a candidate's setting is fitted in Gram form (one projection of the bulk)."""
    base = label.split(" [default")[0]
    for cand in candidates()[0]:
        if cand.label.split(" [default")[0] == base and not cand.cells:
            method, _, _, robust, _, _, _ = _resolved(cand.kwargs)
            return REGRESSION.get(method).gram is not None and robust is None
    return False


def sparse_section(scores):
    """The section on counts stored sparse: their default, chosen among the Gram-form
    settings by the same four summaries, with every setting's figures beside it."""
    scores = scores[~scores.cells]
    metric = "pooled_r"
    reg = regrets(scores, metric)
    setting = {c: _setting(c) for c in reg.columns}
    seeds = reg.T.groupby(setting).mean().T
    table = pd.DataFrame({
        "worst regret": reg.max(axis=1),
        "mean of 3 worst": reg.apply(lambda r: r.nlargest(3).mean(), axis=1),
        "worst, seeds averaged": seeds.max(axis=1),
        "mean regret": reg.mean(axis=1),
        "mean pooled r": scores.pivot(index="candidate", columns="case", values=metric
                                      ).reindex(reg.index).mean(axis=1),
        "seconds per case": scores.groupby("candidate").seconds.mean().reindex(reg.index),
    })
    table["Gram form"] = ["yes" if _gram_form(c) else "" for c in table.index]
    table = table.sort_values("worst regret", kind="stable")
    gram = table[table["Gram form"] == "yes"]
    summaries = ["worst regret", "mean of 3 worst", "worst, seeds averaged", "mean regret"]
    wins = pd.Series(0, index=gram.index)
    for col in summaries:
        wins[gram[col].idxmin()] += 1
    chosen = wins.idxmax()
    failures = scores[scores.status != "ok"].groupby("candidate").size()
    lines = [
        "## Counts stored sparse: spatial spots",
        "",
        f"{scores.case.nunique()} cases of the `spatial` family (`study_cases.spatial_cases`: "
        "spots of 2, 5 and 20 held-out hao cells, raw counts as a sparse AnnData, with "
        "whole-transcriptome and curated signatures, with and without a per-gene platform "
        "factor; 11-30% of the entries non-zero). A bulk stored sparse has its own default "
        "(`fastdeconv.methods.SPOT_OPTIONS`), chosen among the settings fitted in Gram form "
        "(one projection of the counts, the only ones that reach 10^5 spots in seconds) by "
        "the number of the four summaries on which each is smallest:",
        f"**{chosen}** (smallest on {wins[chosen]} of {len(summaries)}).",
        "",
        markdown_table(table.reset_index().rename(columns={"candidate": "setting"})),
    ]
    if len(failures):
        lines += ["", "Failures (NaN proportions for some spots, scored -1): "
                  + "; ".join(f"{c}: {n} of {scores.case.nunique()} cases"
                              for c, n in failures.items()) + "."]
    return "\n".join(lines)


def report(scores, case_info, notes, runtime, quick):
    """The whole report as Markdown (printed, and the page with --write).

    Parameters
    ----------
    scores : pandas.DataFrame
        One row per candidate and case (:func:`run`).
    case_info : pandas.DataFrame
        :func:`case_list` of the cases.
    notes : list of str
        Methods left out and why.
    runtime : str
        How long the study took, for the page.
    quick : bool
        Whether the cases were the quick ones.
    """
    sparse = scores.dataset.isin(SPARSE_DATASETS)
    if sparse.any():  # counts stored sparse have their own default: a section of their own
        text, chosen = report(scores[~sparse], case_info[~case_info.dataset.isin(
            SPARSE_DATASETS)], notes, runtime, quick)
        return text + "\n\n" + sparse_section(scores[sparse]), chosen
    cells_of = scores.drop_duplicates("candidate").set_index("candidate")["cells"]
    order = [c for c, cells in cells_of.items() if not cells]
    cell_cands = [c for c, cells in cells_of.items() if cells]
    datasets = list(dict.fromkeys(case_info.dataset))
    default = next((c for c in order if c.endswith("[default]")), None)
    plain = next((c for c in order if c.endswith("(plain NNLS)")), None)
    refs = {"plain NNLS": plain, "current default": default}
    sig_scores = scores[~scores.cells]
    titles = {"pooled_r": "pooled r", "per_type_r": "per-type r", "rmse": "RMSE"}
    sel = {(m, c): lodo(sig_scores, m, order, datasets, refs, c)
           for m in METRICS for c in CRITERIA}
    rank = {m: ranking(sig_scores, m, order) for m in METRICS}
    case_dataset = sig_scores.drop_duplicates("case").set_index("case")["dataset"]
    folds, final = sel[("pooled_r", "worst")]

    rk = rank["pooled_r"]
    top = list(dict.fromkeys(
        list(rk.index[:10]) + list(rk.worst3.sort_values(kind="stable").index[:10])
        + list(rk.seeds.sort_values(kind="stable").index[:10])
        + list(rk.datasets.sort_values(kind="stable").index[:10])))
    ranked = rk.loc[top, ["worst_regret", "worst_case", "worst3", "seeds", "datasets",
                          "worst_dataset", "mean_regret"]].copy()
    ranked.columns = ["worst regret (r)", "on case", "mean of 3 worst (r)",
                      "worst, seeds averaged (r)", "worst dataset (r)", "which",
                      "mean regret (r)"]
    for m in ("per_type_r", "rmse"):
        ranked[f"worst regret ({titles[m]})"] = rank[m].loc[top, "worst_regret"]
        ranked[f"mean of 3 worst ({titles[m]})"] = rank[m].loc[top, "worst3"]

    n_folds = len(folds)
    recommend = pd.DataFrame(index=pd.Index([titles[m] for m in METRICS], name="regret in"))
    for c, title in CRITERIA.items():
        col = []
        for m in METRICS:
            f, chosen = sel[(m, c)]
            value = summarise(regrets(sig_scores, m).loc[order], c, case_dataset)[chosen]
            col.append(f"**{chosen}** ({value:.3f}; {int((f.chosen == chosen).sum())} of "
                       f"{n_folds} folds)")
        recommend[title] = col

    parts = [
        "# Choosing the defaults: a cross-validated method-selection study",
        "",
        "This page is generated by `python benchmarks/study_reference.py --write docs/accuracy.md`"
        f" ({runtime} on the shared two-core machine"
        + ("; `--quick`: one seed per setting" if quick else "")
        + "); anyone can re-run it and get the same figures (timings aside). "
        "How the cases are built is in `benchmarks/study_cases.py`, how candidates are "
        "scored and chosen in the script's docstring.",
        "",
        f"{len(order)} settings of `fastdeconv.deconvolve` (the pipeline's least-squares "
        "methods crossed with its main switches, the peers' methods at their defaults; the "
        "same keywords on every case) on "
        f"{len(case_info)} cases in {len(datasets)} datasets. Scores: pooled Pearson r / mean "
        "per-type r / RMSE (`fastdeconv.metrics.evaluate`); a failure scores -1 / -1 / 1. "
        "The regret of a setting on a case is its shortfall from the best setting there. "
        "Four worst-case summaries of a setting's regrets: the largest (worst regret), the "
        "mean of the three largest, the largest after averaging each case setting over "
        "its seeds, and the largest after averaging over each dataset's cases. Leave-one-dataset-out: each dataset in turn is held out, the setting with "
        "the smallest summary on the others is chosen and scored on it.",
    ]
    if notes:
        parts += ["", "Methods left out: " + "; ".join(notes) + "."]
    parts += ["", "## Recommendation", "",
              "The setting with the smallest summary over all cases, by score (rows) and "
              "summary (columns); in brackets the summary and how many leave-one-dataset-out "
              "folds chose the same setting:", "",
              markdown_table(recommend), "",
              "The settings in the top ten of any summary in pooled r, by worst regret (the "
              "case where it is reached; the other summaries; the worst cases in the other "
              "two scores):", "",
              markdown_table(ranked.rename_axis("candidate")),
              "", "## The given sets against issue 11's targets", "",
              "pooled r / per-type r / RMSE:", "",
              markdown_table(targets_table(sig_scores, {
                  "recommended": final, "current default": default, "plain NNLS": plain}))]

    new = [d for d in NEW_DATASETS if d in datasets]
    if new:
        extra = [c for c in order if c.startswith("nusvr")]
        shown = list(dict.fromkeys(top[:10] + [plain, default] + extra))
        parts += ["", "## The families like the held-back data", "",
                  "Curated signatures (`curated`), heteroscedastic RNA-seq counts (`hetero`) and "
                  "designed mixtures (`designed`): pooled r / per-type r / RMSE per case setting "
                  "(mean over its seeds), for the ten smallest worst regrets in pooled r, plain "
                  "NNLS, the current default and nu-SVR:", "",
                  markdown_table(settings_table(sig_scores, shown, new))]

    parts += ["", "## Leave-one-dataset-out, by worst regret in pooled r", "",
              "Per held-out dataset: the setting chosen on the other datasets, its worst regret "
              "there, its mean score on the held-out dataset beside the best setting there, "
              "plain NNLS and the current default, and its worst regret on the held-out "
              "cases.", "", markdown_table(lodo_table(folds, "pooled_r")),
              "", "The setting each summary of the regrets in pooled r chooses on the other "
              "datasets (its mean pooled r on the held-out one):", "",
              markdown_table(criteria_folds_table(sel, "pooled_r"))]
    for m in ("per_type_r", "rmse"):
        parts += ["", f"## Leave-one-dataset-out, by worst regret in {titles[m]}", "",
                  markdown_table(lodo_table(sel[(m, "worst")][0], m))]

    parts += ["", "## Every setting on every dataset", "",
              "Mean over the dataset's cases of pooled r / per-type r / RMSE; last columns: "
              "the worst regret in pooled r over all cases, and the total fitting time.", "",
              markdown_table(dataset_table(scores, order, datasets))]

    hao = scores[scores.dataset == "hao_pseudobulk"]
    if cell_cands and len(hao):
        sub = hao[hao.candidate.isin(cell_cands + [final, default])]
        per_case = sub.pivot(index="candidate", columns="case", values="pooled_r")
        truths = hao[hao.candidate.isin(cell_cands)].groupby("candidate")["truth"].first()
        parts += ["", "## Methods that need single cells (hao pseudo-bulks only)", "",
                  "Given the reference cells, their labels (and their lanes as subjects where "
                  "a method needs subjects); scored against the cell fractions when they "
                  "report cell fractions ("
                  + ", ".join(f"{c}: {t}" for c, t in truths.items())
                  + "), else the RNA fractions. Pooled r per case, beside the recommended "
                  "setting and the current default on the signature:", "",
                  markdown_table(per_case.rename_axis("candidate"))]

    failures = scores[scores.status != "ok"]
    if len(failures):
        parts += ["", "## Failures", "",
                  markdown_table(failures[["candidate", "case", "status"]].drop_duplicates(
                      ["candidate", "status"]))]
    parts += ["", "## The cases", "",
              markdown_table(case_info.assign(dataset=case_info.dataset.map(
                  lambda d: SHORT.get(d, d)))), ""]
    return "\n".join(parts), (folds, final, int((folds.chosen == final).sum()))


def _cases_path(scores_path):
    path = Path(scores_path)
    return path.with_name(path.stem + ".cases.tsv")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="one seed per setting and fewer samples")
    parser.add_argument("--methods", nargs="*", help="only these registered methods")
    parser.add_argument("--families", nargs="+", choices=study_cases.GROUPS,
                        metavar="GROUP", help="only these groups of cases: "
                        + ", ".join(study_cases.GROUPS))
    parser.add_argument("--only", nargs="+", metavar="TEXT",
                        help="only the settings whose label contains one of these texts (to add "
                        "settings to an earlier run's scores: --scores, then --from-scores both)")
    parser.add_argument("--write", metavar="PATH", help="also write the Markdown page there")
    parser.add_argument("--scores", metavar="PATH",
                        help="write every score (one row per setting and case, tab-separated) "
                        "and the cases to PATH's stem + '.cases.tsv'")
    parser.add_argument("--from-scores", nargs="+", metavar="PATH",
                        help="report the scores written by earlier runs (--scores) instead of "
                        "running")
    parser.add_argument("--import", dest="modules", nargs="+", default=(), metavar="MODULE",
                        help="import these method modules first (methods written but not yet "
                        "in the registry's module list, e.g. fastdeconv.methods.svr)")
    args = parser.parse_args(argv)
    for module in args.modules:
        importlib.import_module(module)
    t0 = time.perf_counter()
    if args.from_scores:
        scores = pd.concat([pd.read_csv(p, sep="\t") for p in args.from_scores],
                           ignore_index=True)
        scores = scores.drop_duplicates(["candidate", "case"], keep="last")
        scores["cells"] = scores.cells.astype(str) == "True"
        case_info = pd.concat([pd.read_csv(_cases_path(p), sep="\t", dtype=str,
                                           keep_default_na=False) for p in args.from_scores],
                              ignore_index=True).drop_duplicates("case", keep="last")
        scores = scores[scores.case.isin(case_info.case)]
        notes = candidates(args.methods)[1]
        runtime = (f"{scores.seconds.sum() / 60:.0f} min of fitting, read from "
                   f"{len(args.from_scores)} file(s) of scores")
    else:
        if not study_cases.DATA.is_dir():
            print(f"shared datasets not found at {study_cases.DATA} (set FASTDECONV_DATA)",
                  file=sys.stderr)
            return 1
        cands, notes = candidates(args.methods)
        if args.only:
            cands = [c for c in cands if any(t in c.label for t in args.only)]
        cases = study_cases.all_cases(quick=args.quick,
                                      groups=args.families or study_cases.GROUPS)
        print(f"{len(cands)} settings, {len(cases)} cases "
              f"(cases built in {time.perf_counter() - t0:.0f} s)", file=sys.stderr)
        scores = run(cands, cases, log=lambda m: print(m, file=sys.stderr, flush=True))
        case_info = case_list(cases)
        runtime = f"{(time.perf_counter() - t0) / 60:.0f} min"
        if args.scores:
            scores.to_csv(args.scores, sep="\t", index=False, float_format="%.6g")
            case_info.to_csv(_cases_path(args.scores), sep="\t", index=False)
    text, (folds, final, stable) = report(scores, case_info, notes, runtime, args.quick)
    print(text)
    print(f"\nrecommendation: {final} (chosen in {stable} of {len(folds)} folds); "
          f"run time {time.perf_counter() - t0:.0f} s")
    if args.write:
        Path(args.write).write_text(text, encoding="utf-8")
        print(f"wrote {args.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
