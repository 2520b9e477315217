"""Shared test configuration: hypothesis profiles and the real datasets.

The real datasets live in ``../shared/data`` beside the project root (override
with the ``FASTDECONV_DATA`` environment variable).  Tests that need them are
skipped, with a reason, only when that folder is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Derandomised in CI so a red run is reproducible; the dev profile explores more.
settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    max_examples=60,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "dev", deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("FASTDECONV_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """Folder of the shared real datasets; skip the test when it is absent."""
    if not DATA_DIR.is_dir():
        pytest.skip(f"shared datasets not found at {DATA_DIR} (set FASTDECONV_DATA)")
    return DATA_DIR


@pytest.fixture(scope="session")
def dataset(data_dir):
    """Return a loader ``dataset(name)`` for one folder of the shared datasets.

    The loader returns :func:`fastdeconv.io.read_dataset` of that folder and
    caches it for the session.
    """
    from fastdeconv.io import read_dataset

    cache = {}

    def load(name):
        if name not in cache:
            folder = data_dir / name
            if not folder.is_dir():
                pytest.skip(f"dataset {name} not found in {data_dir}")
            cache[name] = read_dataset(folder)
        return cache[name]

    return load
