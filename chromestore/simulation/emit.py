"""Write a simulated Dataset as the files REMC publishes, plus a samplesheet to ingest them.

Formats (one file per (cell, mark) unless said otherwise), at the genes' real hg19
coordinates, bins mapped back to genome order with :mod:`chromestore.bins`:

* ``tagalign``: BED6 reads (``chrom start end N 1000 strand``, gzip) of
  :data:`READ_LEN` bp, each lying inside one bin: the ``c`` reads of a bin start at
  evenly spaced offsets in it, strands alternating.
* ``bigwig``: the bin values as a piecewise-constant track (every base of a bin holds
  its value), so the mean over a bin is the value.
* ``narrowpeak``: MACS-like peaks: runs of consecutive bins whose count reaches the
  mark's enrichment threshold (:func:`peak_threshold`); ``signalValue`` is the run's
  mean count over the mark's mean count in the real E003 sample × the cell's depth
  (a fold enrichment).
* ``deepchrome-csv``: one folder per cell with ``classification/{train,valid,test}.csv``
  (the Zenodo 2652278 layout: bins in genome order, as published), DeepChrome's split by
  file order and its median label (RPKM above the cell's median over all 19,802 genes).

Windows are emitted once per distinct window (genes sharing a window share their
signal). Where two genes' windows overlap, the files hold the reads (values, peaks)
of both, as real data would, so ingesting gives each such gene its own counts plus
its neighbour's in the shared stretch (``tests/emit_oracle.py`` computes exactly
that); genes whose window overlaps no other give back exactly the simulated counts.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from chromestore import variables as V
from chromestore.bins import genome_bin_starts, to_genome_order
from chromestore.ingest.samplesheet import write_samplesheet
from chromestore.store import DEFAULT_BIN_SIZE

FORMATS = ("tagalign", "bigwig", "narrowpeak", "deepchrome-csv")
#: Length of the emitted tagAlign reads (REMC's are 36 bp).
READ_LEN = 36
SAMPLESHEET = "samplesheet.csv"
DEEPCHROME_MARKS = ("H3K27me3", "H3K36me3", "H3K4me1", "H3K4me3", "H3K9me3")


# --- layout ----------------------------------------------------------------------


def _layout(ds: xr.Dataset) -> tuple[pd.DataFrame, np.ndarray]:
    """Gene table of ``ds`` and the (gene, bin) genome start of each bin, 5'→3'."""
    genes = pd.DataFrame(
        {
            "gene": ds[V.GENE].values.astype(object),
            "gene_id": ds[V.gene_id.name].values.astype(object),
            "chrom": ds[V.gene_chrom.name].values.astype(object),
            "tss": ds[V.gene_tss.name].values.astype(np.int64),
            "strand": ds[V.gene_strand.name].values.astype(object),
        }
    )
    starts = genome_bin_starts(
        genes["tss"].to_numpy(),
        genes["strand"].to_numpy(),
        int(ds.attrs["window"]),
        int(ds.attrs["bin_size"]),
    )
    genes["distinct"] = ~genes.duplicated(["chrom", "tss", "strand"])
    return genes, starts


def overlapping_genes(ds: xr.Dataset) -> np.ndarray:
    """(gene,) bool: the gene's window overlaps the window of another distinct window."""
    genes, _ = _layout(ds)
    width = 2 * int(ds.attrs["window"])
    out = np.zeros(len(genes), dtype=bool)
    distinct = genes[genes["distinct"]]
    for _, sub in distinct.groupby("chrom"):
        order = np.argsort(sub["tss"].to_numpy(), kind="stable")
        tss = sub["tss"].to_numpy()[order]
        close = np.diff(tss) < width
        hit = np.zeros(len(tss), dtype=bool)
        hit[1:] |= close
        hit[:-1] |= close
        out[sub.index.to_numpy()[order][hit]] = True
    # genes sharing a window with an overlapping one overlap too
    key = genes["chrom"] + ":" + genes["tss"].astype(str) + genes["strand"]
    shared = set(key[out])
    return key.isin(shared).to_numpy() | out


# --- reads ------------------------------------------------------------------------


def reads_from_counts(
    counts: np.ndarray, bin_starts: np.ndarray, bin_size: int = DEFAULT_BIN_SIZE
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reads placed inside their bins: (flat bin index, start, is_minus) per read.

    The ``c`` reads of a bin start at ``bin_start + ((2k + 1) * (bin_size - READ_LEN))
    // (2c)``, k = 0..c-1, so each lies wholly inside its bin; strands alternate.
    """
    c = np.asarray(counts).reshape(-1).astype(np.int64)
    if (c < 0).any():
        raise ValueError("counts must be non-negative")
    starts = np.asarray(bin_starts).reshape(-1)
    which = np.repeat(np.arange(len(c)), c)
    k = np.arange(len(which)) - np.repeat(np.cumsum(c) - c, c)
    crep = c[which]
    offset = ((2 * k + 1) * (bin_size - READ_LEN)) // (2 * crep)
    return which, starts[which] + offset, (k % 2).astype(bool)


def _write_tagalign(path: Path, chrom, start, minus) -> int:
    frame = pd.DataFrame(
        {
            "chrom": chrom,
            "start": start,
            "end": start + READ_LEN,
            "name": "N",
            "score": 1000,
            "strand": np.where(minus, "-", "+"),
        }
    ).sort_values(["chrom", "start"], kind="stable")
    frame.to_csv(
        path,
        sep="\t",
        header=False,
        index=False,
        compression={"method": "gzip", "compresslevel": 1},
    )
    return len(frame)


# --- bigWig -------------------------------------------------------------------------


def _coverage(chroms, starts, values, bin_size):
    """Per chrom: (segment starts, ends, values) of the summed piecewise-constant tracks."""
    out = {}
    frame = pd.DataFrame({"chrom": chroms, "start": starts, "value": values})
    for chrom, sub in frame.groupby("chrom", sort=True):
        pos = np.concatenate([sub["start"].to_numpy(), sub["start"].to_numpy() + bin_size])
        delta = np.concatenate([sub["value"].to_numpy(), -sub["value"].to_numpy()])
        uniq, inv = np.unique(pos, return_inverse=True)
        step = np.zeros(len(uniq))
        np.add.at(step, inv, delta)
        level = np.cumsum(step)[:-1]
        seg_start, seg_end = uniq[:-1], uniq[1:]
        keep = np.abs(level) > 1e-9
        out[chrom] = (seg_start[keep], seg_end[keep], level[keep])
    return out


def _write_bigwig(path: Path, tracks: dict) -> None:
    try:
        import pyBigWig
    except ImportError:
        raise ImportError(
            "writing bigWig needs pyBigWig: pip install 'chromestore[formats]'"
        ) from None
    header = [(c, int(t[1][-1]) + 1 if len(t[1]) else 1) for c, t in sorted(tracks.items())]
    bw = pyBigWig.open(os.fspath(path), "w")
    try:
        bw.addHeader(header)
        for chrom, _ in header:
            s, e, v = tracks[chrom]
            if len(s):
                bw.addEntries([chrom] * len(s), s.tolist(), ends=e.tolist(), values=v.tolist())
    finally:
        bw.close()


# --- peaks --------------------------------------------------------------------------


def peak_threshold(mark: str, depth: float) -> tuple[float, float]:
    """(minimum count of an enriched bin, background mean) of ``mark`` at ``depth``.

    The threshold is the 95th percentile of the mark's counts in the real E003 sample
    (at least 3 reads), the background its mean count there, both scaled by depth.
    """
    from chromestore.simulation.model import real_e003_sample

    sample = real_e003_sample().sel({V.MARK: mark}).values
    threshold = max(3.0, float(np.percentile(sample, 95)) * depth)
    return threshold, float(sample.mean()) * depth


def call_peaks(values: np.ndarray, threshold: float, background: float):
    """Runs of consecutive bins ≥ threshold in (gene, bin) genome-order values.

    Returns (gene, first bin, last bin + 1, signalValue, summit bin) arrays.
    """
    hot = values >= threshold
    padded = np.zeros((hot.shape[0], hot.shape[1] + 2), dtype=np.int8)
    padded[:, 1:-1] = hot
    edges = np.diff(padded, axis=1)
    g_start, b_start = np.nonzero(edges == 1)
    g_end, b_end = np.nonzero(edges == -1)
    signal, summit = [], []
    for g, a, b in zip(g_start, b_start, b_end, strict=True):
        run = values[g, a:b]
        signal.append(round(float(run.mean()) / background, 5))
        summit.append(a + int(np.argmax(run)))
    return g_start, b_start, b_end, np.array(signal), np.array(summit, dtype=np.int64)


def _write_narrowpeak(path: Path, rows: pd.DataFrame) -> None:
    rows = rows.sort_values(["chrom", "start"], kind="stable")
    with open(path, "w") as fh:
        for i, r in enumerate(rows.itertuples(index=False)):
            score = min(1000, int(r.signal * 100))
            fh.write(
                f"{r.chrom}\t{r.start}\t{r.end}\tpeak_{i}\t{score}\t.\t{r.signal:.5f}"
                f"\t-1\t-1\t{r.summit}\n"
            )


# --- DeepChrome CSV -----------------------------------------------------------------


def _deepchrome_number(gene_id: str) -> str:
    return gene_id[4:].lstrip("0").zfill(6) if gene_id.upper().startswith("ENSG") else gene_id


def _write_deepchrome(folder: Path, genes: pd.DataFrame, cube: np.ndarray, labels) -> list[Path]:
    from chromestore.splits import split_sizes

    first = ~genes["gene_id"].duplicated().to_numpy()
    ids = [_deepchrome_number(g) for g in genes["gene_id"][first]]
    cube, labels = cube[first], np.asarray(labels)[first]
    n_bins = cube.shape[2]
    sizes = split_sizes(len(ids))
    folder.mkdir(parents=True, exist_ok=True)
    paths, lo = [], 0
    for name, size in zip(("train", "valid", "test"), sizes, strict=True):
        sel = slice(lo, lo + size)
        lo += size
        n = len(ids[sel])
        frame = pd.DataFrame(
            {
                "gene": np.repeat(ids[sel], n_bins),
                "bin": np.tile(np.arange(1, n_bins + 1), n),
                **{
                    m: cube[sel, j].reshape(-1).astype(np.int64)
                    for j, m in enumerate(DEEPCHROME_MARKS)
                },
                "label": np.repeat(labels[sel].astype(np.int64), n_bins),
            }
        )
        path = folder / f"{name}.csv"
        frame.to_csv(path, header=False, index=False)
        paths.append(path)
    return paths


# --- peaks of the simulated counts ------------------------------------------------------


def _peaks_of(genes, starts, counts, mark, depth, bin_size) -> pd.DataFrame:
    """The narrowPeak records of one (cell, mark): chrom, start, end, signal, summit."""
    strand = genes["strand"].to_numpy()
    gvals = to_genome_order(counts, strand)
    gstarts = to_genome_order(starts, strand)
    threshold, background = peak_threshold(mark, depth)
    g, a, b, sig, summit = call_peaks(gvals, threshold, background)
    return pd.DataFrame(
        {
            "chrom": genes["chrom"].to_numpy()[g],
            "start": gstarts[g, a],
            "end": gstarts[g, b - 1] + bin_size,
            "signal": sig,
            "summit": (summit - a) * bin_size + bin_size // 2,
        }
    )


# --- the entry point ------------------------------------------------------------------


def emit(ds: xr.Dataset, out: str | os.PathLike, fmt: str, seed: int = 0) -> Path:
    """Write ``ds`` (a simulated Dataset or store) as ``fmt`` files under ``out``.

    Returns the samplesheet path (``out/samplesheet.csv``, header ``cell,mark,format,
    path``, paths relative to ``out``). One cell is held in memory at a time.
    """
    from chromestore.simulation.model import cell_depth, real_rpkm

    if fmt not in FORMATS:
        raise ValueError(f"unknown emit format {fmt!r}; use one of {', '.join(FORMATS)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    genes, starts = _layout(ds)
    bin_size = int(ds.attrs["bin_size"])
    distinct = genes["distinct"].to_numpy()
    chroms = genes["chrom"].to_numpy()
    marks = [str(m) for m in ds[V.MARK].values]
    rows = []
    for cell in ds[V.CELL].values.astype(object).tolist():
        cube = ds[V.signal.name].sel({V.CELL: cell}).values  # gene, mark, bin (5'→3')
        if np.isnan(cube).any():
            raise ValueError(f"cell {cell}: signal has NaN (not simulated?); cannot emit")
        if fmt == "deepchrome-csv":
            rpkm = real_rpkm()[cell].to_numpy()
            expr = ds[V.expression.name].sel({V.CELL: cell}).values
            labels = expr > np.nanmedian(rpkm)
            order = [marks.index(m) for m in DEEPCHROME_MARKS]
            published = to_genome_order(cube[:, order], genes["strand"].to_numpy())  # as published
            _write_deepchrome(out / cell / "classification", genes, published, labels)
            rows.append((cell, "", fmt, f"{cell}"))
            continue
        depth = cell_depth(cell, seed)
        for j, mark in enumerate(marks):
            counts = cube[distinct, j]
            s = starts[distinct]
            ch = chroms[distinct]
            if fmt == "tagalign":
                which, rstart, minus = reads_from_counts(counts, s, bin_size)
                gene_of = which // counts.shape[1]
                name = f"{cell}-{mark}.tagAlign.gz"
                _write_tagalign(out / name, ch[gene_of], rstart, minus)
            elif fmt == "bigwig":
                tracks = _coverage(
                    np.repeat(ch, counts.shape[1]), s.reshape(-1), counts.reshape(-1), bin_size
                )
                name = f"{cell}-{mark}.bigWig"
                _write_bigwig(out / name, tracks)
            else:  # narrowpeak
                peaks = _peaks_of(
                    genes[distinct].reset_index(drop=True), s, counts, mark, depth, bin_size
                )
                name = f"{cell}-{mark}.narrowPeak"
                _write_narrowpeak(out / name, peaks)
            rows.append((cell, mark, fmt, name))
    sheet = out / SAMPLESHEET
    write_samplesheet(sheet, rows)
    return sheet
