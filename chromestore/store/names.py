"""Which names may enter a store: epigenome (cell) ids and run names.

A name becomes part of attribute keys (``completed["E003/H3K4me3"]``) and of paths
(``runs/NAME``), and ``--cells`` splits on commas, so a name is one path segment made of
letters, digits and ``. _ + -``, starting with a letter or digit. Every place where a
name comes in (``--cells``, samplesheets, RPKM headers, new cells of a store) checks
it here, before anything is written; :func:`select_cells` is the one reading of ``--cells``
(every command, the simulator, the trainer and the peer executor use it).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

#: a valid cell or run name
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
MAX_LENGTH = 128


def problem(name: object, what: str = "cell") -> str | None:
    """Why ``name`` cannot be a ``what`` name (one phrase), or None when it can.

    Examples
    --------
    >>> problem("E003") is None
    True
    >>> problem("E003/x")
    "cell name 'E003/x' contains '/'; use letters, digits and . _ + - only"
    """
    if not isinstance(name, str) or not name:
        return f"empty {what} name"
    if len(name) > MAX_LENGTH:
        return f"{what} name {name[:20]!r}… is longer than {MAX_LENGTH} characters"
    if NAME.fullmatch(name):
        return None
    bad = next((c for c in name if not re.fullmatch(r"[A-Za-z0-9._+-]", c)), None)
    if bad is None:  # only the first character is wrong
        return f"{what} name {name!r} must start with a letter or a digit"
    return f"{what} name {name!r} contains {bad!r}; use letters, digits and . _ + - only"


def check(name: object, what: str = "cell") -> str:
    """Return ``name`` if it is a valid ``what`` name, else raise ``ValueError`` saying why."""
    why = problem(name, what)
    if why is not None:
        raise ValueError(why)
    return name  # type: ignore[return-value]


def check_all(names, what: str = "cell") -> list[str]:
    """:func:`check` each name; the error names the first invalid one."""
    return [check(n, what) for n in names]


def means_all(value: object) -> bool:
    """Whether a ``--cells`` value asks for every epigenome (``"all"``, ``""`` or None)."""
    return value is None or isinstance(value, str) and value.strip() in ("", "all")


def select_cells(
    value: str | int | Sequence[str] | None,
    available: Sequence[str] | None = None,
    *,
    where: str = "the store",
) -> list[str] | None:
    """The one ``--cells`` selector: which epigenomes ``value`` picks out of ``available``.

    ``value`` is ``"all"``, ``""`` or None (every epigenome: ``available``, or None when
    it is not known), a count ``N`` (``3`` or ``"3"``: the first N of ``available``), or
    names (``"E003,E004"`` or a sequence). Names are checked (:func:`problem`), given once
    each and, when ``available`` is known, found there (``where`` names it in the error).
    Every way it can go wrong is a :class:`ValueError` naming what is wrong.

    Examples
    --------
    >>> select_cells("all", ["E003", "E004"])
    ['E003', 'E004']
    >>> select_cells("1", ["E003", "E004"]), select_cells(" E004 , E003", ["E003", "E004"])
    (['E003'], ['E004', 'E003'])
    >>> select_cells("E009", ["E003", "E004"])
    Traceback (most recent call last):
    ...
    ValueError: E009 not in the store (epigenomes there: E003, E004)
    """
    everything = None if available is None else [str(c) for c in available]
    if means_all(value):
        return everything
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        n = int(value)
        if n < 1:
            raise ValueError(f"{n} epigenomes: give a positive number, a list or 'all'")
        if everything is None:
            raise ValueError(f"a count ({n}) needs the epigenomes to take the first {n} from")
        if n > len(everything):
            raise ValueError(
                f"{n} epigenomes asked for; {where} has {len(everything)}: give at most "
                f"{len(everything)}, a list or 'all'"
            )
        return everything[:n]
    items = value.split(",") if isinstance(value, str) else [str(c) for c in value]
    cells = [c.strip() for c in items if c.strip()]
    if not cells:
        raise ValueError(f"no epigenomes named in {value!r}")
    bad = next((problem(c) for c in cells if problem(c)), None)
    if bad is not None:
        raise ValueError(bad)
    twice = sorted({c for c in cells if cells.count(c) > 1})
    if twice:
        raise ValueError(f"{', '.join(twice)} given twice")
    if everything is not None:
        have = set(everything)
        missing = [c for c in cells if c not in have]
        if missing:
            raise ValueError(
                f"{', '.join(missing)} not in {where} "
                f"(epigenomes there: {', '.join(everything) or 'none'})"
            )
    return cells
