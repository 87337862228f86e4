"""Fixtures shared by the store's tests."""

from __future__ import annotations

import shutil

import pytest

import chromestore

#: genes per chunk of :func:`small_store`'s store (3 chunks per cell)
CHUNK = 64


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A simulated store: 3 cells × 150 genes, gene chunks of 64 (3 per cell)."""
    path = tmp_path_factory.mktemp("small") / "s.zarr"
    chromestore.simulate(str(path), cells=3, genes=150, seed=2, gene_chunk=CHUNK)
    return path


@pytest.fixture
def store(pristine, tmp_path):
    """A copy of :func:`pristine` of the test's own."""
    path = tmp_path / "s.zarr"
    shutil.copytree(pristine, path)
    return path
