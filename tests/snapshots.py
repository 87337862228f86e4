"""Byte-exact snapshots of files and folders, to assert that nothing changed them."""

from __future__ import annotations

from pathlib import Path


def snapshot(path: Path) -> dict[str, bytes]:
    """Every file under ``path`` (or ``path`` itself) → its bytes; {} when absent."""
    path = Path(path)
    if path.is_file():
        return {".": path.read_bytes()}
    if not path.exists():
        return {}
    return {
        str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()
    }


def flip_bit(path: Path, offset: int = 20, bit: int = 0) -> None:
    """Flip one bit of a file in place (a stored chunk's silent corruption)."""
    data = bytearray(Path(path).read_bytes())
    data[offset] ^= 1 << bit
    Path(path).write_bytes(bytes(data))
