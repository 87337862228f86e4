"""The README's module map matches the tree: every module is listed, every listed path exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("chromestore", "training", "analysis")


def _module_map() -> list[str]:
    text = (ROOT / "README.md").read_text()
    start = text.index("**Where each piece lives.**")
    rows = []
    for line in text[start:].splitlines():
        if rows and not line.startswith("|"):
            break
        if line.startswith("|") and not line.startswith("|---"):
            rows.append(line.split("|")[1])
    return [p for cell in rows[1:] for p in re.findall(r"`([^`]+)`", cell)]


def test_readme_module_map__every_listed_path_exists():
    missing = [p for p in _module_map() if not (ROOT / p.rstrip("/")).exists()]
    assert not missing, missing


def test_readme_module_map__lists_every_module():
    listed = set(_module_map())
    modules = sorted(
        p.relative_to(ROOT).as_posix()
        for pkg in PACKAGES
        for p in (ROOT / pkg).rglob("*.py")
        if p.name != "__init__.py" and "__pycache__" not in p.parts
    )
    unlisted = [
        m
        for m in modules
        if m not in listed and not any(m.startswith(d) for d in listed if d.endswith("/"))
    ]
    assert not unlisted, unlisted
