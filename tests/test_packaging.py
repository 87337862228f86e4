"""The wheel: one top-level package, embedded data inside it, and the pipeline working from a
non-editable install run in another folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # a copy of the sources, so the build leaves no build/ folder in the checkout
    src = out / "src"
    src.mkdir()
    for name in (
        "pyproject.toml",
        "setup.py",
        "README.md",
        "chromestore",
        "training",
        "analysis",
        "data",
    ):
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy2
        copy(
            ROOT / name,
            src / name,
            **({"ignore": shutil.ignore_patterns("__pycache__")} if (ROOT / name).is_dir() else {}),
        )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(src)],
        check=True,
        capture_output=True,
        text=True,
    )
    (path,) = out.glob("chromestore-*.whl")
    return path


def test_wheel__has_no_top_level_package_but_chromestore(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/", 1)[0] for n in names if not n.split("/", 1)[0].endswith(".dist-info")}
    assert top == {"chromestore"}
    for inside in (
        "chromestore/training/trainer.py",
        "chromestore/analysis/report.py",
        "chromestore/analysis/templates/report.html.j2",
        "chromestore/analysis/templates/macros.html.j2",
        "chromestore/analysis/templates/report.css",
        "chromestore/app/cli.py",
        "chromestore/_data/rpkm.56epigenomes.tsv.gz",
        "chromestore/_data/gene_windows.hg19.bed.gz",
        "chromestore/_data/samples/deepdiff_E003/E003.train.csv",
    ):
        assert inside in names, inside


def test_wheel__installed_non_editable__simulate_train_analyze_from_another_folder(wheel, tmp_path):
    """A fresh virtualenv (this environment's dependencies, the wheel itself installed)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # dependencies from this environment, but not its (editable) chromestore
    (Path(purelib) / "_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(py),
            "install",
            "-q",
            "--no-deps",
            str(wheel),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}

    def cli(*args: str) -> str:
        res = subprocess.run(
            [str(py), "-m", "chromestore", "--workers", "0", *args],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert res.returncode == 0, res.stderr[-3000:]
        return res.stdout

    where = subprocess.run(
        [
            str(py),
            "-c",
            "import chromestore, chromestore.training as t; "
            "print(chromestore.__file__, t.__file__)",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert str(ROOT) not in where and "site-packages" in where
    cli("simulate", "s.zarr", "--cells", "2", "--genes", "256", "--gene-chunk", "128")
    out = cli(
        "train", "s.zarr", "--run", "r", "--split", "random", "--epochs", "2", "--batch-size", "32"
    )
    assert "run r: 2 epigenome(s)" in out
    out = cli("analyze", "s.zarr", "--run", "r", "--report", "rep", "--no-interpret")
    page = (work / "rep" / "index.html").read_text()
    assert "deepchrome" in out and len(page) > 10_000  # the installed templates, filled
    assert page.startswith("<!doctype html>") and "<h2>Summary over epigenomes</h2>" in page


def _third_party_imports() -> dict[str, str]:
    """Top-level module of every third-party import in the package's sources → one file that
    imports it."""
    import ast

    found: dict[str, str] = {}
    for folder in ("chromestore", "training", "analysis"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                names = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module]
                    if isinstance(node, ast.ImportFrom) and node.module and not node.level
                    else []
                )
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top != "chromestore":
                        found.setdefault(top, str(path.relative_to(ROOT)))
    return found


def test_dependencies__every_third_party_import_is_declared():
    """An import the package makes is a dependency it declares (or an extra's), by
    distribution name, so a fresh install never meets a ModuleNotFoundError."""
    import re
    import tomllib
    from importlib.metadata import packages_distributions

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = project["dependencies"] + [
        s for extra in project["optional-dependencies"].values() for s in extra
    ]
    declared = {re.split(r"[\[<>=!~ ;]", s, maxsplit=1)[0].lower().replace("_", "-") for s in specs}
    dists = packages_distributions()
    missing = []
    for module, where in _third_party_imports().items():
        names = {d.lower().replace("_", "-") for d in dists.get(module, [module])}
        if not names & declared:
            missing.append(f"{module} (imported in {where}; distribution {sorted(names)})")
    assert not missing, missing
