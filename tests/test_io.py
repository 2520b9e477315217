"""Tests of fastdeconv.io: reading, atomic writing, dataset folders."""

from __future__ import annotations

import gzip
import json
import os

import numpy as np
import pandas as pd
import pytest

from fastdeconv.io import read_dataset, read_table, write_table


@pytest.fixture
def table():
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        rng.gamma(1.0, 100.0, size=(5, 3)),
        index=[f"G{i}" for i in range(5)],
        columns=["s1", "s2", "s3"],
    )


@pytest.mark.parametrize("name", ["t.tsv", "t.txt", "t.csv", "t.tsv.gz", "t.csv.gz", "T.TSV"])
def test_roundtrip(tmp_path, table, name):
    path = tmp_path / name
    write_table(table, path, index_label="gene")
    back = read_table(path)
    pd.testing.assert_frame_equal(back, table, check_names=False, rtol=1e-15)
    assert back.index.name == "gene"
    assert all(back.dtypes == np.float64)


def test_gzip_is_really_compressed_and_separator_by_extension(tmp_path, table):
    write_table(table, tmp_path / "a.csv.gz")
    with gzip.open(tmp_path / "a.csv.gz", "rt") as fh:
        assert fh.readline().count(",") == 3
    write_table(table, tmp_path / "a.tsv")
    assert (tmp_path / "a.tsv").read_text().splitlines()[0].count("\t") == 3


def test_write_is_atomic_and_leaves_no_temporary(tmp_path, table, monkeypatch):
    path = tmp_path / "p.tsv"
    write_table(table, path)
    before = path.read_text()

    def broken(self, *args, **kwargs):
        with open(args[0], "w") as fh:
            fh.write("partial")
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", broken)
    with pytest.raises(OSError, match="disk full"):
        write_table(table * 2, path)
    assert path.read_text() == before
    assert sorted(os.listdir(tmp_path)) == ["p.tsv"]


def test_write_errors(tmp_path, table):
    with pytest.raises(ValueError, match="extension"):
        write_table(table, tmp_path / "p.xlsx")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_table(table, tmp_path / "missing" / "p.tsv")
    with pytest.raises(TypeError, match="DataFrame"):
        write_table(table.to_numpy(), tmp_path / "p.tsv")


def test_write_series(tmp_path):
    s = pd.Series([1.0, 2.0], index=["a", "b"], name="x")
    write_table(s, tmp_path / "s.tsv", index_label="id")
    assert read_table(tmp_path / "s.tsv")["x"].tolist() == [1.0, 2.0]


def test_read_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        read_table(tmp_path / "nope.tsv")


def test_read_unknown_extension(tmp_path):
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(ValueError, match="extension"):
        read_table(tmp_path / "x.json")


@pytest.mark.parametrize("content", ["", "gene\ts1\n", "gene\n"])
def test_read_empty(tmp_path, content):
    path = tmp_path / "e.tsv"
    path.write_text(content)
    with pytest.raises(ValueError, match="empty|no data"):
        read_table(path)


def test_read_non_numeric_cell_names_row_and_column(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_text("gene\ts1\ts2\nA\t1\t2\nB\t3\tfoo\n")
    with pytest.raises(ValueError, match=r"row 'B', column 's2'.*'foo'"):
        read_table(path)


def test_read_missing_cells_become_nan(tmp_path):
    path = tmp_path / "na.csv"
    path.write_text("gene,s1,s2\nA,1,\nB,NA,4\n")
    df = read_table(path)
    assert np.isnan(df.loc["A", "s2"]) and np.isnan(df.loc["B", "s1"])


def test_read_labels_non_numeric(tmp_path):
    path = tmp_path / "labels.tsv"
    path.write_text("sample\tcell_type\nx\tT\ny\tB\n")
    df = read_table(path, numeric=False)
    assert df["cell_type"].tolist() == ["T", "B"]


def test_read_folder_is_error(tmp_path):
    (tmp_path / "d.tsv").mkdir()
    with pytest.raises(ValueError, match="folder"):
        read_table(tmp_path / "d.tsv")


def test_read_dataset_layout(tmp_path, table):
    write_table(table, tmp_path / "mixture.tsv.gz", index_label="gene")
    truth = pd.DataFrame([[0.3, 0.5, 0.1], [0.7, 0.5, 0.9]], index=["T", "B"], columns=table.columns)
    write_table(truth, tmp_path / "truth.tsv", index_label="cell_type")
    write_table(table.iloc[:, :2].set_axis(["T", "B"], axis=1), tmp_path / "reference.tsv.gz")
    pd.Series(["T", "B"], index=["p1", "p2"], name="cell_type").to_csv(
        tmp_path / "pure_labels.tsv", sep="\t", index_label="sample"
    )
    (tmp_path / "meta.json").write_text(json.dumps({"geo": "GSE0"}))
    (tmp_path / "notes.md").write_text("ignored")
    data = read_dataset(tmp_path)
    assert sorted(data) == ["meta", "mixture", "pure_labels", "reference", "truth"]
    pd.testing.assert_frame_equal(data["mixture"], table, check_names=False)
    assert data["truth"].loc["B", "s3"] == 0.9
    assert isinstance(data["pure_labels"], pd.Series)
    assert data["pure_labels"].to_dict() == {"p1": "T", "p2": "B"}
    assert data["meta"] == {"geo": "GSE0"}


def test_read_dataset_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        read_dataset(tmp_path / "absent")
    (tmp_path / "meta.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="no .tsv"):
        read_dataset(tmp_path)


@pytest.mark.parametrize(
    "name", ["shenorr_GSE19830", "abbas_GSE11058", "newman_GSE65133", "sim_cibersort_tutorial_LM22"]
)
def test_real_datasets_match_their_meta(dataset, name):
    data = dataset(name)
    for file, shape in data["meta"]["files"].items():
        key = file.split(".")[0]
        assert data[key].shape[0] == shape[0], file
        if data[key].ndim == 2:
            assert data[key].shape[1] == shape[1], file
    assert list(data["truth"].columns) == list(data["mixture"].columns)
    assert np.isfinite(data["mixture"].to_numpy()).all()


# ---------------------------------------------------------------------------
# issue 13: damaged or malformed files give one clear message naming the file
# ---------------------------------------------------------------------------


def _gz_bytes(table):
    import io as _io

    buffer = _io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as fh:
        fh.write(table.to_csv(sep="\t").encode())
    return buffer.getvalue()


def _refused(path, pattern, **kwargs):
    with pytest.raises(ValueError, match=pattern) as info:
        read_table(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message or os.path.basename(str(path)) in message
    return message


def test_truncated_gz_names_the_file_and_says_get_it_again(tmp_path, table):
    data = _gz_bytes(pd.concat([table] * 200))
    path = tmp_path / "bulk.tsv.gz"
    path.write_bytes(data[: len(data) // 2])
    message = _refused(path, "truncated")
    assert "again" in message


def test_truncated_gz_beyond_the_first_block_is_caught_while_parsing(tmp_path):
    rng = np.random.default_rng(1)
    big = pd.DataFrame(rng.random((20000, 4)), index=[f"G{i}" for i in range(20000)])
    data = _gz_bytes(big)
    path = tmp_path / "big.tsv.gz"
    path.write_bytes(data[: int(len(data) * 0.9)])  # the first 64 KB decompress fine
    _refused(path, "truncated")


def test_corrupt_gz_names_the_file(tmp_path, table):
    data = bytearray(_gz_bytes(pd.concat([table] * 50)))
    data[20:40] = b"\xff" * 20
    path = tmp_path / "bulk.tsv.gz"
    path.write_bytes(bytes(data))
    _refused(path, "corrupt|truncated")


def test_plain_file_named_gz_says_rename_it(tmp_path, table):
    path = tmp_path / "bulk.tsv.gz"
    path.write_text(table.to_csv(sep="\t"))
    message = _refused(path, "not gzip-compressed")
    assert "rename it to" in message and "bulk.tsv'" in message


def test_gzip_file_not_named_gz_says_rename_it(tmp_path, table):
    path = tmp_path / "bulk.tsv"
    path.write_bytes(_gz_bytes(table))
    assert "bulk.tsv.gz" in _refused(path, "gzip-compressed but its name")


@pytest.mark.parametrize(
    ("content", "pattern"),
    [
        (b"PK\x03\x04" + bytes(100), "Excel|zip"),
        (b"\x89HDF\r\n\x1a\n" + bytes(100), "HDF5"),
        ("gene\ts1\nA\t1\n".encode("utf-16"), "UTF-16"),
        (bytes(range(256)) * 4, "binary"),
        ("gene\ts1\nCD8\u00b5\t1\n".encode("latin-1"), "not UTF-8 text.*save it as UTF-8"),
    ],
)
def test_binary_and_non_utf8_files_are_not_text_tables(tmp_path, content, pattern):
    path = tmp_path / "t.tsv"
    path.write_bytes(content)
    _refused(path, pattern)


@pytest.mark.parametrize(
    ("name", "text", "pattern"),
    [
        ("t.tsv", "gene,s1,s2\nA,1,2\nB,3,4\n", "separated by commas.*rename it to '.*t.csv'"),
        ("t.csv", "gene\ts1\ts2\nA\t1\t2\n", "separated by tabs.*rename it to '.*t.tsv'"),
        ("t.csv.gz", None, "separated by tabs.*rename it to '.*t.tsv.gz'"),
        ("t.csv", "gene;s1;s2\nA;1,5;2\n", "separated by semicolons"),
        ("t.tsv", "gene s1 s2\nA 1 2\n", "separated by spaces"),
    ],
)
def test_wrong_delimiter_names_the_fix(tmp_path, name, text, pattern):
    path = tmp_path / name
    if text is None:
        with gzip.open(path, "wt") as fh:
            fh.write("gene\ts1\ts2\nA\t1\t2\n")
    else:
        path.write_text(text)
    _refused(path, pattern)


def test_ragged_rows_name_the_line(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text("gene\ts1\ts2\nA\t1\t2\nB\t3\t4\t5\n")
    _refused(path, "unequal length: line 3 has 4 fields")


def test_unclosed_quote_is_named(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text('gene\ts1\ts2\nA\t"1\t2\nB\t3\t4\n')
    _refused(path, "unclosed quote")


def test_duplicated_column_names_are_refused_not_renamed(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text("gene\tT\tB\tT\nA\t1\t2\t3\n")
    _refused(path, "two columns named 'T'")


def test_unnamed_column_with_values_is_refused(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text("gene\ts1\t\ts2\nA\t1\t5\t2\n")
    _refused(path, "column 2 .*no name")


def test_trailing_delimiter_column_is_dropped(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text("gene\ts1\ts2\t\nA\t1\t2\t\nB\t3\t4\t\n")
    assert list(read_table(path).columns) == ["s1", "s2"]


def test_decimal_comma_and_overflow_say_how_to_write_numbers(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text("gene\ts1\nA\t1,5\n")
    _refused(path, "decimal point")
    path.write_text("gene\ts1\nA\t1e400\n")
    _refused(path, "too large")


def test_bom_quotes_and_crlf_are_read(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(b'\xef\xbb\xbf"gene","s1"\r\n"A","1.5"\r\nB,2\r\n')
    df = read_table(path)
    assert list(df.columns) == ["s1"] and df.loc["A", "s1"] == 1.5


def test_read_table_permission_denied_is_one_line(tmp_path, table):
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        pytest.skip("root reads every file")
    path = tmp_path / "t.tsv"
    write_table(table, path)
    path.chmod(0)
    with pytest.raises(PermissionError, match="permission denied"):
        read_table(path)


# ---------------------------------------------------------------------------
# issue 13: .h5ad files that cannot be read
# ---------------------------------------------------------------------------


def test_read_h5ad_damaged_file_is_one_clear_error(tmp_path):
    anndata = pytest.importorskip("anndata")
    from fastdeconv.io import read_h5ad

    path = tmp_path / "cells.h5ad"
    anndata.AnnData(np.ones((4, 3), dtype=np.float32)).write_h5ad(path)
    assert read_h5ad(path).shape == (4, 3)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cannot be read as an AnnData file.*truncated") as info:
        read_h5ad(path)
    assert "cells.h5ad" in str(info.value) and "\n" not in str(info.value)
    path.write_text("gene,cell\nA,1\n")
    with pytest.raises(ValueError, match="not an HDF5 file"):
        read_h5ad(path)
    with pytest.raises(FileNotFoundError):
        read_h5ad(tmp_path / "absent.h5ad")


# ---------------------------------------------------------------------------
# issue 13: output files are readable by others when the umask allows it
# ---------------------------------------------------------------------------


@pytest.fixture
def umask():
    """``umask(mask)`` sets the process umask for the test; the old one comes back after."""
    previous = os.umask(0o022)
    os.umask(previous)
    yield os.umask
    os.umask(previous)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
@pytest.mark.parametrize("name", ["p.tsv", "p.csv.gz"])
def test_output_files_get_the_permissions_open_would_give(tmp_path, table, umask, mask, mode, name):
    umask(mask)
    path = write_table(table, tmp_path / name) or tmp_path / name
    assert (path.stat().st_mode & 0o777) == mode
    assert os.listdir(tmp_path) == [name]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_overwritten_output_keeps_its_permissions(tmp_path, table, umask):
    umask(0o022)
    path = tmp_path / "p.tsv"
    write_table(table, path)
    path.chmod(0o640)
    write_table(table * 2, path)
    assert (path.stat().st_mode & 0o777) == 0o640


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_atomic_write_of_a_figure_follows_the_umask(tmp_path, umask):
    from fastdeconv.io import atomic_write

    umask(0o022)
    atomic_write(tmp_path / "f.png", lambda tmp: open(tmp, "wb").write(b"\x89PNG"))
    assert ((tmp_path / "f.png").stat().st_mode & 0o777) == 0o644


def test_stray_quote_in_a_name_is_refused(tmp_path):
    path = tmp_path / "labels.tsv"
    path.write_text('cell\tcell_type\nc1\t""Tcell"\nc2\tBcell\n')
    _refused(path, "stray double quote", numeric=False)
    path.write_text('gene\ts1\nA"\t1\n')
    _refused(path, "stray double quote")


def test_text_far_down_a_big_table_is_one_error_without_a_dtype_warning(tmp_path):
    import warnings

    path = tmp_path / "m.tsv"
    lines = [f"G{i}\t{i}" for i in range(300_000)]
    lines.insert(200_000, "Gx\tabc")
    path.write_text("gene\ts1\n" + "\n".join(lines) + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="row 'Gx', column 's1': 'abc'"):
            read_table(path)


@pytest.mark.parametrize("ext", ["tsv", "csv", "tsv.gz"])
def test_large_float_tables_are_written_as_pandas_writes_them(tmp_path, monkeypatch, ext):
    """The fast writer of large float tables gives the same text as DataFrame.to_csv."""
    import gzip

    import fastdeconv.io as fio

    monkeypatch.setattr(fio, "FAST_TABLE_VALUES", 10)
    rng = np.random.default_rng(0)
    values = rng.dirichlet(np.ones(4), size=60)
    values[1, 2], values[2, 1], values[3, 0], values[4, 3] = np.nan, 1e-7, -0.0, np.inf
    values[5, 0] = 123456789.125
    df = pd.DataFrame(values, index=[f"spot {i}" for i in range(60)],
                      columns=["T cells", "B", "NK", "Mono"])
    df.index.name = "sample"
    assert fio._fast_table(df, "\t" if "tsv" in ext else ",", "gzip" if ext.endswith("gz")
                           else None)
    fio.write_table(df, tmp_path / f"fast.{ext}")
    sep = "\t" if "tsv" in ext else ","
    expected = df.to_csv(sep=sep)
    opener = gzip.open if ext.endswith("gz") else open
    with opener(tmp_path / f"fast.{ext}", "rt", encoding="utf-8", newline="") as fh:
        assert fh.read() == expected
    quoted = df.rename(index={"spot 0": 'a "quoted" name'})
    assert not fio._fast_table(quoted, sep, None)  # quoting: pandas writes it
