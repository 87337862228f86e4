"""Writes tests/data/frozen_v<N>.zarr for the current format version N: the tiny store that
every later version must still open (or convert, with ``chromestore upgrade``).

Run once per format version; never regenerate an existing frozen store (this script
refuses to). v1: the first 12 shipped genes, all stored as '+' (genome order); v2: the
same genes with their strands (bins 5'→3', 7 of the 12 on the minus strand).
"""

from pathlib import Path

import numpy as np
import xarray as xr

import chromestore
from chromestore import store as S
from chromestore import variables as V
from chromestore.genes import read_gene_bed
from chromestore.store import records

HERE = Path(__file__).parent
genes = read_gene_bed(HERE.parent / "data" / "gene_windows.hg19.bed.gz").iloc[:12]
path = HERE / "data" / f"frozen_v{V.FORMAT_VERSION}.zarr"
if path.exists():
    raise SystemExit(f"{path} exists; frozen stores are never regenerated")
chromestore.create_store(path, genes, cells=["E003", "E004"])
sig = np.full((2, 12, 5, 100), np.nan, np.float32)
sig[0] = np.arange(6000, dtype=np.float32).reshape(12, 5, 100)
expr = np.stack([np.zeros(12), np.arange(12)]).astype(np.float32)
S.write_region(
    path,
    xr.Dataset(
        {"signal": (("cell", "gene", "mark", "bin"), sig), "expression": (("cell", "gene"), expr)}
    ),
    {"cell": slice(0, 2)},
)
records.mark_completed(path, "E003", "H3K4me3", {"path": "synthetic", "format": "test"})
