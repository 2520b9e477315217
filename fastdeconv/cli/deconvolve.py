"""``fastdeconv deconvolve``: proportions of bulk samples with a signature.

The ``--method`` choices, their help and whether a method needs ``--weights``
come from the regression registry (:data:`fastdeconv.methods.REGRESSION`),
read only when the option is used or the help is shown.
"""

from __future__ import annotations

import os

from fastdeconv.cli._common import (
    InputError,
    MethodName,
    add_command,
    check_plot_path,
    check_table_path,
    help_when_shown,
    input_file,
    number_type,
    one_line,
    output_file,
    positive_int,
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


#: Python keyword -> this command's flag, for every remedy a deconvolve run can be
#: advised (see :mod:`fastdeconv.errors`).
FLAGS = {
    "method": "--method",
    "genes": "--genes",
    "n_markers": "--n-markers",
    "min_fold_change": "--min-fold-change",
    "robust": "--robust",
    "weights": "--weights",
    "scale": "--scale",
    "signature_scale": "--signature-scale",
    "duplicates": "--duplicates",
    "missing": "--missing",
    "case_insensitive": "--case-insensitive",
    "strip_version": "--strip-version",
    "min_genes": "--min-genes",
    "transpose_bulk": "--transpose-bulk",
    "transpose_signature": "--transpose-signature",
    "n_jobs": "--n-jobs",
}

#: The scales ``--scale``/``--signature-scale`` accept (:data:`fastdeconv.inputs.SCALES`,
#: written out so that building the parser imports nothing heavy; a test compares them).
SCALES = ("auto", "linear", "log2", "log2p1", "log1p")


#: ``type=`` of ``--min-fold-change``: a finite number of at least 1.
fold_change = number_type(float, lambda v: v >= 1, "a number of at least 1")


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
    input_file(p, "--bulk", required=True, metavar="BULK", help="genes x samples table")
    input_file(p, "--signature", required=True, metavar="SIG", help="genes x cell types table")
    output_file(
        p, "--output", required=True, metavar="OUT", help="proportions, samples x cell types"
    )
    help_when_shown(
        p.add_argument(
            "--method",
            type=MethodName(regression_methods),
            default=None,
            metavar="METHOD",
            help="a regression method (default: nnls)",
        ),
        lambda: f"{method_help(regression_methods())} (default: nnls)",
    )
    p.add_argument(
        "--genes",
        choices=["auto", "markers", "all"],
        default=None,
        help="genes used in the fit: marker genes of a whole-transcriptome signature (auto: "
        "when it has more than 200 genes per cell type), or all common genes (default: auto)",
    )
    p.add_argument(
        "--n-markers",
        type=positive_int,
        default=None,
        metavar="N",
        help="most marker genes kept per cell type when markers are selected (default: 100)",
    )
    p.add_argument(
        "--min-fold-change",
        type=fold_change,
        default=None,
        metavar="X",
        help="fold change over the second-highest cell type required of a marker gene "
        "(default: 2)",
    )
    p.add_argument(
        "--robust",
        choices=["huber", "none"],
        default=None,
        help="Huber re-weighting of badly fitting genes, or plain least squares "
        "(default: huber)",
    )
    p.add_argument(
        "--scale",
        choices=SCALES,
        default=None,
        help="scale of the bulk: auto refuses log-looking data, linear asserts the linear "
        "scale; log2/log2p1/log1p un-log with 2**x / 2**x - 1 / exp(x) - 1 (default: auto)",
    )
    p.add_argument(
        "--signature-scale",
        choices=SCALES,
        default=None,
        help="scale of the signature, as --scale (default: auto)",
    )
    p.add_argument(
        "--transpose-bulk",
        action="store_true",
        help="BULK has samples as rows and genes as columns: transpose it",
    )
    p.add_argument(
        "--transpose-signature",
        action="store_true",
        help="SIG has cell types as rows and genes as columns: transpose it",
    )
    p.add_argument(
        "--case-insensitive",
        action="store_true",
        help="match gene names ignoring case (Cd4 = CD4)",
    )
    p.add_argument(
        "--strip-version",
        action="store_true",
        help="drop Ensembl version suffixes before matching (ENSG00000010610.12 = "
        "ENSG00000010610)",
    )
    p.add_argument(
        "--duplicates",
        choices=["raise", "sum"],
        default=None,
        help="genes named more than once in a table: refuse, or add their rows up "
        "(default: raise)",
    )
    p.add_argument(
        "--missing",
        choices=["raise", "drop"],
        default=None,
        help="genes with missing (NaN, empty) values: refuse, or leave them out "
        "(default: raise)",
    )
    p.add_argument(
        "--min-genes",
        type=positive_int,
        default=None,
        metavar="N",
        help="fewest genes bulk and signature must share (default: max(2 x cell types, 50) "
        "and half of the signature's genes)",
    )
    output_file(p, "--fit-output", metavar="FILE", help="per-sample fit diagnostics table")
    help_when_shown(
        input_file(
            p,
            "--weights",
            metavar="FILE",
            help="two-column table (gene, weight): per-gene weights of the least-squares fit",
        ),
        lambda: weights_help(regression_methods()),
    )
    input_file(
        p,
        "--rna-content",
        metavar="FILE",
        help="two-column table (cell type, RNA per cell): write cell fractions instead of "
        "RNA fractions (e.g. the table `evaluate --fit-rna-content` writes)",
    )
    output_file(p, "--plot", metavar="FILE.png", help="stacked bars of the proportions")
    output_file(p, "--plot-fit", metavar="FILE.png", help="per-sample fit quality")
    p.set_defaults(func=run, flags=FLAGS)
    return p


#: Options passed to :func:`fastdeconv.deconvolve` under their own name when given.
_PASSED = (
    "method", "genes", "n_markers", "min_fold_change", "scale", "signature_scale", "duplicates",
    "missing", "min_genes",
)
#: Switches passed when set.
_SWITCHES = ("case_insensitive", "strip_version", "transpose_bulk", "transpose_signature")


def title(args):
    """The figures' title: the input files and the method.

    Examples
    --------
    >>> import argparse
    >>> from fastdeconv.cli.deconvolve import title
    >>> title(argparse.Namespace(bulk="data/mix.tsv", signature="lm22.tsv", method=None,
    ...                          rna_content=None))
    'mix.tsv with signature lm22.tsv (method nnls)'
    """
    text = (
        f"{os.path.basename(args.bulk)} with signature {os.path.basename(args.signature)} "
        f"(method {args.method or 'nnls'})"
    )
    if args.rna_content:
        text += f", cell fractions with {os.path.basename(args.rna_content)}"
    return text


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
    for option in _PASSED:
        if getattr(args, option) is not None:
            kwargs[option] = getattr(args, option)
    for option in _SWITCHES:
        if getattr(args, option):
            kwargs[option] = True
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

        # what OUT holds (cell fractions if asked)
        plot_proportions(proportions, path=args.plot, title=title(args))
    if args.plot_fit:
        result.plot_fit(args.plot_fit, title=title(args))
    write(proportions_frame(proportions), args.output, "--output", "sample")
    if args.fit_output:
        write(result.fit, args.fit_output, "--fit-output", "sample")
    if not args.quiet:
        print(result.summary())
        if content is not None:
            print(f"{args.output}: cell fractions (RNA fractions divided by --rna-content)")
    return 0
