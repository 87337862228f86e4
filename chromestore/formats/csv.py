"""The binned-count CSV layouts of the DeepChrome and DeepDiff datasets.

* DeepChrome (Zenodo 2652278): rows ``GeneID,BinID,H3K27me3,H3K36me3,H3K4me1,H3K4me3,
  H3K9me3,Label``, no header, BinID 1..100, GeneID the Ensembl number without ``ENSG``
  (``000003`` = ENSG00000000003). An epigenome is a folder with
  ``classification/{train,valid,test}.csv``.
* DeepDiff: rows ``ENSGID_SYMBOL_BIN,H3K4me1,H3K4me3,H3K9me3,H3K27me3,H3K36me3``, no
  header, BIN 1..200 (TSS ± 10 kb). Note the different mark order. A sample is a folder
  of ``{train,valid,test}.csv`` (or ``E003.train.csv`` ...; the ``*.expr.csv`` beside them
  is expression, not signal).

Both readers return an ``xr.DataArray`` (gene, mark, bin) of float32 counts with
bins 0-based, marks in chromestore's order (:data:`DEFAULT_MARKS`), and validate every
line first. The published files hold every gene's bins in genome order (ascending
coordinate, whatever the strand: in the real E003 sample H3K36me3 rises towards higher
coordinates on ``+`` genes and towards lower ones on ``-`` genes). The readers return
bins 5'→3': ``-`` genes reversed (:func:`orient_5to3`), by default on the strands of the
shipped REMC annotation whose genes these datasets list; ``strand="genome"`` keeps the
published order (``attrs["orientation"] == "genome"``), which ingestion reverses on the
store's own strands.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from chromestore import variables as V
from chromestore.bins import ORIENTATION, to_5to3
from chromestore.errors import InputError
from chromestore.textio import open_binary

DEEPCHROME_MARKS = ("H3K27me3", "H3K36me3", "H3K4me1", "H3K4me3", "H3K9me3")
DEEPDIFF_MARKS = ("H3K4me1", "H3K4me3", "H3K9me3", "H3K27me3", "H3K36me3")
DEEPCHROME_SPLITS = ("train", "valid", "test")


def deepchrome_gene_id(number: str) -> str:
    """DeepChrome's GeneID (``000003``) as an Ensembl id (``ENSG00000000003``)."""
    number = str(number).strip()
    if number.upper().startswith("ENSG"):
        return number.upper()
    return "ENSG" + number.zfill(11)


def _read_bytes(path: str | os.PathLike) -> bytes:
    with open_binary(path) as fh:
        return fh.read()


def _scan_lines(path, data: bytes, n_cols: int, number_cols: range, int_cols: tuple[int, ...]):
    """Slow exact check: raise an InputError for the first bad line (or return)."""
    for lineno, raw in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
        if not raw.strip():
            raise InputError(path, lineno, "empty line")
        f = raw.split(",")
        if len(f) != n_cols:
            raise InputError(path, lineno, f"expected {n_cols} columns, found {len(f)}")
        for c in number_cols:
            try:
                value = float(f[c])
            except ValueError:
                raise InputError(
                    path, lineno, f"column {c + 1}: {f[c]!r} is not a number"
                ) from None
            if not np.isfinite(value):
                raise InputError(path, lineno, f"column {c + 1}: {f[c]!r} is not a finite number")
        for c in int_cols:
            if not f[c].strip().isdigit():
                raise InputError(path, lineno, f"column {c + 1}: {f[c]!r} is not a bin number")


def _parse(path, n_cols: int, number_cols: range, int_cols: tuple[int, ...] = ()) -> pd.DataFrame:
    """Parse a headerless CSV of ``n_cols`` columns (col 0 as text) with validation."""
    data = _read_bytes(path)
    if not data.strip():
        raise InputError(path, None, "empty file")
    try:
        frame = pd.read_csv(
            io.BytesIO(data),
            header=None,
            names=list(range(n_cols + 1)),  # one spare column catches extra fields
            dtype={0: str},
            skip_blank_lines=False,
            engine="c",
        )
        ok = (
            frame[n_cols].isna().all()
            and not frame[list(range(n_cols))].isna().any().any()
            and all(frame[c].dtype.kind in "if" for c in number_cols)
            and all(frame[c].dtype.kind == "i" for c in int_cols)
        )
        if ok:
            ok = bool(np.isfinite(frame[list(number_cols)].to_numpy(np.float64)).all())
    except (pd.errors.ParserError, ValueError):
        ok = False
    if not ok:
        _scan_lines(path, data, n_cols, number_cols, int_cols)
        raise InputError(path, None, f"not a {n_cols}-column CSV")  # pragma: no cover
    return frame.drop(columns=[n_cols])


def _check_bins(path, keys: np.ndarray, bins: np.ndarray, line0: int = 1) -> tuple[np.ndarray, int]:
    """Rows must come in runs of one gene with bins 1..N in order, N equal for all genes.

    Returns the gene keys (one per run) and N.
    """
    n = len(keys)
    new = np.ones(n, dtype=bool)
    new[1:] = keys[1:] != keys[:-1]
    starts = np.flatnonzero(new)
    lengths = np.diff(np.append(starts, n))
    n_bins = int(lengths[0])
    bad = np.flatnonzero(lengths != n_bins)
    if bad.size:
        i = bad[0]
        raise InputError(
            path,
            int(starts[i]) + line0,
            f"gene {keys[starts[i]]!r} has {lengths[i]} bins, expected {n_bins} "
            "(as the first gene; rows of one gene must be consecutive)",
        )
    expected = np.tile(np.arange(1, n_bins + 1), len(starts))
    wrong = np.flatnonzero(bins != expected)
    if wrong.size:
        i = int(wrong[0])
        raise InputError(path, i + line0, f"bin {bins[i]} where bin {expected[i]} was expected")
    genes = keys[starts]
    uniq, counts = np.unique(genes, return_counts=True)
    if (counts > 1).any():
        dup = uniq[counts > 1][0]
        line = int(starts[np.flatnonzero(genes == dup)[1]]) + line0
        raise InputError(path, line, f"gene {dup!r} appears twice")
    return genes, n_bins


def _to_array(values: np.ndarray, genes, marks, source_marks, n_bins, attrs) -> xr.DataArray:
    """(gene*bin, mark) rows in source order → (gene, mark, bin) in chromestore order."""
    cube = values.reshape(len(genes), n_bins, len(source_marks)).transpose(0, 2, 1)
    order = [list(source_marks).index(m) for m in marks]
    cube = np.ascontiguousarray(cube[:, order, :], dtype=np.float32)
    return xr.DataArray(
        cube,
        dims=(V.GENE, V.MARK, V.BIN),
        coords={V.MARK: list(marks), V.BIN: np.arange(n_bins, dtype=np.int64)},
        attrs=attrs,
    )


#: ``strand`` values of the readers that are not a table: the shipped annotation's strands,
#: or the published genome order kept as it is
SHIPPED, GENOME = "shipped", "genome"


def orient_5to3(signal: xr.DataArray, strand: pd.Series | str = SHIPPED) -> xr.DataArray:
    """Genome-order bins of a published CSV dataset → 5'→3': reverse the ``-`` genes.

    ``strand`` maps the array's gene labels (``ENSGID_SYMBOL`` for DeepDiff, the Ensembl
    id for DeepChrome, as ``signal.attrs["gene_key"]`` says) to ``+``/``-``/``.``;
    ``"shipped"`` takes the shipped REMC annotation's
    (:func:`chromestore.genes.reference_strands`); ``"genome"`` leaves the bins as they
    are and says so in ``attrs["orientation"]``. Genes of unknown strand keep genome
    order and are counted in ``attrs["genes_without_strand"]``.
    """
    if isinstance(strand, str):
        if strand == GENOME:
            return signal.assign_attrs(orientation=GENOME)
        if strand != SHIPPED:
            raise ValueError(f"strand must be a table, {SHIPPED!r} or {GENOME!r}, not {strand!r}")
        from chromestore.genes import reference_strands

        strand = reference_strands(signal.attrs.get("gene_key", V.GENE))
    per_gene = pd.Series(strand).reindex(signal[V.GENE].values.astype(object)).to_numpy(object)
    axis = signal.dims.index(V.BIN)
    out = signal.copy(data=to_5to3(signal.values, per_gene, axis=axis))
    known = np.isin(per_gene, ("+", "-"))
    out.attrs.update(orientation=ORIENTATION, genes_without_strand=int((~known).sum()))
    return out


def deepdiff_files(path: str | os.PathLike) -> list[Path]:
    """The CSV files of a DeepDiff path: one CSV, or a sample folder holding
    ``{train,valid,test}.csv`` or ``<prefix>.{train,valid,test}.csv`` (e.g. ``E003.train.csv``)."""
    p = Path(path)
    if not p.exists():
        raise InputError(p, None, "file not found")
    if p.is_file():
        return [p]
    prefixes = sorted({f.name[: -len("train.csv")] for f in p.glob("*train.csv")})
    if not prefixes:
        raise InputError(
            p,
            None,
            "no DeepDiff CSVs here (expected train.csv, valid.csv, test.csv or E003.train.csv ...)",
        )
    if len(prefixes) > 1:
        raise InputError(
            p,
            None,
            "several samples in one folder "
            f"({', '.join(x + 'train.csv' for x in prefixes)}); give one file per row",
        )
    files = [p / f"{prefixes[0]}{s}.csv" for s in DEEPCHROME_SPLITS]
    missing = [f.name for f in files if not f.exists()]
    if missing:
        raise InputError(p, None, f"DeepDiff folder lacks {', '.join(missing)}")
    return files


def read_deepdiff_csv(path: str | os.PathLike, strand: pd.Series | str = SHIPPED) -> xr.DataArray:
    """Read a DeepDiff CSV (``ENSGID_SYMBOL_BIN,H3K4me1,H3K4me3,H3K9me3,H3K27me3,H3K36me3``).

    ``path`` is one CSV or a sample folder (train, valid, test concatenated in that order,
    see :func:`deepdiff_files`). Returns counts (gene, mark, bin) keyed by the store's gene
    key ``ENSGID_SYMBOL``, with a ``gene_id`` coordinate; bins 0-based, 5'→3' (the file's
    genome order with ``-`` genes reversed; ``strand``: see :func:`orient_5to3`).

    Examples
    --------
    >>> sig = read_deepdiff_csv("data/samples/deepdiff_E003/E003.test.csv")  # doctest: +SKIP
    >>> dict(sig.sizes)
    {'gene': 200, 'mark': 5, 'bin': 200}
    """
    files = deepdiff_files(path)
    if len(files) > 1:
        parts = [_read_deepdiff_file(f, strand) for f in files]
        if len({s.sizes[V.BIN] for s in parts}) != 1:
            raise InputError(path, None, "the CSVs have different bin counts")
        out = xr.concat(parts, dim=V.GENE)
        uniq, counts = np.unique(out[V.GENE].values.astype(object), return_counts=True)
        if (counts > 1).any():
            raise InputError(path, None, f"gene {uniq[counts > 1][0]!r} appears in two files")
        out.attrs = dict(parts[0].attrs, source=os.fspath(path))
        return out
    return _read_deepdiff_file(files[0], strand)


def _read_deepdiff_file(path: Path, strand: pd.Series | str = SHIPPED) -> xr.DataArray:
    frame = _parse(path, 6, range(1, 6))
    key_bin = frame[0].str.rpartition("_")
    bad = ~key_bin[2].str.isdigit() | (key_bin[0] == "")
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(path, i + 1, f"first column {frame[0].iloc[i]!r} is not ENSGID_SYMBOL_BIN")
    keys = key_bin[0].to_numpy(dtype=object)
    genes, n_bins = _check_bins(path, keys, key_bin[2].astype(np.int64).to_numpy())
    values = frame[list(range(1, 6))].to_numpy(np.float32)
    out = _to_array(
        values,
        genes,
        V.DEFAULT_MARKS,
        DEEPDIFF_MARKS,
        n_bins,
        {"source": os.fspath(path), "format": "deepdiff-csv", "gene_key": V.GENE},
    )
    gene_ids = [g.partition("_")[0] for g in genes]
    out = out.assign_coords({V.GENE: list(genes), V.gene_id.name: (V.GENE, gene_ids)})
    return orient_5to3(out, strand)


def deepchrome_files(path: str | os.PathLike) -> list[Path]:
    """The CSV files of a DeepChrome path: one CSV, or an epigenome folder (Zenodo layout:
    ``classification/{train,valid,test}.csv``; also ``{train,valid,test}.csv`` directly)."""
    p = Path(path)
    if not p.exists():
        raise InputError(p, None, "file not found")
    if p.is_file():
        return [p]
    for folder in (p / "classification", p):
        files = [folder / f"{s}.csv" for s in DEEPCHROME_SPLITS]
        if any(f.exists() for f in files):
            missing = [f.name for f in files if not f.exists()]
            if missing:
                raise InputError(folder, None, f"DeepChrome folder lacks {', '.join(missing)}")
            return files
    raise InputError(p, None, "no DeepChrome CSVs here (expected classification/train.csv ...)")


def read_deepchrome_csv(
    path: str | os.PathLike, strand: pd.Series | str = SHIPPED
) -> tuple[xr.DataArray, xr.DataArray]:
    """Read DeepChrome CSV(s): ``GeneID,BinID,H3K27me3,H3K36me3,H3K4me1,H3K4me3,H3K9me3,Label``.

    ``path`` is one CSV or an epigenome folder (train, valid, test concatenated in
    that order). Returns ``(signal, labels)``: counts (gene, mark, bin) keyed by the
    Ensembl id (``000003`` → ``ENSG00000000003``; match it to the store's ``gene_id``),
    bins 5'→3' (``strand`` by Ensembl id: see :func:`orient_5to3`), and the 0/1 labels
    (gene,) with a ``split`` coordinate naming the source file.
    """
    signals, labels, splits = [], [], []
    for f in deepchrome_files(path):
        frame = _parse(f, 8, range(1, 8), int_cols=(1,))
        keys = frame[0].to_numpy(dtype=object)
        genes, n_bins = _check_bins(f, keys, frame[1].to_numpy(np.int64))
        per_gene = frame[7].to_numpy().reshape(len(genes), n_bins)
        if not np.isin(per_gene, (0, 1)).all() or (per_gene != per_gene[:, :1]).any():
            i = int(np.flatnonzero(~np.isin(per_gene, (0, 1)) | (per_gene != per_gene[:, :1]))[0])
            raise InputError(f, i + 1, "label must be 0 or 1 and the same on every bin of a gene")
        sig = _to_array(
            frame[list(range(2, 7))].to_numpy(np.float32),
            genes,
            V.DEFAULT_MARKS,
            DEEPCHROME_MARKS,
            n_bins,
            {},
        )
        ids = [deepchrome_gene_id(g) for g in genes]
        signals.append(sig.assign_coords({V.GENE: ids}))
        labels.append(per_gene[:, 0].astype(np.int8))
        splits.extend([f.stem] * len(genes))
    if len({s.sizes[V.BIN] for s in signals}) != 1:
        raise InputError(path, None, "the CSVs have different bin counts")
    signal = xr.concat(signals, dim=V.GENE)
    ids = signal[V.GENE].values.astype(object)
    uniq, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise InputError(path, None, f"gene {uniq[counts > 1][0]!r} appears in two files")
    signal = signal.assign_coords({V.gene_id.name: (V.GENE, list(ids))})
    signal.attrs = {"source": os.fspath(path), "format": "deepchrome-csv", "gene_key": "gene_id"}
    signal = orient_5to3(signal, strand)
    label = xr.DataArray(
        np.concatenate(labels),
        dims=(V.GENE,),
        coords={V.GENE: list(ids), "split": (V.GENE, splits)},
        name="label",
    )
    return signal, label


def centre_crop(signal: xr.DataArray, n_bins: int, path=None) -> xr.DataArray:
    """Keep the centre ``n_bins`` bins (a wider window than the store's); narrower is an error."""
    have = signal.sizes[V.BIN]
    if have < n_bins or (have - n_bins) % 2:
        raise InputError(
            path or signal.attrs.get("source"),
            None,
            f"has {have} bins per gene, the store needs {n_bins} "
            + (
                "(a narrower window cannot be widened)"
                if have < n_bins
                else "(cannot centre: the difference is odd)"
            ),
        )
    lo = (have - n_bins) // 2
    out = signal.isel({V.BIN: slice(lo, lo + n_bins)})
    return out.assign_coords({V.BIN: np.arange(n_bins, dtype=np.int64)})
