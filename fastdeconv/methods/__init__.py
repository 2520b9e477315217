"""The method registry: every method a user can choose, in one table per pipeline.

A method is a small unit: a function on arrays plus a :class:`Method` record
of what it supports.  Each method file registers its records at import, and
the registry lists the files to import, so adding a method is one file and
one line here.  The pipeline (:func:`fastdeconv.deconvolve` for
:data:`REGRESSION`), the command line's ``--method`` choices and the
documentation all read the same table; nothing else knows the method names.

Method files keep module-level imports light (NumPy and the standard library,
never Numba or the solvers): the command line reads the table to build its
``--help`` and must start quickly.

Examples
--------
>>> from fastdeconv.methods import REGRESSION
>>> "nnls" in REGRESSION.names()
True
>>> REGRESSION.get("simplex").normalise
False
"""

from __future__ import annotations

import importlib
import threading

import numpy as np
from dataclasses import dataclass, field
from typing import Callable

from fastdeconv.methods._problem import (
    CellContext, GramProblem, MethodFit, MixtureProblem, RegressionProblem,
)

__all__ = [
    "Method", "Registry", "REGRESSION", "RegressionProblem", "GramProblem", "MixtureProblem",
    "MethodFit",
    "CellContext", "SPOT_OPTIONS",
    "show_methods",
]


@dataclass(frozen=True)
class Method:
    """What a registered method is and what it supports.

    Attributes
    ----------
    name : str
        The value users pass as ``method=`` (and ``--method``).
    summary : str
        One line for the command line's help and the documentation's table.
    fit : callable
        The method's function; its signature is the pipeline's contract: for
        regression methods ``fit(RegressionProblem) -> MethodFit`` (see
        :mod:`fastdeconv.methods._problem`).
    normalise : bool
        True when the method's coefficients are scale-free abundances that the
        pipeline divides by their sum to give proportions; False when they
        already are proportions.
    weights : {"optional", "required", "unsupported"}
        Whether the method takes per-gene weights.
    background : bool
        Whether a constant background term may be fitted beside the cell types.
    losses : tuple of str
        The losses it can minimise (``"squared"``, ``"huber"``).
    extra_columns : tuple of str
        Columns it adds to the proportions beyond the cell types.
    references : tuple of str
        Papers (with DOI) describing the method.
    reference : {"signature", "counts"}
        What the method fits to: a signature (``fit(RegressionProblem)``), or
        the profiles of a labelled single-cell reference by likelihood
        (``fit(MixtureProblem)``; the pipeline of :mod:`fastdeconv.bayes`).
    options : dict
        The method's own options and their defaults (``method_options=`` of
        :func:`fastdeconv.deconvolve`, ``--method-option KEY=VALUE`` on the
        command line); the pipeline refuses unknown keys, converts values to
        the default's type and passes the merged dict as
        ``RegressionProblem.options``.
    option_docs : dict
        One line per option, for ``--help`` and the documentation.
    needs : tuple of str
        What the method needs beyond a signature: ``"cells"`` (a single-cell
        reference with ``labels=``: ``RegressionProblem.cells`` is set) and
        ``"subjects"`` (and ``subjects=``, several donors or batches).
    batch_dependent : bool
        True when a sample's answer depends on the other samples (e.g. a
        gene-wise transform of the bulk across samples): the pipeline then
        passes every sample in one call instead of blocks.
    accepts : tuple of str
        What the method uses when given but does not need (same values as
        ``needs``): e.g. the cells' RNA per cell for an mRNA correction.
    cell_fractions : bool
        True when the method's proportions are already fractions of cells
        (it corrects for the RNA per cell itself): the pipeline then does not
        convert them again.
    gram : callable or None
        The same fit from the Gram form, for the squared loss:
        ``gram(GramProblem) -> MethodFit`` (:class:`fastdeconv.methods._problem.GramProblem`:
        ``S'WS`` and ``S'Wb`` per sample instead of ``S`` and ``B``).  A method that has
        it fits a sparse or out-of-core bulk from one projection of each block of
        samples (:mod:`fastdeconv.blockwise`), never densifying it; None: the pipeline
        densifies each block on the genes used and calls ``fit``.

    Examples
    --------
    >>> from fastdeconv.methods import Method
    >>> m = Method("demo", "a demonstration", fit=print, normalise=True)
    >>> m.weights, m.losses
    ('optional', ('squared',))
    """

    name: str
    summary: str
    fit: Callable
    normalise: bool
    weights: str = "optional"
    background: bool = False
    losses: tuple = ("squared",)
    extra_columns: tuple = ()
    references: tuple = field(default_factory=tuple)
    reference: str = "signature"
    options: dict = field(default_factory=dict)
    option_docs: dict = field(default_factory=dict)
    needs: tuple = ()
    batch_dependent: bool = False
    accepts: tuple = ()
    cell_fractions: bool = False
    gram: Callable | None = None

    def uses(self, what):
        """Whether the method needs or accepts ``what`` (``"cells"`` or ``"subjects"``).

        Examples
        --------
        >>> from fastdeconv.methods import Method
        >>> Method("a", "", fit=print, normalise=True, accepts=("cells",)).uses("cells")
        True
        """
        return what in self.needs or what in self.accepts

    def resolve_options(self, given=None):
        """The method's options: its defaults updated with the user's, unknown keys refused.

        Parameters
        ----------
        given : dict, optional
            ``method_options=`` of :func:`fastdeconv.deconvolve`.  Values given
            as text (the command line's ``--method-option KEY=VALUE``) are
            read as numbers, booleans, ``none`` or comma-separated tuples.

        Returns
        -------
        dict

        Raises
        ------
        ValueError
            For a key the method does not have (naming the ones it has).

        Examples
        --------
        >>> from fastdeconv.methods import Method
        >>> m = Method("demo", "a demonstration", fit=print, normalise=True,
        ...            options={"nu": (0.25, 0.5), "C": 1.0}, option_docs={"nu": "", "C": ""})
        >>> m.resolve_options({"C": "100"})
        {'nu': (0.25, 0.5), 'C': 100.0}
        >>> m.resolve_options({"nu": "0.5,0.75"})["nu"]
        (0.5, 0.75)
        """
        if given is None:
            return dict(self.options)
        if not isinstance(given, dict):
            raise TypeError(
                f"method_options must be a dict of option names to values, got "
                f"{type(given).__name__}"
            )
        unknown = [key for key in given if key not in self.options]
        if unknown:
            have = ", ".join(repr(key) for key in self.options) or "none"
            raise ValueError(
                f"method={self.name!r} has no option {unknown[0]!r} in method_options= "
                f"(its options: {have})"
            )
        merged = dict(self.options)
        merged.update({
            key: _as_default_type(_option_value(value), self.options[key])
            for key, value in given.items()
        })
        return merged

    def __post_init__(self):
        for name in ("needs", "accepts"):
            if set(getattr(self, name)) - {"cells", "subjects"}:
                raise ValueError(
                    f"Method.{name} may hold 'cells' and 'subjects', got {getattr(self, name)!r}"
                )
        if set(self.option_docs) != set(self.options):
            raise ValueError("Method.option_docs must document every option, and only those")
        if self.reference not in ("signature", "counts"):
            raise ValueError(f"Method.reference must be signature/counts, got {self.reference!r}")
        if self.weights not in ("optional", "required", "unsupported"):
            raise ValueError(
                f"Method.weights must be optional/required/unsupported, got {self.weights!r}"
            )


def _option_value(value):
    """A method option as given in Python, or read from text (the command line)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if "," in text:
        return tuple(_option_value(part) for part in text.split(",") if part.strip())
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low == "none":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _as_default_type(value, default):
    """Numbers take the type of the option's default (an int 100 for a float option is 100.0)."""
    number = (int, float, np.integer, np.floating)
    if isinstance(value, bool) or isinstance(default, bool) or not isinstance(value, number):
        return value
    if isinstance(default, float):
        return float(value)
    if isinstance(default, int) and float(value).is_integer():
        return int(value)
    return value


class Registry:
    """The methods of one pipeline, loaded from their files on first use.

    Parameters
    ----------
    pipeline : str
        The pipeline's name, for messages (``"regression"``).
    modules : tuple of str
        Modules that register methods when imported.

    Examples
    --------
    >>> from fastdeconv.methods import Method, Registry
    >>> reg = Registry("toy", modules=())
    >>> _ = reg.register(Method("a", "first", fit=print, normalise=True))
    >>> reg.names()
    ('a',)
    >>> try:
    ...     reg.get("b")
    ... except ValueError as err:
    ...     print(err)
    method must be one of 'a' (toy methods); got 'b'
    """

    def __init__(self, pipeline, modules, defaults=None):
        self.pipeline = pipeline
        self._modules = tuple(modules)
        self._defaults = dict(defaults or {})
        self._methods = {}
        self._loaded = False
        self._lock = threading.Lock()

    def _load(self):
        if self._loaded:
            return
        with self._lock:
            if not self._loaded:
                for module in self._modules:
                    importlib.import_module(module)
                self._loaded = True

    def register(self, method):
        """Add a method (called by the method files at import).

        Parameters
        ----------
        method : Method
            The record.

        Returns
        -------
        Method
            The same record.
        """
        if method.name in self._methods:
            raise ValueError(
                f"a {self.pipeline} method named {method.name!r} is registered already"
            )
        self._methods[method.name] = method
        return method

    def get(self, name):
        """The method called ``name``; a ValueError listing the choices otherwise.

        Parameters
        ----------
        name : str
            The method's name.

        Returns
        -------
        Method
        """
        self._load()
        try:
            return self._methods[name]
        except (KeyError, TypeError):
            listed = ", ".join(repr(n) for n in self._methods)
            raise ValueError(
                f"method must be one of {listed} ({self.pipeline} methods); got {name!r}"
            ) from None

    def default_for(self, reference, *, weights=False, background=False):
        """The default method for a kind of reference (``method="auto"``).

        Parameters
        ----------
        reference : {"signature", "counts", "spots"}
            What the user gave: a signature, or single cells with labels; ``"spots"``:
            a signature and a bulk of counts stored sparse (spatial spots or cells; the
            keywords that go with it are :data:`SPOT_OPTIONS`).
        weights, background : bool, optional
            Whether the user gave gene weights or asked for a background term:
            when the default takes neither, the registry's ``"fallback"``
            default (one that does) is chosen instead.

        Returns
        -------
        str

        Examples
        --------
        >>> from fastdeconv.methods import REGRESSION
        >>> REGRESSION.default_for("signature"), REGRESSION.default_for("counts")
        ('dwls', 'bayes')
        >>> REGRESSION.default_for("signature", weights=True)
        'nnls'
        """
        name = self._defaults[reference]
        record = self.get(name)
        if (weights and record.weights == "unsupported") or (background and not record.background):
            return self._defaults.get("fallback", name)
        return name

    def _ordered(self):
        """The records in the order of the registry's module list (whatever the import order)."""
        self._load()
        rank = {module: i for i, module in enumerate(self._modules)}
        records = list(self._methods.values())
        return sorted(records, key=lambda m: rank.get(getattr(m.fit, "__module__", ""),
                                                     len(rank)))

    def names(self):
        """The registered names, in the order of the registry's modules.

        Returns
        -------
        tuple of str
        """
        return tuple(m.name for m in self._ordered())

    def __iter__(self):
        return iter(self._ordered())

    def __len__(self):
        self._load()
        return len(self._methods)

    def __contains__(self, name):
        self._load()
        return name in self._methods


#: The reference-based regression methods of :func:`fastdeconv.deconvolve`.
#: The defaults of ``method="auto"`` are chosen by the worst case over the cases of the
#: method-selection study (docs/accuracy.md, ``benchmarks/study_reference.py``: 100 cases in
#: 15 datasets, chosen leave-one-dataset-out): with a signature, DWLS's relative weights with
#: Huber's loss (worst shortfall in pooled r 0.08 against 0.50 for NNLS with Huber, the
#: previous default); with single cells, the likelihood method (pooled r 0.85 on the PBMC
#: microarrays of GSE65133, where a signature built from the same cells scores 0.09).
REGRESSION = Registry(
    "regression", modules=(
        "fastdeconv.methods.least_squares", "fastdeconv.methods.mixture",
        "fastdeconv.methods.music", "fastdeconv.methods.epic", "fastdeconv.methods.bisque",
        "fastdeconv.methods.dwls", "fastdeconv.methods.fardeep", "fastdeconv.methods.svr",
    ),
    defaults={"signature": "dwls", "counts": "bayes", "fallback": "nnls", "spots": "nnls"},
)
#: The keyword defaults that go with the default method for counts stored sparse (spots,
#: bins or cells: ``REGRESSION.default_for("spots")``): gene weights by the two-component
#: variance model and squares, so that each block of spots is fitted from one projection
#: (Gram form). Chosen on the spatial family of the method-selection study (real spots of
#: 2-20 held-out cells): the best mean and mean of the three worst shortfalls of the
#: settings that fit in Gram form; Huber's loss, whose residual scale is a median absolute
#: deviation, breaks down on spots whose entries are mostly 0 (docs/accuracy.md).
SPOT_OPTIONS = {"weights": "relative", "robust": None}


def show_methods():
    """A table of every registered method and what it supports.

    Returns
    -------
    pandas.DataFrame
        One row per method: pipeline, name, summary, weights, background,
        losses, whether its coefficients are normalised to proportions, what
        it fits to, what it needs beyond a signature, and its own options
        (``method_options=``) with their defaults.

    Examples
    --------
    >>> from fastdeconv.methods import show_methods
    >>> table = show_methods()
    >>> "simplex_le" in set(table["method"])
    True
    """
    import pandas as pd

    rows = [
        {
            "pipeline": registry.pipeline,
            "method": m.name,
            "summary": m.summary,
            "weights": m.weights,
            "background": m.background,
            "losses": ", ".join(m.losses),
            "normalised": m.normalise,
            "reference": m.reference,
            "needs": ", ".join(m.needs),
            "options": ", ".join(f"{key}={value!r}" for key, value in m.options.items()),
        }
        for registry in (REGRESSION,)
        for m in registry
    ]
    return pd.DataFrame(rows)
