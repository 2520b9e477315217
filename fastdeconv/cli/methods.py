"""``fastdeconv methods``: the regression methods, what each needs and its own options.

Reads the method registry (:data:`fastdeconv.methods.REGRESSION`), the same
table ``deconvolve --method`` takes its choices from; nothing heavy is
imported.
"""

from __future__ import annotations

from fastdeconv.cli._common import add_command


def add_parser(subparsers):
    """Add the ``methods`` command.

    Examples
    --------
    >>> from fastdeconv.cli import build_parser
    >>> build_parser().parse_args(["methods"]).command
    'methods'
    """
    p = add_command(
        subparsers, "methods",
        help="list the regression methods, what they need and their options",
        description="List the methods of `fastdeconv deconvolve --method`: a summary of each, "
        "what it needs beyond a signature, and its own options with their defaults "
        "(set them with --method-option KEY=VALUE).",
    )
    p.set_defaults(func=run, flags={})
    return p


def describe(registry):
    """The text ``fastdeconv methods`` prints: one block per method.

    Parameters
    ----------
    registry : fastdeconv.methods.Registry
        The methods.

    Returns
    -------
    str

    Examples
    --------
    >>> from fastdeconv.cli.methods import describe
    >>> from fastdeconv.methods import Method, Registry
    >>> toy = Registry("toy", modules=())
    >>> _ = toy.register(Method("a", "first", fit=print, normalise=True, options={"c": 1.0},
    ...                         option_docs={"c": "a constant"}, needs=("cells",)))
    >>> print(describe(toy))
    a: first
      needs: --reference-counts with --labels
      --method-option c=1.0  a constant
    """
    needs = {"cells": "--reference-counts with --labels", "subjects": "--subjects"}
    blocks = []
    for m in registry:
        lines = [f"{m.name}: {m.summary}"]
        wanted = [needs[n] for n in m.needs]
        if m.weights == "required":
            wanted.append("--weights")
        if wanted:
            lines.append(f"  needs: {', '.join(wanted)}")
        for key, default in m.options.items():
            value = ",".join(map(str, default)) if isinstance(default, tuple) else default
            lines.append(f"  --method-option {key}={value}  {m.option_docs[key]}")
        blocks.append("\n".join(lines))
    return "\n".join(blocks)


def run(args):
    """Print the methods (exit status 0).

    Examples
    --------
    >>> from fastdeconv.cli import build_parser
    >>> from fastdeconv.cli.methods import run
    >>> run(build_parser().parse_args(["methods"]))  # doctest: +ELLIPSIS
    nnls: non-negative least squares...
    0
    """
    from fastdeconv.methods import REGRESSION

    print(describe(REGRESSION))
    return 0
