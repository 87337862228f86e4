"""The fitted calibration is kept in the user's cache and read back exactly; a damaged or
unwritable cache only costs a fit."""

from __future__ import annotations

import numpy as np
import pytest

from chromestore.simulation import model as sim_model


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CHROMESTORE_CACHE", str(tmp_path / "cache"))
    sim_model.calibration.cache_clear()
    yield tmp_path / "cache"
    sim_model.calibration.cache_clear()


def _same(a: sim_model.Calibration, b: sim_model.Calibration) -> None:
    for name in sim_model._ARRAYS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and np.array_equal(x, y), name
    assert (a.marks, a.cuts, a.n_genes) == (b.marks, b.cuts, b.n_genes)


def test_calibration_cache__read_back_equals_a_fresh_fit(cache):
    fitted = sim_model.fit_calibration()
    first = sim_model.calibration()  # fits and keeps it
    [kept] = list(cache.glob("calibration-*.npz"))
    sim_model.calibration.cache_clear()
    again = sim_model.calibration()  # read back
    _same(fitted, first)
    _same(fitted, again)
    assert list(cache.iterdir()) == [kept]  # no temporary file left


def test_calibration_cache__damaged_file_is_fitted_again_and_replaced(cache):
    sim_model.calibration()
    [kept] = list(cache.glob("calibration-*.npz"))
    kept.write_bytes(b"PK\x03\x04 not a zip")
    sim_model.calibration.cache_clear()
    _same(sim_model.calibration(), sim_model.fit_calibration())
    sim_model.calibration.cache_clear()
    with np.load(kept, allow_pickle=False) as saved:  # replaced by a whole one
        assert saved["quantiles"].shape == sim_model.calibration().quantiles.shape


def test_calibration_cache__an_unwritable_cache_only_costs_a_fit(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("CHROMESTORE_CACHE", str(blocker / "cache"))
    sim_model.calibration.cache_clear()
    try:
        _same(sim_model.calibration(), sim_model.fit_calibration())
    finally:
        sim_model.calibration.cache_clear()
