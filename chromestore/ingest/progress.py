"""Reads counted so far during an ingest, reported per block by the tasks that count them."""

from __future__ import annotations

import threading

from chromestore.executors import emit

#: event topic of the reads counted in a file: ``(run, sample index, reads)``
PROGRESS_TOPIC = "chromestore-ingest-reads"


def report_reads(run: str, index: int, n_reads: int) -> None:
    """A counting task's progress callback: ``n_reads`` more reads counted in file ``index``
    of ingest ``run`` (a worker event on Dask; a call of the subscribers in process)."""
    emit(PROGRESS_TOPIC, (run, index, int(n_reads)))


class ReadsProgress:
    """Reads counted so far across files, from per-block reports (possibly arriving
    after their file finished) and per-file totals; shown on a tqdm bar's postfix."""

    def __init__(self, bar=None):
        self.bar = bar
        self.live: dict[int, int] = {}
        self.final: dict[int, int] = {}
        self._lock = threading.Lock()

    @property
    def reads(self) -> int:
        keys = self.live.keys() | self.final.keys()
        return sum(max(self.live.get(k, 0), self.final.get(k, 0)) for k in keys)

    def block(self, index: int, n_reads: int) -> None:
        with self._lock:
            self.live[index] = self.live.get(index, 0) + int(n_reads)
            self._show()

    def file(self, index: int, n_reads: int) -> None:
        with self._lock:
            self.final[index] = int(n_reads)
            self._show()

    def _show(self) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(f"{self.reads:,} reads")

    def listener(self, run: str):
        """An event handler that takes the block reports of ingest ``run`` (others ignored)."""

        def on_event(event) -> None:
            r, i, n = event[1]
            if r == run:
                self.block(i, n)

        return on_event
