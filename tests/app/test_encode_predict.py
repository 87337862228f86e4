"""Acceptance (issue 24): an ENCODE-shaped epigenome (GRCh38 fold-change bigWigs, replicated
narrowPeaks, an RSEM file with versioned ids, the portal's metadata.tsv with rows to skip) →
``samplesheet encode`` → ``ingest`` → ``predict`` with a model trained on an hg19 REMC-style
store of read counts: it works, each skipped row is named, and its AUROC is that of the same
epigenome ingested in hg19 as reads; a model without per-epigenome normalisation refuses
the fold-change signal in one line."""

from __future__ import annotations

import csv
import gzip
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from sklearn.metrics import roc_auc_score

import chromestore
from chromestore import datasets
from chromestore.app.cli import main
from chromestore.labels import compute_labels
from chromestore.simulation.emit import emit
from tests.encode_fixtures import write_metadata, write_rsem
from tests.ingest.test_encode_samplesheet import _row

#: genes of both shipped annotations (their keys are shared), few enough to run fast
N_GENES = 600
TRAINED, PREDICTED = "E003", "E116"


def _cli(*args: str) -> str:
    res = CliRunner().invoke(main, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    return res.output


def _annotation(genome: str, keys: list[str], path) -> str:
    """The shipped ``genome`` annotation's lines of ``keys`` (BED6), as a file."""
    with gzip.open(datasets.gene_windows(genome), "rt") as fh:
        lines = [line for line in fh if line.split("\t")[3] in set(keys)]
    path.write_text("".join(lines))
    return str(path)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A DeepChrome of E003 (hg19 reads) with and without quantile normalisation, exported;
    E116's genes emitted twice: in ENCODE's GRCh38 shape and as hg19 tagAligns."""
    tmp = tmp_path_factory.mktemp("encode")
    grch38 = pd.read_csv(datasets.gene_windows("GRCh38"), sep="\t", header=None)
    keys = [str(k) for k in grch38[3].iloc[:N_GENES]]
    train = tmp / "remc.zarr"
    chromestore.simulate(train, cells=[TRAINED], genes=keys, seed=1)
    for run, extra in (("q", ["--normalise", "quantile"]), ("plain", [])):
        _cli("train", train, "--model", "deepchrome", "--cells", TRAINED, "--split", "random",
             "--epochs", "12", "--run", run, "--workers", "0", "--mode", "loop", *extra)  # fmt: skip
        _cli("export", train, "--run", run, "--out", tmp / f"model-{run}")
    return tmp, keys


def _encode_download(tmp, keys) -> tuple:
    """E116 in GRCh38 as the portal's batch download: fold-change bigWigs, replicated
    narrowPeaks, RSEM gene quantifications (versioned ids), metadata.tsv with rows to skip."""
    ds = chromestore.simulate(cells=[PREDICTED], genes=keys, seed=5, genome="GRCh38")
    downloads = tmp / "downloads"
    downloads.mkdir()
    rows, n = [], 0
    meta = {"Biosample term name": "H1", "Biosample type": "cell line"}
    for fmt, output_type, kind, ext in (
        ("bigwig", "fold change over control", "bigWig", "bigWig"),
        ("narrowpeak", "replicated peaks", "bed narrowPeak", "bed.gz"),
    ):
        sheet = emit(ds, tmp / fmt, fmt, seed=5)
        with open(sheet) as fh:
            for _, mark, _, path in list(csv.reader(fh))[1:]:
                accession = f"ENCFF{500 + n}SIM"
                n += 1
                data = (tmp / fmt / path).read_bytes()
                if ext == "bed.gz" and not path.endswith(".gz"):
                    data = gzip.compress(data)
                (downloads / f"{accession}.{ext}").write_bytes(data)
                rows.append(_row(accession, f"{mark}-human", output_type, kind=kind, **meta))
    expr = np.round(ds.expression.sel(cell=PREDICTED).values, 2)
    ids = [f"{g}.{i % 7 + 1}" for i, g in enumerate(ds.gene_id.values.astype(object))]
    unique = dict(zip(ids, expr, strict=True))
    tpm = np.array(list(unique.values()))
    rsem = write_rsem(tmp / "q.tsv", list(unique), tpm, np.zeros(len(tpm)))
    shutil.copy(rsem, downloads / "ENCFF600SIM.tsv")
    rows.append(_row("ENCFF600SIM", "", "gene quantifications", kind="tsv", **meta))
    rows.append(_row("ENCFF601SIM", "H3K4me3-human", **meta, **{"File assembly": "hg19"}))
    rows.append(_row("ENCFF602SIM", "H3K4me3-human", **meta, **{"File Status": "archived"}))
    rows.append(_row("ENCFF603SIM", "CTCF-human", **meta))
    write_metadata(downloads / "metadata.tsv", rows)  # where the batch download puts it
    return downloads, rsem


def _auroc(store, cell: str, csv_path) -> float:
    labels = compute_labels(chromestore.open_store(store))
    valid = labels.label_valid.sel(cell=cell).values
    truth = pd.Series(labels.label.sel(cell=cell).values[valid], labels.gene.values[valid])
    scores = pd.read_csv(csv_path).set_index("gene")["score"]
    return roc_auc_score(truth.values.astype(int), scores.loc[truth.index].values)


def test_encode_epigenome__hg19_reads_model_predicts_grch38_fold_change_as_its_reads(world):
    tmp, keys = world
    downloads, rsem = _encode_download(tmp, keys)
    sheet = tmp / "samples.csv"
    made = _cli("samplesheet", "encode", downloads / "metadata.tsv", "--out", sheet,
                "--output-type", "fold change over control", "--output-type",
                "replicated peaks")  # fmt: skip
    skipped = [line.split(":")[0] for line in made.splitlines() if line.startswith("skipped")]
    assert skipped == [
        "skipped ENCFF601SIM (line 13)",
        "skipped ENCFF602SIM (line 14)",
        "skipped ENCFF603SIM (line 15)",
    ]
    encode = tmp / "encode.zarr"
    genes38 = _annotation("GRCh38", keys, tmp / "genes38.bed")
    _cli("ingest", encode, "--genome", "GRCh38", "--genes", genes38, "--samples", sheet,
         "--workers", "0")  # fmt: skip
    ds = chromestore.open_store(encode)
    assert ds.attrs["genome"] == "GRCh38"
    assert set(ds.signal_units.sel(cell="H1").values.tolist()) == {"fold change"}

    # the reads-trained model without normalisation: refused, one line
    refused = CliRunner().invoke(
        main, ["predict", str(encode), "--model-dir", str(tmp / "model-plain"), "--cells", "H1"]
    )
    assert refused.exit_code == 1
    assert refused.output == (
        "error: epigenome H1: its H3K27me3 signal is fold change, model 'deepchrome' was "
        "trained on reads; train the model with --normalise quantile (per-epigenome "
        "normalisation), or ingest H1 as reads\n"
    )
    # with quantile normalisation: predicted, gene by gene across assemblies, both ids kept
    out = _cli("predict", encode, "--model-dir", tmp / "model-q", "--cells", "H1",
               "--output", tmp / "grch38.csv")  # fmt: skip
    assert (
        f"model of hg19 on a GRCh38 store: genes matched by their keys, {N_GENES} in both; "
        f"{19_802 - N_GENES:,} of the hg19 annotation's genes are not in the store, 0 of the "
        "store's not in the hg19 annotation"
    ) in out
    table = pd.read_csv(tmp / "grch38.csv", keep_default_na=False)
    assert list(table.columns) == ["cell", "gene", "hg19_gene", "GRCh38_gene", "score", "label"]
    assert len(table) == N_GENES and (table.gene == table.hg19_gene).all()
    placed = pd.read_csv(datasets.path("gene_map_GRCh38"), sep="\t").set_index("gene")
    assert (table.GRCh38_gene == placed.gencode_gene.loc[table.gene].values).all()
    renamed = table[table.GRCh38_gene != table.gene.str.split("_", n=1).str[1]]
    assert len(renamed) > 0  # genes placed on a GENCODE gene of another name keep both

    # the same epigenome ingested in hg19 as read counts (tagAlign), the same RSEM file
    hg19 = chromestore.simulate(cells=[PREDICTED], genes=keys, seed=5)
    reads = emit(hg19, tmp / "tagalign", "tagalign", seed=5)
    with open(reads) as fh:
        lines = fh.read().splitlines()
    lines.append(f"H1,,rsem-genes,{rsem}")
    (tmp / "tagalign" / "samplesheet.csv").write_text(
        "\n".join(line.replace(PREDICTED, "H1", 1) for line in lines) + "\n"
    )
    remc = tmp / "reads.zarr"
    _cli("ingest", remc, "--genes", _annotation("hg19", keys, tmp / "genes19.bed"),
         "--samples", reads, "--workers", "0")  # fmt: skip
    _cli("predict", remc, "--model-dir", tmp / "model-q", "--cells", "H1", "--output",
         tmp / "hg19.csv")  # fmt: skip
    as_encode, as_reads = (
        _auroc(encode, "H1", tmp / "grch38.csv"),
        _auroc(remc, "H1", tmp / "hg19.csv"),
    )
    print(f"AUROC of E116: GRCh38 fold change {as_encode:.4f}, hg19 reads {as_reads:.4f}")
    assert as_reads > 0.75
    assert abs(as_encode - as_reads) <= 0.03


def test_export__records_units_and_normalisation_in_both_files(world):
    from safetensors import safe_open

    tmp, _ = world
    spec = json.loads((tmp / "model-q" / "model.json").read_text())
    assert spec["format_version"] == 3 and spec["input_transform"] == "raw"
    assert spec["signal_units"] == dict.fromkeys(chromestore.DEFAULT_MARKS, "reads")
    q = spec["quantile_normalisation"]
    assert (q["kind"], q["levels"], len(q["reference"])) == ("quantile", 101, 5)
    assert (
        json.loads((tmp / "model-plain" / "model.json").read_text())["quantile_normalisation"]
        is None
    )
    with safe_open(str(tmp / "model-q" / "model.safetensors"), "np") as fh:
        meta = fh.metadata()
    assert json.loads(meta["chromestore.signal_units"]) == spec["signal_units"]
    assert json.loads(meta["chromestore.quantile_normalisation"]) == q
    # an edited reference is refused: model.json no longer says what the weights saw
    edited = tmp / "edited"
    shutil.copytree(tmp / "model-q", edited)
    q["reference"][0][-1] += 1.0  # still a distribution: the weights file says otherwise
    (edited / "model.json").write_text(json.dumps({**spec, "quantile_normalisation": q}))
    with pytest.raises(ValueError, match="'quantile_normalisation' is .* model.json was edited"):
        chromestore.load_model(edited)


def test_load_model_predict__refuses_other_units_and_genes_of_no_shared_annotation(world):
    from chromestore.training.predict import PredictError

    tmp, keys = world
    ds = chromestore.simulate(cells=["E116"], genes=keys[:80], seed=5, genome="GRCh38")
    plain, quantile = (chromestore.load_model(tmp / f"model-{r}") for r in ("plain", "q"))
    assert np.isfinite(plain.predict(ds).values).all()  # reads, as it was trained on
    fold = ds.assign_coords(signal_units=ds.signal_units.where(ds.mark != "H3K4me3", "fold change"))
    with pytest.raises(PredictError, match="^epigenome E116: its H3K4me3 signal is fold change"):
        plain.predict(fold)
    assert np.isfinite(quantile.predict(fold).values).all()
    renamed = ds.assign_coords(gene=[f"MINE_{i}" for i in range(ds.sizes["gene"])])
    with pytest.raises(PredictError) as e:
        quantile.predict(renamed)
    assert str(e.value) == (
        "genome assembly mismatch: the dataset's is 'GRCh38', model 'deepchrome' was trained "
        "on 'hg19', and no gene of the dataset is a gene of chromestore's hg19 annotation (no "
        "map between their genes: ingest with the shipped GRCh38 annotation, --genome GRCh38)"
    )


def test_train_normalise__arrays_models_record_quantiles_pooled_models_refuse(world):
    from chromestore.training import predict as P

    tmp, _ = world
    store = tmp / "remc.zarr"
    _cli("train", store, "--model", "rf-bestbin", "--cells", TRAINED, "--split", "random",
         "--run", "rf", "--workers", "0", "--normalise", "quantile")  # fmt: skip
    run = chromestore.open_run(store, "rf")
    assert run.attrs["input_normalisation"] == {"rf-bestbin": "quantile"}
    assert run.attrs["signal_units"][TRAINED] == dict.fromkeys(chromestore.DEFAULT_MARKS, "reads")
    model = P.from_run(store, "rf", from_cell=TRAINED)
    assert model.per_epigenome and len(model.quantiles["reference"]) == 5
    assert P.from_run(store, "plain", from_cell=TRAINED).quantiles is None
    res = CliRunner().invoke(
        main,
        ["train", str(store), "--model", "pooled", "--cells", TRAINED, "--run", "p",
         "--normalise", "quantile", "--workers", "0"],
    )  # fmt: skip
    assert res.exit_code == 1
    assert res.output == (
        "error: --normalise: the pooled model normalises each epigenome by its own statistics "
        "already (it predicts epigenomes of any signal units); leave --normalise out\n"
    )
