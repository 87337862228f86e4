"""Which names may enter a store: epigenome (cell) ids and run names.

A name becomes part of attribute keys (``completed["E003/H3K4me3"]``) and of paths
(``runs/NAME``), and ``--cells`` splits on commas, so a name is one path segment made of
letters, digits and ``. _ + -``, starting with a letter or digit. Every place where a
name comes in (``--cells``, samplesheets, RPKM headers, new cells of a store) checks
it here, before anything is written.
"""

from __future__ import annotations

import re

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
