"""A format plugin: ``counts-tsv`` files, ``gene<TAB>bin<TAB>count`` (bins 1..N, 5'→3')."""

import numpy as np
import xarray as xr

from chromestore.errors import InputError
from chromestore.formats import FormatEntry


def read_counts_tsv(path, request):
    """Counts per (gene, bin), genes labelled as the store's ``ENSGID_SYMBOL`` keys."""
    n_bins = request.layout.n_bins
    genes: dict[str, np.ndarray] = {}
    with open(path) as fh:
        for lineno, line in enumerate(fh, 1):
            gene, bin_, count = (line.rstrip("\n").split("\t") + ["", ""])[:3]
            if not bin_.isdigit() or not 1 <= int(bin_) <= n_bins:
                raise InputError(path, lineno, f"bin {bin_!r} is not a number in 1..{n_bins}")
            try:
                genes.setdefault(gene, np.zeros(n_bins, np.float32))[int(bin_) - 1] = count
            except ValueError:
                raise InputError(path, lineno, f"count {count!r} is not a number") from None
    values = np.array(list(genes.values()), np.float32).reshape(len(genes), n_bins)
    return xr.DataArray(values, dims=("gene", "bin"), coords={"gene": list(genes)}), {
        "genes_in_file": len(genes)
    }


COUNTS_TSV = FormatEntry(
    "counts-tsv",
    (".counts.tsv",),
    "signal",
    read_counts_tsv,
    "reads per bin as `gene<TAB>bin<TAB>count` lines, bins 1..N 5'→3'",
)
