"""A samplesheet from ENCODE's portal metadata: the ``metadata.tsv`` of a batch download.

The portal's batch download writes ``files.txt`` (the URLs, the first of them the
metadata's) and, behind its first URL, ``metadata.tsv``: one row per file, with the
portal's columns (``File accession``, ``File format``, ``File type``, ``Output type``,
``File assembly``, ``Experiment accession``, ``Biosample term name``, ``Biosample type``,
``Experiment target``, ``Biological replicate(s)``, ``Experiment date released``,
``File download URL``, ``File Status``, …). :func:`encode_samplesheet` picks from it

* per biosample and histone mark (``Experiment target`` ``H3K4me3-human`` → ``H3K4me3``,
  one of the store's marks), the file of the output type asked for (``fold change over
  control`` by default; several types: the first one a biosample has, one signal file and
  one peaks file where the types asked for are of both kinds), preferring the
  output of most biological replicates (replicated or pooled), then the newest (``Date
  file created`` where the sheet has it, else ``Experiment date released``), then the
  first accession;
* per biosample, its RSEM ``gene quantifications`` (a ``rsem-genes`` row, mark empty), by
  the same preference;

and skips every other row with its reason: another assembly, a file that is not
released (archived, revoked, …), another output type, a target that is not one of the
marks, a format chromestore does not read, a file not chosen for its biosample and mark.
Biosamples (a term name; a tissue's donors and a treated or modified cell line apart:
:data:`DISTINCT`) become safe epigenome ids (``transverse colon`` → ``transverse_colon``;
two donors of it: ``transverse_colon_ENCDO271OUW``, …); the mapping is written next to
the samplesheet. Paths are those the batch download writes
(the file name of ``File download URL``), under ``files`` (relative to the samplesheet).
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from chromestore import datasets, formats
from chromestore import variables as V
from chromestore.errors import InputError
from chromestore.ingest.samplesheet import write_samplesheet
from chromestore.store import names
from chromestore.textio import open_text

#: the columns every metadata.tsv must have
REQUIRED = (
    "File accession",
    "File format",
    "Output type",
    "File assembly",
    "Experiment target",
    "Biosample term name",
    "File Status",
)
#: the default output type of the histone marks' files
DEFAULT_OUTPUT_TYPE = "fold change over control"
#: the units of a signal file of each output type (the samplesheet's ``units`` column;
#: a read file counts reads, and any other output type's bigWig is a ``mean value``)
OUTPUT_UNITS = {
    "fold change over control": "fold change",
    "signal p-value": "-log10 p",
    "read-depth normalized signal": "reads per million",
    "raw signal": "reads",
    "signal of unique reads": "reads",
    "signal of all reads": "reads",
}
#: the output type of RSEM gene quantifications (RNA-seq)
GENE_QUANTIFICATIONS = "gene quantifications"
#: the portal's file type (or format) → the samplesheet format
FORMATS = {
    "bigwig": "bigwig",
    "bed narrowpeak": "narrowpeak",
    "bed broadpeak": "broadpeak",
    "bed gappedpeak": "gappedpeak",
    "bam": "bam",
    "tagalign": "tagalign",
    "bed tagalign": "tagalign",
}
#: the columns that tell apart biosamples of one term name: each such biosample is an
#: epigenome of its own (a tissue's donors, a cell line treated or modified)
DISTINCT = (
    "Donor(s)",
    "Biosample treatments",
    "Biosample treatments amount",
    "Biosample treatments duration",
    "Biosample genetic modifications methods",
    "Biosample genetic modifications targets",
)
#: the columns that date a file, newest first preferred (the first the sheet has)
DATE_COLUMNS = ("Date file created", "Experiment date released")
_ORGANISM = re.compile(r"^(?P<mark>.+)-(?:human|mouse)$")


@dataclass
class EncodeSheet:
    """What :func:`encode_samplesheet` chose and skipped."""

    #: cell, mark, format, path, units ("" but for a signal file)
    rows: list[tuple[str, str, str, str, str]] = field(default_factory=list)
    skipped: list[tuple[str, int, str]] = field(default_factory=list)  # accession, line, reason
    epigenomes: dict[str, dict] = field(default_factory=dict)  # id → biosample's columns

    def summary(self) -> str:
        marks = sum(1 for r in self.rows if r[1])
        quant = len(self.rows) - marks
        return (
            f"{len(self.epigenomes)} epigenomes, {marks} mark files, {quant} gene "
            f"quantifications; {len(self.skipped)} files skipped"
        )


@dataclass(frozen=True)
class _File:
    line: int
    accession: str
    format: str  # the samplesheet format
    output_type: str
    mark: str  # "" for gene quantifications
    biosample: tuple[str, ...]  # the term name, then the :data:`DISTINCT` columns
    replicates: int
    date: str
    name: str  # the downloaded file's name
    row: dict


def safe_id(biosample: str) -> str:
    """An epigenome id for a biosample name: runs of characters a store name may not hold
    become ``_``, and it starts with a letter or digit.

    >>> safe_id("transverse colon"), safe_id("Peyer's patch"), safe_id("K562")
    ('transverse_colon', 'Peyer_s_patch', 'K562')
    """
    text = re.sub(r"[^A-Za-z0-9._+-]+", "_", biosample.strip()).strip("_")
    text = re.sub(r"^[^A-Za-z0-9]+", "", text)
    return text[: names.MAX_LENGTH] or "biosample"


def read_metadata(path: str | os.PathLike) -> list[tuple[int, dict]]:
    """The rows of a portal ``metadata.tsv`` (line number, column → value); the error
    names the file and line when the header lacks a column the choice needs or a row's
    fields do not match it."""
    with open_text(path) as fh:
        rows = list(csv.reader(fh, delimiter="\t"))
    if not rows:
        raise InputError(path, None, "empty file; expected the portal's metadata.tsv")
    header = [c.strip() for c in rows[0]]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise InputError(
            path, 1, f"not an ENCODE metadata.tsv: no column {', '.join(map(repr, missing))}"
        )
    out = []
    for lineno, row in enumerate(rows[1:], 2):
        if not row or not "".join(row).strip():
            continue
        if len(row) != len(header):
            raise InputError(path, lineno, f"expected {len(header)} columns, found {len(row)}")
        out.append((lineno, dict(zip(header, (v.strip() for v in row), strict=True))))
    return out


def _replicates(text: str) -> int:
    return len({r.strip() for r in text.split(",") if r.strip()})


def _file_name(row: dict) -> str:
    url = row.get("File download URL", "")
    if url:
        return url.rstrip("/").rsplit("/", 1)[-1]
    return row["File accession"]


def encode_samplesheet(
    metadata: str | os.PathLike,
    out: str | os.PathLike,
    *,
    output_types: Sequence[str] = (DEFAULT_OUTPUT_TYPE,),
    assembly: str = "GRCh38",
    marks: Sequence[str] = V.DEFAULT_MARKS,
    files: str | os.PathLike | None = None,
    expression: bool = True,
) -> EncodeSheet:
    """Write the samplesheet ``out`` (``cell,mark,format,path``) of the files chosen from
    the portal's ``metadata`` (see the module docstring), the biosample mapping
    (``out`` with ``.epigenomes.tsv``) and the skipped files with their reasons
    (``.skipped.tsv``). ``files``: the folder the files were downloaded to (default:
    the metadata's folder); ``expression``: take the gene quantifications too."""
    wanted = [t.strip().lower() for t in output_types]
    genome = datasets.assembly(assembly)
    sheet = EncodeSheet()
    chosen: dict[tuple[str, str], list[_File]] = {}
    rows = read_metadata(metadata)
    date_column = next((c for c in DATE_COLUMNS if rows and c in rows[0][1]), None)
    for line, row in rows:
        accession = row["File accession"]

        def skip(reason: str, accession=accession, line=line) -> None:
            sheet.skipped.append((accession, line, reason))

        output_type = row["Output type"]
        kind = (row.get("File type") or row["File format"]).lower()
        if row["File Status"].lower() != "released":
            skip(f"file status {row['File Status']}: only released files are taken")
            continue
        if datasets.assembly(row["File assembly"]) != genome:
            skip(f"assembly {row['File assembly'] or '(none)'}, not {assembly}")
            continue
        quantifications = output_type.lower() == GENE_QUANTIFICATIONS
        if quantifications:
            if not expression:
                skip("gene quantifications not asked for (--no-expression)")
                continue
            if kind != "tsv":
                skip(f"gene quantifications as {kind}, not an RSEM tsv")
                continue
            fmt, mark = "rsem-genes", ""
        else:
            if output_type.lower() not in wanted:
                skip(f"output type {output_type}, not {' or '.join(output_types)}")
                continue
            target = row["Experiment target"]
            m = _ORGANISM.match(target)
            mark = m.group("mark") if m else target
            if mark not in marks:
                skip(f"target {target or '(none)'} is not one of the marks ({', '.join(marks)})")
                continue
            if kind not in FORMATS:
                skip(f"file type {kind} has no chromestore format")
                continue
            fmt = FORMATS[kind]
        if not row["Biosample term name"]:
            skip("no biosample term name")
            continue
        f = _File(
            line,
            accession,
            fmt,
            output_type.lower(),
            mark,
            (row["Biosample term name"], *(row.get(c, "") for c in DISTINCT)),
            _replicates(row.get("Biological replicate(s)", "")),
            row.get(date_column, "") if date_column else "",
            _file_name(row),
            row,
        )
        target = formats.get(fmt).target  # a mark's bigWig and its peaks are both taken
        chosen.setdefault((f.biosample, mark, target), []).append(f)

    ids = _epigenome_ids(sorted({k[0] for k in chosen}))
    folder = os.path.dirname(os.path.abspath(out))
    base = os.path.abspath(files) if files else os.path.dirname(os.path.abspath(metadata))
    for (biosample, mark, _), candidates in sorted(chosen.items()):
        rank = {t: i for i, t in enumerate(wanted)}
        ordered = sorted(
            candidates,
            key=lambda f: (rank.get(f.output_type, 0), -f.replicates, _newest(f.date), f.accession),
        )
        best = ordered[0]
        cell = ids[biosample]
        for other in ordered[1:]:
            why = _why(best, other, rank, cell)
            sheet.skipped.append((other.accession, other.line, f"not chosen: {why}"))
        if cell not in sheet.epigenomes:
            sheet.epigenomes[cell] = {
                "biosample_term_name": biosample[0],
                "biosample_term_id": best.row.get("Biosample term id", ""),
                "biosample_type": best.row.get("Biosample type", ""),
                "donor": _donors(best.row.get("Donor(s)", "")),
                "treatments": " ".join(p for p in biosample[2:5] if p),
                "experiments": [],
            }
        sheet.epigenomes[cell]["experiments"].append(best.row.get("Experiment accession", ""))
        path = os.path.relpath(os.path.join(base, best.name), folder)
        sheet.rows.append((cell, mark, best.format, path, _units(best)))
    sheet.skipped.sort(key=lambda s: s[1])
    _write(out, sheet)
    return sheet


def _units(f: _File) -> str:
    """What a file's values are: the samplesheet's ``units`` (``""`` for peaks and
    expression, whose formats say it)."""
    entry = formats.get(f.format)
    if entry.target != V.signal.name:
        return ""
    if entry.units != V.SIGNAL_UNITS[-1]:  # a read format: reads
        return entry.units
    return OUTPUT_UNITS.get(f.output_type.lower(), entry.units)


def _newest(date: str) -> tuple:
    """Sorts the newest first (ISO dates; an empty one last)."""
    return (date == "", tuple(-ord(c) for c in date))


def _donors(text: str) -> str:
    """``/human-donors/ENCDO271OUW/`` → ``ENCDO271OUW`` (each of a comma-separated list)."""
    parts = [p.strip().rstrip("/").rsplit("/", 1)[-1] for p in text.split(",") if p.strip()]
    return ",".join(parts)


def _epigenome_ids(biosamples: Sequence[tuple[str, ...]]) -> dict[tuple[str, ...], str]:
    """A safe, unique epigenome id per biosample: its term name, and where several
    biosamples share one, the columns that tell them apart (donor, treatment, …)."""
    by_name: dict[str, list[tuple[str, ...]]] = {}
    for b in biosamples:
        by_name.setdefault(b[0], []).append(b)
    ids: dict[tuple[str, ...], str] = {}
    for name, group in by_name.items():
        varying = [i for i in range(1, len(group[0])) if len({b[i] for b in group}) > 1]
        for b in group:
            parts = [name, *(_donors(b[i]) if i == 1 else b[i] for i in varying)]
            ids[b] = _unique(safe_id(" ".join(p for p in parts if p)), set(ids.values()))
    return ids


def _why(best: _File, other: _File, rank: dict[str, int], cell: str) -> str:
    if rank.get(other.output_type, 0) != rank.get(best.output_type, 0):
        reason = f"output type {best.output_type} is preferred"
    elif other.replicates != best.replicates:
        reason = f"it has {best.replicates} biological replicates, this {other.replicates}"
    elif other.date != best.date:
        reason = f"it is newer ({best.date or '?'} over {other.date or '?'})"
    else:
        reason = "the same replicates and date; the first accession is taken"
    return f"{best.accession} for ({cell}, {best.mark or 'expression'}): {reason}"


def _unique(name: str, taken: set[str]) -> str:
    if name not in taken:
        return name
    n = 2
    while f"{name}_{n}" in taken:
        n += 1
    return f"{name}_{n}"


def companion(out: str | os.PathLike, what: str) -> str:
    """The path of a file written next to the samplesheet ``out``:
    ``samples.csv`` → ``samples.epigenomes.tsv``, ``samples.skipped.tsv``."""
    stem, _ = os.path.splitext(os.fspath(out))
    return f"{stem}.{what}.tsv"


def _write(out: str | os.PathLike, sheet: EncodeSheet) -> None:
    write_samplesheet(out, sheet.rows)
    with open(companion(out, "epigenomes"), "w", newline="") as fh:
        w = csv.writer(fh, delimiter="\t", lineterminator="\n")
        w.writerow(
            [
                "epigenome",
                "biosample_term_name",
                "biosample_term_id",
                "biosample_type",
                "donor",
                "treatments",
                "experiments",
            ]
        )
        for cell, info in sheet.epigenomes.items():
            experiments = ",".join(dict.fromkeys(e for e in info["experiments"] if e))
            w.writerow(
                [
                    cell,
                    info["biosample_term_name"],
                    info["biosample_term_id"],
                    info["biosample_type"],
                    info["donor"],
                    info["treatments"],
                    experiments,
                ]
            )
    with open(companion(out, "skipped"), "w", newline="") as fh:
        w = csv.writer(fh, delimiter="\t", lineterminator="\n")
        w.writerow(["file_accession", "metadata_line", "reason"])
        w.writerows(sheet.skipped)
