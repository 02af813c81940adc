"""Shared fixtures: small synthetic flow sets in the release's layouts (no real data)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("COLUMNS", "200")  # Rich: keep table rows and file names on one line
# One OpenMP thread per test process (read when torch is first imported, after this line):
# the tests' models are tiny, and on a busy 2-core machine two threads per process ran the
# training tests 4x slower, not faster. Set OMP_NUM_THREADS yourself to override.
os.environ.setdefault("OMP_NUM_THREADS", "1")

SMIC_DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "megc2019-smic-flow"


@pytest.fixture(scope="session")
def tiny_rows():
    from glfnet.data.synthflow import composite_structure

    return composite_structure(seed=0, scale=0.1)


@pytest.fixture(scope="session")
def tiny_flows(tiny_rows):
    from glfnet.data.synthflow import make_flows

    return make_flows(tiny_rows, seed=0)


@pytest.fixture(scope="session")
def flat_dir(tmp_path_factory, tiny_rows, tiny_flows):
    from glfnet.data.synthflow import write_flat

    d = tmp_path_factory.mktemp("flat")
    write_flat(d, tiny_rows, tiny_flows, "htnet")
    return d


@pytest.fixture(scope="session")
def tiny_set(flat_dir):
    from glfnet.data.flowsets import load_flowset

    return load_flowset(flat_dir)


@pytest.fixture
def copy_flat(tmp_path, flat_dir):
    """A private, editable copy of the flat fixture folder."""
    import shutil

    d = tmp_path / "flat"
    shutil.copytree(flat_dir, d)
    return d
