"""``fastdeconv deconvolve``: proportions of bulk samples with a signature.

The ``--method`` choices, their help and whether a method needs ``--weights``
come from the regression registry (:data:`fastdeconv.methods.REGRESSION`),
read only when the option is used or the help is shown.
"""

from __future__ import annotations

from fastdeconv.cli._common import (
    InputError,
    MethodName,
    add_command,
    check_plot_path,
    check_table_path,
    help_when_shown,
    one_line,
    proportions_frame,
    read,
    read_series,
    regression_methods,
    write,
)


def method_help(registry):
    """Help of ``--method``: each method of ``registry`` with its summary.

    Parameters
    ----------
    registry : fastdeconv.methods.Registry
        The methods to list.

    Returns
    -------
    str

    Examples
    --------
    >>> from fastdeconv.cli.deconvolve import method_help
    >>> from fastdeconv.methods import Method, Registry
    >>> toy = Registry("toy", modules=())
    >>> _ = toy.register(Method("a", "first", fit=print, normalise=True))
    >>> _ = toy.register(Method("b", "second", fit=print, normalise=True, weights="required"))
    >>> method_help(toy)
    'a: first; b: second (needs --weights)'
    """
    return "; ".join(
        f"{m.name}: {m.summary}{' (needs --weights)' if m.weights == 'required' else ''}"
        for m in registry
    )


def weights_help(registry):
    """Help of ``--weights``, naming the methods of ``registry`` that require or refuse it.

    Parameters
    ----------
    registry : fastdeconv.methods.Registry
        The methods to look at.

    Returns
    -------
    str

    Examples
    --------
    >>> from fastdeconv.cli.deconvolve import weights_help
    >>> from fastdeconv.methods import Method, Registry
    >>> toy = Registry("toy", modules=())
    >>> _ = toy.register(Method("w", "weighted", fit=print, normalise=True, weights="required"))
    >>> weights_help(toy)  # doctest: +ELLIPSIS
    '... (required by --method w, accepted by every method; genes without a weight get 0)'
    """
    required = ", ".join(f"--method {m.name}" for m in registry if m.weights == "required")
    refusing = [m.name for m in registry if m.weights == "unsupported"]
    accepted = (
        f"not accepted by {', '.join(f'--method {name}' for name in refusing)}"
        if refusing
        else "accepted by every method"
    )
    return (
        "two-column table (gene, weight): per-gene weights of the least-squares fit "
        f"({'required by ' + required + ', ' if required else ''}{accepted}; "
        "genes without a weight get 0)"
    )


def add_parser(subparsers):
    """Add the ``deconvolve`` command to the main parser's subcommands.

    Builds the options and sets ``run`` as the command's function (the
    interface of every command module: see :mod:`fastdeconv.cli`).

    Examples
    --------
    >>> import argparse
    >>> from fastdeconv.cli import deconvolve
    >>> sub = argparse.ArgumentParser(prog="fastdeconv").add_subparsers(dest="command")
    >>> parser = deconvolve.add_parser(sub)
    >>> args = parser.parse_args(["--bulk", "b.tsv", "--signature", "s.tsv", "--output", "o.tsv"])
    >>> args.func is deconvolve.run, args.method
    (True, None)
    """
    p = add_command(
        subparsers,
        "deconvolve",
        jobs=True,
        help="estimate cell-type proportions of bulk samples with a signature",
        description="Estimate the cell-type proportions of bulk samples (BULK, genes x samples, "
        "linear scale) with a signature (SIG, genes x cell types). Writes OUT as samples x "
        "cell types.",
    )
    p.add_argument("--bulk", required=True, metavar="BULK", help="genes x samples table")
    p.add_argument("--signature", required=True, metavar="SIG", help="genes x cell types table")
    p.add_argument(
        "--output", required=True, metavar="OUT", help="proportions, samples x cell types"
    )
    help_when_shown(
        p.add_argument(
            "--method",
            type=MethodName(regression_methods),
            default=None,
            metavar="METHOD",
            help="a regression method (default: the library's, nnls)",
        ),
        lambda: f"{method_help(regression_methods())}; default: the library's, nnls",
    )
    p.add_argument(
        "--genes",
        choices=["auto", "markers", "all"],
        default=None,
        help="genes used in the fit (default: the library's, auto)",
    )
    p.add_argument(
        "--robust",
        choices=["huber", "none"],
        default=None,
        help="Huber re-weighting of badly fitting genes, or plain least squares "
        "(default: the library's, huber)",
    )
    p.add_argument(
        "--scale",
        choices=["auto", "linear", "log2", "log2p1"],
        default=None,
        help="scale of the bulk: auto refuses log-looking data; log2/log2p1 un-log "
        "with 2**x / 2**x - 1 (default: auto)",
    )
    p.add_argument("--fit-output", metavar="FILE", help="per-sample fit diagnostics table")
    help_when_shown(
        p.add_argument(
            "--weights",
            metavar="FILE",
            help="two-column table (gene, weight): per-gene weights of the least-squares fit",
        ),
        lambda: weights_help(regression_methods()),
    )
    p.add_argument(
        "--rna-content",
        metavar="FILE",
        help="two-column table (cell type, RNA per cell): write cell fractions instead of "
        "RNA fractions (e.g. the table `evaluate --fit-rna-content` writes)",
    )
    p.add_argument("--plot", metavar="FILE.png", help="stacked bars of the proportions")
    p.add_argument("--plot-fit", metavar="FILE.png", help="per-sample fit quality")
    p.set_defaults(func=run)
    return p


def run(args):
    """Reference-based deconvolution of BULK with SIG -> proportions table.

    Output paths are checked before any input is read; figures are drawn
    before any table is written, so a failing figure writes nothing.

    Returns the exit status 0; bad input raises (see :func:`fastdeconv.cli.main`).

    Examples
    --------
    >>> from fastdeconv.cli import build_parser
    >>> from fastdeconv.cli.deconvolve import run
    >>> args = build_parser().parse_args(
    ...     ["deconvolve", "--bulk", "missing.tsv", "--signature", "sig.tsv", "--output", "p.tsv"]
    ... )
    >>> run(args)
    Traceback (most recent call last):
    ...
    FileNotFoundError: --bulk: table file not found: 'missing.tsv'
    """
    check_table_path(args.output, "--output")
    check_table_path(args.fit_output, "--fit-output")
    check_plot_path(args.plot)
    check_plot_path(args.plot_fit, "--plot-fit")
    if args.method is not None and not args.weights:
        if regression_methods().get(args.method).weights == "required":
            raise InputError(
                f"--method {args.method} needs --weights FILE (a two-column table: gene, weight)"
            )
    bulk = read(args.bulk, "--bulk")
    signature = read(args.signature, "--signature")

    from fastdeconv.regression import deconvolve

    kwargs = {"n_jobs": args.n_jobs, "progress": False if args.quiet else None}
    for option in ("method", "genes", "scale"):
        if getattr(args, option) is not None:
            kwargs[option] = getattr(args, option)
    if args.robust is not None:
        kwargs["robust"] = None if args.robust == "none" else args.robust
    content = None
    if args.rna_content:
        content = read_series(args.rna_content, "--rna-content", "cell type, RNA content")
    if args.weights:
        kwargs["weights"] = read_series(args.weights, "--weights", "gene, weight")
    result = deconvolve(bulk, signature, **kwargs)
    proportions = result.proportions
    if content is not None:
        try:
            proportions = result.to_cell_fractions(content)
        except ValueError as exc:
            raise InputError(f"--rna-content: {one_line(exc)}") from None
    # figures first: if one fails, no table is written either
    if args.plot:
        from fastdeconv.plotting import plot_proportions

        plot_proportions(proportions, path=args.plot)  # what OUT holds (cell fractions if asked)
    if args.plot_fit:
        result.plot_fit(args.plot_fit)
    write(proportions_frame(proportions), args.output, "--output", "sample")
    if args.fit_output:
        write(result.fit, args.fit_output, "--fit-output", "sample")
    if not args.quiet:
        print(result.summary())
        if content is not None:
            print(f"{args.output}: cell fractions (RNA fractions divided by --rna-content)")
    return 0
