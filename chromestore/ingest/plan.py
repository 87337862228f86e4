"""Planning an ingest: every input parsed and checked, and the files with work left, before
anything is written (so a caller can decide where to count them: in process or on Dask)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd
import xarray as xr

from chromestore import store as S
from chromestore import variables as V
from chromestore.genomes import read_aliases
from chromestore.ingest.quantified import expression_matrix, split_rows
from chromestore.ingest.samplesheet import Sample, read_samplesheet
from chromestore.ingest.tables import check_columns, check_store
from chromestore.store import records
from chromestore.store.dataset import open_store


@dataclass
class IngestPlan:
    """What ``chromestore ingest`` will do; made by :func:`plan_ingest`, run by
    :func:`chromestore.ingest.run_plan`."""

    store: S.Store
    genes: str | os.PathLike | None  # the annotation that creates the store, if absent
    settings: dict  # window, bin_size, genome, gene_chunk of a new store
    sheet: list[Sample] = field(default_factory=list)
    pending: list[Sample] = field(default_factory=list)  # rows with a (cell, mark) to do
    matrix: pd.DataFrame | None = None  # the RPKM matrix, parsed
    expression: str | os.PathLike | None = None  # its path
    cells: Sequence[str] | None = None  # the expression columns to take (None: see run_plan)
    dataset: xr.Dataset | None = None  # the store as opened while planning (None: absent)
    aliases: dict[str, str] = field(default_factory=dict)  # --chrom-alias: file → annotation

    @property
    def input_bytes(self) -> int:
        """Bytes of the pending files (a folder: of every file in it)."""
        return sum(_size(s.path) for s in self.pending)


def _size(path: str) -> int:
    if not os.path.isdir(path):
        return os.path.getsize(path)
    return sum(
        os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(path) for f in files
    )


def completed_keys(ds) -> set[tuple[str, str, str]]:
    """The (cell, mark, target) recorded completed in the store (an opened Dataset)."""
    return {(c, m, target) for target in V.RECORDS_OF for c, m in records.completed(ds, target)}


def pending_samples(
    store: S.StoreLike,
    samples: Sequence[Sample],
    force: bool = False,
    storage_options: dict | None = None,
    ds: xr.Dataset | None = None,
) -> list[Sample]:
    """The samples with work left: not every (cell, mark) of theirs recorded completed, or
    a chunk of their cell's variable missing (:func:`chromestore.store.missing_chunks`: its
    values are lost; the cell's writer rewrites it) (``ds``: the store, opened, if at hand)."""
    if force:
        return list(samples)
    if ds is None:
        ds = S.open_store(store, storage_options)
    done = completed_keys(ds)
    lost = {(m.cell, m.variable) for m in S.missing_chunks(S.Store.of(store, storage_options))}
    marks = [str(m) for m in ds[V.MARK].values]
    return [
        s
        for s in samples
        if (s.cell, s.target) in lost
        or any((s.cell, m, s.target) not in done for m in ([s.mark] if s.mark else marks))
    ]


def plan_ingest(
    store: S.StoreLike,
    genes: str | os.PathLike | None = None,
    samples: str | os.PathLike | None = None,
    expression: str | os.PathLike | None = None,
    *,
    cells: Sequence[str] | None = None,
    window: int = S.DEFAULT_WINDOW,
    bin_size: int = S.DEFAULT_BIN_SIZE,
    genome: str | None = None,
    gene_chunk: int = S.DEFAULT_GENE_CHUNK,
    force: bool = False,
    storage_options: dict | None = None,
    quantity: str = "TPM",
    chrom_alias: str | os.PathLike | None = None,
) -> IngestPlan:
    """Parse and check every input (samplesheet, files, RPKM matrix, the store's settings,
    the ``chrom_alias`` file: :func:`chromestore.genomes.read_aliases`) and find the
    samplesheet rows with work left; writes nothing. The samplesheet's expression rows
    (``rsem-genes``: their ``quantity``, TPM or FPKM) are read here, into the matrix
    (:mod:`chromestore.ingest.quantified`).

    ``genes`` and ``genome``: see :func:`annotation` (no ``genes`` for a new store: the
    shipped annotation of ``genome``, hg19 by default). A store whose creation was
    interrupted (an object store's ``creating`` marker) counts as absent: the ingest
    creates it again. Raises :class:`chromestore.errors.InputError` (file, line, problem)
    or :class:`chromestore.store.StoreError` on the first problem.
    """
    store = S.Store.of(store, storage_options)
    present = store.exists() and not store.creating()
    genes, genome = annotation(store, genes, genome, present)
    ds = open_store(store) if present else None
    marks = [str(m) for m in ds[V.MARK].values] if ds is not None else list(V.DEFAULT_MARKS)
    sheet, quantified = split_rows(read_samplesheet(samples, marks) if samples else [])
    matrix = expression_matrix(
        expression, quantified, quantity, ds, str(store), os.fspath(samples or "")
    )
    if matrix is not None:
        expression = matrix.attrs["source"]  # the RPKM matrix, or the sheet's expression rows
    aliases = read_aliases(chrom_alias) if chrom_alias else {}
    if matrix is not None and cells is not None:
        check_columns(matrix, cells, expression)
    check_store(store, genes, window, bin_size)
    pending = pending_samples(store, sheet, force, ds=ds) if ds is not None else list(sheet)
    settings = {"window": window, "bin_size": bin_size, "genome": genome, "gene_chunk": gene_chunk}
    return IngestPlan(
        store, genes, settings, sheet, pending, matrix, expression, cells, ds, aliases
    )


def annotation(
    store: S.Store,
    genes: str | os.PathLike | None,
    genome: str | None,
    present: bool | None = None,
) -> tuple[str | os.PathLike | None, str]:
    """The gene annotation and assembly of an ingest into ``store``: ``genes`` as given,
    else, for a store yet to be created, the shipped annotation of ``genome`` (default
    hg19, or that of a shipped ``genes`` file); the assembly by the name chromestore
    records (GRCh37 → hg19, hg38 → GRCh38), an existing store's own (a ``genome`` that
    contradicts it is refused). ``present``: whether the store is there, as the caller
    found (asked here when None); a store whose creation was interrupted is not, and is
    created again from the same annotation a new one gets."""
    from chromestore import datasets

    if present is None:
        present = store.exists() and not store.creating()

    name = datasets.assembly(genome or S.DEFAULT_GENOME)
    if genome is None and genes is not None:  # a shipped annotation names its assembly
        given = str(genes).replace("\\", "/").rsplit("/", 1)[-1]
        name = next(
            (a for a, f in datasets.ANNOTATIONS.items() if datasets.FILES[f][0] == given), name
        )
    if present:
        recorded = str(store.attrs().get("genome", name))
        if genome is not None and datasets.assembly(recorded) != name:
            raise S.StoreError(
                f"{store}: the store's genome is {recorded}, not {genome}; "
                "ingest into a store of that assembly or leave out --genome"
            )
        return genes, recorded
    if genes is None:
        if name not in datasets.ANNOTATIONS:
            raise S.StoreError(
                f"{store}: no store here and no shipped annotation for genome {genome} "
                f"(there are: {', '.join(datasets.ANNOTATIONS)}); pass --genes to create one"
            )
        genes = str(datasets.gene_windows(name))
    return genes, name
