"""What a store holds, as plain data: the facts ``chromestore info`` prints.

:func:`store_info` summarises a store (format, layout, dims, chunks, size on disk, per
(cell, mark) completion of the signal and the peaks, the signal's units, the epigenomes with expression,
checksums, the chunks recorded written and missing) and its runs (:func:`run_summaries`), as a JSON-ready dict.
"""

from __future__ import annotations

from collections.abc import Mapping

from chromestore import runs as R
from chromestore import store as S
from chromestore import variables as V
from chromestore.genes import strand_counts
from chromestore.store import records

#: The store's dims in the order they are shown.
DIM_ORDER = (V.CELL, V.GENE, V.MARK, V.BIN)


def store_info(path: S.StoreLike, storage_options: Mapping | None = None) -> dict:
    """The facts about the store at ``path``, as a JSON-ready dict.

    Examples
    --------
    >>> facts = store_info("demo-store.zarr")  # doctest: +SKIP
    >>> facts["dims"], facts["signal_completed"]["E003"]  # doctest: +SKIP
    ({'cell': 56, 'gene': 1501, 'mark': 5, 'bin': 100}, ['H3K4me3', ...])
    """
    ds = S.open_store(path, storage_options)
    table = records.completion_table(ds)
    chunks = {
        name: dict(zip(ds[name].dims, ds[name].encoding.get("chunks", ()), strict=False))
        for name in (V.signal.name, V.expression.name, V.peak_max.name)
    }
    peaks = records.completed(ds, V.peak_max.name)
    units = records.signal_units(ds)
    return {
        "path": str(path),
        "format": f"{ds.attrs['format']} v{ds.attrs['format_version']}",
        "orientation": ds.attrs.get("orientation"),
        "strands": strand_counts(ds[V.gene_strand.name].values),
        "genome": ds.attrs.get("genome"),
        "window": ds.attrs.get("window"),
        "bin_size": ds.attrs.get("bin_size"),
        "dims": {
            k: int(ds.sizes[k])
            for k in sorted(ds.sizes, key=lambda d: DIM_ORDER.index(d) if d in DIM_ORDER else 9)
        },
        "cells": [str(c) for c in ds[V.CELL].values],
        "marks": [str(m) for m in ds[V.MARK].values],
        "chunks": chunks,
        "size_bytes": S.size_on_disk(path, storage_options),
        "signal_completed": {c: [m for m in table.columns if table.loc[c, m]] for c in table.index},
        "signal_units": {
            c: {m: str(units.loc[c, m].values) for m in table.columns if table.loc[c, m]}
            for c in table.index
        },
        "expression_cells": sorted(ds.attrs.get("expression", {})),
        "peaks_completed": {c: [m for m in table.columns if (c, m) in peaks] for c in table.index},
        "runs": run_summaries(path, storage_options),
        "checksums": checksums(ds),
        "missing_chunks": [
            {"variable": m.variable, "cell": m.cell, "key": m.key}
            for m in S.missing_chunks(path, storage_options)
        ],
    }


def checksums(ds) -> str:
    """``"every chunk"``, ``"none"`` or ``"some arrays"``: whether the store's chunks carry
    a checksum."""
    from chromestore.store.integrity import has_checksum

    has = [has_checksum(ds[v].encoding.get("compressors", ())) for v in ds.variables]
    return "every chunk" if all(has) else "none" if not any(has) else "some arrays"


def run_summaries(path: S.StoreLike, storage_options: Mapping | None = None) -> list[dict]:
    """Name, models, epigenomes and date of each run in the store; a run holding only a
    model's predictions (``chromestore predict --model-dir``) lists that model as
    ``MODEL (predictions)`` and the epigenomes scored."""
    out = []
    for name in R.list_runs(path, storage_options):
        scored = R.predictions_summary(path, name, storage_options)
        if R.run_kind(path, name, storage_options) == "predictions":
            attrs = R.run_store(path, name, storage_options).attrs()
            out.append(
                {
                    "name": name,
                    "models": [
                        f"{(scored or {}).get('model') or attrs.get('model')} (predictions)"
                    ],
                    "cells": (scored or {}).get("cells", []),
                    "created": attrs.get("created") or "",
                    "predictions": (scored or {}).get("cells", []),
                }
            )
            continue
        run = R.open_run(path, name, storage_options)
        attrs = run.attrs
        out.append(
            {
                "name": name,
                "models": sorted(attrs.get("models", {})),
                "cells": [str(c) for c in run[V.CELL].values],
                "created": attrs.get("created") or attrs.get("finished") or "",
                "predictions": (scored or {}).get("cells", []),
            }
        )
    return out
