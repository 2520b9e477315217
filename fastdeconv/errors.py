"""Errors that tell *this* user what to type to fix their input.

A problem with the input often has a remedy that is an option of the
library: ``duplicates="sum"``, ``scale="log2"``, ``case_insensitive=True``.
The same remedy is spelled differently for a Python user (a keyword) and for a
command-line user (a flag).  An :class:`InputProblem` carries its remedies as
:class:`Fix` objects inside a message template; ``str(error)`` spells them as
keywords, and the command line spells them as its own flags
(:meth:`InputProblem.render`), so neither audience is told to type something
it cannot.

Examples
--------
>>> from fastdeconv.errors import Fix, InputProblem
>>> err = InputProblem("bulk has duplicated genes; pass {0} to add them up", Fix("duplicates", "sum"))
>>> str(err)
"bulk has duplicated genes; pass duplicates='sum' to add them up"
>>> err.render({"duplicates": "--duplicates"})
'bulk has duplicated genes; pass --duplicates sum to add them up'
"""

from __future__ import annotations

__all__ = ["Fix", "InputProblem", "literal", "Placeholder"]


def literal(text):
    """``text`` (user data: gene, sample or file names) made safe inside a message template.

    Parameters
    ----------
    text : object
        Anything; it is converted with ``str``.

    Returns
    -------
    str
        The text with its braces doubled, so ``str.format`` leaves it as it is.

    Examples
    --------
    >>> from fastdeconv.errors import InputProblem, literal
    >>> str(InputProblem("no gene " + literal("{weird}") + " here"))
    'no gene {weird} here'
    """
    return str(text).replace("{", "{{").replace("}", "}}")


class Placeholder(str):
    """A remedy's value that the user fills in, shown as written (no quotes).

    Examples
    --------
    >>> from fastdeconv.errors import Fix, Placeholder
    >>> Fix("n_clusters", Placeholder("N")).python(), Fix("n_clusters", Placeholder("N")).cli("--clusters")
    ('n_clusters=N', '--clusters N')
    """

    def __repr__(self):
        return str(self)


class Fix:
    """One remedy: an option and the value to give it.

    Parameters
    ----------
    keyword : str
        The Python keyword (``"duplicates"``).
    value : object, optional
        The value to pass; ``True`` (default) for a switch, which the command
        line spells as the bare flag.

    Examples
    --------
    >>> from fastdeconv.errors import Fix
    >>> fix = Fix("case_insensitive")
    >>> fix.python(), fix.cli("--case-insensitive")
    ('case_insensitive=True', '--case-insensitive')
    >>> Fix("scale", "log2").cli("--scale")
    '--scale log2'
    """

    def __init__(self, keyword, value=True):
        self.keyword = keyword
        self.value = value

    def python(self):
        """The remedy as a Python keyword argument.

        Returns
        -------
        str
        """
        return f"{self.keyword}={self.value!r}"

    def cli(self, flag):
        """The remedy as a command-line flag.

        Parameters
        ----------
        flag : str
            The flag that sets :attr:`keyword` (``"--duplicates"``).

        Returns
        -------
        str
        """
        return flag if self.value is True else f"{flag} {self.value}"

    def __repr__(self):
        return f"Fix({self.keyword!r}, {self.value!r})"


class InputProblem(ValueError):
    """A ValueError about the user's input whose message names the remedies.

    Parameters
    ----------
    template : str
        The message, with ``{0}``, ``{1}``, ... where the remedies go.
    *fixes : Fix
        The remedies, in the order of the placeholders.

    Attributes
    ----------
    template : str
    fixes : tuple of Fix

    Examples
    --------
    >>> from fastdeconv.errors import Fix, InputProblem
    >>> err = InputProblem("looks log2: use {0}", Fix("scale", "log2"))
    >>> isinstance(err, ValueError), str(err)
    (True, "looks log2: use scale='log2'")
    >>> err.keywords()
    ['scale']
    """

    def __init__(self, template, *fixes):
        self.template = template
        self.fixes = tuple(fixes)
        super().__init__(template.format(*(f.python() for f in self.fixes)))

    def renamed(self, names):
        """The same problem with remedies spelled in another function's keywords.

        A reader called by a pipeline advises its own keywords; the pipeline
        names them as its users know them (``transpose`` -> ``transpose_signature``).

        Parameters
        ----------
        names : dict of str to str
            Reader's keyword -> the caller's.

        Returns
        -------
        InputProblem

        Examples
        --------
        >>> from fastdeconv.errors import Fix, InputProblem
        >>> exc = InputProblem("read it with {0}", Fix("transpose", True))
        >>> str(exc.renamed({"transpose": "transpose_signature"}))
        'read it with transpose_signature=True'
        """
        return InputProblem(
            self.template, *[Fix(names.get(f.keyword, f.keyword), f.value) for f in self.fixes]
        )

    def keywords(self):
        """The keywords of the remedies.

        Returns
        -------
        list of str
        """
        return [f.keyword for f in self.fixes]

    def render(self, flags):
        """The message with every remedy spelled as a command-line flag.

        Parameters
        ----------
        flags : dict
            Keyword -> the flag of the command that sets it.  A keyword the
            command has no flag for is spelled as the Python keyword, marked as
            such (a test checks that this never happens for the shipped commands).

        Returns
        -------
        str
        """
        spelled = [
            f.cli(flags[f.keyword]) if f.keyword in flags else f"(Python only) {f.python()}"
            for f in self.fixes
        ]
        return self.template.format(*spelled)
