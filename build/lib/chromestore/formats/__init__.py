"""Readers for the files REMC, ENCODE and the published datasets ship.

Each reader parses and validates its input completely and returns plain arrays
(nothing is written to a store here), so a bad file can never leave a store half
written. Errors are :class:`chromestore.errors.InputError` naming file and line.
"""

from chromestore.formats.csv import (
    DEEPCHROME_MARKS,
    DEEPDIFF_MARKS,
    centre_crop,
    deepchrome_gene_id,
    read_deepchrome_csv,
    read_deepdiff_csv,
)

__all__ = [
    "DEEPCHROME_MARKS",
    "DEEPDIFF_MARKS",
    "centre_crop",
    "deepchrome_gene_id",
    "read_deepchrome_csv",
    "read_deepdiff_csv",
]
