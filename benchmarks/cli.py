"""How fast ``chromestore train --help`` answers, with and without a model plugin installed.

Its peer is ``chromestore --help`` (the command group alone): ``train --help`` lists every
model, plugins included, from the registry's listing without importing any model (no
torch, no scikit-learn, no plugin), so it should cost about what the group's help does.
Each command is started ``--repeat`` times as a fresh process, the commands taking turns
(so a change of load hits them alike); the median wall time is printed with the load
average before and after, and the ratio to the peer.

The plugin is the tests' second plugin (``tests/training/plugin_hgb_sums.py``, which
imports scikit-learn), installed as a dist-info with a ``chromestore.models`` entry point
in a temporary folder on ``PYTHONPATH``.

    .venv/bin/python benchmarks/cli.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMESTORE = Path(sys.executable).with_name("chromestore")


def timed(commands: list[tuple[list[str], dict[str, str]]], repeat: int) -> list[float]:
    """Median wall seconds of each ``chromestore ARGS`` (with its environment) as a fresh
    process, the commands run in turn ``repeat`` times."""
    times: list[list[float]] = [[] for _ in commands]
    for _ in range(repeat):
        for i, (args, env) in enumerate(commands):
            t0 = time.perf_counter()
            subprocess.run([str(CHROMESTORE), *args], env=env, check=True, capture_output=True)
            times[i].append(time.perf_counter() - t0)
    return [statistics.median(t) for t in times]


def install_plugin(root: Path) -> None:
    """The tests' gradient-boosting plugin as package ``chromestore-hgb-sums``."""
    (root / "chromestore_hgb_sums.py").write_text(
        (ROOT / "tests" / "training" / "plugin_hgb_sums.py").read_text()
    )
    info = root / "chromestore_hgb_sums-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: chromestore-hgb-sums\nVersion: 0.1\n"
        "Summary: gradient boosting on per-mark read sums near the TSS\n"
    )
    (info / "entry_points.txt").write_text(
        "[chromestore.models]\nhgb-sums = chromestore_hgb_sums:ENTRY\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="runs of each command")
    opts = parser.parse_args()
    plain = dict(os.environ)
    plain.pop("PYTHONPATH", None)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        install_plugin(Path(tmp))
        plugged = {**plain, "PYTHONPATH": tmp}
        listed = subprocess.run(
            [str(CHROMESTORE), "train", "--help"], env=plugged, capture_output=True, text=True
        ).stdout
        assert "hgb-sums" in listed, "the plugin is not listed"
        group, bare, with_plugin, model_help = timed(
            [
                (["--help"], plain),
                (["train", "--help"], plain),
                (["train", "--help"], plugged),
                (["train", "--model", "hgb-sums", "--help"], plugged),
            ],
            opts.repeat,
        )
    after = os.getloadavg()[0]
    print(
        f"median of {opts.repeat} runs each, {os.cpu_count()} cores, load {load:.2f} → {after:.2f}"
    )
    print(f"{'command':44} {'seconds':>8} {'vs chromestore --help':>22}")
    for what, seconds in (
        ("chromestore --help (the peer)", group),
        ("chromestore train --help", bare),
        ("chromestore train --help, plugin installed", with_plugin),
        ("chromestore train --model hgb-sums --help", model_help),
    ):
        print(f"{what:44} {seconds:8.3f} {seconds / group:21.2f}x")


if __name__ == "__main__":
    main()
