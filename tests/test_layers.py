"""The architecture, checked: packages in layers, each importing only layers below or its own,
and no import cycle anywhere.

Layers, lowest first (``LAYERS``): the base (schema, errors, text inputs, embedded data,
executors, stage progress) → gene-level building blocks (annotation, bins, labels, splits,
read counting) → the store → what reads or writes it (expression, query, info, runs,
formats) → ingest and simulation → ``chromestore.training`` (source folder ``training/``) →
``chromestore.analysis`` (``analysis/``) → the app (``chromestore.app``, the CLI). The core
(everything below training) never imports torch. Every import statement counts, function-level
ones included (only ``if TYPE_CHECKING:`` blocks are skipped), so a lazy import cannot hide a
layer violation or a cycle; a package's lazy public names (``chromestore._lazy.attach``) count
as imports of the modules that define them.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: source folder → the package it installs as
FOLDERS = {
    "chromestore": "chromestore",
    "training": "chromestore.training",
    "analysis": "chromestore.analysis",
}
#: module or package → its layer (a module belongs to the longest prefix that names it)
LAYERS = {
    "chromestore._lazy": 0,
    "chromestore.errors": 0,
    "chromestore.variables": 0,
    "chromestore.textio": 0,
    "chromestore.datasets": 0,
    "chromestore.genomes": 0,
    "chromestore.executors": 0,
    "chromestore.stages": 0,
    "chromestore.genes": 1,
    "chromestore.bins": 1,
    "chromestore.labels": 1,
    "chromestore.splits": 1,
    "chromestore.counting": 1,
    "chromestore.store": 2,
    "chromestore.expression": 3,
    "chromestore.query": 3,
    "chromestore.info": 3,
    "chromestore.runs": 3,
    "chromestore.formats": 3,
    "chromestore.ingest": 4,
    "chromestore.simulation": 4,
    "chromestore.training": 5,
    "chromestore.analysis": 6,
    "chromestore.app": 7,
    "chromestore.__main__": 7,
}
#: the package's own ``__init__``: an index of public names over every layer, imported by
#: the app and by users, never by a module of the library
INDEX = "chromestore"
CORE_MAX = LAYERS["chromestore.simulation"]


def layer(module: str) -> int | None:
    """The layer of a module of ours (None: the index, or not ours)."""
    best = max(
        (p for p in LAYERS if module == p or module.startswith(p + ".")), key=len, default=None
    )
    return None if best is None else LAYERS[best]


def modules() -> dict[str, Path]:
    """Every module of the installed package, by name."""
    found = {}
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = [package, *path.relative_to(ROOT / folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        isinstance(test, ast.Name)
        and test.id == "TYPE_CHECKING"
        or isinstance(test, ast.Attribute)
        and test.attr == "TYPE_CHECKING"
    )


def _nodes(tree: ast.AST):
    """Every node, skipping the bodies of ``if TYPE_CHECKING:``."""
    for child in ast.iter_child_nodes(tree):
        if _type_checking(child):
            continue
        yield child
        yield from _nodes(child)


def _absolute(module: str, is_package: bool, level: int, target: str | None) -> str:
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join(base + ([target] if target else []))


def lazy_exports(module: str, path: Path) -> dict[str, str]:
    """A package's lazy public names (``attach(__name__, {...})``) → their modules."""
    out = {}
    for node in ast.walk(ast.parse(path.read_text())):
        if (
            isinstance(node, ast.Call)
            and getattr(node.func, "id", "") == "attach"
            and len(node.args) > 1
            and isinstance(node.args[1], ast.Dict)
        ):
            for key, value in zip(node.args[1].keys, node.args[1].values, strict=True):
                target = value.value  # ".handle" is relative to the package (one dot)
                out[key.value] = module + target if target.startswith(".") else target
    return out


def imports(path: Path, module: str = "") -> list[tuple[int, str]]:
    """(line, name) of everything the import statements of ``path`` import: ``import A.B``
    gives ``A.B``; ``from A import b`` gives ``A.b`` (a module, or a name of ``A``'s);
    relative imports are made absolute against ``module``."""
    found = []
    for node in _nodes(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = (
                _absolute(module, path.name == "__init__.py", node.level, node.module)
                if node.level
                else node.module
            )
            found += [(node.lineno, f"{base}.{a.name}") for a in node.names]
    return found


def graph() -> dict[str, dict[str, int]]:
    """module → {module of ours it imports: first line}. ``from A import b`` is an edge to
    the module ``A.b``, else to the module that defines ``b`` (a lazy name of package ``A``),
    else to ``A``. A package's ``__init__`` itself imports only what its statements say."""
    mods = modules()
    exports = {m: lazy_exports(m, p) for m, p in mods.items() if p.name == "__init__.py"}
    out: dict[str, dict[str, int]] = {}
    for module, path in mods.items():
        edges: dict[str, int] = {}
        for line, name in imports(path, module):
            parent, _, attr = name.rpartition(".")
            if name in mods:
                target = name
            elif attr in exports.get(parent, {}):
                target = exports[parent][attr]
            elif parent in mods:
                target = parent
            else:
                continue  # not ours
            if target != module:
                edges.setdefault(target, line)
        out[module] = edges
    return out


def cycles(g: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(g):
        if v not in index:
            visit(v)
    return found


def test_layers__every_module_belongs_to_a_layer():
    homeless = [m for m in modules() if m != INDEX and layer(m) is None]
    assert not homeless, f"modules outside every layer (add them to LAYERS): {homeless}"


def test_layers__no_module_imports_a_layer_above_its_own():
    mods, g = modules(), graph()
    bad = [
        f"{mods[m].relative_to(ROOT)}:{line} imports {t} (layer {layer(t)} > {layer(m)})"
        for m, edges in g.items()
        if m != INDEX
        for t, line in edges.items()
        if t != INDEX and layer(t) > layer(m)
    ]
    assert not bad, "\n".join(bad)


def test_layers__only_the_app_imports_the_package_index():
    mods, g = modules(), graph()
    bad = [
        f"{mods[m].relative_to(ROOT)}:{line} imports {INDEX} itself"
        for m, edges in g.items()
        if INDEX in edges and m != INDEX and layer(m) < LAYERS["chromestore.app"]
        for line in [edges[INDEX]]
    ]
    assert not bad, "\n".join(bad)


def test_layers__no_import_cycle():
    found = cycles(graph())
    assert not found, "import cycles:\n" + "\n".join(" ↔ ".join(c) for c in found)


def test_layers__the_checker_sees_cycles_lazy_names_and_function_level_imports(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
        "    from chromestore.app import cli\n"
        "def f():\n    from chromestore.training import registry\n"
        "    from .dataset import open_store\n"
    )
    found = imports(probe, "chromestore.store.probe")
    assert (5, "chromestore.training.registry") in found
    assert (6, "chromestore.store.dataset.open_store") in found
    assert not any(name.startswith("chromestore.app") for _, name in found)
    assert (
        lazy_exports("chromestore.store", ROOT / "chromestore" / "store" / "__init__.py")[
            "open_store"
        ]
        == "chromestore.store.dataset"
    )
    assert cycles({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}}) == [["a", "b", "c"]]
    assert layer("chromestore.store.records") == 2 and layer("chromestore.training.x") == 5


def test_layers__no_public_name_shadows_a_submodule():
    """A lazy name equal to a submodule's name would turn into that module once the submodule
    is imported (``chromestore.simulation.calibration`` once did)."""
    mods = modules()
    bad = [
        f"{pkg}.{name}"
        for pkg, path in mods.items()
        if path.name == "__init__.py"
        for name, target in lazy_exports(pkg, path).items()
        if f"{pkg}.{name}" in mods and target != f"{pkg}.{name}"  # a module as itself is fine
    ]
    assert not bad, bad


def test_layers__no_bare_training_or_analysis_imports():
    """Everything imports through the one ``chromestore`` namespace."""
    paths = [
        *modules().values(),
        *sorted((ROOT / "tests").rglob("*.py")),
        *sorted((ROOT / "benchmarks").glob("*.py")),
    ]
    bad = [
        f"{p.relative_to(ROOT)}:{line} imports {name}"
        for p in paths
        for line, name in imports(p)
        if name.split(".")[0] in ("training", "analysis")
    ]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize(
    "module",
    [
        "chromestore",
        "chromestore.ingest.run",
        "chromestore.query",
        "chromestore.simulation.dataset",
        "chromestore.runs.write",
        "chromestore.store.verify",
    ],
)
def test_core__never_imports_torch(module):
    code = (
        f"import sys, {module}\n"
        "bad = [m for m in ('torch', 'chromestore.training', 'chromestore.analysis') "
        "if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_imports__each_short_alias_names_one_module():
    """A one- or two-letter module alias (``V``, ``R``, ``F``) means one module wherever it
    is used: ``R`` is always :mod:`chromestore.runs`, ``F`` always ``torch.nn.functional``."""
    paths = [
        *modules().values(),
        *sorted((ROOT / "tests").rglob("*.py")),
        *sorted((ROOT / "benchmarks").glob("*.py")),
        *sorted((ROOT / "deploy").rglob("*.py")),
    ]
    meaning: dict[str, dict[str, str]] = {}
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import | ast.ImportFrom):
                base = node.module if isinstance(node, ast.ImportFrom) else None
                for a in node.names:
                    if a.asname and len(a.asname) <= 2 and a.asname.isupper():
                        full = (
                            f"{'.' * getattr(node, 'level', 0)}{base}.{a.name}" if base else a.name
                        )
                        meaning.setdefault(a.asname, {}).setdefault(
                            full, str(path.relative_to(ROOT))
                        )
    clashes = {alias: where for alias, where in meaning.items() if len(where) > 1}
    assert not clashes, clashes
    assert meaning["R"] == {"chromestore.runs": meaning["R"]["chromestore.runs"]}


def test_commands_without_a_cluster__never_import_distributed(tmp_path):
    """Dask looks for a client (importing ``distributed``, a third of a second) on every
    compute whose scheduler is named by a string or left to it: the commands that run in
    their own process name theirs as a function (:func:`chromestore.executors.local_dask`)."""
    store, out = str(tmp_path / "s.zarr"), str(tmp_path / "model")
    code = (
        "import sys\n"
        "from chromestore.app.cli import main\n"
        f"for args in (['simulate', {store!r}, '--cells', '2', '--genes', '60'],\n"
        f"             ['info', {store!r}], ['labels', {store!r}], ['verify', {store!r}],\n"
        f"             ['query', {store!r}, '--gene', 'TSPAN6', '--cell', 'E003'],\n"
        f"             ['train', {store!r}, '--epochs', '1', '--split', 'random', '--run', 'r'],\n"
        f"             ['predict', {store!r}, '--run', 'r', '--from-cell', 'E003', '--cells', 'E004'],\n"
        f"             ['export', {store!r}, '--run', 'r', '--cell', 'E003', '--out', {out!r}]):\n"
        "    try:\n"
        "        main(args)\n"
        "    except SystemExit as e:\n"
        "        assert not e.code, (args, e.code)\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] == 'distributed']\n"
        "assert not loaded, loaded[:5]\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "simulated 2 epigenomes × 60 genes" in done.stdout
    assert f"exported → {out}" in done.stdout
