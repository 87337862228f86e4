"""Reads are reported while a file is counted (per block), in process and from Dask workers."""

from __future__ import annotations

import gzip
import time

import numpy as np
import pytest

from chromestore import ingest, open_store
from chromestore.counting import counter as counting
from chromestore.genes import read_gene_bed
from tests.conftest import GENES_BED


@pytest.fixture
def one_file(tmp_path, rng):
    genes = read_gene_bed(GENES_BED).iloc[:200]
    gene_bed = tmp_path / "genes.bed"
    with open(gene_bed, "w") as fh:
        for g in genes.itertuples():
            fh.write(f"{g.chrom}\t{g.tss - 10000}\t{g.tss + 10000}\t{g.gene}\t0\t{g.strand}\n")
    n = 3000
    gi = rng.integers(0, len(genes), n)
    s = genes.tss.values[gi] + rng.integers(-6000, 6000, n)
    reads = tmp_path / "r.tagAlign.gz"
    with gzip.open(reads, "wt") as fh:
        fh.write(
            "".join(
                f"{c}\t{a}\t{a + 36}\tN\t1000\t+\n"
                for c, a in zip(genes.chrom.values[gi], s, strict=True)
            )
        )
    sheet = tmp_path / "s.csv"
    sheet.write_text(f"cell,mark,format,path\nE003,H3K4me3,,{reads.name}\n")
    return gene_bed, sheet, n


def test_reads_progress__block_reports_and_file_totals_never_double_count():
    p = ingest.ReadsProgress()
    p.block(0, 10)
    p.block(0, 5)
    p.file(1, 7)  # a file without block reports
    assert p.reads == 22
    p.file(0, 15)  # its total after its blocks
    p.block(2, 4)
    p.file(2, 9)
    p.block(2, 5)  # a block report arriving after the file's total
    assert p.reads == 15 + 7 + 9


def test_ingest_in_process__reads_shown_per_block(tmp_path, one_file, monkeypatch):
    gene_bed, sheet, n = one_file
    monkeypatch.setattr(counting, "BLOCK_BYTES", 8192)
    seen = []
    block = ingest.ReadsProgress.block
    monkeypatch.setattr(
        ingest.ReadsProgress, "block", lambda self, i, k: (seen.append(k), block(self, i, k))
    )
    ingest.run_ingest(tmp_path / "s.zarr", gene_bed, sheet, progress=True)
    assert len(seen) > 5 and sum(seen) == n


def test_ingest_dask__workers_report_reads_per_block(tmp_path, one_file, monkeypatch):
    from distributed import Client, LocalCluster

    gene_bed, sheet, n = one_file
    monkeypatch.setattr(counting, "BLOCK_BYTES", 8192)  # threads: the workers see it
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, dashboard_address="127.0.0.1:0"
        ) as cluster,
        Client(cluster) as client,
    ):
        events = []
        client.subscribe_topic(ingest.PROGRESS_TOPIC, lambda e: events.append(e[1]))
        with Client(cluster) as ingest_client:  # one topic handler per client: not the test's
            ingest.run_ingest(
                tmp_path / "s.zarr", gene_bed, sheet, client=ingest_client, progress=True
            )
        deadline = time.monotonic() + 60  # events travel asynchronously
        while sum(e[2] for e in events) < n and time.monotonic() < deadline:
            time.sleep(0.1)
    assert len(events) > 5 and sum(e[2] for e in events) == n
    assert len({e[0] for e in events}) == 1 and {e[1] for e in events} == {0}
    assert np.nansum(open_store(tmp_path / "s.zarr").signal.values) > 0
