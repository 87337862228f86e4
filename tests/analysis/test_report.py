"""The HTML report renders in headless Chromium: not blank, no broken images, numbers on disk."""

from __future__ import annotations

import base64
import io
import json
import re
import subprocess

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from PIL import Image

from chromestore import variables as V
from chromestore.analysis import interpret
from chromestore.analysis import metrics as M
from chromestore.analysis import report as html_report
from tests.analysis.test_metrics import make_run
from tests.cluster_fixtures import CHROMIUM_FLAGS, chromium, stop

CELLS = ("E003", "E004", "E005", "E116", "E123")
N_BINS = 100


def interpretation(metrics: xr.Dataset, rng: np.random.Generator) -> xr.Dataset:
    """Interpretation variables in the layout analysis writes (values from random maps)."""
    marks = list(V.DEFAULT_MARKS)
    raw = rng.normal(0, 1, (len(CELLS), 2, len(marks), N_BINS)).astype(np.float32)
    raw[:, 1, marks.index("H3K4me3"), 40:60] += 3
    norm, counts, flagged = interpret.activity(raw)
    cm = (V.CELL, V.CLASS, V.MARK)
    coords = {
        V.CLASS: list(V.CLASS_NAMES),
        V.MARK: marks,
        V.BIN: np.arange(N_BINS),
        "bin_offset": (V.BIN, np.arange(-5000, 5000, 100)),
    }
    out = metrics.assign_coords(coords).assign(
        classopt_map=(cm + (V.BIN,), norm),
        classopt_active_bins=(cm, counts),
        classopt_flagged=(cm, flagged),
        integrated_gradients=(cm + (V.BIN,), rng.normal(0, 1, raw.shape).astype(np.float32)),
        saliency=(cm + (V.BIN,), np.abs(rng.normal(0, 1, raw.shape)).astype(np.float32)),
        feature_map_bin=((V.CELL, V.BIN), rng.random((len(CELLS), N_BINS)).astype(np.float32)),
        svmbin_auc_curve=((V.BIN,), 0.5 + 0.3 * np.exp(-(((np.arange(N_BINS) - 50) / 15) ** 2))),
        attention_class=(
            cm + (V.BIN,),
            rng.dirichlet(np.ones(N_BINS), raw.shape[:3]).astype(np.float32),
        ),
    )
    return out.assign(classopt_pair_count=interpret.pair_counts(out.classopt_flagged))


def explained_gene() -> dict:
    marks = list(V.DEFAULT_MARKS)
    return {
        "gene": "ENSG00000196092_PAX5",
        "marks": marks,
        "bin_offset": list(range(-5000, 5000, 100)),
        "cells": [
            {
                "cell": "E003",
                "label": 0,
                "deepchrome_probability": 0.2,
                "integrated_gradients": np.linspace(-1, 1, 5 * N_BINS).reshape(5, N_BINS).tolist(),
                "shallowchrome": {
                    "pattern": dict(zip(marks, [-1.0, 0.3, 0.2, 0.5, -0.4], strict=True)),
                    "pvalue": dict(zip(marks, [0.001, 0.2, 0.5, 0.01, 0.03], strict=True)),
                    "bias": -0.2,
                    "probability": 0.3,
                },
            },
            {
                "cell": "E116",
                "label": 1,
                "deepchrome_probability": 0.9,
                "integrated_gradients": None,
                "shallowchrome": None,
            },
        ],
    }


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    rng = np.random.default_rng(0)
    run = make_run(
        rng, models=("deepchrome", "shallowchrome", "svm-bin", "rf-bestbin"), cells=CELLS, repeats=2
    )
    metrics = interpretation(M.compute_metrics(run), rng)
    out = tmp_path_factory.mktemp("report")
    path = html_report.write_report(run, metrics, out, name="test", explained=[explained_gene()])
    return path, metrics


def _chromium(args: list[str], url: str, profile) -> tuple[bytes, object]:
    """Run headless Debian chromium on ``url``; returns (stdout, screenshot path or None)."""
    exe = chromium()
    if exe is None:
        pytest.skip("Debian chromium is not installed (apt-get install -y chromium)")
    proc = subprocess.Popen(
        [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, url],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=300)
    finally:
        stop(proc)
    shot = next((a.split("=", 1)[1] for a in args if a.startswith("--screenshot=")), None)
    if shot is not None:
        from pathlib import Path

        assert Path(shot).exists(), "chromium wrote no screenshot"
        shot = Path(shot)
    return out, shot


def _img_sources(page: str) -> list[str]:
    return re.findall(r'<img src="([^"]+)"', page)


def test_report__images_decode_and_numbers_written(report):
    path, metrics = report
    page = path.read_text()
    srcs = _img_sources(page)
    # AUC bars, distribution, class maps, active bins, pairs, bins, IG, saliency, attention,
    # one explained gene
    assert len(srcs) == 10
    for src in srcs:
        assert src.startswith("data:image/png;base64,")
        img = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
        img.load()
        assert img.width > 300 and img.height > 150
    assert "http://" not in page and "https://" not in page  # nothing fetched from a network
    data = path.parent / "data"
    recs = json.loads((data / "metrics.json").read_text())
    assert len(recs) == 4 * len(CELLS)
    per_cell = pd.read_csv(data / "metrics_per_cell.csv")
    dc = per_cell[(per_cell.model == "deepchrome") & (per_cell.cell == "E116")].iloc[0]
    expected = float(metrics.stat_auroc.sel(model="deepchrome", cell="E116").mean())
    assert dc.auroc == pytest.approx(expected, abs=1e-6)
    pairs = pd.read_csv(data / "classopt_pair_count.csv")
    assert len(pairs) == 2 * 5 * 5
    summary = pd.read_csv(data / "summary.csv")
    assert set(summary.model) == {"deepchrome", "shallowchrome", "svm-bin", "rf-bestbin"}
    for name in ("deepchrome", "rf-bestbin", "H3K4me3", "PAX5", "E123"):
        assert name in page


def test_report__renders_in_headless_chromium(report, tmp_path):
    path, _ = report
    shot = _chromium(
        ["--window-size=1280,2000", f"--screenshot={tmp_path / 'shot.png'}"],
        path.as_uri(),
        tmp_path / "profile",
    )[1]
    img = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert img.shape == (2000, 1280)
    non_white = (img < 235).mean()
    assert img.std() > 20 and non_white > 0.05, (img.std(), non_white)

    # the browser itself decodes every image: a probe copy reports naturalWidth == 0 ones
    probe = path.with_name("probe.html")
    probe.write_text(
        path.read_text().replace(
            "</body>",
            "<script>window.addEventListener('load',()=>{const b=[...document.images]"
            ".filter(i=>!i.complete||i.naturalWidth===0).length;const d=document.createElement"
            "('div');d.id='probe';d.textContent='images='+document.images.length+' broken='+b;"
            "document.body.appendChild(d);});</script></body>",
        )
    )
    dom, _ = _chromium(
        ["--virtual-time-budget=4000", "--dump-dom"], probe.as_uri(), tmp_path / "p2"
    )
    found = re.search(r'id="probe">images=(\d+) broken=(\d+)<', dom.decode())
    assert found, dom.decode()[-500:]
    assert (int(found.group(1)), int(found.group(2))) == (10, 0)


def test_report__template_escapes_what_it_is_given(tmp_path):
    run = make_run(np.random.default_rng(1), models=("deepchrome",), cells=CELLS[:2], repeats=1)
    metrics = M.compute_metrics(run, published=None)  # no published AUC: the note says why
    metrics.attrs["published_note"] = "Signal from <lab> & co."
    path = html_report.write_report(run, metrics, tmp_path / "rep", name="<script>x</script>")
    page = path.read_text()
    assert "<script>" not in page and "&lt;script&gt;x&lt;/script&gt;" in page
    assert "<title>chromestore report &lt;script&gt;" in page
    assert "Signal from &lt;lab&gt; &amp; co." in page
    # sections with nothing to show are left out; the files are listed
    assert "class-optimisation" not in page and "Explained genes" not in page
    assert '<li><a href="data/summary.csv">summary.csv</a></li>' in page


def test_report__an_earlier_report_is_recognised(tmp_path, report):
    from chromestore.errors import StoreError

    path, _ = report
    assert html_report.is_report(path.parent) and not html_report.is_report(tmp_path)
    html_report.check_report_dir(tmp_path / "absent", overwrite=False)
    with pytest.raises(StoreError, match="a chromestore report is already there"):
        html_report.check_report_dir(path.parent, overwrite=False)
    html_report.check_report_dir(path.parent, overwrite=True)
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(StoreError, match="holds no chromestore report"):
        html_report.check_report_dir(tmp_path, overwrite=True)
