"""Real vs simulated E003 on the sample's 600 genes: the simulator's calibration report.

Per mark, statistics of the real sample (bins 5'→3') and of the simulated E003 draw of
the same genes, each with its tolerance (:data:`TOLERANCE`): what ``chromestore
simulate --calibration`` prints and the tests check.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from chromestore import variables as V
from chromestore.simulation.model import (
    CALIBRATION_CELL,
    TSS_BINS,
    calibration,
    real_e003_sample,
    real_rpkm,
)

#: Upstream (-5 kb → TSS) and downstream (TSS → +5 kb) halves of the 100 bins (5'→3').
UPSTREAM, DOWNSTREAM = slice(0, 50), slice(50, 100)
#: The flanks of the TSS, 0.5-2 kb on each side: at active promoters H3K4me1 sits there,
#: on both sides of a dip at the TSS itself.
FLANKS = np.r_[30:45, 55:70]
#: Statistics with an absolute tolerance; every other one is within a relative one.
ABSOLUTE = {"auc": 0.05}
RELATIVE = 0.25
#: The figures the strand issue names: (mark, statistic).
KEY_FIGURES = (
    ("H3K36me3", "down_up"),
    ("H3K27me3", "ratio"),
    ("H3K9me3", "ratio"),
    ("H3K4me1", "flank_tss"),
)


def _stats(counts: np.ndarray, high: np.ndarray, marks: Sequence[str]) -> pd.DataFrame:
    """Per mark: mean ±500 bp count of high and low genes, ratio, AUC, quantiles, and the
    shape along the gene: downstream/upstream and flanks/TSS."""
    from sklearn.metrics import roc_auc_score

    rows = []
    for j, m in enumerate(marks):
        tss = counts[:, j, TSS_BINS]
        hi, lo = tss[high].mean(), tss[~high].mean()
        q50, q90, q99 = np.percentile(counts[:, j, :], [50, 90, 99])
        rows.append(
            {
                "mark": m,
                "mean_high": hi,
                "mean_low": lo,
                "ratio": hi / lo if lo > 0 else np.nan,
                "auc": roc_auc_score(high, tss.sum(axis=1)),
                "q50": q50,
                "q90": q90,
                "q99": q99,
                "down_up": _ratio(counts[:, j, DOWNSTREAM], counts[:, j, UPSTREAM]),
                "flank_tss": _ratio(counts[high][:, j, FLANKS], tss[high]),
            }
        )
    return pd.DataFrame(rows).set_index("mark")


def _ratio(a: np.ndarray, b: np.ndarray) -> float:
    """Mean of ``a`` over mean of ``b`` (NaN where ``b`` is all zero)."""
    lo = float(np.mean(b))
    return float(np.mean(a)) / lo if lo > 0 else np.nan


def tolerance(statistic: str) -> tuple[float, bool]:
    """``(tolerance, relative)`` of a statistic: ±0.05 for AUCs, else ±25 % of the real value."""
    if statistic in ABSOLUTE:
        return ABSOLUTE[statistic], False
    return RELATIVE, True


def within_tolerance(report: pd.DataFrame) -> pd.Series:
    """(mark, statistic) → whether the simulated figure is within its tolerance of the real."""
    ok = []
    for (_, stat), row in report.iterrows():
        tol, relative = tolerance(stat)
        ok.append(abs(row.simulated - row.real) <= (tol * abs(row.real) if relative else tol))
    return pd.Series(ok, index=report.index, name="ok")


def calibration_report(seed: int = 0) -> pd.DataFrame:
    """Real vs simulated E003 on the sample's 600 genes, per mark and statistic.

    Columns ``real``, ``simulated``, ``tolerance`` (absolute, or a fraction of the real
    value where ``relative``) and ``ok``; index (mark, statistic) with statistics
    ``mean_high``/``mean_low`` (mean count in the ±500 bp around the TSS of highly /
    lowly expressed genes, label = RPKM above E003's median), ``ratio`` (high/low),
    ``auc`` (of the ±500 bp sum for separating high from low genes), count quantiles
    ``q50``, ``q90``, ``q99`` over the central 100 bins, ``down_up`` (mean count from
    the TSS to +5 kb over that from -5 kb to the TSS, 5'→3': H3K36me3 rises into the
    gene body) and ``flank_tss`` (highly expressed genes' mean count 0.5-2 kb either side
    over that in the ±500 bp: H3K4me1's flanks around the dip at active TSSs).
    """
    from chromestore.simulation.dataset import simulate

    sample = real_e003_sample()
    keys = [str(k) for k in sample[V.GENE].values]
    sim = simulate(cells=[CALIBRATION_CELL], genes=keys, seed=seed)
    expr = sim[V.expression.name].values[0]
    median = np.nanmedian(real_rpkm()[CALIBRATION_CELL].to_numpy())
    high = expr > median
    marks = list(sample[V.MARK].values)
    real = _stats(sample.values, high, marks)
    simulated = _stats(
        sim[V.signal.name].isel({V.CELL: 0}).sel({V.MARK: marks}).values, high, marks
    )
    out = pd.DataFrame({"real": real.stack(), "simulated": simulated.stack()})
    out.index.names = ["mark", "statistic"]
    tol = [tolerance(stat) for _, stat in out.index]
    out["tolerance"] = [t for t, _ in tol]
    out["relative"] = [r for _, r in tol]
    out["ok"] = within_tolerance(out)
    return out


def real_down_up_by_strand(mark: str = "H3K36me3") -> dict[str, float]:
    """Downstream/upstream of ``mark`` in the real sample (5'→3') for ``+`` and ``-`` genes:
    both above 1 for H3K36me3 when the sample is oriented right (in genome order the
    ``-`` genes' ratio is below 1)."""
    from chromestore.genes import reference_strands

    sample = real_e003_sample().sel({V.MARK: mark})
    strand = reference_strands().reindex(sample[V.GENE].values.astype(object)).to_numpy(object)
    x = sample.values
    return {
        s: _ratio(x[strand == s][:, DOWNSTREAM], x[strand == s][:, UPSTREAM]) for s in ("+", "-")
    }


def format_report(report: pd.DataFrame) -> str:
    """The calibration report as a side-by-side text table, with each tolerance."""
    by_strand = real_down_up_by_strand()
    n_ok = int(report["ok"].sum())
    lines = [
        f"calibration: real E003 sample vs simulated E003, same {calibration().n_genes} genes, "
        "bins 5'→3'",
        f"real H3K36me3 downstream/upstream: {by_strand['+']:.2f} on + genes, "
        f"{by_strand['-']:.2f} on - genes",
        f"{'mark':<9} {'statistic':<10} {'real':>10} {'simulated':>10} {'sim/real':>9} "
        f"{'tolerance':>10}  within",
    ]
    for (mark, stat), row in report.iterrows():
        rel = row.simulated / row.real if row.real else np.nan
        tol = f"±{row.tolerance:.0%}" if row.relative else f"±{row.tolerance:g}"
        lines.append(
            f"{mark:<9} {stat:<10} {row.real:>10.3f} {row.simulated:>10.3f} {rel:>9.3f} "
            f"{tol:>10}  {'yes' if row.ok else 'NO'}"
        )
    lines.append(f"{n_ok} of {len(report)} figures within tolerance")
    return "\n".join(lines)
