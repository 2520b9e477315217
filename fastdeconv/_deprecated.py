"""Deprecation paths for module paths and names that moved.

Renamed modules stay importable under their old dotted path through a light
alias registered in :data:`sys.modules` at package import (no file, nothing
imported until a name is used); every name read through an alias warns with a
:class:`DeprecationWarning` that gives the new path.  Names that moved between
modules use :func:`moved_names`, a module-level ``__getattr__``.
"""

from __future__ import annotations

import importlib
import sys
import types
import warnings

__all__ = ["register_module_aliases", "moved_names"]


class _ModuleAlias(types.ModuleType):
    """A stand-in for a renamed module: reading a name warns and forwards it."""

    def __init__(self, old, new):
        super().__init__(old, f"Deprecated alias of {new}.")
        self.__dict__["_new"] = new

    def __getattr__(self, name):
        if name.startswith("_"):  # private names were never part of the API
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        new = self.__dict__["_new"]
        with warnings.catch_warnings():  # one warning, naming where the value lives now
            warnings.simplefilter("ignore", DeprecationWarning)
            value = getattr(importlib.import_module(new), name)
        home = getattr(value, "__module__", None)
        home = home if isinstance(home, str) and home.startswith("fastdeconv") else new
        warnings.warn(
            f"{self.__name__} is deprecated and will be removed; use {home}.{name}",
            DeprecationWarning,
            stacklevel=2,
        )
        return value

    def __dir__(self):
        return dir(importlib.import_module(self.__dict__["_new"]))


def register_module_aliases(package, moved):
    """Make ``package.old`` importable as a deprecated alias of ``package.new``.

    Parameters
    ----------
    package : str
        The package's name (``"fastdeconv"``).
    moved : dict
        Old module name -> new module name, both relative to the package.

    Examples
    --------
    >>> import sys, warnings
    >>> from fastdeconv._deprecated import register_module_aliases
    >>> register_module_aliases("fastdeconv", {"old_io": "io"})
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     from fastdeconv.old_io import read_table
    >>> caught[0].category.__name__, read_table.__module__
    ('DeprecationWarning', 'fastdeconv.io')
    >>> del sys.modules["fastdeconv.old_io"]
    """
    for old, new in moved.items():
        name = f"{package}.{old}"
        if name not in sys.modules:
            sys.modules[name] = _ModuleAlias(name, f"{package}.{new}")


def moved_names(module, moved):
    """A module ``__getattr__`` that forwards names moved to other modules, with a warning.

    Parameters
    ----------
    module : str
        The old module's name (for the message).
    moved : dict
        Name -> the module that now defines it.

    Returns
    -------
    callable
        Assign it to the old module's ``__getattr__``.

    Examples
    --------
    >>> import warnings
    >>> from fastdeconv._deprecated import moved_names
    >>> getter = moved_names("fastdeconv.old", {"read_table": "fastdeconv.io"})
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     read_table = getter("read_table")
    >>> str(caught[0].message)
    'fastdeconv.old.read_table is deprecated and will be removed; use fastdeconv.io.read_table'
    """

    def __getattr__(name):
        if name not in moved:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        warnings.warn(
            f"{module}.{name} is deprecated and will be removed; use {moved[name]}.{name}",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(moved[name]), name)

    return __getattr__
