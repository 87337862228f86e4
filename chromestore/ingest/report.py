"""What an ingest did, as ``chromestore ingest`` prints it."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from chromestore.expression import Alignment


def short_list(items: Sequence[str], n: int = 8) -> str:
    """The first ``n`` items, comma-separated, and how many there are in all."""
    items = list(items)
    return ", ".join(items[:n]) + (f", … ({len(items)} in all)" if len(items) > n else "")


@dataclass
class Done:
    """What one (cell, mark, target) ingestion did, for the summary."""

    cell: str
    mark: str
    target: str
    file: str
    stats: dict

    def line(self) -> str:
        s = self.stats
        head = f"  {self.cell:<6} {self.mark:<9} {self.target:<8}"
        tail = f"{s.get('seconds', 0):.2f} s  {os.path.basename(self.file)}"
        if "reads" not in s:
            return (
                f"{head} genes matched {s.get('genes_matched')}, unmatched "
                f"{s.get('genes_unmatched')}, {tail}"
            )
        skipped = s.get("skipped_chromosomes", {})
        sk = ", ".join(f"{k} {v}" for k, v in list(skipped.items())[:4])
        sk += " …" if len(skipped) > 4 else ""
        return (
            f"{head} {s['reads']:>11,} seen {s['reads_in_windows']:>11,} in windows "
            f"{s.get('skipped_reads', 0):>9,} skipped{' (' + sk + ')' if sk else ''}  {tail}"
        )


@dataclass
class IngestReport:
    created: bool = False
    cells_added: list[str] = field(default_factory=list)
    expression: Alignment | None = None
    lines: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        out = []
        if self.created:
            out.append("created a new store")
        if self.cells_added:
            out.append(f"added {len(self.cells_added)} epigenomes: {short_list(self.cells_added)}")
        if self.expression is not None:
            out.append(self.expression.summary())
            if self.expression.missing_genes:
                out.append("genes without expression: " + short_list(self.expression.missing_genes))
        return "\n".join(out + self.lines)
