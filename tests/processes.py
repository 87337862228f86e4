"""Which processes of a test are still alive."""

from __future__ import annotations

import psutil


def alive(pids) -> list[int]:
    """The processes of ``pids`` still running (zombies, which wait only to be reaped,
    count as gone)."""
    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.NoSuchProcess:
            pass
    return out
