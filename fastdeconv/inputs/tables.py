"""Expression tables: coercion, scale, gene names, gene matching and input checks.

Everything a user can hand to :func:`fastdeconv.deconvolve` -- a pandas
DataFrame, a NumPy array with a gene list, an AnnData object or a file path --
is turned here into one shape: a ``float64`` :class:`pandas.DataFrame` with
genes as the index and samples (or cell types) as columns.  The checks that
protect the solvers from silently wrong answers (NaN/inf, negative values,
log-scale data, duplicated gene names, too few shared genes, a nearly
collinear signature) live here too, so every pipeline applies them the same
way.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from fastdeconv.inputs._common import dense as _dense
from fastdeconv.inputs._common import is_anndata as _is_anndata

__all__ = [
    "read_expression",
    "unlog",
    "SCALES",
    "as_expression_frame",
    "check_expression",
    "looks_log_scale",
    "harmonize_genes",
    "match_genes",
    "GeneMatch",
    "collinear_types",
    "warn_if_collinear",
]

_ORIENTS = ("genes_by_columns", "columns_by_genes")
_ENSEMBL_VERSION = re.compile(r"^(ENS[A-Z]*\d{6,})\.\d+$", re.IGNORECASE)
#: Largest value below which non-integer data are taken to be log-transformed
#: (the heuristic of immunedeconv and quanTIseq).
LOG_MAX_THRESHOLD = 50.0


def as_expression_frame(
    obj, *, name, genes=None, columns=None, layer=None, orient="genes_by_columns"
):
    """Turn a DataFrame, array, AnnData object or file path into a genes x columns table.

    Parameters
    ----------
    obj : pandas.DataFrame, pandas.Series, numpy.ndarray, scipy.sparse matrix, anndata.AnnData, str or os.PathLike
        The expression data.  DataFrames, arrays and files are read as genes x
        columns (samples or cell types) unless ``orient="columns_by_genes"``.
        AnnData objects are always observations x genes (``obs_names`` become
        the columns, ``var_names`` the genes).  A path is read with
        :func:`fastdeconv.io.read_table` (``.tsv``/``.csv``, optionally
        ``.gz``) or, for ``.h5ad``, with :func:`anndata.read_h5ad`.  A 1-D array
        or Series is one column.
    name : str
        What the data are (``"bulk"``, ``"signature"``); used in messages.
    genes : sequence of str, optional
        Gene names for array input (one per gene).  Without them the genes are
        named ``"0", "1", ...`` and can only be matched by position against
        another unnamed array of the same length.
    columns : sequence of str, optional
        Column names (samples or cell types) for array input, or to rename
        the columns of other input.
    layer : str, optional
        For AnnData input: use ``obj.layers[layer]`` instead of ``obj.X``.
    orient : {"genes_by_columns", "columns_by_genes"}, default "genes_by_columns"
        Orientation of DataFrame, array and table-file input.

    Returns
    -------
    pandas.DataFrame
        ``float64`` values, gene names (as strings) in the index.

    Raises
    ------
    TypeError
        If ``obj`` is of an unsupported type or holds non-numeric columns.
    ValueError
        If ``genes``/``columns`` do not fit the shape, ``layer`` is missing or
        given for non-AnnData input, or ``orient`` is unknown.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.inputs import as_expression_frame
    >>> df = as_expression_frame(np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]), name="bulk",
    ...                          genes=["A", "B", "C"], columns=["s1", "s2"])
    >>> df.shape, list(df.index)
    ((3, 2), ['A', 'B', 'C'])
    """
    if orient not in _ORIENTS:
        raise ValueError(f"orient must be one of {_ORIENTS}, got {orient!r}")
    if layer is not None and not _is_anndata(obj):
        raise ValueError(
            f"{name}: layer={layer!r} applies only to AnnData input, got {type(obj).__name__}"
        )
    transpose = orient == "columns_by_genes"
    genes_applied = False
    if isinstance(obj, (str, os.PathLike)):
        path = os.fspath(obj)
        if path.lower().endswith(".h5ad"):
            if not os.path.exists(path):
                raise FileNotFoundError(f"{name}: file not found: {path!r}")
            import anndata

            return as_expression_frame(
                anndata.read_h5ad(path), name=name, genes=genes, columns=columns, layer=layer
            )
        from fastdeconv.io import read_table

        obj = read_table(path)
    if _is_anndata(obj):
        if layer is None:
            values = obj.X
        else:
            if layer not in obj.layers:
                raise ValueError(
                    f"{name}: AnnData has no layer {layer!r}; available layers: "
                    f"{sorted(obj.layers.keys()) or 'none'} (layer=None uses .X)"
                )
            values = obj.layers[layer]
        if values is None:
            raise ValueError(f"{name}: AnnData .X is empty; pass layer= to use a layer")
        df = pd.DataFrame(
            _dense(values).T, index=list(map(str, obj.var_names)), columns=list(obj.obs_names)
        )
        transpose = False
    elif isinstance(obj, pd.Series):
        df = obj.to_frame(name=obj.name if obj.name is not None else 0)
    elif isinstance(obj, pd.DataFrame):
        df = obj
    elif isinstance(obj, np.ndarray) or hasattr(obj, "toarray") or isinstance(obj, (list, tuple)):
        arr = _dense(obj)
        if arr.ndim == 1:
            arr = arr[:, None]
            transpose = False
        if arr.ndim != 2:
            raise ValueError(f"{name}: expected a 1-D or 2-D array, got shape {arr.shape}")
        if transpose:
            arr = arr.T
            transpose = False
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise TypeError(f"{name}: array must be numeric, got dtype {arr.dtype}")
        if genes is not None and len(genes) != arr.shape[0]:
            raise ValueError(
                f"{name}: {len(genes)} gene names given for {arr.shape[0]} genes (rows)"
            )
        df = pd.DataFrame(arr, index=genes)
        genes_applied = True
    else:
        raise TypeError(
            f"{name}: unsupported input type {type(obj).__name__}; pass a pandas DataFrame "
            "(genes x columns), a NumPy array with genes=, an AnnData object or a file path"
        )
    if transpose:
        df = df.T
    if genes is not None and not genes_applied:
        if len(genes) != df.shape[0]:
            raise ValueError(f"{name}: {len(genes)} gene names given for {df.shape[0]} genes")
        df = df.set_axis(list(genes), axis=0)
    if columns is not None:
        if len(columns) != df.shape[1]:
            raise ValueError(
                f"{name}: {len(columns)} column names given for {df.shape[1]} columns"
            )
        df = df.set_axis(list(columns), axis=1)
    bad = [c for c, dtype in df.dtypes.items() if not pd.api.types.is_numeric_dtype(dtype)]
    if bad:
        raise TypeError(
            f"{name}: non-numeric columns {list(map(str, bad[:5]))}; pass genes as the index "
            "(e.g. df.set_index('gene')) and only numeric columns"
        )
    if (df.dtypes == np.float64).all():
        # no copy of a float64 table: a shallow copy, so the caller's frame keeps its index
        df = df.copy(deep=False)
    else:
        df = df.astype(np.float64)
    df.index = pd.Index([str(g) for g in df.index], name=df.index.name)
    return df


def looks_log_scale(values):
    """Tell whether expression values look log-transformed.

    The heuristic of immunedeconv and quanTIseq: linear-scale expression
    (counts, TPM, microarray intensities) reaches values well above 50,
    whereas log2 values rarely exceed ~20.  Data whose maximum is below
    ``LOG_MAX_THRESHOLD`` (50) *and* that hold non-integer values are taken to
    be log-transformed (small integer tables are plausible raw counts).

    Parameters
    ----------
    values : array_like
        Finite expression values.

    Returns
    -------
    bool

    References
    ----------
    .. [1] Sturm G. et al. (2019) Comprehensive evaluation of transcriptome-based
       cell-type quantification methods for immuno-oncology. Bioinformatics
       35(14):i436-i445. doi:10.1093/bioinformatics/btz363
    .. [2] Finotello F. et al. (2019) Molecular and pharmacological modulators of
       the tumor immune contexture revealed by deconvolution of RNA-seq data.
       Genome Med 11:34. doi:10.1186/s13073-019-0638-6

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.inputs import looks_log_scale
    >>> looks_log_scale(np.log2([1.5, 100.0, 3000.0]))
    True
    >>> looks_log_scale([1.5, 100.0, 3000.0])
    False
    """
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return False
    return bool(np.max(v) < LOG_MAX_THRESHOLD and np.any(v != np.round(v)))


def _first_labels(mask, df, limit=5):
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    genes = [str(df.index[i]) for i in rows[:limit]]
    samples = [str(df.columns[j]) for j in cols[:limit]]
    return genes, samples, len(rows), len(cols)


def check_expression(df, *, name, allow_log=False):
    """Check that an expression table is usable on a linear scale.

    Parameters
    ----------
    df : pandas.DataFrame
        Genes x columns, as returned by :func:`as_expression_frame`.
    name : str
        What the data are (``"bulk"``, ``"signature"``); used in messages.
    allow_log : bool, default False
        Skip the log-scale heuristic (assert that the data are linear).

    Raises
    ------
    ValueError
        If the table is empty, holds NaN or infinite values (the message
        names the first offending genes and samples), negative values, or
        looks log-transformed (see :func:`looks_log_scale`; the message says
        how to proceed).

    Examples
    --------
    >>> import pandas as pd
    >>> from fastdeconv.inputs import check_expression
    >>> check_expression(pd.DataFrame({"s1": [10.0, 200.0]}, index=["A", "B"]), name="bulk")
    >>> try:
    ...     check_expression(pd.DataFrame({"s1": [-1.0, 200.0]}, index=["A", "B"]), name="bulk")
    ... except ValueError as err:
    ...     print(str(err)[:60])
    bulk has 1 negative value(s) (genes ['A'], columns ['s1']);
    """
    if df.shape[0] == 0 or df.shape[1] == 0:
        raise ValueError(f"{name} is empty ({df.shape[0]} genes x {df.shape[1]} columns)")
    values = df.to_numpy(dtype=np.float64)
    finite = np.isfinite(values)
    if not finite.all():
        bad = ~finite
        genes, samples, n_g, n_s = _first_labels(bad, df)
        kind = "NaN" if np.isnan(values[bad]).any() else "infinite"
        if np.isnan(values[bad]).any() and np.isinf(values[bad]).any():
            kind = "NaN and infinite"
        raise ValueError(
            f"{name} has {int(bad.sum())} {kind} value(s) in {n_g} gene(s) and {n_s} column(s); "
            f"first genes {genes}, first columns {samples}. Remove or impute these genes "
            "(e.g. df.dropna()) before deconvolution"
        )
    negative = values < 0
    if negative.any():
        genes, samples, _, _ = _first_labels(negative, df)
        raise ValueError(
            f"{name} has {int(negative.sum())} negative value(s) (genes {genes}, columns "
            f"{samples}); deconvolution needs non-negative expression on a linear scale "
            "(not log-ratios, z-scores or centred data)"
        )
    if not allow_log and looks_log_scale(values):
        raise ValueError(
            f"{name} looks log-transformed: its maximum is {values.max():.3g} (< "
            f"{LOG_MAX_THRESHOLD:g}) with non-integer values. Deconvolution works on the linear "
            "scale: un-log it (2**x for log2 data, e.g. scale='log2' in fastdeconv.deconvolve), "
            "or, if the data really are linear, assert it (scale='linear' in deconvolve, "
            "allow_log=True here)"
        )


def _normalise_name(gene, case_insensitive, strip_version):
    if strip_version:
        m = _ENSEMBL_VERSION.match(gene)
        if m:
            gene = m.group(1)
    if case_insensitive:
        gene = gene.upper()
    return gene


def harmonize_genes(df, *, name, case_insensitive=False, strip_version=False, duplicates="raise"):
    """Normalise gene names and resolve duplicated names.

    Parameters
    ----------
    df : pandas.DataFrame
        Genes x columns.
    name : str
        What the data are; used in messages.
    case_insensitive : bool, default False
        Upper-case every gene name, so ``Cd4`` matches ``CD4``.
    strip_version : bool, default False
        Drop Ensembl version suffixes (``ENSG00000010610.12`` -> ``ENSG00000010610``).
    duplicates : {"raise", "sum"}, default "raise"
        What to do when several rows share a gene name (after normalising):
        raise a ValueError naming them, or add the rows up (linear scale, so
        the sum is the expression of the gene).  One row is never kept at
        random.

    Returns
    -------
    pandas.DataFrame
        The table with normalised, unique gene names (row order kept, summed
        duplicates in the position of their first occurrence).

    Raises
    ------
    ValueError
        For duplicated names with ``duplicates="raise"`` or an unknown option.

    Examples
    --------
    >>> import pandas as pd
    >>> from fastdeconv.inputs import harmonize_genes
    >>> df = pd.DataFrame({"s1": [1.0, 2.0, 4.0]}, index=["ENSG01234567.3", "cd4", "CD4"])
    >>> harmonize_genes(df, name="bulk", case_insensitive=True, strip_version=True,
    ...                 duplicates="sum")["s1"].to_dict()
    {'ENSG01234567': 1.0, 'CD4': 6.0}
    """
    if duplicates not in ("raise", "sum"):
        raise ValueError(f"duplicates must be 'raise' or 'sum', got {duplicates!r}")
    if case_insensitive or strip_version:
        new = [_normalise_name(str(g), case_insensitive, strip_version) for g in df.index]
        df = df.set_axis(pd.Index(new, name=df.index.name), axis=0)
    dup = df.index.duplicated(keep=False)
    if dup.any():
        names = list(dict.fromkeys(df.index[dup]))
        if duplicates == "raise":
            raise ValueError(
                f"{name} has {len(names)} duplicated gene name(s) (first: {names[:5]}); pass "
                "duplicates='sum' to add their rows up, or remove the duplicates yourself"
            )
        df = df.groupby(level=0, sort=False).sum()
    return df


@dataclass
class GeneMatch:
    """How the genes of a bulk and a signature were matched.

    Attributes
    ----------
    genes : list of str
        The common genes, in signature order.
    n_signature : int
        Genes in the signature.
    n_bulk : int
        Genes in the bulk.
    missing : list of str
        Signature genes absent from the bulk.

    Examples
    --------
    >>> from fastdeconv.inputs import GeneMatch
    >>> match = GeneMatch(genes=["CD3E", "MS4A1"], n_signature=3, n_bulk=20000, missing=["CD8A"])
    >>> match.n_matched
    2
    >>> print(match)
    2 of 3 signature genes found in the bulk; missing 1: CD8A
    """

    genes: list
    n_signature: int
    n_bulk: int
    missing: list = field(default_factory=list)

    @property
    def n_matched(self):
        """Number of common genes."""
        return len(self.genes)

    def __str__(self):
        head = ", ".join(self.missing[:10]) + (", ..." if len(self.missing) > 10 else "")
        text = f"{self.n_matched} of {self.n_signature} signature genes found in the bulk"
        if self.missing:
            text += f"; missing {len(self.missing)}: {head}"
        return text


def match_genes(bulk, signature, *, min_genes=None):
    """Restrict a bulk and a signature to their common genes.

    Parameters
    ----------
    bulk : pandas.DataFrame
        Genes x samples with unique gene names.
    signature : pandas.DataFrame
        Genes x cell types with unique gene names.
    min_genes : int, optional
        Fewest common genes accepted.  Default: ``max(2 k, 50)`` for ``k`` cell
        types, and at least half of the signature's genes must be present.

    Returns
    -------
    bulk : pandas.DataFrame
        Common genes x samples.
    signature : pandas.DataFrame
        Common genes x cell types.
    match : GeneMatch
        The report: how many matched and which signature genes are missing.

    Raises
    ------
    ValueError
        If the inputs share no gene, or too few genes (the message says how
        many are needed and how to change the requirement).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from fastdeconv.inputs import match_genes
    >>> genes = [f"g{i}" for i in range(60)]
    >>> sig = pd.DataFrame(np.ones((60, 2)), index=genes, columns=["T", "B"])
    >>> bulk = pd.DataFrame(np.ones((59, 1)), index=genes[1:], columns=["s1"])
    >>> _, _, match = match_genes(bulk, sig)
    >>> print(match)
    59 of 60 signature genes found in the bulk; missing 1: g0
    """
    common = signature.index[signature.index.isin(bulk.index)]
    missing = [str(g) for g in signature.index[~signature.index.isin(bulk.index)]]
    match = GeneMatch(
        genes=list(common), n_signature=signature.shape[0], n_bulk=bulk.shape[0], missing=missing
    )
    k = signature.shape[1]
    if len(common) == 0:
        raise ValueError(
            f"bulk and signature share no gene name (bulk e.g. {list(bulk.index[:3])}, "
            f"signature e.g. {list(signature.index[:3])}). Check that both use the same gene "
            "identifiers; try case_insensitive=True or strip_version=True, and pass gene lists "
            "(bulk_genes=, signature_genes=) for array input"
        )
    if min_genes is None:
        needed = max(2 * k, 50)
        if len(common) < needed or 2 * len(common) < signature.shape[0]:
            raise ValueError(
                f"too few common genes: {match}. The default requires at least max(2k, 50) = "
                f"{needed} genes for k = {k} cell types and at least half of the signature's "
                f"{signature.shape[0]} genes. Check the gene identifiers (case_insensitive=, "
                "strip_version=) or lower the requirement with min_genes="
            )
    elif len(common) < min_genes:
        raise ValueError(f"too few common genes: {match}; min_genes={min_genes} requires more")
    if len(common) < k:
        raise ValueError(f"only {len(common)} common genes for {k} cell types: {match}")
    # select rows only where needed: a bulk whose genes are all used, in order, is not copied
    bulk = bulk if bulk.index.equals(common) else bulk.loc[common]
    signature = signature if signature.index.equals(common) else signature.loc[common]
    return bulk, signature, match


def collinear_types(signature, *, cond_threshold=1e3):
    """Find nearly collinear cell types in a signature.

    The columns are scaled to unit Euclidean norm (so the verdict does not
    depend on each type's total expression); the signature is called badly
    conditioned when the ratio of its largest to smallest singular value
    exceeds ``cond_threshold`` or it is rank deficient.  Relative errors in the
    bulk can then be amplified up to that factor in the proportions.  The cell
    types named are those with the largest weights in the right singular
    vector of the smallest singular value: the combination of profiles that is
    nearly zero.

    A high correlation between two profiles alone is not reported: over
    thousands of genes related cell types (e.g. CD4 T cells and Tregs)
    correlate above 0.99 and are still well separated by their differences.

    Parameters
    ----------
    signature : pandas.DataFrame
        Genes x cell types.
    cond_threshold : float, default 1e3
        Condition number (of the unit-norm columns) above which to report.

    Returns
    -------
    cond : float
        Condition number of the column-scaled signature (inf if rank deficient).
    types : list of str
        Cell types involved in the near collinearity (empty when well conditioned).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from fastdeconv.inputs import collinear_types
    >>> rng = np.random.default_rng(0)
    >>> s = rng.gamma(1.0, 100.0, size=(200, 3))
    >>> sig = pd.DataFrame(np.column_stack([s, s[:, 0] + s[:, 1]]), columns=["A", "B", "C", "AB"])
    >>> cond, types = collinear_types(sig)
    >>> sorted(types)
    ['A', 'AB', 'B']
    """
    s = signature.to_numpy(dtype=np.float64)
    norms = np.linalg.norm(s, axis=0)
    names = [str(c) for c in signature.columns]
    zero = norms == 0
    if zero.any():
        return np.inf, [names[j] for j in np.flatnonzero(zero)]
    u = s / norms
    sv, vt = np.linalg.svd(u, full_matrices=False)[1:]
    cond = np.inf if sv[-1] <= sv[0] * 1e-13 else float(sv[0] / sv[-1])
    found = []
    if cond > cond_threshold:
        v = np.abs(vt[-1])
        found = [names[j] for j in np.argsort(-v) if v[j] >= 0.25 * v.max()]
    return cond, found


def warn_if_collinear(signature, *, stacklevel=3, **kwargs):
    """Warn (UserWarning) when :func:`collinear_types` finds nearly collinear cell types.

    Parameters
    ----------
    signature : pandas.DataFrame
        Genes x cell types.
    stacklevel : int, default 3
        Passed to :func:`warnings.warn`.
    **kwargs
        Thresholds passed to :func:`collinear_types`.

    Returns
    -------
    float
        The condition number of the column-scaled signature.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from fastdeconv.inputs import warn_if_collinear
    >>> sig = pd.DataFrame(np.eye(3) * 100 + 1, columns=["A", "B", "C"])
    >>> round(warn_if_collinear(sig), 3)
    1.03
    """
    cond, types = collinear_types(signature, **kwargs)
    if types:
        warnings.warn(
            f"the signature is badly conditioned (condition number {cond:.3g} of the "
            f"unit-norm profiles); nearly collinear cell types: {types}. Their proportions are "
            "poorly determined: consider merging them or adding marker genes that separate them",
            UserWarning,
            stacklevel=stacklevel,
        )
    return cond


#: The scales an expression table may be given on (see :func:`unlog`).
SCALES = ("auto", "linear", "log2", "log2p1")


def unlog(values, scale):
    """Bring expression values to the linear scale.

    Parameters
    ----------
    values : ndarray or pandas.DataFrame
        Expression values on ``scale``.
    scale : {"auto", "linear", "log2", "log2p1"}
        ``"log2"``: ``2**x``; ``"log2p1"``: ``2**x - 1`` (data stored as
        ``log2(x + 1)``); ``"auto"``/``"linear"``: unchanged.

    Returns
    -------
    ndarray or pandas.DataFrame
        The linear values (the input itself when nothing changes).

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.inputs import unlog
    >>> unlog(np.array([0.0, 3.0]), "log2p1")
    array([0., 7.])
    """
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    if scale == "log2":
        return 2.0**values
    if scale == "log2p1":
        return 2.0**values - 1.0
    return values


def read_expression(
    obj,
    *,
    name,
    genes=None,
    columns=None,
    layer=None,
    scale="auto",
    case_insensitive=False,
    strip_version=False,
    duplicates="raise",
):
    """The front door for an expression table: read, un-log, check, harmonise gene names.

    Combines :func:`as_expression_frame`, :func:`unlog`,
    :func:`check_expression` and :func:`harmonize_genes` in the order every
    pipeline needs them.

    Parameters
    ----------
    obj : DataFrame, ndarray, AnnData or path
        The table (see :func:`as_expression_frame`).
    name : str
        What the data are (``"bulk"``, ``"signature"``); used in messages.
    genes, columns : sequence of str, optional
        Names for array input.
    layer : str, optional
        AnnData layer to use instead of ``.X``.
    scale : {"auto", "linear", "log2", "log2p1"}, default "auto"
        ``"auto"`` refuses data that look log-transformed; ``"linear"`` asserts
        the linear scale; ``"log2"``/``"log2p1"`` un-log first (see :func:`unlog`).
    case_insensitive, strip_version : bool, default False
        Gene-name normalisation (see :func:`harmonize_genes`).
    duplicates : {"raise", "sum"}, default "raise"
        Duplicated gene names: raise, or add their rows up.

    Returns
    -------
    pandas.DataFrame
        Genes x columns, float64, linear scale, unique gene names.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.inputs import read_expression
    >>> df = read_expression(np.log2([[100.0, 200.0], [300.0, 400.0]]), name="bulk",
    ...                      genes=["A", "B"], scale="log2")
    >>> df.round(6).to_numpy().tolist()
    [[100.0, 200.0], [300.0, 400.0]]
    """
    if scale not in SCALES:
        raise ValueError(f"{name} scale must be one of {SCALES}, got {scale!r}")
    df = as_expression_frame(obj, name=name, genes=genes, columns=columns, layer=layer)
    if scale in ("log2", "log2p1"):
        # log2 values below 0 (expression below 1) are legitimate; NaN/inf are not
        check_expression(df.clip(lower=0) if scale == "log2" else df, name=name, allow_log=True)
        df = unlog(df, scale)
        check_expression(df, name=f"{name} (un-logged)", allow_log=True)  # overflow to inf
    else:
        check_expression(df, name=name, allow_log=scale == "linear")
    return harmonize_genes(
        df, name=name, case_insensitive=case_insensitive, strip_version=strip_version,
        duplicates=duplicates,
    )
