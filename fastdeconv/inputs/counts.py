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

:func:`check_raw` tells raw counts from normalised values (CPM/TPM, log1p of
either): the marker tests, the RNA contents of a signature and the sums of a
pseudo-bulk need raw counts, so normalised values are refused unless the user
says they are normalised (``normalized=True``, or ``"log1p"`` / ``"log2p1"``
for log values, which are un-logged).

Problems a user can fix with an option are :class:`fastdeconv.errors.InputProblem`:
the remedy is spelled as a keyword in Python and as a flag on the command line.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from fastdeconv.errors import Fix, InputProblem, literal
from fastdeconv.inputs.tables import MAX_VALUE
from fastdeconv.inputs._common import is_anndata

__all__ = ["Counts", "as_counts", "as_labels", "check_raw", "check_barcodes", "NORMALIZED"]

#: dtypes the Numba kernels read directly (others are converted to float64)
_KERNEL_DTYPES = (np.float64, np.float32, np.int64, np.int32)
#: Chunks of :meth:`Counts.group_sums`: a fixed number (the sums' rounding must not depend
#: on the number of threads), run in waves of ``n_jobs``.
SUM_CHUNKS = 16
#: What ``normalized=`` accepts: raw counts (False), normalised values on the
#: linear scale (True), or log values to un-log (ln(x + 1) or log2(x + 1)).
NORMALIZED = (False, True, "log1p", "log2p1")
#: Below this maximum, non-integer values look log-transformed (as for bulk tables).
_LOG_MAX = 50.0
#: Cells looked at to tell how normalised values were made (enough, and cheap).
_SCALE_SAMPLE_CELLS = 1000



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
    transposed : bool
        Whether the input was a cells x genes table read with ``transpose=True``.
    normalized : bool
        Whether the values are normalised, not raw counts (set by
        :func:`check_raw` when the user says so).

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

    def __init__(
        self, matrix, genes, cells, *, has_gene_names, has_cell_names, obs=None, transposed=False
    ):
        import scipy.sparse as sp

        self.matrix = matrix
        self.sparse = sp.issparse(matrix)
        self.n_genes, self.n_cells = matrix.shape
        self.genes = genes
        self.cells = cells
        self.has_gene_names = has_gene_names
        self.has_cell_names = has_cell_names
        self.obs = obs
        self.transposed = transposed
        self.normalized = False
        self.layers = None  # AnnData: the names of its layers
        self.layer = None  # AnnData: the layer read (None: .X)
        self._library = None
        self._integer = None

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

        Computed once, then kept (read-only).

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
        if self._library is None:
            lib = np.asarray(self.matrix.sum(axis=0), dtype=np.float64).ravel()
            lib.flags.writeable = False
            self._library = lib
        return self._library

    def check_values(self):
        """Raise a ValueError for NaN/infinite, negative or absurdly large counts.

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
        huge = v > MAX_VALUE
        if huge.any():
            raise ValueError(
                f"counts contain {int(huge.sum())} value(s) above {MAX_VALUE:g} (largest "
                f"{float(v.max()):.3g}): no count comes near that; the table is corrupt, "
                "correct those values"
            )

    def is_integer(self):
        """Whether every count is a whole number (raw counts rather than normalised values).

        Computed once (in blocks, without a full-size temporary), then kept.

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
        if self._integer is None:
            v = self.values()
            if not np.issubdtype(v.dtype, np.floating):
                self._integer = True
            else:  # in blocks: no full-size temporary
                step = max(1, (1 << 22) // max(1, int(np.prod(v.shape[1:]))))
                self._integer = not any(
                    np.any(block != np.round(block))
                    for block in (v[i : i + step] for i in range(0, v.shape[0], step))
                )
        return self._integer

    def group_sums(self, groups, n_groups, scale, n_jobs=None, advance=None):
        """Per-gene, per-group sums in one pass over the stored counts (no copy of the data).

        The rows the matrix stores contiguously (genes or cells) are split into
        :data:`SUM_CHUNKS` chunks of similar work (non-zeros for sparse, rows for
        dense), one ``nogil`` kernel call per chunk in
        :func:`fastdeconv._parallel.thread_map`, run in waves of ``n_jobs``; the
        partial sums are added in chunk order, so the result does not depend on
        ``n_jobs``.

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
        advance : callable, optional
            Called with the number of cells (or their share of the work) done after
            each wave of chunks: a progress bar's ``update``.

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

        n_chunks = max(1, min(SUM_CHUNKS, n_rows))
        # chunk boundaries with equal work; their number does not depend on n_jobs
        bounds = np.searchsorted(work, np.linspace(0.0, work[-1], n_chunks + 1)).tolist()
        bounds[0], bounds[-1] = 0, n_rows
        spans = [(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a] or [(0, n_rows)]
        wave = resolve_n_jobs(n_jobs)
        acc = None
        reported = 0
        for w0 in range(0, len(spans), wave):  # waves: at most n_jobs partial sums alive
            batch = spans[w0:w0 + wave]
            for part in thread_map(run, batch, n_jobs=len(batch), blas=False):
                if acc is None:
                    acc = part[0]
                else:
                    acc += part[0]
            if advance is not None:  # in cells, whichever way the matrix is stored
                done = int(round(batch[-1][1] * self.n_cells / max(n_rows, 1)))
                advance(done - reported)
                reported = done
        return {name: np.ascontiguousarray(acc[:, :, j]) for j, name in enumerate(_mk.SUM_NAMES)}


# ------------------------------------------------------------ raw or normalised ---
_LOG_WORDS = {"log1p": "ln(x + 1)", "log2p1": "log2(x + 1)"}
_UNLOG = {"log1p": np.expm1, "log2p1": lambda v: np.exp2(v) - 1.0}


def _equal_totals(totals):
    """Every total the same (to 0.1 %): the mark of CPM/TPM and of equal-depth down-sampling."""
    top = float(np.max(totals)) if totals.size else 0.0
    return totals.size >= 3 and top > 0 and float(np.min(totals)) >= top * (1 - 1e-3)


def _whole(values):
    """Nearly all non-zero values within 0.01 of a whole number (tolerates rounded text)."""
    v = values[values != 0]
    return v.size > 0 and np.mean(np.abs(v - np.round(v)) <= 0.01) >= 0.99


def _first_cells(c):
    """Genes x (at most ``_SCALE_SAMPLE_CELLS``) cells as a float64 array or CSC matrix."""
    import scipy.sparse as sp

    m = min(c.n_cells, _SCALE_SAMPLE_CELLS)
    if c.sparse:
        return sp.csc_array(c.matrix[:, :m], dtype=np.float64)
    return np.asarray(c.matrix[:, :m], dtype=np.float64)


def _apply(x, func):
    """``func`` on the stored values of a float64 matrix, as a new one (``func(0) == 0``)."""
    import scipy.sparse as sp

    if sp.issparse(x):
        x = x.copy()
        x.data = func(x.data)
        return x
    return func(x)


def _totals(x):
    return np.asarray(x.sum(axis=0), dtype=np.float64).ravel()


def _scale_of(c):
    """How the values of ``c`` look: None for raw counts, else (what, remedy, certain, whole).

    ``what`` describes the values for a message, ``remedy`` is the value of
    ``normalized=`` that reads them, ``certain`` tells whether a log base was
    recognised (not only guessed from a small maximum), ``whole`` whether
    un-logging gives whole numbers (the raw counts again).
    """
    lib = c.library_sizes()
    if c.is_integer():
        if not _equal_totals(lib):
            return None
        what = (f"normalised: every cell sums to the same total ({lib.max():.6g}), as after "
                "CPM or down-sampling to equal depth")
        return what, True, True, False
    if _equal_totals(lib):
        what = (f"normalised: not whole numbers, and every cell sums to the same total "
                f"({lib.max():.6g}), as CPM/TPM do")
        return what, True, True, False
    values = c.values()
    top = float(values.max()) if values.size else 0.0
    if top > _LOG_MAX:
        example = float(values[values != np.round(values)][0])
        return f"normalised: not whole numbers (e.g. {example:.6g})", True, True, False
    sample = _first_cells(c)
    for name, unlog in _UNLOG.items():
        linear = _apply(sample, unlog)
        if _whole(linear.data if c.sparse else linear):
            what = f"log-transformed: {_LOG_WORDS[name]} of whole numbers (maximum {top:.3g})"
            return what, name, True, True
        totals = _totals(linear)
        if _equal_totals(totals):
            what = (f"log-transformed normalised values: {_LOG_WORDS[name]} of values whose "
                    f"cells all sum to {totals.max():.6g} (maximum {top:.3g})")
            return what, name, True, False
    what = f"log-transformed: not whole numbers and all below {_LOG_MAX:g} (maximum {top:.3g})"
    return what, "log1p", False, False


def check_raw(counts, normalized=False, *, needs, if_normalized):
    """Refuse normalised values given as raw counts; read normalised ones when told so.

    Raw counts are whole numbers whose cells have different totals (library
    sizes).  Values that are not whole numbers, or whose cells all sum to the
    same total (CPM, TPM, down-sampled to equal depth), or that look
    log-transformed (a small maximum; ``ln(x + 1)`` or ``log2(x + 1)`` of whole
    numbers or of equal-total values, recognised by un-logging the first
    cells) are refused unless ``normalized`` says what they are.

    Parameters
    ----------
    counts : Counts
        From :func:`as_counts`, values already checked
        (:meth:`Counts.check_values`).
    normalized : {False, True, "log1p", "log2p1"}, default False
        What the values are: raw counts (False: anything else is refused);
        normalised values on the linear scale (True: taken as they are,
        refused only when recognisably log-transformed); or ``ln(x + 1)``
        (``"log1p"``, as scanpy's and Seurat's log-normalisation) or
        ``log2(x + 1)`` (``"log2p1"``) values, which are un-logged.  Un-logged
        values that are whole numbers are the raw counts again; otherwise they
        are normalised values.
    needs : str
        What needs raw counts, for the message ("the marker tests need raw counts").
    if_normalized : str
        What the result lacks when normalised values are used, for the message
        ("the RNA contents are then unknown").

    Returns
    -------
    Counts
        ``counts`` itself, or the un-logged values; ``.normalized`` tells
        whether they are normalised values rather than raw counts.

    Raises
    ------
    fastdeconv.errors.InputProblem
        Normalised values without ``normalized``, log values with
        ``normalized=True``, or values too large to be log values with
        ``normalized="log1p"``; the message names the remedy.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.inputs.counts import as_counts, check_raw
    >>> raw = np.array([[3, 0, 5], [1, 2, 9]])
    >>> check_raw(as_counts(raw), needs="x", if_normalized="y").normalized
    False
    >>> try:
    ...     check_raw(as_counts(np.log1p(raw)), needs="sums need raw counts",
    ...               if_normalized="they are then not counts")
    ... except ValueError as err:
    ...     print(str(err)[:72])
    counts look log-transformed: ln(x + 1) of whole numbers (maximum 2.3), n
    >>> check_raw(as_counts(np.log1p(raw)), "log1p", needs="x",
    ...           if_normalized="y").matrix.round(6).tolist()
    [[3.0, 0.0, 5.0], [1.0, 2.0, 9.0]]
    """
    if isinstance(normalized, np.bool_):
        normalized = bool(normalized)
    if not (isinstance(normalized, bool) or normalized in ("log1p", "log2p1")):
        raise ValueError(
            f"normalized must be False, True, 'log1p' or 'log2p1'; got {normalized!r}"
        )
    if normalized is False:
        found = _scale_of(counts)
        if found is None:
            return counts
        what, remedy, _, whole = found
        layer_hint, fixes = "", [Fix("normalized", remedy)]
        if counts.layers and "counts" in counts.layers and counts.layer != "counts":
            layer_hint, fixes = " (this AnnData has a layer 'counts': pass {1})", [
                *fixes, Fix("layer", "counts")]
        if whole:
            use = "to un-log them: they are then the raw counts again"
        elif remedy in _UNLOG:
            use = f"to un-log them and use them as normalised values ({literal(if_normalized)})"
        else:
            use = f"to use them as normalised values ({literal(if_normalized)})"
        raise InputProblem(
            f"counts look {literal(what)}, not raw counts; {literal(needs)}: pass the raw "
            f"counts{layer_hint}, or {{0}} {use}",
            *fixes,
        )
    if normalized is True:
        found = _scale_of(counts)
        if found is not None and found[1] in _UNLOG and found[2]:
            raise InputProblem(
                f"counts look {literal(found[0])}, not normalised values on the linear scale; "
                "pass {0} to un-log them, or the raw counts",
                Fix("normalized", found[1]),
            )
        counts.normalized = True
        return counts
    return _unlogged(counts, normalized)


def _unlogged(c, scale):
    """``c`` with its log values un-logged (a new matrix; the names are kept)."""
    values = c.values()
    top = float(values.max()) if values.size else 0.0
    if top > _LOG_MAX:
        raise InputProblem(
            f"{{0}} un-logs {_LOG_WORDS[scale]} values, but the largest value is {top:.6g} and "
            f"log values stay below {_LOG_MAX:g}: these are not log values; leave {{0}} out "
            "for raw counts, or pass {1} for normalised values on the linear scale",
            Fix("normalized", scale),
            Fix("normalized", True),
        )
    linear = c.matrix.astype(np.float64)  # one copy, un-logged in place
    stored = linear.data if c.sparse else linear
    if scale == "log1p":
        np.expm1(stored, out=stored)
    else:
        np.exp2(stored, out=stored)
        stored -= 1.0
    whole = _whole(stored)
    if whole:  # the log of raw counts: the counts again
        np.round(stored, out=stored)
    out = Counts(
        linear, c.genes, c.cells, has_gene_names=c.has_gene_names,
        has_cell_names=c.has_cell_names, obs=c.obs, transposed=c.transposed,
    )
    out.layers, out.layer, out.normalized = c.layers, c.layer, not whole
    return out


def as_counts(counts, *, layer=None, gene_names=None, transpose=False, duplicates="raise"):
    """Read single-cell counts into a genes x cells :class:`Counts`.

    Parameters
    ----------
    counts : array_like, scipy.sparse matrix, pandas.DataFrame, AnnData or Counts
        A :class:`Counts` read before is returned as it is.  Arrays, sparse
        matrices and DataFrames are genes x cells (a DataFrame
        has genes as index and cell ids as columns; all-sparse columns stay
        sparse).  CSR and CSC matrices are used in place; other sparse formats
        become CSR.  An AnnData object is cells x genes, as usual; its ``.X``
        or ``.layers[layer]`` is read (transposed as a view, not copied).
    layer : str, optional
        AnnData only: the layer holding the counts (default ``.X``).
    gene_names : sequence of str, optional
        Gene names for an array or sparse matrix (rows); default
        ``gene0, gene1, ...``.
    transpose : bool, default False
        The array, sparse matrix or DataFrame is cells x genes (cells as rows):
        read it transposed, as a view (not for AnnData, which is cells x genes
        by definition).
    duplicates : {"raise", "sum"}, default "raise"
        Several rows with the same gene name: raise a ValueError naming them,
        or add their counts up (in the position of the first occurrence).

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
        checked separately (:meth:`Counts.check_values`, :func:`check_raw`).

    Examples
    --------
    >>> import pandas as pd
    >>> from fastdeconv.inputs.counts import as_counts
    >>> df = pd.DataFrame([[1, 0], [3, 5]], index=["CD3E", "MS4A1"], columns=["c1", "c2"])
    >>> c = as_counts(df)
    >>> c.genes.tolist(), c.cells.tolist(), c.library_sizes().tolist()
    (['CD3E', 'MS4A1'], ['c1', 'c2'], [4.0, 5.0])
    >>> as_counts(df.T, transpose=True).genes.tolist()
    ['CD3E', 'MS4A1']
    >>> as_counts(df.set_axis(["CD3E", "CD3E"]), duplicates="sum").library_sizes().tolist()
    [4.0, 5.0]
    """
    import scipy.sparse as sp

    if isinstance(counts, Counts):  # read already (a pipeline reading once for several uses)
        return counts
    if duplicates not in ("raise", "sum"):
        raise ValueError(f"duplicates must be 'raise' or 'sum', got {duplicates!r}")
    if not isinstance(transpose, (bool, np.bool_)):
        raise TypeError(f"transpose must be True or False, got {transpose!r}")
    obs = None
    if is_anndata(counts):
        if transpose:
            raise ValueError(
                "transpose= is for genes x cells tables and arrays; an AnnData object is "
                "cells x genes by definition and is read as such"
            )
        layers = list(counts.layers.keys())
        if layer is None:
            x = counts.X
            if x is None:
                if layers:
                    raise InputProblem(
                        "the AnnData object has no .X; pass {0} naming the layer with the raw "
                        f"counts (layers: {literal(layers)})",
                        Fix("layer", "counts" if "counts" in layers else layers[0]),
                    )
                raise ValueError("the AnnData object has no .X and no layers: it holds no counts")
        elif layer not in counts.layers:
            if layers:
                raise InputProblem(
                    f"layer {literal(repr(layer))} not found in the AnnData object; its layers are "
                    f"{literal(layers)}: pass {{0}} or another of them",
                    Fix("layer", "counts" if "counts" in layers else layers[0]),
                )
            raise ValueError(
                f"layer {layer!r} not found: the AnnData object has no layers (its counts are "
                "in .X, read without a layer)"
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
    if transpose:  # a view: CSR <-> CSC, C <-> F order
        x, genes, cells = x.T, cells, genes
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
        if duplicates == "raise":
            dup = genes[genes.duplicated()].unique()
            raise InputProblem(
                f"counts have {dup.size} duplicated gene name(s) (first: "
                f"{literal(dup[:5].tolist())}); pass {{0}} to add their counts up, or remove the "
                "duplicates",
                Fix("duplicates", "sum"),
            )
        x, genes = _sum_duplicates(x, genes)
    has_cell_names = cells is not None and not isinstance(cells, pd.RangeIndex)
    cells = pd.Index([f"cell{i}" for i in range(n_cells)] if cells is None else cells)
    c = Counts(
        x, genes, cells, has_gene_names=has_gene_names, has_cell_names=has_cell_names, obs=obs,
        transposed=bool(transpose),
    )
    if obs is not None:
        c.layers, c.layer = list(counts.layers.keys()), layer
    return c


def _sum_duplicates(x, genes):
    """Add up the rows (genes) sharing a name, in the order of first occurrence."""
    import scipy.sparse as sp

    codes, unique = pd.factorize(genes)
    n = unique.size
    dtype = x.dtype if np.issubdtype(x.dtype, np.integer) else np.float64
    # unique genes x genes indicator: one sparse product, no dense genes x genes matrix
    merge = sp.csr_array(
        (np.ones(codes.size, dtype=dtype), (codes, np.arange(codes.size))), shape=(n, codes.size)
    )
    summed = merge @ x
    if sp.issparse(summed):
        summed = sp.csr_array(summed)
    else:
        summed = np.asarray(summed)
        if summed.dtype not in _KERNEL_DTYPES:
            summed = summed.astype(np.float64)
    return summed, pd.Index(unique).astype(str)


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


def as_labels(labels, counts, *, label_key=None, keywords=None):
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
    keywords : tuple of str, optional
        The caller's names for ``labels`` and ``label_key`` (e.g.
        ``("states", "state_key")``), used in the error messages instead.

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
    if keywords is not None:
        try:
            return as_labels(labels, counts, label_key=label_key)
        except InputProblem as exc:
            raise exc.renamed({"labels": keywords[0], "label_key": keywords[1]}) from None
        except ValueError as exc:
            raise ValueError(str(exc).replace("label_key", keywords[1]).replace(
                "labels", keywords[0])) from None
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
            raise InputProblem(
                f"{{0}} is not a column of .obs; its columns are "
                f"{literal(list(counts.obs.columns))}",
                Fix(keyword, labels),
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
        if values.shape[0] == counts.n_genes and counts.obs is None:
            raise _transposed(
                f"labels has {values.shape[0]} entries, as many as counts has rows (genes), "
                f"not columns (cells: {counts.n_cells})",
                counts,
            )
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
    if counts.obs is None and counts.has_gene_names:
        in_rows = int(counts.genes.isin(index).sum())
        if in_rows >= max(1, 0.5 * min(index.size, counts.n_genes)):
            raise _transposed(
                f"the labels' cell ids match the rows of counts ({in_rows} of "
                f"{counts.n_genes}, e.g. {literal(counts.genes[:2].tolist())}), not its columns",
                counts,
            )
    raise ValueError(
        "the labels' cell ids match no cell of counts "
        f"(e.g. {index[:3].tolist()} vs {cells[:3].tolist()}); label the cells by the ids "
        "counts gives them (its column names), or give the labels in the order of the cells "
        "as a plain list"
    )


#: A cell barcode inside a cell id: a run of 10 or more A/C/G/T.
_BARCODE = re.compile(r"[ACGT]{10,}")


def _looks_like_barcodes(names):
    """Share of (the first 2000 of) ``names`` holding a cell barcode."""
    sample = [str(n) for n in names[:2000]]
    return sum(bool(_BARCODE.search(n)) for n in sample) / max(len(sample), 1)


def check_barcodes(counts):
    """Refuse counts whose rows, not columns, are named by cell barcodes (a transposed table).

    Without labels nothing relates the table to its cells; cell barcodes
    (``AAACCTGAGCGTTGCC-1``, ``L5_TCCTTCTGTACTCCGG``) in the row names, and
    not in the column names, give it away.

    Parameters
    ----------
    counts : Counts
        From :func:`as_counts`.

    Raises
    ------
    fastdeconv.errors.InputProblem
        Naming ``transpose=True``.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from fastdeconv.inputs.counts import as_counts, check_barcodes
    >>> cells = ["AAACCTGAGCGTTGCC-1", "AAACCTGCAGTAAGCG-1", "AAACGGGTCTGCAAGT-1"]
    >>> table = pd.DataFrame(np.ones((3, 2), int), index=cells, columns=["CD3E", "MS4A1"])
    >>> try:
    ...     check_barcodes(as_counts(table))
    ... except ValueError as err:
    ...     print(str(err)[-48:])
    read the table as cells x genes, or transpose it
    """
    if counts.obs is not None or not (counts.has_gene_names and counts.has_cell_names):
        return
    rows, columns = _looks_like_barcodes(counts.genes), _looks_like_barcodes(counts.cells)
    if rows >= 0.5 and columns < 0.05:
        raise _transposed(
            f"the row names of counts look like cell barcodes (e.g. "
            f"{literal(counts.genes[:2].tolist())}) and its column names do not",
            counts,
        )


def _transposed(evidence, counts):
    """The error for counts given cells x genes (or transposed once too often)."""
    if counts.transposed:
        return InputProblem(
            f"{evidence}: with {{0}} counts are read as cells x genes, but this table is "
            "genes x cells already; leave {0} out",
            Fix("transpose"),
        )
    return InputProblem(
        f"{evidence}: counts look transposed (cells as rows); counts must be genes x cells: "
        "pass {0} to read the table as cells x genes, or transpose it",
        Fix("transpose"),
    )
