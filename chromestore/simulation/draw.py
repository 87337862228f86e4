"""The simulator's draw: one epigenome's counts from its fitted model, gene by gene.

Each gene's values come from its own random stream keyed by ``(seed, cell, gene)``
(:mod:`chromestore.simulation.kernels`), so any subset of cells or genes, in any order and
any chunking, gives the same values as one full draw, and a sample of ``n`` genes costs
``n`` genes. Counts come out in the 5'→3' frame of the store
(:mod:`chromestore.simulation.model`); the emitters map them back to genome coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from chromestore.simulation.model import (
    Calibration,
    calibration,
    cell_depth,
    cell_key,
    snr_weight,
)

_UINT64 = (1 << 64) - 1


@dataclass(frozen=True)
class CellModel:
    """What makes one epigenome's draw its own (small; shipped to Dask workers)."""

    cell: str
    weight: float
    depth: float
    seed: int


def cell_model(cell: str, seed: int = 0) -> CellModel:
    """The generative model of ``cell``: its signal-to-noise weight and depth."""
    return CellModel(cell, snr_weight(cell), cell_depth(cell, seed), int(seed))


def draw_cell(
    model: CellModel, genes: np.ndarray, scores: np.ndarray, cal: Calibration | None = None
) -> np.ndarray:
    """Signal (gene, mark, bin) float32 of one cell for genes at positions ``genes`` of the
    full list, whose expression scores in the cell are ``scores`` (NaN: not measured).

    Values depend only on the seed, the cell, the gene and its score.
    """
    from chromestore.simulation.kernels import draw_genes

    cal = calibration() if cal is None else cal
    genes = np.ascontiguousarray(genes, dtype=np.int64)
    scores = np.ascontiguousarray(scores, dtype=np.float64)
    if genes.shape != scores.shape:
        raise ValueError(f"{len(genes)} genes but {len(scores)} scores")
    out = np.empty((len(genes),) + cal.shares.shape[1:], dtype=np.float32)
    draw_genes(
        scores,
        genes,
        np.uint64(model.seed & _UINT64),
        np.uint64(cell_key(model.cell)),
        float(model.weight),
        float(model.depth),
        cal.grid,
        cal.state_p,
        cal.quantiles,
        cal.chol,
        cal.shares,
        cal.regions,
        cal.concentration,
        out,
    )
    return out
