"""The errors chromestore raises for things a user can fix; each names what is wrong.

Kept free of heavy imports, so the command line can catch them without loading the
library.
"""

from __future__ import annotations

import os


class InputError(ValueError):
    """Bad input: names the file, the line (when there is one) and the problem."""

    def __init__(self, path: str | os.PathLike | None, line: int | None, problem: str):
        self.path = None if path is None else os.fspath(path)
        self.line = line
        self.problem = problem
        where = self.path or "<input>"
        if line is not None:
            where += f", line {line}"
        super().__init__(f"{where}: {problem}")

    def __reduce__(self):  # pickled whole (from worker processes), not as its message
        return type(self), (self.path, self.line, self.problem)


class SchemaError(ValueError):
    """A Dataset or store does not follow the chromestore schema."""


class StoreError(RuntimeError):
    """A store cannot be created, opened or written as asked."""


class ChunkError(StoreError):
    """A chunk of a store does not read back: its checksum does not match or it does not
    decode. The message names the store, the variable, the cell and the chunk."""
