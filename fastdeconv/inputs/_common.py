"""What every reader of user objects needs: one test for AnnData, one densifier."""

from __future__ import annotations

import numpy as np

__all__ = ["is_anndata", "dense", "anndata_values"]


def is_anndata(obj):
    """Tell whether ``obj`` is an AnnData object (without importing anndata).

    Parameters
    ----------
    obj : object
        Anything.

    Returns
    -------
    bool
        True when it has the attributes fastdeconv reads from AnnData:
        ``X``, ``layers``, ``obs``, ``obs_names`` and ``var_names``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.inputs import is_anndata
    >>> is_anndata(np.ones((2, 2)))
    False
    """
    return all(hasattr(obj, a) for a in ("X", "layers", "obs", "obs_names", "var_names"))


def dense(x):
    """A dense NumPy array of an array-like or scipy.sparse matrix.

    Parameters
    ----------
    x : array_like or scipy.sparse matrix
        The values.

    Returns
    -------
    ndarray

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> from fastdeconv.inputs._common import dense
    >>> dense(sp.eye(2, format="csr")).tolist()
    [[1.0, 0.0], [0.0, 1.0]]
    """
    if hasattr(x, "toarray"):  # scipy.sparse matrix or array
        x = x.toarray()
    return np.asarray(x)


def anndata_values(adata, layer, name):
    """An AnnData's matrix: ``X``, or ``layers[layer]``, refused with a clear message when
    absent.

    Parameters
    ----------
    adata : anndata.AnnData
    layer : str or None
    name : str
        What the data are, for messages.

    Returns
    -------
    The stored matrix (dense, sparse, backed or Dask), as it is.

    Examples
    --------
    >>> import anndata, numpy as np
    >>> from fastdeconv.inputs._common import anndata_values
    >>> anndata_values(anndata.AnnData(np.ones((2, 2))), None, "bulk").shape
    (2, 2)
    """
    if layer is None:
        values = adata.X
    else:
        if layer not in adata.layers:
            raise ValueError(
                f"{name}: AnnData has no layer {layer!r}; available layers: "
                f"{sorted(adata.layers.keys()) or 'none'}; drop layer= to use .X"
            )
        values = adata.layers[layer]
    if values is None:
        raise ValueError(f"{name}: AnnData .X is empty; pass layer= to use a layer")
    return values
