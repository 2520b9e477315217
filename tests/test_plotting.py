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


# ---------------------------------------------------------------- colours (issue 13)

#: CIE76 distance any two type colours keep (about 2.3 is just noticeable)
MIN_COLOUR_DISTANCE = 25.0
#: relative luminance every type colour stays below (contrast with white > 2.3:1)
MAX_LUMINANCE = 0.40


def _lab(colors):
    from fastdeconv.plotting._colors import hex_to_rgb, srgb_to_lab

    return srgb_to_lab(np.array([hex_to_rgb(c) for c in colors]))


def _min_distance(colors):
    lab = _lab(colors)
    d = np.linalg.norm(lab[:, None, :] - lab[None, :, :], axis=-1)
    d[np.diag_indices(len(colors))] = np.inf
    return float(d.min())


def test_cielab_conversion_matches_published_values():
    from fastdeconv.plotting._colors import relative_luminance, srgb_to_lab

    # sRGB primaries in CIELAB (D65), as tabulated by the CIE/Lindbloom
    lab = srgb_to_lab(np.eye(3))
    np.testing.assert_allclose(lab[0], [53.24, 80.09, 67.20], atol=0.02)
    np.testing.assert_allclose(lab[1], [87.73, -86.18, 83.18], atol=0.02)
    np.testing.assert_allclose(lab[2], [32.30, 79.19, -107.86], atol=0.02)
    np.testing.assert_allclose(srgb_to_lab([0.5, 0.5, 0.5]), [53.39, 0.0, 0.0], atol=0.02)
    np.testing.assert_allclose(relative_luminance(np.eye(3)), [0.2126, 0.7152, 0.0722], atol=1e-4)


@pytest.mark.parametrize("n", [10, 22, 30])
def test_22_lm22_types_get_clearly_different_colours(n):
    from fastdeconv.plotting._colors import type_colors

    colors = type_colors(n)
    assert len(colors) == len(set(colors)) == n
    assert _min_distance(colors) > MIN_COLOUR_DISTANCE, n


def test_more_types_than_the_stored_palette_still_get_distinct_colours():
    from fastdeconv.plotting._colors import PALETTE, type_colors

    colors = type_colors(60)
    assert colors[: len(PALETTE)] == list(PALETTE)  # a type keeps its colour
    assert len(set(colors)) == 60
    assert _min_distance(colors) > 15.0


def test_light_yellow_points_no_longer_vanish_on_white():
    from fastdeconv.plotting._colors import relative_luminance, type_colors

    colors = type_colors(60)
    assert "#dbdb8d" not in colors and "#c7c7c7" not in colors  # tab20's pastels
    lum = relative_luminance(np.array([_hex(c) for c in colors]))
    assert lum.max() < MAX_LUMINANCE
    assert (1.05 / (lum + 0.05)).min() > 2.3  # contrast ratio with white
    assert _lab(colors)[:, 0].min() >= 28.0  # and none looks black


def _hex(c):
    from fastdeconv.plotting._colors import hex_to_rgb

    return hex_to_rgb(c)


def test_stacked_bars_of_22_types_use_the_distinct_colours():
    from matplotlib.colors import to_hex

    from fastdeconv.plotting._colors import type_colors

    fig = plot_proportions(_props(n=5, k=22))
    used = [to_hex(c.patches[0].get_facecolor()) for c in fig.axes[0].containers]
    assert used == type_colors(22)


# ---------------------------------------------------------------- titles (issue 13)


def _title(fig):
    """The figure's title if it has one, else its first axes' title."""
    sup = fig.get_suptitle()
    return sup if sup else fig.axes[0].get_title()


def _every_plot():
    """(name, draw(title=...) -> Figure, words the default title contains) for every plot."""
    from fastdeconv.plotting import plot_signature
    from fastdeconv.plotting._linseed import (
        plot_linseed,
        plot_significance,
        plot_simplex,
        plot_spectrum,
    )
    from fastdeconv.reference_free import linseed
    from fastdeconv.simulate import synthetic

    props = _props()
    truth = _props(seed=1)
    fit = pd.DataFrame({"r2": [0.9, 0.95, 0.99], "rmse": [1.0, 2.0, 0.5]}, index=["a", "b", "c"])
    lin = linseed(synthetic(n_genes=400, n_types=3, n_samples=12, seed=1).bulk, 3,
                  n_permutations=20, pvalue=0.05)
    sig = pd.DataFrame({"T": [90.0, 1.0], "B": [2.0, 40.0]}, index=["CD3E", "MS4A1"])
    return [
        ("plot_proportions", lambda **kw: plot_proportions(props, **kw),
         "proportions of 12 samples"),
        ("plot_estimate_vs_truth", lambda **kw: plot_estimate_vs_truth(props, truth, **kw),
         "estimated vs true"),
        ("plot_fit_quality", lambda **kw: plot_fit_quality(fit, **kw), "fit of 3 samples"),
        ("plot_spectrum", lambda **kw: plot_spectrum(lin, **kw), "spectrum"),
        ("plot_simplex", lambda **kw: plot_simplex(lin, **kw), "simplex of"),
        ("plot_significance", lambda **kw: plot_significance(lin, **kw), "linearity"),
        ("plot_linseed", lambda **kw: plot_linseed(lin, **kw), "LinSeed: 3 cell types"),
        ("plot_signature", lambda **kw: plot_signature(sig, **kw), "signature: 2 genes x 2 types"),
    ]


def test_every_plot_names_its_dataset_or_method(tmp_path):
    named = "mixture.tsv.gz: deconvolve, method nnls"
    for name, draw, default in _every_plot():
        assert default in _title(draw()), name  # by default: what the figure shows
        fig = draw(title=named, path=tmp_path / f"{name}.png")
        assert _title(fig) == named, name  # the caller's title, e.g. the input file and method
        assert _is_png(tmp_path / f"{name}.png")
        fig = draw(title="")  # none at all
        assert not fig.get_suptitle(), name
        # one panel (plus a twin axis or a colour bar): its title is the figure's
        if len(fig.axes) == 1 or name in ("plot_spectrum", "plot_signature"):
            assert not fig.axes[0].get_title(), name


def test_every_public_plot_function_accepts_title():
    import inspect

    import fastdeconv.plotting as plotting

    names = [n for n in dir(plotting) if n.startswith("plot_")]
    assert {"plot_proportions", "plot_estimate_vs_truth", "plot_fit_quality", "plot_linseed",
            "plot_simplex", "plot_spectrum", "plot_significance", "plot_signature"} <= set(names)
    for name in names:
        params = inspect.signature(getattr(plotting, name)).parameters
        assert "title" in params and params["title"].default is None, name
