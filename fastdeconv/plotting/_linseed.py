"""Figures of the reference-free (LinSeed) pipeline; matplotlib is imported lazily.

* :func:`plot_spectrum` -- singular-value spectrum and cumulative explained variance, with k;
* :func:`plot_simplex` -- the significant genes projected onto the simplex's subspace,
  coloured by their nearest corner, with the simplex and its corners;
* :func:`plot_significance` -- each gene's number of edges against its summed edge weight,
  coloured by significance;
* :func:`plot_linseed` -- the three side by side.

Each takes a :class:`fastdeconv.LinseedResult`, returns the Figure and, given
``path``, saves it; ``title=`` replaces the default title (say which dataset
it is, ``""`` for none).
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

from fastdeconv.plotting._colors import type_colors
from fastdeconv.plotting._deconv import new_figure, save_figure, set_title

__all__ = ["plot_spectrum", "plot_simplex", "plot_significance", "plot_linseed"]


def _check_result(result):
    needed = ("k_diagnostics", "projection", "corner_coordinates", "genes")
    if not all(hasattr(result, a) for a in needed):
        raise TypeError(f"expected a LinseedResult (from fastdeconv.linseed), got {type(result).__name__}")


def _finish(fig, path):
    if path is not None:
        save_figure(fig, path)
    return fig


def _linseed_title(result):
    k = result.k_diagnostics.k
    genes = len(result.genes)
    samples = getattr(result, "proportions", None)
    of = f"{genes} genes"
    if samples is not None and hasattr(samples, "shape"):
        of += f" x {samples.shape[0]} samples"
    return f"LinSeed: {k} cell types from {of}"


def _draw_spectrum(result, ax, max_components=20, title=None):
    d = result.k_diagnostics
    n = min(len(d.explained), max_components)
    x = np.arange(1, n + 1)
    ax.plot(x, d.explained[:n], "o-", color="0.2", ms=4, label="cumulative explained variance")
    ax.axhline(d.variance_threshold, color="0.6", ls=":", lw=1,
               label=f"threshold {d.variance_threshold:g}")
    ax.axvline(d.k, color="tab:red", ls="--", lw=1,
               label=f"k = {d.k} ({'auto' if d.automatic else 'fixed'})")
    ax.set_xlabel("number of components")
    ax.set_ylabel("cumulative explained variance")
    ax.set_xticks(x)
    set_title(ax.figure, ax, title, "singular-value spectrum")
    twin = ax.twinx()
    twin.semilogy(x, d.singular_values[:n], "s", color="tab:blue", ms=3, alpha=0.6)
    twin.set_ylabel("singular value", color="tab:blue")
    ax.legend(loc="lower right", fontsize=8)


def _draw_simplex(result, ax, dims, title=None):
    proj = result.projection
    corners = result.corner_coordinates
    n_dims = corners.shape[1]
    if n_dims == 1:
        xs = proj.iloc[:, 0].to_numpy()
        ys = np.zeros_like(xs)
        cx, cy = corners.iloc[:, 0].to_numpy(), np.zeros(len(corners))
        xlabel, ylabel = "dimension 1", ""
    else:
        i, j = dims
        if not (0 <= i < n_dims and 0 <= j < n_dims and i != j):
            raise ValueError(f"dims must be two different indices in [0, {n_dims}), got {dims}")
        xs, ys = proj.iloc[:, i].to_numpy(), proj.iloc[:, j].to_numpy()
        cx, cy = corners.iloc[:, i].to_numpy(), corners.iloc[:, j].to_numpy()
        xlabel, ylabel = f"dimension {i + 1}", f"dimension {j + 1}"
    names = list(corners.index)
    colors = type_colors(len(names))
    comp = proj["component"].to_numpy()
    for c, name in enumerate(names):
        sel = comp == name
        ax.scatter(xs[sel], ys[sel], s=3, color=colors[c], alpha=0.5, lw=0)
    for a, b in combinations(range(len(names)), 2):
        ax.plot([cx[a], cx[b]], [cy[a], cy[b]], color="0.2", lw=0.8, ls="--")
    for c, name in enumerate(names):
        ax.scatter([cx[c]], [cy[c]], marker="*", s=160, color=colors[c], edgecolor="k", zorder=3,
                   label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    set_title(ax.figure, ax, title, f"simplex of {len(proj)} significant genes")
    ax.legend(fontsize=8, markerscale=0.7)


def _draw_significance(result, ax, title=None):
    genes = result.genes
    sig = genes["significant"].to_numpy()
    deg, power = genes["degree"].to_numpy(), genes["power"].to_numpy()
    ax.scatter(deg[~sig], power[~sig], s=3, color="0.7", lw=0, label="not significant")
    ax.scatter(deg[sig], power[sig], s=3, color="tab:red", lw=0, label="significant")
    ax.set_xlabel("degree (number of linear partners)")
    ax.set_ylabel("summed edge weight")
    set_title(ax.figure, ax, title, "mutual linearity of the genes")
    ax.legend(fontsize=8, markerscale=3)


def plot_spectrum(result, path=None, ax=None, *, title=None):
    """Singular-value spectrum of the filtered, row-normalised data, with the chosen k.

    Parameters
    ----------
    result : LinseedResult
    path : str or path-like, optional
        Save the figure there (format from the extension).
    ax : matplotlib.axes.Axes, optional
        Draw into this axes.
    title : str, optional
        Axes title (default: ``"singular-value spectrum"``); pass one naming
        the dataset (``""`` for none).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> from fastdeconv.reference_free import linseed
    >>> from fastdeconv.plotting import plot_spectrum
    >>> from fastdeconv.simulate import synthetic
    >>> res = linseed(synthetic(n_genes=400, n_types=3, n_samples=12, seed=1).bulk,
    ...                          3, n_permutations=20, pvalue=0.05)
    >>> fig = plot_spectrum(res, path=None)
    >>> len(fig.axes)
    2
    """
    _check_result(result)
    fig, axes = new_figure(path, ax, figsize=(5.5, 4.0))
    _draw_spectrum(result, axes[0], title=title)
    return _finish(fig, path)


def plot_simplex(result, path=None, ax=None, dims=(0, 1), *, title=None):
    """The significant genes in the simplex's subspace, with the simplex and its corners.

    Parameters
    ----------
    result : LinseedResult
    path : str or path-like, optional
        Save the figure there.
    ax : matplotlib.axes.Axes, optional
        Draw into this axes.
    dims : tuple of int, default (0, 1)
        The two projection dimensions shown (for k > 3).
    title : str, optional
        Axes title (default: ``"simplex of N significant genes"``); pass one
        naming the dataset (``""`` for none).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> from fastdeconv.reference_free import linseed
    >>> from fastdeconv.plotting import plot_simplex
    >>> from fastdeconv.simulate import synthetic
    >>> res = linseed(synthetic(n_genes=400, n_types=3, n_samples=12, seed=1).bulk,
    ...                          3, n_permutations=20, pvalue=0.05)
    >>> fig = plot_simplex(res, path=None)
    >>> fig.axes[0].get_xlabel()
    'dimension 1'
    """
    _check_result(result)
    fig, axes = new_figure(path, ax, figsize=(5.5, 5.0))
    _draw_simplex(result, axes[0], tuple(dims), title=title)
    return _finish(fig, path)


def plot_significance(result, path=None, ax=None, *, title=None):
    """Each analysed gene's degree against its summed edge weight, coloured by significance.

    Parameters
    ----------
    result : LinseedResult
    path : str or path-like, optional
        Save the figure there.
    ax : matplotlib.axes.Axes, optional
        Draw into this axes.
    title : str, optional
        Axes title (default: ``"mutual linearity of the genes"``); pass one
        naming the dataset (``""`` for none).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> from fastdeconv.reference_free import linseed
    >>> from fastdeconv.plotting import plot_significance
    >>> from fastdeconv.simulate import synthetic
    >>> res = linseed(synthetic(n_genes=400, n_types=3, n_samples=12, seed=1).bulk,
    ...                          3, n_permutations=20, pvalue=0.05)
    >>> fig = plot_significance(res)
    >>> fig.axes[0].get_ylabel()
    'summed edge weight'
    """
    _check_result(result)
    fig, axes = new_figure(path, ax, figsize=(5.5, 4.0))
    _draw_significance(result, axes[0], title=title)
    return _finish(fig, path)


def plot_linseed(result, path=None, *, title=None):
    """Spectrum, simplex and significance side by side.

    Parameters
    ----------
    result : LinseedResult
    path : str or path-like, optional
        Save the figure there.
    title : str, optional
        Figure title above the three panels (default: ``"LinSeed: k cell
        types from N genes x M samples"``); pass one naming the dataset
        (``""`` for none).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> from fastdeconv.reference_free import linseed
    >>> from fastdeconv.plotting import plot_linseed
    >>> from fastdeconv.simulate import synthetic
    >>> res = linseed(synthetic(n_genes=400, n_types=3, n_samples=12, seed=1).bulk,
    ...                          3, n_permutations=20, pvalue=0.05)
    >>> len(plot_linseed(res).axes)
    4
    """
    _check_result(result)
    fig, axes = new_figure(path, None, figsize=(16.0, 4.8), ncols=3)
    _draw_spectrum(result, axes[0])
    _draw_simplex(result, axes[1], (0, 1))
    _draw_significance(result, axes[2])
    set_title(fig, None, title, _linseed_title(result))
    fig.tight_layout()
    return _finish(fig, path)
