"""Each built-in model is in one place: its module, one registry line (and a README row).

For every built-in model, the library's files other than its module are searched for code
that names it: its name, the run variables it declares (``extras``) and the metrics it adds,
as string literals (docstrings and comments are prose, not code). None may. The names that
mean something else where they appear are told apart by what they are given to (the
``deepchrome`` split scheme, the ``pooled`` kind). A few files choose models by name the way
a user would, and are listed with why (:data:`USERS`).
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

from chromestore.training import registry
from chromestore.training.entry import TYPES

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {"chromestore": "chromestore", "chromestore.training": "training",
           "chromestore.analysis": "analysis"}  # fmt: skip
#: files that name models as their users: what they are and why they name them
USERS = {
    "analysis/workflow.py": "the demo workflow (`chromestore run`) trains DeepChrome "
    "and three peers by name, with their demo hyper-parameters",
    "analysis/explain.py": "`chromestore explain` is ShallowChrome's regulative pattern "
    "beside a CNN's integrated gradients (its JSON is keyed by them)",
    "analysis/figures.py": "draws that explanation (fig_explained) from its JSON",
}
#: words that are also the names of other things: split schemes and entry kinds
SPLIT_SCHEMES = ("deepchrome", "random", "chromosome")
OTHER_MEANINGS = set(SPLIT_SCHEMES) | set(TYPES)
#: the module that defines the split schemes (where every such word is a scheme)
SCHEMES_MODULE = "chromestore/splits.py"


def _module_file(target: str) -> str:
    """``chromestore.training.peers.baselines:SVM_BIN`` → ``training/peers/baselines.py``."""
    origin = Path(importlib.util.find_spec(target.partition(":")[0]).origin).resolve()
    return origin.relative_to(ROOT).as_posix()


def _docstrings(tree: ast.AST) -> set[int]:
    nodes = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    return {
        id(n.body[0].value)
        for n in ast.walk(tree)
        if isinstance(n, nodes)
        and n.body
        and isinstance(n.body[0], ast.Expr)
        and isinstance(n.body[0].value, ast.Constant)
    }


def _names(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Attribute):
        return [node.attr]
    if isinstance(node, ast.Tuple | ast.List):
        return [n for elt in node.elts for n in _names(elt)]
    return []


def _context(node: ast.AST, parents: dict[int, ast.AST]) -> list[str]:
    """The names a literal is given to: the target it is assigned to, the parameter or
    keyword it is the value or default of, what it is compared with."""
    parent = parents.get(id(node))
    if isinstance(parent, ast.Tuple | ast.List):
        return _context(parent, parents)
    if isinstance(parent, ast.keyword):
        call = parents.get(id(parent))
        first = call.args[0] if isinstance(call, ast.Call) and call.args else None
        if parent.arg == "default" and isinstance(first, ast.Constant):
            return [str(first.value)]  # click.option("--split", default=...)
        return [parent.arg or ""]
    if isinstance(parent, ast.Assign):
        return [n for t in parent.targets for n in _names(t)]
    if isinstance(parent, ast.AnnAssign):
        return _names(parent.target)
    if isinstance(parent, ast.Compare):
        return [n for side in (parent.left, *parent.comparators) for n in _names(side)]
    if isinstance(parent, ast.arguments):
        args = [*parent.posonlyargs, *parent.args]
        pairs = [*zip(args[len(args) - len(parent.defaults) :], parent.defaults, strict=True)]
        pairs += [(a, d) for a, d in zip(parent.kwonlyargs, parent.kw_defaults, strict=True) if d]
        return [a.arg for a, d in pairs if d is node]
    return []


def _other_meaning(value: str, context: list[str]) -> bool:
    said = " ".join(context).lower()
    if value in SPLIT_SCHEMES and ("split" in said or "scheme" in said):
        return True
    return value in TYPES and "kind" in said.split()


def code_strings(path: Path) -> set[str]:
    """The string literals of a module's code (no docstrings), less the words used in
    another meaning (:data:`OTHER_MEANINGS`)."""
    tree = ast.parse(path.read_text())
    parents = {id(c): p for p in ast.walk(tree) for c in ast.iter_child_nodes(p)}
    docs = _docstrings(tree)
    rel = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name
    out = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Constant) or not isinstance(node.value, str):
            continue
        if id(node) in docs:
            continue
        if node.value in OTHER_MEANINGS and (
            rel == SCHEMES_MODULE or _other_meaning(node.value, _context(node, parents))
        ):
            continue
        out.add(node.value)
    return out


def library_files() -> list[Path]:
    return sorted(p for folder in FOLDERS.values() for p in (ROOT / folder).rglob("*.py"))


@pytest.fixture(scope="module")
def strings() -> dict[str, set[str]]:
    return {p.relative_to(ROOT).as_posix(): code_strings(p) for p in library_files()}


@pytest.mark.parametrize("listing", registry.BUILTIN, ids=lambda b: b.name)
def test_builtin_model__is_named_by_its_module_and_registry_line_only(listing, strings):
    entry = registry.get(listing.name)
    terms = {entry.name, *(s.name for s in entry.extras), *(m.name for m in entry.metrics)}
    own = {_module_file(listing.target), "training/registry.py", *USERS}
    naming = {
        f: sorted(terms & found) for f, found in strings.items() if f not in own and terms & found
    }
    assert not naming, f"{listing.name} is named outside its module: {naming}"
    line = [row for row in (ROOT / "training/registry.py").read_text().splitlines()
            if row.lstrip().startswith(f'Listing("{listing.name}"')]  # fmt: skip
    assert len(line) == 1 and listing.target in line[0]


def test_code_strings__tell_the_split_scheme_and_the_kind_from_the_models(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(
        '"""A docstring naming "deepchrome" is prose."""\n'
        'def f(split="deepchrome", model="deepchrome"):\n'
        '    kind = "pooled"\n'
        '    return g(scheme="deepchrome"), kind == "pooled", model == "pooled"\n'
    )
    assert code_strings(probe) == {"deepchrome", "pooled"}  # a model's default, a model compared


def test_users__exist_and_name_models(strings):
    """The exceptions are real: each listed file exists and does name a model."""
    names = set(registry.names())
    assert all(names & strings[path] for path in USERS)
