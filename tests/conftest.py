from __future__ import annotations

import hashlib
import os
import signal
from pathlib import Path

import dask
import numpy as np
import pandas as pd
import pytest

from chromestore.genes import read_gene_bed


def pytest_configure(config):
    """Ctrl-C reaches the commands the tests interrupt: pytest-xdist's workers (like a
    shell's background jobs) start with SIGINT ignored, and children inherit that."""
    signal.signal(signal.SIGINT, signal.default_int_handler)


#: fixtures of real Dask clusters, an S3 server and a headless browser, for every test module
pytest_plugins = ["tests.cluster_fixtures"]

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
GENES_BED = DATA / "gene_windows.hg19.bed.gz"
RPKM = DATA / "rpkm.56epigenomes.tsv.gz"
EPIGENOMES = DATA / "epigenomes.tsv"
E003 = DATA / "samples" / "deepdiff_E003"
TOY = DATA / "samples" / "deepchrome_toy"


@pytest.fixture(scope="session")
def real_genes() -> pd.DataFrame:
    return read_gene_bed(GENES_BED)


@pytest.fixture
def small_genes(real_genes) -> pd.DataFrame:
    """300 real genes with their real strands (145 +, 155 -), every 25th made unknown (.)."""
    genes = real_genes.iloc[:300].copy().reset_index(drop=True)
    genes.loc[genes.index % 25 == 24, "strand"] = "."
    return genes


def _raise_on_compute(dsk, keys, **kwargs):
    raise AssertionError("a dask computation ran where everything should stay lazy")


@pytest.fixture
def no_compute():
    """Any dask compute inside the block raises (xarray's raise_if_dask_computes)."""
    with dask.config.set(scheduler=_raise_on_compute):
        yield


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def e003_store(tmp_path_factory) -> Path:
    """A store of the 19,802 real genes with E003's real RPKM and the 600-gene
    deepdiff_E003 sample as E003's signal (centre 100 bins); other genes' signal is NaN."""
    import xarray as xr

    from chromestore.formats import read_deepdiff_csv
    from chromestore.ingest import ingest_expression, ingest_signal_array, open_or_create

    path = tmp_path_factory.mktemp("e003") / "e003.zarr"
    open_or_create(path, GENES_BED)
    ingest_expression(path, RPKM, ["E003"])
    parts = [read_deepdiff_csv(E003 / f"E003.{s}.csv") for s in ("train", "valid", "test")]
    signal = xr.concat(parts, dim="gene")
    signal.attrs = dict(parts[0].attrs, source=str(E003))
    ingest_signal_array(path, "E003", signal)
    return path


# --- samplesheets and stores of the ingest tests ---------------------------------------------


def sheet(tmp_path, rows, name="samples.csv") -> Path:
    """A samplesheet of ``rows`` (cell, mark, format, path) in ``tmp_path``."""
    path = tmp_path / name
    path.write_text("cell,mark,format,path\n" + "".join(",".join(r) + "\n" for r in rows))
    return path


def store_digest(path) -> dict[str, str]:
    """Every file of a local store and the SHA-1 of its bytes."""
    out = {}
    for root, _, files in os.walk(path):
        for f in files:
            p = os.path.join(root, f)
            out[os.path.relpath(p, path)] = hashlib.sha1(open(p, "rb").read()).hexdigest()
    return out


@pytest.fixture
def counts_tsv():
    """The toy ``counts-tsv`` format of ``tests/toy_format.py``, registered for one test."""
    from chromestore import formats
    from tests import toy_format

    entry = formats.register(toy_format.COUNTS_TSV)
    yield entry
    formats.unregister(entry.name)


@pytest.fixture(scope="module")
def genes40(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    """40 real genes as a BED6 of ±10 kb windows, and their table."""
    table = read_gene_bed(GENES_BED).iloc[:40].reset_index(drop=True)
    path = tmp_path_factory.mktemp("genes") / "genes40.bed"
    path.write_text(
        "".join(
            f"{g.chrom}\t{g.tss - 10000}\t{g.tss + 10000}\t{g.gene}\t0\t{g.strand}\n"
            for g in table.itertuples()
        )
    )
    return path, table


def write_counts(path: Path, genes: list[str], rng) -> np.ndarray:
    """A counts-tsv file of ``genes`` (100 bins each, lines shuffled); returns the counts."""
    counts = rng.integers(0, 50, (len(genes), 100)).astype(np.float32)
    lines = [f"{g}\t{b + 1}\t{counts[i, b]:g}\n" for i, g in enumerate(genes) for b in range(100)]
    path.write_text("".join(np.array(lines)[rng.permutation(len(lines))]))
    return counts
