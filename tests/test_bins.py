"""The bins around the TSS as models see them (``chromestore.bins.WindowLayout``)."""

from __future__ import annotations

import numpy as np

import chromestore
from chromestore.bins import WindowLayout


def test_window_layout__of_a_store_names_the_bins_within_a_distance_of_the_tss():
    ds = chromestore.simulate(cells=1, genes=8, seed=0)
    layout = WindowLayout.of(ds)
    assert (layout.window, layout.bin_size, layout.n_bins) == (5000, 100, 100)
    np.testing.assert_array_equal(layout.within(1000), np.arange(40, 60))
    np.testing.assert_array_equal(layout.within(5000), np.arange(100))
    assert layout.within(50).size == 0  # no 100 bp bin lies within ±50 bp
    offsets = np.asarray(layout.bin_offset)[layout.within(300)]
    assert offsets.min() == -300 and offsets.max() + layout.bin_size == 300


def test_window_layout__from_offsets_reads_window_and_bin_size_off_them():
    layout = WindowLayout.from_offsets(range(-2000, 2000, 200))
    assert (layout.window, layout.bin_size, layout.n_bins) == (2000, 200, 20)
    np.testing.assert_array_equal(layout.within(400), [8, 9, 10, 11])
    given = WindowLayout.from_offsets(range(-2000, 2000, 200), window=2000, bin_size=200)
    assert given == layout
