"""What a DeepChrome-style training run is asked to do: its settings, device and mode."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

MODES = ("auto", "stacked", "distributed")
DEVICES = ("auto", "cpu", "cuda")


@dataclass
class TrainConfig:
    """Hyper-parameters and data choices of a training run (recorded in the run)."""

    model: str = "deepchrome"
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

    def key(self) -> str:
        """Fingerprint of everything that changes the result (checkpoints must match it)."""
        d = asdict(self)
        d.pop("memory_budget")
        return hashlib.sha1(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


def resolve_device(device: str) -> torch.device:
    """``auto`` → CUDA when present else CPU; ``cuda`` without a GPU is an error."""
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


def pick_mode(mode: str, device: str, cluster: bool = False) -> tuple[str, str]:
    """Resolve ``auto``: a stacked ensemble on a GPU; on CPU, Dask workers when a
    scheduler was given, else one stacked ensemble (faster than a loop on this CPU,
    see benchmarks/train.py). Returns (mode, reason)."""
    if mode != "auto":
        return mode, "asked for"
    if device in ("cuda", "auto") and torch.cuda.is_available():
        return "stacked", "a CUDA GPU is present: one stacked ensemble on it"
    if cluster:
        return "distributed", "a Dask cluster was given: one task per epigenome group"
    return "stacked", "CPU only, no scheduler: one stacked ensemble (im2col + bmm) in-process"


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """torch's intra-op threads set to ``n`` inside the block (None: left as they are)."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
