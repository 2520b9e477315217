"""Tests of fastdeconv.plotting (deconvolution figures)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("matplotlib")

from fastdeconv.metrics import evaluate  # noqa: E402
from fastdeconv.plotting import (  # noqa: E402
    plot_estimate_vs_truth,
    plot_fit_quality,
    plot_proportions,
    save_figure,
)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


def _props(n=12, k=4, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        rng.dirichlet(np.ones(k), size=n),
        index=[f"s{i}" for i in range(n)],
        columns=[f"type {i}" for i in range(k)],
    )


def _is_png(path):
    return path.stat().st_size > 1000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_proportions_saves_stacked_bars(tmp_path):
    props = _props()
    out = tmp_path / "props.png"
    fig = plot_proportions(props, out)
    assert _is_png(out)
    ax = fig.axes[0]
    assert len(ax.containers) == 4
    assert all(len(c.patches) == 12 for c in ax.containers)
    # bars are stacked: the top of the last layer is each sample's total (1)
    tops = [p.get_y() + p.get_height() for p in ax.containers[-1].patches]
    np.testing.assert_allclose(tops, 1.0)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(props.columns)
    assert [t.get_text() for t in ax.get_xticklabels()] == list(props.index)
    assert list(tmp_path.iterdir()) == [out]  # no temporary file left behind


def test_plot_proportions_sort_and_many_samples_and_ax():
    import matplotlib.pyplot as plt

    props = _props(n=70, k=12, seed=1)
    fig = plot_proportions(props, sort=True, title="cohort")
    ax = fig.axes[0]
    lead = props.mean().idxmax()
    lead_layer = ax.containers[list(props.columns).index(lead)]
    heights = [p.get_height() for p in lead_layer.patches]
    assert heights == sorted(heights, reverse=True)
    assert len(ax.get_xticks()) == 0  # too many samples to name
    assert ax.get_xlabel() == "70 samples (sorted)"
    assert ax.get_title() == "cohort"
    _, given = plt.subplots()
    assert plot_proportions(props.iloc[:3], ax=given) is given.figure


def test_plot_estimate_vs_truth_panels(tmp_path):
    truth = _props(n=30, k=5, seed=2)
    est = (truth + np.random.default_rng(3).normal(0, 0.03, truth.shape)).clip(lower=0)
    out = tmp_path / "scatter.pdf"
    fig = plot_estimate_vs_truth(est, truth, path=out)
    assert out.stat().st_size > 1000 and out.read_bytes()[:4] == b"%PDF"
    assert len(fig.axes) == 6  # 5 types + pooled
    ev = evaluate(est, truth)
    title = fig.axes[0].get_title()
    assert "type 0" in title and f"r = {ev.per_type.loc['type 0', 'pearson_r']:.3f}" in title
    assert f"RMSE = {ev.overall['rmse']:.3f}" in fig.axes[-1].get_title()
    assert len(fig.axes[0].collections[0].get_offsets()) == 30
    # an Evaluation can be plotted directly, also via its method
    assert len(ev.plot(path=tmp_path / "ev.png").axes) == 6
    assert _is_png(tmp_path / "ev.png")


def test_plot_fit_quality(tmp_path):
    fit = pd.DataFrame(
        {
            "residual_norm": np.linspace(1, 2, 8),
            "rmse": np.linspace(0.1, 0.2, 8),
            "r2": np.linspace(0.9, 0.99, 8),
            "pearson_r": np.linspace(0.95, 0.999, 8),
            "converged": [True] * 7 + [False],
        },
        index=[f"s{i}" for i in range(8)],
    )
    out = tmp_path / "fit.png"
    fig = plot_fit_quality(fit, out)
    assert _is_png(out)
    assert len(fig.axes) == 4
    ax = fig.axes[0]
    assert len(ax.collections) == 2  # converged points and the red crosses
    assert len(ax.collections[1].get_offsets()) == 1

    class Result:
        pass

    result = Result()
    result.fit = fit[["r2"]]
    assert len(plot_fit_quality(result).axes) == 1


def test_plotting_errors(tmp_path):
    props = _props()
    with pytest.raises(ValueError, match="extension"):
        plot_proportions(props, tmp_path / "x.docx")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(FileNotFoundError, match="does not exist"):
        plot_proportions(props, tmp_path / "missing" / "x.png")
    with pytest.raises(ValueError, match="NaN"):
        plot_proportions(props.where(props > 0.5))
    with pytest.raises(TypeError, match="DataFrame"):
        plot_proportions([[0.5, 0.5]])
    with pytest.raises(ValueError, match="diagnostic columns"):
        plot_fit_quality(pd.DataFrame({"foo": [1.0]}))
    with pytest.raises(ValueError, match="truth"):
        plot_estimate_vs_truth(props)


def test_save_figure_replaces_existing_file_atomically(tmp_path):
    out = tmp_path / "a.png"
    out.write_bytes(b"old")
    fig = plot_proportions(_props(n=3, k=2))
    save_figure(fig, out)
    assert _is_png(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


def test_importing_plotting_does_not_import_matplotlib():
    code = (
        "import sys, fastdeconv.plotting, fastdeconv.metrics, fastdeconv.simulate;"
        "print('matplotlib' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
