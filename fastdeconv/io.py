"""Reading and (atomically) writing expression tables and dataset folders.

Tables are plain text: tab-separated (``.tsv``, ``.txt``) or comma-separated
(``.csv``), optionally gzip-compressed (``.gz`` appended).  The first column
holds the row ids (genes, cell types or samples) and the header holds the
column ids.  Writing goes through a temporary file in the same folder that is
renamed over the target only when complete, so a crash or a full disk never
leaves a half-written result behind.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["read_table", "write_table", "read_dataset", "atomic_write"]

_SEPARATORS = {".tsv": "\t", ".txt": "\t", ".tab": "\t", ".csv": ","}


def _table_format(path):
    """Return ``(separator, compression)`` chosen by the extension of ``path``."""
    suffixes = [s.lower() for s in Path(path).suffixes]
    compression = None
    if suffixes and suffixes[-1] == ".gz":
        compression = "gzip"
        suffixes = suffixes[:-1]
    if not suffixes or suffixes[-1] not in _SEPARATORS:
        raise ValueError(
            f"cannot tell the table format of {str(path)!r} from its extension; use one of "
            f"{sorted(_SEPARATORS)} (optionally followed by .gz)"
        )
    return _SEPARATORS[suffixes[-1]], compression


def read_table(path, *, index_col=0, numeric=True):
    """Read a TSV or CSV table with row ids in the first column.

    Parameters
    ----------
    path : str or os.PathLike
        File ending in ``.tsv``, ``.txt``, ``.tab`` (tab-separated) or ``.csv``
        (comma-separated), optionally followed by ``.gz``.
    index_col : int or str or None, default 0
        Column holding the row ids (passed to :func:`pandas.read_csv`); ``None``
        keeps a default integer index.
    numeric : bool, default True
        Require every cell outside the index to be a number (empty cells and
        ``NA`` become NaN, which :func:`fastdeconv.inputs.check_expression`
        reports later).  Set ``False`` for label tables holding text.

    Returns
    -------
    pandas.DataFrame
        The table; with ``numeric=True`` every column is ``float64``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the extension is unknown, the table is empty, or (with
        ``numeric=True``) a cell is not a number; the message names the first
        such row and column.

    Examples
    --------
    >>> import tempfile, os
    >>> import pandas as pd
    >>> from fastdeconv.io import read_table, write_table
    >>> df = pd.DataFrame({"s1": [1.0, 2.0], "s2": [3.0, 4.0]}, index=["GeneA", "GeneB"])
    >>> with tempfile.TemporaryDirectory() as d:
    ...     write_table(df, os.path.join(d, "bulk.tsv.gz"), index_label="gene")
    ...     back = read_table(os.path.join(d, "bulk.tsv.gz"))
    >>> back.loc["GeneB", "s2"]
    np.float64(4.0)
    """
    path = Path(path)
    sep, compression = _table_format(path)
    if not path.exists():
        raise FileNotFoundError(f"table file not found: {str(path)!r}")
    if path.is_dir():
        raise ValueError(f"{str(path)!r} is a folder, not a table file")
    try:
        df = pd.read_csv(path, sep=sep, index_col=index_col, compression=compression)
    except pd.errors.EmptyDataError:
        raise ValueError(f"table {str(path)!r} is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot parse table {str(path)!r}: {exc}") from None
    if df.shape[0] == 0 or df.shape[1] == 0:
        raise ValueError(
            f"table {str(path)!r} has no data ({df.shape[0]} rows x {df.shape[1]} columns "
            "after the row-id column); expected a header line and at least one data row"
        )
    if numeric:
        df = _to_numeric(df, source=repr(str(path)))
    return df


def _to_numeric(df, *, source):
    """Convert every column to float64, naming the first non-numeric cell on failure."""
    bad = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c].dtype)]
    for col in bad:
        converted = pd.to_numeric(df[col], errors="coerce")
        offending = converted.isna() & df[col].notna()
        if offending.any():
            row = offending.index[np.argmax(offending.to_numpy())]
            raise ValueError(
                f"table {source} has a non-numeric cell at row {row!r}, column {col!r}: "
                f"{df.at[row, col]!r}; expression tables must hold numbers only (row ids in "
                "the first column, column ids in the header)"
            )
        df[col] = converted
    return df.astype(np.float64, copy=False)


def write_table(df, path, *, index_label=None):
    """Write a table atomically as TSV or CSV (by extension, gzip if ``.gz``).

    The data go to a temporary file in the target folder which then replaces
    ``path`` in one step (:func:`os.replace`), so readers never see a partial
    file.

    Parameters
    ----------
    df : pandas.DataFrame or pandas.Series
        Table to write; the index becomes the first column.
    path : str or os.PathLike
        Target file ending in ``.tsv``, ``.txt``, ``.tab`` or ``.csv``,
        optionally followed by ``.gz``.  The folder must exist.
    index_label : str, optional
        Header of the first column (default: the index name, or empty).

    Raises
    ------
    ValueError
        If the extension is unknown.
    FileNotFoundError
        If the target folder does not exist.

    Examples
    --------
    >>> import tempfile, os
    >>> import pandas as pd
    >>> from fastdeconv.io import write_table
    >>> with tempfile.TemporaryDirectory() as d:
    ...     target = os.path.join(d, "p.csv")
    ...     write_table(pd.DataFrame({"T": [0.4], "B": [0.6]}, index=["s1"]), target)
    ...     print(open(target).read().strip())
    ,T,B
    s1,0.4,0.6
    """
    if not isinstance(df, (pd.DataFrame, pd.Series)):
        raise TypeError(f"write_table expects a pandas DataFrame or Series, got {type(df).__name__}")
    path = Path(path)
    sep, compression = _table_format(path)
    atomic_write(path, lambda tmp: df.to_csv(tmp, sep=sep, index_label=index_label, compression=compression))


def atomic_write(path, write):
    """Write a file atomically: ``write(tmp)`` to a temporary file, then rename it.

    The temporary file lives in the target's folder (so the rename is atomic on
    the same file system); an interrupted or failed write removes it and leaves
    any existing file at ``path`` untouched.

    Parameters
    ----------
    path : str or Path
        The target.
    write : callable
        ``write(tmp_path)`` writes the whole content to ``tmp_path``.

    Returns
    -------
    Path
        The target path.

    Raises
    ------
    FileNotFoundError
        If the target folder does not exist.

    Examples
    --------
    >>> import os, tempfile
    >>> from fastdeconv.io import atomic_write
    >>> with tempfile.TemporaryDirectory() as d:
    ...     out = atomic_write(os.path.join(d, "a.txt"), lambda tmp: open(tmp, "w").write("hi"))
    ...     print(out.read_text(), os.listdir(d))
    hi ['a.txt']
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise FileNotFoundError(f"folder {str(folder)!r} for {str(path)!r} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def read_dataset(folder):
    """Read a dataset folder laid out like ``shared/data/<name>/``.

    Every table in the folder is read under the name of its file without
    extensions: ``mixture.tsv.gz`` -> ``"mixture"`` (genes x samples),
    ``truth.tsv`` -> ``"truth"`` (cell types x samples), and where present
    ``"reference"`` (genes x cell types), ``"pure"`` (genes x pure samples) and
    any other table.  Tables whose name ends in ``_labels`` (such as
    ``pure_labels.tsv``: sample -> cell type) are returned as a
    :class:`pandas.Series` of strings.  ``meta.json`` becomes ``"meta"``
    (a dict).

    Parameters
    ----------
    folder : str or os.PathLike
        The dataset folder.

    Returns
    -------
    dict
        Name -> DataFrame, Series or dict as described above.

    Raises
    ------
    FileNotFoundError
        If the folder does not exist or holds no table.

    Examples
    --------
    >>> import tempfile, os
    >>> import pandas as pd
    >>> from fastdeconv.io import read_dataset, write_table
    >>> with tempfile.TemporaryDirectory() as d:
    ...     write_table(pd.DataFrame({"s1": [5.0, 7.0]}, index=["G1", "G2"]),
    ...                 os.path.join(d, "mixture.tsv.gz"), index_label="gene")
    ...     write_table(pd.DataFrame({"s1": [1.0]}, index=["T"]),
    ...                 os.path.join(d, "truth.tsv"), index_label="cell_type")
    ...     data = read_dataset(d)
    >>> sorted(data), data["mixture"].shape
    (['mixture', 'truth'], (2, 1))
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {str(folder)!r}")
    out = {}
    for path in sorted(folder.iterdir()):
        name = path.name
        if name == "meta.json":
            with open(path, encoding="utf-8") as fh:
                out["meta"] = json.load(fh)
            continue
        try:
            _table_format(path)
        except ValueError:
            continue
        key = name.split(".")[0]
        if key.endswith("_labels"):
            labels = read_table(path, numeric=False)
            out[key] = labels.iloc[:, 0].astype(str)
        else:
            out[key] = read_table(path)
    if not any(isinstance(v, (pd.DataFrame, pd.Series)) for v in out.values()):
        raise FileNotFoundError(f"no .tsv/.csv table found in dataset folder {str(folder)!r}")
    return out
