"""Single-cell counts and their cell labels: the one reader for both.

:func:`as_counts` turns a count matrix -- a genes x cells NumPy array, scipy
sparse matrix or DataFrame, or a cells x genes AnnData object -- into a
:class:`Counts`: genes x cells, dense or sparse (CSR or CSC, read in place),
with gene and cell names.  :func:`as_labels` turns the user's cell labels --
a sequence, a Series indexed by cell id, a one-column table, or the name of an
AnnData ``.obs`` column -- into one string per cell, aligned to the cells.

:func:`fastdeconv.build_signature`, :func:`fastdeconv.signature.cluster_cells`
and :func:`fastdeconv.simulate.pseudobulk` read their inputs through these two
functions, so they accept the same objects and reject bad ones with the same
messages.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fastdeconv.inputs._common import is_anndata

__all__ = ["Counts", "as_counts", "as_labels"]

#: dtypes the Numba kernels read directly (others are converted to float64)
_KERNEL_DTYPES = (np.float64, np.float32, np.int64, np.int32)


class Counts:
    """A genes x cells count matrix in the layout the kernels read, with its names.

    Built by :func:`as_counts`; not meant to be constructed by hand.

    Attributes
    ----------
    matrix : ndarray or scipy.sparse matrix
        Genes x cells.  Dense arrays are 2-D of dtype float64, float32, int64 or
        int32 (any memory order); sparse matrices are CSR or CSC.
    genes : pandas.Index
        Gene names (str, unique).
    cells : pandas.Index
        Cell ids, as the input gave them (``cell0, cell1, ...`` for arrays).
    n_genes, n_cells : int
        The shape of :attr:`matrix`.
    sparse : bool
        Whether :attr:`matrix` is a scipy sparse matrix.
    has_gene_names, has_cell_names : bool
        Whether the names came from the input (a DataFrame, AnnData or
        ``gene_names=``) rather than being made up.
    obs : pandas.DataFrame or None
        The cell annotations of an AnnData input (where label columns live).

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.inputs.counts import as_counts
    >>> c = as_counts(np.array([[1, 0, 3], [0, 2, 2]]), gene_names=["CD3E", "MS4A1"])
    >>> c.n_genes, c.n_cells, c.genes.tolist()
    (2, 3, ['CD3E', 'MS4A1'])
    >>> c.library_sizes().tolist()
    [1.0, 2.0, 5.0]
    """

    def __init__(self, matrix, genes, cells, *, has_gene_names, has_cell_names, obs=None):
        import scipy.sparse as sp

        self.matrix = matrix
        self.sparse = sp.issparse(matrix)
        self.n_genes, self.n_cells = matrix.shape
        self.genes = genes
        self.cells = cells
        self.has_gene_names = has_gene_names
        self.has_cell_names = has_cell_names
        self.obs = obs

    def __repr__(self):
        kind = f"sparse {self.matrix.format.upper()}" if self.sparse else "dense"
        return f"Counts({self.n_genes} genes x {self.n_cells} cells, {kind}, {self.matrix.dtype})"

    def values(self):
        """The stored numbers (the non-zeros of a sparse matrix).

        Returns
        -------
        ndarray

        Examples
        --------
        >>> import scipy.sparse as sp
        >>> from fastdeconv.inputs.counts import as_counts
        >>> as_counts(sp.csr_array([[0.0, 4.0], [1.0, 0.0]])).values().tolist()
        [4.0, 1.0]
        """
        return self.matrix.data if self.sparse else self.matrix

    def library_sizes(self):
        """Total counts of every cell.

        Returns
        -------
        ndarray of float64, shape (n_cells,)

        Examples
        --------
        >>> import numpy as np
        >>> from fastdeconv.inputs.counts import as_counts
        >>> as_counts(np.array([[1, 2], [3, 4]])).library_sizes().tolist()
        [4.0, 6.0]
        """
        return np.asarray(self.matrix.sum(axis=0), dtype=np.float64).ravel()

    def check_values(self):
        """Raise a ValueError for NaN/infinite or negative counts.

        Raises
        ------
        ValueError
            When a count is not finite or is negative.

        Examples
        --------
        >>> import numpy as np
        >>> from fastdeconv.inputs.counts import as_counts
        >>> try:
        ...     as_counts(np.array([[1.0, -2.0]])).check_values()
        ... except ValueError as err:
        ...     print(str(err)[:36])
        counts contain negative values; pass
        """
        v = self.values()
        if v.size == 0:
            return
        if np.issubdtype(v.dtype, np.floating):
            bad = ~np.isfinite(v)
            if bad.any():
                raise ValueError(
                    f"counts contain {int(bad.sum())} NaN or infinite values; remove or impute them"
                )
        if np.any(v < 0):
            raise ValueError(
                "counts contain negative values; pass raw (or library-size normalised) counts, "
                "not centred, scaled or log-ratio data"
            )

    def is_integer(self):
        """Whether every count is a whole number (raw counts rather than normalised values).

        Returns
        -------
        bool

        Examples
        --------
        >>> import numpy as np
        >>> from fastdeconv.inputs.counts import as_counts
        >>> as_counts(np.array([[1.0, 2.0]])).is_integer()
        True
        >>> as_counts(np.array([[0.5, 2.0]])).is_integer()
        False
        """
        v = self.values()
        if not np.issubdtype(v.dtype, np.floating):
            return True
        return not bool(np.any(v != np.round(v)))

    def group_sums(self, groups, n_groups, scale, n_jobs=None):
        """Per-gene, per-group sums in one pass over the stored counts (no copy of the data).

        The rows the matrix stores contiguously (genes or cells) are split into
        chunks of similar work (non-zeros for sparse, rows for dense), one
        ``nogil`` kernel call per chunk in :func:`fastdeconv._parallel.thread_map`;
        the partial sums are added at the end.

        Parameters
        ----------
        groups : ndarray of int64, shape (n_cells,)
            Group of each cell, in ``[0, n_groups)``.
        n_groups : int
            Number of groups.
        scale : ndarray of float64, shape (n_cells,)
            Per-cell normalisation factor (``1e6 / library size`` for CPM).
        n_jobs : int or None, optional
            Threads (see :func:`fastdeconv._parallel.resolve_n_jobs`).

        Returns
        -------
        dict
            Name (:data:`fastdeconv.kernels.markers.SUM_NAMES`) -> (n_genes,
            n_groups) array: sums of the counts, of their squares, of the
            normalised values, of ``log1p`` of those and of its square, and the
            number of non-zero counts.

        Examples
        --------
        >>> import numpy as np
        >>> from fastdeconv.inputs.counts import as_counts
        >>> c = as_counts(np.array([[1.0, 0.0, 3.0], [0.0, 2.0, 2.0]]))
        >>> sums = c.group_sums(np.array([0, 1, 1]), 2, np.ones(3), n_jobs=1)
        >>> sums["count_sum"].tolist(), sums["nnz"].tolist()
        ([[1.0, 3.0], [0.0, 4.0]], [[1.0, 1.0], [0.0, 2.0]])
        """
        from fastdeconv._parallel import resolve_n_jobs, thread_map
        from fastdeconv.kernels import markers as _mk

        x = self.matrix
        if self.sparse:
            rows_are_genes = x.format == "csr"  # genes x cells CSR: compressed rows are genes
            n_rows = x.indptr.size - 1
            work = np.asarray(x.indptr, dtype=np.float64)

            def run(span):
                return _mk.group_sums_sparse(
                    x.indptr, x.indices, x.data, self.n_genes, rows_are_genes,
                    groups, n_groups, scale, span[0], span[1],
                )
        else:
            if x.flags.c_contiguous:
                mat, rows_are_genes = x, True
            elif x.flags.f_contiguous:
                mat, rows_are_genes = x.T, False
            else:
                mat, rows_are_genes = np.ascontiguousarray(x), True
            n_rows = mat.shape[0]
            work = np.arange(n_rows + 1, dtype=np.float64)

            def run(span):
                return _mk.group_sums_dense(mat, rows_are_genes, groups, n_groups, scale, *span)

        n_chunks = max(1, min(resolve_n_jobs(n_jobs), n_rows))
        # chunk boundaries with equal work
        bounds = np.searchsorted(work, np.linspace(0.0, work[-1], n_chunks + 1)).tolist()
        bounds[0], bounds[-1] = 0, n_rows
        spans = [(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a] or [(0, n_rows)]
        parts = thread_map(run, spans, n_jobs=len(spans), blas=False)
        acc = parts[0][0]
        for part in parts[1:]:
            acc += part[0]
        return {name: np.ascontiguousarray(acc[:, :, j]) for j, name in enumerate(_mk.SUM_NAMES)}


def as_counts(counts, *, layer=None, gene_names=None):
    """Read single-cell counts into a genes x cells :class:`Counts`.

    Parameters
    ----------
    counts : array_like, scipy.sparse matrix, pandas.DataFrame or AnnData
        Arrays, sparse matrices and DataFrames are genes x cells (a DataFrame
        has genes as index and cell ids as columns; all-sparse columns stay
        sparse).  CSR and CSC matrices are used in place; other sparse formats
        become CSR.  An AnnData object is cells x genes, as usual; its ``.X``
        or ``.layers[layer]`` is read (transposed as a view, not copied).
    layer : str, optional
        AnnData only: the layer holding the counts (default ``.X``).
    gene_names : sequence of str, optional
        Gene names for an array or sparse matrix (rows); default
        ``gene0, gene1, ...``.

    Returns
    -------
    Counts

    Raises
    ------
    TypeError
        For an object that is not a matrix, or non-numeric (or boolean, or
        complex) values.
    ValueError
        For a matrix that is not 2-D or is empty, a missing AnnData layer,
        ``layer=`` without AnnData, wrong or duplicated gene names.  Values are
        checked separately (:meth:`Counts.check_values`).

    Examples
    --------
    >>> import pandas as pd
    >>> from fastdeconv.inputs.counts import as_counts
    >>> df = pd.DataFrame([[1, 0], [3, 5]], index=["CD3E", "MS4A1"], columns=["c1", "c2"])
    >>> c = as_counts(df)
    >>> c.genes.tolist(), c.cells.tolist(), c.library_sizes().tolist()
    (['CD3E', 'MS4A1'], ['c1', 'c2'], [4.0, 5.0])
    """
    import scipy.sparse as sp

    obs = None
    if is_anndata(counts):
        if layer is None:
            x = counts.X
            if x is None:
                raise ValueError(
                    "the AnnData object has no .X; pass layer= naming the counts layer"
                )
        elif layer not in counts.layers:
            raise ValueError(
                f"layer {layer!r} not found in the AnnData object; "
                f"layers: {list(counts.layers.keys())}"
            )
        else:
            x = counts.layers[layer]
        x = x.T  # cells x genes -> genes x cells (a CSR .X becomes a CSC view)
        genes, cells, obs = counts.var_names, counts.obs_names, counts.obs
    elif layer is not None:
        raise ValueError("layer= is only meaningful for AnnData input")
    elif isinstance(counts, pd.DataFrame):
        if len(counts.columns) > 0 and all(isinstance(d, pd.SparseDtype) for d in counts.dtypes):
            x = sp.csr_array(counts.sparse.to_coo())
        else:
            x = counts.to_numpy()
        genes, cells = counts.index, counts.columns
    elif sp.issparse(counts) or isinstance(counts, (list, tuple)) or hasattr(counts, "__array__"):
        x = counts
        genes, cells = None, None
    else:
        raise TypeError(
            "counts must be a genes x cells numpy array, scipy.sparse matrix or pandas "
            f"DataFrame, or an AnnData object (cells x genes); got {type(counts).__name__} "
            "(read files with fastdeconv.read_table or anndata.read_h5ad first)"
        )
    x = _numeric_matrix(x)
    n_genes, n_cells = x.shape
    if n_genes == 0 or n_cells == 0:
        raise ValueError(
            f"counts is empty ({n_genes} genes x {n_cells} cells); it must be genes x cells"
        )

    has_gene_names = genes is not None and not isinstance(genes, pd.RangeIndex)
    if gene_names is not None:
        if has_gene_names:
            raise ValueError("gene_names= is only for arrays without names; this input has its own")
        if len(gene_names) != n_genes:
            raise ValueError(
                f"gene_names has {len(gene_names)} names but counts has {n_genes} genes (rows)"
            )
        genes, has_gene_names = gene_names, True
    if genes is None:
        genes = [f"gene{i}" for i in range(n_genes)]
    genes = pd.Index(genes).astype(str)
    if genes.has_duplicates:
        dup = genes[genes.duplicated()].unique()[:5].tolist()
        raise ValueError(
            f"gene names must be unique; duplicated: {dup} (sum or drop duplicates first)"
        )
    has_cell_names = cells is not None and not isinstance(cells, pd.RangeIndex)
    cells = pd.Index([f"cell{i}" for i in range(n_cells)] if cells is None else cells)
    return Counts(
        x, genes, cells, has_gene_names=has_gene_names, has_cell_names=has_cell_names, obs=obs
    )


def _numeric_matrix(x):
    """A 2-D numeric matrix the kernels read: CSR/CSC or a dense array of a kernel dtype."""
    import scipy.sparse as sp

    if sp.issparse(x):
        if x.format not in ("csr", "csc"):
            x = x.tocsr()
        dtype = x.dtype
    else:
        x = np.asarray(x)
        dtype = x.dtype
        if dtype == object:
            try:
                x = x.astype(np.float64)
            except (TypeError, ValueError):
                raise TypeError("counts must be numeric; got non-numeric values") from None
            dtype = x.dtype
        if x.ndim != 2:
            raise ValueError(f"counts must be 2-D (genes x cells); got an array of shape {x.shape}")
    numeric = np.issubdtype(dtype, np.number) and not np.issubdtype(dtype, np.complexfloating)
    if dtype == bool or not numeric:
        raise TypeError(f"counts must be numeric; got dtype {dtype}")
    if dtype not in _KERNEL_DTYPES:
        x = x.astype(np.float64)
    return x


def as_labels(labels, counts, *, label_key=None):
    """One cell-type label per cell, aligned to the cells of ``counts``.

    Parameters
    ----------
    labels : sequence, pandas.Series, one-column DataFrame, str or None
        The cell type of every cell.  A Series (or one-column table) indexed
        by cell ids is aligned to the cells of ``counts`` by id; with a plain
        (range) index, or when ``counts`` has no cell ids of its own (an array),
        it is read in order.  With AnnData, a str names a column of ``.obs``.
    counts : Counts
        The counts the labels belong to (from :func:`as_counts`).
    label_key : str, optional
        AnnData only: the ``.obs`` column holding the labels (the same as
        passing its name as ``labels``).

    Returns
    -------
    ndarray of str or None
        One label per cell, in the order of ``counts.cells``; None when no
        labels were given.

    Raises
    ------
    TypeError
        For a str without AnnData counts.
    ValueError
        For labels of the wrong length or shape, ids that do not cover the
        cells, duplicated ids, missing labels, an unknown ``.obs`` column, or
        both ``labels`` and ``label_key``.

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> from fastdeconv.inputs.counts import as_counts, as_labels
    >>> c = as_counts(pd.DataFrame(np.ones((2, 3)), columns=["c1", "c2", "c3"]))
    >>> as_labels(pd.Series({"c3": "B", "c1": "T", "c2": "T"}), c).tolist()
    ['T', 'T', 'B']
    """
    keyword = "labels"
    if label_key is not None:
        if counts.obs is None:
            raise ValueError("label_key= is only meaningful for AnnData input; pass labels=")
        if labels is not None:
            raise ValueError("pass labels= or label_key=, not both")
        labels, keyword = label_key, "label_key"
    if labels is None:
        return None
    if isinstance(labels, str):
        if counts.obs is None:
            raise TypeError(
                "labels must give one cell type per cell (a str names an .obs column of "
                "AnnData counts only)"
            )
        if labels not in counts.obs.columns:
            raise ValueError(
                f"{keyword} {labels!r} is not a column of .obs; "
                f"columns: {list(counts.obs.columns)}"
            )
        labels = counts.obs[labels]
    if isinstance(labels, pd.DataFrame):
        if labels.shape[1] != 1:
            raise ValueError(
                f"labels must have a single column of cell types, got {labels.shape[1]} columns"
            )
        labels = labels.iloc[:, 0]
    if isinstance(labels, pd.Series) and not isinstance(labels.index, pd.RangeIndex):
        labels = _align(labels, counts)
    values = np.asarray(labels, dtype=object)
    if values.ndim == 2 and 1 in values.shape:
        values = values.ravel()  # a single row or column
    if values.ndim != 1:
        raise ValueError(f"labels must be 1-D (one cell type per cell), got shape {values.shape}")
    if values.shape[0] != counts.n_cells:
        raise ValueError(
            f"labels has {values.shape[0]} entries but counts has {counts.n_cells} cells "
            "(columns of a genes x cells matrix, rows of an AnnData); give one label per cell"
        )
    missing = pd.isna(values)
    if missing.any():
        raise ValueError(
            f"{int(missing.sum())} cells have a missing label; drop them or give them a label"
        )
    return values.astype(str)


def _align(labels, counts):
    """A Series indexed by cell id, reordered to the cells (ids compared as str)."""
    index = labels.index.astype(str)
    cells = counts.cells.astype(str)
    found = cells.isin(index)
    if found.all():
        if index.has_duplicates:
            dup = index[index.duplicated()].unique()[:5].tolist()
            raise ValueError(f"labels has duplicated cell ids in its index, e.g. {dup}")
        return pd.Series(labels.to_numpy(), index=index).reindex(cells)
    if found.any():
        lacking = cells[~found]
        raise ValueError(
            f"labels (a Series indexed by cell id) lack {lacking.size} cells of counts "
            f"(of {cells.size}, e.g. {lacking[:5].tolist()}): these cells have no label; "
            "labels must cover every cell of counts"
        )
    if not counts.has_cell_names:
        return labels  # counts has no ids to align with: read in order
    raise ValueError(
        "labels are indexed by ids that match no cell of counts "
        f"(e.g. {index[:3].tolist()} vs {cells[:3].tolist()}); index them by the cell ids of "
        "counts, or pass a list or array to give the labels in the order of the cells"
    )
