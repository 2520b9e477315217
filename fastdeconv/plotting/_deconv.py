"""Figures for reference-based deconvolution: proportions, accuracy, fit quality.

matplotlib is imported inside the functions, so importing this module costs
nothing and the core library does not depend on it. Every function returns the
:class:`matplotlib.figure.Figure`; with ``path`` it is also saved (atomically:
a temporary file in the same folder is renamed over the target), and in that
case the figure is created without pyplot, so no display or GUI backend is
needed and no figure is left open.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from fastdeconv.plotting._colors import type_colors

__all__ = ["plot_proportions", "plot_estimate_vs_truth", "plot_fit_quality"]

_FIT_COLUMNS = {
    "pearson_r": "Pearson r (fitted vs observed)",
    "r2": "R\N{SUPERSCRIPT TWO}",
    "rmse": "RMSE of the fit",
    "residual_norm": "residual norm",
}


def _require_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImportError(
            "plotting needs matplotlib; install it with `pip install matplotlib` "
            "(or `pip install fastdeconv[plot]`)"
        ) from None


def new_figure(path=None, ax=None, *, figsize=(8.0, 4.5), nrows=1, ncols=1):
    """Create a figure and axes (or reuse ``ax``); shared by the plotting modules.

    Parameters
    ----------
    path : str or path-like, optional
        When given (and ``ax`` is None) the figure is made without pyplot, so
        saving needs no display and leaves no figure open.
    ax : matplotlib.axes.Axes, optional
        Draw into this axes (single-panel plots only).
    figsize : tuple of float
        Figure size in inches.
    nrows, ncols : int
        Grid of subplots.

    Returns
    -------
    (Figure, numpy.ndarray of Axes)

    Examples
    --------
    >>> from fastdeconv.plotting._deconv import new_figure
    >>> fig, axes = new_figure("unused.png", nrows=1, ncols=2)
    >>> axes.shape
    (2,)
    """
    _require_matplotlib()
    if ax is not None:
        if nrows * ncols != 1:
            raise ValueError("ax can only be given for single-panel plots")
        return ax.figure, np.array([ax])
    if path is not None:
        from matplotlib.figure import Figure

        fig = Figure(figsize=figsize)
    else:
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=figsize)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    return fig, axes


def check_figure_path(path):
    """Check that a figure can be saved to ``path``; return its format.

    Parameters
    ----------
    path : str or path-like
        Target file; the extension chooses the format.

    Returns
    -------
    str
        The format, e.g. ``"png"``.

    Raises
    ------
    ValueError
        For an extension matplotlib cannot write.

    Examples
    --------
    >>> from fastdeconv.plotting._deconv import check_figure_path
    >>> check_figure_path("out/proportions.PDF")
    'pdf'
    """
    _require_matplotlib()
    from matplotlib.backend_bases import FigureCanvasBase

    fmt = Path(path).suffix.lower().lstrip(".")
    supported = FigureCanvasBase.get_supported_filetypes()
    if fmt not in supported:
        raise ValueError(
            f"cannot save a figure as {str(path)!r}: use one of the extensions "
            f"{', '.join('.' + s for s in sorted(supported))}"
        )
    return fmt


def save_figure(fig, path, *, dpi=150):
    """Save ``fig`` to ``path`` atomically; the format comes from the extension.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    path : str or path-like
        Target file, e.g. ``proportions.png`` or ``.pdf`` / ``.svg``.
    dpi : int, default 150
        Resolution for raster formats.

    Returns
    -------
    pathlib.Path
        The written file.

    Raises
    ------
    ValueError
        For an extension matplotlib cannot write.
    FileNotFoundError
        If the target folder does not exist.

    Examples
    --------
    >>> import os, tempfile
    >>> from fastdeconv.plotting._deconv import new_figure, save_figure
    >>> fig, axes = new_figure("x.png")
    >>> with tempfile.TemporaryDirectory() as d:
    ...     out = save_figure(fig, os.path.join(d, "x.png"))
    ...     out.stat().st_size > 0
    True
    """
    from fastdeconv.io import atomic_write

    path = Path(path)
    fmt = check_figure_path(path)
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight"))


def _frame(obj, attribute, name):
    if isinstance(obj, pd.DataFrame):
        return obj
    value = getattr(obj, attribute, None)
    if isinstance(value, pd.DataFrame):
        return value
    raise TypeError(
        f"{name} must be a DataFrame or a result with a .{attribute} DataFrame, "
        f"got {type(obj).__name__}"
    )


def set_title(fig, axis, title, default, **kwargs):
    """Title a figure: ``title`` if given (``""`` for none), else ``default``.

    Single-panel figures title their axes (``axis``); multi-panel ones
    (``axis=None``) get a figure title above all panels.  Callers that know
    the data, such as the command line, pass a title naming the input file
    and the method.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    axis : matplotlib.axes.Axes or None
        The axes to title, or None for the figure's title.
    title : str or None
        The caller's title; None means ``default``, ``""`` means no title.
    default : str
        What the figure shows.
    **kwargs
        Passed to ``set_title`` / ``suptitle`` (e.g. ``fontsize``).

    Returns
    -------
    str
        The title drawn (``""`` for none).

    Examples
    --------
    >>> from fastdeconv.plotting._deconv import new_figure, set_title
    >>> fig, axes = new_figure("x.png")
    >>> set_title(fig, axes[0], None, "what it shows")
    'what it shows'
    >>> set_title(fig, None, "mixture.tsv, nnls", "what it shows")
    'mixture.tsv, nnls'
    """
    text = default if title is None else str(title)
    if text:
        if axis is not None:
            axis.set_title(text, **kwargs)
        else:
            fig.suptitle(text, **kwargs)
    return text


def plot_proportions(proportions, path=None, ax=None, *, sort=False, title=None):
    """Stacked bars of the cell-type proportions of each sample.

    Parameters
    ----------
    proportions : DataFrame or result
        Samples x types (or a result object with ``.proportions``).
    path : str or path-like, optional
        Save the figure there (``.png``, ``.pdf``, ``.svg``, ...).
    ax : matplotlib.axes.Axes, optional
        Draw into an existing axes.
    sort : bool, default False
        Order the samples by their share of the most abundant type (on
        average), which makes gradients easy to see in large cohorts.
    title : str, optional
        Axes title; default ``"cell-type proportions of N samples"``.  Pass
        one naming the dataset and method (``""`` for no title).

    Returns
    -------
    matplotlib.figure.Figure
        One bar container per type (``fig.axes[0].containers``), one bar per sample.

    Examples
    --------
    >>> import pandas as pd
    >>> from fastdeconv.plotting import plot_proportions
    >>> p = pd.DataFrame({"T": [0.6, 0.3], "B": [0.4, 0.7]}, index=["s1", "s2"])
    >>> fig = plot_proportions(p)
    >>> len(fig.axes[0].containers)
    2
    """
    props = _frame(proportions, "proportions", "proportions")
    if props.shape[0] == 0 or props.shape[1] == 0:
        raise ValueError(f"proportions is empty (shape {props.shape}); expected samples x types")
    values = props.to_numpy(dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise ValueError("proportions contain NaN or infinite values")
    if sort:
        lead = int(np.argmax(values.mean(axis=0)))
        order = np.argsort(-values[:, lead], kind="stable")
        props, values = props.iloc[order], values[order]
    n, k = values.shape
    fig, axes = new_figure(path, ax, figsize=(min(16.0, 4.0 + 0.25 * n), 4.5))
    axis = axes[0]
    x = np.arange(n)
    width = 0.85 if n <= 60 else 1.0
    bottom = np.zeros(n)
    for j, (name, color) in enumerate(zip(props.columns, type_colors(k), strict=True)):
        axis.bar(
            x, values[:, j], width=width, bottom=bottom, color=color, label=str(name), linewidth=0
        )
        bottom += values[:, j]
    axis.set_xlim(-0.5 - (1 - width) / 2, n - 0.5 + (1 - width) / 2)
    axis.set_ylim(0, max(1.0, float(bottom.max())))
    axis.set_ylabel("proportion")
    if n <= 40:
        axis.set_xticks(x, [str(s) for s in props.index], rotation=90, fontsize=8)
        axis.set_xlabel("sample")
    else:
        axis.set_xticks([])
        axis.set_xlabel(f"{n} samples" + (" (sorted)" if sort else ""))
    axis.legend(
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        frameon=False,
        fontsize=8,
        title="cell type",
        ncol=1 if k <= 20 else 2,
    )
    set_title(fig, axis, title, f"cell-type proportions of {n} sample{'s' if n != 1 else ''}")
    if path is not None:
        save_figure(fig, path)
    return fig


def plot_estimate_vs_truth(estimate, truth=None, path=None, *, match="names", title=None):
    """Estimated vs true proportions, one panel per cell type plus all pooled.

    Each panel shows the identity line and the type's Pearson r and RMSE.

    Parameters
    ----------
    estimate : DataFrame, result or Evaluation
        Samples x types estimate, a result with ``.proportions``, or an
        :class:`~fastdeconv.metrics.Evaluation` (then ``truth`` is not needed).
    truth : DataFrame, optional
        Samples x types truth.
    path : str or path-like, optional
        Save the figure there.
    match : {"names", "best"}, default "names"
        How types are paired (see :func:`fastdeconv.metrics.evaluate`).
    title : str, optional
        Figure title above the panels; default ``"estimated vs true
        proportions (N samples)"``.  Pass one naming the dataset and method
        (``""`` for no title).

    Returns
    -------
    matplotlib.figure.Figure
        ``k + 1`` axes: one per evaluated type and the pooled panel.

    Examples
    --------
    >>> import pandas as pd
    >>> from fastdeconv.plotting import plot_estimate_vs_truth
    >>> t = pd.DataFrame({"T": [0.6, 0.3, 0.5], "B": [0.4, 0.7, 0.5]})
    >>> e = pd.DataFrame({"T": [0.55, 0.35, 0.5], "B": [0.45, 0.65, 0.5]})
    >>> fig = plot_estimate_vs_truth(e, t)
    >>> len(fig.axes)
    3
    """
    from fastdeconv.metrics import Evaluation, evaluate

    if isinstance(estimate, Evaluation):
        ev = estimate
    else:
        if truth is None:
            raise ValueError("give the truth (samples x types) or pass an Evaluation")
        ev = evaluate(estimate, truth, match=match)
    types = list(ev.truth.columns)
    k = len(types)
    panels = k + 1
    ncols = min(4, panels)
    nrows = math.ceil(panels / ncols)
    fig, axes = new_figure(path, figsize=(3.2 * ncols, 3.1 * nrows), nrows=nrows, ncols=ncols)
    colors = type_colors(k)
    e, t = ev.estimate.to_numpy(), ev.truth.to_numpy()
    top = max(float(e.max()), float(t.max()), 1e-12) * 1.05
    stats = ev.per_type
    for j, name in enumerate(types):
        axis = axes[j]
        axis.scatter(t[:, j], e[:, j], s=12, color=colors[j], alpha=0.7, linewidths=0)
        row = stats.loc[name]
        axis.set_title(f"{name}\nr = {row['pearson_r']:.3f}, RMSE = {row['rmse']:.3f}", fontsize=9)
    pooled = axes[k]
    for j in range(k):
        pooled.scatter(t[:, j], e[:, j], s=8, color=colors[j], alpha=0.6, linewidths=0)
    pooled.set_title(
        f"all types\nr = {ev.overall['pearson_r']:.3f}, RMSE = {ev.overall['rmse']:.3f}", fontsize=9
    )
    for axis in axes[:panels]:
        axis.plot([0, top], [0, top], color="0.5", linewidth=0.8, linestyle="--")
        axis.set_xlim(0, top)
        axis.set_ylim(0, top)
        axis.set_aspect("equal")
        axis.set_xlabel("true", fontsize=8)
        axis.set_ylabel("estimated", fontsize=8)
        axis.tick_params(labelsize=7)
    for axis in axes[panels:]:
        fig.delaxes(axis)
    n = len(ev.truth)
    plural = "s" if n != 1 else ""
    set_title(fig, None, title, f"estimated vs true proportions ({n} sample{plural})")
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig


def plot_fit_quality(fit, path=None, *, title=None):
    """Per-sample quality of the fit: one panel per diagnostic.

    Samples whose solver did not converge are drawn as red crosses.

    Parameters
    ----------
    fit : DataFrame or result
        Per-sample diagnostics with any of the columns ``pearson_r``, ``r2``,
        ``rmse``, ``residual_norm`` and optionally ``converged`` (the ``.fit``
        of a :class:`fastdeconv.DeconvolutionResult`), or such a result.
    path : str or path-like, optional
        Save the figure there.
    title : str, optional
        Figure title; default ``"quality of the fit of N samples"``.  Pass one
        naming the dataset and method (``""`` for no title).

    Returns
    -------
    matplotlib.figure.Figure
        One axes per diagnostic column found.

    Examples
    --------
    >>> import pandas as pd
    >>> from fastdeconv.plotting import plot_fit_quality
    >>> fit = pd.DataFrame({"r2": [0.98, 0.95, 0.99], "rmse": [1.2, 2.0, 0.9],
    ...                     "converged": [True, True, False]}, index=["a", "b", "c"])
    >>> len(plot_fit_quality(fit).axes)
    2
    """
    fit = _frame(fit, "fit", "fit")
    columns = [c for c in _FIT_COLUMNS if c in fit.columns]
    if not columns:
        raise ValueError(
            f"fit has none of the diagnostic columns {list(_FIT_COLUMNS)}; got {list(fit.columns)}"
        )
    n = len(fit)
    if n == 0:
        raise ValueError("fit has no samples")
    converged = (
        fit["converged"].to_numpy(dtype=bool) if "converged" in fit.columns else np.ones(n, bool)
    )
    fig, axes = new_figure(
        path, figsize=(min(14.0, 4.0 + 0.2 * n), 2.4 * len(columns)), nrows=len(columns), ncols=1
    )
    x = np.arange(n)
    for axis, col in zip(axes, columns, strict=True):
        y = fit[col].to_numpy(dtype=np.float64)
        axis.scatter(
            x[converged], y[converged], s=14, color="tab:blue", linewidths=0, label="converged"
        )
        if not converged.all():
            axis.scatter(
                x[~converged],
                y[~converged],
                s=30,
                color="tab:red",
                marker="x",
                label=f"not converged ({int((~converged).sum())})",
            )
            axis.legend(loc="best", fontsize=8, frameon=False)
        finite = y[np.isfinite(y)]
        if finite.size:
            median = float(np.median(finite))
            axis.axhline(median, color="0.5", linewidth=0.8, linestyle="--")
            axis.text(
                1.0,
                median,
                f" median {median:.3g}",
                transform=axis.get_yaxis_transform(),
                fontsize=8,
                va="center",
                ha="left",
                color="0.3",
            )
        axis.set_ylabel(_FIT_COLUMNS[col], fontsize=8)
        axis.set_xlim(-0.5, n - 0.5)
        axis.set_xticks([])
        axis.tick_params(labelsize=7)
    last = axes[len(columns) - 1]
    if n <= 40:
        last.set_xticks(x, [str(s) for s in fit.index], rotation=90, fontsize=8)
    else:
        last.set_xlabel(f"{n} samples")
    set_title(fig, None, title, f"quality of the fit of {n} sample{'s' if n != 1 else ''}")
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig
