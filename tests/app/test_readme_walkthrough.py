"""The README's "Predict for your own epigenome" runs as written, start to end, in an empty
folder (it makes the reference store it uses), with no error and no warning; its "or:" line
goes into a run of its own, and the same line with the first run's name is refused, one
line, nothing changed."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "## Predict for your own epigenome"


def _block(heading: str = SECTION) -> str:
    """The bash block of the README's section ``heading``, as the README has it."""
    text = README.read_text(encoding="utf-8")
    assert heading in text, f"README has no section {heading!r}"
    section = text.split(heading, 1)[1].split("\n## ", 1)[0]
    return section.split("```bash\n", 1)[1].split("```", 1)[0]


def _or_line(block: str) -> str:
    """The alternative step 2 the README gives as a comment (``#    or, …: COMMAND``)."""
    found = re.search(r"^#\s+or, in a run of its own: (chromestore .+)$", block, re.M)
    assert found, block
    return found.group(1)


def _bash(script: str, cwd: Path) -> subprocess.CompletedProcess:
    """``script`` in bash (stop at the first failing command), with this environment's
    ``chromestore`` and ``python`` first on PATH, as after activating it."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PYTHONWARNINGS", None)
    return subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
    )


def _clean(res: subprocess.CompletedProcess) -> str:
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert not re.search(r"warn|error|traceback|nan\b", out, re.I), out
    return out


def _tree(path: Path) -> dict[str, str]:
    """SHA-256 of every file under ``path``."""
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


@pytest.mark.timeout(1200)  # four simulations/ingests and a training: ~2.5 min on 2 cores
def test_readme_walkthrough__runs_as_written_with_no_error_or_warning(tmp_path):
    block = _block()
    out = _clean(_bash(block, tmp_path))
    assert "exported → dc-E003" in out
    assert re.search(r"^MINE: \d+ genes scored by deepchrome from E003, \d+ predicted high$",
                     out, re.M), out  # fmt: skip
    table = pd.read_csv(tmp_path / "mine-genes.csv")
    assert list(table.columns) == ["cell", "gene", "score", "label"]
    assert set(table["cell"]) == {"MINE"} and len(table) > 1000
    assert table["score"].between(0, 1).all()
    assert ((table["score"] >= 0.5) == (table["label"] == 1)).all()
    assert 0 < table["label"].sum() < len(table)
    assert (tmp_path / "mine.zarr" / "runs" / "dc-E003" / "predictions" / "zarr.json").is_file()

    # the README's "or:" line with the first run's name, as the old README had it: refused
    or_line = _or_line(block)
    assert "--run ref-pooled" in or_line
    before = {p: _tree(tmp_path / p) for p in ("ref.zarr", "ref.zarr.weights")}
    res = _bash(or_line.replace("--run ref-pooled", "--run ref"), tmp_path)
    assert res.returncode == 1
    assert res.stdout == ""
    assert res.stderr == (
        "error: run 'ref' already exists in ref.zarr; a run is never changed: "
        "pass --overwrite to replace it whole, or choose a free name such as 'ref-2'\n"
    )
    assert {p: _tree(tmp_path / p) for p in before} == before


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_readme_walkthrough__its_or_line_trains_a_pooled_run_of_its_own(tmp_path):
    block = _block()
    setup = "\n".join(line for line in block.splitlines() if "simulate ref.zarr" in line)
    _clean(_bash(setup, tmp_path))
    out = _clean(_bash(_or_line(block), tmp_path))
    for cell in ("E003", "E004", "E005"):
        assert re.search(rf"^  {cell} \(left out\): 0\.\d+$", out, re.M), out
    out = _clean(_bash("chromestore analyze ref.zarr --run ref-pooled", tmp_path))
    assert "ref-pooled" in out
