"""Interpretation kernels: class optimisation recovers planted patterns; IG is complete."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr
from torch import nn

from chromestore import variables as V
from chromestore.analysis import interpret

MARKS = list(V.DEFAULT_MARKS)  # H3K27me3, H3K36me3, H3K4me1, H3K4me3, H3K9me3
N_BINS = 100


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny networks: one intra-op thread (the 2-core machine is shared)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def planted_network() -> tuple[nn.Module, dict[int, dict[int, range]]]:
    """A linear two-class network whose weights are +1 on planted (mark, bins), else 0."""
    planted = {
        1: {MARKS.index("H3K4me3"): range(40, 60), MARKS.index("H3K36me3"): range(50, 90)},
        0: {MARKS.index("H3K27me3"): range(0, 50), MARKS.index("H3K9me3"): range(30, 80)},
    }
    lin = nn.Linear(len(MARKS) * N_BINS, 2)
    with torch.no_grad():
        lin.weight.zero_()
        lin.bias.zero_()
        for k, marks in planted.items():
            w = lin.weight[k].view(len(MARKS), N_BINS)
            for m, bins in marks.items():
                w[m, bins.start : bins.stop] = 1.0
    return nn.Sequential(nn.Flatten(), lin), planted


def test_class_optimisation__recovers_planted_pattern():
    net, planted = planted_network()
    before = [p.clone() for p in net.parameters()]
    maps = interpret.class_optimisation(net, len(MARKS), N_BINS, steps=300, seed=3)
    norm, counts, flagged = interpret.activity(maps)
    for k, marks in planted.items():
        expected = np.zeros((len(MARKS), N_BINS), bool)
        for m, bins in marks.items():
            expected[m, bins.start : bins.stop] = True
        np.testing.assert_array_equal(norm[k] > interpret.ACTIVE_THRESHOLD, expected)
        assert counts[k].tolist() == expected.sum(1).tolist()
        assert set(np.flatnonzero(flagged[k])) == set(marks)
    # the network stayed frozen and its grad flags were restored
    for p, q in zip(net.parameters(), before, strict=True):
        assert torch.equal(p, q) and p.requires_grad


def test_activity__normalises_and_flags_above_mean():
    maps = np.zeros((1, 3, 4), np.float32)
    maps[0, 0] = [-1.0, 2.0, 4.0, 0.5]  # -> 0, .5, 1, .125: 2 active
    maps[0, 1] = [1.2, 0.0, 0.0, 0.0]  # -> .3: 1 active
    norm, counts, flagged = interpret.activity(maps)
    np.testing.assert_allclose(norm[0, 0], [0, 0.5, 1, 0.125])
    assert counts[0].tolist() == [2, 1, 0]
    assert flagged[0].tolist() == [True, False, False]  # mean count 1.0; 1 > 1.0 is False


def test_pair_counts__counts_epigenomes_with_both_marks():
    f = np.zeros((4, 2, 3), bool)
    f[:3, 1, 0] = f[:3, 1, 1] = True  # 3 cells flag marks 0 and 1 for high
    f[3, 1, 0] = True
    f[:, 0, 2] = True
    da = xr.DataArray(
        f,
        dims=(V.CELL, V.CLASS, V.MARK),
        coords={V.CLASS: list(V.CLASS_NAMES), V.MARK: ["a", "b", "c"]},
    )
    c = interpret.pair_counts(da)
    assert int(c.sel(**{V.CLASS: "high", V.MARK: "a", V.MARK2: "b"})) == 3
    assert int(c.sel(**{V.CLASS: "high", V.MARK: "a", V.MARK2: "a"})) == 4
    assert int(c.sel(**{V.CLASS: "low", V.MARK: "c", V.MARK2: "c"})) == 4
    assert interpret.top_pairs(c)["high"][0] == ("a", "b", 3)


def small_cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv1d(5, 6, 10),
        nn.ReLU(),
        nn.MaxPool1d(5),
        nn.Flatten(),
        nn.Linear(6 * 18, 16),
        nn.ReLU(),
        nn.Linear(16, 2),
    )


def test_integrated_gradients__completeness():
    net = small_cnn()
    x = np.random.default_rng(1).gamma(1.0, 2.0, (8, 5, N_BINS)).astype(np.float32)
    attr = interpret.integrated_gradients(net, x, n_steps=200)
    assert attr.shape == x.shape
    expected = interpret.margin(net, x) - interpret.margin(net, np.zeros_like(x))
    assert np.abs(expected).min() > 1e-3  # a real difference to explain
    np.testing.assert_allclose(attr.sum((1, 2)), expected, rtol=1e-2, atol=1e-3)


def test_saliency__equals_autograd_gradient():
    net = small_cnn(2)
    x = torch.rand(3, 5, N_BINS)
    sal = interpret.saliency(net, x)
    xg = x.clone().requires_grad_(True)
    out = net(xg)
    (out[:, 1] - out[:, 0]).sum().backward()
    np.testing.assert_allclose(sal, xg.grad.abs().numpy(), rtol=1e-5, atol=1e-7)


def test_feature_map_per_bin__mean_relu_conv_at_window_centre():
    net = small_cnn()
    conv = net[0]
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.zero_()
        conv.weight[0, 0, :] = 1.0  # filter 0 sums mark 0 over its window
    x = np.zeros((2, 5, N_BINS), np.float32)
    x[:, 0, 20] = 6.0  # one hot bin on mark 0
    fm = interpret.feature_map_per_bin(net, x)
    assert np.isnan(fm[:5]).all() and np.isnan(fm[96:]).all()
    # windows starting at 11..20 contain bin 20 -> centre bins 16..25 hold 6 / 6 filters = 1
    np.testing.assert_allclose(fm[16:26], 1.0)
    assert np.nansum(fm) == pytest.approx(10.0)


def test_per_class_mean():
    vals = np.arange(12, dtype=np.float32).reshape(4, 3)
    out = interpret.per_class_mean(vals, np.array([0, 1, 1, 0]))
    np.testing.assert_allclose(out, [[4.5, 5.5, 6.5], [4.5, 5.5, 6.5]])
    out = interpret.per_class_mean(vals, np.array([1, 1, 1, 1]))
    assert np.isnan(out[0]).all()
