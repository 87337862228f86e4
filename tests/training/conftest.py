"""Model plugins installed for a test: a module and a dist-info with a ``chromestore.models``
entry point in a folder on ``sys.path``, as ``pip install`` of the plugin would leave them."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from chromestore.training import registry

HERE = Path(__file__).resolve().parent


def write_plugin(
    root: Path,
    module: str,
    source: str,
    *,
    package: str,
    summary: str,
    entry_points: str,
    version: str = "0.1",
) -> Path:
    """``root/module.py`` and ``root/<package>-<version>.dist-info`` (METADATA with the
    Summary, entry_points.txt); returns ``root``."""
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{package.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\nSummary: {summary}\n"
    )
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
    return root


def hgb_plugin(root: Path) -> Path:
    """The second plugin (``tests/training/plugin_hgb_sums.py``) as package
    ``chromestore-hgb-sums``, module ``chromestore_hgb_sums``, model ``hgb-sums``."""
    return write_plugin(
        root,
        "chromestore_hgb_sums",
        (HERE / "plugin_hgb_sums.py").read_text(),
        package="chromestore-hgb-sums",
        summary="gradient boosting on per-mark read sums near the TSS",
        entry_points="[chromestore.models]\nhgb-sums = chromestore_hgb_sums:ENTRY\n",
    )


@pytest.fixture
def fresh_registry():
    """The registry as on first use (nothing listed or loaded yet), restored afterwards;
    plugin modules imported meanwhile are forgotten."""
    saved = registry._listed, dict(registry._entries), dict(registry._failed)
    modules = set(sys.modules)
    registry._listed, registry._entries, registry._failed = None, {}, {}
    yield registry
    registry._listed, registry._entries, registry._failed = saved
    for name in set(sys.modules) - modules:
        if name.startswith("chromestore_"):
            del sys.modules[name]


@pytest.fixture
def install(fresh_registry, monkeypatch, tmp_path):
    """``install(**write_plugin kwargs)``: a plugin on ``sys.path`` of this test."""

    def _install(writer=None, **kw) -> Path:
        root = tmp_path / "site"
        root.mkdir(exist_ok=True)
        (writer or write_plugin)(root, **kw)
        monkeypatch.syspath_prepend(str(root))
        return root

    return _install
