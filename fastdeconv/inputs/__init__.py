"""The one front door: every user object becomes checked arrays here.

- :mod:`fastdeconv.inputs.tables`: expression tables (bulk, signatures) --
  DataFrame, array, AnnData or file -- their scale, gene names, gene matching
  and the checks that protect the solvers from silently wrong answers;
- :mod:`fastdeconv.inputs.counts`: single-cell counts (dense, sparse, AnnData)
  and their cell labels.

Every pipeline reads its inputs through these functions, so they are checked
the same way everywhere.
"""

from fastdeconv.inputs._common import is_anndata
from fastdeconv.inputs.counts import Counts, as_counts, as_labels
from fastdeconv.inputs.tables import (
    LOG_MAX_THRESHOLD,
    MISSING,
    SCALES,
    GeneMatch,
    as_expression_frame,
    check_expression,
    check_orientation,
    collinear_types,
    harmonize_genes,
    looks_log_scale,
    match_genes,
    read_expression,
    unlog,
    warn_if_collinear,
)

__all__ = [
    "read_expression",
    "unlog",
    "as_expression_frame",
    "check_expression",
    "looks_log_scale",
    "harmonize_genes",
    "match_genes",
    "check_orientation",
    "GeneMatch",
    "collinear_types",
    "warn_if_collinear",
    "is_anndata",
    "Counts",
    "as_counts",
    "as_labels",
]
