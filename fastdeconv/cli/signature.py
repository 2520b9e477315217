"""``fastdeconv signature``: a signature matrix from labelled single-cell counts."""

from __future__ import annotations

from fastdeconv.cli._common import (
    InputError,
    add_command,
    check_table_path,
    int_or_auto,
    positive_int,
    read_counts,
    read_labels,
)


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
    >>> args.func is signature.run, args.method
    (True, 't-test')
    """
    p = add_command(
        subparsers,
        "signature",
        cells=True,
        help="build a signature matrix from labelled single-cell counts",
        description="Build a signature (genes x cell types) and a marker table from raw "
        "single-cell counts: COUNTS is a genes x cells table or an .h5ad file (cells x genes); "
        "LABELS a two-column table (cell id, cell type) with a header row.",
    )
    p.add_argument("--output", required=True, metavar="SIG", help="signature, genes x cell types")
    p.add_argument("--markers", metavar="MARKERS_OUT", help="marker table")
    p.add_argument("--method", default="t-test", help="marker test: t-test, poisson or nb")
    p.add_argument(
        "--n-markers",
        type=int_or_auto,
        default=None,
        metavar="N",
        help="markers per cell type, or 'auto' (default: the library's)",
    )
    p.add_argument(
        "--clusters",
        type=positive_int,
        default=None,
        metavar="N",
        help="no labels: cluster the cells into N groups (names are arbitrary)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.set_defaults(func=run)
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
    check_table_path(args.output, "--output")
    check_table_path(args.markers, "--markers")
    if args.labels is None and args.label_key is None and args.clusters is None:
        raise InputError(
            "give --labels (a cell id, cell type table), --label-key (.h5ad) or --clusters N"
        )
    counts = read_counts(args.counts)
    labels = read_labels(args.labels) if args.labels is not None else None

    from fastdeconv.signature import build_signature

    kwargs = {"method": args.method, "seed": args.seed}
    if args.label_key is not None:
        kwargs["label_key"] = args.label_key
    if args.n_markers is not None:
        kwargs["n_markers"] = args.n_markers
    if args.clusters is not None:
        kwargs["n_clusters"] = args.clusters
    result = build_signature(counts, labels, **kwargs)
    result.write(args.output, markers_path=args.markers)
    if not args.quiet:
        print(result.summary())
    return 0
