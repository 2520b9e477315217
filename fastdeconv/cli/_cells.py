"""The single-cell options that ``signature`` and ``simulate`` share besides COUNTS and LABELS.

``--layer``, ``--transpose-counts``, ``--normalized`` and ``--duplicates`` say
how to read COUNTS; :data:`CELL_FLAGS` maps the library's keywords to them, so
that an :class:`fastdeconv.errors.InputProblem` raised while reading the cells
names the flag to type.  :func:`check_cell_options` refuses, before any file is
read, combinations the library would refuse later in its own words;
:func:`read_cells` reads COUNTS and LABELS; :func:`show_notes` prints a
result's notes once, with their options spelled as flags.  Nothing heavy is
imported at module level.
"""

from __future__ import annotations

import argparse
import sys

from fastdeconv.cli._common import PROG, InputError, read_counts, read_labels, show_warning

__all__ = [
    "CELL_FLAGS",
    "add_cell_options",
    "check_cell_options",
    "read_cells",
    "cell_keywords",
    "show_notes",
    "replay_warnings",
]

#: Keyword of the single-cell readers -> the flag that sets it.
CELL_FLAGS = {
    "labels": "--labels",
    "label_key": "--label-key",
    "layer": "--layer",
    "transpose": "--transpose-counts",
    "normalized": "--normalized",
    "duplicates": "--duplicates",
}

_LOG_SCALES = ("log1p", "log2p1")


def normalized_value(text):
    """``type=`` of ``--normalized``'s optional value: ``log1p`` or ``log2p1``.

    Examples
    --------
    >>> from fastdeconv.cli._cells import normalized_value
    >>> normalized_value("log1p")
    'log1p'
    """
    if text not in _LOG_SCALES:
        raise argparse.ArgumentTypeError(
            f"invalid choice: {text!r} (give no value for normalised values on the linear "
            "scale, or choose from 'log1p', 'log2p1')"
        )
    return text


def add_cell_options(parser, normalized_help):
    """Add ``--layer``, ``--transpose-counts``, ``--normalized`` and ``--duplicates``.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The command's parser (made with ``add_command(..., cells=True)``).
    normalized_help : str
        What ``--normalized`` means for this command (its consequence).

    Examples
    --------
    >>> import argparse
    >>> from fastdeconv.cli._cells import add_cell_options
    >>> p = argparse.ArgumentParser()
    >>> add_cell_options(p, "values, not counts")
    >>> p.parse_args(["--normalized"]).normalized, p.parse_args([]).normalized
    (True, False)
    >>> p.parse_args(["--normalized", "log1p", "--duplicates", "sum"]).normalized
    'log1p'
    """
    parser.add_argument(
        "--layer",
        metavar="NAME",
        help=".h5ad only: the layer holding the raw counts (default: .X)",
    )
    parser.add_argument(
        "--transpose-counts",
        action="store_true",
        help="COUNTS is a cells x genes table (cells as rows): read it transposed",
    )
    parser.add_argument(
        "--normalized",
        nargs="?",
        const=True,
        default=False,
        type=normalized_value,
        metavar="LOG",
        help="COUNTS holds normalised values, not raw counts: CPM/TPM or similar (the bare "
        "flag), or 'log1p' / 'log2p1' for ln(x + 1) / log2(x + 1) values, un-logged first "
        f"(whole numbers after un-logging are raw counts again); {normalized_help}",
    )
    parser.add_argument(
        "--duplicates",
        choices=["raise", "sum"],
        default="raise",
        help="genes named twice in COUNTS: refuse, or add their counts up",
    )


def _is_h5ad(path):
    return str(path).lower().endswith(".h5ad")


def check_cell_options(args):
    """Refuse, before reading anything, options that do not fit the inputs.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line.

    Raises
    ------
    fastdeconv.cli._common.InputError

    Examples
    --------
    >>> import argparse
    >>> from fastdeconv.cli._cells import check_cell_options
    >>> args = argparse.Namespace(counts="c.tsv", labels="l.tsv", label_key=None, layer="raw",
    ...                           transpose_counts=False)
    >>> check_cell_options(args)
    Traceback (most recent call last):
    ...
    fastdeconv.cli._common.InputError: --layer is for .h5ad counts only ('c.tsv' is a table)
    """
    h5ad = _is_h5ad(args.counts)
    if not h5ad:
        for flag, value in (("--layer", args.layer), ("--label-key", args.label_key)):
            if value is not None:
                raise InputError(
                    f"{flag} is for .h5ad counts only ({args.counts!r} is a table)"
                    + ("; give the cell types with --labels" if flag == "--label-key" else "")
                )
    elif args.transpose_counts:
        raise InputError(
            "--transpose-counts is for tables: an .h5ad file is cells x genes by definition "
            "and is read as such"
        )
    if args.labels is not None and args.label_key is not None:
        raise InputError("give --labels or --label-key, not both")


def read_cells(args):
    """COUNTS (a table, or AnnData for ``.h5ad``) and LABELS (a Series by cell id, or None).

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line.

    Returns
    -------
    tuple
        ``(counts, labels)``.
    """
    counts = read_counts(args.counts)
    labels = read_labels(args.labels) if args.labels is not None else None
    return counts, labels


def cell_keywords(args):
    """The keywords of the single-cell readers that the options set.

    Examples
    --------
    >>> import argparse
    >>> from fastdeconv.cli._cells import cell_keywords
    >>> cell_keywords(argparse.Namespace(layer=None, transpose_counts=True, normalized=False,
    ...                                  duplicates="raise"))
    {'transpose': True, 'normalized': False, 'duplicates': 'raise'}
    """
    keywords = {
        "transpose": bool(args.transpose_counts),
        "normalized": args.normalized,
        "duplicates": args.duplicates,
    }
    if args.layer is not None:
        keywords["layer"] = args.layer
    return keywords


def replay_warnings(caught, shown=()):
    """Show the recorded warnings as the command line does, except the texts in ``shown``.

    Parameters
    ----------
    caught : list of warnings.WarningMessage
        From ``warnings.catch_warnings(record=True)``.
    shown : collection of str
        Texts printed otherwise (a result's notes): not repeated.
    """
    seen = set(shown)
    for w in caught:
        text = str(w.message)
        if text not in seen:
            seen.add(text)
            show_warning(w.message, w.category, w.filename, w.lineno)


def show_notes(args, notes, flags, file=None):
    """Print a result's notes on stderr, once, with their options spelled as flags.

    A note that is also a warning (``note.warning``) is printed as
    ``fastdeconv: warning: ...`` even with ``--quiet``; the others as
    ``fastdeconv: note: ...``, not with ``--quiet``.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line (for ``quiet``).
    notes : list of str
        The notes (:class:`fastdeconv.signature.Note` or plain text).
    flags : dict
        The command's keyword -> flag table.
    file : file object, optional
        Where to print (default: stderr).

    Examples
    --------
    >>> import argparse, sys
    >>> from fastdeconv.cli._cells import show_notes
    >>> from fastdeconv.errors import Fix
    >>> from fastdeconv.signature import Note
    >>> notes = [Note("relax {0}", Fix("min_frac", 0.05), warning=True), Note("for info")]
    >>> show_notes(argparse.Namespace(quiet=True), notes, {"min_frac": "--min-frac"}, sys.stdout)
    fastdeconv: warning: relax --min-frac 0.05
    """
    file = sys.stderr if file is None else file
    for note in notes:
        text = note.render(flags) if hasattr(note, "render") else str(note)
        if getattr(note, "warning", False):
            print(f"{PROG}: warning: {' '.join(text.split())}", file=file)
        elif not getattr(args, "quiet", False):
            print(f"{PROG}: note: {' '.join(text.split())}", file=file)
