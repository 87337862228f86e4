"""The format registry: what each samplesheet ``format`` is, how it is read, what it fills.

One :class:`FormatEntry` per format (name, file suffixes, the store variable it fills,
its reader, a description) drives samplesheet validation, format inference, the ingest
engine, ``chromestore ingest --help`` and the README's table. The built-in formats are
declared in :mod:`chromestore.formats.builtin`. Other packages add formats through the
``chromestore.formats`` entry-point group, each entry point naming a ``FormatEntry``
(as xarray finds its backends); they are loaded the first time the registry is consulted,
and one that fails to load is skipped with a one-line :class:`FormatPluginWarning`
naming it. Code may also call :func:`register` directly.

A reader is called as ``read(path, request)`` (:class:`ReadRequest`) and returns
``(values, stats)``: ``stats`` a dict of JSON-able provenance, ``values`` either

* a float array on the store's genes, in store order: (gene, bin) for ``signal``,
  (gene,) for ``peak_max`` (the samplesheet row's mark), or
* an ``xr.DataArray`` labelled by gene: dims ``gene`` [, ``mark``] [, ``bin``], its gene
  labels the store's ``gene`` keys (``ENSGID_SYMBOL``) or, with
  ``attrs["gene_key"] = "gene_id"``, Ensembl ids. The engine aligns it on the store's
  genes (store genes without a label stay NaN) and centre-crops wider windows.
* for ``expression``, a ``pandas.Series`` of one epigenome's values indexed by unversioned
  Ensembl gene id (``stats["quantity"]`` names what they are: TPM, FPKM); the plan joins
  the epigenomes' series into the expression matrix.

Readers validate their whole input before returning and raise
:class:`chromestore.errors.InputError` naming file and line; nothing is written
until every file of an epigenome was read.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterable

from chromestore.formats.builtin import BUILTIN
from chromestore.formats.entry import TARGETS, FormatEntry, ReadRequest

__all__ = [
    "ENTRY_POINT_GROUP",
    "TARGETS",
    "FormatEntry",
    "FormatPluginWarning",
    "ReadRequest",
    "builtin_entries",
    "entries",
    "get",
    "infer_format",
    "markdown_table",
    "names",
    "register",
    "unregister",
]

#: the entry-point group other packages register formats under
ENTRY_POINT_GROUP = "chromestore.formats"


class FormatPluginWarning(RuntimeWarning):
    """A format plugin could not be loaded (it is skipped)."""


_entries: dict[str, FormatEntry] = {}
_loaded = False
_lock = threading.RLock()


def _add(entry: FormatEntry, replace: bool) -> None:
    if not isinstance(entry, FormatEntry):
        raise TypeError(f"{entry!r} is not a FormatEntry")
    if entry.name in _entries and not replace:
        raise ValueError(f"format {entry.name!r} is already registered")
    for other in _entries.values():
        shared = set(entry.suffixes) & set(other.suffixes)
        if other.name != entry.name and shared:
            raise ValueError(
                f"format {entry.name!r}: suffix {sorted(shared)[0]} is already "
                f"format {other.name!r}'s"
            )
    _entries[entry.name] = entry


def _load_plugin(ep) -> None:
    try:
        _add(ep.load(), replace=False)
    except Exception as e:  # a broken plugin must not break ingest of the other formats
        problem = (str(e).strip().splitlines() or [""])[0]
        warnings.warn_explicit(
            f"chromestore format plugin {ep.name!r} ({ep.value}) skipped: "
            f"{type(e).__name__}: {problem}",
            FormatPluginWarning,
            filename=f"<entry point {ENTRY_POINT_GROUP}>",
            lineno=0,
            module=__name__,
        )


def _ensure_loaded() -> None:
    """The built-in formats, then the entry points' (once, on first use)."""
    global _loaded
    if _loaded:
        return
    with _lock:
        if _loaded:
            return
        from importlib.metadata import entry_points

        for entry in BUILTIN:
            _add(entry, replace=False)
        _loaded = True  # before the plugins: a plugin may consult the registry
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            _load_plugin(ep)


def register(entry: FormatEntry, *, replace: bool = False) -> FormatEntry:
    """Add a format (``replace``: over one of the same name); returns it.

    Raises ``ValueError`` when the name is taken or a suffix is another format's.
    """
    _ensure_loaded()
    with _lock:
        _add(entry, replace)
    return entry


def unregister(name: str) -> None:
    """Remove a format (a no-op when it is not registered)."""
    _ensure_loaded()
    with _lock:
        _entries.pop(name, None)


def entries() -> list[FormatEntry]:
    """Every registered format: the built-in ones first, then plugins in load order."""
    _ensure_loaded()
    return list(_entries.values())


def names() -> list[str]:
    return [e.name for e in entries()]


def get(name: str) -> FormatEntry:
    """The entry of format ``name``; ``KeyError`` naming the known formats."""
    _ensure_loaded()
    try:
        return _entries[name]
    except KeyError:
        raise KeyError(f"unknown format {name!r} (known: {', '.join(_entries)})") from None


def infer_format(path: str) -> str | None:
    """The format a file name implies (its longest matching suffix), or None."""
    name = str(path).replace("\\", "/").rsplit("/", 1)[-1].lower()
    if name.endswith(".gz"):
        name = name[:-3]
    best = None
    for entry in entries():
        for suffix in entry.suffixes:
            if name.endswith(suffix) and (best is None or len(suffix) > len(best[0])):
                best = (suffix, entry.name)
    return None if best is None else best[1]


def builtin_entries() -> list[FormatEntry]:
    """The formats chromestore itself ships (no plugins)."""
    return list(BUILTIN)


def markdown_table(formats: Iterable[FormatEntry] | None = None) -> str:
    """The formats as a Markdown table (the README's, from :func:`builtin_entries`)."""
    rows = ["| format | fills | inferred from (also `.gz`) | how |", "|---|---|---|---|"]
    for e in entries() if formats is None else formats:
        suffixes = ", ".join(f"`*{s}`" for s in e.suffixes) or "— (name it)"
        rows.append(f"| `{e.name}` | `{e.target}` | {suffixes} | {e.description} |")
    return "\n".join(rows) + "\n"
