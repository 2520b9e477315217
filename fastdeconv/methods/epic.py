"""EPIC: a weighted fit with an "other cells" share, then the mRNA-per-cell correction.

Racle et al. (2017) fit every bulk sample as a non-negative mixture of the
reference profiles whose mRNA shares sum to *at most* one: the remainder is
the mRNA of cells the reference does not describe ("other cells": tumour,
stroma ...).  ``"epic"`` follows the R package's ``EPIC()`` (version 1.1):

1. **scale** (``scaleExprs``): bulk samples and reference columns are divided
   by their totals over the genes they share and multiplied by 1e6, so that a
   sample's mRNA shares can sum to less than one (the rest of its total is on
   genes of the other cells);
2. **gene weights** from the reference's variability ``V``
   (``refProfiles.var``, on the same scale as the reference):
   ``w_g = sum_k S_gk / (V_gk + 1e-12)`` (types with unknown variability left
   out), capped at 100 times the median of the positive weights; without a
   variability every gene weighs the same (the package's fallback);
3. **fit** ``min sum_g w_g (S x - b)_g^2`` over ``x >= 0``, ``0 <= sum(x) <= 1``
   (``withOtherCells=TRUE``; ``other_cells=False`` asks ``sum(x) = 1``), the
   "other cells" mRNA share is ``1 - sum(x)``;
4. **cell fractions**: every mRNA share divided by the type's mRNA per cell
   (the "other cells" by theirs), renormalised to sum to one with the other
   cells.

The package minimises with ``constrOptim`` (Nelder-Mead inside a log
barrier): an approximation of the same minimum.  Here the constrained weighted
least squares is solved exactly by the active-set core solver (the
``sum(x) <= 1`` simplex with a slack variable).

Where the pipeline's inputs come from: the totals of step 1 are those of the
bulk and the signature over every gene they share, before the marker genes
are chosen (``problem.bulk_totals`` and ``problem.signature_totals``; without
them each column is scaled over the genes used, which cannot leave room for
other cells); the variability is the standard deviation over donors of a
single-cell reference given with ``subjects=``; the mRNA per cell comes from
EPIC's table by the cell-type names (``problem.cell_types``), from a
single-cell reference's mean counts per cell when there is one, or from
``mrna_per_cell=``.

Examples
--------
>>> import numpy as np
>>> from fastdeconv.methods import REGRESSION
>>> from fastdeconv.methods._problem import RegressionProblem
>>> S = np.array([[4e5, 1e4], [1e4, 3e5], [5e4, 5e4]])  # 3 signature genes, TPM
>>> b = S @ np.array([[0.3], [0.2]])  # half of the sample's mRNA is from other cells
>>> fit = REGRESSION.get("epic").fit(RegressionProblem(
...     S, b, cell_types=("B cells", "Monocytes"),
...     options={"scale": "none", "fractions": "mrna"}))
>>> fit.coefficients.round(6).ravel().tolist(), fit.extra["other_cells"].round(6).tolist()
([0.3, 0.2], [0.5])
"""

from __future__ import annotations

import re
import warnings

import numpy as np

from fastdeconv.methods import REGRESSION, Method
from fastdeconv.methods._cells import merged_options, option_bool, option_choice, option_float
from fastdeconv.methods._problem import MethodFit

__all__ = ["EPIC_MRNA_PER_CELL", "OTHER_CELLS", "EPIC_OPTIONS", "mrna_per_cell"]

_EPIC = (
    "Racle J., de Jonge K., Baumgaertner P., Speiser D. E., Gfeller D. (2017) Simultaneous "
    "enumeration of cancer and immune cell types from bulk tumor gene expression data. "
    "eLife 6:e26476. doi:10.7554/eLife.26476"
)

#: Name of the extra column: the share of the sample's cells that the reference does not describe.
OTHER_CELLS = "other_cells"

#: EPIC's ``mRNA_cell_default`` (relative mRNA per cell; macrophages as monocytes).
EPIC_MRNA_PER_CELL = {
    "Bcells": 0.4016, "Macrophages": 1.4196, "Monocytes": 1.4196, "Neutrophils": 0.1300,
    "NKcells": 0.4396, "Tcells": 0.3952, "CD4_Tcells": 0.3952, "CD8_Tcells": 0.3952,
    "Thelper": 0.3952, "Treg": 0.3952, "otherCells": 0.4000, "default": 0.4000,
}

#: Names of other spellings, matched on the lower-case name without spaces or punctuation
#: ("T cells CD8", "NK cells resting", "Macrophages M2" ...), in this order.
_LINEAGES = (
    (r"macrophage", "Macrophages"), (r"monocyte", "Monocytes"), (r"neutrophil", "Neutrophils"),
    (r"^nk|nkcell|naturalkiller", "NKcells"), (r"cd8", "CD8_Tcells"),
    (r"treg|regulatoryt", "Treg"), (r"cd4|helper", "CD4_Tcells"), (r"tcell", "Tcells"),
    (r"^b$|bcell", "Bcells"),
)

#: The options of ``method="epic"`` and their defaults.
EPIC_OPTIONS = {
    "mrna_per_cell": None, "other_mrna": "auto", "weights": "auto", "scale": "auto",
    "other_cells": True, "fractions": "cells",
}
_DOCS = {
    "mrna_per_cell": "mRNA per cell by type name, a dict or 'name=value,...' (default: EPIC's "
                     "table by name, or the single cells' mean counts per cell)",
    "other_mrna": "mRNA per cell of the other cells ('auto': EPIC's 0.4, or the median of the "
                  "types' values when they are counts from single cells)",
    "weights": "'variability' (from the donors of a single-cell reference), 'none', or 'auto' "
               "(variability when there is one)",
    "scale": "'common' (each column to 1e6 over the genes bulk and signature share), 'given' "
             "(over the genes used), 'none', or 'auto' (common when the pipeline gives totals)",
    "other_cells": "allow a share of other cells (sum at most 1); False: the shares sum to 1",
    "fractions": "'cells' (mRNA shares divided by the mRNA per cell) or 'mrna'",
}


def _compact(name):
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def _parse_given(value):
    """``mrna_per_cell=`` as a dict name -> positive float."""
    if value is None:
        return {}
    if isinstance(value, str):
        value = tuple(part for part in value.split(",") if part.strip())
    if isinstance(value, (tuple, list)):
        pairs = {}
        for item in value:
            name, sep, number = str(item).rpartition("=")
            if not sep or not name.strip():
                raise ValueError(
                    "method_options={'mrna_per_cell': ...} must be a dict of cell type -> mRNA "
                    f"per cell, or text 'name=value,name=value'; got {item!r}"
                )
            pairs[name.strip()] = number
        value = pairs
    if not isinstance(value, dict):
        raise ValueError(
            "method_options={'mrna_per_cell': ...} must be a dict of cell type -> mRNA per "
            f"cell, got {type(value).__name__}"
        )
    out = {}
    for name, number in value.items():
        try:
            number = float(number)
        except (TypeError, ValueError):
            number = np.nan
        if not (np.isfinite(number) and number > 0):
            raise ValueError(
                f"method_options={{'mrna_per_cell': ...}}: the mRNA per cell of {name!r} must be "
                f"a positive number, got {value[name]!r}"
            )
        out[str(name)] = number
    return out


def _epic_name(name):
    """The entry of EPIC's table for a cell-type name, or None."""
    compact = _compact(name)
    for key in EPIC_MRNA_PER_CELL:
        if _compact(key) == compact:
            return key
    for pattern, key in _LINEAGES:
        if re.search(pattern, compact):
            return key
    return None


def mrna_per_cell(cell_types, given=None, rna_content=None, other="auto"):
    """mRNA per cell of every type and of the other cells, as EPIC corrects with.

    Each type takes, in this order: its value in ``given`` (matched by name,
    ignoring case, spaces and punctuation); its single cells' mean counts per
    cell (``rna_content``); EPIC's value for its name or lineage
    (:data:`EPIC_MRNA_PER_CELL`: "T cells CD8" -> ``CD8_Tcells``, "Macrophages
    M2" -> ``Macrophages``); EPIC's default 0.4.

    Parameters
    ----------
    cell_types : sequence of str
        The types' names (may be empty: every type takes the default).
    given : dict, optional
        Name -> mRNA per cell (``"otherCells"`` / ``"other_cells"`` set the
        other cells').
    rna_content : ndarray, shape (k,), optional
        Mean counts per cell of each type from a single-cell reference.
    other : float or "auto", optional
        The other cells' value; ``"auto"``: EPIC's 0.4, or the median of the
        types' values when they come from ``rna_content``.

    Returns
    -------
    values : ndarray, shape (k,)
    other : float
    defaulted : list of str
        The types that took EPIC's default (no value known for them).

    Examples
    --------
    >>> from fastdeconv.methods.epic import mrna_per_cell
    >>> values, other, defaulted = mrna_per_cell(
    ...     ["T cells CD8", "Monocytes", "Platelets"], {"Platelets": 0.05})
    >>> values.tolist(), other, defaulted
    ([0.3952, 1.4196, 0.05], 0.4, [])
    """
    given = _parse_given(given)
    by_compact = {_compact(name): v for name, v in given.items()}
    k = len(cell_types) if rna_content is None else len(rna_content)
    names = list(cell_types) if len(cell_types) == k else [""] * k
    values = np.empty(k)
    defaulted = []
    for j, name in enumerate(names):
        key = _epic_name(name) if name else None
        if name and _compact(name) in by_compact:
            values[j] = by_compact[_compact(name)]
        elif rna_content is not None:
            values[j] = float(rna_content[j])
        elif key is not None:
            values[j] = EPIC_MRNA_PER_CELL[key]
        else:
            values[j] = EPIC_MRNA_PER_CELL["default"]
            defaulted.append(name or f"column {j}")
    for alias in ("othercells", "other"):
        if alias in by_compact and (isinstance(other, str) and other == "auto"):
            other = by_compact[alias]
    if isinstance(other, str):
        if other != "auto":
            try:
                other = float(other)
            except ValueError:
                raise ValueError(
                    "method_options={'other_mrna': ...} must be a positive number or 'auto', "
                    f"got {other!r}"
                ) from None
        elif rna_content is not None:
            other = float(np.median(values))
        else:
            other = EPIC_MRNA_PER_CELL["otherCells"]
    other = option_float({"other_mrna": other}, "other_mrna")
    return values, other, defaulted


def _scaled(problem, scale):
    """Bulk and signature on EPIC's scale (step 1), and the signature's factor per column."""
    S, B = problem.S, problem.B
    b_tot = getattr(problem, "bulk_totals", None)
    s_tot = getattr(problem, "signature_totals", None)
    if b_tot is None:
        b_tot, s_tot = problem.options.get("bulk_totals"), problem.options.get("signature_totals")
    if scale == "auto":
        scale = "common" if b_tot is not None and s_tot is not None else "given"
    if scale == "none":
        return S, B, np.ones(S.shape[1])
    if scale == "common":
        if b_tot is None or s_tot is None:
            raise ValueError(
                "method_options={'scale': 'common'} needs the totals of bulk and signature over "
                "the genes they share (the pipeline gives them): use scale='given' or 'none' "
                "when calling the method directly"
            )
        b_tot = np.asarray(b_tot, dtype=np.float64).reshape(-1)
        s_tot = np.asarray(s_tot, dtype=np.float64).reshape(-1)
    else:
        b_tot, s_tot = B.sum(axis=0), S.sum(axis=0)
    s_fac = 1e6 / np.where(s_tot > 0, s_tot, 1.0)
    b_fac = 1e6 / np.where(b_tot > 0, b_tot, 1.0)
    return np.ascontiguousarray(S * s_fac), B * b_fac, s_fac


def _variability_weights(S_scaled, s_fac, S, ctx):
    """EPIC's gene weights ``sum_k S_gk / (V_gk + 1e-12)``, capped at 100 x their median.

    ``V`` is the standard deviation over donors of each type's relative
    expression, brought to the signature's scale (the signature column over
    the cells' mean profile, on the genes used) and then to EPIC's scale.
    """
    sd = np.sqrt(ctx.subject_variance())
    mean = ctx.cell_mean().sum(axis=0)
    unit = S.sum(axis=0) / np.where(mean > 0, mean, 1.0)
    V = sd * (unit * s_fac)
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.nansum(S_scaled / (V + 1e-12), axis=1)
    positive = w > 0
    if positive.any():
        w = np.minimum(w, 100.0 * np.median(w[positive]))
    return w


def _fit_epic(problem):
    """``"epic"``: EPIC's constrained weighted fit, other cells and mRNA correction."""
    from fastdeconv.solvers._core import solve
    from fastdeconv.solvers.api import warn_unconverged

    opts = merged_options(problem, EPIC_OPTIONS)
    scale = option_choice(opts, "scale", ("auto", "common", "given", "none"))
    mode = option_choice(opts, "weights", ("auto", "variability", "none"))
    fractions = option_choice(opts, "fractions", ("cells", "mrna"))
    with_other = option_bool(opts, "other_cells")
    ctx = problem.cells
    if ctx is not None and ctx.subject_profiles.shape[:2] != problem.S.shape:
        ctx = None  # not on the signature's columns (a background column): no cells' values
    has_var = ctx is not None and ctx.n_subjects >= 2
    if mode == "variability" and not has_var:
        raise ValueError(
            "method_options={'weights': 'variability'} needs the variability of the reference: "
            "single cells (labels=) from at least 2 donors or batches (subjects=); or use "
            "weights='none'"
        )
    S, B, s_fac = _scaled(problem, scale)
    w = (_variability_weights(S, s_fac, problem.S, ctx)
         if mode == "variability" or (mode == "auto" and has_var) else np.ones(problem.n))
    if problem.weights is not None:
        w = w * problem.weights
    if not (w > 0).any():
        raise ValueError("method='epic': every gene has weight 0 (the reference's variability "
                         "leaves no gene to fit); use method_options={'weights': 'none'}")
    X, info = solve(S, B, kind="simplex", slack=with_other, weights=w, n_jobs=problem.n_jobs,
                    max_iter=problem.max_iter, tol=problem.tol)
    warn_unconverged(info.status, problem.max_iter, stacklevel=3)
    # the fit's reconstruction, back on the bulk's own scale (before the mRNA correction)
    scaled_total = B.sum(axis=0)
    fitted = (S @ X) * (problem.B.sum(axis=0) / np.where(scaled_total > 0, scaled_total, 1.0))
    other = np.clip(1.0 - X.sum(axis=0), 0.0, 1.0) if with_other else np.zeros(problem.m)
    if fractions == "cells":
        names = tuple(problem.cell_types) or tuple(opts.get("cell_types") or ())
        values, other_mrna, defaulted = mrna_per_cell(
            names, opts["mrna_per_cell"], None if ctx is None else ctx.rna_content,
            opts["other_mrna"],
        )
        if defaulted:
            warnings.warn(
                f"method='epic': no mRNA per cell is known for {', '.join(defaulted)}; EPIC's "
                "default 0.4 is used, which may bias the cell fractions: give them with "
                "method_options={'mrna_per_cell': {name: value}}",
                UserWarning, stacklevel=3,
            )
        X = X / values[:, None]
        other = other / other_mrna
        total = X.sum(axis=0) + other
        with np.errstate(invalid="ignore", divide="ignore"):
            X, other = X / total, other / total
    gene_w = np.broadcast_to(w[:, None], (problem.n, problem.m))
    return MethodFit(X, info.converged, info.n_iter, info.n_reweight, gene_w, {OTHER_CELLS: other},
                     fitted=fitted)


REGRESSION.register(Method(
    "epic",
    "EPIC: weighted fit with an 'other cells' share (sum at most 1), mRNA-per-cell "
    "corrected",
    fit=_fit_epic, normalise=False, weights="optional", background=False,
    losses=("squared",), extra_columns=(OTHER_CELLS,), references=(_EPIC,),
    options=EPIC_OPTIONS, option_docs=_DOCS, accepts=("cells",), cell_fractions=True,
))
