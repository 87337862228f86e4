"""What the binary readers share: their optional libraries and the file they open."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

from chromestore.errors import InputError


def need_extra(module: str, reading: str) -> ModuleType:
    """Import ``module`` of the ``formats`` extra, or say how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(
            f"reading {reading} needs {module}: pip install 'chromestore[formats]'"
        ) from None


def existing_file(path: str | os.PathLike) -> str:
    """``path`` as a string; :class:`InputError` when there is nothing there."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputError(path, None, "file not found")
    return path
