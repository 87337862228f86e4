"""chromestore: histone marks around TSSs in a chunked Zarr store, for predicting expression.

The store is a plain ``xr.Dataset`` with dims cell × gene × mark × bin (see
:mod:`chromestore.variables`). The packages show the architecture: :mod:`chromestore.store`
(the versioned Zarr store), :mod:`chromestore.counting` and :mod:`chromestore.formats`
(reading the files REMC and ENCODE publish), :mod:`chromestore.ingest`,
:mod:`chromestore.simulation`, :mod:`chromestore.runs`; above them
:mod:`chromestore.training`, :mod:`chromestore.analysis` and the command line,
:mod:`chromestore.app`. The core never imports torch. The names below load on first
use, so ``import chromestore`` (and ``chromestore --help``) stays fast.
"""

from chromestore._lazy import attach

_attached, __dir__, __all__ = attach(
    __name__,
    {
        "DEFAULT_MARKS": ".variables",
        "validate": ".variables",
        "SchemaError": ".errors",
        "StoreError": ".errors",
        "InputError": ".errors",
        "Store": ".store.handle",
        "add_cells": ".store.cells",
        "create_store": ".store.creation",
        "open_store": ".store.dataset",
        "align_expression": ".expression",
        "read_rpkm": ".expression",
        "read_gene_bed": ".genes",
        "read_genes": ".genes",
        "read_gtf": ".genes",
        "compute_labels": ".labels",
        "label_summary": ".labels",
        "assign_splits": ".splits",
        "split_sizes": ".splits",
        "list_runs": ".runs.dataset",
        "open_run": ".runs.dataset",
        "write_run": ".runs.write",
        "simulate": ".simulation.dataset",
        "datasets": ".datasets",
        "load_model": ".training.export",
    },
    modules=("datasets",),
)


def __getattr__(name: str):
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("chromestore")
        except PackageNotFoundError:
            return "unknown"
    return _attached(name)
