"""Models by name: the listing that ``--help`` reads, and the entries, loaded on first use.

Each model is one entry (:mod:`chromestore.training.entry`: :class:`TorchModel`,
:class:`ArraysModel` or :class:`PooledModel`) in one module; the trainer, the peer
executor, ``chromestore train``, predict, export, analysis and the report read entries and
never name a model. The registry knows every model by a :class:`Listing` first (its name,
where its entry is, and one line about it) and imports the entry's module only when the
model is used, so ``chromestore train --help`` lists every model, plugins included,
without importing torch, scikit-learn or a plugin.

- Built-in models: one line each in :data:`BUILTIN` (the first is ``train``'s default).
- Plugins: an entry point per model in the ``chromestore.models`` group, named like the
  model (``hgb-sums = chromestore_hgb_sums:ENTRY``); its one line is the Summary of the
  plugin's distribution. A plugin that fails to load (import error, not an entry, a name
  taken) gives one :class:`PluginWarning` line, and the error of any later use of that
  model names the cause.
- In this process: :func:`register` (tests, notebooks).
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
import warnings
from dataclasses import dataclass

from chromestore.training.entry import PLOTS as PLOTS  # the report's panels, by plot kind
from chromestore.training.entry import EntryError, ModelEntry

GROUP = "chromestore.models"


@dataclass(frozen=True)
class Listing:
    """A model known by name before its module is imported: what ``--help`` lists.

    ``target`` is ``"module:attribute"`` of its entry; ``kind`` is known for built-ins and
    for loaded entries (None: a plugin not imported yet); ``package``/``version``: the
    plugin's distribution (None: built into chromestore, or registered in this process).
    """

    name: str
    target: str
    kind: str | None
    summary: str
    package: str | None = None
    version: str | None = None

    @property
    def is_plugin(self) -> bool:
        return self.package is not None


#: The built-in models, one line each, in the order help, analysis and the report list them.
BUILTIN = (
    Listing("deepchrome", "chromestore.training.models:ENTRY", "torch", "CNN on marks × bins (Singh et al. 2016)"),
    Listing("shallowchrome", "chromestore.training.peers.shallowchrome:ENTRY", "arrays", "max signal per mark → logistic regression (Frasca et al. 2022)"),
    Listing("svm-bin", "chromestore.training.peers.baselines:SVM_BIN", "arrays", "one RBF SVM per bin (Cheng et al. 2011)"),
    Listing("rf-bestbin", "chromestore.training.peers.baselines:RF_BESTBIN", "arrays", "random forest on each mark's best bin (Dong et al. 2012)"),
    Listing("attentivechrome", "chromestore.training.peers.attentivechrome:ENTRY", "arrays", "attention LSTMs over bins and marks (Singh et al. 2017)"),
    Listing("deepchrome-regression", "chromestore.training.peers.regression_run:ENTRY", "pooled", "DeepChrome's CNN → log(RPKM + 1), over several epigenomes"),
    Listing("pooled", "chromestore.training.pooled:ENTRY", "pooled", "one classifier over several epigenomes, leave one epigenome out"),
)  # fmt: skip
#: ``chromestore train``'s model when none is named: the first built-in.
DEFAULT_MODEL = BUILTIN[0].name


class PluginWarning(RuntimeWarning):
    """A model plugin could not be loaded; the other models still are."""


_lock = threading.RLock()
_listed: dict[str, Listing] | None = None  # every model known by name, built-ins first
_entries: dict[str, ModelEntry] = {}  # the entries loaded (or registered) so far
_failed: dict[Listing, str] = {}  # plugin → why it did not load


def _plugins() -> list[Listing]:
    """The ``chromestore.models`` entry points of the distributions on ``sys.path``.

    These are the files ``importlib.metadata`` reads (``*.dist-info/entry_points.txt`` and
    ``METADATA``, or an ``*.egg-info``'s ``PKG-INFO``; the first distribution of a name
    wins), read here as text: importing ``importlib.metadata`` (with ``email`` and
    ``socket``) would cost ``chromestore train --help`` about 0.1 s of its 0.3 s.
    """
    out, seen = [], set()
    for place in sys.path:
        try:
            folders = sorted(os.listdir(place or "."))
        except OSError:
            continue
        for folder in folders:
            if not folder.endswith((".dist-info", ".egg-info")):
                continue
            stem, _, kind = folder.rpartition(".")
            project = stem.partition("-")[0].lower().replace("_", "-").replace(".", "-")
            if project in seen:
                continue
            seen.add(project)
            path = os.path.join(place or ".", folder)
            points = _section(os.path.join(path, "entry_points.txt"), GROUP)
            if not points:
                continue
            meta = _headers(os.path.join(path, "METADATA" if kind == "dist-info" else "PKG-INFO"))
            package = meta.get("name") or project
            for name, target in points:
                out.append(Listing(name, target, None, meta.get("summary", ""), package,
                                   meta.get("version")))  # fmt: skip
    return out


def _section(path: str, group: str) -> list[tuple[str, str]]:
    """``(name, value)`` of the entry points of ``group`` in an ``entry_points.txt``."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    found, inside = [], False
    for line in (raw.strip() for raw in lines):
        if line.startswith("["):
            inside = line == f"[{group}]"
        elif inside and "=" in line and not line.startswith(("#", ";")):
            name, _, value = line.partition("=")
            found.append((name.strip(), value.strip()))
    return found


def _headers(path: str) -> dict[str, str]:
    """The first ``Name``, ``Version`` and ``Summary`` headers of a core-metadata file."""
    out: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    break  # the headers end at the first blank line
                key, _, value = line.partition(":")
                if key.lower() in ("name", "version", "summary"):
                    out.setdefault(key.lower(), value.strip())
    except OSError:
        pass
    return out


def _listing() -> dict[str, Listing]:
    global _listed
    with _lock:
        if _listed is None:
            listed = {b.name: b for b in BUILTIN}
            for p in _plugins():
                if p.name in listed:
                    _fail(p, f"the name {p.name!r} is taken by {_where(listed[p.name])}")
                    continue
                listed[p.name] = p
            _listed = listed
        return _listed


def _where(listing: Listing) -> str:
    if listing.is_plugin:
        return f"plugin {listing.package} ({listing.target})"
    return "a built-in model" if listing in BUILTIN else "a model registered in this process"


def _fail(listing: Listing, cause: str) -> None:
    """Remember why ``listing`` did not load and say so once, on one line."""
    if listing in _failed:
        return
    _failed[listing] = cause
    warnings.warn_explicit(
        f"chromestore model plugin {listing.name!r} ({listing.package}: {listing.target}) "
        f"was not loaded: {cause}",
        PluginWarning,
        filename=f"<entry point {GROUP}>",
        lineno=0,
        module=__name__,
    )


def _load(listing: Listing) -> ModelEntry | None:
    """The entry of ``listing``, imported now if it was not (None: its plugin failed)."""
    if listing.name in _entries:
        return _entries[listing.name]
    if listing in _failed:
        return None
    module, _, attr = listing.target.partition(":")
    if not listing.is_plugin:  # a built-in that does not load is a bug: let it raise
        entry = getattr(importlib.import_module(module), attr)
    else:
        try:
            entry = getattr(importlib.import_module(module), attr)
        except Exception as e:  # a broken plugin must not break chromestore
            first = (str(e).strip().splitlines() or [""])[0]
            _fail(listing, f"{type(e).__name__}: {first}".rstrip(": "))
            return None
    problem = (
        f"{listing.target} is a {type(entry).__name__}, not a model entry"
        if not isinstance(entry, ModelEntry)
        else f"{listing.target} is model {entry.name!r}; the entry point must be named "
        "like its model"
        if entry.name != listing.name
        else f"it is a {entry.kind} model, listed as {listing.kind}"
        if listing.kind not in (None, entry.kind)
        else ""
    )
    if problem:
        if not listing.is_plugin:
            raise EntryError(f"built-in model {listing.name!r}: {problem}")
        _fail(listing, problem)
        return None
    _entries[listing.name] = entry
    return entry


def listings() -> list[Listing]:
    """Every model by name, without importing any: built-ins, plugins, then those
    registered in this process (loaded plugins with their kind)."""
    with _lock:
        out = []
        for listing in _listing().values():
            entry = _entries.get(listing.name)
            if listing.kind is None and entry is not None:
                listing = Listing(
                    listing.name, listing.target, entry.kind, listing.summary, listing.package,
                    listing.version,
                )  # fmt: skip
            out.append(listing)
        return out


def names() -> list[str]:
    """The names of every model (none imported), in listing order."""
    return [listing.name for listing in listings()]


def source(name: str) -> Listing | None:
    """Where model ``name`` comes from (its listing), or None when it is not known."""
    return _listing().get(name)


def get(name: str) -> ModelEntry:
    """The entry of model ``name`` (its module imported now if needed); ``KeyError``
    naming the known models, or why the plugin of that name did not load."""
    with _lock:
        listing = _listing().get(name)
        entry = None if listing is None else _load(listing)
        if entry is not None:
            return entry
        if listing is not None and listing in _failed:
            raise KeyError(
                f"unknown model {name!r}: its plugin {listing.package} ({listing.target}) "
                f"did not load: {_failed[listing]}"
            )
        known = [n for n, listed in _listing().items() if listed not in _failed]
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(known)}")


def find(name: str) -> ModelEntry | None:
    """The entry of model ``name``, or None (a run may hold models no longer installed)."""
    with _lock:
        listing = _listing().get(name)
        return None if listing is None else _load(listing)


def entries() -> list[ModelEntry]:
    """Every model's entry (all their modules imported), built-ins first, in listing order;
    plugins that fail to load are left out (with their one warning)."""
    with _lock:
        found = [_load(listing) for listing in list(_listing().values())]
        return [e for e in found if e is not None]


def register(entry: ModelEntry, *, replace: bool = False) -> ModelEntry:
    """Add a model in this process; ``replace``: over one of the same name.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> from chromestore.training.entry import ArraysModel, Estimator
    >>> register(ArraysModel("logistic-flat", Estimator(LogisticRegression),
    ...                      defaults={"max_iter": 1000})).kind  # doctest: +SKIP
    'arrays'
    """
    if not isinstance(entry, ModelEntry):
        raise TypeError(f"register a TorchModel, ArraysModel or PooledModel, not {entry!r}")
    with _lock:
        listed = _listing()
        if entry.name in listed and not replace:
            raise ValueError(
                f"model {entry.name!r} is already registered ({_where(listed[entry.name])})"
            )
        old = listed.get(entry.name)
        listed[entry.name] = Listing(
            entry.name, f"{old.target if old else ''}", entry.kind, entry.paper,
            old.package if old else None, old.version if old else None,
        )  # fmt: skip
        _entries[entry.name] = entry
    return entry


def unregister(name: str) -> None:
    """Forget model ``name`` (a no-op if it is not registered); a built-in or plugin of that
    name is listed again as it was."""
    with _lock:
        _entries.pop(name, None)
        listed = _listing()
        original = next((b for b in BUILTIN if b.name == name), None)
        if original is None:
            original = next((p for p in _plugins() if p.name == name), None)
        if original is None:
            listed.pop(name, None)
        else:
            listed[name] = original
