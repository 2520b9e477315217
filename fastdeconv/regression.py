"""Reference-based regression: from expression tables to cell-type proportions.

:func:`deconvolve` is the one pipeline for a bulk expression table and a
signature (reference profiles).  Its steps, each a function below:

1. check the options and turn them into the solvers' vocabulary
   (``_check_options``: the method's record from
   :data:`fastdeconv.methods.REGRESSION`, ``robust`` -> the Huber options);
2. read the tables (:func:`fastdeconv.inputs.read_expression`), match genes by
   name and select informative genes (:func:`select_marker_genes`);
3. the user's gene weights on the genes used (``_gene_weights``);
4. fit every sample with the chosen method (``_fit_samples``; a method
   is a function ``fit(RegressionProblem) -> MethodFit``, see
   :mod:`fastdeconv.methods._problem`);
5. assemble the :class:`DeconvolutionResult`: proportions, fit statistics
   (computed once, :func:`fastdeconv.methods._problem.fit_statistics`), names attached again.

The pipeline never names a method: what it does with one (weights,
background, normalisation, extra columns) it reads from the method's record.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from fastdeconv._checks import check_choice
from fastdeconv._deprecated import moved_names
from fastdeconv._parallel import resolve_n_jobs
from fastdeconv.bayes import DEFAULT_EXCLUDE, FRACTIONS
from fastdeconv._progress import progress_bar
from fastdeconv.inputs import (
    check_orientation,
    harmonize_genes,
    match_genes,
    read_expression,
    warn_if_collinear,
)
from fastdeconv.inputs.tables import warn_if_zero_samples
from fastdeconv.inputs._common import is_anndata
from fastdeconv.inputs.blocks import stored_sparse
from fastdeconv.methods import REGRESSION, SPOT_OPTIONS
from fastdeconv.methods._problem import (
    MethodFit, RegressionProblem, fit_statistics, with_background,
)
from fastdeconv.blockwise import BLOCK, BlockFitter, fit_samples, no_cell_type
from fastdeconv.results import ProportionsResult

__all__ = ["deconvolve", "DeconvolutionResult", "select_marker_genes"]

#: Most genes per cell type that CIBERSORT's signature-matrix builder keeps (it
#: searches 50-200); a signature with at most this many genes per type is taken
#: to be a curated signature matrix and used whole by ``genes="auto"``.
CURATED_GENES_PER_TYPE = 200
#: A "signature" with more columns than this, all whole numbers, is taken to be single-cell
#: counts given without their labels (LM22 has 22 types; single cells come in hundreds).
_MAX_SIGNATURE_TYPES = 100
#: ``robust=`` values -> the loss the methods minimise.
_LOSS_OF_ROBUST = {"huber": "huber", None: "squared"}

# ``fastdeconv.deconvolve.to_cell_fractions`` (the old module path) reaches this module
__getattr__ = moved_names(__name__, {"to_cell_fractions": "fastdeconv.fractions"})


# ---------------------------------------------------------------------------
# gene selection
# ---------------------------------------------------------------------------


def select_marker_genes(
    signature, *, n_markers=100, min_fold_change=2.0, min_per_type=10, pseudocount=None
):
    """Pick the genes that tell the cell types of a signature apart.

    Each gene is assigned to the cell type in which it is highest, and scored
    by its fold change over the *second* highest type, with a pseudocount
    ``c``: ``(S[g, first] + c) / (S[g, second] + c)``.  For every type the genes
    assigned to it with a fold change of at least ``min_fold_change`` are
    ranked by that fold change and the best ``n_markers`` kept.  A type with
    fewer than ``min_per_type`` such genes keeps its ``min_per_type``
    best-ranked genes anyway (a type with no gene of its own cannot be
    estimated).

    The pseudocount (default: the mean of all signature values) keeps genes
    expressed far below the average gene from winning on a ratio of two tiny
    numbers: such ratios are dominated by measurement noise (sampling noise of
    single-cell profiles, the background of arrays).  Because it is a mean of
    the data, the selection does not change when the signature is rescaled.

    This is the rule by which marker-based signatures such as LM22 are
    built (genes specific to one type, capped per type so that every type is
    represented equally); applied to whole-transcriptome references it drops
    the many genes shared by all types, whose measurement noise and
    platform effects otherwise dominate a least-squares fit.

    Parameters
    ----------
    signature : pandas.DataFrame
        Genes x cell types, linear scale.
    n_markers : int, default 100
        Most genes kept per cell type (the middle of the 50-200 genes per
        type among which CIBERSORT's signature builder chooses).
    min_fold_change : float, default 2.0
        Smallest fold change (highest / second highest type) of a marker.
    min_per_type : int, default 10
        Fewest genes kept per type, relaxing ``min_fold_change`` if needed.
    pseudocount : float, optional
        Added to both sides of the fold change; default the mean of the
        signature's values; 0 for the plain ratio.

    Returns
    -------
    list of str
        The selected genes, in signature order.

    References
    ----------
    .. [1] Newman A. M. et al. (2015) Robust enumeration of cell subsets from
       tissue expression profiles. Nat Methods 12:453-457. doi:10.1038/nmeth.3337
    .. [2] Abbas A. R. et al. (2009) Deconvolution of blood microarray data
       identifies cellular activation patterns in systemic lupus erythematosus.
       PLoS One 4(7):e6098. doi:10.1371/journal.pone.0006098

    Examples
    --------
    >>> import pandas as pd
    >>> from fastdeconv.regression import select_marker_genes
    >>> sig = pd.DataFrame({"T": [100.0, 5.0, 50.0, 9.0, 0.5], "B": [10.0, 80.0, 45.0, 10.0, 0.01]},
    ...                    index=["CD3E", "MS4A1", "ACTB", "GAPDH", "NOISY"])
    >>> select_marker_genes(sig, min_per_type=1)
    ['CD3E', 'MS4A1']
    >>> select_marker_genes(sig, min_per_type=1, n_markers=1, pseudocount=0.0)  # 0.5/0.01 wins
    ['MS4A1', 'NOISY']
    """
    if n_markers < 1 or min_per_type < 0 or min_fold_change < 1:
        raise ValueError(
            "need n_markers >= 1, min_per_type >= 0 and min_fold_change >= 1, got "
            f"{n_markers}, {min_per_type}, {min_fold_change}"
        )
    values = signature.to_numpy(dtype=np.float64)
    k = values.shape[1]
    if k == 1:
        return list(signature.index)
    c = float(values.mean()) if pseudocount is None else float(pseudocount)
    if not np.isfinite(c) or c < 0:
        raise ValueError(f"pseudocount must be finite and >= 0, got {pseudocount}")
    order = np.sort(values, axis=1)
    top = np.argmax(values, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        fold = (order[:, -1] + c) / (order[:, -2] + c)
    fold = np.where(order[:, -1] <= 0, 0.0, np.nan_to_num(fold, nan=0.0, posinf=np.inf))
    keep = np.zeros(values.shape[0], dtype=bool)
    for t in range(k):
        idx = np.flatnonzero(top == t)
        idx = idx[np.argsort(-fold[idx], kind="stable")]
        n_pass = int(np.count_nonzero(fold[idx] >= min_fold_change))
        n_keep = min(n_markers, max(n_pass, min_per_type))
        keep[idx[:n_keep]] = True
    return [g for g, k_ in zip(signature.index, keep) if k_]


def _choose_genes(signature, genes, n_markers, min_fold_change):
    """Apply the ``genes=`` option to the matched signature; return the gene list."""
    k = signature.shape[1]
    if isinstance(genes, str):
        if genes == "all":
            return list(signature.index)
        if genes == "markers" or (
            genes == "auto" and signature.shape[0] > CURATED_GENES_PER_TYPE * k
        ):
            return select_marker_genes(
                signature, n_markers=n_markers, min_fold_change=min_fold_change
            )
        if genes == "auto":
            return list(signature.index)
        raise ValueError(
            f"genes must be 'auto', 'markers', 'all' or a list of gene names, got {genes!r}"
        )
    wanted = [str(g) for g in genes]
    present = signature.index.intersection(pd.Index(wanted))
    if len(present) < k:
        raise ValueError(
            f"only {len(present)} of the {len(wanted)} genes given in genes= are among the "
            f"genes common to bulk and signature; at least {k} (one per cell type) are needed"
        )
    return signature.index[signature.index.isin(present)].tolist()


# ---------------------------------------------------------------------------
# the pipeline's steps
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Options:
    """The options of one run, checked and in the solvers' vocabulary."""

    method: object  # the Method record
    background: bool
    solver: dict  # huber, n_jobs, max_iter, tol: the RegressionProblem's options


def _check_options(
    method, weights, robust, background, max_reweight, reweight_tol, n_jobs, max_iter, tol
):
    """Validate the method's options once; convert them to what the solvers take."""
    from fastdeconv.kernels.robust import HUBER_C
    from fastdeconv.solvers._validate import validate_loss, validate_options

    record = REGRESSION.get(method)
    loss = _LOSS_OF_ROBUST[check_choice(robust, "robust", tuple(_LOSS_OF_ROBUST))]
    if loss not in record.losses:
        raise ValueError(
            f"method {record.name!r} does not support robust={robust!r}; it minimises "
            f"{', '.join(record.losses)}"
        )
    if record.weights == "required" and weights is None:
        raise ValueError(
            f"method={record.name!r} needs per-gene weights: pass weights= (one per gene)"
        )
    _refuse_weights(record, weights)
    if isinstance(weights, str):
        check_choice(weights, "weights", WEIGHT_RULES)
    if background is None:
        background = record.background
    elif background and not record.background:
        able = " or ".join(repr(m.name) for m in REGRESSION if m.background)
        raise ValueError(
            f"background=True needs method {able}: method {record.name!r} fits no background "
            "level beside the cell types (a sum constraint would include it); use one of those "
            "or background=False"
        )
    # the Huber options are checked even for robust=None, so that a wrong value is never silent
    huber = validate_loss("huber", HUBER_C, max_reweight, reweight_tol)
    max_iter, tol = validate_options(max_iter, tol)
    solver = dict(
        huber=huber if loss == "huber" else None, n_jobs=resolve_n_jobs(n_jobs),
        max_iter=max_iter, tol=tol,
    )
    return _Options(record, bool(background), solver)


def _check_needs(record, cells_given, subjects_given):
    """A method that needs single cells (or subjects) is refused without them, and vice versa."""
    from fastdeconv.errors import Fix, InputProblem

    if "cells" in record.needs and not cells_given:
        raise InputProblem(
            f"method={record.name!r} needs a single-cell reference: pass raw counts "
            "(genes x cells) as the signature with the cell type of every cell as {0}",
            Fix("labels", "LABELS"),
        )
    if "subjects" in record.needs and not subjects_given:
        raise InputProblem(
            f"method={record.name!r} uses the variation between donors: pass the donor (or "
            "batch) of every cell as {0}",
            Fix("subjects", "SUBJECTS"),
        )
    if subjects_given and not record.uses("subjects"):
        users = ", ".join(repr(m.name) for m in REGRESSION if m.uses("subjects")) or "none"
        raise ValueError(
            f"subjects= is used only by the methods that need donors ({users}), not by "
            f"method={record.name!r}: drop it or choose one of those"
        )


def _cell_context(counts, built, labels, label_key, subjects, subject_key, normalized, n_jobs,
                  *, case_insensitive, strip_version):
    """The single-cell context of a method that needs cells, and its gene names (harmonised)."""
    from fastdeconv.inputs.counts import as_labels, check_raw
    from fastdeconv.methods._problem import CellContext

    counts = check_raw(counts, normalized, needs="the method reads the cells' counts",
                       if_normalized="the RNA per cell is then unknown")
    types = as_labels(labels, counts, label_key=label_key)
    donors = None
    if subjects is not None or subject_key is not None:
        donors = as_labels(subjects, counts, label_key=subject_key,
                           keywords=("subjects", "subject_key"))
    context = CellContext.from_counts(counts, types, list(built.signature.columns),
                                      subjects=donors, n_jobs=n_jobs)
    genes = harmonize_genes(
        pd.DataFrame(index=counts.genes, columns=[]), name="reference",
        case_insensitive=case_insensitive, strip_version=strip_version, duplicates="raise",
        duplicates_option=None,
    ).index
    return context, genes


def _refuse_weights(record, weights):
    """Refuse per-gene weights for a method whose record says it takes none."""
    if record.weights == "unsupported" and weights is not None:
        raise ValueError(f"method={record.name!r} takes no per-gene weights; drop weights=")


def _check_cell_types(signature):
    """Refuse a signature with fewer than two cell types (every proportion would be 1)."""
    k = signature.shape[1]
    if k < 2:
        names = ", ".join(repr(str(c)) for c in signature.columns) or "none"
        raise ValueError(
            f"the signature has {k} cell type ({names}): a deconvolution needs at least two "
            "cell types (one column per cell type, genes as rows), or every proportion is 1"
        )


def _gene_weights(weights, signature_genes, used, *, case_insensitive, strip_version,
                  signature_used=None):
    """The user's gene weights on the genes used, validated (None without weights).

    A Series is matched by gene name (genes without a weight get 0), a rule's name
    (:data:`WEIGHT_RULES`) is computed on ``signature_used`` (the signature on the genes
    used), anything else must hold one weight per signature gene, in signature order.
    """
    if weights is None:
        return None
    if isinstance(weights, str):
        return weights_of_rule(weights, signature_used)
    if isinstance(weights, pd.Series):
        _check_weight_values(weights.to_numpy(dtype=np.float64))
        names = harmonize_genes(
            weights.to_frame(), name="weights", case_insensitive=case_insensitive,
            strip_version=strip_version, duplicates="raise", duplicates_option=None,
        ).index
        full = weights.set_axis(names).reindex(signature_genes).fillna(0.0)
    else:
        values = np.asarray(weights, dtype=np.float64).reshape(-1)
        if values.shape[0] != len(signature_genes):
            raise ValueError(
                f"weights has {values.shape[0]} entries but the signature has "
                f"{len(signature_genes)} genes; pass one weight per signature gene, or a pandas "
                "Series indexed by gene"
            )
        full = pd.Series(values, index=signature_genes)
    _check_weight_values(full.to_numpy())
    w0 = np.ascontiguousarray(full.loc[used].to_numpy(dtype=np.float64))
    if not np.any(w0 > 0):
        raise ValueError("all weights of the genes used are zero")
    return w0


#: Gene weights by a rule on the signature (``weights="poisson"|"relative"``), see
#: :func:`weights_of_rule`.
WEIGHT_RULES = ("poisson", "relative")


def weights_of_rule(rule, signature):
    """Gene weights from a variance model of the bulk, computed on the signature alone.

    ``mu_g`` is gene ``g``'s expression in an even mixture (the mean of its row of the
    signature) and ``m`` the median of ``mu`` over the genes used:

    - ``"poisson"``: ``w_g = 1 / (mu_g + m)``, variance proportional to the mean
      (counts), floored at the typical gene;
    - ``"relative"``: ``w_g = 1 / (mu_g^2 + m^2)``, the two-component model of Rocke and
      Durbin (2001): constant error for quiet genes, error proportional to the level for
      expressed ones (DWLS's ``1 / (S x)^2`` at an even mixture, capped at the median).

    The weights are the same for every sample (so the fit stays in Gram form: the bulk is
    projected once) and do not depend on the bulk (a sample's answer does not depend on
    the other samples).  They are scaled to a mean of 1.

    Parameters
    ----------
    rule : {"poisson", "relative"}
    signature : ndarray, shape (n, k)
        The signature on the genes used.

    Returns
    -------
    ndarray, shape (n,)

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.regression import weights_of_rule
    >>> S = np.array([[1.0, 3.0], [10.0, 30.0], [100.0, 300.0]])
    >>> weights_of_rule("relative", S).round(3).tolist()
    [1.98, 1.0, 0.02]
    """
    mu = np.asarray(signature, dtype=np.float64).mean(axis=1)
    m = float(np.median(mu))
    if not m > 0:
        m = float(mu.mean()) if mu.mean() > 0 else 1.0
    w = 1.0 / (mu + m) if rule == "poisson" else 1.0 / (mu * mu + m * m)
    return np.ascontiguousarray(w / w.mean())


def _check_weight_values(values):
    """Every weight given must be a finite, non-negative number (a NaN is never taken as 0)."""
    if not np.all(np.isfinite(values)) or (values < 0).any():
        raise ValueError("weights must be finite and non-negative (a missing weight is not 0: "
                         "give 0 explicitly)")


def _proportions(record, coef, none, zero, robust=False):
    """Proportions from the coefficients as the method's record says (normalised or not).

    ``none``: the samples no cell type explains (:func:`fastdeconv.blockwise.no_cell_type`),
    whose normalised proportions are NaN.
    """
    if not record.normalise:
        return coef.copy()
    X = coef.to_numpy().T
    with np.errstate(invalid="ignore", divide="ignore"):
        P = X / X.sum(axis=0)
    # no cell type explains the sample: the cell-type part of the fit is
    # at rounding level next to the bulk (e.g. a background-only sample)
    empty = none & ~zero
    P[:, none] = np.nan
    if empty.any():
        names = [str(coef.index[j]) for j in np.flatnonzero(empty)]
        warnings.warn(
            f"{len(names)} sample(s) are explained by no cell type (all coefficients 0, "
            f"first: {names[:5]}); their proportions are NaN. The bulk may not match the "
            "signature (other genes, other cell types, or background only)"
            + ("; with Huber's loss, counts that are mostly 0 (spots, cells) can lose all "
               "their weight: pass them as a sparse matrix (their default fits squares), "
               "or pass robust=None" if robust else ""),
            UserWarning,
            stacklevel=3,
        )
    return pd.DataFrame(P.T, index=coef.index, columns=coef.columns)


def _fit_table(fit, S_fit, B, level, zero, samples):
    """The per-sample fit diagnostics: statistics of the reconstruction and the method's own."""
    X = fit.coefficients
    resid_norm, rmse, r2, pearson = fit_statistics(
        S_fit, B if fit.observed is None else fit.observed, np.nan_to_num(X), fitted=fit.fitted)
    k = X.shape[0] if level is None else X.shape[0] - 1  # a background is the last row
    return _fit_frame(samples, zero, residual_norm=resid_norm, rmse=rmse, r2=r2,
                      pearson_r=pearson, converged=fit.converged, total=X[:k].sum(axis=0),
                      background=np.zeros(X.shape[1]) if level is None else X[k] * level,
                      n_iter=fit.n_iter, n_reweight=fit.n_reweight)


def _fit_frame(samples, zero, **columns):
    """``result.fit``: the columns in their order, the statistics NaN for all-zero samples."""
    table = pd.DataFrame(columns, index=samples)
    table.loc[zero, ["residual_norm", "rmse", "r2", "pearson_r"]] = np.nan
    return table


#: the likelihood method's options and their defaults (others may not change them)
_LIKELIHOOD_DEFAULTS = {
    "states": None, "state_key": None, "update_reference": "map",
    "alpha": 1.0, "exclude": DEFAULT_EXCLUDE, "exclude_genes": None,
    "outliers": True,
}
#: the signature options that the likelihood method does not use, and their defaults
_SIGNATURE_DEFAULTS = {"genes": "auto", "n_markers": 100, "min_fold_change": 2.0}


def _is_default(value, default):
    """Whether an option still has its default (None/True/False by identity, sequences as tuples)."""
    if default is None or isinstance(default, bool):
        return value is default
    if isinstance(value, list):
        value = tuple(value)
    return isinstance(value, (tuple, str, float, int)) and not isinstance(value, bool) and (
        value == default
    )


def _changed(given, defaults):
    """The keys of ``given`` whose value is not the one in ``defaults``."""
    return [key for key, default in defaults.items() if not _is_default(given[key], default)]


def _refuse_likelihood_options(name, **given):
    """Options of the likelihood method given to a least-squares method: refused, not ignored."""
    changed = _changed(given, _LIKELIHOOD_DEFAULTS)
    if changed:
        raise ValueError(
            f"{', '.join(f'{k}=' for k in changed)} {'is an option' if len(changed) == 1 else 'are options'} "
            f"of the likelihood method (method='bayes'), not of method={name!r}; drop "
            f"{'it' if len(changed) == 1 else 'them'} or use method='bayes'"
        )


class _reference_keywords:
    """Turn the single-cell readers' remedies into :func:`deconvolve`'s keywords.

    The readers speak of ``transpose=``, ``layer=``; in :func:`deconvolve` the
    reference's are ``transpose_signature=`` and ``counts_layer=`` (and a states
    column is ``state_key=``).
    """

    def __init__(self, **extra):
        self.names = {"transpose": "transpose_signature", "layer": "counts_layer",
                      "gene_names": "signature_genes", **extra}

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        from fastdeconv.errors import InputProblem

        if isinstance(exc, InputProblem) and any(f.keyword in self.names for f in exc.fixes):
            raise exc.renamed(self.names) from None
        return False


def _deconvolve_counts(record, bulk, reference, *, cells_given, robust, weights, background,
                       n_jobs, max_iter, tol, bayes, reference_options, reading,
                       signature_reading, signature_options, exclude_genes, outliers, min_genes,
                       progress):
    """A method fitted to profiles by likelihood (``record.reference == "counts"``): read, fit.

    The profiles are single cells' (with labels) or, without labels, a signature's columns.
    """
    from fastdeconv import bayes as _bayes
    from fastdeconv.errors import Fix, InputProblem
    from fastdeconv.solvers.mixture import DEFAULT_MAX_ITER, DEFAULT_TOL

    if robust not in ("auto", None):
        raise ValueError(
            f"method {record.name!r} fits a likelihood, not least squares: drop robust= "
            f"(got {robust!r})"
        )
    _refuse_weights(record, weights)
    if background:
        raise ValueError(f"method={record.name!r} fits no background level; drop background=")
    ignored = _changed(signature_options, _SIGNATURE_DEFAULTS)
    if ignored:
        raise ValueError(
            f"{', '.join(f'{k}=' for k in ignored)}: method={record.name!r} fits every gene "
            "of the reference by likelihood and selects no marker genes; drop "
            f"{'it' if len(ignored) == 1 else 'them'} (exclude= and exclude_genes= leave "
            "genes out)"
        )
    options = _bayes.check_bayes_options(**bayes)
    fractions, update, uncertainty, alpha, exclude = options
    from fastdeconv.solvers._validate import validate_options

    if max_iter is None:
        max_iter = DEFAULT_MAX_ITER
    if tol is None:
        tol = DEFAULT_TOL
    max_iter, tol = validate_options(max_iter, tol)
    bulk_df = read_expression(bulk, name="bulk", keep_float32=True, **reading)
    if cells_given:
        with _reference_keywords():
            ref = _bayes.mixture_reference(reference, n_jobs=n_jobs, **reference_options)
        ref = ref.renamed(
            case_insensitive=reading["case_insensitive"], strip_version=reading["strip_version"],
            duplicates=reading["duplicates"],
        )
    else:  # a signature: its columns are the profiles, RNA per cell unknown
        if reference_options.get("states") is not None:
            raise ValueError("states= needs a single-cell reference with labels=: a "
                             "signature's columns are its states")
        S_df = read_expression(reference, **signature_reading)
        _check_cell_types(S_df)
        values = S_df.to_numpy()
        if S_df.shape[1] > _MAX_SIGNATURE_TYPES and np.all(values == np.round(values)):
            raise InputProblem(
                f"the reference has {S_df.shape[1]} columns of whole numbers: it looks like "
                "single-cell counts, not a signature; pass the cell type of every cell as {0}",
                Fix("labels", "LABELS"),
            )
        ref = _bayes.MixtureReference.from_signature(S_df)
    return _bayes.run(
        record, bulk_df, ref, fractions=fractions, update_reference=update,
        uncertainty=uncertainty, alpha=alpha, exclude=exclude, exclude_genes=exclude_genes,
        outliers=outliers, min_genes=min_genes,
        solver={"n_jobs": resolve_n_jobs(n_jobs), "max_iter": max_iter, "tol": tol},
        options={"method": record.name}, progress=progress,
    )


# ---------------------------------------------------------------------------
# the pipeline
# ---------------------------------------------------------------------------


def deconvolve(
    bulk,
    signature,
    method="auto",
    *,
    weights=None,
    genes="auto",
    n_markers=100,
    min_fold_change=2.0,
    robust="auto",
    background=None,
    max_reweight=500,
    reweight_tol=1e-5,
    scale="auto",
    signature_scale="auto",
    case_insensitive=False,
    strip_version=False,
    duplicates="raise",
    missing="raise",
    min_genes=None,
    transpose_bulk=False,
    transpose_signature=False,
    layer=None,
    bulk_genes=None,
    signature_genes=None,
    cell_types=None,
    n_jobs=None,
    progress=None,
    max_iter=None,
    tol=None,
    labels=None,
    states=None,
    label_key=None,
    state_key=None,
    counts_layer=None,
    normalized=False,
    fractions="auto",
    update_reference="map",
    uncertainty=None,
    alpha=1.0,
    exclude=DEFAULT_EXCLUDE,
    exclude_genes=None,
    outliers=True,
    method_options=None,
    subjects=None,
    subject_key=None,
    hierarchy=None,
    unexplained=False,
    residual_report=False,
    copy=False,
):
    """Estimate cell-type proportions of bulk samples from a signature or single cells.

    Solves ``bulk ~ signature @ P`` sample by sample, ``P >= 0``, with the
    exact solvers :func:`fastdeconv.nnls` and :func:`fastdeconv.simplex_lstsq`,
    after matching genes by name, checking the inputs and selecting
    informative genes.  Everything is on the linear scale; nothing is
    log-transformed inside.

    Parameters
    ----------
    bulk : DataFrame, ndarray, AnnData or path
        Bulk expression, genes x samples (AnnData: samples x genes). See
        :func:`fastdeconv.inputs.as_expression_frame`.
    signature : DataFrame, ndarray, AnnData or path
        Reference profiles, genes x cell types (AnnData: cell types x genes),
        on the same linear scale as the bulk; or, with ``labels=`` (or
        ``label_key=``), a single-cell reference: raw counts, genes x cells
        (dense, scipy.sparse, DataFrame; AnnData cells x genes).  Regression
        methods then build the signature from it
        (:func:`fastdeconv.build_signature` with its defaults); ``"bayes"``
        uses the cells' summed profiles directly.
    method : str, default "auto"
        A regression method of :data:`fastdeconv.methods.REGRESSION` (the
        table :func:`fastdeconv.show_methods` prints).  ``"auto"``: ``"dwls"``
        with a signature (``"nnls"`` when ``weights=`` or ``background=True``
        is given), ``"bayes"`` with single cells (``labels=``): the defaults
        with the best worst case over the method-selection study (docs,
        accuracy page).  With a bulk of counts stored sparse (spatial spots or
        bins, cells: a scipy.sparse matrix, an AnnData whose matrix is sparse,
        an ``.h5ad``/``.zarr`` path storing one), ``"auto"`` is ``"nnls"`` with
        ``weights="relative"`` and ``robust=None``
        (:data:`fastdeconv.methods.SPOT_OPTIONS`): fitted from one projection of
        each block of spots, and chosen on the study's spatial spots, where
        Huber's loss breaks down on mostly-zero counts.  ``"dwls"``: DWLS's relative weights
        ``1 / (S x)^2``, capped by cross-validation, with Huber's loss
        (``robust=None``: the published DWLS).
        ``"nnls"``: non-negative least squares; the raw coefficients are kept
        in ``.coefficients`` and the proportions are them divided by their
        sum (scale-free: bulk and signature may differ by a factor per
        sample, as they do across platforms or normalisations).
        ``"simplex"``: exact sum-to-one constraint (bulk and signature must be
        on the same scale).  ``"wls"``: NNLS with the per-gene ``weights``
        (required), normalised like ``"nnls"``.  ``"simplex_le"``: sum at most
        one; the remainder ``1 - sum(p)`` is reported as an extra column
        ``"unexplained"`` (cells the signature does not describe, EPIC's
        "other cells").  ``"bayes"``: the multinomial mixture of BayesPrism
        fitted by likelihood (:mod:`fastdeconv.bayes`), to single-cell counts
        with ``labels`` (or to a signature's columns), returns a
        :class:`fastdeconv.bayes.MixtureResult`.
    weights : array_like, pandas.Series or {"relative", "poisson"}, optional
        Non-negative per-gene weights, minimising ``sum_g w_g (S p - b)_g^2``;
        a Series is matched by gene name (genes without a weight get 0), an
        array must have one weight per *signature* gene (in signature order).
        Accepted by every least-squares method; required by ``"wls"``.  A rule's
        name computes them from the signature alone (:func:`weights_of_rule`):
        ``"relative"``, error proportional to the level above the median gene
        (``1 / (mu^2 + m^2)``), ``"poisson"``, variance proportional to the
        mean (``1 / (mu + m)``); shared by every sample, they keep the fit in
        Gram form.
    genes : {"auto", "markers", "all"} or list of str, default "auto"
        Genes used in the fit, among those common to bulk and signature.
        ``"markers"``: :func:`select_marker_genes` (at most ``n_markers``
        type-specific genes per cell type).  ``"auto"``: markers when the
        signature has more than 200 genes per cell type (a whole-transcriptome
        reference), else all its genes (it already is a curated signature
        matrix such as LM22: CIBERSORT's builder keeps 50-200 genes per type).
        ``"all"``: every common gene.  A list uses exactly those genes.
    n_markers : int, default 100
        Marker genes per cell type for ``genes="auto"``/``"markers"``.
    min_fold_change : float, default 2.0
        Fold change over the second-highest type required of a marker.
    robust : {"auto", "huber", None}, default "auto"
        ``"auto"``: ``"huber"`` for the least-squares methods (the likelihood
        method has its own loss).  ``"huber"``: iteratively re-weighted least squares with Huber's loss
        (constant 1.345, residuals scaled by their median absolute deviation),
        so that genes that fit badly -- cross-hybridisation, platform or
        batch effects, genes of cells missing from the signature -- lose
        influence instead of pulling every proportion.  Each re-weighted
        problem is solved exactly by the core solver.  ``None``: plain
        (weighted) least squares.
    background : bool, optional
        Fit a non-negative constant background level per sample alongside
        the cell types (a column of ones in the signature): the additive
        floor of microarray intensities and of noisy low counts, which a
        signature of purified cells does not share, would otherwise be
        explained by spurious fractions of cell types.  The level is
        reported in ``.fit["background"]`` and is not a proportion.  Default:
        on for the methods that support it (``"nnls"`` and ``"wls"``); not
        available for the simplex methods (the sum constraint would include
        it).
    max_reweight : int, default 500
        Most re-weighting rounds per sample (robust fits).
    reweight_tol : float, default 1e-5
        Stop re-weighting when no coefficient changes by more than this
        fraction of the largest.
    scale : {"auto", "linear", "log2", "log2p1", "log1p"}, default "auto"
        Scale of the bulk.  ``"auto"`` refuses data that look log-transformed
        (see :func:`fastdeconv.inputs.looks_log_scale`); ``"linear"`` asserts
        the linear scale (skips that check); ``"log2"``/``"log2p1"``/``"log1p"``
        un-log with ``2**x`` / ``2**x - 1`` / ``exp(x) - 1`` first.
    signature_scale : {"auto", "linear", "log2", "log2p1", "log1p"}, default "auto"
        The same for the signature.
    case_insensitive : bool, default False
        Match gene names ignoring case.
    strip_version : bool, default False
        Drop Ensembl version suffixes (``ENSG00000010610.12`` -> ``ENSG00000010610``).
    duplicates : {"raise", "sum"}, default "raise"
        Duplicated gene names: raise, or add their rows up.
    missing : {"raise", "drop"}, default "raise"
        Genes with missing (NaN) values in the bulk or the signature: raise,
        naming them, or leave them out.
    min_genes : int, optional
        Fewest common genes accepted (default: ``max(2 k, 50)`` and at least
        half of the signature; see :func:`fastdeconv.inputs.match_genes`).
    transpose_bulk, transpose_signature : bool, default False
        The table has genes as columns (samples x genes, cell types x
        genes): transpose it first.  A table that looks transposed is
        refused with a message naming these options (see
        :func:`fastdeconv.inputs.check_orientation`).
    layer : str, optional
        AnnData layer of the bulk to use instead of ``.X``.
    bulk_genes, signature_genes : sequence of str, optional
        Gene names for array input.
    cell_types : sequence of str, optional
        Cell-type names for array signatures.
    n_jobs : int, optional
        Worker threads of the solver: None or -1 all cores (default), -2 all
        but one, a positive number that many.
    progress : bool, optional
        Progress bar on stderr; default: shown when stderr is a terminal and
        there are more than 4096 samples.
    max_iter, tol : optional
        Passed to the core solver (active-set iteration cap and tolerance;
        for ``"bayes"``: objective evaluations per sample, default 2000, and
        the KKT tolerance, default 1e-8).
    labels, label_key : optional
        The cell type of every cell of a single-cell reference given as
        ``signature`` (a sequence, a Series by cell id, or with AnnData an
        ``.obs`` column name / ``label_key``).
    states, state_key : optional
        ``"bayes"``: the cell state of every cell (sub-types, activation
        states) within its type; the fit is over states, summed into types.
        Default: one state per type.
    counts_layer : str, optional
        AnnData layer of the single-cell reference holding the raw counts.
    normalized : {False, True, "log1p", "log2p1"}, default False
        The single-cell reference holds normalised values, not raw counts
        (then the RNA per cell is unknown and cell fractions equal RNA
        fractions); see :func:`fastdeconv.inputs.counts.check_raw`.
    fractions : {"auto", "cells", "rna"}, default "auto"
        With a single-cell reference: report fractions of cells (the RNA
        fractions divided by each type's reads per cell in the reference,
        renormalised) or of RNA; ``"auto"``: cells whenever the reference has
        raw counts.
    update_reference : {"map", "mle", False}, default "map"
        ``"bayes"``: BayesPrism's reference update before the final fit
        (:func:`fastdeconv.bayes.update_profiles`); ``"map"`` shifts every
        gene of every type toward the bulk under a log-normal prior,
        ``"mle"`` one shift per gene shared by all types (spatial data);
        False fits the reference as given.
    uncertainty : bool or dict, optional
        Uncertainty of the proportions.  ``"bayes"``: standard errors from the
        Fisher information (:func:`fastdeconv.bayes.fisher_errors`; default
        on).  Regression methods (default off): per-sample confidence
        intervals by bootstrap over genes
        (:func:`fastdeconv.uncertainty.bootstrap_proportions`: percentile
        intervals, 200 replicates, level 0.9) and CIBERSORT's permutation
        p-value of the fit (:func:`fastdeconv.uncertainty.permutation_pvalue`,
        100 random bulks), in ``result.uncertainty``; a dict sets
        ``n_boot``, ``level``, ``n_perm``, ``seed``.  The intervals cover the
        noise on the genes, not an error of the reference itself.
    alpha : float, default 1.0
        ``"bayes"``: Dirichlet prior on the state fractions (1: maximum
        likelihood; at least 1).
    exclude : sequence of str, default ("ribosomal", "mitochondrial")
        ``"bayes"``: gene groups of :data:`fastdeconv.bayes.GENE_GROUPS` left
        out (also "sex", "hemoglobin"); () keeps them.
    exclude_genes : sequence of str, optional
        ``"bayes"``: further genes to leave out.
    outliers : bool, default True
        ``"bayes"``: leave out genes holding more than 1% of a sample's reads
        in more than 10% of samples (:func:`fastdeconv.bayes.outlier_genes`).
    method_options : dict, optional
        The method's own options (e.g. ``{"nu": 0.5}`` for ``"nusvr"``); the
        table of :func:`fastdeconv.show_methods` lists each method's options
        and defaults.  Unknown keys are refused.
    subjects, subject_key : optional
        With a single-cell reference: the donor (or batch) of every cell, like
        ``labels``/``label_key``; needed by the methods that use the
        variation between subjects (``show_methods()`` column ``needs``).
    hierarchy : {None, "auto"}, dict or pandas.Series, optional
        Deconvolve in two levels (:func:`fastdeconv.hierarchical.fit_hierarchical`):
        lineages first, on genes that separate the lineages, then each
        lineage's share split among its cell types on genes that separate
        them (for cell types that share markers: subtypes of one lineage).
        ``"auto"`` groups the signature's types by the similarity of their
        profiles (:func:`fastdeconv.hierarchical.lineages`); a dict (type ->
        lineage, or lineage -> list of types) or Series gives the lineages.
        Costs one fit more per lineage of several types.
    unexplained : bool, default False
        Estimate, per sample, the share of the RNA that the reference's cell
        types do not explain (cells missing from the reference), calibrated
        on every common gene: bulk and signature scaled to the same total,
        and one profile of the missing cells shared by the samples fitted
        beside the types (:func:`fastdeconv.missing.fit_unexplained`; needs
        at least 3 samples whose missing share varies, else EPIC's
        per-sample ``1 - sum(p)``).  Adds a column ``"unexplained"``; the
        cell types' proportions are scaled to ``1 - unexplained``.
    copy : bool, default False
        With an AnnData bulk: the result is also stored in it, scverse style
        (``obsm["fastdeconv_proportions"]``, ``obsm["fastdeconv_fit"]``,
        ``obsm["fastdeconv_uncertainty"]``, ``uns["fastdeconv"]``; see
        :meth:`fastdeconv.results.ProportionsResult.to_anndata`), in the object
        given (``copy=False``) or in a copy (``copy=True``), as ``result.adata``.
    residual_report : bool or dict, default False
        Rank the genes the fit under-explains consistently across samples
        and test them against marker lists to suggest the missing cell type
        (:func:`fastdeconv.missing.residual_report`); stored as
        ``result.residual_report``.  A dict gives its options (``top``,
        ``markers``, ``canonical``, ``alpha``).

    Returns
    -------
    DeconvolutionResult
        ``.proportions`` (samples x cell types), ``.fit`` (per-sample residual
        norm, RMSE, R^2, Pearson r, convergence), ``.coefficients``,
        ``.genes_used``, ``.gene_match``, ``.gene_weights``, summary and plots;
        with an AnnData bulk also ``.adata``, the AnnData holding the result
        (see ``copy``).

    Raises
    ------
    ValueError
        On NaN/inf, negative or log-looking input, duplicated gene names
        (``duplicates="raise"``), a table that looks transposed, a signature
        with fewer than two cell types, too few common genes, or invalid
        options; every message says what to change (a
        :class:`fastdeconv.errors.InputProblem` when an option of this
        function is the remedy).
    TypeError
        On unsupported input types.

    Warns
    -----
    UserWarning
        When samples are all zero on the genes used, or (NNLS) explained by no
        cell type at all -- their proportions are NaN -- or when the signature
        is badly conditioned (naming the nearly collinear cell types).

    See Also
    --------
    fastdeconv.nnls, fastdeconv.simplex_lstsq : the solvers.
    fastdeconv.show_methods : the methods and what each supports.
    fastdeconv.evaluate : accuracy against known proportions.

    Notes
    -----
    **Large and sparse bulks** (:mod:`fastdeconv.blockwise`).  A bulk stored
    sparse (scipy.sparse; an AnnData with a sparse matrix), an AnnData file
    (``.h5ad`` or ``.zarr`` path, or an AnnData opened ``backed="r"``) or a Dask
    array is never held whole: it is read in blocks of
    :data:`fastdeconv.blockwise.BLOCK` samples (a Dask array: one task per
    chunk of samples, on whatever scheduler is active, e.g. a
    ``dask.distributed`` cluster).  The least-squares methods with the squared
    loss project each block's stored non-zeros onto the signature and solve
    from the Gram form (float32 counts are read as they are); other methods
    densify one block at a time on the genes used.  The answers equal those of
    the same counts given densely (to rounding).  ``hierarchy=``,
    ``unexplained=``, ``residual_report=``, ``uncertainty=``,
    ``missing="drop"`` and batch-dependent methods need the whole bulk: it is
    then read whole (a Dask bulk is refused: compute it first).  The result's
    ``gene_weights`` is None (genes x samples would be as large as the bulk).

    The defaults (DWLS's relative weights with Huber's loss, proportions
    normalised to sum one, marker genes for whole-transcriptome references)
    and the reasons for them are described in the user guide; how they were
    chosen, by their worst case over 100 cases with each dataset held out in
    turn, is on the accuracy page (``benchmarks/study_reference.py``
    reproduces it).

    References
    ----------
    .. [1] Huber P. J. (1964) Robust estimation of a location parameter. Ann Math
       Statist 35(1):73-101. doi:10.1214/aoms/1177703732
    .. [2] Lawson C. L., Hanson R. J. (1974) Solving Least Squares Problems.
       Prentice-Hall (NNLS).
    .. [3] Racle J. et al. (2017) Simultaneous enumeration of cancer and immune cell
       types from bulk tumor gene expression data. eLife 6:e26476.
       doi:10.7554/eLife.26476 (EPIC; the "other cells" fraction)
    .. [4] Newman A. M. et al. (2015) Robust enumeration of cell subsets from tissue
       expression profiles. Nat Methods 12:453-457. doi:10.1038/nmeth.3337

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> import fastdeconv
    >>> rng = np.random.default_rng(0)
    >>> genes = [f"g{i}" for i in range(100)]
    >>> sig = pd.DataFrame(rng.gamma(1.0, 200.0, size=(100, 3)), index=genes,
    ...                    columns=["T cells", "B cells", "Monocytes"])
    >>> truth = np.array([[0.6, 0.1], [0.3, 0.2], [0.1, 0.7]])
    >>> bulk = pd.DataFrame(sig.to_numpy() @ truth, index=genes, columns=["s1", "s2"])
    >>> result = fastdeconv.deconvolve(bulk, sig)
    >>> result.proportions.round(3)
         T cells  B cells  Monocytes
    s1       0.6      0.3        0.1
    s2       0.1      0.2        0.7
    >>> bool(result.fit["converged"].all())
    True
    """

    cells_given = labels is not None or label_key is not None
    if method == "auto" and not cells_given and stored_sparse(bulk, layer):
        # counts stored sparse: spots, bins or cells -- the default fitted in Gram form
        method = REGRESSION.default_for("spots")
        robust = SPOT_OPTIONS["robust"] if robust == "auto" else robust
        weights = SPOT_OPTIONS["weights"] if weights is None else weights
    elif method == "auto":  # (weights or a background need a default that takes them)
        method = REGRESSION.default_for("counts" if cells_given else "signature",
                                        weights=weights is not None, background=bool(background))
    record = REGRESSION.get(method)
    method_options = record.resolve_options(method_options)
    subjects_given = subjects is not None or subject_key is not None
    _check_needs(record, cells_given, subjects_given)
    if hierarchy is not None and record.reference == "counts":
        raise ValueError(
            f"hierarchy= is for the regression methods; method={record.name!r} fits every type "
            "at once by likelihood (states= gives it sub-types within each type): drop "
            "hierarchy= or choose a regression method"
        )
    if copy is not False and not is_anndata(bulk):
        raise ValueError("copy= is for an AnnData bulk (the result is stored in it or in a copy "
                         "of it); drop copy=")
    if record.reference == "counts":
        return _stored(bulk, copy, _deconvolve_counts(
            record, bulk, signature, cells_given=cells_given, robust=robust, weights=weights,
            background=background, n_jobs=n_jobs, max_iter=max_iter, tol=tol,
            bayes=dict(fractions=fractions, update_reference=update_reference,
                       uncertainty=True if uncertainty is None else uncertainty, alpha=alpha,
                       exclude=exclude),
            reference_options=dict(labels=labels, states=states, label_key=label_key,
                           state_key=state_key, layer=counts_layer, normalized=normalized,
                           duplicates=duplicates, transpose=transpose_signature,
                           gene_names=signature_genes),
            reading=dict(genes=bulk_genes, layer=layer, scale=scale, transpose=transpose_bulk,
                         case_insensitive=case_insensitive, strip_version=strip_version,
                         duplicates=duplicates, missing=missing),
            signature_reading=dict(
                name="signature", genes=signature_genes, columns=cell_types,
                scale=signature_scale, transpose=transpose_signature,
                scale_option="signature_scale", case_insensitive=case_insensitive,
                strip_version=strip_version, duplicates=duplicates, missing=missing,
            ),
            signature_options=dict(genes=genes, n_markers=n_markers,
                                   min_fold_change=min_fold_change),
            exclude_genes=exclude_genes, outliers=outliers, min_genes=min_genes,
            progress=progress,
        ))
    if robust == "auto":
        robust = "huber" if "huber" in record.losses else None
    opts = _check_options(
        method, weights, robust, background, max_reweight, reweight_tol, n_jobs, max_iter, tol
    )
    record = opts.method
    rna_content = None
    _refuse_likelihood_options(
        record.name, states=states, state_key=state_key, update_reference=update_reference,
        alpha=alpha, exclude=exclude, exclude_genes=exclude_genes,
        outliers=outliers,
    )
    context = None
    if cells_given:
        from fastdeconv._checks import check_choice
        from fastdeconv.inputs.counts import as_counts
        from fastdeconv.signature import build_signature

        fractions = check_choice(fractions, "fractions", FRACTIONS)
        with _reference_keywords():
            counts = as_counts(signature, layer=counts_layer, transpose=transpose_signature,
                               duplicates=duplicates, gene_names=signature_genes)
            built = build_signature(
                counts, labels, label_key=label_key, normalized=normalized, n_jobs=n_jobs,
            )
        if record.uses("cells"):
            context = _cell_context(counts, built, labels, label_key, subjects, subject_key,
                                    normalized, n_jobs, case_insensitive=case_insensitive,
                                    strip_version=strip_version)
        signature = built.signature
        transpose_signature = False
        signature_genes = None
        if record.cell_fractions:  # the method corrects for the RNA per cell itself
            if fractions == "rna":
                raise ValueError(
                    f"method={record.name!r} reports fractions of cells (it corrects for the "
                    "RNA per cell itself): drop fractions='rna'"
                    + (" (its method_options may offer RNA fractions: fastdeconv.show_methods())"
                       if record.options else "")
                )
            fractions = "cells"
        elif fractions == "auto":
            # cells when the reads per cell are known (raw counts, or un-logged to raw counts)
            # and every output column is a cell type (an "unexplained" share has no content)
            known = built.rna_content_known and not record.extra_columns
            fractions = "cells" if known else "rna"
        if fractions == "cells" and not record.cell_fractions:
            if record.extra_columns:
                raise ValueError(
                    f"method={record.name!r} reports {', '.join(record.extra_columns)} beside "
                    "the cell types, a share of the RNA with no RNA per cell: use "
                    "fractions='rna'"
                )
            rna_content = built.rna_content
    options = dict(
        method=record.name, genes=genes if isinstance(genes, str) else f"{len(genes)} given",
        n_markers=n_markers, min_fold_change=min_fold_change, robust=robust,
        background=opts.background,
    )
    if isinstance(weights, str):
        options["weights"] = weights
    if cells_given:
        options["fractions"] = fractions

    naming = dict(case_insensitive=case_insensitive, strip_version=strip_version)
    reading = dict(naming, duplicates=duplicates, missing=missing)
    whole = _whole_bulk_option(record, hierarchy=hierarchy, unexplained=unexplained,
                               residual_report=residual_report, uncertainty=uncertainty,
                               missing=missing)
    source, bulk = _block_source(bulk, whole, genes=bulk_genes, layer=layer,
                                 transpose=transpose_bulk)
    S_df = read_expression(signature, name="signature", genes=signature_genes,
                           columns=cell_types, scale=signature_scale,
                           transpose=transpose_signature, scale_option="signature_scale",
                           **reading)
    if source is not None:  # sparse, a lazily read file, or Dask: block by block
        try:
            first, gene_match = _fit_blocks(
                source, S_df, record, opts, context, method_options, progress,
                genes=genes, n_markers=n_markers, min_fold_change=min_fold_change,
                weights=weights, scale=scale, duplicates=duplicates, min_genes=min_genes,
                cells_given=cells_given, naming=naming)
        finally:
            source.close()
        options["blocks"] = source.kind
        return _stored(bulk, copy, _result(
            record, first, first.proportions, rna_content, gene_match, options))
    B_df = read_expression(bulk, name="bulk", genes=bulk_genes, layer=layer, scale=scale,
                           transpose=transpose_bulk, **reading)
    check_orientation(B_df, S_df, **naming)
    _check_cell_types(S_df)
    B_m, S_m, gene_match = match_genes(B_df, S_df, min_genes=min_genes)

    # each sample's and each type's scale over every common gene, before any selection
    # (a signature built from cells is CPM over all the cells' genes)
    totals = dict(
        bulk_totals=B_m.sum(axis=0).to_numpy(dtype=np.float64),
        signature_totals=_signature_totals(S_m, cells_given),
    )

    def fit_genes(sig, bulk_m, used):
        """Fit the columns of ``sig`` on the genes ``used``: one level of the pipeline."""
        w0 = _gene_weights(weights, S_df.index, used, case_insensitive=case_insensitive,
                           strip_version=strip_version,
                           signature_used=sig.loc[used].to_numpy(dtype=np.float64))
        cells = None if context is None else context[0].take(context[1].get_indexer(used))
        return _fit_level(record, opts, sig.loc[used], bulk_m.loc[used], w0, cells,
                          method_options, progress, totals)

    lineage_map = None
    if hierarchy is None:
        first = fit_genes(S_m, B_m, _choose_genes(S_m, genes, n_markers, min_fold_change))
        props = first.proportions
    else:
        from fastdeconv.hierarchical import check_hierarchy, fit_hierarchical, lineages

        lineage_map = (lineages(S_m) if _is_default(hierarchy, "auto")
                       else check_hierarchy(hierarchy, S_m.columns))
        levels = []

        def level_fit(sig, bulk_m, markers, rule):
            levels.append(fit_genes(sig, bulk_m, _choose_genes(markers, rule, n_markers,
                                                               min_fold_change)))
            return levels[-1].proportions

        props = fit_hierarchical(S_m, B_m, lineage_map, level_fit, genes=genes).proportions
        first = levels[0]
        options["hierarchy"] = "auto" if isinstance(hierarchy, str) else "given"
    warn_if_zero_samples(B_m.columns, first.zero, len(first.genes), stacklevel=3)
    report = None
    if residual_report is not False:
        report = _residual_report(residual_report, S_m, B_m, first)
    intervals = None
    if uncertainty:
        if hierarchy is not None or unexplained:
            raise ValueError(
                "uncertainty= is computed for a flat fit: drop "
                f"{'hierarchy=' if hierarchy is not None else 'unexplained='} or uncertainty="
            )
        intervals = _uncertainty(uncertainty, record, opts, S_m.loc[first.genes],
                                 B_m.loc[first.genes], first.weights, first, method_options, rna_content,
                                 None if context is None else
                                 context[0].take(context[1].get_indexer(first.genes)), progress)
        options["uncertainty"] = "bootstrap"
    if unexplained:
        props, options["unexplained"] = _with_unexplained(record, props, S_m, B_m, first.genes,
                                                          n_jobs)
    return _stored(bulk, copy, _result(record, first, props, rna_content, gene_match, options,
                                       lineages=lineage_map, residual_report=report,
                                       uncertainty=intervals))


def _result(record, first, props, rna_content, gene_match, options, **more):
    """The :class:`DeconvolutionResult`: RNA fractions turned into cell fractions if asked."""
    if rna_content is not None:
        from fastdeconv.fractions import to_cell_fractions

        types = list(first.coefficients.columns)
        props = pd.concat([to_cell_fractions(props[types], rna_content),
                           props.drop(columns=types)], axis=1)
    return DeconvolutionResult(
        proportions=props,
        coefficients=first.coefficients,
        fit=first.table,
        genes_used=list(first.genes),
        gene_match=gene_match,
        gene_weights=first.gene_weights,
        method=record.name,
        options=options,
        **more,
    )


def _whole_bulk_option(record, **given):
    """The first option given that needs the whole bulk in memory (None: blocks will do)."""
    if record.batch_dependent:
        return f"method={record.name!r}"
    for key, value in given.items():
        if key == "missing":
            if value == "drop":
                return "missing='drop'"
        elif value is not None and value is not False:
            return f"{key}="
    return None


def _block_source(bulk, whole, *, genes, layer, transpose):
    """A :class:`fastdeconv.inputs.blocks.BlockSource` for a bulk read block by block, or
    None; and the bulk to read whole otherwise (a zarr store opened as AnnData)."""
    from fastdeconv.inputs.blocks import open_blocks

    source = open_blocks(bulk, name="bulk", genes=genes, layer=layer, transpose=transpose)
    if source is None or whole is None:
        return source, bulk
    source.close()
    if source.kind == "dask":
        raise ValueError(
            f"{whole} needs the whole bulk in memory, and a Dask bulk is fitted block by "
            f"block: load it first (bulk.compute()), or drop {whole}"
        )
    if isinstance(bulk, (str, os.PathLike)) and os.fspath(bulk).rstrip("/\\").lower().endswith(
            ".zarr"):
        import anndata

        bulk = anndata.read_zarr(os.fspath(bulk))
    return None, bulk


def _fit_blocks(source, S_df, record, opts, context, method_options, progress, *, genes,
                n_markers, min_fold_change, weights, scale, duplicates, min_genes, cells_given,
                naming):
    """Match genes by name, choose them on the signature, and fit the bulk block by block.

    The bulk is never held whole: each block of :data:`fastdeconv.blockwise.BLOCK`
    samples is read, fitted (:class:`fastdeconv.blockwise.BlockFitter`) and let go;
    a Dask bulk is fitted by Dask, one task per chunk of samples.
    """
    from fastdeconv.inputs.tables import (
        SCALES, _normalise_name, check_expression, refuse_linear_as_log,
    )

    if scale not in SCALES:
        raise ValueError(f"bulk scale must be one of {SCALES}, got {scale!r}")
    raw = [str(g) for g in source.genes]
    if naming["case_insensitive"] or naming["strip_version"]:
        raw = [_normalise_name(g, naming["case_insensitive"], naming["strip_version"])
               for g in raw]
    names = harmonize_genes(pd.DataFrame(index=pd.Index(raw)), name="bulk",
                            duplicates=duplicates, **naming).index  # (refuses duplicates)
    check_orientation(_NamesOnly(names, source.samples), S_df, **naming)
    _check_cell_types(S_df)
    _, S_m, gene_match = match_genes(pd.DataFrame(index=names), S_df, min_genes=min_genes)
    used = _choose_genes(S_m, genes, n_markers, min_fold_change)
    S_u = S_m.loc[used]
    warn_if_collinear(S_u)
    position = pd.Index(used).get_indexer(raw)
    common = pd.Index(S_m.index).get_indexer(raw) >= 0
    w0 = _gene_weights(weights, S_df.index, used, signature_used=S_u.to_numpy(np.float64),
                       **naming)
    cells = None if context is None else context[0].take(context[1].get_indexer(used))
    fitter = BlockFitter(
        record.name, S_u.to_numpy(dtype=np.float64), row_map=position, common=common,
        background=opts.background, weights=w0, solver=opts.solver, options=method_options,
        cell_types=tuple(map(str, S_u.columns)),
        signature_totals=_signature_totals(S_m, cells_given),
        cells=cells, scale="linear" if scale == "auto" else scale)
    m = source.n_samples
    if m:
        # the checks of an in-memory bulk (log scale, negative values) on the first samples
        n_head = min(m, _HEAD_SAMPLES)
        raw = source.block(0, n_head)
        stored = raw.data if hasattr(raw, "indptr") else np.asarray(raw)
        refuse_linear_as_log(float(np.nanmax(stored, initial=0.0)), scale, "bulk")
        head = fitter._dense(fitter._unlogged(raw))
        check_expression(pd.DataFrame(head, index=used, columns=source.samples[:n_head]),
                         name="bulk",
                         allow_log=scale != "auto", scales=SCALES, missing_option=None)
    if source.kind == "dask":
        out = _dask_fit(source, fitter)
    else:
        parts = []
        with progress_bar(m, progress, desc="deconvolve", compiling=True) as bar:
            for j0, j1, block in _read_ahead(source, m):
                parts.append(fitter(block, _block_info(j0, j1)))
                bar.update(j1 - j0)
        out = np.vstack(parts) if parts else np.zeros((0, len(fitter.columns)))
    return _level_of_blocks(record, fitter, out, S_u, source.samples), gene_match


#: Samples of a bulk read block by block that get the in-memory checks with their
#: messages (log scale, negative values); later blocks are checked for values that
#: are negative or not finite as they are fitted.
_HEAD_SAMPLES = 2000


def _read_ahead(source, m):
    """The blocks of ``source`` in order, ``(j0, j1, block)``; a file's next block is read
    while the current one is fitted (the read waits on the disk, the fit on the cores)."""
    from fastdeconv._parallel import read_ahead

    bounds = [(j0, min(j0 + BLOCK, m)) for j0 in range(0, m, BLOCK)]
    blocks = read_ahead(source.block, bounds) if source.kind == "file" else (
        source.block(j0, j1) for j0, j1 in bounds)
    for (j0, j1), block in zip(bounds, blocks):
        yield j0, j1, block


def _signature_totals(S_m, cells_given):
    """Each type's total over every common gene (1e6 for a signature built from cells: CPM
    over all the cells' genes)."""
    if cells_given:
        return np.full(S_m.shape[1], 1e6)
    return S_m.sum(axis=0).to_numpy(dtype=np.float64)


def _block_info(j0, j1):
    """Where a block sits, in the form Dask's ``map_blocks`` gives it."""
    return {0: {"array-location": [(j0, j1), (0, 0)]}}


def _dask_fit(source, fitter):
    """Fit a Dask bulk: one task per chunk of samples, the same :class:`BlockFitter`."""
    array = source.array
    n_cols = len(fitter.columns)
    fitted = array.map_blocks(fitter, dtype=np.float64, chunks=(array.chunks[0], (n_cols,)),
                              meta=np.empty((0, 0)))
    return np.asarray(fitted.compute())


class _NamesOnly:
    """A bulk's names and shape, for the orientation check of a bulk read block by block."""

    def __init__(self, index, columns):
        self.index = pd.Index(index)
        self.columns = pd.Index(columns)
        self.shape = (len(self.index), len(self.columns))


def _level_of_blocks(record, fitter, out, S_u, samples):
    """The pipeline's :class:`_Level` from the blocks' numbers (no gene weights: genes x
    samples would be as large as the bulk)."""
    k = S_u.shape[1]
    col = {name: i for i, name in enumerate(fitter.columns)}
    zero = out[:, col["zero"]] > 0
    coef = pd.DataFrame(out[:, :k], index=samples, columns=S_u.columns)
    props = _proportions(record, coef, out[:, col["none"]] > 0, zero,
                         robust=fitter.solver.get("huber") is not None)
    for name in record.extra_columns:
        props[name] = out[:, col[name]]
    background = (out[:, col["background"]] * fitter.level if fitter.background
                  else np.zeros(len(samples)))
    table = _fit_frame(
        samples, zero, **{name: out[:, col[name]] for name in
                          ("residual_norm", "rmse", "r2", "pearson_r")},
        converged=out[:, col["converged"]] > 0, total=out[:, :k].sum(axis=1),
        background=background, n_iter=out[:, col["n_iter"]].astype(np.int64),
        n_reweight=out[:, col["n_reweight"]].astype(np.int64))
    warn_if_zero_samples(samples, zero, S_u.shape[0], stacklevel=5)
    return _Level(proportions=props, coefficients=coef, table=table, gene_weights=None,
                  genes=list(S_u.index), zero=zero, weights=fitter.weights)


def _stored(bulk, copy, result):
    """The result, also stored in an AnnData bulk (or its copy) as ``result.adata``."""
    if is_anndata(bulk):
        result.adata = result.to_anndata(bulk, copy=bool(copy))
    return result


#: the bootstrap's and the permutation test's defaults (``uncertainty=True``)
UNCERTAINTY_DEFAULTS = {"n_boot": 200, "level": 0.9, "n_perm": 100, "seed": 0}


def _uncertainty(given, record, opts, S_u, B_u, w0, first, method_options, rna_content, cells,
                 progress):
    """Bootstrap intervals and the permutation p-value of a regression fit, in one table."""
    from fastdeconv.uncertainty import bootstrap_proportions, permutation_pvalue

    settings = dict(UNCERTAINTY_DEFAULTS)
    if isinstance(given, dict):
        unknown = set(given) - set(settings)
        if unknown:
            raise ValueError(f"uncertainty= has no option {sorted(unknown)[0]!r} (its options: "
                             f"{', '.join(settings)})")
        settings.update(given)
    elif given is not True:
        raise TypeError(f"uncertainty must be True, False or a dict of options, got {given!r}")
    common = dict(method=record, weights=w0, robust=opts.solver["huber"],
                  background=opts.background, n_jobs=opts.solver["n_jobs"],
                  options=method_options, cells=cells, seed=settings["seed"])
    ci = bootstrap_proportions(
        S_u, B_u, gene_weights=first.gene_weights.to_numpy(), n_boot=settings["n_boot"],
        level=settings["level"], progress=progress,
        rna_content=None if rna_content is None else _content_vector(rna_content, S_u.columns),
        **common)
    perm = permutation_pvalue(S_u, B_u, n_perm=settings["n_perm"], **common)
    table = ci.to_frame()
    table["p_value"] = np.asarray(perm.pvalue, dtype=np.float64)
    return table


def _content_vector(rna_content, types):
    """The RNA per cell of every type, in the signature's order."""
    from fastdeconv.fractions import _rna_content_series

    return _rna_content_series(rna_content, list(types)).to_numpy(dtype=np.float64)


def _residual_report(given, S_m, B_m, first):
    """The residual report of the first level's fit (``residual_report=True`` or its options)."""
    from fastdeconv.missing import _check_markers, report_from_arrays

    options = {} if given is True else given
    if not isinstance(options, dict):
        raise TypeError(f"residual_report must be True, False or a dict of options, got {given!r}")
    unknown = set(options) - {"top", "markers", "canonical", "alpha"}
    if unknown:
        raise ValueError(f"residual_report= has no option {sorted(unknown)[0]!r} (its options: "
                         "top, markers, canonical, alpha)")
    options = dict(options)
    lists = _check_markers(options.pop("markers", None))
    X = np.nan_to_num(first.coefficients.to_numpy().T)
    rows = S_m.index.get_indexer(first.genes)
    return report_from_arrays(S_m, B_m, X, rows, lists=lists, **options)


def _with_unexplained(record, props, S_m, B_m, used, n_jobs):
    """Proportions scaled to ``1 - unexplained`` beside an ``"unexplained"`` column."""
    from fastdeconv.missing import fit_unexplained

    if record.extra_columns:
        raise ValueError(
            f"method={record.name!r} reports {', '.join(record.extra_columns)} already: drop "
            "unexplained= (or use a method without it, such as 'nnls')"
        )
    fit = fit_unexplained(S_m.to_numpy(dtype=np.float64), B_m.to_numpy(dtype=np.float64),
                          fit_rows=S_m.index.get_indexer(used), n_jobs=n_jobs)
    if not fit.converged:
        warnings.warn(
            f"the unexplained fraction did not settle in {fit.n_iter} alternations; it is the "
            "last estimate", UserWarning, stacklevel=3,
        )
    share = pd.Series(fit.fraction, index=props.index)
    scaled = props.mul(1.0 - share, axis=0)
    scaled["unexplained"] = share
    return scaled, fit.model


@dataclass(frozen=True)
class _Level:
    """One fit of the pipeline on a set of genes: proportions (with extra columns) and diagnostics."""

    proportions: pd.DataFrame
    coefficients: pd.DataFrame
    table: pd.DataFrame
    gene_weights: pd.DataFrame
    genes: list
    zero: np.ndarray
    weights: np.ndarray | None  # the user's weights on ``genes``


def _fit_level(record, opts, S_u, B_u, w0, cells, method_options, progress, totals):
    """Fit every sample with the method on the genes of ``S_u``/``B_u`` (one pipeline level)."""
    warn_if_collinear(S_u)
    S = np.ascontiguousarray(S_u.to_numpy(dtype=np.float64))
    B = np.ascontiguousarray(B_u.to_numpy(dtype=np.float64))
    S_fit, level = with_background(S, opts.background)
    problem = dict(opts.solver, options=method_options, cell_types=tuple(map(str, S_u.columns)),
                   **totals)
    if cells is not None:
        problem["cells"] = cells
    fit, zero = fit_samples(record, S_fit, B, w0, problem, progress)
    coef = pd.DataFrame(fit.coefficients[: S.shape[1]].T, index=B_u.columns, columns=S_u.columns)
    none = no_cell_type(fit.coefficients[: S.shape[1]], S.T @ S, np.einsum("ij,ij->j", B, B))
    props = _proportions(record, coef, none, zero, robust=opts.solver["huber"] is not None)
    for name in record.extra_columns:
        props[name] = fit.extra[name]
    used = list(S_u.index)
    return _Level(
        proportions=props, coefficients=coef,
        table=_fit_table(fit, S_fit, B, level, zero, B_u.columns),
        gene_weights=pd.DataFrame(fit.gene_weights, index=used, columns=B_u.columns),
        genes=used, zero=zero, weights=w0,
    )


@dataclass
class DeconvolutionResult(ProportionsResult):
    """Result of :func:`deconvolve`.

    Besides the attributes below it has the habits of every result with
    proportions (:class:`fastdeconv.results.ProportionsResult`):
    ``to_frame()`` (proportions and fit side by side), ``write(path,
    fit_path=None)``, ``to_cell_fractions(rna_content)`` (with
    ``method="simplex_le"`` the ``"unexplained"`` column needs a content too),
    ``plot_proportions()`` and ``plot()``.

    Attributes
    ----------
    proportions : pandas.DataFrame
        Samples x cell types; rows sum to 1 (NaN rows for all-zero samples).
        With ``method="simplex_le"`` an extra column ``"unexplained"`` holds
        ``1 - sum`` of the cell-type fractions.
    coefficients : pandas.DataFrame
        Samples x cell types, the raw solver output (for NNLS not normalised;
        the same as the proportions otherwise).  The background level, when
        fitted, is not among them (see ``fit``).
    fit : pandas.DataFrame
        Per sample: ``residual_norm`` (``||b - S x||_2`` over the genes used,
        unweighted), ``rmse`` (that divided by ``sqrt(n_genes)``), ``r2``
        (``1 - RSS / TSS``), ``pearson_r`` (observed bulk vs the
        reconstruction ``S x``), ``converged`` (the solver's KKT flag, and for
        robust fits that the re-weighting settled), ``total`` (sum of the
        coefficients: the scale of the bulk relative to the signature for
        NNLS), ``background`` (the fitted constant background level, 0 when
        not fitted), ``n_iter`` (solver iterations, last solve) and ``n_reweight``
        (robust re-weighting rounds).
    genes_used : list of str
        Genes entering the fit.
    gene_match : fastdeconv.inputs.GeneMatch
        How many signature genes matched the bulk and which are missing.
    gene_weights : pandas.DataFrame
        Genes used x samples: the final weight of each gene in each fit (user
        weights times robust weights; 1 without either).  Genes with small
        weights fitted badly.
    method : str
        The method used.
    options : dict
        The gene-selection and robustness options used.
    lineages : pandas.Series or None
        With ``hierarchy=``: the lineage of every cell type; ``coefficients``,
        ``fit`` and ``gene_weights`` are then those of the first level (all
        types, on the genes that separate the lineages).
    residual_report : fastdeconv.missing.ResidualReport or None
        With ``residual_report=``: the genes the fit under-explains and the
        suggested missing cell type.
    uncertainty : pandas.DataFrame or None
        With ``uncertainty=True``: samples x ``<type>_lower``, ``<type>_upper``,
        ``<type>_se`` (bootstrap over genes) and ``p_value`` (permutation
        test of the fit).

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np, pandas as pd
    >>> import fastdeconv
    >>> rng = np.random.default_rng(1)
    >>> genes = [f"g{i}" for i in range(80)]
    >>> sig = pd.DataFrame(rng.gamma(1.0, 100.0, size=(80, 2)), index=genes, columns=["A", "B"])
    >>> bulk = pd.DataFrame(sig.to_numpy() @ [[0.25], [0.75]], index=genes, columns=["s"])
    >>> res = fastdeconv.deconvolve(bulk, sig, method="simplex")
    >>> print(res.proportions.round(2).to_string())
          A     B
    s  0.25  0.75
    >>> list(res.to_frame().columns[:4])
    ['A', 'B', 'residual_norm', 'rmse']
    >>> res.to_cell_fractions({"A": 1.0, "B": 3.0}).round(2)  # B cells carry 3 times the RNA
         A    B
    s  0.5  0.5
    >>> with tempfile.TemporaryDirectory() as d:
    ...     res.write(os.path.join(d, "p.tsv"))
    ...     print(fastdeconv.read_table(os.path.join(d, "p.tsv")).round(2).to_string())
               A     B
    sample
    s       0.25  0.75
    """

    proportions: pd.DataFrame
    coefficients: pd.DataFrame
    fit: pd.DataFrame
    genes_used: list
    gene_match: object
    gene_weights: pd.DataFrame
    method: str
    options: dict = field(default_factory=dict)
    lineages: pd.Series | None = None
    residual_report: object = None
    uncertainty: pd.DataFrame | None = None

    def summary(self):
        """Return a readable summary of the result.

        Returns
        -------
        str
            Method, genes, fit quality and mean proportions.

        Examples
        --------
        >>> import numpy as np, pandas as pd, fastdeconv
        >>> genes = [f"g{i}" for i in range(60)]
        >>> sig = pd.DataFrame(np.random.default_rng(2).gamma(1.0, 100.0, (60, 2)),
        ...                    index=genes, columns=["A", "B"])
        >>> bulk = pd.DataFrame(sig.to_numpy() @ [[0.5], [0.5]], index=genes, columns=["s"])
        >>> print(fastdeconv.deconvolve(bulk, sig).summary().splitlines()[0])
        Deconvolution of 1 sample(s) into 2 cell types (method 'dwls', robust 'huber')
        """
        m, k = self.coefficients.shape
        fit = self.fit
        ok = fit["pearson_r"].notna()
        lines = [
            f"Deconvolution of {m} sample(s) into {k} cell types "
            f"(method {self.method!r}, robust {self.options.get('robust')!r})",
            f"Genes: {self.gene_match}; {len(self.genes_used)} used in the fit "
            f"(selection {self.options.get('genes')!r})",
        ]
        if ok.any():
            lines.append(
                "Fit (median over samples): Pearson r {:.4f}, R^2 {:.4f}, RMSE {:.4g}; "
                "{} of {} converged".format(
                    fit.loc[ok, "pearson_r"].median(), fit.loc[ok, "r2"].median(),
                    fit.loc[ok, "rmse"].median(), int(fit["converged"].sum()), m,
                )
            )
        if (~ok).any():
            n_zero = int((~ok).sum())
            lines.append(f"{n_zero} sample(s) all zero on the genes used: proportions NaN")
        mean = self.proportions.mean(axis=0).sort_values(ascending=False)
        lines.append("Mean proportions:")
        width = max(len(str(c)) for c in mean.index)
        lines.extend(f"  {str(c):<{width}}  {v:.4f}" for c, v in mean.items())
        return "\n".join(lines)

    def plot_fit(self, path=None, *, title=None):
        """Per-sample fit diagnostics (see :func:`fastdeconv.plotting.plot_fit_quality`).

        Parameters
        ----------
        path : str or os.PathLike, optional
            Save the figure there.
        title : str, optional
            The figure's title (what was deconvolved: dataset, method).

        Returns
        -------
        matplotlib.figure.Figure

        Examples
        --------
        >>> import numpy as np, pandas as pd, fastdeconv
        >>> genes = [f"g{i}" for i in range(60)]
        >>> sig = pd.DataFrame(np.random.default_rng(6).gamma(1.0, 100.0, (60, 2)),
        ...                    index=genes, columns=["A", "B"])
        >>> bulk = pd.DataFrame(sig.to_numpy() @ [[0.3], [0.7]], index=genes, columns=["s"])
        >>> fig = fastdeconv.deconvolve(bulk, sig).plot_fit()
        """
        from fastdeconv.plotting import plot_fit_quality

        return plot_fit_quality(self.fit, path=path, title=title)
