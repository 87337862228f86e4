"""Fault injection, SQLite-style: ``chromestore train --overwrite`` is killed (SIGKILL and
Ctrl-C's SIGINT) at the instants a retrain changes a file, including halfway through a
weights file; after each, every run reads back whole: ``predict --run`` gives exactly the
scores the run stored, ``verify`` passes, and the run is the old one or the new one, never a
mix. Two concurrent ``train --run`` of one name never mix either.

Each trial forks this (warm) process and runs the command line in the child, so a trial
costs the training, not the imports; the child counts the file changes under the test's
folder through an audit hook (``open`` for writing, renames, removals, mkdir) and kills
itself at the chosen one.
"""

from __future__ import annotations

import faulthandler
import json
import os
import shutil
import signal
import sys
import traceback

import numpy as np
import pytest
from click.testing import CliRunner

import chromestore
from chromestore import runs as R
from chromestore.app.cli import main

EVENTS = ("open", "os.rename", "os.remove", "os.rmdir", "os.mkdir", "shutil.rmtree")
#: Seconds a forked command may run before it dumps its threads' stacks and exits.
CHILD_LIMIT = 200
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def _changes(event: str, args: tuple) -> str | None:
    """The path a file-changing audit event touches (None for others, and for reads)."""
    if event not in EVENTS or not args:
        return None
    path = args[0]
    if isinstance(path, int):
        return None
    if event == "open":
        mode, flags = args[1], args[2]
        writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags > 0 and flags & WRITE_FLAGS
        )
        if not writes:
            return None
    return os.fsdecode(path)


def _child(args: list[str], root: str, out: str, kill_at: int | None, sig: int, half: int | None):
    """Run ``chromestore ARGS`` here (a forked child); count file changes under ``root``,
    recording them in ``out``.json, and send ``sig`` to this process at change ``kill_at``;
    ``half``: write only half of the ``half``-th weights file, then SIGKILL."""
    import dask.threaded

    dask.threaded.default_pool = None  # the parent's pool: its threads are not in a fork
    dask.threaded.pools.clear()
    seen: list[list[str]] = []

    def hook(event, hook_args):
        path = _changes(event, hook_args)
        if path is None or not path.startswith(root):
            return
        seen.append([event, path])
        if kill_at is not None and len(seen) == kill_at:
            os.kill(os.getpid(), sig)

    if half is not None:
        from chromestore.training import weights as W

        real, calls = W.write_bytes, []

        def half_then_kill(target, data):
            calls.append(target.url)
            if len(calls) == half:
                fs, path = target.fs()
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(f"{path}.tmp-half", "wb") as f:
                    f.write(data[: len(data) // 2])
                    f.flush()
                    os.kill(os.getpid(), signal.SIGKILL)
            return real(target, data)

        W.write_bytes = half_then_kill
    log = os.open(f"{out}.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(log, 1)
    os.dup2(log, 2)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # not pytest's capture
    sys.stderr = open(2, "w", buffering=1, closefd=False)
    faulthandler.enable(file=sys.stderr, all_threads=True)  # a crash says where, in the log
    faulthandler.dump_traceback_later(CHILD_LIMIT, exit=True, file=sys.stderr)  # hung: fail

    def interrupted(signum, frame):  # Python's own handler, noting where the signal landed
        with open(f"{out}.where", "w") as f:
            f.write("".join(traceback.format_stack(frame)))
        raise KeyboardInterrupt

    # a command starts with Python's own handlers, whatever an earlier test left in this
    # (forked) test process; what it left is noted with how the command ended
    inherited = signal.signal(signal.SIGINT, interrupted), signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    sys.addaudithook(hook)
    code = 0
    try:
        main(args, prog_name="chromestore", standalone_mode=True)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
        with open(f"{out}.exit", "w") as f:  # how it ended: the exit's traceback, and why
            f.write(f"SystemExit({e.code!r}); inherited SIGINT, SIGTERM: {inherited!r}\n")
            f.write(traceback.format_exc())
            cause = e.__context__
            if cause is not None:
                f.write("".join(traceback.format_exception(cause)))
    except BaseException:
        traceback.print_exc()
        code = 99
    with open(f"{out}.json", "w") as f:
        json.dump(seen, f)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _run_forked(args, root, out, kill_at=None, sig=signal.SIGKILL, half=None):
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            _child(args, str(root), str(out), kill_at, sig, half)
        finally:
            os._exit(98)
    _, status = os.waitpid(pid, 0)
    return status


def _scores_match_the_run(store: str, name: str, model: str) -> np.ndarray:
    """``predict --run`` of every epigenome of the run equals what the run stored (its test
    genes: the genes the model was not fitted with); returns the stored predictions."""
    from chromestore.training import predict as P

    run = chromestore.open_run(store, name).load()
    for cell in [str(c) for c in run.cell.values]:
        predictor = P.from_run(store, name, model=model, from_cell=cell)
        scores = P.predict_store(store, predictor, [cell]).values[0]
        stored = run.prediction.sel(model=model, cell=cell, repeat=0).values
        test = run.split.values[0] == 2
        assert np.isfinite(scores[test]).all()
        np.testing.assert_allclose(scores[test], stored[test], rtol=0, atol=2e-6)
        assert np.isnan(scores[run.split.values[0] == 0]).all()  # never its training genes
    return run.prediction.values


def _verify_passes(store: str) -> None:
    res = CliRunner().invoke(main, ["verify", store])
    assert res.exit_code == 0, res.output
    assert "bad" not in res.output


TRAIN = ["--workers", "0", "train"]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A store with run ``dc`` (DeepChrome, seed 0) and run ``sc`` (ShallowChrome), and the
    new run a retrain (seed 1) gives, from a clean run with every file change recorded."""
    root = tmp_path_factory.mktemp("faults")
    store = str(root / "s.zarr")
    chromestore.simulate(store, cells=2, genes=256, seed=3, gene_chunk=128)
    for args in (
        ["--model", "deepchrome", "--epochs", "2", "--batch-size", "32", "--run", "dc"],
        ["--model", "shallowchrome", "--run", "sc"],
    ):
        res = CliRunner().invoke(main, [*TRAIN, store, "--split", "random", *args])
        assert res.exit_code == 0, res.output
    old = {n: _scores_match_the_run(store, n, m) for n, m in (("dc", "deepchrome"),
                                                              ("sc", "shallowchrome"))}  # fmt: skip
    keep = root / "pristine"
    keep.mkdir()
    for entry in root.iterdir():
        if entry.name != "pristine":
            shutil.copytree(entry, keep / entry.name)
    work = root / "work"
    shutil.copytree(keep, work)
    wstore = str(work / "s.zarr")
    status = _run_forked([*TRAIN, wstore, *RETRAIN], work, work / "dry")
    assert os.WEXITSTATUS(status) == 0, (work / "dry.log").read_text()
    events = json.loads((work / "dry.json").read_text())
    new = chromestore.open_run(wstore, "dc").prediction.values
    assert not np.allclose(new, old["dc"], equal_nan=True)  # the retrain changes the model
    return {"root": root, "keep": keep, "events": events, "old": old, "new": new}


RETRAIN = ["--model", "deepchrome", "--split", "random", "--seed", "1", "--epochs", "2",
           "--batch-size", "32", "--run", "dc", "--overwrite"]  # fmt: skip


def _trial(pristine, n: int, sig: int, half: int | None = None) -> int:
    root = pristine["root"]
    work = root / f"t-{n}-{sig}-{half}"
    shutil.copytree(pristine["keep"], work)
    store = str(work / "s.zarr")
    status = _run_forked([*TRAIN, store, *RETRAIN], work, work / "trial", n, sig, half)
    log = (work / "trial.log").read_text() if (work / "trial.log").exists() else ""
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) not in (0, 130):
        seen = (work / "trial.json").read_text() if (work / "trial.json").exists() else "[]"
        changes = json.loads(seen)
        where, how = (
            (work / f"trial.{x}").read_text() if (work / f"trial.{x}").exists() else "?"
            for x in ("where", "exit")
        )
        raise AssertionError(
            f"trial {n} ({signal.Signals(sig).name}, half {half}): exit "
            f"{os.WEXITSTATUS(status)} after {len(changes)} file changes, the last "
            f"{changes[-3:]}; its output: {log!r}\nthe signal landed at:\n{where}\n"
            f"it ended with:\n{how}"
        )
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 130:
        assert log.strip().splitlines()[-1] == "error: interrupted", log
    # every run reads back whole, as the old run or the new one
    dc = _scores_match_the_run(store, "dc", "deepchrome")
    assert np.array_equal(dc, pristine["old"]["dc"], equal_nan=True) or np.array_equal(
        dc, pristine["new"], equal_nan=True
    )
    sc = _scores_match_the_run(store, "sc", "shallowchrome")
    assert np.array_equal(sc, pristine["old"]["sc"], equal_nan=True)
    _verify_passes(store)
    assert R.list_runs(store) == ["dc", "sc"]
    # the next writer clears what the killed one left, and succeeds
    res = CliRunner().invoke(main, [*TRAIN, store, *RETRAIN])
    assert res.exit_code == 0, res.output
    left = sorted(p.name for p in (work / "s.zarr.weights" / "dc").iterdir())
    assert len(left) == 1 and left[0].startswith("w-"), left
    assert not [p for p in (work / "s.zarr" / "runs").iterdir() if p.name.startswith(".")]
    np.testing.assert_array_equal(
        chromestore.open_run(store, "dc").prediction.values, pristine["new"]
    )
    shutil.rmtree(work)
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else -os.WTERMSIG(status)


def _instants(events: list, most: int) -> list[int]:
    """Change numbers (1-based) to kill at: every change of a weights file (written, its
    folder promoted, the replaced one deleted), every change from the new run's last
    rename on (the swap, the clean-up, the store's consolidation), and others spread evenly
    over the rest, ``most`` in all (at least the first two kinds)."""
    mine = [i for i, (_, path) in enumerate(events, 1) if "s.zarr" in path]
    weights = [i for i in mine if ".weights" in events[i - 1][1]]
    renames = [i for i in mine if events[i - 1][0] == "os.rename" and "/runs/" in events[i - 1][1]]
    key = sorted(set(weights) | {i for i in mine if i >= renames[-1]})
    rest = [i for i in mine if i not in set(key)]
    room = max(0, most - len(key))
    spread = rest[:: max(1, len(rest) // room)][:room] if room else []
    return sorted(set(key) | set(spread))


def _sweep(pristine, kill: list[int], interrupt: list[int]) -> None:
    outcomes = {}
    for n in kill:
        outcomes[("KILL", n)] = _trial(pristine, n, signal.SIGKILL)
    for n in interrupt:
        outcomes[("INT", n)] = _trial(pristine, n, signal.SIGINT)
    outcomes[("half", 1)] = _trial(pristine, None, signal.SIGKILL, half=1)
    outcomes[("half", 2)] = _trial(pristine, None, signal.SIGKILL, half=2)
    assert -signal.SIGKILL in outcomes.values() and 130 in outcomes.values()


@pytest.mark.timeout(900)  # about 10 trainings, each killed
def test_train_killed_at_key_instants_of_a_retrain__every_run_reads_back_whole(pristine):
    """Every ninth of the instants below (weights written, promoted, replaced; the swap,
    the clean-up, the consolidation) and the last three, SIGINT at two of them (the slow
    tests below take every one of them, and every instant of the retrain)."""
    events = pristine["events"]
    assert any(".weights" in p and "/.tmp-" in p for _, p in events)  # weights in the sweep
    kill = _instants(events, 36)
    assert len(kill) >= 30 and max(kill) > len(events) - 5  # up to the consolidation
    _sweep(pristine, sorted(set(kill[::9]) | set(kill[-3:])), kill[4::18])


@pytest.mark.slow
@pytest.mark.timeout(1500)  # about 45 trainings, each killed (about 6 min on two busy cores)
def test_train_killed_at_instants_of_a_retrain__every_run_reads_back_whole(pristine):
    events = pristine["events"]
    kill = _instants(events, 36)
    _sweep(pristine, kill, kill[::4])


@pytest.mark.slow
@pytest.mark.timeout(7200)  # 2 x ~227 trials of 3-8 s each on 2 cores: about an hour
def test_train_killed_at_every_instant_of_a_retrain__every_run_reads_back_whole(pristine):
    for n in range(1, len(pristine["events"]) + 1):
        for sig in (signal.SIGKILL, signal.SIGINT):
            _trial(pristine, n, sig)


def test_two_concurrent_trains_of_one_run_never_mix(pristine):
    root = pristine["root"]
    for trial in range(3):
        work = root / f"both-{trial}"
        shutil.copytree(pristine["keep"], work)
        store = str(work / "s.zarr")
        r, w = os.pipe()
        pids = []
        for seed in ("1", "2"):
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child waits for the start signal
                os.close(w)
                os.read(r, 1)
                args = [*TRAIN, store, *RETRAIN[:5], seed, *RETRAIN[6:]]
                try:
                    _child(args, str(work), str(work / f"seed{seed}"), None, 0, None)
                finally:
                    os._exit(98)
            pids.append(pid)
        os.close(r)
        os.write(w, b"go")  # both start together
        os.close(w)
        codes = [os.WEXITSTATUS(os.waitpid(pid, 0)[1]) for pid in pids]
        logs = [(work / f"seed{s}.log").read_text() for s in ("1", "2")]
        assert 0 in codes, logs
        for code, log in zip(codes, logs, strict=True):
            if code != 0:  # the loser refused at once, one line
                assert log.strip().splitlines()[-1] == (
                    f"error: run 'dc' of {store} is being written by another chromestore "
                    "command; wait for it to finish, or choose another run name"
                ), log
        run = chromestore.open_run(store, "dc")
        assert run.attrs["seed"] in (1, 2)
        _scores_match_the_run(store, "dc", "deepchrome")  # weights and run of one command
        _verify_passes(store)
        shutil.rmtree(work)
