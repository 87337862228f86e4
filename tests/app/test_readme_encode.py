"""The README's "Adding ENCODE epigenomes" runs as written, in an empty folder holding only an
ENCODE-shaped batch download (``downloads/``: metadata.tsv and its files), with no error and
no warning, and ends with both assemblies' ids in its CSV."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from chromestore import datasets
from tests.app.test_encode_predict import _encode_download
from tests.app.test_readme_walkthrough import _bash, _block, _clean

#: the one NaN the block prints: the GRCh38 genes the download has no expression for
NO_EXPRESSION = "18350 absent from the matrix (left NaN)"

SECTION = "## Adding ENCODE epigenomes"


@pytest.mark.slow  # eight commands, an 18,950-gene store: ~70 s on 2 idle cores
@pytest.mark.timeout(600)
def test_readme_encode__runs_as_written_from_the_batch_download_to_predictions(tmp_path: Path):
    grch38 = pd.read_csv(datasets.gene_windows("GRCh38"), sep="\t", header=None)
    _encode_download(tmp_path, [str(k) for k in grch38[3].iloc[:600]])
    res = _bash(_block(SECTION), tmp_path)
    assert NO_EXPRESSION in res.stdout, res.stdout + res.stderr
    res.stdout = res.stdout.replace(NO_EXPRESSION, "")
    out = _clean(res)
    skipped = [line.split(":")[0] for line in out.splitlines() if line.startswith("skipped")]
    assert skipped == [
        "skipped ENCFF601SIM (line 13)",
        "skipped ENCFF602SIM (line 14)",
        "skipped ENCFF603SIM (line 15)",
    ]
    assert "signal units: fold change (5 cell × mark)" in out
    assert "model of hg19 on a GRCh38 store: genes matched by their keys, 18,950 in both" in out
    table = pd.read_csv(tmp_path / "h1-genes.csv", keep_default_na=False)
    assert list(table.columns) == ["cell", "gene", "hg19_gene", "GRCh38_gene", "score", "label"]
    assert set(table.cell) == {"H1"} and len(table) == 18_950
    assert table.score.between(0, 1).all() and 0 < table.label.sum() < len(table)
