"""The fitted calibration is kept in the user's cache and read back exactly; a damaged or
unwritable cache only costs a fit."""

from __future__ import annotations

import numpy as np
import pytest

from chromestore.simulation import model as M


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CHROMESTORE_CACHE", str(tmp_path / "cache"))
    M.calibration.cache_clear()
    yield tmp_path / "cache"
    M.calibration.cache_clear()


def _same(a: M.Calibration, b: M.Calibration) -> None:
    for name in M._ARRAYS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and np.array_equal(x, y), name
    assert (a.marks, a.cuts, a.n_genes) == (b.marks, b.cuts, b.n_genes)


def test_calibration_cache__read_back_equals_a_fresh_fit(cache):
    fitted = M.fit_calibration()
    first = M.calibration()  # fits and keeps it
    [kept] = list(cache.glob("calibration-*.npz"))
    M.calibration.cache_clear()
    again = M.calibration()  # read back
    _same(fitted, first)
    _same(fitted, again)
    assert list(cache.iterdir()) == [kept]  # no temporary file left


def test_calibration_cache__damaged_file_is_fitted_again_and_replaced(cache):
    M.calibration()
    [kept] = list(cache.glob("calibration-*.npz"))
    kept.write_bytes(b"PK\x03\x04 not a zip")
    M.calibration.cache_clear()
    _same(M.calibration(), M.fit_calibration())
    M.calibration.cache_clear()
    with np.load(kept, allow_pickle=False) as saved:  # replaced by a whole one
        assert saved["quantiles"].shape == M.calibration().quantiles.shape


def test_calibration_cache__an_unwritable_cache_only_costs_a_fit(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("CHROMESTORE_CACHE", str(blocker / "cache"))
    M.calibration.cache_clear()
    try:
        _same(M.calibration(), M.fit_calibration())
    finally:
        M.calibration.cache_clear()
