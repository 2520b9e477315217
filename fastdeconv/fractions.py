"""Fractions of RNA and fractions of cells, and the RNA contents that link them.

A signature of expression per unit of RNA (CPM, TPM, normalised array
intensities) estimates each cell type's share of a sample's *RNA*.  Cell types
differ in RNA per cell, so shares of *cells* need each type's RNA content:
:func:`to_cell_fractions` converts, :func:`fit_rna_content` calibrates the
contents on samples of known composition.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["to_cell_fractions", "fit_rna_content", "held_out_cell_fractions", "mixture_designs"]


def _rna_content_series(rna_content, types):
    """Validated RNA content per type (a float Series over ``types``)."""
    if hasattr(rna_content, "rna_content") and not isinstance(rna_content, (pd.Series, dict)):
        rna_content = rna_content.rna_content  # a SignatureResult
    if isinstance(rna_content, pd.DataFrame):
        if rna_content.shape[1] != 1:
            raise ValueError(
                "rna_content must be one value per cell type (a Series, a dict or a one-column "
                f"table), got a table with {rna_content.shape[1]} columns"
            )
        rna_content = rna_content.iloc[:, 0]
    content = pd.Series(rna_content)
    missing = [t for t in types if t not in content.index]
    if missing:
        raise ValueError(
            f"rna_content has no value for the cell type(s) {missing[:6]}; give every column of "
            f"the proportions a content (it has {list(content.index[:6])})"
        )
    try:
        values = content.loc[list(types)].to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("rna_content must be numeric") from None
    bad = ~(np.isfinite(values) & (values > 0))
    if bad.any():
        raise ValueError(
            "rna_content must be finite and positive (it is a ratio of RNA per cell), got "
            + ", ".join(f"{t}: {float(v):g}" for t, v in zip(np.asarray(types)[bad][:6], values[bad][:6]))
        )
    return pd.Series(values, index=list(types), name="rna_content")


def to_cell_fractions(proportions, rna_content):
    """Convert fractions of RNA into fractions of cells.

    A signature of expression per unit of RNA (CPM, TPM, normalised array
    intensities) fitted to a bulk sample estimates each type's share of the
    sample's RNA.  Cell types differ in RNA per cell (monocytes and cell lines
    of myeloid origin carry more than lymphocytes), so when the quantity of
    interest is the share of *cells*, each RNA fraction has to be divided by
    its type's RNA content and the row renormalised:
    ``f_t = (r_t / c_t) / sum_u (r_u / c_u)``.  Only the ratios of the
    contents matter.  No fit to mixtures can estimate these contents (any set
    of contents explains the bulk equally well); they come from outside: the
    library sizes of a single-cell reference
    (:attr:`fastdeconv.SignatureResult.rna_content`), published measurements,
    or a calibration on mixtures of known composition
    (:func:`fastdeconv.fractions.fit_rna_content`).

    Parameters
    ----------
    proportions : pandas.DataFrame
        Samples x types, e.g. ``deconvolve(...).proportions``.
    rna_content : dict, pandas.Series or one-column DataFrame
        RNA per cell of every type in ``proportions`` (any unit; extra types
        are ignored).  Must be finite and positive.

    Returns
    -------
    pandas.DataFrame
        Samples x types, rows summing to 1 (rows that were all 0 stay 0,
        rows with NaN stay NaN).

    Raises
    ------
    ValueError
        When a type has no content, or a content is not finite and positive.

    Examples
    --------
    >>> import pandas as pd
    >>> from fastdeconv import to_cell_fractions
    >>> rna = pd.DataFrame({"T": [0.5], "Mono": [0.5]}, index=["s1"])
    >>> to_cell_fractions(rna, {"T": 1.0, "Mono": 3.0})
           T  Mono
    s1  0.75  0.25
    """
    p = pd.DataFrame(proportions)
    content = _rna_content_series(rna_content, p.columns)
    f = p / content.to_numpy()[None, :]
    total = f.sum(axis=1, min_count=1)
    return f.div(total.where(total != 0, 1.0), axis=0)


def fit_rna_content(estimate, truth, *, match="names"):
    """Relative RNA content per cell type that best maps RNA fractions onto cell fractions.

    Deconvolution with a signature of expression per unit of RNA estimates
    each type's share of the RNA; designed mixtures and flow cytometry count
    cells.  The two differ by a factor per type, the RNA per cell ``c_t``:
    ``estimate_st ~ c_t truth_st / sum_u c_u truth_su``.  This finds the
    ``c`` that minimises the squared difference between
    :func:`fastdeconv.to_cell_fractions` of the estimate and the truth, on
    samples of known composition (a calibration set).  The contents can then
    convert estimates of *other* samples of the same cell types and platform.
    Fitted on the samples that are then scored, the result is an oracle: it
    measures how much of the error is a per-type scale, not what a method
    achieves.

    Parameters
    ----------
    estimate : DataFrame or result
        Samples x types estimated fractions (as for :func:`evaluate`).
    truth : DataFrame
        Samples x types true cell fractions; the samples found in both tables
        are used.
    match : {"names", "best"}, default "names"
        How estimated columns are paired with true types (see :func:`evaluate`).

    Returns
    -------
    pandas.Series
        Relative RNA content per (true) cell type, geometric mean 1, named
        ``"rna_content"``.

    Raises
    ------
    ValueError
        When fewer than two types are matched, or no sample has a positive
        estimate.

    Notes
    -----
    The estimates of the matched types are renormalised to sum to 1 per
    sample; samples whose estimates are all 0 are ignored.  The fit is a
    small non-linear least-squares problem in ``log c``
    (:func:`scipy.optimize.least_squares`, started from equal contents).

    Examples
    --------
    >>> import pandas as pd
    >>> from fastdeconv import to_cell_fractions
    >>> from fastdeconv.fractions import fit_rna_content
    >>> cells = pd.DataFrame({"T": [0.6, 0.3, 0.8], "Mono": [0.4, 0.7, 0.2]})
    >>> rna = cells * [1.0, 3.0]  # a monocyte carries 3 times the RNA of a T cell
    >>> rna = rna.div(rna.sum(axis=1), axis=0)
    >>> content = fit_rna_content(rna, cells)
    >>> (content / content["T"]).round(3).tolist()
    [1.0, 3.0]
    >>> to_cell_fractions(rna, content).round(3).equals(cells)
    True
    """
    from scipy.optimize import least_squares

    from fastdeconv.metrics import evaluate

    ev = evaluate(estimate, truth, match=match, samples="common")
    est, tru = ev.estimate, ev.truth
    if est.shape[1] < 2:
        raise ValueError(
            f"fit_rna_content needs at least 2 matched cell types, got {est.shape[1]}"
        )
    E = est.to_numpy()
    sums = E.sum(axis=1)
    ok = sums > 0
    if not ok.any():
        raise ValueError("no sample has a positive estimate; nothing to fit")
    E = E[ok] / sums[ok, None]
    T = tru.to_numpy()[ok]

    def residual(theta):
        f = E * np.exp(-np.concatenate([[0.0], theta]))[None, :]
        return (f / f.sum(axis=1, keepdims=True) - T).ravel()

    fit = least_squares(residual, np.zeros(E.shape[1] - 1), method="lm", xtol=1e-12, ftol=1e-12)
    log_c = np.concatenate([[0.0], fit.x])
    log_c -= log_c.mean()
    return pd.Series(np.exp(log_c), index=est.columns, name="rna_content")


def mixture_designs(truth, decimals=4):
    """Group samples by their design: samples with equal true proportions form one group.

    Designed mixtures repeat each composition (technical or biological
    replicates); a calibration that must not see the samples it is scored on
    has to hold out whole designs, not single replicates.

    Parameters
    ----------
    truth : pandas.DataFrame
        Samples x types true proportions.
    decimals : int, optional
        Proportions are compared after rounding to this many decimals (4).

    Returns
    -------
    pandas.Series
        One group label per sample (the rounded composition as a tuple).

    Examples
    --------
    >>> import pandas as pd
    >>> from fastdeconv.fractions import mixture_designs
    >>> truth = pd.DataFrame({"A": [0.5, 0.5, 0.2], "B": [0.5, 0.5, 0.8]}, index=["r1", "r2", "r3"])
    >>> mixture_designs(truth).nunique()
    2
    """
    return pd.DataFrame(truth).round(decimals).apply(tuple, axis=1)


def held_out_cell_fractions(estimate, truth, groups=None):
    """Cell fractions with RNA contents calibrated on *other* samples (cross-validated).

    For every group of samples, RNA contents are fitted by
    :func:`fit_rna_content` on all samples outside the group and applied
    (:func:`to_cell_fractions`) to the group, so no sample is converted with
    contents fitted on itself: an honest estimate of what the calibration
    achieves on new samples of the same cell types and platform.  The oracle
    (contents fitted on every sample, then applied to the same samples) is
    returned beside it: how much of the error is one factor per cell type.

    Parameters
    ----------
    estimate : pandas.DataFrame
        Samples x types estimated RNA fractions.
    truth : pandas.DataFrame
        Samples x types true cell fractions (same sample ids).
    groups : pandas.Series, optional
        A group label per sample, held out together; default
        :func:`mixture_designs` (replicates of one design are one group).

    Returns
    -------
    held_out : pandas.DataFrame
        Samples x types, each group converted with contents from the others.
    oracle : pandas.DataFrame
        Samples x types, converted with contents fitted on all samples.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from fastdeconv.fractions import held_out_cell_fractions
    >>> rng = np.random.default_rng(0)
    >>> cells = pd.DataFrame(rng.dirichlet([2.0, 2.0, 2.0], size=8), columns=["T", "B", "Mono"])
    >>> rna = cells * [1.0, 1.0, 3.0]
    >>> rna = rna.div(rna.sum(axis=1), axis=0)
    >>> held_out, oracle = held_out_cell_fractions(rna, cells)
    >>> bool(np.abs(held_out - cells).to_numpy().max() < 1e-6)
    True
    """
    types = [t for t in truth.columns if t in estimate.columns]
    est = estimate[types]
    if groups is None:
        groups = mixture_designs(truth[types])
    groups = pd.Series(groups).reindex(est.index)
    if groups.nunique() < 2:
        raise ValueError("held_out_cell_fractions needs at least two groups of samples")
    held_out = []
    for g in groups.unique():
        test = (groups == g).to_numpy()
        content = fit_rna_content(est[~test], truth.loc[est.index[~test]])
        held_out.append(to_cell_fractions(est[test], content))
    oracle = to_cell_fractions(est, fit_rna_content(est, truth))
    return pd.concat(held_out).loc[est.index], oracle
