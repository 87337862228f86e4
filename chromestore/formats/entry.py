"""What a samplesheet format is: :class:`FormatEntry` and the :class:`ReadRequest` its reader gets.

The types alone, so that the built-in formats (:mod:`chromestore.formats.builtin`) and the
registry (:mod:`chromestore.formats.registry`) both import them and neither the other.
A reader is called as ``read(path, request)`` and returns ``(values, stats)`` (see
:mod:`chromestore.formats.registry`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chromestore.variables import SIGNAL_UNITS

if TYPE_CHECKING:
    from chromestore.counting import BinLayout

#: the store variables a format can fill (``expression``: one epigenome's expression, read
#: before any signal, in the plan)
TARGETS = ("signal", "peak_max", "expression")


@dataclass(frozen=True)
class ReadRequest:
    """What a reader is given besides the file's path."""

    #: the samplesheet row's mark; "" where the row takes every mark the file holds
    mark: str
    #: where every store gene's bins lie on the genome (counters need it; ``n_genes``,
    #: ``n_bins`` and ``bin_size`` size the output); None for ``expression`` formats
    layout: BinLayout | None
    #: called with the number of reads counted since the last call, when given
    progress: Callable[[int], None] | None = None
    #: ``expression`` formats: the quantity to read (``TPM`` or ``FPKM``; ``ingest
    #: --quantity``)
    quantity: str = "TPM"


@dataclass(frozen=True)
class FormatEntry:
    """One samplesheet format.

    Parameters
    ----------
    name
        The samplesheet ``format`` value (lower case, no spaces or commas).
    suffixes
        File name endings that imply this format when the samplesheet leaves it empty
        (matched case-insensitively, after dropping a ``.gz``); may be empty.
    target
        The store variable filled: ``"signal"`` (cell, gene, mark, bin),
        ``"peak_max"`` (cell, gene, mark) or ``"expression"`` (cell, gene: the reader
        returns a ``pandas.Series`` indexed by unversioned Ensembl gene id; the row
        has no mark).
    read
        ``read(path, request) -> (values, stats)``; see the module docstring. It runs
        in a Dask worker when ingest runs on a cluster, so it must be importable there.
    description
        One line for ``--help`` and the README: what the format is and how it is read.
    needs_mark
        Whether a samplesheet row must name a mark (False: the file holds every mark).
    units
        What a ``signal`` format's values are when the samplesheet names no units (one of
        :data:`chromestore.variables.SIGNAL_UNITS`; default ``reads``); ``""`` for the other
        targets.
    """

    name: str
    suffixes: tuple[str, ...]
    target: str
    read: Callable[[str, ReadRequest], tuple[Any, dict]]
    description: str
    needs_mark: bool = True
    units: str | None = None

    def __post_init__(self):
        name = str(self.name)
        if not name or name != name.strip().lower() or any(c in name for c in ", \t"):
            raise ValueError(f"format name {self.name!r}: use lower case, no spaces or commas")
        if self.target not in TARGETS:
            raise ValueError(f"format {name}: target {self.target!r} is not one of {TARGETS}")
        suffixes = tuple(str(s).lower() for s in self.suffixes)
        bad = [s for s in suffixes if not s.startswith(".") or s == ".gz"]
        if bad:
            raise ValueError(f"format {name}: suffixes {bad} must start with '.' (not '.gz')")
        if not callable(self.read):
            raise ValueError(f"format {name}: read must be callable")
        object.__setattr__(self, "suffixes", suffixes)
        units = self.units
        if self.target != "signal":
            if units:
                raise ValueError(f"format {name}: units are for signal formats ({units!r})")
            units = ""
        elif units is None:
            units = SIGNAL_UNITS[0]
        elif units not in SIGNAL_UNITS:
            raise ValueError(f"format {name}: units {units!r} is not one of {SIGNAL_UNITS}")
        object.__setattr__(self, "units", units)
