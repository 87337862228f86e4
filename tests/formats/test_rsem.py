"""RSEM gene quantifications (ENCODE's ``gene quantifications`` TSV): the reader."""

from __future__ import annotations

import numpy as np
import pytest

from chromestore import formats
from chromestore.errors import InputError
from chromestore.formats import read_rsem_genes
from tests.encode_fixtures import par_y_row, spike_in_row, write_rsem

IDS = ["ENSG00000000003.14", "ENSG00000000005.6", "ENSG00000000419.12"]


def test_read_rsem_genes__drops_versions_and_par_y_counts_spike_ins(tmp_path):
    path = write_rsem(
        tmp_path / "ENCFF000AAA.tsv",
        IDS,
        np.array([12.5, 0.0, 40.25]),
        np.array([6.1, 0.0, 20.0]),
        extra=[par_y_row("ENSG00000182378.14"), spike_in_row()],
    )
    tpm, stats = read_rsem_genes(path)
    assert list(tpm.index) == [
        "ENSG00000000003",
        "ENSG00000000005",
        "ENSG00000000419",
        "gSpikein_ERCC-00002",
    ]
    np.testing.assert_array_equal(tpm.to_numpy(), np.float32([12.5, 0.0, 40.25, 5.0]))
    assert stats == {"quantity": "TPM", "genes": 4, "par_y_rows": 1, "other_ids": 1}
    fpkm, stats = read_rsem_genes(path, "FPKM")
    assert fpkm.loc["ENSG00000000419"] == 20.0 and stats["quantity"] == "FPKM"


def test_rsem_genes__is_a_registry_format_filling_expression_without_mark():
    entry = formats.get("rsem-genes")
    assert (entry.target, entry.needs_mark) == ("expression", False)
    assert formats.infer_format("E1.genes.results") == "rsem-genes"


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda t: t.replace("\tTPM\t", "\tTPMx\t"),
            r"line 1: not an RSEM gene quantification: no column TPM",
        ),
        (lambda t: t.replace("\t40.25\t", "\t-1\t"), r"line 4: TPM '-1' is not a number ≥ 0"),
        (lambda t: t.replace("\t40.25\t", "\tnan\t"), r"line 4: TPM 'nan' is not a number ≥ 0"),
        (
            lambda t: t.replace("ENSG00000000419.12", "ENSG00000000003.15"),
            r"line 4: gene ENSG00000000003 appears twice \(first on line 2\)",
        ),
        (lambda t: t.rstrip("\n") + "\tx\n", r"line 4: expected 17 columns, found 18"),
    ],
)
def test_read_rsem_genes__bad_file_one_line_naming_file_and_line(tmp_path, change, message):
    path = write_rsem(tmp_path / "q.tsv", IDS, np.array([1.0, 2.0, 40.25]), np.ones(3))
    path.write_text(change(path.read_text()))
    with pytest.raises(InputError, match=f"^{path}, {message}"):
        read_rsem_genes(path)
