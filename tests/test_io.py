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
