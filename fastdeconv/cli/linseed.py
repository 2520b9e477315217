"""``fastdeconv linseed``: reference-free deconvolution (LinSeed) of BULK into K components."""

from __future__ import annotations

from fastdeconv.cli._common import (
    InputError,
    add_command,
    check_plot_path,
    check_table_path,
    int_or_auto,
    positive_int,
    proportions_frame,
    read,
    write,
)


def add_parser(subparsers):
    """Add the ``linseed`` command to the main parser's subcommands.

    Builds the options and sets ``run`` as the command's function (the
    interface of every command module: see :mod:`fastdeconv.cli`).

    Examples
    --------
    >>> import argparse
    >>> from fastdeconv.cli import linseed
    >>> sub = argparse.ArgumentParser(prog="fastdeconv").add_subparsers(dest="command")
    >>> parser = linseed.add_parser(sub)
    >>> args = parser.parse_args(["--bulk", "b.tsv", "--cell-types", "auto", "--output", "o.tsv"])
    >>> args.func is linseed.run, args.cell_types
    (True, 'auto')
    """
    p = add_command(
        subparsers,
        "linseed",
        jobs=True,
        help="reference-free deconvolution (LinSeed)",
        description="Reference-free deconvolution of BULK (genes x samples, linear scale) by "
        "LinSeed's mutual-linearity simplex method. Writes OUT as samples x components "
        "(component_1..K) in the same format as `deconvolve`.",
    )
    p.add_argument("--bulk", required=True, metavar="BULK", help="genes x samples table")
    p.add_argument(
        "--cell-types",
        required=True,
        type=int_or_auto,
        metavar="K",
        help="number of components, or 'auto' to estimate it",
    )
    p.add_argument(
        "--output", required=True, metavar="OUT", help="proportions, samples x components"
    )
    p.add_argument(
        "--signature-output", metavar="SIG", help="estimated signature, genes x components"
    )
    p.add_argument("--markers-output", metavar="MARKERS", help="marker genes of each component")
    p.add_argument(
        "--top-genes",
        type=positive_int,
        default=None,
        metavar="N",
        help="most expressed genes analysed (default: the library's)",
    )
    p.add_argument(
        "--min-mean",
        type=float,
        default=None,
        metavar="X",
        help="drop genes whose mean is below X (default: 10 for count data, none otherwise)",
    )
    p.add_argument(
        "--permutations",
        type=positive_int,
        default=None,
        metavar="N",
        help="permutations of the linearity null (default: the library's)",
    )
    p.add_argument(
        "--marker-genes",
        metavar="FILE",
        help="known markers, a two-column table (cell type, gene): name the components "
        "after the cell types whose markers they carry",
    )
    p.add_argument(
        "--scale",
        choices=["auto", "linear", "log2"],
        default=None,
        help="auto refuses log-looking data; linear asserts linear scale; log2 un-logs "
        "with 2**x first (default: the library's, auto)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--plot", metavar="FILE.png", help="LinSeed diagnostic plots")
    p.set_defaults(func=run)
    return p


def run(args):
    """Reference-free deconvolution (LinSeed) of BULK into K components.

    Returns the exit status 0; bad input raises (see :func:`fastdeconv.cli.main`).

    Examples
    --------
    >>> from fastdeconv.cli import build_parser
    >>> from fastdeconv.cli.linseed import run
    >>> run(build_parser().parse_args(
    ...     ["linseed", "--bulk", "missing.tsv", "--cell-types", "3", "--output", "p.tsv"]
    ... ))
    Traceback (most recent call last):
    ...
    FileNotFoundError: --bulk: table file not found: 'missing.tsv'
    """
    check_table_path(args.output, "--output")
    check_table_path(args.signature_output, "--signature-output")
    check_table_path(args.markers_output, "--markers-output")
    check_plot_path(args.plot)
    bulk = read(args.bulk, "--bulk")

    from fastdeconv.reference_free import linseed

    kwargs = {"seed": args.seed}
    if args.top_genes is not None:
        kwargs["top_genes"] = args.top_genes
    if args.min_mean is not None:
        kwargs["min_mean"] = args.min_mean
    if args.permutations is not None:
        kwargs["n_permutations"] = args.permutations
    if args.n_jobs is not None:
        kwargs["n_jobs"] = args.n_jobs
    if args.scale is not None:
        kwargs["scale"] = args.scale
    if args.marker_genes is not None:
        kwargs["marker_genes"] = _read_marker_lists(args.marker_genes)
    result = linseed(bulk, args.cell_types, **kwargs)
    if args.plot:
        result.plot(args.plot)
    write(proportions_frame(result.proportions), args.output, "--output", "sample")
    if args.signature_output:
        write(result.signature, args.signature_output, "--signature-output", "gene")
    if args.markers_output:
        markers = result.markers_frame().set_index("component")  # as LinseedResult.write does
        write(markers, args.markers_output, "--markers-output", None)
    if not args.quiet:
        print(result.summary())
    return 0


def _read_marker_lists(path):
    """Two-column table (cell type, gene) with a header -> {cell type: [genes]}."""
    table = read(path, "--marker-genes", index_col=None, numeric=False)
    if table.shape[1] != 2:
        raise InputError(
            f"--marker-genes: {path!r} must have two columns (cell type, gene), "
            f"found {table.shape[1]}"
        )
    table = table.dropna().astype(str)
    return {t: list(g) for t, g in table.groupby(table.columns[0], sort=False)[table.columns[1]]}

