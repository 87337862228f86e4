"""Errors that name the file, the line and what is wrong."""

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
