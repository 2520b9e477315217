"""Accuracy of estimated proportions against known truth.

:func:`evaluate` compares an estimate with the truth (both samples x types),
overall (all entries pooled) and per cell type, with Pearson's r, the root mean
squared error, Lin's concordance correlation coefficient and the bias. Types are
matched by name, or, for reference-free results whose components have no
names, by the best one-to-one assignment of components to types.

The single statistics are available as functions too: :func:`pearson_r`,
:func:`rmse`, :func:`ccc` and :func:`bias`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from fastdeconv._deprecated import moved_names
from fastdeconv.errors import Fix, InputProblem, literal

__all__ = ["Evaluation", "evaluate", "group_types", "pearson_r", "rmse", "ccc", "bias"]

_METRICS = ("pearson_r", "rmse", "ccc", "bias")
#: What ``samples=`` of :func:`evaluate` accepts.
SAMPLES = ("all", "common")


def _pair(x, y):
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same number of values, got {x.size} and {y.size}")
    if x.size == 0:
        raise ValueError("x and y are empty")
    return x, y


def pearson_r(x, y):
    """Pearson correlation coefficient of two vectors.

    Parameters
    ----------
    x, y : array-like
        Values of the same length (flattened).

    Returns
    -------
    float
        r in [-1, 1]; NaN when either vector is constant (r is undefined).

    Examples
    --------
    >>> from fastdeconv.metrics import pearson_r
    >>> round(pearson_r([0.1, 0.2, 0.7], [0.12, 0.18, 0.70]), 4)
    0.9981
    """
    x, y = _pair(x, y)
    dx = x - x.mean()
    dy = y - y.mean()
    denom = np.sqrt(np.dot(dx, dx) * np.dot(dy, dy))
    if denom == 0.0 or not np.isfinite(denom):
        return float("nan")
    return float(np.clip(np.dot(dx, dy) / denom, -1.0, 1.0))


def rmse(estimate, truth):
    """Root mean squared error ``sqrt(mean((estimate - truth)**2))``.

    Parameters
    ----------
    estimate, truth : array-like
        Values of the same length (flattened).

    Returns
    -------
    float

    Examples
    --------
    >>> from fastdeconv.metrics import rmse
    >>> round(rmse([0.2, 0.8], [0.1, 0.9]), 10)
    0.1
    """
    x, y = _pair(estimate, truth)
    return float(np.sqrt(np.mean((x - y) ** 2)))


def ccc(estimate, truth):
    """Lin's concordance correlation coefficient.

    ``2 cov(x, y) / (var(x) + var(y) + (mean(x) - mean(y))**2)`` with population
    (1/n) moments. Unlike Pearson's r it is 1 only when the points lie on the
    identity line, so it penalises scale and offset errors too.

    Parameters
    ----------
    estimate, truth : array-like
        Values of the same length (flattened).

    Returns
    -------
    float
        In [-1, 1]; 1 for identical vectors (constant ones included), 0 when
        both are constant but differ.

    References
    ----------
    Lin, L. I. (1989). A concordance correlation coefficient to evaluate
    reproducibility. Biometrics, 45(1), 255-268. doi:10.2307/2532051

    Examples
    --------
    >>> from fastdeconv.metrics import ccc
    >>> ccc([0.1, 0.2, 0.7], [0.1, 0.2, 0.7])
    1.0
    >>> round(ccc([0.2, 0.4, 1.4], [0.1, 0.2, 0.7]), 3)   # perfectly correlated, wrong scale
    0.605
    """
    x, y = _pair(estimate, truth)
    mx, my = x.mean(), y.mean()
    dx, dy = x - mx, y - my
    cov = np.mean(dx * dy)
    denom = np.mean(dx * dx) + np.mean(dy * dy) + (mx - my) ** 2
    if denom == 0.0:
        return 1.0  # identical constant vectors
    return float(2.0 * cov / denom)


def bias(estimate, truth):
    """Mean signed error ``mean(estimate - truth)``.

    Parameters
    ----------
    estimate, truth : array-like
        Values of the same length (flattened).

    Returns
    -------
    float
        Positive when the estimate is too high on average.

    Examples
    --------
    >>> from fastdeconv.metrics import bias
    >>> round(bias([0.3, 0.7], [0.2, 0.6]), 10)
    0.1
    """
    x, y = _pair(estimate, truth)
    return float(np.mean(x - y))


def _scores(est, tru):
    return {
        "pearson_r": pearson_r(est, tru),
        "rmse": rmse(est, tru),
        "ccc": ccc(est, tru),
        "bias": bias(est, tru),
        "n": int(np.size(est)),
    }


@dataclass(frozen=True)
class Evaluation:
    """Accuracy of an estimate against the truth (see :func:`evaluate`).

    Attributes
    ----------
    overall : dict
        ``pearson_r``, ``rmse``, ``ccc``, ``bias`` over all (sample, type)
        entries pooled, and ``n`` the number of entries.
    per_type : pandas.DataFrame
        One row per evaluated (true) cell type: the same statistics over the
        samples, plus ``mean_estimate`` and ``mean_truth``.
    per_sample : pandas.DataFrame
        One row per sample: ``pearson_r`` and ``rmse`` across the types.
    matching : dict
        Estimated column -> true type, for the evaluated pairs.
    estimate : pandas.DataFrame
        The aligned estimate (samples x types, columns renamed to the true types).
    truth : pandas.DataFrame
        The aligned truth (same shape and labels as ``estimate``).
    unmatched_estimate : list
        Estimated columns that were not evaluated (no like-named true type, or
        surplus components under ``match="best"``).
    unmatched_truth : list
        True types that were not evaluated.
    notes : list of str
        Remarks worth reading (unmatched names, dropped samples, undefined r).

    Examples
    --------
    >>> import pandas as pd
    >>> from fastdeconv.metrics import evaluate
    >>> truth = pd.DataFrame({"T": [0.2, 0.5, 0.7], "B": [0.8, 0.5, 0.3]})
    >>> ev = evaluate(truth * 0.9 + 0.05, truth)
    >>> round(ev.overall["pearson_r"], 6)
    1.0
    """

    overall: dict
    per_type: pd.DataFrame
    per_sample: pd.DataFrame
    matching: dict
    estimate: pd.DataFrame
    truth: pd.DataFrame
    unmatched_estimate: list = field(default_factory=list)
    unmatched_truth: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    def to_frame(self):
        """Return the per-type table with an ``overall`` row appended.

        Returns
        -------
        pandas.DataFrame

        Examples
        --------
        >>> import pandas as pd
        >>> from fastdeconv.metrics import evaluate
        >>> t = pd.DataFrame({"A": [0.2, 0.5, 0.9], "B": [0.8, 0.5, 0.1]})
        >>> evaluate(t, t).to_frame().index.tolist()
        ['A', 'B', 'overall']
        """
        overall = pd.DataFrame([self.overall], index=["overall"])
        frame = pd.concat(
            [self.per_type, overall[self.per_type.columns.intersection(overall.columns)]]
        )
        frame.index.name = "cell_type"
        return frame

    def summary(self):
        """Return a readable multi-line report (the same as ``str(evaluation)``).

        Returns
        -------
        str

        Examples
        --------
        >>> import pandas as pd
        >>> from fastdeconv.metrics import evaluate
        >>> t = pd.DataFrame({"A": [0.2, 0.5, 0.9], "B": [0.8, 0.5, 0.1]})
        >>> print(evaluate(t, t).summary().splitlines()[0])
        Evaluation of 3 samples x 2 cell types
        """
        n_samples, n_types = self.estimate.shape
        lines = [f"Evaluation of {n_samples} samples x {n_types} cell types"]
        table = self.to_frame()[["pearson_r", "rmse", "ccc", "bias", "n"]]
        lines.append(
            table.to_string(
                float_format=lambda v: f"{round(v, 4) + 0.0:.4f}",
                formatters={"n": "{:d}".format},
                na_rep="nan",
            )
        )
        lines.append("pearson_r: Pearson correlation; rmse: root mean squared error; ccc: Lin's")
        lines.append(
            "concordance correlation; bias: mean(estimate - truth); overall: all entries pooled"
        )
        renamed = {k: v for k, v in self.matching.items() if k != v}
        if renamed:
            lines.append("matching: " + ", ".join(f"{k} -> {v}" for k, v in renamed.items()))
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)

    def __str__(self):
        return self.summary()

    def plot(self, path=None, *, title=None):
        """Scatter plots of estimated vs true proportions per type.

        Parameters
        ----------
        path : str or path-like, optional
            Save the figure there (format from the extension).
        title : str, optional
            The figure's title (what was evaluated: dataset, method).

        Returns
        -------
        matplotlib.figure.Figure

        Examples
        --------
        >>> import pandas as pd
        >>> from fastdeconv.metrics import evaluate
        >>> t = pd.DataFrame({"A": [0.2, 0.5, 0.9], "B": [0.8, 0.5, 0.1]})
        >>> fig = evaluate(t, t).plot()
        >>> len(fig.axes)  # one panel per type and the pooled panel
        3
        """
        from fastdeconv.plotting import plot_estimate_vs_truth

        return plot_estimate_vs_truth(self, path=path, title=title)


def _as_frame(obj, name, transpose=False):
    if isinstance(obj, pd.DataFrame):
        frame = obj
    elif hasattr(obj, "proportions") and isinstance(obj.proportions, pd.DataFrame):
        frame = obj.proportions  # a DeconvolutionResult / LinseedResult
    else:
        try:
            values = np.asarray(obj, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(
                f"{name} must be a samples x types DataFrame or numeric 2-D array, "
                f"got {type(obj).__name__}"
            ) from None
        if values.ndim != 2:
            raise ValueError(f"{name} must be 2-D (samples x types), got shape {values.shape}")
        frame = pd.DataFrame(values)
    if transpose:
        frame = frame.T
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {frame.shape}); it must be samples x types")
    if frame.columns.duplicated().any():
        dup = list(frame.columns[frame.columns.duplicated()].unique())
        raise ValueError(f"{name} has duplicated cell type columns {dup}")
    if frame.index.duplicated().any():
        dup = list(frame.index[frame.index.duplicated()].unique()[:3])
        raise ValueError(f"{name} has duplicated sample ids {dup}")
    try:
        values = frame.to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        bad = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
        raise ValueError(f"{name} has non-numeric columns {bad[:3]}") from None
    if not np.all(np.isfinite(values)):
        r, c = np.argwhere(~np.isfinite(values))[0]
        raise ValueError(
            f"{name} contains NaN or infinite values (first at sample {frame.index[r]!r}, "
            f"type {frame.columns[c]!r}); remove those samples first"
        )
    return pd.DataFrame(values, index=frame.index, columns=frame.columns)


def _ids(index, limit=3):
    """A few ids of ``index`` for a message (braces escaped for InputProblem templates)."""
    head = [str(i) for i in list(index)[:limit]]
    return literal(", ".join(repr(h) for h in head) + (", ..." if len(index) > limit else ""))


def _sums_by_row(frame):
    """True when a table's rows (not its columns) sum to one constant, as a samples x types
    table of proportions does; False for the reverse; None when its sums cannot tell."""
    if min(frame.shape) < 3:
        return None
    values = frame.to_numpy(dtype=np.float64)

    def spread(sums):
        mean = np.mean(sums)
        return np.inf if mean <= 0 else float(np.std(sums) / mean)

    rows, cols = spread(values.sum(axis=1)), spread(values.sum(axis=0))
    if rows < 0.05 and cols > 0.2:
        return True
    if cols < 0.05 and rows > 0.2:
        return False
    return None


def _check_orientation(est, tru):
    """Refuse an estimate or truth whose samples and cell types look swapped.

    Both are samples x types here.  Names decide first: no common sample id,
    but the estimate's sample ids among the truth's cell types (or the reverse),
    means one table is transposed; which one the row sums tell when they can
    (proportions of a sample sum to one constant).  Tables whose sums both say
    "transposed" are refused too, even when their names pair up.
    """
    n_samples = len(est.index.intersection(tru.index))
    samples_as_types = est.index.intersection(tru.columns, sort=False)
    types_as_samples = est.columns.intersection(tru.index, sort=False)
    est_ok, tru_ok = _sums_by_row(est), _sums_by_row(tru)
    if n_samples == 0 and (len(samples_as_types) or len(types_as_samples)):
        if len(samples_as_types):
            evidence = (f"{_ids(samples_as_types)} are samples of the estimate but cell types "
                        "of the truth")
        else:
            evidence = (f"{_ids(types_as_samples)} are cell types of the estimate but samples "
                        "of the truth")
        if est_ok is not False and tru_ok is False:
            raise InputProblem(
                f"the truth looks transposed: {evidence}; pass {{0}}", Fix("transpose_truth")
            )
        if tru_ok is not False and est_ok is False:
            raise InputProblem(
                f"the estimate looks transposed: {evidence}; pass {{0}}", Fix("transpose_estimate")
            )
        raise InputProblem(
            f"the estimate or the truth is transposed: {evidence}; pass {{0}} if it is the "
            "truth, {1} if it is the estimate",
            Fix("transpose_truth"), Fix("transpose_estimate"),
        )
    if est_ok is False and tru_ok is False:
        raise InputProblem(
            "the estimate and the truth both look transposed: in each, the proportions of a "
            "cell type across samples sum to one, not those of a sample across cell types "
            f"(the estimate's samples are {_ids(est.index)}); pass {{0}} and {{1}}",
            Fix("transpose_estimate"), Fix("transpose_truth"),
        )


def _align_samples(est, tru, samples, notes):
    if est.index.equals(tru.index):
        return est, tru
    common = est.index.intersection(tru.index, sort=False)
    if len(common) == 0:
        raise ValueError(
            f"estimate and truth share no sample ids: the estimate has {list(est.index[:3])}"
            f"..., the truth {list(tru.index[:3])}...; give both tables the same sample ids"
        )
    only_e = est.index.difference(common, sort=False)
    only_t = tru.index.difference(common, sort=False)
    if len(only_e) or len(only_t):
        if samples == "all":
            parts = [f"estimate-only e.g. {_ids(only_e)}" if len(only_e) else "",
                     f"truth-only e.g. {_ids(only_t)}" if len(only_t) else ""]
            parts = "; ".join(p for p in parts if p)
            raise InputProblem(
                f"estimate and truth share only {len(common)} samples (the estimate has "
                f"{len(est)}, the truth {len(tru)}; {parts}); pass {{0}} "
                f"to evaluate the {len(common)} common samples only, or give both tables the "
                "same samples",
                Fix("samples", "common"),
            )
        notes.append(
            f"{len(common)} common samples evaluated; {len(only_e)} estimate-only and "
            f"{len(only_t)} truth-only samples ignored"
        )
    return est.loc[common], tru.loc[common]


def _match_names(est, tru, notes):
    common = [c for c in tru.columns if c in set(est.columns)]
    if not common:
        raise InputProblem(
            "estimate and truth share no cell type names: the estimate has "
            f"{literal(list(est.columns[:6]))}, the truth {literal(list(tru.columns[:6]))}; give them "
            "the same names, or pass {0} to pair unnamed (reference-free) components with the "
            "types they correlate best with",
            Fix("match", "best"),
        )
    unmatched_e = [c for c in est.columns if c not in set(common)]
    unmatched_t = [c for c in tru.columns if c not in set(common)]
    if unmatched_e:
        notes.append(f"estimated types without a true counterpart, not evaluated: {unmatched_e}")
    if unmatched_t:
        notes.append(f"true types without an estimate, not evaluated: {unmatched_t}")
    return {c: c for c in common}, unmatched_e, unmatched_t


def _correlation_matrix(a, b):
    """Pearson correlations between the columns of a (n x p) and b (n x q); NaN -> 0."""
    da = a - a.mean(axis=0)
    db = b - b.mean(axis=0)
    na = np.sqrt((da * da).sum(axis=0))
    nb = np.sqrt((db * db).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = (da.T @ db) / np.outer(na, nb)
    return np.nan_to_num(corr, nan=0.0, posinf=0.0, neginf=0.0)


def _match_best(est, tru, notes):
    from scipy.optimize import linear_sum_assignment

    if len(est) < 2:
        raise ValueError(
            "pairing components with types by correlation (match 'best') needs at least 2 "
            "samples"
        )
    corr = _correlation_matrix(est.to_numpy(), tru.to_numpy())
    rows, cols = linear_sum_assignment(corr, maximize=True)
    matching = {est.columns[r]: tru.columns[c] for r, c in zip(rows, cols, strict=True)}
    # keep the truth's column order
    order = {t: i for i, t in enumerate(tru.columns)}
    matching = dict(sorted(matching.items(), key=lambda kv: order[kv[1]]))
    unmatched_e = [c for c in est.columns if c not in matching]
    unmatched_t = [c for c in tru.columns if c not in set(matching.values())]
    if unmatched_e:
        notes.append(f"more components than true types; not evaluated: {unmatched_e}")
    if unmatched_t:
        notes.append(f"fewer components than true types; not evaluated: {unmatched_t}")
    return matching, unmatched_e, unmatched_t


def evaluate(
    estimate, truth, *, match="names", renormalize=False, samples="all",
    transpose_estimate=False, transpose_truth=False,
):
    """Compare estimated proportions with the truth.

    Parameters
    ----------
    estimate : DataFrame or result
        Samples x types estimated proportions, or any result object with a
        ``.proportions`` DataFrame (:class:`fastdeconv.DeconvolutionResult`,
        :class:`fastdeconv.LinseedResult`).
    truth : DataFrame
        Samples x types true proportions. (Files of the shared datasets store the
        truth as types x samples: pass ``truth.T``.)
    match : {"names", "best"}, default "names"
        ``"names"``: evaluate the types present in both (by column name); the
        others are listed in ``unmatched_*`` and ``notes``; no common name is an
        error. ``"best"``: for reference-free components, pair estimated
        columns with true types one-to-one to maximise the summed Pearson
        correlation across samples (Hungarian algorithm,
        :func:`scipy.optimize.linear_sum_assignment`); the estimate is
        relabelled with the matched type names.
    renormalize : bool, default False
        Rescale each sample's evaluated estimates to sum to 1 (useful when the
        estimate has more types than the truth, e.g. 22 LM22 columns scored
        against 9 measured subsets).
    samples : {"all", "common"}, default "all"
        ``"all"``: both tables must hold the same samples (in any order); a
        partial overlap is an error naming how many match.  ``"common"``:
        evaluate the samples present in both (the others are listed in
        ``notes``).
    transpose_estimate, transpose_truth : bool, default False
        The table is types x samples: transpose it first.  A table whose
        samples and types look swapped is refused with a message naming
        these options; nothing is flipped silently.

    Returns
    -------
    Evaluation
        ``.overall`` (pooled over all entries), ``.per_type``, ``.per_sample``,
        ``.matching``, the aligned ``.estimate`` and ``.truth``, and ``.notes``.

    Raises
    ------
    ValueError
        When the inputs share no sample ids or no type names, contain NaN, or
        ``match`` is unknown.  A :class:`fastdeconv.errors.InputProblem` (a
        ValueError) when one table looks transposed or the samples overlap
        only in part (``samples="all"``), naming the option that fixes it.

    Notes
    -----
    Samples are matched by index (in the estimate's order).  Pearson's r of a
    type whose truth (or estimate) is constant is undefined and reported as NaN.

    Examples
    --------
    >>> import pandas as pd
    >>> from fastdeconv.metrics import evaluate
    >>> truth = pd.DataFrame({"T": [0.5, 0.2, 0.7], "B": [0.5, 0.8, 0.3]},
    ...                      index=["s1", "s2", "s3"])
    >>> est = pd.DataFrame({"B": [0.45, 0.85, 0.3], "T": [0.55, 0.15, 0.7]},
    ...                    index=["s1", "s2", "s3"])
    >>> ev = evaluate(est, truth)
    >>> round(ev.overall["pearson_r"], 4), round(ev.overall["rmse"], 4)
    (0.99, 0.0408)
    >>> ev.per_type.index.tolist()
    ['T', 'B']

    Reference-free components are matched to the types automatically:

    >>> comps = est.rename(columns={"B": "component_1", "T": "component_2"})
    >>> evaluate(comps, truth, match="best").matching
    {'component_2': 'T', 'component_1': 'B'}
    """
    if match not in ("names", "best"):
        raise ValueError(f"match must be 'names' or 'best', got {match!r}")
    if samples not in SAMPLES:
        raise ValueError(f"samples must be one of {SAMPLES}, got {samples!r}")
    est = _as_frame(estimate, "estimate", transpose_estimate)
    tru = _as_frame(truth, "truth", transpose_truth)
    _check_orientation(est, tru)
    notes = []
    est, tru = _align_samples(est, tru, samples, notes)
    if match == "names":
        matching, unmatched_e, unmatched_t = _match_names(est, tru, notes)
    else:
        matching, unmatched_e, unmatched_t = _match_best(est, tru, notes)
    types = list(matching.values())
    est = est[list(matching)].set_axis(types, axis=1)
    tru = tru[types]
    if renormalize:
        sums = est.sum(axis=1)
        if (sums <= 0).any():
            raise ValueError(
                "cannot renormalize: the evaluated estimates of sample "
                f"{sums.index[(sums <= 0).argmax()]!r} "
                "sum to 0"
            )
        est = est.div(sums, axis=0)

    e, t = est.to_numpy(), tru.to_numpy()
    overall = _scores(e, t)
    per_type = pd.DataFrame(
        [
            {
                **_scores(e[:, j], t[:, j]),
                "mean_estimate": e[:, j].mean(),
                "mean_truth": t[:, j].mean(),
            }
            for j in range(len(types))
        ],
        index=pd.Index(types, name="cell_type"),
    )
    undefined = per_type.index[per_type["pearson_r"].isna()].tolist()
    if undefined:
        notes.append(f"Pearson r undefined (constant values across samples) for: {undefined}")
    per_sample = pd.DataFrame(
        {
            "pearson_r": [pearson_r(e[i], t[i]) for i in range(len(est))],
            "rmse": [rmse(e[i], t[i]) for i in range(len(est))],
        },
        index=est.index,
    )
    return Evaluation(
        overall=overall,
        per_type=per_type,
        per_sample=per_sample,
        matching=matching,
        estimate=est,
        truth=tru,
        unmatched_estimate=unmatched_e,
        unmatched_truth=unmatched_t,
        notes=notes,
    )


def group_types(proportions, groups, *, renormalize=True):
    """Sum cell types into coarser groups, to compare with a coarser truth.

    Flow cytometry often counts broader populations than a reference
    distinguishes (CD4 T cells, not naive and memory and regulatory ones), and
    a reference may split a type the truth keeps whole.  Summing the finer
    estimates into the truth's groups makes them comparable.

    Parameters
    ----------
    proportions : pandas.DataFrame
        Samples x types.
    groups : dict
        Group name -> list of the types (columns) it sums; types not listed
        are left out.
    renormalize : bool, default True
        Divide each row by its sum over the groups (the groups then cover the
        whole sample).

    Returns
    -------
    pandas.DataFrame
        Samples x groups, in the order of ``groups``.

    Raises
    ------
    ValueError
        If a group names a type that is not a column.

    Examples
    --------
    >>> import pandas as pd
    >>> from fastdeconv.metrics import group_types
    >>> p = pd.DataFrame({"CD4 naive": [0.2], "CD4 memory": [0.3], "B": [0.25], "NK": [0.25]})
    >>> group_types(p, {"CD4 T": ["CD4 naive", "CD4 memory"], "B": ["B"]}).round(4)
        CD4 T       B
    0  0.6667  0.3333
    """
    frame = pd.DataFrame(proportions)
    missing = sorted({t for types in groups.values() for t in types} - set(frame.columns))
    if missing:
        raise ValueError(
            f"groups name types that are not columns of the proportions: {missing[:6]} "
            f"(columns: {list(frame.columns[:8])})"
        )
    out = pd.DataFrame({g: frame[list(types)].sum(axis=1) for g, types in groups.items()})
    if renormalize:
        out = out.div(out.sum(axis=1), axis=0)
    return out


# fit_rna_content moved to fastdeconv.fractions (RNA vs cell fractions live together)
__getattr__ = moved_names(__name__, {"fit_rna_content": "fastdeconv.fractions"})
