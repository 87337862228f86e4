"""ENCODE's files end to end: the portal's metadata.tsv → ``samplesheet encode`` →
``ingest --genome GRCh38`` (the shipped GRCh38 annotation) of fold-change bigWigs,
replicated narrowPeaks and an RSEM gene quantification, in GRCh38 coordinates."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from chromestore import datasets, open_store
from chromestore.app.cli import main
from chromestore.bins import genome_bin_starts
from chromestore.errors import StoreError
from chromestore.genes import read_gene_bed
from chromestore.ingest import plan_ingest, run_ingest
from tests.encode_fixtures import spike_in_row, write_metadata, write_rsem
from tests.ingest.test_encode_samplesheet import _row

CHR1 = 248_956_422  # GRCh38's chr1
ALT = ("chr1_KI270706v1_random", 175_055)


def test_datasets__hg19_and_grch38_annotations_of_the_same_genes():
    assert datasets.gene_windows("hg38") == datasets.gene_windows("GRCh38")
    assert datasets.gene_windows("GRCh37") == datasets.gene_windows()
    hg19, grch38 = (
        read_gene_bed(datasets.gene_windows()),
        read_gene_bed(datasets.gene_windows("grch38")),
    )
    assert len(hg19) == 19_802 and len(grch38) == 18_950
    assert grch38["strand"].value_counts().to_dict() == {"+": 9_586, "-": 9_364}
    order = pd.Index(hg19["gene"]).get_indexer(grch38["gene"])
    assert (order >= 0).all() and (np.diff(order) > 0).all()  # the hg19 keys, in its order
    tspan6 = grch38.set_index("gene").loc["ENSG00000000003_TSPAN6"]
    assert (tspan6.chrom, tspan6.tss, tspan6.strand) == ("chrX", 100_639_991, "-")
    placed = pd.read_csv(datasets.path("gene_map_GRCh38"), sep="\t")
    assert len(placed) == 19_802
    assert placed["how"].value_counts().to_dict() == {
        "symbol": 16_343,
        "position": 2_607,
        "unmapped: symbol not in GENCODE, no transcript within 1 kb": 484,
        "unmapped: its symbol is elsewhere in GENCODE, nothing near": 368,
    }
    assert datasets.assembly("GRCh37") == "hg19" and datasets.assembly("HG38") == "GRCh38"
    with pytest.raises(KeyError, match="no shipped gene annotation for genome 'mm10'"):
        datasets.gene_windows("mm10")


def _isolated_chr1_genes(n: int) -> pd.DataFrame:
    """``n`` genes of the GRCh38 annotation on chr1, each ≥ 30 kb from any other's TSS."""
    genes = read_gene_bed(datasets.gene_windows("GRCh38"))
    chr1 = genes[genes.chrom == "chr1"].sort_values("tss")
    tss = chr1.tss.to_numpy()
    gap = np.minimum(np.diff(tss, prepend=-(10**9)), np.diff(tss, append=10**12))
    return chr1[gap >= 30_000].iloc[::40][:n]


def _bigwig(path, genes: pd.DataFrame, up: np.ndarray, down: np.ndarray) -> None:
    """Value ``up`` over the 6 kb left of each TSS and ``down`` over the 6 kb right of it
    (genome order), and a value on an alt contig the annotation lacks."""
    pyBigWig = pytest.importorskip("pyBigWig")
    bw = pyBigWig.open(str(path), "w")
    bw.addHeader([("chr1", CHR1), ALT])
    for g, u, d in zip(genes.itertuples(), up, down, strict=True):
        bw.addEntries(
            ["chr1", "chr1"],
            [g.tss - 6000, g.tss],
            ends=[g.tss, g.tss + 6000],
            values=[float(u), float(d)],
        )
    bw.addEntries([ALT[0]], [100], ends=[5000], values=[7.0])
    bw.close()


def _expected(genes: pd.DataFrame, up, down) -> np.ndarray:
    starts = genome_bin_starts(genes.tss.values, genes.strand.values, 5000, 100)
    left = np.clip(genes.tss.values[:, None] - starts, 0, 100)  # bases left of the TSS
    return ((left * up[:, None] + (100 - left) * down[:, None]) / 100).astype(np.float32)


def test_encode_metadata_to_grch38_store__files_ingested_skips_named(tmp_path, rng):
    genes = _isolated_chr1_genes(12)
    assert len(genes) == 12 and set(genes.strand) == {"+", "-"}
    up = {m: rng.integers(1, 40, 12) / 4 for m in ("H3K4me3", "H3K27me3")}
    down = {m: rng.integers(1, 40, 12) / 4 for m in ("H3K4me3", "H3K27me3")}
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    _bigwig(downloads / "ENCFF300AAA.bigWig", genes, up["H3K4me3"], down["H3K4me3"])
    _bigwig(downloads / "ENCFF301AAA.bigWig", genes, up["H3K27me3"], down["H3K27me3"])
    peaks = [
        f"chr1\t{g.tss - 150}\t{g.tss + 150}\tPeak_{i}\t1000\t.\t{5 + i}.5\t-1\t-1\t75\n"
        for i, g in enumerate(genes.iloc[:3].itertuples())
    ]
    (downloads / "ENCFF302AAA.bed.gz").write_bytes(gzip.compress("".join(peaks).encode()))
    tpm = np.round(rng.gamma(0.8, 20.0, 12), 2)
    versioned = [f"{g}.{i + 3}" for i, g in enumerate(genes.gene_id)]
    write_rsem(downloads / "ENCFF303AAA.tsv", versioned, tpm, tpm, [spike_in_row()])
    rna = {"kind": "tsv", "Biological replicate(s)": "1"}
    write_metadata(
        tmp_path / "metadata.tsv",
        [
            _row("ENCFF300AAA", "H3K4me3-human"),
            _row("ENCFF301AAA", "H3K27me3-human"),
            _row("ENCFF302AAA", "H3K4me3-human", "replicated peaks", kind="bed narrowPeak"),
            _row("ENCFF303AAA", "", "gene quantifications", **rna),
            _row("ENCFF304AAA", "H3K4me3-human", **{"File assembly": "hg19"}),
            _row("ENCFF305AAA", "H3K4me3-human", "signal p-value"),
            _row("ENCFF306AAA", "H3K27me3-human", **{"File Status": "revoked"}),
            _row("ENCFF307AAA", "CTCF-human"),
        ],
    )
    run = CliRunner().invoke
    sheet = tmp_path / "samples.csv"
    made = run(
        main,
        [
            "samplesheet",
            "encode",
            str(tmp_path / "metadata.tsv"),
            "--out",
            str(sheet),
            "--output-type",
            "fold change over control",
            "--output-type",
            "replicated peaks",
            "--files",
            str(downloads),
        ],
    )
    assert made.exit_code == 0, made.output
    assert [line.split(":")[0] for line in made.output.splitlines()[:4]] == [
        "skipped ENCFF304AAA (line 6)",
        "skipped ENCFF305AAA (line 7)",
        "skipped ENCFF306AAA (line 8)",
        "skipped ENCFF307AAA (line 9)",
    ]
    store = tmp_path / "encode.zarr"
    done = run(
        main, ["ingest", str(store), "--genome", "hg38", "--samples", str(sheet), "--workers", "0"]
    )
    assert done.exit_code == 0, done.output
    assert "expression (TPM) for 1 epigenomes: 12/18950 genes matched" in done.output
    assert "chr1_KI270706v1_random 1" in done.output  # the alt contig: skipped, counted
    ds = open_store(store)
    assert ds.attrs["genome"] == "GRCh38" and ds.sizes["gene"] == 18_950
    at = pd.Index(ds.gene.values.astype(object)).get_indexer(genes.gene)
    for mark in ("H3K4me3", "H3K27me3"):
        got = ds.signal.sel(cell="K562", mark=mark).values
        np.testing.assert_allclose(got[at], _expected(genes, up[mark], down[mark]), rtol=1e-6)
        rest = np.ones(ds.sizes["gene"], bool)
        rest[at] = False
        assert (got[rest] == 0).all()
    pm = ds.peak_max.sel(cell="K562", mark="H3K4me3").values
    np.testing.assert_array_equal(pm[at], [5.5, 6.5, 7.5] + [0.0] * 9)
    expr = ds.expression.sel(cell="K562").values
    np.testing.assert_array_equal(expr[at], tpm.astype(np.float32))
    assert ds.attrs["expression"]["K562"]["quantity"] == "TPM"
    wrong = run(main, ["ingest", str(store), "--genome", "hg19", "--samples", str(sheet)])
    assert wrong.exit_code == 1
    assert wrong.output.strip() == (
        f"error: {store}: the store's genome is GRCh38, not hg19; ingest into a store of "
        "that assembly or leave out --genome"
    )


def test_cli_ingest__no_genes_takes_the_hg19_annotation_unknown_genome_refused(tmp_path):
    run = CliRunner().invoke
    store = tmp_path / "hg19.zarr"
    made = run(main, ["ingest", str(store), "--genome", "GRCh37"])
    assert made.exit_code == 0, made.output
    ds = open_store(store)
    assert (ds.attrs["genome"], ds.sizes["gene"]) == ("hg19", 19_802)
    named = run(
        main, ["ingest", str(tmp_path / "38.zarr"), "--genes", str(datasets.gene_windows("GRCh38"))]
    )
    assert named.exit_code == 0, named.output  # the shipped GRCh38 file names its assembly
    assert open_store(tmp_path / "38.zarr").attrs["genome"] == "GRCh38"
    other = run(main, ["ingest", str(tmp_path / "mm.zarr"), "--genome", "mm10"])
    assert other.exit_code == 1
    assert other.output.strip() == (
        f"error: {tmp_path / 'mm.zarr'}: no store here and no shipped annotation for genome "
        "mm10 (there are: hg19, GRCh38); pass --genes to create one"
    )


def test_library_ingest__no_genes_takes_the_shipped_annotation_of_the_genome(tmp_path):
    """``run_ingest``/``plan_ingest`` choose the annotation as the command does."""
    plan = plan_ingest(tmp_path / "a.zarr")
    assert (plan.genes, plan.settings["genome"]) == (str(datasets.gene_windows("hg19")), "hg19")
    plan = plan_ingest(tmp_path / "b.zarr", genome="hg38")
    assert plan.genes == str(datasets.gene_windows("GRCh38"))
    assert plan.settings["genome"] == "GRCh38"
    run_ingest(tmp_path / "c.zarr", genome="GRCh38")
    ds = open_store(tmp_path / "c.zarr")
    assert (ds.attrs["genome"], ds.sizes["gene"]) == ("GRCh38", len(read_gene_bed(plan.genes)))
    with pytest.raises(StoreError, match="the store's genome is GRCh38, not hg19"):
        plan_ingest(tmp_path / "c.zarr", genome="hg19")


def test_simulated_epigenome_in_encode_shape__grch38_files_ingest_as_simulated(tmp_path):
    """A simulated epigenome emitted in GRCh38 coordinates: a fold-change bigWig per mark,
    replicated narrowPeaks, an RSEM file with versioned ids, a metadata.tsv with rows to
    skip; ``samplesheet encode`` → ``ingest --genome GRCh38`` gives back what was drawn."""
    import csv
    import shutil

    from chromestore.labels import compute_labels
    from chromestore.simulation import simulate
    from chromestore.simulation.emit import emit
    from chromestore.store import signal_units
    from tests.emit_oracle import expected_ingest

    ds = simulate(cells=["E003"], genes=150, seed=5, genome="GRCh38")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    rows, n = [], 0
    for fmt, output_type, kind in (
        ("bigwig", "fold change over control", "bigWig"),
        ("narrowpeak", "replicated peaks", "bed narrowPeak"),
    ):
        with open(emit(ds, tmp_path / fmt, fmt, seed=5)) as fh:
            for _, mark, _, path in list(csv.reader(fh))[1:]:
                accession = f"ENCFF{500 + n}SIM"
                n += 1
                ext = "bigWig" if fmt == "bigwig" else "bed.gz"
                src = tmp_path / fmt / path
                data = src.read_bytes()
                if ext == "bed.gz" and not src.name.endswith(".gz"):
                    data = gzip.compress(data)
                (downloads / f"{accession}.{ext}").write_bytes(data)
                meta = {"Biosample term name": "H1", "Biosample type": "cell line"}
                rows.append(_row(accession, f"{mark}-human", output_type, kind=kind, **meta))
                if mark == "H3K4me3" and fmt == "bigwig":  # the same file again, archived
                    rows.append(
                        _row("ENCFF999OLD", f"{mark}-human", **meta, **{"File Status": "archived"})
                    )
    expr = ds.expression.sel(cell="E003").values
    ids = [f"{g}.{i % 7 + 1}" for i, g in enumerate(ds.gene_id.values.astype(object))]
    unique = dict(zip(ids, np.round(expr, 2), strict=True))  # repeated ids share one value
    shutil.copy(
        write_rsem(
            tmp_path / "q.tsv", list(unique), np.array(list(unique.values())), np.zeros(len(unique))
        ),
        downloads / "ENCFF600SIM.tsv",
    )
    rows.append(
        _row("ENCFF600SIM", "", "gene quantifications", kind="tsv", **{"Biosample term name": "H1"})
    )
    rows.append(
        _row(
            "ENCFF601SIM", "H3K4me3-human", **{"Biosample term name": "H1", "File assembly": "hg19"}
        )
    )
    write_metadata(tmp_path / "metadata.tsv", rows)

    run = CliRunner().invoke
    sheet = tmp_path / "samples.csv"
    args = ["samplesheet", "encode", str(tmp_path / "metadata.tsv"), "--out", str(sheet)]
    args += ["--output-type", "fold change over control", "--output-type", "replicated peaks"]
    made = run(main, [*args, "--files", str(downloads)])
    assert made.exit_code == 0, made.output
    skipped = [line for line in made.output.splitlines() if line.startswith("skipped")]
    assert [s.split(" (")[0] for s in skipped] == ["skipped ENCFF999OLD", "skipped ENCFF601SIM"]
    store = tmp_path / "h1.zarr"
    done = run(
        main,
        ["ingest", str(store), "--genome", "GRCh38", "--samples", str(sheet), "--workers", "0"],
    )
    assert done.exit_code == 0, done.output
    got = open_store(store)
    keys = ds.gene.values.astype(object)
    marks = [str(m) for m in ds.mark.values]
    for mark in marks:
        want = expected_ingest(ds, "E003", mark, "bigwig", seed=5)
        have = got.signal.sel(cell="H1", mark=mark, gene=keys).values
        np.testing.assert_allclose(have, want, rtol=1e-5, atol=1e-4)
        peaks = expected_ingest(ds, "E003", mark, "narrowpeak", seed=5)
        np.testing.assert_allclose(
            got.peak_max.sel(cell="H1", mark=mark, gene=keys).values, peaks, rtol=1e-5
        )
    np.testing.assert_array_equal(
        got.expression.sel(cell="H1", gene=keys).values, np.round(expr, 2).astype(np.float32)
    )
    units = signal_units(got).sel(cell="H1").values.tolist()
    assert units == ["fold change"] * 5  # the Output type, through the samplesheet's units
    labels = compute_labels(got).label.sel(cell="H1", gene=keys).values
    rounded = np.round(expr, 2).astype(np.float32)
    np.testing.assert_array_equal(labels, rounded > np.median(rounded))
