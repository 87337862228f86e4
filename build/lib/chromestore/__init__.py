"""chromestore: histone marks around TSSs in a chunked Zarr store, for predicting expression.

The store is a plain ``xr.Dataset`` with dims cell × gene × mark × bin (see
:mod:`chromestore.variables`). This package never imports torch.
"""

from chromestore.expression import align_expression, read_rpkm
from chromestore.genes import read_gene_bed, read_genes, read_gtf
from chromestore.labels import compute_labels, label_summary
from chromestore.runs import list_runs, open_run, write_run
from chromestore.simulate import simulate
from chromestore.splits import assign_splits, split_sizes
from chromestore.store import add_cells, create_store, open_store
from chromestore.variables import DEFAULT_MARKS, SchemaError, validate

__all__ = [
    "DEFAULT_MARKS",
    "SchemaError",
    "add_cells",
    "align_expression",
    "assign_splits",
    "compute_labels",
    "create_store",
    "label_summary",
    "open_store",
    "open_run",
    "list_runs",
    "write_run",
    "read_gene_bed",
    "read_genes",
    "read_gtf",
    "read_rpkm",
    "simulate",
    "split_sizes",
    "validate",
]
