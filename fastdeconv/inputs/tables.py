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

from fastdeconv.errors import Fix, InputProblem, literal
from fastdeconv.inputs._common import dense as _dense
from fastdeconv.inputs._common import is_anndata as _is_anndata

__all__ = [
    "read_expression",
    "unlog",
    "SCALES",
    "MISSING",
    "as_expression_frame",
    "check_expression",
    "looks_log_scale",
    "harmonize_genes",
    "match_genes",
    "check_orientation",
    "GeneMatch",
    "collinear_types",
    "warn_if_collinear",
]

_ORIENTS = ("genes_by_columns", "columns_by_genes")
_ENSEMBL_VERSION = re.compile(r"^(ENS[A-Z]*\d{6,})\.\d+$", re.IGNORECASE)
#: Largest value below which non-integer data are taken to be log-transformed
#: (the heuristic of immunedeconv and quanTIseq).
LOG_MAX_THRESHOLD = 50.0
#: Largest expression value accepted: no measure (counts, TPM, intensities) comes near it,
#: and values beyond it overflow the solvers' sums of squares into inf and NaN.
MAX_VALUE = 1e30
#: What a log-scale remedy un-logs, in the words of the messages.
_LOG_SCALES = {"log2": "log2(x) values", "log2p1": "log2(x + 1)", "log1p": "ln(x + 1) (log1p)"}
#: The remedies every expression pipeline can follow (see :func:`check_expression`).
_BASIC_SCALES = ("linear", "log2")


def _fixes_text(n, words):
    """``{0} for a, {1} for b`` for the remedies numbered from ``n``."""
    return ", ".join(f"{{{n + i}}} for {w}" for i, w in enumerate(words))


def as_expression_frame(
    obj, *, name, genes=None, columns=None, layer=None, orient="genes_by_columns",
    keep_float32=False,
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
        ``.gz``) or, for ``.h5ad``, with :func:`fastdeconv.io.read_h5ad`.  A 1-D array
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
    keep_float32 : bool, default False
        Keep float32 values as they are (default: everything becomes float64).

    Returns
    -------
    pandas.DataFrame
        ``float64`` values (float32 ones with ``keep_float32``), gene names (as
        strings) in the index.

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
            from fastdeconv.io import read_h5ad

            try:
                adata = read_h5ad(path)
            except FileNotFoundError as exc:
                raise FileNotFoundError(f"{name}: {exc}") from None
            return as_expression_frame(adata, name=name, genes=genes, columns=columns, layer=layer,
                                       keep_float32=keep_float32)
        from fastdeconv.io import read_table

        obj = read_table(path)
    if _is_anndata(obj):
        from fastdeconv.inputs._common import anndata_values

        values = anndata_values(obj, layer, name)
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
    if (df.dtypes == np.float64).all() or (keep_float32 and (df.dtypes == np.float32).all()):
        # no copy of a float64 table: a shallow copy, so the caller's frame keeps its index
        df = df.copy(deep=False)
    else:
        df = df.astype(np.float64)
    df.index = pd.Index([str(g) for g in df.index], name=df.index.name)
    return df


def looks_log_scale(values, *, top=None):
    """Tell whether expression values look log-transformed.

    The heuristic of immunedeconv and quanTIseq: linear-scale expression
    (counts, TPM, microarray intensities) reaches values well above 50,
    whereas log2 values rarely exceed ~20.  Data whose maximum is below
    ``LOG_MAX_THRESHOLD`` (50) *and* that hold non-integer values are taken to
    be log-transformed, except when they carry the marks of linear data
    that a log table cannot have:

    - integer values only (small raw counts);
    - a maximum of at most 1: normalised profiles and fractions (columns
      summing to 1, as BayesPrism's phi or any probability profile).  A log
      table that small would describe expression below 2 (log2(x + 1)) for
      every gene;
    - columns (of a 2-D table) that all sum to the same power of ten, 10 to
      10**6 (percentages, counts per ten thousand, CPM of a small panel).

    Parameters
    ----------
    values : array_like
        Finite expression values (a 2-D table is genes x columns).
    top : float, optional
        Their maximum, when the caller knows it already (saves a pass).

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

    Profiles normalised to sum to 1 (or to 100) are linear:

    >>> profile = np.array([[0.5, 0.1], [0.3, 0.1], [0.2, 0.8]])
    >>> looks_log_scale(profile), looks_log_scale(100 * profile)
    (False, False)
    """
    if top is not None and not (1.0 < top < LOG_MAX_THRESHOLD):
        return False  # decided by the range alone: no float64 copy of a float32 table
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return False
    top = float(np.max(v)) if top is None else top
    if not (1.0 < top < LOG_MAX_THRESHOLD) or np.array_equal(v, np.round(v)):
        return False
    return not (v.ndim == 2 and _columns_sum_to_power_of_ten(v))


def _columns_sum_to_power_of_ten(v):
    """Whether every column of ``v`` sums to the same power of ten (10 ... 1e6), to 0.1%."""
    sums = v.sum(axis=0)
    if not np.all(sums > 0):
        return False
    power = 10.0 ** np.round(np.log10(sums.mean()))
    return bool(10.0 <= power <= 1e6 and np.allclose(sums, power, rtol=1e-3, atol=0.0))


def _first_labels(mask, df, limit=5):
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    genes = [str(df.index[i]) for i in rows[:limit]]
    samples = [str(df.columns[j]) for j in cols[:limit]]
    return genes, samples, len(rows), len(cols)


def check_expression(
    df, *, name, allow_log=False, scale_option="scale", scales=_BASIC_SCALES, missing_option=None
):
    """Check that an expression table is usable on a linear scale.

    Every message names what to do next: a remedy that is an option of the
    calling pipeline is given as a :class:`fastdeconv.errors.Fix` (so the
    command line can spell it as its flag), anything else in plain words.

    Parameters
    ----------
    df : pandas.DataFrame
        Genes x columns, as returned by :func:`as_expression_frame`.
    name : str
        What the data are (``"bulk"``, ``"signature"``); used in messages.
    allow_log : bool, default False
        Skip the log-scale heuristic (assert that the data are linear).
    scale_option : str or None, default "scale"
        The caller's keyword that sets the scale of this table (the remedy
        for log-scale data); None: advise in words only.
    scales : sequence of str, default ("linear", "log2")
        The values of ``scale_option`` the caller accepts (of
        :data:`SCALES`): only these are advised.
    missing_option : str or None, optional
        The caller's keyword that drops genes with missing values (advised as
        ``missing_option="drop"`` for NaN); None: advise in words only.

    Raises
    ------
    fastdeconv.errors.InputProblem
        (a ValueError) If the table holds NaN values (with
        ``missing_option``), negative values that look like log2 values
        below 0, or looks log-transformed (see :func:`looks_log_scale`).
    ValueError
        If the table is empty, holds NaN or infinite values (the message
        names the first offending genes and samples), values above
        :data:`MAX_VALUE` (1e30) or negative values.

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
    >>> try:
    ...     check_expression(pd.DataFrame({"s1": [3.5, 7.2, 12.1]}), name="signature",
    ...                      scale_option="signature_scale")
    ... except ValueError as err:
    ...     print(err.render({"signature_scale": "--signature-scale"}))  # doctest: +ELLIPSIS
    signature looks log-transformed: ... pass --signature-scale log2 for log2(x) values; ...
    """
    if df.shape[0] == 0 or df.shape[1] == 0:
        raise ValueError(f"{name} is empty ({df.shape[0]} genes x {df.shape[1]} columns)")
    values = df.to_numpy()
    if values.dtype not in (np.float64, np.float32):
        values = values.astype(np.float64)
    # one pass for the range; the masks that locate a problem only when there is one
    lo, hi = float(values.min()), float(values.max())
    if not (np.isfinite(lo) and np.isfinite(hi)):
        finite = np.isfinite(values)
        _refuse_non_finite(df, values, ~finite, name, scale_option, scales, missing_option)
    if hi > MAX_VALUE:
        huge = values > MAX_VALUE
        genes, samples, _, _ = _first_labels(huge, df)
        raise ValueError(
            f"{name} has {int(huge.sum())} value(s) above {MAX_VALUE:g} (largest "
            f"{values.max():.3g}; genes {genes}, columns {samples}): no expression measure comes "
            "near that; correct these values in the table or remove these genes"
        )
    if lo < 0:
        negative = values < 0
        genes, samples, _, _ = _first_labels(negative, df)
        text = (
            f"{name} has {int(negative.sum())} negative value(s) (genes {genes}, columns "
            f"{samples}); deconvolution needs non-negative expression on a linear scale "
            "(not log-ratios, z-scores or centred data)"
        )
        if scale_option and "log2" in scales and looks_log_scale(np.maximum(values, 0.0)):
            raise InputProblem(
                literal(text) + "; if the table holds log2 values (those below 0 are expression "
                "below 1), pass {0}",
                Fix(scale_option, "log2"),
            )
        raise ValueError(text)
    if not allow_log and looks_log_scale(values, top=hi):
        text = (
            f"{name} looks log-transformed: its maximum is {values.max():.3g} (< "
            f"{LOG_MAX_THRESHOLD:g}) and it holds non-integer values, but deconvolution works on "
            "the linear scale"
        )
        logs = [s for s in _LOG_SCALES if s in scales] if scale_option else []
        if not logs:
            raise ValueError(text + ": un-log it first (2**x for log2 values)")
        fixes = [Fix(scale_option, s) for s in logs]
        words = [_LOG_SCALES[s] for s in logs]
        template = literal(text) + ". Un-log it: pass " + _fixes_text(0, words)
        if "linear" in scales:
            template += f"; if the values really are linear, pass {{{len(fixes)}}}"
            fixes.append(Fix(scale_option, "linear"))
        raise InputProblem(template, *fixes)


def _refuse_non_finite(df, values, bad, name, scale_option, scales, missing_option):
    """The error for NaN/infinite values, with the remedy that fits them."""
    genes, samples, n_g, n_s = _first_labels(bad, df)
    nan = np.isnan(values)
    kind = "NaN" if nan[bad].all() else "infinite" if not nan.any() else "NaN and infinite"
    text = (
        f"{name} has {int(bad.sum())} {kind} value(s) in {n_g} gene(s) and {n_s} column(s); "
        f"first genes {genes}, first columns {samples}"
    )
    if kind == "NaN" and missing_option:
        raise InputProblem(
            literal(text) + ". Pass {0} to leave these genes out, or fill in the missing values "
            "in the table",
            Fix(missing_option, "drop"),
        )
    minus_inf = np.isneginf(values)
    if (
        scale_option and "log2" in scales and minus_inf[bad].all()
        and looks_log_scale(np.where(minus_inf, 0.0, values))
    ):
        raise InputProblem(
            literal(text) + ": values of -inf are what log2 gives for zero expression; if the table "
            "holds log2 values, pass {0}",
            Fix(scale_option, "log2"),
        )
    raise ValueError(
        text + ". Remove these genes (rows) from the table or correct their values"
    )


def _normalise_name(gene, case_insensitive, strip_version):
    if strip_version:
        m = _ENSEMBL_VERSION.match(gene)
        if m:
            gene = m.group(1)
    if case_insensitive:
        gene = gene.upper()
    return gene


def harmonize_genes(
    df, *, name, case_insensitive=False, strip_version=False, duplicates="raise",
    duplicates_option="duplicates",
):
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
    duplicates_option : str or None, default "duplicates"
        The caller's keyword for ``duplicates`` (advised as the remedy);
        None when the caller offers none (the message then says to remove
        the duplicates).

    Returns
    -------
    pandas.DataFrame
        The table with normalised, unique gene names (row order kept, summed
        duplicates in the position of their first occurrence).

    Raises
    ------
    fastdeconv.errors.InputProblem
        (a ValueError) For duplicated names with ``duplicates="raise"``.
    ValueError
        For an unknown option.

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
            normalised = {
                (True, False): " once case is ignored",
                (False, True): " once Ensembl versions are dropped",
                (True, True): " once case and Ensembl versions are ignored",
            }.get((bool(case_insensitive), bool(strip_version)), "")
            text = (f"{name} has {len(names)} duplicated gene name(s){normalised} "
                    f"(first: {names[:5]})")
            if duplicates_option is None:
                raise ValueError(text + "; remove the duplicated rows from the table")
            raise InputProblem(
                literal(text) + "; pass {0} to add their rows up, or remove the duplicated rows "
                "from the table",
                Fix(duplicates_option, "sum"),
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


def _n_common(a, b):
    """How many names two collections share (hashing only: linear in their sizes)."""
    a = a if isinstance(a, pd.Index) else pd.Index(list(a))
    return int(a.unique().isin(b).sum())


def _renaming_fixes(bulk_genes, signature_genes, n_common):
    """The gene-name options that would match more genes than ``n_common``, and how many.

    Returns ``(fixes, n)``: the :class:`Fix` list (case, Ensembl versions, or
    both) of the smallest change that matches the most genes, or ``([], n_common)``.
    """
    best = ([], n_common)
    for ci, sv in ((True, False), (False, True), (True, True)):
        b = {_normalise_name(str(g), ci, sv) for g in bulk_genes}
        s = {_normalise_name(str(g), ci, sv) for g in signature_genes}
        n = len(b & s)
        if n > best[1]:
            options = (("case_insensitive", ci), ("strip_version", sv))
            best = ([Fix(k) for k, on in options if on], n)
    return best


def _positions(index):
    return len(index) > 0 and all(str(g) == str(i) for i, g in enumerate(index))


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
    fastdeconv.errors.InputProblem
        (a ValueError) If the inputs share no gene, or too few genes: the
        message says how many are needed and names the options that would
        help (``case_insensitive``, ``strip_version`` when ignoring case or
        Ensembl versions would match more genes; ``min_genes`` to accept the
        genes found).
    ValueError
        If there are fewer common genes than cell types.

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
    >>> try:
    ...     match_genes(bulk.rename(index=str.upper), sig)
    ... except ValueError as err:
    ...     print(str(err).split("; ")[-1])
    ignoring case matches 59 genes: pass case_insensitive=True
    """
    common = signature.index[signature.index.isin(bulk.index)]
    missing = [str(g) for g in signature.index[~signature.index.isin(bulk.index)]]
    match = GeneMatch(
        genes=list(common), n_signature=signature.shape[0], n_bulk=bulk.shape[0], missing=missing
    )
    k = signature.shape[1]
    n = len(common)
    if n == 0:
        text = (
            f"bulk and signature share no gene name (bulk e.g. {list(bulk.index[:3])}, "
            f"signature e.g. {list(signature.index[:3])})"
        )
        fixes, n_renamed = _renaming_fixes(bulk.index, signature.index, 0)
        if fixes:
            raise InputProblem(
                literal(text) + f"; {_renaming_words(fixes)} matches {n_renamed} genes: pass "
                + " and ".join(f"{{{i}}}" for i in range(len(fixes))),
                *fixes,
            )
        if _positions(bulk.index) or _positions(signature.index):
            text += (
                "; array input has no gene names: pass them (bulk_genes=, signature_genes=)"
            )
        else:
            text += (
                ". Check that both use the same gene identifiers (symbols, Ensembl or Entrez "
                "ids) and that genes are the rows of both tables"
            )
        raise ValueError(text)
    if min_genes is None:
        needed = max(2 * k, 50)
        short = n < needed or 2 * n < signature.shape[0]
        requirement = (
            f"the default requires at least max(2k, 50) = {needed} genes for k = {k} cell types "
            f"and at least half of the signature's {signature.shape[0]} genes"
        )
    else:
        short = n < min_genes
        requirement = f"at least {min_genes} were required"
    if short:
        text = f"too few common genes: {match}; {requirement}"
        fixes, n_renamed = _renaming_fixes(bulk.index, signature.index, n)
        if fixes:
            raise InputProblem(
                literal(text) + f". {_renaming_words(fixes).capitalize()} matches {n_renamed} "
                "genes: pass " + " and ".join(f"{{{i}}}" for i in range(len(fixes))),
                *fixes,
            )
        if n >= k:
            raise InputProblem(
                literal(text) + ". Check the gene identifiers, or pass {0} to go on with "
                f"the {n} common genes",
                Fix("min_genes", n),
            )
    if n < k:
        raise ValueError(
            f"only {n} common genes for {k} cell types ({match}): at least one gene per cell "
            "type is needed; check the gene identifiers of bulk and signature"
        )
    # select rows only where needed: a bulk whose genes are all used, in order, is not copied
    bulk = bulk if bulk.index.equals(common) else bulk.loc[common]
    signature = signature if signature.index.equals(common) else signature.loc[common]
    return bulk, signature, match


def _renaming_words(fixes):
    keys = {f.keyword for f in fixes}
    if keys == {"case_insensitive"}:
        return "ignoring case"
    if keys == {"strip_version"}:
        return "dropping Ensembl version suffixes"
    return "ignoring case and Ensembl version suffixes"


def check_orientation(bulk, signature, *, case_insensitive=False, strip_version=False):
    """Refuse a bulk or a signature that looks transposed (genes as columns).

    Both tables must have genes as rows.  The check compares names across
    the two tables, not shapes alone: when the bulk's column names are the
    signature's genes (or the signature's columns the bulk's genes, or the
    columns of both the same genes) more often than the rows match, the
    table is transposed.  A signature with more columns than rows is refused
    too (a deconvolution needs more genes than cell types), and when the
    tables share no name at all, a bulk with more columns than rows is named
    as possibly transposed.  Only sets of names are formed: memory and time
    are linear in the number of genes.

    Parameters
    ----------
    bulk : pandas.DataFrame
        As read: genes x samples (gene names normalised already).
    signature : pandas.DataFrame
        As read: genes x cell types.
    case_insensitive, strip_version : bool, default False
        The gene-name normalisation applied to the rows, applied here to the
        column names before comparing them.

    Raises
    ------
    fastdeconv.errors.InputProblem
        Naming the table that looks transposed and the remedy
        (``transpose_bulk=True`` / ``transpose_signature=True``).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from fastdeconv.inputs import check_orientation
    >>> genes = [f"g{i}" for i in range(100)]
    >>> sig = pd.DataFrame(np.ones((100, 3)), index=genes, columns=["T", "B", "NK"])
    >>> bulk = pd.DataFrame(np.ones((100, 4)), index=genes, columns=["s1", "s2", "s3", "s4"])
    >>> check_orientation(bulk, sig)
    >>> try:
    ...     check_orientation(bulk.T, sig)
    ... except ValueError as err:
    ...     print(str(err)[:50], "...", str(err)[-25:])
    the bulk looks transposed: its column names are th ... pass transpose_bulk=True
    """
    def columns(frame):
        return pd.Index([_normalise_name(str(c), case_insensitive, strip_version)
                         for c in frame.columns])

    b_cols, s_cols = columns(bulk), columns(signature)
    n_rows = _n_common(bulk.index, signature.index)
    alternatives = {
        "bulk": (_n_common(b_cols, signature.index), b_cols),
        "signature": (_n_common(bulk.index, s_cols), s_cols),
        "both": (_n_common(b_cols, s_cols), b_cols),
    }
    which, (n_alt, names) = max(alternatives.items(), key=lambda kv: kv[1][0])
    if n_alt > max(n_rows, 1):
        seen = set(signature.index) if which == "bulk" else set(
            bulk.index if which == "signature" else s_cols)
        example = [str(g) for g in names if g in seen][:3]
        if which == "both":
            raise InputProblem(
                "bulk and signature both look transposed: their column names are the same "
                f"{n_alt} genes (e.g. {literal(example)}) while their rows share "
                f"{n_rows} names; both must have genes as rows: pass {{0}} and {{1}}",
                Fix("transpose_bulk"), Fix("transpose_signature"),
            )
        other = "signature" if which == "bulk" else "bulk"
        shape = "genes x samples" if which == "bulk" else "genes x cell types"
        raise InputProblem(
            f"the {which} looks transposed: its column names are the {other}'s genes "
            f"({n_alt} of them, e.g. {literal(example)}) while the rows of the two tables share "
            f"{n_rows} names; the {which} must be {shape}: pass {{0}}",
            Fix(f"transpose_{which}"),
        )
    n_genes, k = signature.shape
    if k > n_genes:
        raise InputProblem(
            f"the signature has {n_genes} rows and {k} columns, but a deconvolution needs more "
            "genes (rows) than cell types (columns): it looks transposed; if its rows are the "
            "cell types, pass {0}",
            Fix("transpose_signature"),
        )
    if n_rows == 0 and bulk.shape[1] > bulk.shape[0]:
        raise InputProblem(
            f"bulk and signature share no gene name, and the bulk has {bulk.shape[0]} rows and "
            f"{bulk.shape[1]} columns: if its rows are samples and its columns genes, pass {{0}}",
            Fix("transpose_bulk"),
        )


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


def warn_if_zero_samples(columns, zero, n_genes, *, stacklevel=3):
    """Warn that samples are zero on every gene used (their proportions are NaN).

    Parameters
    ----------
    columns : sequence
        The sample names.
    zero : ndarray of bool
        Which samples are all zero.
    n_genes : int
        Genes used, for the message.
    stacklevel : int, optional
        Passed to :func:`warnings.warn`.

    Examples
    --------
    >>> import warnings
    >>> import numpy as np
    >>> from fastdeconv.inputs.tables import warn_if_zero_samples
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warn_if_zero_samples(["s1", "s2"], np.array([False, True]), 100)
    >>> str(caught[0].message)
    "1 sample(s) are zero on all 100 genes used (first: ['s2']); their proportions are NaN"
    """
    if not np.any(zero):
        return
    import warnings

    names = [str(columns[j]) for j in np.flatnonzero(zero)]
    warnings.warn(
        f"{len(names)} sample(s) are zero on all {n_genes} genes used (first: {names[:5]}); "
        "their proportions are NaN",
        UserWarning,
        stacklevel=stacklevel,
    )


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
SCALES = ("auto", "linear", "log2", "log2p1", "log1p")
#: What ``missing=`` accepts (see :func:`read_expression`).
MISSING = ("raise", "drop")


def unlog(values, scale):
    """Bring expression values to the linear scale.

    Parameters
    ----------
    values : ndarray or pandas.DataFrame
        Expression values on ``scale``.
    scale : {"auto", "linear", "log2", "log2p1", "log1p"}
        ``"log2"``: ``2**x``; ``"log2p1"``: ``2**x - 1`` (data stored as
        ``log2(x + 1)``); ``"log1p"``: ``exp(x) - 1`` (data stored as the
        natural ``log(x + 1)``, as :func:`numpy.log1p` and scanpy write them);
        ``"auto"``/``"linear"``: unchanged.

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
    >>> unlog(np.log1p(np.array([0.0, 9.0])), "log1p").round(12)
    array([0., 9.])
    """
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    if scale == "log2":
        return 2.0**values
    if scale == "log2p1":
        return 2.0**values - 1.0
    if scale == "log1p":
        return np.expm1(values)
    return values


def refuse_linear_as_log(top, scale, name, scale_option="scale"):
    """Refuse a log ``scale`` for values that reach ``top``, far above any log expression.

    Parameters
    ----------
    top : float
        The table's largest value.
    scale : str
        The scale the user gave.
    name : str
        What the data are.
    scale_option : str, optional
        The caller's keyword for the scale (the remedy).

    Raises
    ------
    fastdeconv.errors.InputProblem
        When ``scale`` is a log scale and ``top >= LOG_MAX_THRESHOLD``.

    Examples
    --------
    >>> from fastdeconv.inputs.tables import refuse_linear_as_log
    >>> refuse_linear_as_log(12.0, "log2", "bulk")  # a log2 value: fine
    >>> try:
    ...     refuse_linear_as_log(5000.0, "log2", "bulk")
    ... except ValueError as err:
    ...     print(str(err).split(": ")[-1])
    it looks linear already; pass scale='linear'
    """
    if scale in _LOG_SCALES and np.isfinite(top) and top >= LOG_MAX_THRESHOLD:
        raise InputProblem(
            f"{literal(name)} is said to be on the {scale} scale, but its values reach "
            f"{top:.4g}, far above any log expression (< {LOG_MAX_THRESHOLD:g}): it looks "
            "linear already; pass {0}",
            Fix(scale_option, "linear"),
        )


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
    transpose=False,
    missing="raise",
    scale_option="scale",
    keep_float32=False,
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
    scale : {"auto", "linear", "log2", "log2p1", "log1p"}, default "auto"
        ``"auto"`` refuses data that look log-transformed; ``"linear"`` asserts
        the linear scale; ``"log2"``/``"log2p1"``/``"log1p"`` un-log first (see
        :func:`unlog`).
    case_insensitive, strip_version : bool, default False
        Gene-name normalisation (see :func:`harmonize_genes`).
    duplicates : {"raise", "sum"}, default "raise"
        Duplicated gene names: raise, or add their rows up.
    transpose : bool, default False
        The table (DataFrame, array or file) has genes as columns: transpose
        it.  Not for AnnData, which is always observations x genes.
    missing : {"raise", "drop"}, default "raise"
        Genes with missing (NaN) values: raise, naming them, or leave them out.
    scale_option : str, default "scale"
        The caller's keyword that sets ``scale``, named in the messages'
        remedies (``"signature_scale"`` for a signature in
        :func:`fastdeconv.deconvolve`).
    keep_float32 : bool, default False
        Keep a float32 table in float32 (no float64 copy) for pipelines whose
        kernels convert chunk by chunk.

    Returns
    -------
    pandas.DataFrame
        Genes x columns, float64 (or float32 with ``keep_float32``), linear
        scale, unique gene names.

    Raises
    ------
    fastdeconv.errors.InputProblem
        (a ValueError) For a table that cannot be used as given, with the
        options that fix it (see :func:`check_expression`,
        :func:`harmonize_genes`); also when a log ``scale`` is given for
        values too large to be logarithms.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.inputs import read_expression
    >>> df = read_expression(np.log2([[100.0, 200.0], [300.0, 400.0]]), name="bulk",
    ...                      genes=["A", "B"], scale="log2")
    >>> df.round(6).to_numpy().tolist()
    [[100.0, 200.0], [300.0, 400.0]]
    >>> read_expression([[1.0, 2.0], [np.nan, 4.0], [5.0, 6.0]], name="bulk",
    ...                 genes=["A", "B", "C"], missing="drop").index.tolist()
    ['A', 'C']
    """
    if scale not in SCALES:
        raise ValueError(f"{name} scale must be one of {SCALES}, got {scale!r}")
    if missing not in MISSING:
        raise ValueError(f"missing must be one of {MISSING}, got {missing!r}")
    if transpose and (_is_anndata(obj) or (isinstance(obj, (str, os.PathLike)) and os.fspath(obj).lower().endswith(".h5ad"))):
        raise ValueError(
            f"{name}: transpose applies to tables and arrays; AnnData is always observations x "
            "genes"
        )
    orient = "columns_by_genes" if transpose else "genes_by_columns"
    df = as_expression_frame(obj, name=name, genes=genes, columns=columns, layer=layer,
                             orient=orient, keep_float32=keep_float32)
    if missing == "drop" and df.shape[1] > 0:
        has_nan = np.isnan(df.to_numpy(dtype=np.float64)).any(axis=1)
        if has_nan.any():
            df = df.loc[~has_nan]
    checks = dict(name=name, scale_option=scale_option, scales=SCALES,
                  missing_option="missing")
    if scale in _LOG_SCALES:
        top = np.nanmax(df.to_numpy(dtype=np.float64), initial=-np.inf) if df.size else 0.0
        refuse_linear_as_log(top, scale, name, scale_option)
        # log2 values below 0 (expression below 1) are legitimate; NaN/inf are not
        check_expression(df.clip(lower=0) if scale == "log2" else df, allow_log=True, **checks)
        df = unlog(df, scale)
        checks["name"] = f"{name} (un-logged)"
        check_expression(df, allow_log=True, **checks)  # overflow to inf
    else:
        check_expression(df, allow_log=scale == "linear", **checks)
    return harmonize_genes(
        df, name=name, case_insensitive=case_insensitive, strip_version=strip_version,
        duplicates=duplicates,
    )
