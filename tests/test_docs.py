"""The documentation site: it builds, the API reference is complete, pages render.

The Sphinx build runs once per test session (about 15-30 s) and is skipped when
the ``docs`` extra (sphinx, numpydoc, myst-parser) is not installed.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

DOCS_EXTRA = ("sphinx", "numpydoc", "myst_parser")
needs_sphinx = pytest.mark.skipif(
    any(importlib.util.find_spec(name) is None for name in DOCS_EXTRA),
    reason='the docs extra is not installed (pip install -e ".[docs]")',
)

# Modules whose public names (``__all__``) the API reference documents.
DOCUMENTED_MODULES = (
    "fastdeconv.solvers",
    "fastdeconv.kernels",
    "fastdeconv.regression",
    "fastdeconv.methods",
    "fastdeconv.methods.least_squares",
    "fastdeconv.methods.music",
    "fastdeconv.methods.epic",
    "fastdeconv.methods.bisque",
    "fastdeconv.methods.dwls",
    "fastdeconv.methods.fardeep",
    "fastdeconv.methods.svr",
    "fastdeconv.uncertainty",
    "fastdeconv.hierarchical",
    "fastdeconv.missing",
    "fastdeconv.fractions",
    "fastdeconv.results",
    "fastdeconv.errors",
    "fastdeconv.io",
    "fastdeconv.inputs",
    "fastdeconv.inputs.counts",
    "fastdeconv.signature",
    "fastdeconv.marker_stats",
    "fastdeconv.reference_free",
    "fastdeconv.factorization",
    "fastdeconv.n_types",
    "fastdeconv.simulate",
    "fastdeconv.metrics",
    "fastdeconv.plotting",
)

# Anchors autodoc must have produced on api.html: one per public name asked for.
API_ANCHORS = (
    "fastdeconv.nnls",
    "fastdeconv.simplex_lstsq",
    "fastdeconv.nnls_gram",
    "fastdeconv.simplex_lstsq_gram",
    "fastdeconv.project_simplex",
    "fastdeconv.SolveInfo",
    "fastdeconv.ConvergenceWarning",
    "fastdeconv.kernels.nnls_gram_kernel",
    "fastdeconv.kernels.simplex_gram_kernel",
    "fastdeconv.kernels.project_simplex_kernel",
    "fastdeconv.deconvolve",
    "fastdeconv.DeconvolutionResult",
    "fastdeconv.regression.select_marker_genes",
    "fastdeconv.show_methods",
    "fastdeconv.methods.Method",
    "fastdeconv.fractions.to_cell_fractions",
    "fastdeconv.fractions.fit_rna_content",
    "fastdeconv.results.ProportionsResult",
    "fastdeconv.io.read_table",
    "fastdeconv.io.write_table",
    "fastdeconv.io.read_dataset",
    "fastdeconv.inputs.as_expression_frame",
    "fastdeconv.inputs.check_expression",
    "fastdeconv.build_signature",
    "fastdeconv.SignatureResult",
    "fastdeconv.signature.cluster_cells",
    "fastdeconv.linseed",
    "fastdeconv.LinseedResult",
    "fastdeconv.reference_free.estimate_k",
    "fastdeconv.n_types.KDiagnostics",
    "fastdeconv.simulate.synthetic",
    "fastdeconv.simulate.pseudobulk",
    "fastdeconv.metrics.evaluate",
    "fastdeconv.plotting.plot_proportions",
)

# The pages this helper owns: any warning located in them is a defect.
OWN_PAGES = ("index.md", "api.md", "theory.md", "architecture.md", "troubleshooting.md")


@pytest.fixture(scope="module")
def built_docs(tmp_path_factory):
    """Build the site once into a temporary folder; return (html dir, warnings)."""
    out = tmp_path_factory.mktemp("docs")
    html = out / "html"
    warnings_file = out / "warnings.txt"
    cmd = [
        sys.executable, "-m", "sphinx", "-b", "html", "-E", "-q",
        "-d", str(out / "doctrees"), "-w", str(warnings_file), str(DOCS), str(html),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    warnings = warnings_file.read_text() if warnings_file.exists() else ""
    assert proc.returncode == 0, f"sphinx failed:\n{proc.stderr[-4000:]}"
    return html, warnings


def _warning_lines(warnings):
    return [line for line in warnings.splitlines() if "WARNING" in line or "ERROR" in line]


@needs_sphinx
def test_docs_build_without_import_failures(built_docs):
    _, warnings = built_docs
    failures = [line for line in _warning_lines(warnings) if "failed to import" in line]
    assert not failures, "autodoc could not import documented names:\n" + "\n".join(failures)


@needs_sphinx
def test_api_page_documents_every_public_name(built_docs):
    html, _ = built_docs
    page = (html / "api.html").read_text(encoding="utf-8")
    missing = [name for name in API_ANCHORS if f'id="{name}"' not in page]
    # ... and every other public name of the documented modules, under its
    # module or as the top-level fastdeconv.<name>
    for module_name in DOCUMENTED_MODULES:
        for name in _public_names(module_name)[1]:
            if f'id="{module_name}.{name}"' not in page and f'id="fastdeconv.{name}"' not in page:
                missing.append(f"{module_name}.{name}")
    missing = list(dict.fromkeys(missing))
    assert not missing, f"api.html has no entry for: {missing} (add them to docs/api.md)"
    # numpydoc rendered the sections of the docstrings, examples included
    assert "simplex_lstsq" in page and "Examples" in page and "&gt;&gt;&gt;" in page


@needs_sphinx
def test_theory_page_renders_math_and_cites_the_papers(built_docs):
    html, _ = built_docs
    page = (html / "theory.html").read_text(encoding="utf-8")
    assert page.count('class="math') >= 20  # dollarmath blocks became math nodes
    assert "$$" not in page  # no unparsed display math
    for label in ("equation-nnls", "equation-simplex", "equation-freeset"):
        assert f'id="{label}"' in page and f'href="#{label}"' in page
    for citation in ("Lawson", "Bro and S. de Jong", "Condat", "Golub and C. F. Van Loan"):
        assert citation in page, citation


@needs_sphinx
def test_own_pages_build_without_warnings(built_docs):
    _, warnings = built_docs
    # A toctree entry for a page not yet written is tolerated (reported separately).
    own = [
        line
        for line in _warning_lines(warnings)
        if any(f"docs/{page}" in line for page in OWN_PAGES)
        and "toctree contains reference to nonexisting document" not in line
        and "failed to import" not in line  # reported by the import-failure test
    ]
    assert not own, "\n".join(own)


def test_conf_falls_back_to_alabaster_without_pydata_theme(monkeypatch):
    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        if name == "pydata_sphinx_theme":
            return None
        return real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    monkeypatch.setattr(sys, "path", list(sys.path))  # conf.py prepends the root
    conf = runpy.run_path(str(DOCS / "conf.py"))
    assert conf["html_theme"] == "alabaster"
    assert "dollarmath" in conf["myst_enable_extensions"]
    assert {"numpydoc", "myst_parser", "sphinx.ext.autodoc"} <= set(conf["extensions"])


def _public_names(module_name):
    module = importlib.import_module(module_name)
    if module_name == "fastdeconv.plotting":
        return module, dir(module)  # includes the lazily loaded plots of the other pipelines
    names = getattr(module, "__all__", None) or [n for n in dir(module) if not n.startswith("_")]
    return module, names


def _public_objects(module_name):
    module, names = _public_names(module_name)
    for name in names:
        obj = getattr(module, name)
        if inspect.ismodule(obj):
            continue
        if inspect.isclass(obj) and issubclass(obj, BaseException):
            continue  # warnings and errors are raised, not called
        if inspect.isclass(obj) or inspect.isfunction(obj) or hasattr(obj, "py_func"):
            yield f"{module_name}.{name}", obj


def test_every_documented_function_and_class_has_a_runnable_example():
    missing, unimportable = [], []
    for module_name in DOCUMENTED_MODULES:
        try:
            objects = list(_public_objects(module_name))
        except ImportError as exc:
            unimportable.append(f"{module_name} ({exc})")
            continue
        for qualname, obj in objects:
            doc = inspect.getdoc(obj) or ""
            if not re.search(r"^Examples\n-{8}", doc, flags=re.M) or ">>>" not in doc:
                missing.append(qualname)
    assert not (missing or unimportable), (
        f"public names without an Examples section with >>> lines: {missing}; "
        f"documented modules that do not import: {unimportable}"
    )
