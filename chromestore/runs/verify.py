"""``chromestore verify``'s check of the runs: every weights file against its run's records."""

from __future__ import annotations

from collections.abc import Mapping

from chromestore.runs.dataset import list_runs
from chromestore.runs.files import verify_run_files
from chromestore.runs.paths import run_store
from chromestore.store.handle import StoreLike


def verify_runs(
    store: StoreLike, storage_options: Mapping | None = None
) -> tuple[list[str], list[str]]:
    """``(problems, notes)`` of the store's runs: a weights file missing, or changed since
    its run recorded its SHA-256, is a problem (one line naming the file); a run written
    before weights carried checksums is a note."""
    runs = {
        name: run_store(store, name, storage_options).attrs()
        for name in list_runs(store, storage_options)
    }
    return verify_run_files(store, runs, storage_options)
