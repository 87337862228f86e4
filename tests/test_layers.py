"""Layering: core → training → analysis → app; only the app layer imports upward.

The core (``chromestore`` without its ``training``, ``analysis`` and ``app``
subpackages) never imports torch; the check reads every import statement, function-level
ones included, so a lazy import cannot hide a layer violation.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: source folder → (its import name, the layer's rank)
LAYERS = {
    "chromestore": ("chromestore", 0),
    "training": ("chromestore.training", 1),
    "analysis": ("chromestore.analysis", 2),
    "chromestore/app": ("chromestore.app", 3),
}
RANK = {name: rank for name, rank in LAYERS.values()}


def _layer_of_module(name: str) -> int | None:
    """Rank of the layer an imported module name belongs to (None: not ours)."""
    best = None
    for prefix, rank in RANK.items():
        if name == prefix or name.startswith(prefix + "."):
            if best is None or len(prefix) > len(best[0]):
                best = (prefix, rank)
    return None if best is None else best[1]


#: files outside chromestore/app that belong to the app layer
APP_FILES = {"chromestore/__main__.py"}


def _layer_of_file(path: Path) -> int:
    rel = path.relative_to(ROOT).as_posix()
    if rel in APP_FILES:
        return LAYERS["chromestore/app"][1]
    best = max((folder for folder in LAYERS if rel.startswith(folder + "/")), key=len)
    return LAYERS[best][1]


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return found


def _sources() -> list[Path]:
    return sorted(p for folder in ("chromestore", "training", "analysis")
                  for p in (ROOT / folder).rglob("*.py"))


def test_layers__no_module_imports_a_layer_above_its_own():
    bad = []
    for path in _sources():
        mine = _layer_of_file(path)
        for line, name in _imports(path):
            theirs = _layer_of_module(name)
            if theirs is not None and theirs > mine:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert not bad, "\n".join(bad)


def test_layers__the_checker_sees_function_level_imports(tmp_path):
    src = ROOT / "chromestore" / "_probe_layers.py"
    src.write_text("def f():\n    from chromestore.training import registry\n")
    try:
        assert (2, "chromestore.training") in _imports(src)
        assert _layer_of_file(src) == 0 and _layer_of_module("chromestore.training.x") == 1
    finally:
        src.unlink()


def test_layers__no_bare_training_or_analysis_imports():
    """Everything imports through the one ``chromestore`` namespace."""
    bad = [f"{p.relative_to(ROOT)}:{line} imports {name}"
           for p in _sources() + sorted((ROOT / "tests").glob("*.py"))
           + sorted((ROOT / "benchmarks").glob("*.py"))
           for line, name in _imports(p)
           if name.split(".")[0] in ("training", "analysis")]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("module", ["chromestore", "chromestore.ingest", "chromestore.query",
                                    "chromestore.simulate", "chromestore.runs"])
def test_core__never_imports_torch(module):
    code = (
        f"import sys, {module}\n"
        "bad = [m for m in ('torch', 'chromestore.training', 'chromestore.analysis') "
        "if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
