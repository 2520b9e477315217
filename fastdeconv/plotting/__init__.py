"""Figures (optional: needs matplotlib, ``pip install fastdeconv[plot]``).

matplotlib is imported only when a plotting function is called, so importing
:mod:`fastdeconv` or this package stays cheap. Every function returns the
:class:`matplotlib.figure.Figure` and, given ``path``, saves it (format from the
extension) without needing a display.

Reference-based deconvolution:

* :func:`plot_proportions` -- stacked bars of the proportions of each sample;
* :func:`plot_estimate_vs_truth` -- estimated vs true proportions per type, with r and RMSE;
* :func:`plot_fit_quality` -- per-sample fit diagnostics.

The plots of the reference-free (LinSeed) and reference-building pipelines live
in ``_linseed.py`` and ``_signature.py``; every name listed in their
``__all__`` is available from this package too.
"""

from __future__ import annotations

import importlib
import importlib.util

from fastdeconv.plotting._deconv import (
    plot_estimate_vs_truth,
    plot_fit_quality,
    plot_proportions,
    save_figure,
)

# documented (and pickled) under the package name
for _function in (plot_proportions, plot_estimate_vs_truth, plot_fit_quality, save_figure):
    _function.__module__ = __name__
del _function

_EXTRA_MODULES = ("_linseed", "_signature")

__all__ = ["plot_proportions", "plot_estimate_vs_truth", "plot_fit_quality", "save_figure"]


def _extra_names():
    names = {}
    for short in _EXTRA_MODULES:
        full = f"{__name__}.{short}"
        if importlib.util.find_spec(full) is None:
            continue
        module = importlib.import_module(full)
        for name in getattr(module, "__all__", ()):
            names[name] = module
    return names


def __getattr__(name):
    module = _extra_names().get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(__all__) | set(_extra_names()))
