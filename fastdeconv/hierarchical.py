"""Hierarchical deconvolution: lineages first, then the subtypes within each lineage's share.

Cell types of one lineage (naive and memory B cells, CD4 and CD8 T cells)
share most of their markers.  A flat fit must tell them apart on the few
genes that differ between them *and* find the lineage's total on the same
genes, so the total inherits the noise of the split.  The hierarchy separates
the two questions (as Rectangle does, Eder et al. 2026):

* **level 1** estimates each lineage's share on genes chosen to separate the
  *lineages* (marker genes of the lineages' mean profiles);
* **level 2**, for every lineage of more than one type, estimates how the
  lineage's share divides among its subtypes, on genes chosen to separate
  those subtypes from each other and from the other lineages;
* a subtype's proportion is its share within the lineage (level 2) times the
  lineage's proportion (level 1), so the proportions still sum to one.

Both levels run the user's regression method through one callable (the
pipeline's gene selection and solver), so the hierarchy works with every
registered method.  Two forms of the level fits (``columns=``):

``"types"`` (default)
    Every fit keeps every cell type a column; the hierarchy only chooses the
    genes of each level and how the fits are combined (lineage totals are
    sums over the lineage's types in the level-1 fit).  Exact on noise-free
    mixtures whenever the signature on each level's genes has full column
    rank, whatever the mix within a lineage.
``"lineages"``
    The reduced model of Rectangle's clustered signature: level 1 fits one
    column per lineage (the mean of its types' profiles), level 2 fits the
    lineage's subtypes beside one mean column per other lineage.  Fewer and
    better separated columns, but a lineage whose types are not mixed in
    equal parts does not match its mean profile: biased on such samples.

:func:`lineages` groups the cell types of a signature into lineages by
hierarchical clustering of their profiles; :func:`check_hierarchy` validates a
lineage map given by the user; :func:`fit_hierarchical` runs the two levels
with any level-fit callable; :func:`fastdeconv.deconvolve` (``hierarchy=``)
builds that callable from its own gene selection and methods.

References
----------
- Eder B., Rigato I., Dietrich A., Merotto L., Sturm G., Treis T., List M.,
  Theis F. J., Finotello F. (2026) Rectangle: robust and scalable multiscale
  deconvolution informed by single-cell RNA sequencing data. bioRxiv.
  doi:10.64898/2026.07.07.736950 (rectanglepy: hierarchical clustering of the
  signature, clustered signature fitted first)
- Rousseeuw P. J. (1987) Silhouettes: a graphical aid to the interpretation
  and validation of cluster analysis. J Comput Appl Math 20:53-65.
  doi:10.1016/0377-0427(87)90125-7
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from fastdeconv._checks import check_choice, check_float, check_int

__all__ = [
    "lineages",
    "check_hierarchy",
    "read_hierarchy",
    "fit_hierarchical",
    "HierarchicalFit",
]

#: The forms of the level fits (``columns=`` of :func:`fit_hierarchical`).
COLUMNS = ("types", "lineages")
#: The gene rules (``genes=`` of :func:`fit_hierarchical`, as of :func:`fastdeconv.deconvolve`).
GENES = ("auto", "markers", "all")
#: Joins the names of a lineage's types into the lineage's name.
_JOIN = " + "


# ---------------------------------------------------------------------------
# lineages from the signature
# ---------------------------------------------------------------------------


def _centred_correlation(x, weights):
    """Pearson r between the columns of ``x`` after centring every row at its weighted mean."""
    xc = x - (x @ weights / weights.sum())[:, None]
    xc -= xc.mean(axis=0)
    norm = np.sqrt(np.einsum("ij,ij->j", xc, xc))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (xc.T @ xc) / np.outer(norm, norm)
    return np.nan_to_num(r, nan=0.0)  # a type equal to the average is like none of them


def _profile_distances(signature):
    """1 - Pearson r of the types' log profiles, every gene centred at the family-weighted mean.

    A plain mean over types lets a family of many subtypes define the average
    type: every type outside it then deviates the same way and unrelated
    types look alike.  So the centre weights every type by one over the
    number of types it resembles (sum of its positive correlations in a
    first, unweighted pass): a family of n alike types counts about once.
    """
    values = signature.to_numpy(dtype=np.float64)
    c = float(values.mean())
    if not np.isfinite(c) or c <= 0:
        raise ValueError("the signature has no positive values: cannot group its cell types")
    x = np.log1p(values / c)
    r = _centred_correlation(x, np.ones(x.shape[1]))
    r = _centred_correlation(x, 1.0 / np.clip(r, 0.0, None).sum(axis=1))
    d = np.clip(1.0 - r, 0.0, 2.0)
    np.fill_diagonal(d, 0.0)
    return (d + d.T) / 2.0


def _silhouette(d, labels):
    """Mean silhouette width of a clustering (singletons count 0, Rousseeuw's convention)."""
    groups = np.unique(labels)
    # mean distance of every point to every cluster, (n, clusters)
    mean_to = np.column_stack([d[:, labels == g].mean(axis=1) for g in groups])
    sizes = np.array([(labels == g).sum() for g in groups])
    own = np.searchsorted(groups, labels)
    n_own = sizes[own]
    rows = np.arange(len(labels))
    # mean distance to the others of its own cluster (the point itself is at distance 0)
    a = np.where(n_own > 1, mean_to[rows, own] * n_own / np.maximum(n_own - 1, 1), 0.0)
    mean_to[rows, own] = np.inf
    b = mean_to.min(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        s = np.where(n_own > 1, (b - a) / np.maximum(a, b), 0.0)
    return float(np.nan_to_num(s).mean())


def _names(types, labels):
    """Series type -> lineage name (a lone type keeps its name; others are joined)."""
    members = {}
    for t, lab in zip(types, labels):
        members.setdefault(lab, []).append(str(t))
    name = {lab: _JOIN.join(ts) for lab, ts in members.items()}
    return pd.Series([name[lab] for lab in labels], index=types, name="lineage")


def lineages(signature, *, n_lineages=None, min_correlation=None, max_lineages=None):
    """Group the cell types of a signature into lineages of similar profiles.

    The profiles are compared on the log scale, gene by gene relative to the
    average type: ``x[g, t] = log(1 + S[g, t] / c)`` with ``c`` the mean of
    all signature values (the pseudocount of
    :func:`fastdeconv.regression.select_marker_genes`, which makes the
    grouping independent of the signature's scale), centred for every gene
    at the mean over types -- each type weighted by one over the number of
    types it resembles in a first, unweighted pass, so that a family of
    many subtypes does not define the average type (and make all other
    types look alike by deviating from it the same way).  Two types are
    similar when their centred profiles correlate (Pearson r): they are
    high and low in the same genes.  The types are
    clustered by average linkage on ``1 - r`` and the tree is cut:

    * by default, at the number of lineages with the largest mean
      silhouette width [2]_ -- each type's average distance to the other
      lineages against its average distance to its own -- the rule with
      which rectanglepy [1]_ chooses its clusters; a tie goes to more
      lineages.  The candidates are 2 to k - 1 lineages (at most
      ``max_lineages``) whose merges all join groups of positive average
      correlation: types more alike than unrelated ones, whose centred
      profiles correlate at about ``-1 / (f - 1)`` for ``f`` families, so
      that two types are never one lineage only because the silhouette
      cannot tell a pair of unrelated types from two types alone (both
      score 0);
    * with ``min_correlation``, where the average correlation between two
      merged groups falls below it;
    * with ``n_lineages``, into that many lineages.

    Parameters
    ----------
    signature : pandas.DataFrame
        Genes x cell types, linear scale (the genes used to compare the
        profiles: pass the genes common to the bulk, or marker genes).
    n_lineages : int, optional
        Number of lineages (1 to k).
    min_correlation : float, optional
        Merge groups whose average correlation is at least this (in (-1, 1)).
    max_lineages : int, optional
        Most lineages the default rule may choose.

    Returns
    -------
    pandas.Series
        Cell type -> lineage name, in the signature's order (named
        ``"lineage"``).  A type alone in its lineage keeps its name; a
        lineage of several types is named by its types joined with
        ``" + "``.

    Raises
    ------
    ValueError
        If more than one of ``n_lineages`` and ``min_correlation`` is given,
        an option is out of range, or the signature has no positive value.

    References
    ----------
    .. [1] Eder B. et al. (2026) Rectangle: robust and scalable multiscale
       deconvolution informed by single-cell RNA sequencing data. bioRxiv.
       doi:10.64898/2026.07.07.736950
    .. [2] Rousseeuw P. J. (1987) Silhouettes: a graphical aid to the
       interpretation and validation of cluster analysis. J Comput Appl Math
       20:53-65. doi:10.1016/0377-0427(87)90125-7

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from fastdeconv.hierarchical import lineages
    >>> rng = np.random.default_rng(0)
    >>> t, b, m = rng.gamma(0.5, 100.0, size=(3, 200))
    >>> sig = pd.DataFrame({"CD4": t * rng.lognormal(0, 0.2, 200),
    ...                     "CD8": t * rng.lognormal(0, 0.2, 200), "B": b, "Mono": m})
    >>> lineages(sig).tolist()
    ['CD4 + CD8', 'CD4 + CD8', 'B', 'Mono']
    >>> lineages(sig, n_lineages=2).nunique()
    2
    """
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    if not isinstance(signature, pd.DataFrame):
        raise TypeError(f"signature must be a pandas DataFrame (genes x cell types), got "
                        f"{type(signature).__name__}")
    types = signature.columns
    k = len(types)
    if n_lineages is not None and min_correlation is not None:
        raise ValueError("give at most one of n_lineages= and min_correlation=")
    if n_lineages is not None:
        n_lineages = check_int(n_lineages, "n_lineages")
        if n_lineages > k:
            raise ValueError(f"n_lineages must be at most the number of cell types ({k}), "
                             f"got {n_lineages}")
    if min_correlation is not None:
        min_correlation = check_float(min_correlation, "min_correlation", minimum=-1.0,
                                      maximum=1.0)
    if max_lineages is not None:
        max_lineages = check_int(max_lineages, "max_lineages")
    if k == 0:
        raise ValueError("the signature has no cell types")
    if k == 1:
        return _names(types, np.zeros(1, dtype=int))
    d = _profile_distances(signature)
    tree = linkage(squareform(d, checks=False), method="average")
    if n_lineages is not None:
        labels = fcluster(tree, n_lineages, criterion="maxclust")
    elif min_correlation is not None:
        # merge heights are 1 - r; fcluster keeps the merges at heights <= t
        labels = fcluster(tree, 1.0 - min_correlation, criterion="distance")
    else:
        top = k - 1 if max_lineages is None else min(k - 1, max_lineages)
        # fewest lineages without merging groups that are not positively correlated
        fewest = len(np.unique(fcluster(tree, 1.0, criterion="distance")))
        labels, best = np.arange(k), -np.inf  # k <= 2: every type its own lineage
        for n in range(top, max(fewest, 2) - 1, -1):  # more lineages first: a tie keeps more
            cut = fcluster(tree, n, criterion="maxclust")
            score = _silhouette(d, cut) if len(np.unique(cut)) > 1 else -np.inf
            if score > best + 1e-12:
                best, labels = score, cut
        if max_lineages is not None and len(np.unique(labels)) > max_lineages:
            labels = fcluster(tree, max_lineages, criterion="maxclust")
    return _names(types, labels)


# ---------------------------------------------------------------------------
# a lineage map from the user
# ---------------------------------------------------------------------------


def _bad_name(value):
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return True
    return str(value).strip() == ""


def check_hierarchy(hierarchy, types, *, option="hierarchy="):
    """Validate a user's lineage map against the signature's cell types.

    Parameters
    ----------
    hierarchy : dict or pandas.Series
        Cell type -> lineage name; or lineage name -> list of its cell
        types (a dict whose values are lists, tuples or sets).  Every cell
        type of the signature must be in exactly one lineage; a type alone
        in a lineage is fitted at level 1 only.
    types : sequence of str
        The signature's cell types.
    option : str, default "hierarchy="
        How the messages name the option (the command line passes
        ``"--hierarchy"``).

    Returns
    -------
    pandas.Series
        Cell type -> lineage name, in the order of ``types`` (named
        ``"lineage"``).

    Raises
    ------
    TypeError
        If ``hierarchy`` is not a dict or a Series.
    ValueError
        If a cell type is missing or unknown, in two lineages, a lineage has
        no name or no type, or is named like a cell type it does not hold;
        the message names the option (``hierarchy=``).

    Examples
    --------
    >>> from fastdeconv.hierarchical import check_hierarchy
    >>> check_hierarchy({"T": ["CD4", "CD8"], "B": ["B"]}, ["CD4", "CD8", "B"]).tolist()
    ['T', 'T', 'B']
    >>> try:
    ...     check_hierarchy({"CD4": "T", "B": "B"}, ["CD4", "CD8", "B"])
    ... except ValueError as err:
    ...     print(err)  # doctest: +NORMALIZE_WHITESPACE
    hierarchy= gives no lineage to 1 cell type(s) of the signature: ['CD8']; map every
    cell type to a lineage (a type of its own: map it to its own name)
    """
    types = [str(t) for t in types]
    if isinstance(hierarchy, pd.Series):
        pairs = [(str(t), lin) for t, lin in hierarchy.items()]
    elif isinstance(hierarchy, dict):
        listed = (list, tuple, set, frozenset, pd.Index)
        grouped = [isinstance(v, listed) for v in hierarchy.values()]
        if any(grouped) and not all(grouped):
            raise ValueError(
                f"{option} mixes the two forms: give either cell type -> lineage name, or "
                "lineage name -> list of cell types"
            )
        if grouped and all(grouped):
            pairs = []
            for lin, members in hierarchy.items():
                if len(members) == 0:
                    raise ValueError(f"{option} gives lineage {lin!r} no cell type; every "
                                     "lineage needs at least one")
                pairs += [(str(t), lin) for t in members]
        else:
            pairs = [(str(t), lin) for t, lin in hierarchy.items()]
    else:
        raise TypeError(
            f"{option} must be None, 'auto', a dict cell type -> lineage name (or lineage "
            f"name -> list of cell types) or a pandas Series; got {type(hierarchy).__name__}"
        )
    seen = {}
    for t, lin in pairs:
        if _bad_name(lin):
            raise ValueError(f"{option} gives cell type {t!r} an empty lineage name ({lin!r})")
        if t in seen and seen[t] != str(lin):
            raise ValueError(f"{option} puts cell type {t!r} in two lineages: {seen[t]!r} and "
                             f"{str(lin)!r}")
        seen[t] = str(lin)
    known = set(types)
    unknown = [t for t in seen if t not in known]
    if unknown:
        raise ValueError(
            f"{option} names {len(unknown)} cell type(s) that are not in the signature: "
            f"{unknown[:6]}; the signature's types: {types[:12]}"
        )
    missing = [t for t in types if t not in seen]
    if missing:
        raise ValueError(
            f"{option} gives no lineage to {len(missing)} cell type(s) of the signature: "
            f"{missing[:6]}; map every cell type to a lineage (a type of its own: map it to its "
            "own name)"
        )
    clash = [t for t in types if t in set(seen.values()) and seen[t] != t]
    if clash:
        lin = clash[0]
        raise ValueError(
            f"{option} names a lineage {lin!r} like a cell type of lineage {seen[lin]!r}; "
            "a lineage may carry a cell type's name only when it holds that type"
        )
    return pd.Series([seen[t] for t in types], index=pd.Index(types), name="lineage")


def read_hierarchy(path):
    """Read a lineage map from a two-column table: cell type, lineage.

    The file has a header line; the first column holds the cell types, the
    second their lineages (the form the command line's ``--hierarchy FILE``
    reads).  Validate the result against the signature with
    :func:`check_hierarchy`.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.tsv``/``.csv`` file (optionally ``.gz``), read by
        :func:`fastdeconv.io.read_table`.

    Returns
    -------
    pandas.Series
        Cell type -> lineage name.

    Raises
    ------
    ValueError
        If the table has no lineage column or a cell type appears twice.

    Examples
    --------
    >>> import os, tempfile
    >>> from fastdeconv.hierarchical import read_hierarchy
    >>> with tempfile.TemporaryDirectory() as d:
    ...     path = os.path.join(d, "lineages.tsv")
    ...     with open(path, "w") as fh:
    ...         _ = fh.write("cell_type\\tlineage\\nCD4\\tT\\nCD8\\tT\\nB\\tB\\n")
    ...     read_hierarchy(path).to_dict()
    {'CD4': 'T', 'CD8': 'T', 'B': 'B'}
    """
    from fastdeconv.io import read_table

    table = read_table(path, numeric=False)
    if table.shape[1] < 1:
        raise ValueError(f"{path}: a hierarchy file needs two columns, cell type and lineage "
                         "(with a header line)")
    column = table.iloc[:, 0]
    twice = column.index[column.index.duplicated()].unique().tolist()
    if twice:
        raise ValueError(f"{path}: cell type(s) listed twice: {twice[:6]}")
    return pd.Series(column.to_numpy(), index=column.index.astype(str), name="lineage")


# ---------------------------------------------------------------------------
# the two levels
# ---------------------------------------------------------------------------


@dataclass
class HierarchicalFit:
    """Result of :func:`fit_hierarchical`.

    Attributes
    ----------
    proportions : pandas.DataFrame
        Samples x cell types (signature order), then any extra columns of
        the level-1 fit (e.g. ``"unexplained"``); rows sum to one.
    lineage_proportions : pandas.DataFrame
        Samples x lineages: the level-1 estimate of every lineage's share.
    shares : pandas.DataFrame
        Samples x cell types: every type's share of its lineage (level 2;
        1 for a type alone in its lineage).
    lineages : pandas.Series
        Cell type -> lineage name.
    columns : str
        The form of the level fits (``"types"`` or ``"lineages"``).

    Examples
    --------
    >>> from fastdeconv.hierarchical import HierarchicalFit
    >>> HierarchicalFit.__dataclass_fields__.keys() >= {"proportions", "lineages"}
    True
    """

    proportions: pd.DataFrame
    lineage_proportions: pd.DataFrame
    shares: pd.DataFrame
    lineages: pd.Series
    columns: str


def _groups(lineage_map):
    """Lineage -> list of its types, lineages in the order of their first type."""
    groups = {}
    for t, lin in lineage_map.items():
        groups.setdefault(lin, []).append(t)
    return groups


def _level_frame(result, columns, samples, what):
    """Check a level fit's answer: samples x (at least) the signature's columns."""
    if not isinstance(result, pd.DataFrame):
        raise TypeError(f"the level fit must return a pandas DataFrame (samples x columns), "
                        f"got {type(result).__name__} for {what}")
    missing = [c for c in columns if c not in result.columns]
    if missing:
        raise ValueError(f"the level fit's answer for {what} lacks the columns {missing[:6]}")
    if len(result.index) != len(samples) or not result.index.equals(samples):
        result = result.reindex(samples)
    return result


def _shares(q, fallback, total):
    """Rows of q divided by their sums; the fallback's rows where q has none.

    A row with no share in either (its lineage has none) gets equal parts,
    a row whose lineage ``total`` is NaN gets NaN.
    """
    none = ~(q.sum(axis=1) > 0)
    q = np.where(none[:, None], fallback, q)
    sums = q.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(sums > 0, q / sums, 1.0 / q.shape[1])
    out[np.isnan(total)] = np.nan
    return out


def _level1_genes(genes):
    """The genes= rule of level 1: lineage markers unless the user fixed the genes."""
    if isinstance(genes, str):
        check_choice(genes, "genes", GENES)
        return "markers" if genes in ("auto", "markers") else genes
    return genes


def fit_hierarchical(signature, bulk, hierarchy, fit, *, genes="auto", columns="types"):
    """Estimate proportions in two levels: lineages, then subtypes within lineages.

    Level 1 estimates every lineage's share ``P[L]``; level 2, for every
    lineage ``L`` of more than one type, estimates the proportions ``q`` of
    its types in a fit whose genes are chosen to separate them, and keeps
    their shares ``q[t] / sum(q[L])``.  A type's proportion is
    ``P[L] * q[t] / sum(q[L])``, so every sample's proportions sum to what
    level 1's do (one).  Every fit is ``fit(sig, bulk, markers, genes)``;
    the level decides ``sig`` (the columns fitted), ``markers`` (the columns
    the genes are chosen for) and ``genes`` (the rule):

    =========  ===========================  ==================================
    level      ``columns="types"``          ``columns="lineages"``
    =========  ===========================  ==================================
    1          all types, genes for the     one mean profile per lineage,
               lineages' mean profiles;     genes for them
               ``P[L]`` = sum over ``L``
    2 (``L``)  all types, genes for         ``L``'s types and one mean profile
               ``L``'s types and the other  per other lineage, genes for them
               lineages' means
    =========  ===========================  ==================================

    Level 1 uses the marker genes of the lineages (``genes="markers"``)
    unless ``genes`` fixes the genes (``"all"`` or a list): estimating the
    lineages' shares on the genes that tell lineages apart -- genes shared
    by all of a lineage's types, which a flat fit's markers (specific to
    one type) leave out -- is what the first level adds.  Level 2 applies
    ``genes`` as the flat fit would (``"auto"``: all genes of a curated
    signature, markers of a whole-transcriptome one).  With ``"all"`` or a
    list, ``columns="types"`` therefore equals the flat fit.

    A lineage's mean profile is the plain mean of its types' profiles: the
    profile of the lineage when its types are mixed in equal parts (a
    signature carries no cell counts to weight it by).  With
    ``columns="types"`` it only chooses genes, so the answer is exact on
    noise-free mixtures whatever the mix within lineages (when the signature
    has full column rank on every level's genes); with ``"lineages"`` it is
    fitted, which biases lineages whose types are not mixed equally.

    When level 2 gives a lineage's types nothing although level 1 gives the
    lineage a share, the shares fall back to the level-1 fit's split
    (``"types"``) or to equal parts (``"lineages"``, the mean profile's
    assumption).  Samples that level 1 leaves NaN stay NaN.

    Parameters
    ----------
    signature : pandas.DataFrame
        Genes x cell types, linear scale, the genes common to bulk and
        signature.
    bulk : pandas.DataFrame
        Genes x samples, holding every gene of the signature.
    hierarchy : pandas.Series or dict
        Cell type -> lineage (see :func:`check_hierarchy`); from
        :func:`lineages` for an automatic one.
    fit : callable
        ``fit(sig, bulk, markers, genes) -> DataFrame``: proportions
        (samples x at least the columns of ``sig``, each row summing to one
        over them, NaN for a sample it cannot fit) of the bulk with the
        signature ``sig`` (genes x columns), on the genes that the rule
        ``genes`` (as ``genes=`` of :func:`fastdeconv.deconvolve`) picks for
        the table ``markers`` (genes x groups, the same genes).  Extra
        columns (``"unexplained"``) of the level-1 answer are kept.
        :func:`fastdeconv.deconvolve` (``hierarchy=``) makes one.
    genes : {"auto", "markers", "all"} or list of str, default "auto"
        The genes rule (see above).
    columns : {"types", "lineages"}, default "types"
        The form of the level fits (see above).

    Returns
    -------
    HierarchicalFit
        ``.proportions`` (samples x types), ``.lineage_proportions``,
        ``.shares``, ``.lineages``.

    Raises
    ------
    ValueError
        If the hierarchy does not match the signature's types
        (``hierarchy=``), the bulk lacks genes of the signature, or an
        option is unknown.

    See Also
    --------
    lineages : an automatic hierarchy.
    fastdeconv.deconvolve : ``hierarchy=`` runs this with its methods.

    References
    ----------
    .. [1] Eder B. et al. (2026) Rectangle: robust and scalable multiscale
       deconvolution informed by single-cell RNA sequencing data. bioRxiv.
       doi:10.64898/2026.07.07.736950

    Examples
    --------
    Two near-identical T-cell subtypes and two distinct types, mixed without
    noise: the hierarchy recovers every proportion.

    >>> import numpy as np, pandas as pd
    >>> from fastdeconv import nnls
    >>> from fastdeconv.hierarchical import fit_hierarchical
    >>> def level_fit(sig, bulk, markers, genes):  # NNLS on all genes, normalised
    ...     x = nnls(sig.to_numpy(), bulk.to_numpy())
    ...     return pd.DataFrame((x / x.sum(axis=0)).T, index=bulk.columns, columns=sig.columns)
    >>> rng = np.random.default_rng(0)
    >>> t, b, m = rng.gamma(0.5, 100.0, size=(3, 300))
    >>> sig = pd.DataFrame({"CD4": t * rng.lognormal(0, 0.1, 300),
    ...                     "CD8": t * rng.lognormal(0, 0.1, 300), "B": b, "Mono": m},
    ...                    index=[f"g{i}" for i in range(300)])
    >>> truth = np.array([[0.5, 0.1, 0.2, 0.2], [0.1, 0.3, 0.3, 0.3]])
    >>> bulk = pd.DataFrame(sig.to_numpy() @ truth.T, index=sig.index, columns=["s1", "s2"])
    >>> res = fit_hierarchical(sig, bulk, {"CD4": "T", "CD8": "T", "B": "B", "Mono": "Mono"},
    ...                        level_fit)
    >>> res.proportions.round(3)
        CD4  CD8    B  Mono
    s1  0.5  0.1  0.2   0.2
    s2  0.1  0.3  0.3   0.3
    >>> res.lineage_proportions.round(3)
          T    B  Mono
    s1  0.6  0.2   0.2
    s2  0.4  0.3   0.3
    """
    check_choice(columns, "columns", COLUMNS)
    level1_genes = _level1_genes(genes)
    if not isinstance(signature, pd.DataFrame) or not isinstance(bulk, pd.DataFrame):
        raise TypeError("signature and bulk must be pandas DataFrames (genes x cell types, "
                        "genes x samples)")
    types = list(signature.columns)
    lineage_map = check_hierarchy(hierarchy, types)
    lost = signature.index.difference(bulk.index)
    if len(lost):
        raise ValueError(f"the bulk lacks {len(lost)} gene(s) of the signature "
                         f"(first: {list(lost[:5])}); give the genes common to both")
    bulk = bulk.loc[signature.index]
    samples = bulk.columns
    groups = _groups(lineage_map)
    names = list(groups)
    means = pd.DataFrame({L: signature[ts].mean(axis=1) for L, ts in groups.items()},
                         index=signature.index)

    # level 1: the lineages' shares
    extra = pd.DataFrame(index=samples)
    p1 = None
    if columns == "types":
        p1 = _level_frame(fit(signature, bulk, means, level1_genes), types, samples, "level 1")
        lineage_p = pd.DataFrame({L: p1[ts].sum(axis=1, min_count=1) for L, ts in groups.items()},
                                 index=samples)
        extra = p1.drop(columns=types)
    elif len(names) == 1:
        lineage_p = pd.DataFrame({names[0]: np.ones(len(samples))}, index=samples)
    else:
        level = _level_frame(fit(means, bulk, means, level1_genes), names, samples, "level 1")
        lineage_p = level[names].copy()
        extra = level.drop(columns=names)

    # level 2: every lineage's split among its types
    shares = pd.DataFrame(1.0, index=samples, columns=types)
    for L, ts in groups.items():
        if len(ts) == 1:
            continue
        others = [M for M in names if M != L]
        table = pd.concat([signature[ts], means[others]], axis=1)
        what = f"lineage {L!r}"
        if columns == "types":
            q = _level_frame(fit(signature, bulk, table, genes), types, samples, what)[ts]
            fallback = p1[ts]
        else:
            q = _level_frame(fit(table, bulk, table, genes), ts, samples, what)[ts]
            fallback = pd.DataFrame(1.0, index=samples, columns=ts)
        shares[ts] = _shares(q.to_numpy(dtype=np.float64), fallback.to_numpy(dtype=np.float64),
                             lineage_p[L].to_numpy())

    proportions = pd.DataFrame(
        {t: shares[t] * lineage_p[lineage_map[t]] for t in types}, index=samples
    )
    for name in extra.columns:
        proportions[name] = extra[name]
    return HierarchicalFit(
        proportions=proportions,
        lineage_proportions=lineage_p,
        shares=shares,
        lineages=lineage_map,
        columns=columns,
    )
