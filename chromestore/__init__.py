"""chromestore: histone marks around TSSs in a chunked Zarr store, for predicting expression.

The store is a plain ``xr.Dataset`` with dims cell × gene × mark × bin (see
:mod:`chromestore.variables`). The core never imports torch; training lives in
:mod:`chromestore.training`, analysis in :mod:`chromestore.analysis`, the command line in
:mod:`chromestore.app`. The names below load on first use, so ``import chromestore`` (and
``chromestore --help``) stays fast.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING

#: public name → module that defines it
_EXPORTS = {
    "DEFAULT_MARKS": "chromestore.variables",
    "SchemaError": "chromestore.errors",
    "StoreError": "chromestore.errors",
    "InputError": "chromestore.errors",
    "Store": "chromestore.store",
    "add_cells": "chromestore.store",
    "create_store": "chromestore.store",
    "open_store": "chromestore.store",
    "align_expression": "chromestore.expression",
    "read_rpkm": "chromestore.expression",
    "read_gene_bed": "chromestore.genes",
    "read_genes": "chromestore.genes",
    "read_gtf": "chromestore.genes",
    "compute_labels": "chromestore.labels",
    "label_summary": "chromestore.labels",
    "assign_splits": "chromestore.splits",
    "split_sizes": "chromestore.splits",
    "list_runs": "chromestore.runs",
    "open_run": "chromestore.runs",
    "write_run": "chromestore.runs",
    "simulate": "chromestore.simulate",
    "validate": "chromestore.variables",
    "datasets": "chromestore.datasets",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("chromestore")
        except PackageNotFoundError:
            return "unknown"
    if name not in _EXPORTS:
        raise AttributeError(f"module 'chromestore' has no attribute {name!r}")
    module = importlib.import_module(_EXPORTS[name])
    value = module if name == "datasets" else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _Package(types.ModuleType):
    """The package's module type: importing the submodule ``chromestore.simulate`` (as
    ``from chromestore.simulate import real_rpkm`` does) must not replace the function
    ``chromestore.simulate`` by that module; the function loads through ``__getattr__``."""

    def __setattr__(self, name: str, value) -> None:
        if isinstance(value, types.ModuleType) and _EXPORTS.get(name) == value.__name__ \
                and name != "datasets":
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


if TYPE_CHECKING:  # for type checkers and IDEs
    from chromestore import datasets
    from chromestore.errors import InputError, SchemaError, StoreError
    from chromestore.expression import align_expression, read_rpkm
    from chromestore.genes import read_gene_bed, read_genes, read_gtf
    from chromestore.labels import compute_labels, label_summary
    from chromestore.runs import list_runs, open_run, write_run
    from chromestore.simulate import simulate
    from chromestore.splits import assign_splits, split_sizes
    from chromestore.store import Store, add_cells, create_store, open_store
    from chromestore.variables import DEFAULT_MARKS, validate
