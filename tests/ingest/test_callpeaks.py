"""MACS3 peak calling (``chromestore call-peaks``) on simulated reads, and the peaks' ingestion."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from click.testing import CliRunner

import chromestore
from chromestore.app.cli import main
from chromestore.ingest.callpeaks import Reads, callpeak_args, read_reads_sheet


def test_callpeak_args__narrow_broad_and_control(tmp_path):
    r = Reads("E003", "H3K4me3", "tagalign", tmp_path / "r.tagAlign.gz")
    args = callpeak_args(
        r, [], tmp_path, broad=False, gsize="hs", qvalue=0.05, extsize=200, build_model=False
    )
    assert args[:5] == ["callpeak", "-t", str(r.path), "-f", "BED"]
    assert "--nomodel" in args and "--broad" not in args and "-c" not in args
    bam = Reads("E003", "H3K4me3", "bam", tmp_path / "r.bam")
    args = callpeak_args(
        bam,
        [tmp_path / "in.bam"],
        tmp_path,
        broad=True,
        gsize="hs",
        qvalue=0.01,
        extsize=200,
        build_model=True,
    )
    assert args[args.index("-f") + 1] == "BAM" and args[args.index("-c") + 1].endswith("in.bam")
    assert "--broad" in args and "--nomodel" not in args


def test_read_reads_sheet__rejects_non_read_formats(tmp_path):
    (tmp_path / "a.bw").write_text("")
    sheet = tmp_path / "s.csv"
    sheet.write_text("cell,mark,format,path\nE003,H3K4me3,bigwig,a.bw\n")
    with pytest.raises(Exception, match="call-peaks reads"):
        read_reads_sheet(sheet)


@pytest.mark.slow
def test_call_peaks__simulated_reads_to_peak_max(tmp_path):
    pytest.importorskip("MACS3", reason="the 'peaks' extra (macs3) is not installed")
    runner = CliRunner()
    reads = tmp_path / "reads"
    sim = tmp_path / "sim.zarr"
    out = runner.invoke(
        main,
        [
            "--workers",
            "0",
            "simulate",
            str(sim),
            "--cells",
            "E003,E112",
            "--genes",
            "60",
            "--emit",
            str(reads),
            "--format",
            "tagalign",
        ],
    )
    assert out.exit_code == 0, out.output
    peaks = tmp_path / "peaks"
    out = runner.invoke(main, ["call-peaks", str(reads / "samplesheet.csv"), str(peaks)])
    assert out.exit_code == 0, out.output
    with open(peaks / "samplesheet.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 * 5 and {r["format"] for r in rows} == {"narrowpeak"}
    # ingest the peaks into the simulated store: peak_max is filled from MACS3's signalValue
    before = chromestore.open_store(sim).peak_max.values
    assert np.isnan(before).all()
    out = runner.invoke(
        main,
        [
            "--workers",
            "0",
            "ingest",
            str(sim),
            "--samples",
            str(peaks / "samplesheet.csv"),
            "--no-progress",
        ],
    )
    assert out.exit_code == 0, out.output
    ds = chromestore.open_store(sim)
    pm = ds.peak_max.values  # (cell, gene, mark)
    # genes without a peak in their window read 0 (no NaN), called peaks a positive signalValue
    assert np.isfinite(pm).all()
    assert 0.1 < (pm > 0).mean() < 1
    # peaks follow the reads: windows with a called peak hold more reads than those without
    sig = ds.signal.max("bin").values  # (cell, gene, mark)
    for c in range(2):
        for m in range(5):
            peaked = pm[c, :, m] > 0
            if 0 < peaked.sum() < len(peaked):
                assert sig[c, peaked, m].mean() > sig[c, ~peaked, m].mean()
    k4 = pm[:, :, list(ds.mark.values).index("H3K4me3")]
    assert (k4 > 0).any(axis=1).all()  # every cell has H3K4me3 peaks
    # broad peaks with a control (here E003's H3K36me3 reads stand in for input DNA)
    from chromestore.formats.peaks import read_peaks

    broad = tmp_path / "broad"
    control = (
        reads
        / next(
            r
            for r in csv.DictReader(open(reads / "samplesheet.csv"))
            if r["cell"] == "E003" and r["mark"] == "H3K36me3"
        )["path"]
    )
    out = runner.invoke(
        main,
        [
            "call-peaks",
            str(reads / "samplesheet.csv"),
            str(broad),
            "--broad",
            "--control",
            str(control),
        ],
    )
    assert out.exit_code == 0, out.output
    with open(broad / "samplesheet.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 10 and {r["format"] for r in rows} == {"broadpeak"}
    assert (
        sum(len(v[0]) for r in rows for v in read_peaks(broad / r["path"], "broadpeak").values())
        > 0
    )


def test_cli_call_peaks__names_the_extra_when_macs3_is_missing(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "MACS3" else real(name, *a)
    )
    sheet = tmp_path / "s.csv"
    sheet.write_text("cell,mark,format,path\n")
    out = CliRunner().invoke(main, ["call-peaks", str(sheet), str(tmp_path / "out")])
    assert out.exit_code == 1
    assert "chromestore[peaks]" in out.output and "MACS3" in out.output
