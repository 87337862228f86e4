"""What a DeepChrome-style training run is asked to do: its settings, device and mode.

The one place of the training defaults: :class:`TrainConfig`'s fields and where a run
trains (:data:`DEFAULT_MODE`, :data:`DEFAULT_DEVICE`, :data:`DEFAULT_GROUP_SIZE`), gathered
in :data:`DEFAULTS`, from which :func:`chromestore.training.trainer.train`,
:class:`chromestore.training.request.TrainRequest` and the options of ``chromestore train``
take theirs. Importing this module loads no torch (the functions that need it load it), so
the command line reads the defaults without it.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

from chromestore.training.registry import DEFAULT_MODEL
from chromestore.variables import NORMALISE

MODES = ("auto", "stacked", "loop", "percore", "distributed")
DEVICES = ("auto", "cpu", "cuda")
#: How a group's models take their training steps: ``stacked`` (batched matmuls over the
#: models: one kernel launch for all, the GPU's way), ``per-model`` (one small model after
#: another, a CPU core's way), ``auto`` (stacked on CUDA, per-model on CPU).
STEPS = ("auto", "stacked", "per-model")
PRECISIONS = ("fp32", "bf16")


@dataclass
class TrainConfig:
    """Hyper-parameters and data choices of a training run (recorded in the run)."""

    model: str = DEFAULT_MODEL
    split: str = "deepchrome"
    seed: int = 0
    epochs: int = 100
    patience: int | None = 10
    batch_size: int = 128
    lr: float = 1e-3
    transform: str = "raw"
    label_rule: str | float = "median"
    hparams: dict[str, Any] = field(default_factory=dict)
    split_over: str = "all"
    memory_budget: int = 1 << 30
    #: ``bf16``: forward passes under bfloat16 autocast (CPUs with avx512_bf16/AMX, GPUs).
    precision: str = "fp32"
    steps: str = "auto"
    #: Seconds between checkpoints (at most one per epoch; always one when a run stops early).
    checkpoint_every: float = 30.0
    #: Per-epigenome input normalisation (:mod:`chromestore.runs.inputs`): ``none``, or
    #: ``quantile`` (each mark onto the training epigenome's quantiles; the model then
    #: predicts epigenomes of other signal units). Training an epigenome's own model on its
    #: own quantiles leaves its input as it is: it changes what is recorded, not the fit.
    normalise: str = "none"

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; use one of {PRECISIONS}")
        if self.steps not in STEPS:
            raise ValueError(f"unknown steps {self.steps!r}; use one of {STEPS}")
        if self.normalise not in NORMALISE:
            raise ValueError(f"unknown normalisation {self.normalise!r}; use one of {NORMALISE}")

    def key(self) -> str:
        """Fingerprint of everything that changes the result (checkpoints must match it)."""
        d = asdict(self)
        for k in ("memory_budget", "steps", "checkpoint_every", "normalise"):
            d.pop(k)
        if d["precision"] == "fp32":
            d.pop("precision")  # keys of fp32 runs stay those written before bf16 existed
        return hashlib.sha1(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


#: Where a run trains when not told: :func:`pick_mode`'s rule, the device it picks, and
#: groups that shrink as the work runs out (``--mode``, ``--device``, ``--group-size``).
DEFAULT_MODE = "auto"
DEFAULT_DEVICE = "auto"
DEFAULT_GROUP_SIZE = 0
#: Every training setting's default, by name: :class:`TrainConfig`'s fields (those with a
#: plain default) and where the run trains.
DEFAULTS: dict[str, Any] = {
    **{f.name: f.default for f in fields(TrainConfig) if f.default is not MISSING},
    "mode": DEFAULT_MODE,
    "device": DEFAULT_DEVICE,
    "group_size": DEFAULT_GROUP_SIZE,
}


def resolve_device(device: str) -> torch.device:
    """``auto`` → CUDA when present else CPU; ``cuda`` without a GPU is an error."""
    import torch

    if device not in DEVICES and not device.startswith("cuda:"):
        raise ValueError(f"unknown device {device!r}; use one of {DEVICES}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(
            f"--device {device} was asked for but no CUDA GPU is available to torch "
            f"{torch.__version__} (torch.cuda.is_available() is False); use --device cpu or auto"
        )
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def pick_mode(
    mode: str,
    device: str,
    cluster: bool = False,
    local_pool: bool = False,
    cores: int | None = None,
) -> tuple[str, str]:
    """Resolve ``auto`` to what is fastest where it runs. Returns (mode, reason).

    - a CUDA GPU: ``stacked`` (one kernel launch per layer for all the models);
    - a Dask cluster given (``cluster``): ``distributed``, groups of epigenomes handed to the workers as they free up;
    - CPU with several cores, a local pool allowed (``local_pool``) and ``fork``
      available: ``percore``, one forked single-threaded process per core, each stepping
      its share of the models one at a time (two processes × one thread beat one process
      × two threads, per-model steps beat stacked ones on a CPU, and a fork starts in
      0.1 s where a Dask worker takes seconds: benchmarks/train.py);
    - else ``loop``: the models stepped one at a time in this process.
    """
    import torch

    if mode != "auto":
        return mode, "asked for"
    if device in ("cuda", "auto") and torch.cuda.is_available() or device.startswith("cuda:"):
        return "stacked", "a CUDA GPU is present: one stacked ensemble on it"
    if cluster:
        return "distributed", "a Dask cluster was given: groups of epigenomes handed to its workers"
    cores = cores or usable_cores()
    if local_pool and cores > 1 and "fork" in mp.get_all_start_methods():
        return "percore", (
            f"CPU only: {cores} forked single-threaded processes, "
            "each stepping its share of the models one at a time"
        )
    return "loop", "CPU only, no worker pool: the models stepped one at a time in this process"


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS says)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def resolve_steps(steps: str, device: torch.device) -> str:
    """``auto`` → ``stacked`` on CUDA, ``per-model`` on CPU."""
    if steps != "auto":
        return steps
    return "stacked" if device.type == "cuda" else "per-model"


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """torch's intra-op threads set to ``n`` inside the block (None: left as they are)."""
    import torch

    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
