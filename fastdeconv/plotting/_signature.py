"""Figure of a signature built from single cells; matplotlib is imported lazily.

* :func:`plot_signature` -- heatmap of the markers across the cell types.
"""

from __future__ import annotations

import numpy as np

from fastdeconv.plotting._deconv import _frame, new_figure, save_figure, set_title

__all__ = ["plot_signature"]

#: above this many genes the gene names are not written on the axis
_MAX_GENE_LABELS = 80


def plot_signature(signature, path=None, ax=None, *, title=None):
    """Heatmap of a signature: each marker's expression across the cell types.

    Each gene (row) is divided by its largest value over the types, so that
    every row spans 0 to 1 and a good marker shows as one bright cell in its
    own type's column.  Rows keep the signature's order (from
    :func:`fastdeconv.build_signature`: the markers of each type together).

    Parameters
    ----------
    signature : DataFrame or SignatureResult
        Genes x cell types (or a result with ``.signature``).
    path : str or path-like, optional
        Save the figure there (format from the extension).
    ax : matplotlib.axes.Axes, optional
        Draw into this axes.
    title : str, optional
        Title of the axes (default: ``"signature: N genes x K types"``); pass
        one naming the dataset (``""`` for none).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import pandas as pd
    >>> from fastdeconv.plotting._signature import plot_signature
    >>> sig = pd.DataFrame({"T": [90.0, 1.0, 5.0], "B": [2.0, 40.0, 5.0]},
    ...                    index=["CD3E", "MS4A1", "ACTB"])
    >>> fig = plot_signature(sig, path=None)
    >>> [t.get_text() for t in fig.axes[0].get_xticklabels()]
    ['T', 'B']
    """
    sig = _frame(signature, "signature", "signature")
    values = sig.to_numpy(dtype=np.float64)
    top = values.max(axis=1, keepdims=True) if values.size else values
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = np.where(top > 0, values / top, 0.0)
    n_genes, n_types = scaled.shape
    height = min(12.0, max(3.0, 0.12 * n_genes + 1.5))
    fig, axes = new_figure(path, ax, figsize=(max(3.5, 0.6 * n_types + 2.0), height))
    ax = axes[0]
    image = ax.imshow(scaled, aspect="auto", interpolation="nearest", cmap="viridis",
                      vmin=0.0, vmax=1.0)
    ax.set_xticks(np.arange(n_types), [str(t) for t in sig.columns], rotation=45, ha="right")
    if n_genes <= _MAX_GENE_LABELS:
        ax.set_yticks(np.arange(n_genes), [str(g) for g in sig.index], fontsize=6)
    else:
        ax.set_yticks([])
        ax.set_ylabel(f"{n_genes} genes")
    set_title(fig, ax, title, f"signature: {n_genes} genes x {n_types} types")
    fig.colorbar(image, ax=ax, label="expression / the gene's maximum", shrink=0.6)
    if path is not None:
        save_figure(fig, path)
    return fig
