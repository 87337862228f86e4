"""Files in ENCODE's shapes for the tests: RSEM gene quantifications and the portal's
``metadata.tsv`` (batch download)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

#: RSEM's gene-level columns, as ENCODE's ``gene quantifications`` TSVs have them
RSEM_COLUMNS = (
    "gene_id",
    "transcript_id(s)",
    "length",
    "effective_length",
    "expected_count",
    "TPM",
    "FPKM",
    "posterior_mean_count",
    "posterior_standard_deviation_of_count",
    "pme_TPM",
    "pme_FPKM",
    "TPM_ci_lower_bound",
    "TPM_ci_upper_bound",
    "TPM_coefficient_of_quartile_variation",
    "FPKM_ci_lower_bound",
    "FPKM_ci_upper_bound",
    "FPKM_coefficient_of_quartile_variation",
)


def write_rsem(
    path: Path, gene_ids: list[str], tpm: np.ndarray, fpkm: np.ndarray, extra: list[str] = ()
) -> Path:
    """An RSEM gene file: ``gene_ids`` (versioned ids) with their TPM and FPKM, then the
    ``extra`` rows as given (lines without the newline)."""
    lines = ["\t".join(RSEM_COLUMNS)]
    for i, (g, t, f) in enumerate(zip(gene_ids, tpm, fpkm, strict=True)):
        rest = ["0.00"] * (len(RSEM_COLUMNS) - 7)
        lines.append(
            "\t".join(
                [g, f"ENST{i:011d}.1", "1500", "1350.5", "12.00", f"{t:.2f}", f"{f:.2f}", *rest]
            )
        )
    lines += list(extra)
    path.write_text("\n".join(lines) + "\n")
    return path


def par_y_row(gene_id: str) -> str:
    """GENCODE's chrY pseudoautosomal copy of ``gene_id`` (versioned), with zero values."""
    rest = ["0.00"] * (len(RSEM_COLUMNS) - 1)
    return "\t".join([f"{gene_id}_PAR_Y", *rest])


def spike_in_row(name: str = "gSpikein_ERCC-00002", tpm: float = 5.0) -> str:
    rest = ["0.00"] * (len(RSEM_COLUMNS) - 7)
    return "\t".join([name, name, "1061", "911.5", "3.00", f"{tpm:.2f}", f"{tpm:.2f}", *rest])


#: the columns of the portal's ``metadata.tsv`` (batch download of files)
METADATA_COLUMNS = (
    "File accession",
    "File format",
    "File type",
    "File format type",
    "Output type",
    "File assembly",
    "Experiment accession",
    "Assay",
    "Donor(s)",
    "Biosample term id",
    "Biosample term name",
    "Biosample type",
    "Biosample organism",
    "Biosample treatments",
    "Biosample treatments amount",
    "Biosample treatments duration",
    "Biosample genetic modifications methods",
    "Biosample genetic modifications categories",
    "Biosample genetic modifications targets",
    "Biosample genetic modifications gene targets",
    "Biosample genetic modifications site coordinates",
    "Biosample genetic modifications zygosity",
    "Experiment target",
    "Library made from",
    "Library depleted in",
    "Library extraction method",
    "Library lysis method",
    "Library crosslinking method",
    "Library strand specific",
    "Experiment date released",
    "Project",
    "RBNS protein concentration",
    "Library fragmentation method",
    "Library size range",
    "Biological replicate(s)",
    "Technical replicate(s)",
    "Read length",
    "Mapped read length",
    "Run type",
    "Paired end",
    "Paired with",
    "Index of",
    "Derived from",
    "Size",
    "Lab",
    "md5sum",
    "dbxrefs",
    "File download URL",
    "Genome annotation",
    "Platform",
    "Controlled by",
    "File Status",
    "s3_uri",
    "Azure URL",
    "File analysis title",
    "File analysis status",
    "Audit WARNING",
    "Audit NOT_COMPLIANT",
    "Audit ERROR",
)


def write_metadata(path: Path, rows: list[dict]) -> Path:
    """A ``metadata.tsv`` of ``rows`` (each a dict of some of :data:`METADATA_COLUMNS`;
    the others are left empty), tab-separated as the portal writes it."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh, delimiter="\t", lineterminator="\n")
        w.writerow(METADATA_COLUMNS)
        for row in rows:
            w.writerow([row.get(c, "") for c in METADATA_COLUMNS])
    return path
