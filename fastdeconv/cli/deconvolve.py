"""``fastdeconv deconvolve``: proportions of bulk samples with a signature or single cells.

The reference is a signature (``--signature``) or a labelled single-cell
reference (``--reference-counts`` with ``--labels``): the likelihood method
(``--method bayes``) fits the cells' profiles directly, the regression methods
build a signature from them first.

The ``--method`` choices, their help and whether a method needs ``--weights``
come from the regression registry (:data:`fastdeconv.methods.REGRESSION`),
read only when the option is used or the help is shown.
"""

from __future__ import annotations

import os

from fastdeconv.cli._cells import normalized_value
from fastdeconv.cli._common import (
    _option,
    InputError,
    MethodName,
    add_command,
    check_plot_path,
    _check_folder,
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
    "labels": "--labels",
    "label_key": "--label-key",
    "subjects": "--subjects",
    "subject_key": "--subject-key",
    "method_options": "--method-option",
    "hierarchy": "--hierarchy",
    "layer": "--layer",
    "unexplained": "--unexplained",
    "residual_report": "--residual-report",
    "states": "--states",
    "counts_layer": "--counts-layer",
    "normalized": "--normalized",
    "fractions": "--fractions",
    "update_reference": "--update-reference",
    "uncertainty": "--uncertainty-output",
    "exclude": "--exclude",
    "outliers": "--keep-outliers",
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
    input_file(p, "--bulk", required=True, metavar="BULK",
               help="genes x samples table, or AnnData .h5ad / .zarr (samples x genes; read "
               "block by block, any size)")
    p.add_argument("--layer", metavar="NAME",
                   help=".h5ad/.zarr --bulk: the layer to read instead of .X")
    input_file(p, "--signature", metavar="SIG",
               help="genes x cell types table (or give --reference-counts)")
    input_file(
        p, "--reference-counts", metavar="COUNTS",
        help="single-cell reference instead of SIG: raw counts, genes x cells table or .h5ad "
        "(cells x genes), with --labels (or --label-key); --method bayes fits it directly, the "
        "other methods build a signature from it",
    )
    input_file(p, "--labels", metavar="LABELS",
               help="two-column table (cell id, cell type) of the --reference-counts cells")
    p.add_argument("--label-key", metavar="KEY",
                   help=".h5ad --reference-counts: the .obs column holding the cell types")
    input_file(p, "--subjects", metavar="FILE",
               help="two-column table (cell id, donor or batch) of the --reference-counts cells: "
               "for the methods that use the variation between donors (music, bisque)")
    p.add_argument("--subject-key", metavar="KEY",
                   help=".h5ad --reference-counts: the .obs column holding the donors")
    input_file(p, "--states", metavar="FILE",
               help="--method bayes: two-column table (cell id, cell state) of sub-types within "
               "each cell type (default: one state per type)")
    p.add_argument("--counts-layer", metavar="NAME",
                   help=".h5ad --reference-counts: the layer holding the raw counts (default: .X)")
    p.add_argument(
        "--normalized", nargs="?", const=True, default=False, type=normalized_value,
        metavar="LOG",
        help="--reference-counts holds normalised values, not raw counts: CPM/TPM or similar "
        "(the bare flag; cell fractions then equal RNA fractions), or 'log1p' / 'log2p1' for "
        "ln(x + 1) / log2(x + 1) values, un-logged first (whole numbers after un-logging are "
        "raw counts again)",
    )
    p.add_argument(
        "--fractions", choices=["cells", "rna"], default=None,
        help="with --reference-counts: write fractions of cells (RNA fractions divided by each "
        "type's reads per reference cell) or of RNA (default: cells with raw counts)",
    )
    p.add_argument(
        "--update-reference", choices=["map", "mle", "none"], default=None,
        help="--method bayes: move each type's profile toward the bulk before the final fit "
        "(map: per gene and type under a log-normal prior; mle: one shift per gene for all "
        "types, for spatial data; none: the reference as given) (default: map)",
    )
    p.add_argument(
        "--exclude", default=None, metavar="GROUPS",
        help="--method bayes: comma-separated gene groups left out among ribosomal, "
        "mitochondrial, sex, hemoglobin, or 'none' (default: ribosomal,mitochondrial)",
    )
    p.add_argument("--keep-outliers", action="store_true",
                   help="--method bayes: keep genes holding over 1%% of a sample's reads in "
                   "over 10%% of samples (default: left out)")
    output_file(
        p, "--output", required=True, metavar="OUT",
        help="proportions, samples x cell types; an .h5ad (or .zarr) OUT is the bulk as AnnData with the "
        "proportions, fit (and uncertainty) in .obsm and the run's options in .uns['fastdeconv'] "
        "(for an .h5ad/.zarr BULK: its obs and var, not its counts, which stay in BULK)",
    )
    help_when_shown(
        p.add_argument(
            "--method",
            type=MethodName(regression_methods),
            default=None,
            metavar="METHOD",
            help="a regression method (default: auto)",
        ),
        lambda: f"{method_help(regression_methods())}; auto: dwls with --signature, bayes with "
        "--reference-counts (default: auto)",
    )
    p.add_argument(
        "--method-option", action="append", default=None, metavar="KEY=VALUE",
        help="an option of the chosen method (repeat for several; a comma-separated VALUE is a "
        "list, e.g. --method-option nu=0.25,0.5); `fastdeconv methods` lists each method's "
        "options and defaults",
    )
    p.add_argument(
        "--hierarchy", metavar="auto|FILE", default=None,
        help="deconvolve in two levels, lineages first, then the cell types within each "
        "lineage's share (for types that share markers): 'auto' groups the signature's types "
        "by the similarity of their profiles, FILE is a two-column table (cell type, lineage)",
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
        choices=["auto", "huber", "none"],
        default=None,
        help="Huber re-weighting of badly fitting genes, or plain least squares; auto: huber "
        "for the least-squares methods (--method bayes fits a likelihood) (default: auto)",
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
    p.add_argument(
        "--unexplained", action="store_true",
        help="add a column 'unexplained': each sample's share of RNA that the reference's cell "
        "types do not explain (cells missing from the reference), fitted on every common gene "
        "with one profile of the missing cells shared by the samples; the types are scaled to "
        "the rest",
    )
    output_file(
        p, "--residual-report", metavar="FILE",
        help="genes the fit under-explains consistently across samples, ranked, with the "
        "suggested missing cell type printed (marker lists tested: FILE's candidates in "
        "FILE.candidates.tsv)",
    )
    help_when_shown(
        input_file(
            p,
            "--weights",
            metavar="FILE|RULE",
            help="two-column table (gene, weight): per-gene weights of the least-squares fit; "
            "or a rule computed on the signature: 'relative' (error proportional to the level "
            "above the median gene) or 'poisson' (variance proportional to the mean); a file "
            "with such a name is given as ./relative",
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
    output_file(p, "--uncertainty-output", metavar="FILE",
                help="uncertainty of the proportions: --method bayes: standard errors (samples x "
                "cell types); the regression methods: 90%% bootstrap intervals over genes and "
                "standard errors (<type>_lower, <type>_upper, <type>_se) and the permutation "
                "p-value of the fit (p_value)")
    output_file(
        p, "--expression-output", metavar="DIR",
        help="--method bayes: write each cell type's expected expression in every sample "
        "(genes x samples) to DIR/<type>.tsv.gz",
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
_SWITCHES = ("case_insensitive", "strip_version", "transpose_bulk", "transpose_signature",
             "unexplained")


def title(args):
    """The figures' title: the input files and the method.

    Examples
    --------
    >>> import argparse
    >>> from fastdeconv.cli.deconvolve import title
    >>> title(argparse.Namespace(bulk="data/mix.tsv", signature="lm22.tsv", method=None,
    ...                          rna_content=None))
    'mix.tsv with signature lm22.tsv (method auto)'
    """
    reference = (
        f"signature {os.path.basename(args.signature)}" if args.signature
        else f"single cells {os.path.basename(args.reference_counts)}"
    )
    text = f"{os.path.basename(args.bulk)} with {reference} (method {args.method or 'auto'})"
    if args.rna_content:
        text += f", cell fractions with {os.path.basename(args.rna_content)}"
    return text


#: options that only a single-cell reference takes, and those of ``--method bayes`` alone
_CELL_OPTIONS = ("labels", "label_key", "states", "counts_layer", "normalized", "fractions",
                 "subjects", "subject_key")
_BAYES_OPTIONS = ("states", "update_reference", "exclude", "keep_outliers",
                  "expression_output")


def check_reference_options(args):
    """Refuse, before reading anything, reference options that do not fit together.

    Examples
    --------
    >>> import argparse
    >>> from fastdeconv.cli import build_parser
    >>> from fastdeconv.cli.deconvolve import check_reference_options
    >>> args = build_parser().parse_args(["deconvolve", "--bulk", "b.tsv", "--output", "o.tsv"])
    >>> check_reference_options(args)
    Traceback (most recent call last):
    ...
    fastdeconv.cli._common.InputError: give a reference: --signature SIG, or --reference-counts COUNTS with --labels LABELS
    """
    if args.signature and args.reference_counts:
        raise InputError("give --signature or --reference-counts, not both")
    if not args.signature and not args.reference_counts:
        raise InputError(
            "give a reference: --signature SIG, or --reference-counts COUNTS with --labels LABELS"
        )
    given = [o for o in _CELL_OPTIONS if getattr(args, o) not in (None, False)]
    if args.signature and given:
        raise InputError(
            f"{_option(given[0])} is for a single-cell reference (--reference-counts), not for "
            "--signature"
        )
    bayes = likelihood(args)
    used = [o for o in _BAYES_OPTIONS if getattr(args, o) not in (None, False)]
    if used and not bayes:
        raise InputError(f"{_option(used[0])} is an option of --method bayes")
    if bayes:
        fitted = [o for o in ("robust", "weights", "genes", "n_markers", "min_fold_change")
                  if getattr(args, o) not in (None, "auto")]
        if fitted:
            raise InputError(
                f"{_option(fitted[0])} is for the least-squares methods: --method bayes fits every "
                "gene of the reference by likelihood (leave genes out with --exclude)"
            )
        if args.exclude is not None:
            _exclude_groups(args.exclude)
    if bayes and args.signature and args.states:
        raise InputError("--states is for --reference-counts: a signature's columns are its states")
    if args.reference_counts:
        h5ad = str(args.reference_counts).lower().endswith(".h5ad")
        if args.labels is None and args.label_key is None:
            raise InputError(
                "--reference-counts needs the cell type of every cell: --labels LABELS (a "
                "two-column table: cell id, cell type)"
                + (" or --label-key KEY (an .obs column)" if h5ad else "")
            )
        if args.labels is not None and args.label_key is not None:
            raise InputError("give --labels or --label-key, not both")
        if args.subjects is not None and args.subject_key is not None:
            raise InputError("give --subjects or --subject-key, not both")
        if not h5ad:
            for option in ("label_key", "counts_layer", "subject_key"):
                if getattr(args, option) is not None:
                    raise InputError(
                        f"{_option(option)} is for .h5ad --reference-counts only "
                        f"({args.reference_counts!r} is a table)"
                    )
        if args.rna_content:
            raise InputError(
                "--rna-content is for --signature: with --reference-counts the RNA per cell "
                "comes from the cells (--fractions cells)"
            )
    if args.expression_output and os.path.exists(args.expression_output) and not os.path.isdir(
        args.expression_output
    ):
        raise InputError(
            f"--expression-output: {args.expression_output!r} is a file, not a folder; name a "
            "folder (it is created if missing)"
        )


#: the gene groups ``--exclude`` takes (:data:`fastdeconv.bayes.GENE_GROUPS`, written out so
#: that building the parser imports nothing heavy; a test compares them)
EXCLUDE_GROUPS = ("ribosomal", "mitochondrial", "sex", "hemoglobin")


def _exclude_groups(text):
    """``--exclude``'s comma-separated groups, checked (``none``: no group).

    Examples
    --------
    >>> from fastdeconv.cli.deconvolve import _exclude_groups
    >>> _exclude_groups("ribosomal, sex"), _exclude_groups("none")
    (('ribosomal', 'sex'), ())
    """
    text = text.strip()
    if text == "none":
        return ()
    groups = tuple(g.strip() for g in text.split(",") if g.strip())
    unknown = [g for g in groups if g not in EXCLUDE_GROUPS]
    if unknown or not groups:
        raise InputError(
            f"--exclude: unknown gene group {unknown[0] if unknown else text!r}; give a "
            f"comma-separated list among {', '.join(EXCLUDE_GROUPS)}, or 'none'"
        )
    return groups


def _reference_keywords(args):
    """The keywords of :func:`fastdeconv.deconvolve` for a single-cell reference."""
    from fastdeconv.cli._common import read_counts, read_labels

    counts = read_counts(args.reference_counts, "--reference-counts")
    kwargs = {"normalized": args.normalized}
    if args.labels is not None:
        kwargs["labels"] = read_labels(args.labels)
    else:
        kwargs["label_key"] = args.label_key
    if args.subjects is not None:
        kwargs["subjects"] = read_labels(args.subjects, "--subjects", "donor")
    elif args.subject_key is not None:
        kwargs["subject_key"] = args.subject_key
    if args.states is not None:
        states = read_series(args.states, "--states", "cell id, cell state", index_col=0,
                             numeric=False)
        states.index = states.index.astype(str)
        kwargs["states"] = states.astype(str)
    if args.counts_layer is not None:
        kwargs["counts_layer"] = args.counts_layer
    if args.fractions is not None:
        kwargs["fractions"] = args.fractions
    if args.update_reference is not None:
        kwargs["update_reference"] = (
            False if args.update_reference == "none" else args.update_reference
        )
    if args.exclude is not None:
        kwargs["exclude"] = _exclude_groups(args.exclude)
    if args.keep_outliers:
        kwargs["outliers"] = False
    if likelihood(args):
        kwargs["uncertainty"] = bool(args.uncertainty_output)
    return counts, kwargs


def _zarr(path):
    """Whether a path names an AnnData zarr store (a folder ending in ``.zarr``)."""
    return path is not None and str(path).rstrip("/\\").lower().endswith(".zarr")


def _h5ad(path):
    """Whether a path names an AnnData file or zarr store.

    Examples
    --------
    >>> from fastdeconv.cli.deconvolve import _h5ad
    >>> _h5ad("bulk.h5ad"), _h5ad("spots.zarr/"), _h5ad("bulk.tsv")
    (True, True, False)
    """
    return path is not None and (str(path).lower().endswith(".h5ad") or _zarr(path))


def _read_any(path, option):
    """A table, or for ``.h5ad``/``.zarr`` an AnnData object (with ``option`` in its messages)."""
    if not _h5ad(path):
        return read(path, option)
    if _zarr(path):
        if not os.path.isdir(path):
            raise FileNotFoundError(f"{option}: zarr store not found: {str(path)!r}")
        import anndata

        try:
            return anndata.read_zarr(path)
        except Exception as exc:  # noqa: BLE001 -- a damaged store, whatever zarr raises
            raise InputError(f"{option}: {str(path)!r} is not an AnnData zarr store "
                             f"({one_line(exc)}); write one with adata.write_zarr()") from None
    from fastdeconv.cli._common import read_counts

    return read_counts(path, option)


#: ``--weights`` values that name a rule, not a file
#: (:data:`fastdeconv.regression.WEIGHT_RULES`; kept here so that --help imports nothing heavy).
_WEIGHT_RULES = ("relative", "poisson")


def _checked_store(path, option):
    """An AnnData file or zarr store that exists and opens, left on disk (read in blocks)."""
    if _zarr(path):
        if not os.path.isdir(path):
            raise FileNotFoundError(f"{option}: zarr store not found: {str(path)!r}")
        return str(path)
    from fastdeconv.io import read_h5ad_header

    try:
        read_h5ad_header(path).close()
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"{option}: {one_line(exc)}") from None
    except (ValueError, OSError, ImportError) as exc:
        raise InputError(f"{option}: {one_line(exc)}") from None
    return str(path)


def _write_h5ad(result, bulk, path):
    """``--output OUT.h5ad`` (or ``.zarr``): the bulk as AnnData with the result, atomically."""
    import anndata

    from fastdeconv.io import atomic_write

    if isinstance(bulk, str):  # an AnnData store read block by block: its names, not its
        from fastdeconv.inputs.blocks import lazy_anndata  # counts (they stay in --bulk)

        stored = lazy_anndata(bulk, name="--bulk")
        try:
            target = result.to_anndata(anndata.AnnData(obs=stored.obs, var=stored.var))
        finally:
            stored.close()
    else:  # a table: the samples as observations, the genes as variables
        target = result.to_anndata(anndata.AnnData(bulk.T.astype("float64")))
    if not _zarr(path):
        atomic_write(path, lambda tmp: target.write_h5ad(tmp))
        return
    import shutil

    path = str(path).rstrip("/\\")
    tmp, old = f"{path}.tmp-{os.getpid()}", f"{path}.old-{os.getpid()}"
    try:
        import warnings

        with warnings.catch_warnings():  # anndata's note on its future zarr default format
            warnings.filterwarnings("ignore", message="Writing zarr v2", category=UserWarning)
            target.write_zarr(tmp)
        if os.path.exists(path):  # replaced only once the new store is complete
            os.replace(path, old)
        os.replace(tmp, path)
    finally:
        for leftover in (tmp, old):
            if os.path.isdir(leftover):
                shutil.rmtree(leftover, ignore_errors=True)


def _candidates_path(path):
    """Where ``--residual-report FILE`` writes its candidate cell types: FILE.candidates.tsv.

    Examples
    --------
    >>> from fastdeconv.cli.deconvolve import _candidates_path
    >>> _candidates_path("out/report.tsv.gz")
    'out/report.candidates.tsv.gz'
    """
    path = str(path)
    for ext in (".tsv.gz", ".csv.gz", ".txt.gz", ".tsv", ".csv", ".txt"):
        if path.endswith(ext):
            return path[: -len(ext)] + ".candidates" + ext
    return path + ".candidates.tsv"


def _hierarchy(value):
    """``--hierarchy``: ``auto``, or a two-column table (cell type, lineage)."""
    if value == "auto":
        return value
    from fastdeconv.hierarchical import read_hierarchy

    if not os.path.isfile(value):
        raise InputError(f"--hierarchy: give 'auto' or a table file (cell type, lineage); "
                         f"{value!r} is neither")
    try:
        return read_hierarchy(value)
    except ValueError as exc:
        raise InputError(f"--hierarchy: {one_line(exc)}") from None


def check_method_options(args):
    """``--method-option KEY=VALUE`` flags as a dict, checked against the method's options.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed ``deconvolve`` command line.

    Returns
    -------
    dict
        Option name -> value as text (the method's record converts it).

    Examples
    --------
    >>> from fastdeconv.cli import build_parser
    >>> from fastdeconv.cli.deconvolve import check_method_options
    >>> parse = build_parser().parse_args
    >>> check_method_options(parse(["deconvolve", "--bulk", "b", "--signature", "s",
    ...                             "--output", "o", "--method", "nnls"]))
    {}
    >>> check_method_options(parse(["deconvolve", "--bulk", "b", "--signature", "s",
    ...                             "--output", "o", "--method-option", "nu"]))
    Traceback (most recent call last):
    ...
    fastdeconv.cli._common.InputError: --method-option takes KEY=VALUE, got 'nu'
    """
    given = {}
    for item in args.method_option or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--method-option takes KEY=VALUE, got {item!r}")
        given[key.strip()] = value.strip()
    if not given:
        return given
    record = chosen_method(args)
    name = record.name
    unknown = [key for key in given if key not in record.options]
    if unknown:
        have = ", ".join(f"{k}={v!r}" for k, v in record.options.items())
        raise InputError(
            f"--method-option {unknown[0]}: --method {name} has no such option "
            f"({'its options: ' + have if have else 'it has no options'})"
        )
    return given


def likelihood(args):
    """Whether the run fits a likelihood method (the method's record, or the default's).

    Parameters
    ----------
    args : argparse.Namespace
        The parsed ``deconvolve`` command line.

    Returns
    -------
    bool

    Examples
    --------
    >>> from fastdeconv.cli import build_parser
    >>> from fastdeconv.cli.deconvolve import likelihood
    >>> parse = build_parser().parse_args
    >>> likelihood(parse(["deconvolve", "--bulk", "b", "--reference-counts", "c", "--output", "o"]))
    True
    >>> likelihood(parse(["deconvolve", "--bulk", "b", "--signature", "s", "--output", "o"]))
    False
    """
    return chosen_method(args).reference == "counts"


def chosen_method(args):
    """The record of the method the run uses: ``--method``, or the default for its reference."""
    cells = bool(getattr(args, "reference_counts", None))
    method = getattr(args, "method", None) or regression_methods().default_for(
        "counts" if cells else "signature", weights=bool(getattr(args, "weights", None))
    )
    return regression_methods().get(method)


def run(args):
    """Reference-based deconvolution of BULK with SIG (or single cells) -> proportions table.

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
    check_reference_options(args)
    if _zarr(args.output):  # a store is a folder: its parent must exist
        parent = os.path.dirname(os.path.abspath(str(args.output).rstrip("/\\")))
        if not os.path.isdir(parent):
            raise InputError(f"--output: folder {parent!r} does not exist")
    elif _h5ad(args.output):
        _check_folder(args.output, "--output")
    else:
        check_table_path(args.output, "--output")
    if args.layer is not None and not _h5ad(args.bulk):
        raise InputError(f"--layer is for an .h5ad or .zarr --bulk ({args.bulk!r} is a table)")
    check_table_path(args.fit_output, "--fit-output")
    check_table_path(args.residual_report, "--residual-report")
    if args.residual_report:
        check_table_path(_candidates_path(args.residual_report), "--residual-report")
    if likelihood(args) and (args.unexplained or args.residual_report):
        raise InputError(
            f"{'--unexplained' if args.unexplained else '--residual-report'} is for the "
            "regression methods, not --method bayes"
        )
    check_table_path(args.uncertainty_output, "--uncertainty-output")
    check_plot_path(args.plot)
    check_plot_path(args.plot_fit, "--plot-fit")
    method_options = check_method_options(args)
    if args.hierarchy is not None and likelihood(args):
        raise InputError(
            "--hierarchy is for the regression methods: --method bayes fits every type at once "
            "(--states gives it sub-types within each type)"
        )
    if args.method is not None and not args.weights:
        if regression_methods().get(args.method).weights == "required":
            raise InputError(
                f"--method {args.method} needs --weights FILE (a two-column table: gene, weight)"
            )
    if (args.weights and args.weights not in _WEIGHT_RULES and "." not in args.weights
            and not os.path.exists(args.weights)):  # before any table is read
        raise InputError(
            f"--weights: {args.weights!r} is neither a file nor a rule; give a two-column table "
            f"(gene, weight) or one of the rules: {', '.join(_WEIGHT_RULES)}"
        )
    # an AnnData bulk stays on disk: deconvolve reads it block by block (any size)
    bulk = _checked_store(args.bulk, "--bulk") if _h5ad(args.bulk) else read(args.bulk,
                                                                               "--bulk")
    if args.signature:
        reference, cell_kwargs = _read_any(args.signature, "--signature"), {}
    else:
        reference, cell_kwargs = _reference_keywords(args)

    from fastdeconv.regression import deconvolve

    kwargs = {"n_jobs": args.n_jobs, "progress": False if args.quiet else None, **cell_kwargs}
    for option in _PASSED:
        if getattr(args, option) is not None:
            kwargs[option] = getattr(args, option)
    for option in _SWITCHES:
        if getattr(args, option):
            kwargs[option] = True
    if args.robust is not None:
        kwargs["robust"] = None if args.robust == "none" else args.robust
    if method_options:
        kwargs["method_options"] = method_options
    if args.layer is not None:
        kwargs["layer"] = args.layer
    if args.uncertainty_output and not likelihood(args):
        kwargs["uncertainty"] = True
    if args.residual_report:
        kwargs["residual_report"] = True
    if args.hierarchy is not None:
        kwargs["hierarchy"] = _hierarchy(args.hierarchy)
        if args.signature and not isinstance(kwargs["hierarchy"], str):
            from fastdeconv.hierarchical import check_hierarchy

            try:  # checked here to name the flag; a built signature is checked by deconvolve
                check_hierarchy(kwargs["hierarchy"], [str(c) for c in reference.columns],
                                option="--hierarchy")
            except ValueError as exc:
                raise InputError(one_line(exc)) from None
    if likelihood(args):
        for option in ("genes", "n_markers", "min_fold_change"):
            kwargs.pop(option, None)
    content = None
    if args.rna_content:
        content = read_series(args.rna_content, "--rna-content", "cell type, RNA content")
    if args.weights in _WEIGHT_RULES:
        kwargs["weights"] = args.weights
    elif args.weights:
        kwargs["weights"] = read_series(args.weights, "--weights", "gene, weight")
    result = deconvolve(bulk, reference, **kwargs)
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
    if _h5ad(args.output):
        _write_h5ad(result, bulk, args.output)
    else:
        write(proportions_frame(proportions), args.output, "--output", "sample")
    if args.fit_output:
        write(result.fit, args.fit_output, "--fit-output", "sample")
    if args.residual_report:
        report = result.residual_report
        write(report.genes, args.residual_report, "--residual-report", "gene")
        write(report.candidates, _candidates_path(args.residual_report), "--residual-report",
              "cell_type")
        if not args.quiet:
            print(report.summary())
    if args.uncertainty_output:
        write(result.uncertainty, args.uncertainty_output, "--uncertainty-output", "sample")
    if args.expression_output:
        written = result.write_expression(args.expression_output)
        if not args.quiet:
            print(f"{args.expression_output}: expected expression of {len(written)} cell types")
    if not args.quiet:
        print(result.summary())
        if content is not None:
            print(f"{args.output}: cell fractions (RNA fractions divided by --rna-content)")
    return 0
