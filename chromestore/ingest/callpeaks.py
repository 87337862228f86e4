"""``chromestore call-peaks``: MACS3 ``callpeak`` on reads, peaks ready for ``chromestore ingest``.

ShallowChrome (Frasca et al. 2022) reads the max peak ``signalValue`` in each gene's
window; users who only have reads (tagAlign or BAM) call peaks first. This runs
MACS3 ``callpeak`` once per (cell, mark) row of a reads samplesheet (header
``cell,mark,format,path``, as ``chromestore simulate --emit`` writes it), narrow or
``--broad``, with or without a control: rows whose mark is ``input`` or ``control``
are the controls of their cell's other rows, and ``control`` (a file) is used for
every cell without one. It writes ``OUT/<cell>.<mark>_peaks.narrowPeak`` (or
``.broadPeak``) and ``OUT/samplesheet.csv`` listing them, which ``chromestore ingest
--samples`` reads into ``peak_max``.

MACS3 is the optional extra ``peaks`` (``pip install 'chromestore[peaks]'``); on
Python 3.11 pip builds it from source.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

#: MACS3 ``-f`` per samplesheet format of reads.
READ_FORMATS = {"tagalign": "BED", "bed": "BED", "bam": "BAM"}
#: marks that name a control (input DNA) rather than a histone mark
CONTROL_MARKS = ("input", "control")
#: (MACS3 file suffix, samplesheet format) per peak mode
PEAK_FILES = {"narrow": ("narrowPeak", "narrowpeak"), "broad": ("broadPeak", "broadpeak")}
SAMPLESHEET = "samplesheet.csv"


class MissingExtra(RuntimeError):
    """MACS3 (the ``peaks`` extra) is not installed."""


def macs3_command() -> list[str]:
    """How to run MACS3's command line in this environment, or :class:`MissingExtra`."""
    if importlib.util.find_spec("MACS3") is None:
        raise MissingExtra(
            "chromestore call-peaks needs MACS3, the optional extra 'peaks': "
            "pip install 'chromestore[peaks]' (macs3>=3.0; built from source on Python 3.11)"
        )
    exe = Path(sys.executable).with_name("macs3")
    found = str(exe) if exe.exists() else shutil.which("macs3")
    if found is None:
        raise MissingExtra(
            "MACS3 is importable but its 'macs3' script is not on PATH; "
            "reinstall the 'peaks' extra: pip install 'chromestore[peaks]'"
        )
    return [sys.executable, found]


@dataclass(frozen=True)
class Reads:
    cell: str
    mark: str
    fmt: str  # tagalign, bed or bam
    path: Path


def read_reads_sheet(path: str | os.PathLike) -> list[Reads]:
    """Rows of a reads samplesheet (``cell,mark,format,path``; paths relative to it)."""
    from chromestore.errors import InputError
    from chromestore.ingest.samplesheet import sheet_rows

    rows = []
    for row in sheet_rows(path):
        if row.format not in READ_FORMATS:
            raise InputError(
                path,
                row.line,
                f"format {row.format or '?'!r}: call-peaks reads {', '.join(READ_FORMATS)}",
            )
        row.require_file()
        rows.append(Reads(row.cell, row.mark, row.format, Path(row.path)))
    return rows


def callpeak_args(
    treatment: Reads,
    controls: list[Path],
    out: Path,
    *,
    broad: bool,
    gsize: str,
    qvalue: float,
    extsize: int,
    build_model: bool,
) -> list[str]:
    """MACS3 ``callpeak`` arguments for one (cell, mark)."""
    args = [
        "callpeak",
        "-t",
        str(treatment.path),
        "-f",
        READ_FORMATS[treatment.fmt],
        "-g",
        gsize,
        "-n",
        f"{treatment.cell}.{treatment.mark}",
        "--outdir",
        str(out),
        "-q",
        str(qvalue),
        "--verbose",
        "1",
    ]
    if controls:
        args += ["-c", *map(str, controls)]
    if not build_model:  # histone marks rarely give MACS3 enough paired peaks for its model
        args += ["--nomodel", "--extsize", str(extsize)]
    if broad:
        args.append("--broad")
    return args


def call_peaks(
    samples: str | os.PathLike,
    out: str | os.PathLike,
    *,
    broad: bool = False,
    control: str | os.PathLike | None = None,
    gsize: str = "hs",
    qvalue: float = 0.05,
    extsize: int = 200,
    build_model: bool = False,
) -> Path:
    """Run MACS3 on every (cell, mark) of ``samples``; return ``out/samplesheet.csv``."""
    from chromestore.ingest.samplesheet import write_samplesheet

    macs3 = macs3_command()
    rows = read_reads_sheet(samples)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    controls: dict[str, list[Path]] = {}
    for r in rows:
        if r.mark.lower() in CONTROL_MARKS:
            controls.setdefault(r.cell, []).append(r.path)
    suffix, fmt = PEAK_FILES["broad" if broad else "narrow"]
    written = []
    for r in rows:
        if r.mark.lower() in CONTROL_MARKS:
            continue
        ctrl = controls.get(r.cell) or ([Path(control)] if control else [])
        cmd = macs3 + callpeak_args(
            r,
            ctrl,
            out,
            broad=broad,
            gsize=gsize,
            qvalue=qvalue,
            extsize=extsize,
            build_model=build_model,
        )
        done = subprocess.run(cmd, capture_output=True, text=True)
        peaks = out / f"{r.cell}.{r.mark}_peaks.{suffix}"
        if done.returncode != 0 or not peaks.exists():
            tail = "\n".join(done.stderr.strip().splitlines()[-5:])
            raise RuntimeError(f"MACS3 callpeak failed on {r.path} ({r.cell} {r.mark}):\n{tail}")
        written.append((r.cell, r.mark, fmt, peaks.name))
    sheet = out / SAMPLESHEET
    write_samplesheet(sheet, written)
    return sheet
