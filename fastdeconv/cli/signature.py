"""``fastdeconv signature``: a signature matrix from labelled single-cell counts."""

from __future__ import annotations


from fastdeconv.cli._cells import (
    CELL_FLAGS,
    add_cell_options,
    cell_keywords,
    check_cell_options,
    read_cells,
    replay_warnings,
    show_notes,
)
from fastdeconv.cli._common import (
    InputError,
    add_command,
    check_table_path,
    int_or_auto,
    number_type,
    output_file,
    positive_int,
    write,
)

#: Keyword of :func:`fastdeconv.signature.build_signature` -> the flag that sets it, so that
#: an :class:`fastdeconv.errors.InputProblem` or a note names the flag to type.
FLAGS = {
    **CELL_FLAGS,
    "method": "--method",
    "n_markers": "--n-markers",
    "fdr": "--fdr",
    "min_log_fc": "--min-log-fc",
    "min_frac": "--min-frac",
    "n_clusters": "--clusters",
    "seed": "--seed",
}

#: The marker tests (:data:`fastdeconv.signature._METHODS`, spelled here so that building
#: the parser imports no NumPy; a test checks them).
METHODS = ("t-test", "poisson", "nb")


#: ``type=`` of an option taking a number from 0 to 1.
fraction = number_type(float, lambda v: 0 <= v <= 1, "a number from 0 to 1")
#: ``type=`` of an option taking any finite number.
finite_float = number_type(float, lambda v: True, "a finite number")


def add_parser(subparsers):
    """Add the ``signature`` command to the main parser's subcommands.

    Builds the options and sets ``run`` as the command's function (the
    interface of every command module: see :mod:`fastdeconv.cli`).

    Examples
    --------
    >>> import argparse
    >>> from fastdeconv.cli import signature
    >>> sub = argparse.ArgumentParser(prog="fastdeconv").add_subparsers(dest="command")
    >>> parser = signature.add_parser(sub)
    >>> args = parser.parse_args(["--counts", "c.tsv", "--labels", "l.tsv", "--output", "s.tsv"])
    >>> args.func is signature.run, args.method, args.fdr
    (True, 't-test', 0.05)
    """
    p = add_command(
        subparsers,
        "signature",
        cells=True,
        help="build a signature matrix from labelled single-cell counts",
        description="Build a signature (genes x cell types) and a marker table from raw "
        "single-cell counts: COUNTS is a genes x cells table or an .h5ad file (cells x genes); "
        "LABELS a two-column table (cell id, cell type) with a header row. A marker passes "
        "--fdr, --min-log-fc and --min-frac; the --n-markers most specific of each type are "
        "kept. --rna-content-output and --weights-output write what `fastdeconv deconvolve "
        "--rna-content` and `--weights` read.",
    )
    add_cell_options(p, "the RNA contents are then unknown")
    output_file(p, "--output", required=True, metavar="SIG", help="signature, genes x cell types")
    output_file(p, "--markers", metavar="MARKERS_OUT", help="marker table")
    output_file(
        p,
        "--rna-content-output",
        metavar="FILE",
        help="RNA content of each cell type (mean library size), two columns (cell_type, "
        "rna_content): what `deconvolve --rna-content` reads to give cell fractions",
    )
    output_file(
        p,
        "--weights-output",
        metavar="FILE",
        help="gene weights of the signature genes (inverse mean), two columns (gene, weight): "
        "what `deconvolve --weights` reads",
    )
    p.add_argument("--method", default="t-test", choices=METHODS, help="marker test")
    p.add_argument(
        "--n-markers",
        type=int_or_auto,
        default=None,
        metavar="N",
        help="markers per cell type, or 'auto' (default: the library's)",
    )
    p.add_argument(
        "--fdr",
        type=fraction,
        default=0.05,
        metavar="Q",
        help="largest Benjamini-Hochberg adjusted p-value of a marker",
    )
    p.add_argument(
        "--min-log-fc",
        type=finite_float,
        default=1.0,
        metavar="LFC",
        help="smallest log2 fold change of a marker against all other cells (1 = two-fold)",
    )
    p.add_argument(
        "--min-frac",
        type=fraction,
        default=0.1,
        metavar="F",
        help="smallest fraction of the type's cells expressing a marker",
    )
    p.add_argument(
        "--clusters",
        type=positive_int,
        default=None,
        metavar="N",
        help="no labels: cluster the cells into N groups (names are arbitrary)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.set_defaults(func=run, flags=FLAGS)
    return p


def run(args):
    """Signature matrix (and marker table) from labelled single-cell counts.

    Returns the exit status 0; bad input raises (see :func:`fastdeconv.cli.main`).

    Examples
    --------
    >>> from fastdeconv.cli import build_parser
    >>> from fastdeconv.cli.signature import run
    >>> args = build_parser().parse_args(["signature", "--counts", "c.tsv", "--output", "s.tsv"])
    >>> run(args)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    fastdeconv.cli._common.InputError: give --labels (a cell id, cell type table), ...
    """
    for path, option in (
        (args.output, "--output"),
        (args.markers, "--markers"),
        (args.rna_content_output, "--rna-content-output"),
        (args.weights_output, "--weights-output"),
    ):
        check_table_path(path, option)
    if args.labels is None and args.label_key is None and args.clusters is None:
        raise InputError(
            "give --labels (a cell id, cell type table), --label-key (.h5ad) or --clusters N"
        )
    if args.clusters is not None and (args.labels is not None or args.label_key is not None):
        raise InputError("give --labels/--label-key or --clusters, not both")
    check_cell_options(args)
    if args.rna_content_output and args.normalized is True:
        raise InputError(_UNKNOWN_CONTENT)
    counts, labels = read_cells(args)

    import warnings

    from fastdeconv.signature import build_signature

    kwargs = {
        "method": args.method,
        "seed": args.seed,
        "fdr": args.fdr,
        "min_log_fc": args.min_log_fc,
        "min_frac": args.min_frac,
        "progress": False if args.quiet else None,
        **cell_keywords(args),
    }
    if args.label_key is not None:
        kwargs["label_key"] = args.label_key
    if args.n_markers is not None:
        kwargs["n_markers"] = args.n_markers
    if args.clusters is not None:
        kwargs["n_clusters"] = args.clusters
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = build_signature(counts, labels, **kwargs)
    if args.rna_content_output and not result.rna_content_known:
        raise InputError(_UNKNOWN_CONTENT)
    replay_warnings(caught, shown=result.notes)  # the notes are shown below, once
    show_notes(args, result.notes, FLAGS)
    write(result.signature, args.output, "--output", "gene")
    if args.markers:
        write(result.markers.set_index("gene"), args.markers, "--markers", "gene")
    if args.rna_content_output:
        write(result.rna_content.to_frame(), args.rna_content_output, "--rna-content-output",
              "cell_type")
    if args.weights_output:
        write(result.gene_weights.to_frame(), args.weights_output, "--weights-output", "gene")
    if not args.quiet:
        print(result.summary(notes=False))
    return 0


_UNKNOWN_CONTENT = (
    "--rna-content-output: the RNA contents are unknown when the signature is built from "
    "normalised values (--normalized): they need each cell's library size; give raw counts, "
    "or leave --rna-content-output out"
)
