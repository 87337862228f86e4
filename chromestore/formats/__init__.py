"""Samplesheet formats: the registry, and the readers for the files REMC, ENCODE and the
published datasets ship.

:mod:`chromestore.formats.registry` says what each format is (:class:`FormatEntry`);
:mod:`chromestore.formats.builtin` declares chromestore's own; other packages add theirs
through the ``chromestore.formats`` entry-point group. Each reader parses and validates
its input completely and returns plain arrays (nothing is written to a store here), so a
bad file can never leave a store half written. Errors are
:class:`chromestore.errors.InputError` naming file and line.

The registry loads nothing heavy (``chromestore ingest --help`` lists the formats
quickly); the CSV readers below load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from chromestore.formats.registry import (
    ENTRY_POINT_GROUP,
    TARGETS,
    FormatEntry,
    FormatPluginWarning,
    ReadRequest,
    builtin_entries,
    entries,
    get,
    infer_format,
    markdown_table,
    names,
    register,
    unregister,
)

#: names of :mod:`chromestore.formats.csv` available here, loaded on first use
_CSV = ("DEEPCHROME_MARKS", "DEEPDIFF_MARKS", "centre_crop", "deepchrome_gene_id",
        "read_deepchrome_csv", "read_deepdiff_csv")

__all__ = [
    "DEEPCHROME_MARKS",
    "DEEPDIFF_MARKS",
    "ENTRY_POINT_GROUP",
    "TARGETS",
    "FormatEntry",
    "FormatPluginWarning",
    "ReadRequest",
    "builtin_entries",
    "centre_crop",
    "deepchrome_gene_id",
    "entries",
    "get",
    "infer_format",
    "markdown_table",
    "names",
    "read_deepchrome_csv",
    "read_deepdiff_csv",
    "register",
    "unregister",
]


def __getattr__(name: str):
    if name not in _CSV:
        raise AttributeError(f"module 'chromestore.formats' has no attribute {name!r}")
    value = getattr(importlib.import_module("chromestore.formats.csv"), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:  # for type checkers and IDEs
    from chromestore.formats.csv import (
        DEEPCHROME_MARKS,
        DEEPDIFF_MARKS,
        centre_crop,
        deepchrome_gene_id,
        read_deepchrome_csv,
        read_deepdiff_csv,
    )
