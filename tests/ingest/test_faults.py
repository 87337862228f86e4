"""Fault injection, SQLite-style: every write path (store creation, ingest of a new
epigenome, ``--force`` ingest, simulate) is killed with SIGKILL, SIGINT or SIGTERM at the
instant a file of its store changes for the n-th time. After each kill:

- no process of the command survives;
- no (cell, mark) is recorded complete with data or provenance that disagree (each one
  complete holds the data and provenance of one and the same run: the old or the new);
- the next command works or says in one line what to do, and re-running the command
  yields a store equal to an uninterrupted run's, which ``verify`` reads back whole.

The fast selection probes a few instants per path and signal; ``-m slow`` probes more.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import xarray as xr
from click.testing import CliRunner

import chromestore
from chromestore import store as S
from chromestore import variables as V
from chromestore.app.cli import main
from chromestore.ingest import run_ingest
from chromestore.store import records
from chromestore.store.verify import verify_store
from tests.conftest import RPKM, sheet
from tests.processes import alive

pytestmark = pytest.mark.timeout(900)

MARKS = list(V.DEFAULT_MARKS)
SIGNALS = {"SIGKILL": signal.SIGKILL, "SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM}
#: what a command stopped by each signal exits with
EXIT = {"SIGKILL": -9, "SIGINT": 130, "SIGTERM": 143}
PATHS = ("create", "ingest", "force", "simulate")
#: (path, signal, the n-th change of the store's files at which it is sent)
FAST = [(p, s, n) for i, p in enumerate(PATHS) for j, s in enumerate(SIGNALS) for n in [1 + i + j]]
MORE = [(p, s, n) for p in PATHS for s in SIGNALS for n in (2, 5, 9, 14)]


def _tagalign(path: Path, table, seed: int, n: int = 20_000) -> str:
    rng = np.random.default_rng(seed)
    g = rng.integers(0, len(table), n)
    start = np.maximum(table["tss"].to_numpy()[g] + rng.integers(-4000, 4000, n), 0)
    chrom = table["chrom"].to_numpy()[g]
    path.write_text(
        "".join(f"{c}\t{s}\t{s + 36}\tN\t1000\t+\n" for c, s in zip(chrom, start, strict=True))
    )
    return path.name


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, genes40):
    """The inputs of each write path, and the store an uninterrupted run of it leaves."""
    bed, table = genes40
    root = tmp_path_factory.mktemp("faults")
    old = [
        ("E003", m, "tagAlign", _tagalign(root / f"old.{m}.tagAlign", table, i))
        for i, m in enumerate(MARKS)
    ]
    new = [
        ("E003", m, "tagAlign", _tagalign(root / f"new.{m}.tagAlign", table, 10 + i))
        for i, m in enumerate(MARKS)
    ]
    e004 = [("E004", m, t, p) for _, m, t, p in new]
    sheets = {
        "old": sheet(root, old, "old.csv"),
        "new": sheet(root, new, "new.csv"),
        "e004": sheet(root, e004, "e004.csv"),
    }
    base = root / "base.zarr"  # E003 complete from the old files, with expression
    run_ingest(base, bed, samples=sheets["old"], expression=RPKM, cells=["E003"])
    commands = {
        "create": [
            "ingest",
            "{store}",
            "--genes",
            bed,
            "--samples",
            sheets["old"],
            "--expression",
            RPKM,
            "--cells",
            "E003",
        ],
        "ingest": ["ingest", "{store}", "--samples", sheets["e004"]],
        "force": ["ingest", "{store}", "--samples", sheets["new"], "--force"],
        "simulate": ["simulate", "{store}", "--cells", "2", "--genes", "90", "--gene-chunk", "32"],
    }
    starts = {"create": None, "ingest": base, "force": base, "simulate": None}
    want = {}
    for name in PATHS:
        store = root / f"want-{name}.zarr"
        if starts[name] is not None:
            shutil.copytree(starts[name], store)
        if name == "create":
            shutil.copytree(base, store)
        elif name == "ingest":
            run_ingest(store, samples=sheets["e004"])
        elif name == "force":
            run_ingest(store, samples=sheets["new"], force=True)
        else:
            chromestore.simulate(str(store), cells=2, genes=90, gene_chunk=32)
        want[name] = _canonical(store)
    return {"commands": commands, "starts": starts, "want": want, "old": _pairs(base)}


def _canonical(path) -> dict:
    """What must match between two stores: cells, signal, expression, completion and
    provenance (without times and folders)."""
    ds = S.open_store(path).load()
    order = ds.sortby(V.CELL)
    return {
        "cells": sorted(str(c) for c in ds[V.CELL].values),
        "signal": order[V.signal.name],
        "expression": order[V.expression.name],
        "completed": records.completed(ds),
        "provenance": _provenance(ds),
    }


def _provenance(ds) -> dict:
    out = {}
    for key, p in records.provenance(ds).items():
        p = {f: v for f, v in p.items() if f not in ("completed", "seconds")}
        if "file" in p:
            p["file"] = os.path.basename(p["file"])
        out[key] = p
    return out


def _pairs(path) -> dict:
    """Each (cell, mark) recorded complete → (a digest of its signal, its provenance)."""
    ds = S.open_store(path)
    prov = _provenance(ds)
    out = {}
    for cell, mark in sorted(records.completed(ds)):
        values = np.ascontiguousarray(ds.signal.sel(cell=cell, mark=mark).values)
        out[(cell, mark)] = (hashlib.sha1(values.tobytes()).hexdigest(), prov.get((cell, mark)))
    return out


def _files(store: Path) -> dict[str, tuple[int, int]]:
    """Every file of the store, of its temporary creation folder and its locks: (mtime, size)."""
    out = {}
    for top, _, names in os.walk(store.parent):
        rel = os.path.relpath(top, store.parent)
        first = rel.split(os.sep)[0]
        if first != "." and not first.lstrip(".").startswith(store.name):
            continue
        for name in names:
            if rel == "." and not name.lstrip(".").startswith(store.name):
                continue
            try:
                st = os.stat(os.path.join(top, name))
            except OSError:
                continue
            out[os.path.join(rel, name)] = (st.st_mtime_ns, st.st_size)
    return out


def _run(args, store) -> subprocess.Popen:
    argv = [str(a).replace("{store}", str(store)) for a in args]
    return subprocess.Popen(
        [sys.executable, "-m", "chromestore", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def kill_at_change(
    proc: subprocess.Popen, store: Path, sig: int, nth: int, under: str = ""
) -> tuple[bool, set]:
    """Send ``sig`` to ``proc`` at the ``nth`` change of the files of ``store`` (its temporary
    creation folder and locks included; ``under``: only of those whose path, from the
    store's parent, starts with it); whether it was sent before ``proc`` exited, and every
    descendant process of ``proc`` seen meanwhile."""
    seen: set[int] = set()
    last = _files(store)
    changes = 0
    deadline = time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            seen.update(p.pid for p in psutil.Process(proc.pid).children(recursive=True))
        except psutil.NoSuchProcess:
            break
        now = _files(store)
        if now != last:  # each file added, removed or rewritten since the last look
            changes += len(
                {k for k, _ in set(now.items()) ^ set(last.items()) if k.startswith(under)}
            )
            last = now
            if changes >= nth:
                proc.send_signal(sig)
                return True, seen
        time.sleep(0.001)
    return False, seen


def _probe(
    inputs, tmp_path, path: str, sig_name: str, nth: int, must_hit: bool, under: str = ""
) -> None:
    store = tmp_path / "s.zarr"
    start = inputs["starts"][path]
    if start is not None:
        shutil.copytree(start, store)
    proc = _run(inputs["commands"][path], store)
    try:
        sent, workers = kill_at_change(proc, store, SIGNALS[sig_name], nth, under)
        out = proc.communicate(timeout=120)[0]
    finally:
        proc.kill()
        proc.wait()
    assert sent or not must_hit, f"the command ended before the {nth}th change:\n{out}"
    if sent and proc.returncode != 0:  # (it may have finished as the signal came)
        assert proc.returncode == EXIT[sig_name], out
        if sig_name != "SIGKILL":
            assert out.strip().splitlines()[-1].startswith("error: "), out
    deadline = time.monotonic() + 20
    while alive(workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert alive(workers) == [], "a process of the killed command survived it"

    # what a reader sees now: nothing, or a store whose complete pairs are each consistent
    if S.Store(store).exists():
        res = CliRunner().invoke(main, ["info", str(store)])
        assert res.exit_code == 0 or len(res.output.strip().splitlines()) == 1, res.output
        if res.exit_code == 0:
            want = _pairs_of(inputs, path)
            for pair, got in _pairs(store).items():
                assert got in want.get(pair, []), f"{pair} complete with data/provenance {got}"

    rerun = _run(inputs["commands"][path], store)
    out = rerun.communicate(timeout=300)[0]
    assert rerun.returncode == 0, out
    got = _canonical(store)
    want = inputs["want"][path]
    assert got["cells"] == want["cells"]
    assert got["completed"] == want["completed"]
    assert got["provenance"] == want["provenance"]
    xr.testing.assert_identical(got["signal"], want["signal"])
    xr.testing.assert_identical(got["expression"], want["expression"])
    assert verify_store(store).ok


def _pairs_of(inputs, path: str) -> dict:
    """The (data, provenance) each complete pair may hold after a kill of ``path``: the old
    store's, or an uninterrupted run's."""
    out: dict = {}
    for pair, value in inputs["old"].items() if path in ("ingest", "force") else ():
        out.setdefault(pair, []).append(value)
    return {**out, **_want_pairs(inputs, path, out)}


def _want_pairs(inputs, path: str, out: dict) -> dict:
    want = inputs.setdefault("_pairs", {})
    if path not in want:
        want[path] = {}
        ds = inputs["want"][path]
        for cell, mark in ds["completed"]:
            values = ds["signal"].sel(cell=cell, mark=mark).values
            digest = hashlib.sha1(np.ascontiguousarray(values).tobytes()).hexdigest()
            want[path][(cell, mark)] = (digest, ds["provenance"].get((cell, mark)))
    return {k: [*out.get(k, []), v] for k, v in want[path].items()}


@pytest.mark.parametrize("path, sig_name, nth", FAST)
def test_killed_at_a_store_file_change__rerun_equals_an_uninterrupted_run(
    inputs, tmp_path, path, sig_name, nth
):
    _probe(inputs, tmp_path, path, sig_name, nth, must_hit=True)


@pytest.mark.slow
@pytest.mark.parametrize("path, sig_name, nth", MORE)
def test_killed_at_more_instants__rerun_equals_an_uninterrupted_run(
    inputs, tmp_path, path, sig_name, nth
):
    _probe(inputs, tmp_path, path, sig_name, nth, must_hit=False)  # (a late one may miss)


@pytest.mark.parametrize(
    "sig_name, under, nth",
    [
        ("SIGKILL", "s.zarr/signal/c/", 1),  # the chunks each Dask task encodes and puts
        ("SIGINT", "s.zarr/expression/c/", 2),
        ("SIGTERM", "s.zarr/records/E", 3),  # the provenance groups, merged at once
        ("SIGKILL", "s.zarr/signal_units/c/", 4),  # units, then flags, file after file
        ("SIGINT", "s.zarr/signal_completed/c/", 5),
    ],
)
def test_simulate_killed_writing_its_chunks_and_records__rerun_equals_an_uninterrupted_run(
    inputs, tmp_path, sig_name, under, nth
):
    """Late in simulate, after its store is created (where the probes above stop it)."""
    _probe(inputs, tmp_path, "simulate", sig_name, nth, must_hit=True, under=under)
