"""The ``fastdeconv`` command line.

One module per command (``deconvolve``, ``evaluate``, ``demo``, ``signature``,
``simulate``, ``linseed``, ``methods``), each holding ``add_parser(subparsers)``, which
builds the command's options, next to ``run(args)``, which reads the inputs,
calls the pipeline's own module and writes the results; ``_common`` holds
what they share.  Heavy modules are imported inside ``run``, so
``fastdeconv --help`` starts instantly.  Bad input ends the program with exit
status 1 and a one-line ``fastdeconv: error: ...`` on stderr (no traceback; set
the environment variable ``FASTDECONV_DEBUG=1`` to see one); usage errors exit
with status 2.

File formats: tables are TSV (``.tsv``, ``.txt``, ``.tab``) or CSV (``.csv``),
optionally gzipped (``.gz``), with row ids in the first column and column ids
in the header. BULK is genes x samples, SIG genes x cell types, TRUTH cell types
x samples; proportions are written as samples x cell types with ``sample`` as
the first header.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import warnings

from fastdeconv.cli import deconvolve, demo, evaluate, linseed, methods, signature, simulate
from fastdeconv.cli._common import PROG, check_paths, one_line, show_warning, spell_flags
from fastdeconv._progress import COMPILING  # said when a command starts compiling
from fastdeconv.errors import InputProblem

__all__ = ["main", "build_parser", "compilation_notice"]

#: The command modules, in the order ``fastdeconv --help`` lists them.
COMMANDS = (deconvolve, evaluate, demo, signature, simulate, linseed, methods)


def build_parser():
    """Return the :class:`argparse.ArgumentParser` of the ``fastdeconv`` command.

    Each command's options are added by its own module (``add_parser``).

    Returns
    -------
    argparse.ArgumentParser

    Examples
    --------
    >>> from fastdeconv.cli import build_parser
    >>> args = build_parser().parse_args(["demo", "--samples", "50"])
    >>> args.command, args.samples
    ('demo', 50)
    """
    from fastdeconv import __version__

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Exact, fast cellular deconvolution of bulk expression data.",
        epilog="Tables: TSV (.tsv/.txt) or CSV (.csv), optionally .gz; row ids in the first "
        "column, column ids in the header. Run `fastdeconv demo` for a self-contained example.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


_INPUT_ERRORS = (ValueError, TypeError, KeyError, FileNotFoundError, OSError, ImportError)

#: Commands that run the Numba solvers, and so compile them on a machine's first run.
SOLVING = ("deconvolve", "demo", "linseed", "signature", "simulate")


def _tasks(args):
    """The kernel groups (:func:`fastdeconv._jit.needs_compilation` tasks) a run compiles.

    ``deconvolve`` with single cells also sums them per type (the signature's
    kernels), and a likelihood method fits with its own kernel instead of the
    least-squares ones.
    """
    if args.command != "deconvolve":
        return (args.command,)
    fitting = "mixture" if deconvolve.likelihood(args) else "deconvolve"
    tasks = (fitting, "signature") if getattr(args, "reference_counts", None) else (fitting,)
    if fitting == "deconvolve" and getattr(args, "uncertainty_output", None):
        tasks += ("uncertainty",)  # the bootstrap's own kernel
    from fastdeconv._jit import _TASKS

    method = deconvolve.chosen_method(args).name
    if method in _TASKS:  # a method with kernels of its own (the default's DWLS)
        tasks += (method,)
    return tasks


def compilation_notice(args):
    """A context in which the first Numba compilation says so on stderr, once.

    Numba announces a compilation (event ``numba:compile``) only when the
    machine code is not in its on-disk cache, so the notice appears exactly
    when the user waits for the compiler: not for a warm cache, and not for
    input refused before any solver runs.  Only for the commands in
    :data:`SOLVING`, never with ``--quiet``, and not at all when
    :func:`fastdeconv._jit.needs_compilation` says the command's kernels are
    cached (it is cheap, and spares a refused input the import of Numba).  It
    never fails: it is a courtesy.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line.

    Returns
    -------
    contextlib.AbstractContextManager

    Examples
    --------
    >>> import argparse
    >>> from fastdeconv.cli import compilation_notice
    >>> with compilation_notice(argparse.Namespace(command="evaluate", quiet=False)):
    ...     pass  # evaluate runs no solver: nothing is said
    """
    import contextlib

    if getattr(args, "command", None) not in SOLVING or getattr(args, "quiet", False):
        return contextlib.nullcontext()
    try:
        import fastdeconv._jit as jit

        needs_compilation = getattr(jit, "needs_compilation", None)
        if needs_compilation is not None and not needs_compilation(*_tasks(args)):
            return contextlib.nullcontext()
        from fastdeconv._progress import compile_notice

        # the library's one notice: said once, above any progress bar
        return compile_notice(True)
    except Exception:  # noqa: BLE001 - a hint must never stop the command
        return contextlib.nullcontext()


def main(argv=None):
    """Run the ``fastdeconv`` command line.

    Parameters
    ----------
    argv : list of str, optional
        Arguments without the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status: 0 on success, 1 for bad input (a one-line message on
        stderr), 2 for usage errors, 130 when interrupted.

    Examples
    --------
    >>> from fastdeconv.cli import main
    >>> main(["evaluate", "--estimate", "missing.tsv", "--truth", "missing.tsv"])
    1
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else 2
    debug = os.environ.get("FASTDECONV_DEBUG", "") not in ("", "0")
    with warnings.catch_warnings():
        warnings.showwarning = functools.partial(show_warning, flags=getattr(args, "flags", {}))
        try:
            check_paths(args)
            with compilation_notice(args):
                return int(args.func(args) or 0)
        except KeyboardInterrupt:
            print(f"{PROG}: interrupted", file=sys.stderr)
            return 130
        except MemoryError:
            if debug:
                raise
            print(
                f"{PROG}: error: out of memory; use fewer samples or genes at a time",
                file=sys.stderr,
            )
            return 1
        except InputProblem as exc:  # the remedy spelled as this command's flags
            if debug:
                raise
            print(f"{PROG}: error: {one_line(exc.render(getattr(args, 'flags', {})))}",
                  file=sys.stderr)
            return 1
        except _INPUT_ERRORS as exc:
            if debug:
                raise
            text = spell_flags(one_line(exc), getattr(args, "flags", {}))
            print(f"{PROG}: error: {text}", file=sys.stderr)
            return 1
