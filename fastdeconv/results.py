"""The result classes' common habits: one base for every pipeline's result.

Every pipeline returns a result with the same habits:

- ``summary()`` (also ``str(result)``): a readable report;
- ``to_frame()``: the result as one table -- for results that carry
  proportions, the proportions and the per-sample fit diagnostics side by side,
  one row per sample;
- ``write(path, ...)``: the main table written atomically (TSV/CSV by
  extension, optionally gzipped), with keyword paths for the secondary tables;
- ``plot(path=None)``: the result's main figure (matplotlib, imported only
  when asked for).

Results that carry proportions (:class:`ProportionsResult`) also have
``.proportions`` (samples x cell types), ``.fit`` (samples x diagnostics) and
``to_cell_fractions(rna_content)``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["Result", "ProportionsResult"]


class Result:
    """Base of every result class: ``summary``, ``__str__``, ``to_frame``, ``write``, ``plot``.

    Subclasses implement :meth:`summary`, :meth:`to_frame`, :meth:`write` and
    :meth:`plot`; the base supplies ``__str__``.

    Examples
    --------
    >>> from fastdeconv.results import Result
    >>> class Answer(Result):
    ...     def summary(self):
    ...         return "42"
    >>> print(Answer())
    42
    """

    def summary(self):  # pragma: no cover - every subclass overrides it
        """Return a readable report of the result.

        Returns
        -------
        str
        """
        raise NotImplementedError

    def __str__(self):
        return self.summary()


class ProportionsResult(Result):
    """Base of the results that carry proportions (reference-based and reference-free).

    Subclasses are dataclasses with at least the fields ``proportions``
    (samples x cell types or components) and ``fit`` (samples x per-sample
    diagnostics).

    Examples
    --------
    >>> import pandas as pd
    >>> from dataclasses import dataclass
    >>> from fastdeconv.results import ProportionsResult
    >>> @dataclass
    ... class Tiny(ProportionsResult):
    ...     proportions: pd.DataFrame
    ...     fit: pd.DataFrame
    ...     def summary(self):
    ...         return "tiny"
    >>> res = Tiny(pd.DataFrame({"T": [0.5], "B": [0.5]}, index=["s"]),
    ...            pd.DataFrame({"converged": [True]}, index=["s"]))
    >>> list(res.to_frame().columns)
    ['T', 'B', 'converged']
    >>> res.to_cell_fractions({"T": 1.0, "B": 3.0}).round(2).to_dict("records")
    [{'T': 0.75, 'B': 0.25}]
    """

    def to_anndata(self, adata, *, copy=False, key="fastdeconv"):
        """Store the result in an AnnData of the bulk samples, scverse style.

        Writes ``adata.obsm[f"{key}_proportions"]`` (a DataFrame, samples x
        cell types), ``adata.obsm[f"{key}_fit"]`` (the per-sample fit
        diagnostics), ``adata.obsm[f"{key}_uncertainty"]`` when the result has
        an uncertainty table, and the run's method and options in
        ``adata.uns[key]``.  Keys of an earlier run are replaced.

        Parameters
        ----------
        adata : anndata.AnnData
            The bulk samples as observations (samples x genes), the ones
            deconvolved (matched by name, or by position when the result's
            sample names are not all among ``obs_names``).
        copy : bool, default False
            Write into a copy and return it (the input is left as it is);
            otherwise write into ``adata`` and return it.
        key : str, default "fastdeconv"
            Prefix of the keys.

        Returns
        -------
        anndata.AnnData
            The object written to.

        Examples
        --------
        >>> import numpy as np, pandas as pd, anndata, fastdeconv
        >>> rng = np.random.default_rng(0)
        >>> sig = pd.DataFrame(rng.gamma(1.0, 100.0, (50, 2)), columns=["T", "B"],
        ...                    index=[f"g{i}" for i in range(50)])
        >>> bulk = anndata.AnnData(pd.DataFrame((sig.to_numpy() @ [[0.3, 0.6], [0.7, 0.4]]).T,
        ...                                     index=["s1", "s2"], columns=sig.index))
        >>> res = fastdeconv.deconvolve(bulk, sig, method="nnls")
        >>> res.adata is bulk, bulk.obsm["fastdeconv_proportions"].round(2).to_dict("list")
        (True, {'T': [0.3, 0.7], 'B': [0.6, 0.4]})
        >>> bulk.uns["fastdeconv"]["method"]
        'nnls'
        """
        from fastdeconv.inputs._common import is_anndata

        if not is_anndata(adata):
            raise TypeError(f"to_anndata needs an AnnData object, got {type(adata).__name__}")
        samples = self.proportions.index.astype(str)
        obs = adata.obs_names.astype(str)
        if len(samples) != len(obs):
            raise ValueError(
                f"the result has {len(samples)} samples but the AnnData {len(obs)} observations: "
                "pass the AnnData that was deconvolved"
            )
        order = samples.get_indexer(obs) if set(obs) == set(samples) else np.arange(len(obs))
        target = adata.copy() if copy else adata

        def aligned(frame):
            frame = frame.iloc[order].copy()
            frame.index = adata.obs_names
            return frame

        target.obsm[f"{key}_proportions"] = aligned(self.proportions)
        target.obsm[f"{key}_fit"] = aligned(self.fit)
        uncertainty = getattr(self, "uncertainty", None)
        if isinstance(uncertainty, pd.DataFrame):
            target.obsm[f"{key}_uncertainty"] = aligned(uncertainty)
        options = {str(k): v if isinstance(v, (str, int, float, bool)) else str(v)
                   for k, v in (getattr(self, "options", None) or {}).items()}
        target.uns[key] = {"method": str(getattr(self, "method", "")), "options": options}
        return target

    def to_frame(self):
        """Proportions and fit diagnostics side by side, one row per sample.

        Returns
        -------
        pandas.DataFrame
            The proportion columns followed by the :attr:`fit` columns.

        Examples
        --------
        >>> import pandas as pd
        >>> from fastdeconv.results import ProportionsResult
        >>> class Tiny(ProportionsResult):
        ...     proportions = pd.DataFrame({"T": [0.5], "B": [0.5]}, index=["s"])
        ...     fit = pd.DataFrame({"converged": [True]}, index=["s"])
        >>> Tiny().to_frame().columns.tolist()
        ['T', 'B', 'converged']
        """
        return pd.concat([self.proportions, self.fit], axis=1)

    def write(self, path, *, fit_path=None):
        """Write the proportions (and optionally the fit table) atomically.

        Parameters
        ----------
        path : str or os.PathLike
            Proportions table (samples x types, first header ``sample``),
            ``.tsv``/``.csv``, optionally ``.gz``.
        fit_path : str or os.PathLike, optional
            Where to write the per-sample fit table.

        Examples
        --------
        >>> import os, tempfile
        >>> import pandas as pd
        >>> from fastdeconv.results import ProportionsResult
        >>> class Tiny(ProportionsResult):
        ...     proportions = pd.DataFrame({"T": [0.5], "B": [0.5]}, index=["s"])
        ...     fit = pd.DataFrame({"converged": [True]}, index=["s"])
        >>> with tempfile.TemporaryDirectory() as d:
        ...     Tiny().write(os.path.join(d, "p.tsv"), fit_path=os.path.join(d, "fit.tsv"))
        ...     sorted(os.listdir(d))
        ['fit.tsv', 'p.tsv']
        """
        from fastdeconv.io import write_table

        write_table(self.proportions, path, index_label="sample")
        if fit_path is not None:
            write_table(self.fit, fit_path, index_label="sample")

    def to_cell_fractions(self, rna_content):
        """The proportions as fractions of cells instead of fractions of RNA.

        See :func:`fastdeconv.to_cell_fractions`.

        Parameters
        ----------
        rna_content : dict, pandas.Series, one-column DataFrame or SignatureResult
            RNA per cell of every cell type (any unit); a
            :class:`~fastdeconv.SignatureResult` supplies its own
            :attr:`~fastdeconv.SignatureResult.rna_content`.

        Returns
        -------
        pandas.DataFrame
            Samples x cell types, rows summing to 1.

        Examples
        --------
        >>> import pandas as pd
        >>> from fastdeconv.results import ProportionsResult
        >>> class Tiny(ProportionsResult):
        ...     proportions = pd.DataFrame({"T": [0.5], "B": [0.5]}, index=["s"])
        ...     fit = pd.DataFrame({"converged": [True]}, index=["s"])
        >>> Tiny().to_cell_fractions({"T": 1.0, "B": 3.0}).round(2).to_dict("records")
        [{'T': 0.75, 'B': 0.25}]
        """
        from fastdeconv.fractions import to_cell_fractions

        return to_cell_fractions(self.proportions, rna_content)

    def plot_proportions(self, path=None, **kwargs):
        """Stacked bars of the proportions (see :func:`fastdeconv.plotting.plot_proportions`).

        Parameters
        ----------
        path : str or os.PathLike, optional
            Save the figure there.
        **kwargs
            Passed to :func:`fastdeconv.plotting.plot_proportions`.

        Returns
        -------
        matplotlib.figure.Figure

        Examples
        --------
        >>> import pandas as pd
        >>> from fastdeconv.results import ProportionsResult
        >>> class Tiny(ProportionsResult):
        ...     proportions = pd.DataFrame({"T": [0.5], "B": [0.5]}, index=["s"])
        ...     fit = pd.DataFrame({"converged": [True]}, index=["s"])
        >>> fig = Tiny().plot_proportions(title="one sample")
        """
        from fastdeconv.plotting import plot_proportions

        return plot_proportions(self.proportions, path=path, **kwargs)

    def plot(self, path=None):
        """The result's main figure: by default the stacked proportions.

        Parameters
        ----------
        path : str or os.PathLike, optional
            Save the figure there.

        Returns
        -------
        matplotlib.figure.Figure

        Examples
        --------
        >>> import pandas as pd
        >>> from fastdeconv.results import ProportionsResult
        >>> class Tiny(ProportionsResult):
        ...     proportions = pd.DataFrame({"T": [0.5], "B": [0.5]}, index=["s"])
        ...     fit = pd.DataFrame({"converged": [True]}, index=["s"])
        >>> len(Tiny().plot().axes) >= 1
        True
        """
        return self.plot_proportions(path)
