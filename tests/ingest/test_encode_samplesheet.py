"""``chromestore samplesheet encode``: the portal's metadata.tsv → a samplesheet, the
biosamples' epigenome ids, and every file skipped with its reason."""

from __future__ import annotations

import csv

import pytest
from click.testing import CliRunner

from chromestore.app.cli import main
from chromestore.errors import InputError
from chromestore.ingest.encode import encode_samplesheet, read_metadata, safe_id
from tests.encode_fixtures import write_metadata

URL = "https://www.encodeproject.org/files/{0}/@@download/{0}.{1}"


def _row(accession, target, output_type="fold change over control", **extra):
    kind = extra.pop("kind", "bigWig")
    fmt, ext = {
        "bigWig": ("bigWig", "bigWig"),
        "bed narrowPeak": ("bed", "bed.gz"),
        "bigBed narrowPeak": ("bigBed", "bigBed"),
        "tsv": ("tsv", "tsv"),
    }[kind]
    row = {
        "File accession": accession,
        "File format": fmt,
        "File type": kind,
        "Output type": output_type,
        "File assembly": "GRCh38",
        "Experiment accession": "ENCSR" + accession[5:],
        "Assay": "Histone ChIP-seq" if target else "total RNA-seq",
        "Biosample term id": "EFO:0002067",
        "Biosample term name": "K562",
        "Biosample type": "cell line",
        "Biosample organism": "Homo sapiens",
        "Experiment target": target,
        "Experiment date released": "2020-05-01",
        "Biological replicate(s)": "1, 2",
        "Technical replicate(s)": "1_1, 2_1",
        "File download URL": URL.format(accession, ext),
        "File Status": "released",
    }
    row.update(extra)
    return row


def metadata_rows() -> list[dict]:
    colon = {
        "Biosample term name": "transverse colon",
        "Biosample term id": "UBERON:0001157",
        "Biosample type": "tissue",
    }
    return [
        _row("ENCFF100AAA", "H3K4me3-human"),
        _row("ENCFF101AAA", "H3K4me3-human", **{"Biological replicate(s)": "1"}),
        _row("ENCFF102AAA", "H3K4me3-human", "signal p-value"),
        _row("ENCFF103AAA", "H3K4me3-human", **{"File assembly": "hg19"}),
        _row("ENCFF104AAA", "H3K27me3-human", **{"File Status": "archived"}),
        _row("ENCFF105AAA", "CTCF-human"),
        _row("ENCFF106AAA", "H3K27me3-human", "replicated peaks", kind="bed narrowPeak"),
        _row(
            "ENCFF107AAA",
            "",
            "gene quantifications",
            kind="tsv",
            **{"Experiment date released": "2019-02-01", "Biological replicate(s)": "1"},
        ),
        _row(
            "ENCFF108AAA",
            "",
            "gene quantifications",
            kind="tsv",
            **{"Experiment date released": "2021-03-01", "Biological replicate(s)": "1"},
        ),
        _row("ENCFF109AAA", "H3K27me3-human", "replicated peaks", kind="bigBed narrowPeak"),
        _row(
            "ENCFF200BBB", "H3K36me3-human", **colon, **{"Experiment date released": "2020-01-01"}
        ),
        _row(
            "ENCFF201BBB", "H3K36me3-human", **colon, **{"Experiment date released": "2021-01-01"}
        ),
        _row(
            "ENCFF202BBB",
            "H3K27me3-human",
            "pseudoreplicated peaks",
            kind="bed narrowPeak",
            **colon,
        ),
        _row("ENCFF203BBB", "H3K27me3-human", "replicated peaks", kind="bed narrowPeak", **colon),
    ]


@pytest.fixture
def metadata(tmp_path):
    return write_metadata(tmp_path / "metadata.tsv", metadata_rows())


def _read(path, delimiter=","):
    with open(path, newline="") as fh:
        return list(csv.reader(fh, delimiter=delimiter))


def test_encode_samplesheet__picks_replicated_then_newest_and_names_every_skip(tmp_path, metadata):
    out = tmp_path / "sheet" / "samples.csv"
    out.parent.mkdir()
    sheet = encode_samplesheet(metadata, out)
    assert _read(out) == [
        ["cell", "mark", "format", "path", "units"],
        ["K562", "", "rsem-genes", "../ENCFF108AAA.tsv", ""],
        ["K562", "H3K4me3", "bigwig", "../ENCFF100AAA.bigWig", "fold change"],
        ["transverse_colon", "H3K36me3", "bigwig", "../ENCFF201BBB.bigWig", "fold change"],
    ]
    skipped = {a: reason for a, _, reason in sheet.skipped}
    assert skipped == {
        "ENCFF101AAA": "not chosen: ENCFF100AAA for (K562, H3K4me3): it has 2 biological "
        "replicates, this 1",
        "ENCFF102AAA": "output type signal p-value, not fold change over control",
        "ENCFF103AAA": "assembly hg19, not GRCh38",
        "ENCFF104AAA": "file status archived: only released files are taken",
        "ENCFF105AAA": "target CTCF-human is not one of the marks (H3K27me3, H3K36me3, "
        "H3K4me1, H3K4me3, H3K9me3)",
        "ENCFF106AAA": "output type replicated peaks, not fold change over control",
        "ENCFF107AAA": "not chosen: ENCFF108AAA for (K562, expression): it is newer "
        "(2021-03-01 over 2019-02-01)",
        "ENCFF109AAA": "output type replicated peaks, not fold change over control",
        "ENCFF200BBB": "not chosen: ENCFF201BBB for (transverse_colon, H3K36me3): it is newer "
        "(2021-01-01 over 2020-01-01)",
        "ENCFF202BBB": "output type pseudoreplicated peaks, not fold change over control",
        "ENCFF203BBB": "output type replicated peaks, not fold change over control",
    }
    assert len(sheet.skipped) + len(sheet.rows) == len(metadata_rows())
    written = _read(out.parent / "samples.skipped.tsv", "\t")
    assert written[0] == ["file_accession", "metadata_line", "reason"]
    assert [(a, int(n)) for a, n, _ in written[1:]] == [(a, n) for a, n, _ in sheet.skipped]
    assert _read(out.parent / "samples.epigenomes.tsv", "\t") == [
        ["epigenome", "biosample_term_name", "biosample_term_id", "biosample_type"]
        + ["donor", "treatments", "experiments"],
        ["K562", "K562", "EFO:0002067", "cell line", "", "", "ENCSR108AAA,ENCSR100AAA"],
        ["transverse_colon", "transverse colon", "UBERON:0001157", "tissue", "", "", "ENCSR201BBB"],
    ]


def test_encode_samplesheet__peaks_replicated_first_then_pseudoreplicated(tmp_path, metadata):
    out = tmp_path / "peaks.csv"
    types = ("replicated peaks", "pseudoreplicated peaks")
    sheet = encode_samplesheet(metadata, out, output_types=types, expression=False)
    assert sheet.rows == [
        ("K562", "H3K27me3", "narrowpeak", "ENCFF106AAA.bed.gz", ""),
        ("transverse_colon", "H3K27me3", "narrowpeak", "ENCFF203BBB.bed.gz", ""),
    ]
    skipped = dict((a, r) for a, _, r in sheet.skipped)
    assert skipped["ENCFF109AAA"] == "file type bigbed narrowpeak has no chromestore format"
    assert skipped["ENCFF202BBB"] == (
        "not chosen: ENCFF203BBB for (transverse_colon, H3K27me3): output type replicated "
        "peaks is preferred"
    )
    assert skipped["ENCFF108AAA"] == "gene quantifications not asked for (--no-expression)"


def test_safe_id__store_names_from_biosample_names():
    assert safe_id("Peyer's patch") == "Peyer_s_patch"
    assert safe_id("  (fetal) brain ") == "fetal_brain"
    assert safe_id("GM12878") == "GM12878"


def test_read_metadata__not_a_portal_sheet_one_line(tmp_path):
    path = tmp_path / "m.tsv"
    path.write_text("File accession\tFile format\nENCFF1\tbigWig\n")
    with pytest.raises(
        InputError, match=r"m.tsv, line 1: not an ENCODE metadata.tsv: no column 'Output type'"
    ):
        read_metadata(path)
    rows = metadata_rows()[:1]
    good = write_metadata(tmp_path / "g.tsv", rows)
    good.write_text(good.read_text() + "ENCFF9\tbigWig\n")
    with pytest.raises(InputError, match=r"g.tsv, line 3: expected 59 columns, found 2"):
        read_metadata(good)


def test_cli_samplesheet_encode__prints_each_skip_and_the_summary(tmp_path, metadata):
    out = tmp_path / "samples.csv"
    result = CliRunner().invoke(main, ["samplesheet", "encode", str(metadata), "--out", str(out)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert sum(line.startswith("skipped ENCFF") for line in lines) == 11
    assert "skipped ENCFF103AAA (line 5): assembly hg19, not GRCh38" in lines
    assert f"{out}: 2 epigenomes, 2 mark files, 1 gene quantifications; 11 files skipped" in lines
    bad = CliRunner().invoke(
        main, ["samplesheet", "encode", str(out), "--out", str(tmp_path / "x.csv")]
    )
    assert bad.exit_code == 1
    assert bad.output.startswith(f"error: {out}, line 1: not an ENCODE metadata.tsv: no column")


def test_encode_samplesheet__donors_and_treatments_are_epigenomes_of_their_own(tmp_path):
    donor = {"Biosample term name": "transverse colon", "Biosample type": "tissue"}
    rows = [
        _row("ENCFF400AAA", "H3K4me3-human", **donor, **{"Donor(s)": "/human-donors/ENCDO271OUW/"}),
        _row("ENCFF401AAA", "H3K4me3-human", **donor, **{"Donor(s)": "/human-donors/ENCDO793LXB/"}),
        _row("ENCFF402AAA", "H3K4me3-human", **{"Donor(s)": "/human-donors/ENCDO000AAD/"}),
        _row(
            "ENCFF403AAA",
            "H3K4me3-human",
            **{
                "Donor(s)": "/human-donors/ENCDO000AAD/",
                "Biosample treatments": "dexamethasone",
                "Biosample treatments amount": "100 nM",
                "Biosample treatments duration": "1 hour",
            },
        ),
    ]
    out = tmp_path / "s.csv"
    sheet = encode_samplesheet(write_metadata(tmp_path / "m.tsv", rows), out)
    assert sheet.skipped == []
    assert [(cell, path) for cell, _, _, path, _ in sheet.rows] == [
        ("K562", "ENCFF402AAA.bigWig"),
        ("K562_dexamethasone_100_nM_1_hour", "ENCFF403AAA.bigWig"),
        ("transverse_colon_ENCDO271OUW", "ENCFF400AAA.bigWig"),
        ("transverse_colon_ENCDO793LXB", "ENCFF401AAA.bigWig"),
    ]
    mapping = {r[0]: r[4:6] for r in _read(tmp_path / "s.epigenomes.tsv", "\t")[1:]}
    assert mapping["transverse_colon_ENCDO793LXB"] == ["ENCDO793LXB", ""]
    assert mapping["K562_dexamethasone_100_nM_1_hour"] == [
        "ENCDO000AAD",
        "dexamethasone 100 nM 1 hour",
    ]
