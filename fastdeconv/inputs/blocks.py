"""A bulk too large to hold densely, read block by block of samples.

Spatial data have 10^5-10^6 spots: sparse counts in memory (scipy.sparse, an
AnnData with a sparse ``X``), an AnnData file opened lazily (``.h5ad`` backed, a
``.zarr`` store), or a Dask array.  :func:`open_blocks` turns each into a
:class:`BlockSource`: the gene and sample names, and ``block(j0, j1)``, the samples
``j0:j1`` as a samples x genes block (CSR or dense, in the stored dtype).  Nothing
here densifies or loads the whole matrix; the pipeline projects each block and lets
it go (:mod:`fastdeconv.blockwise`).

Examples
--------
>>> import numpy as np, scipy.sparse as sp
>>> from fastdeconv.inputs.blocks import open_blocks
>>> counts = sp.random(50, 8, density=0.5, format="csc", random_state=0)  # genes x samples
>>> src = open_blocks(counts, name="bulk", genes=[f"g{i}" for i in range(50)])
>>> src.kind, src.n_samples, len(src.genes), src.block(0, 3).shape
('sparse', 8, 50, (3, 50))
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from fastdeconv.inputs._common import anndata_values, is_anndata

__all__ = ["BlockSource", "CSRRows", "open_blocks", "is_dask", "lazy_anndata", "rows_of",
           "stored_sparse"]


def is_dask(obj):
    """Whether ``obj`` is a Dask array (without importing dask).

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.inputs.blocks import is_dask
    >>> is_dask(np.ones(3))
    False
    """
    # (anndata's views of a Dask array are subclasses defined in anndata)
    return any(c.__module__.startswith("dask.") for c in type(obj).__mro__) \
        and hasattr(obj, "chunks")


@dataclass
class BlockSource:
    """A bulk read in blocks of samples.

    Attributes
    ----------
    genes : list of str
        Gene names in stored order (not yet harmonised).
    samples : pandas.Index
        Sample names.
    kind : str
        ``"sparse"`` (in memory), ``"file"`` (an AnnData file read lazily) or
        ``"dask"``.
    reader : callable
        ``reader(j0, j1)``: samples ``j0:j1`` x genes, a scipy CSR matrix or a dense
        array, in the stored dtype.
    array : dask.array.Array or None
        For ``kind="dask"``: samples x genes, chunked over samples only.
    dtype : numpy.dtype
        The stored values' type.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.inputs.blocks import open_blocks
    >>> import scipy.sparse as sp
    >>> src = open_blocks(sp.csr_array(np.eye(3)), name="bulk", transpose=True)
    >>> src.block(1, 3).tocsr().toarray().tolist()
    [[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    """

    genes: list
    samples: object
    kind: str
    reader: Callable
    array: object = None
    dtype: object = np.float64
    closers: list = field(default_factory=list)

    @property
    def n_samples(self):
        """Number of samples."""
        return len(self.samples)

    def block(self, j0, j1):
        """Samples ``j0:j1`` x genes (CSR or dense)."""
        return self.reader(j0, j1)

    def close(self):
        """Close the files opened for reading."""
        for close in self.closers:
            close()
        self.closers.clear()


def _csr(matrix):
    """A samples x genes CSR matrix with sorted-or-not indices, sharing memory if possible."""
    import scipy.sparse as sp

    if matrix.format == "csr":
        return matrix
    return sp.csr_array(matrix) if matrix.format != "csc" else matrix.tocsr()


@dataclass(frozen=True)
class CSRRows:
    """Rows of a CSR matrix as views of its arrays: what the projection kernel reads.

    scipy copies a view of a larger array when it builds a matrix from it; this holds
    the views as they are (``tocsr()`` makes the scipy matrix when one is needed).

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> from fastdeconv.inputs.blocks import rows_of
    >>> rows_of(sp.csr_array(np.arange(6.0).reshape(3, 2)))(1, 3).tocsr().toarray().tolist()
    [[2.0, 3.0], [4.0, 5.0]]
    """

    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray
    shape: tuple

    def tocsr(self):
        """The rows as a scipy CSR matrix."""
        import scipy.sparse as sp

        return sp.csr_array((self.data, self.indices, self.indptr), shape=self.shape)


def rows_of(csr):
    """A reader of rows ``j0:j1`` of an in-memory CSR matrix as :class:`CSRRows` views.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> from fastdeconv.inputs.blocks import rows_of
    >>> rows_of(sp.csr_array(np.eye(3)))(0, 2).shape
    (2, 3)
    """

    def read(j0, j1):
        start, stop = csr.indptr[j0], csr.indptr[j1]
        return CSRRows(csr.indptr[j0:j1 + 1] - start, csr.indices[start:stop],
                       csr.data[start:stop], (j1 - j0, csr.shape[1]))

    return read


def _names(values, n, what):
    if values is None:
        return [str(i) for i in range(n)]
    values = [str(v) for v in values]
    if len(values) != n:
        raise ValueError(f"{len(values)} {what} names given for {n} {what}s")
    return values


def _from_matrix(matrix, genes, columns, transpose, name):
    """A scipy sparse bulk, genes x samples (``transpose``: samples x genes)."""
    import pandas as pd

    if matrix.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D matrix, got shape {matrix.shape}")
    rows = matrix if transpose else matrix.T  # samples x genes
    if not np.issubdtype(rows.dtype, np.number):
        raise TypeError(f"{name}: the matrix must be numeric, got dtype {rows.dtype}")
    csr = _csr(rows)
    if csr.dtype not in (np.float32, np.float64):
        csr = csr.astype(np.float64)
    n_samples, n_genes = csr.shape
    gene_names = _names(genes, n_genes, "gene")
    samples = pd.Index(columns if columns is not None else range(n_samples))
    if len(samples) != n_samples:
        raise ValueError(f"{name}: {len(samples)} column names given for {n_samples} columns")

    return BlockSource(gene_names, samples, "sparse", rows_of(csr), dtype=csr.dtype)


def _sliced(values):
    """A reader of rows ``j0:j1`` of an AnnData matrix (in memory, backed or on disk)."""
    import scipy.sparse as sp

    def read(j0, j1):
        block = values[j0:j1]
        if sp.issparse(block):
            block = _csr(block)
            return block if block.dtype in (np.float32, np.float64) else block.astype(np.float64)
        block = np.asarray(block)
        return block if block.dtype in (np.float32, np.float64) else block.astype(np.float64)

    return read


def _from_anndata(adata, layer, name, columns):
    import pandas as pd
    import scipy.sparse as sp

    values = anndata_values(adata, layer, name)
    samples = pd.Index(list(adata.obs_names) if columns is None else list(columns))
    genes = [str(g) for g in adata.var_names]
    if is_dask(values):
        return _from_dask(values, genes, samples)
    if sp.issparse(values):
        values = _csr(values)
        return BlockSource(genes, samples, "sparse", rows_of(values), dtype=values.dtype)
    # backed: an h5py/zarr dataset or anndata's backed sparse matrix
    dtype = getattr(values, "dtype", np.float64)
    return BlockSource(genes, samples, "file", _sliced(values), dtype=dtype)


def _from_dask(array, genes, samples):
    """A Dask array, samples x genes: chunks over samples, every gene in each chunk."""
    if array.ndim != 2:
        raise ValueError(f"the Dask array must be 2-D, got shape {array.shape}")
    array = array.rechunk({1: -1})

    def read(j0, j1):
        import scipy.sparse as sp

        block = array[j0:j1].compute()
        return _csr(block) if sp.issparse(block) else np.asarray(block)

    return BlockSource(genes, samples, "dask", read, array=array, dtype=array.dtype)


def _sparse_values(values):
    """Whether an AnnData matrix (in memory, backed, Dask) stores its values sparse."""
    import scipy.sparse as sp

    if sp.issparse(values):
        return True
    if is_dask(values):
        return sp.issparse(getattr(values, "_meta", None))
    return getattr(values, "format", None) in ("csr", "csc")  # anndata's backed datasets


def stored_sparse(obj, layer=None):
    """Whether a bulk's values are stored sparse: counts of spots, bins or cells.

    True for a scipy.sparse matrix, a Dask array of sparse chunks, an AnnData whose ``X``
    (or ``layer``) is sparse (in memory, backed or Dask), and an ``.h5ad`` file or
    ``.zarr`` store whose matrix is stored sparse (read from its header only).

    Parameters
    ----------
    obj : object
        The bulk as the user gave it.
    layer : str, optional
        AnnData layer to look at instead of ``X``.

    Returns
    -------
    bool

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> from fastdeconv.inputs.blocks import stored_sparse
    >>> stored_sparse(sp.eye(3, format="csr")), stored_sparse(np.eye(3))
    (True, False)
    """
    import scipy.sparse as sp

    if isinstance(obj, (str, os.PathLike)):
        path = os.fspath(obj).rstrip("/\\")
        key = "X" if layer is None else f"layers/{layer}"
        try:
            if path.lower().endswith(".zarr"):
                import zarr

                group = zarr.open_group(path, mode="r")
                return group[key].attrs.get("encoding-type", "") in ("csr_matrix", "csc_matrix")
            if path.lower().endswith(".h5ad"):
                import h5py

                with h5py.File(path, "r") as group:
                    encoding = group[key].attrs.get("encoding-type", "")
                    encoding = encoding.decode() if isinstance(encoding, bytes) else encoding
                    return encoding in ("csr_matrix", "csc_matrix")
        except Exception:  # noqa: BLE001 -- unreadable here: the reader says why, later
            return False
        return False
    if is_anndata(obj):
        values = obj.X if layer is None else obj.layers.get(layer) if layer in obj.layers \
            else None
        return values is not None and _sparse_values(values)
    if sp.issparse(obj):
        return True
    return is_dask(obj) and sp.issparse(getattr(obj, "_meta", None))


def lazy_anndata(path, *, name="bulk"):
    """Open an AnnData ``.h5ad`` file or ``.zarr`` store without reading its matrices.

    The names (``obs_names``, ``var_names``) are read; ``X`` and the layers stay on
    disk and are read in row blocks (anndata's backed sparse datasets).

    Parameters
    ----------
    path : str or os.PathLike
    name : str, optional
        What the data are, for messages.

    Returns
    -------
    types.SimpleNamespace
        With ``X``, ``layers`` (a dict of the stored matrices), ``obs``, ``var``,
        ``obs_names``, ``var_names``, ``close()``.

    Examples
    --------
    >>> import os, tempfile
    >>> import anndata, numpy as np, scipy.sparse as sp
    >>> from fastdeconv.inputs.blocks import lazy_anndata
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = os.path.join(d, "spots.h5ad")
    ...     anndata.AnnData(sp.csr_matrix(np.eye(3, dtype=np.float32))).write_h5ad(p)
    ...     a = lazy_anndata(p)
    ...     print(a.X[1:3].toarray().tolist()); a.close()
    [[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    """
    import types

    import anndata
    import pandas as pd

    path = os.fspath(path)
    zarr_store = path.rstrip("/\\").lower().endswith(".zarr")
    if zarr_store:
        import zarr

        if not os.path.isdir(path):
            raise FileNotFoundError(f"{name}: zarr store not found: {path!r}")
        group = zarr.open_group(path, mode="r")
        close = lambda: None  # noqa: E731 -- a zarr directory store holds no handle
    else:
        from fastdeconv.io import read_h5ad_header

        group = read_h5ad_header(path)
        close = group.file.close if hasattr(group, "file") else group.close

    def matrix(element):
        encoding = element.attrs.get("encoding-type", "")
        if encoding in ("csr_matrix", "csc_matrix"):
            return anndata.io.sparse_dataset(element)
        return element  # a dense h5py/zarr array: slicing rows reads them

    try:
        obs = anndata.io.read_elem(group["obs"])
        var = anndata.io.read_elem(group["var"])
        X = matrix(group["X"]) if "X" in group else None
        layers = ({key: matrix(group["layers"][key]) for key in group["layers"]}
                  if "layers" in group else {})
    except Exception as exc:
        close()
        raise ValueError(
            f"{name}: {path!r} cannot be read as an AnnData store ({type(exc).__name__}: "
            f"{str(exc)[:200]}); write it with adata.write_h5ad() / adata.write_zarr()"
        ) from None
    return types.SimpleNamespace(
        X=X, layers=layers, obs=obs, var=var, obs_names=pd.Index(obs.index),
        var_names=pd.Index(var.index), close=close, path=path,
    )


def open_blocks(obj, *, name="bulk", genes=None, columns=None, layer=None, transpose=False):
    """A :class:`BlockSource` for a bulk that should not be held densely, else None.

    Block-wise input: a scipy.sparse matrix (genes x samples, or samples x genes
    with ``transpose``), an AnnData whose matrix is sparse, backed or a Dask array,
    a path to an ``.h5ad`` file or ``.zarr`` store (opened lazily), or a Dask array
    (genes x samples, or samples x genes with ``transpose``).  Anything else (a
    DataFrame, a dense array or AnnData, a table file) gives None: the pipeline reads
    it whole.

    Parameters
    ----------
    obj : object
        The bulk as the user gave it.
    name : str, optional
        What the data are, for messages.
    genes, columns : sequence of str, optional
        Gene and sample names for a matrix without them.
    layer : str, optional
        AnnData layer to read instead of ``X``.
    transpose : bool, optional
        A matrix given samples x genes.

    Returns
    -------
    BlockSource or None

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from fastdeconv.inputs.blocks import open_blocks
    >>> open_blocks(pd.DataFrame(np.ones((2, 2)))) is None
    True
    """
    import scipy.sparse as sp

    if isinstance(obj, (str, os.PathLike)):
        path = os.fspath(obj)
        lowered = path.rstrip("/\\").lower()
        if not (lowered.endswith(".h5ad") or lowered.endswith(".zarr")):
            return None
        adata = lazy_anndata(path, name=name)
        try:
            source = _from_anndata(adata, layer, name, columns)
        except Exception:
            adata.close()
            raise
        source.closers.append(adata.close)
        return source
    if is_anndata(obj):
        values = anndata_values(obj, layer, name)
        backed = bool(getattr(obj, "isbacked", False)) and layer is None
        if not (backed or sp.issparse(values) or is_dask(values)):
            return None
        return _from_anndata(obj, layer, name, columns)
    if layer is not None:
        return None  # the table reader refuses layer= for non-AnnData input
    if sp.issparse(obj):
        return _from_matrix(obj, genes, columns, transpose, name)
    if is_dask(obj):
        import pandas as pd

        array = obj if transpose else obj.T
        if array.ndim != 2:
            raise ValueError(f"{name}: expected a 2-D Dask array, got shape {obj.shape}")
        gene_names = _names(genes, array.shape[1], "gene")
        samples = pd.Index(columns if columns is not None else range(array.shape[0]))
        return _from_dask(array, gene_names, samples)
    return None
