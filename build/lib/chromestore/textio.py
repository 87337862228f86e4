"""Opening text inputs: plain or gzip, local or fsspec URLs, with clear errors."""

from __future__ import annotations

import gzip
import io
import os
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

import fsspec

from chromestore.errors import InputError


def _is_gzip(path: str) -> bool:
    with fsspec.open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


@contextmanager
def open_binary(path: str | os.PathLike) -> Iterator[io.BufferedIOBase]:
    """Open ``path`` for reading bytes, transparently gunzipping; errors name the file."""
    path = os.fspath(path)
    try:
        gz = _is_gzip(path)
    except FileNotFoundError:
        raise InputError(path, None, "file not found") from None
    except IsADirectoryError:
        raise InputError(path, None, "is a directory, expected a file") from None
    with fsspec.open(path, "rb") as raw:
        fh = gzip.GzipFile(fileobj=raw) if gz else raw
        try:
            yield fh
        except (EOFError, gzip.BadGzipFile, zlib.error) as e:
            raise InputError(path, None, f"unreadable or truncated gzip ({e})") from None


@contextmanager
def open_text(path: str | os.PathLike) -> Iterator[io.TextIOBase]:
    """Open ``path`` as text (UTF-8), plain or gzip."""
    with open_binary(path) as fh:
        yield io.TextIOWrapper(fh, encoding="utf-8", newline="")
