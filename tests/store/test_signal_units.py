"""Signal units: each (cell, mark) records what its values are (``signal_units``), written
with the data; stores made before the variable read theirs from the provenance."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

import chromestore
from chromestore import store as S
from chromestore.app.cli import main
from chromestore.errors import InputError
from chromestore.ingest.samplesheet import read_samplesheet
from chromestore.store import records
from chromestore.store.cells import write_cell
from tests.store.test_dataset import FROZEN_V2


def test_simulated_store__every_signal_is_reads_in_variable_provenance_and_info(store):
    ds = chromestore.open_store(store)
    assert ds.signal_units.dims == ("cell", "mark")
    assert set(ds.signal_units.values.ravel().tolist()) == {"reads"}
    assert set(records.signal_units(ds).values.ravel().tolist()) == {"reads"}
    assert {p["units"] for p in records.provenance(ds).values()} == {"reads"}
    facts = json.loads(CliRunner().invoke(main, ["info", str(store), "--format", "json"]).output)
    assert facts["signal_units"]["E003"] == dict.fromkeys(ds.mark.values.tolist(), "reads")
    text = CliRunner().invoke(main, ["info", str(store)]).output
    assert "signal units: reads (15 cell × mark)" in text
    got = CliRunner().invoke(main, ["query", str(store), "--gene", "TSPAN6", "--cell", "E004"])
    assert sum(line.endswith("(reads)") for line in got.output.splitlines()) == 5


def test_in_memory_simulation__units_are_reads():
    ds = chromestore.simulate(cells=2, genes=40)
    assert set(records.signal_units(ds).values.ravel().tolist()) == {"reads"}


def test_write_cell__units_written_with_the_data_other_marks_keep_theirs(store):
    values = np.full((150, 100), 2.5, np.float32)
    prov = {"file": "x.bigWig", "format": "bigwig", "units": "fold change"}
    write_cell(store, "E004", {"H3K4me3": values}, records={"signal": {"H3K4me3": prov}})
    units = records.signal_units(chromestore.open_store(store))
    assert units.sel(cell="E004", mark="H3K4me3").item() == "fold change"
    assert units.sel(cell="E004", mark="H3K27me3").item() == "reads"
    assert units.sel(cell="E003", mark="H3K4me3").item() == "reads"
    # a new epigenome: '' (nothing written) but for the marks written with it
    write_cell(
        store, "NEW1", {"H3K9me3": values}, records={"signal": {"H3K9me3": prov}}, append=True
    )
    ds = chromestore.open_store(store)
    assert ds.signal_units.sel(cell="NEW1").values.tolist() == ["", "", "", "", "fold change"]
    assert S.verify_store(store).ok


def test_store_made_before_units__reads_them_from_provenance_and_still_grows(store, tmp_path):
    shutil.rmtree(store / "signal_units")  # as a store created before the variable
    S.consolidate(store)
    values = np.ones((150, 100), np.float32)
    bw = {"file": "x.bigWig", "format": "bigwig"}  # provenance without units: a bigWig's
    write_cell(store, "NEW1", {"H3K4me3": values}, records={"signal": {"H3K4me3": bw}}, append=True)
    ds = chromestore.open_store(store)
    assert "signal_units" not in ds.variables
    units = records.signal_units(ds)
    assert units.sel(cell="NEW1", mark="H3K4me3").item() == "mean value"
    assert units.sel(cell="NEW1", mark="H3K27me3").item() == ""
    assert units.sel(cell="E003", mark="H3K4me3").item() == "reads"  # provenance's units
    old = records.signal_units(chromestore.open_store(FROZEN_V2))  # format 2, format "test"
    assert old.values.tolist() == [["", "", "", "reads", ""], [""] * 5]
    assert (
        "signal units: reads (1 cell × mark)"
        in CliRunner().invoke(main, ["info", str(FROZEN_V2)]).output
    )


def test_samplesheet_units_column__named_units_kept_unknown_or_misplaced_refused(tmp_path):
    for name in ("a.bigWig", "b.narrowPeak"):
        (tmp_path / name).write_text("x")
    sheet = tmp_path / "s.csv"
    sheet.write_text("cell,mark,format,path,units\nE1,H3K4me3,,a.bigWig,-log10 p\n")
    (sample,) = read_samplesheet(sheet)
    assert (sample.units, sample.signal_units) == ("-log10 p", "-log10 p")
    sheet.write_text("cell,mark,format,path\nE1,H3K4me3,,a.bigWig\n")
    assert read_samplesheet(sheet)[0].signal_units == "mean value"
    sheet.write_text("cell,mark,format,path,units\nE1,H3K4me3,,a.bigWig,log fold\n")
    with pytest.raises(InputError) as e:
        read_samplesheet(sheet)
    assert str(e.value) == (
        f"{sheet}, line 2: units 'log fold' is not one of reads, reads per million, fold "
        "change, -log10 p, mean value (or empty)"
    )
    sheet.write_text("cell,mark,format,path,units\nE1,H3K4me3,,b.narrowPeak,fold change\n")
    with pytest.raises(InputError, match="line 2: format narrowpeak fills peak_max: units are"):
        read_samplesheet(sheet)
