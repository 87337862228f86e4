"""Ingestion speed: chromestore's tagAlign counting vs the bedtools recipe, same reads and bins.

    python benchmarks/ingest.py [--reads 4] [--skip-bedtools] [--peak-rss] [--repeat K]

Generates N million 36 bp reads (half within ±6 kb of the real TSSs of
data/gene_windows.hg19.bed.gz, half uniform over chr1..chr22, X), writes them as a
gzipped tagAlign, then times

* chromestore: ``count_bed`` (gzip decoding + parsing + counting), the whole ingest of
  that file into a fresh store in this process, and ``chromestore ingest`` as a command
  (a new process: imports, annotation, store creation, counting by a forked worker
  meanwhile, writing, completion), and that command on 1,000 reads (its fixed cost);
* bedtools (when installed): ``bedtobam`` + ``samtools sort`` + ``samtools index`` +
  ``bedtools multicov`` against the 19,802 × 100 bins, the DeepChrome recipe;

checks that bedtools' counts equal both count_bed's and the command's store, and prints the
wall times side by side with the ratios, the CPU seconds (ours: this process; bedtools:
its child processes) and the load average: a wall-time ratio is withheld when the load
reached the number of cores (a busy machine distorts it).

``--peak-rss`` also runs the whole ingest of the file in a fresh child process and prints
its peak resident memory (``ru_maxrss``), next to the same child's peak after imports
only. ``--repeat K`` writes the generated reads K times over as concatenated gzip
members (K x N reads; a valid gzip, as ``cat a.gz b.gz`` is) so that a 50 M-read file
for the memory check takes seconds to make; bedtools is then skipped.
"""

from __future__ import annotations

import argparse
import gzip
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from chromestore.bins import genome_bin_starts  # noqa: E402
from chromestore.counting import BinLayout, count_bed  # noqa: E402
from chromestore.genes import read_gene_bed  # noqa: E402
from chromestore.ingest import run_ingest  # noqa: E402
from chromestore.store import DEFAULT_BIN_SIZE, DEFAULT_WINDOW  # noqa: E402

GENES = ROOT / "data" / "gene_windows.hg19.bed.gz"
HG19 = {  # chromosome sizes (UCSC hg19)
    "chr1": 249250621,
    "chr2": 243199373,
    "chr3": 198022430,
    "chr4": 191154276,
    "chr5": 180915260,
    "chr6": 171115067,
    "chr7": 159138663,
    "chr8": 146364022,
    "chr9": 141213431,
    "chr10": 135534747,
    "chr11": 135006516,
    "chr12": 133851895,
    "chr13": 115169878,
    "chr14": 107349540,
    "chr15": 102531392,
    "chr16": 90354753,
    "chr17": 81195210,
    "chr18": 78077248,
    "chr19": 59128983,
    "chr20": 63025520,
    "chr21": 48129895,
    "chr22": 51304566,
    "chrX": 155270560,
    "chrY": 59373566,
}


def make_reads(genes, n: int, path: Path, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    near = n // 2
    gi = rng.integers(0, len(genes), near)
    chrom = np.empty(n, dtype=object)
    chrom[:near] = genes.chrom.values.astype(object)[gi]
    start = np.empty(n, dtype=np.int64)
    start[:near] = genes.tss.values[gi] + rng.integers(-6000, 6000, near)
    names = [c for c in HG19 if c != "chrY"]
    ci = rng.integers(0, len(names), n - near)
    chrom[near:] = np.array(names, dtype=object)[ci]
    sizes = np.array([HG19[c] for c in names])[ci]
    start[near:] = (rng.random(n - near) * (sizes - 100)).astype(np.int64)
    start = np.maximum(start, 0)
    strand = np.where(rng.random(n) < 0.5, "+", "-")
    with gzip.open(path, "wt", compresslevel=6) as fh:
        step = 1 << 20
        for i in range(0, n, step):
            fh.write(
                "".join(
                    f"{c}\t{s}\t{s + 36}\tN\t1000\t{d}\n"
                    for c, s, d in zip(
                        chrom[i : i + step], start[i : i + step], strand[i : i + step], strict=True
                    )
                )
            )


def bedtools_counts(genes, reads: Path, work: Path) -> tuple[np.ndarray, float, float]:
    starts = genome_bin_starts(
        genes.tss.values, genes.strand.values, DEFAULT_WINDOW, DEFAULT_BIN_SIZE
    )
    n_genes, n_bins = starts.shape
    bed = work / "bins.bed"
    with open(bed, "w") as fh:
        for g, chrom in enumerate(genes.chrom.values.astype(object)):
            for b in range(n_bins):
                fh.write(f"{chrom}\t{starts[g, b]}\t{starts[g, b] + 100}\t{g}\t{b}\n")
    (work / "genome.txt").write_text("".join(f"{c}\t{s}\n" for c, s in HG19.items()))
    t0 = time.perf_counter()
    c0 = _child_cpu()
    sh = (
        f"bedtools bedtobam -i {reads} -g {work / 'genome.txt'} > {work / 'r.bam'} && "
        f"samtools sort -o {work / 's.bam'} {work / 'r.bam'} && "
        f"samtools index {work / 's.bam'} && "
        f"bedtools multicov -bams {work / 's.bam'} -bed {bed} > {work / 'counts.bed'}"
    )
    subprocess.run(sh, shell=True, check=True)
    seconds = time.perf_counter() - t0
    cpu = _child_cpu() - c0
    out = np.zeros((n_genes, n_bins), dtype=np.float32)
    g, b, c = np.loadtxt(work / "counts.bed", usecols=(3, 4, 5), dtype=np.int64, unpack=True)
    out[g, b] = c
    return out, seconds, cpu


def peak_rss(reads: Path, work: Path) -> tuple[float, float, float]:
    """(MiB resident after imports, MiB peak during the ingest, seconds), measured in a
    fresh child process."""
    out = subprocess.run(
        [sys.executable, __file__, "--rss-child", str(reads), str(work / "rss.zarr")],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return float(out[-3]), float(out[-2]), float(out[-1])


def _status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def _rss_child(reads: str, store: str) -> None:
    """Ingest ``reads`` into a new store; print resident MiB after imports, peak MiB, s.

    The peak is the kernel's high-water mark (VmHWM), reset after the imports where Linux
    allows it (``/proc/self/clear_refs``), else ``ru_maxrss`` (which then includes imports).
    """
    base = _status_mib("VmRSS")
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    sheet = Path(store).with_suffix(".csv")
    sheet.write_text(f"cell,mark,format,path\nE003,H3K4me3,,{reads}\n")
    t0 = time.perf_counter()
    run_ingest(store, GENES, sheet)
    seconds = time.perf_counter() - t0
    try:
        peak = _status_mib("VmHWM")
    except (OSError, KeyError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"{base:.1f} {peak:.1f} {seconds:.2f}")


def cli_ingest(reads: Path, work: Path, name: str = "cli") -> float:
    """Seconds of ``chromestore ingest`` creating ``work/NAME.zarr`` from ``reads``, as a
    command in a new process."""
    sheet = work / f"{name}.csv"
    sheet.write_text(f"cell,mark,format,path\nE003,H3K4me3,,{reads}\n")
    exe = Path(sys.executable).with_name("chromestore")
    cli = [str(exe)] if exe.exists() else [sys.executable, "-m", "chromestore"]
    t0 = time.perf_counter()
    subprocess.run(
        [
            *cli,
            "ingest",
            str(work / f"{name}.zarr"),
            "--genes",
            str(GENES),
            "--samples",
            str(sheet),
        ],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - t0


def stored_counts(store: Path) -> np.ndarray:
    """The (gene, bin) counts of the one cell and mark a CLI ingest wrote, in the
    annotation's gene order, bins 5'→3' (as ``bedtools_counts`` lays them out)."""
    import chromestore

    ds = chromestore.open_store(str(store))
    genes = read_gene_bed(GENES)
    sig = ds.signal.isel(cell=0).sel(mark="H3K4me3", gene=list(genes.gene)).values
    return sig.astype(np.float32)


def _ratio(ratio: float, loads: list[float], cores: int) -> str:
    worst = max(loads)
    if worst >= cores:
        return f"withheld (load {worst:.2f} ≥ {cores} cores)"
    return f"{ratio:.1f}x"


def _child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reads", type=float, default=4, help="millions of reads (default 4)")
    ap.add_argument("--skip-bedtools", action="store_true")
    ap.add_argument(
        "--peak-rss",
        action="store_true",
        help="also measure the peak memory of the ingest in a child process",
    )
    ap.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="write the reads K times (concatenated gzip members); skips bedtools",
    )
    ap.add_argument("--rss-child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.rss_child:
        _rss_child(*args.rss_child)
        return
    n = int(args.reads * 1e6)
    genes = read_gene_bed(GENES)
    layout = BinLayout.from_genes(
        genes.chrom, genes.tss, genes.strand, DEFAULT_WINDOW, DEFAULT_BIN_SIZE
    )
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        reads = work / "reads.tagAlign.gz"
        t0 = time.perf_counter()
        make_reads(genes, n, reads)
        if args.repeat > 1:
            one = reads.read_bytes()
            with open(reads, "ab") as fh:
                for _ in range(args.repeat - 1):
                    fh.write(one)
            n *= args.repeat
        print(
            f"{n:,} reads, {os.path.getsize(reads) / 2**20:.0f} MiB gz, written in "
            f"{time.perf_counter() - t0:.1f} s; bins: {len(genes):,} genes x 100"
        )
        count_bed(reads, layout, block_bytes=1 << 16)  # load the compiled kernel once
        t0, c0 = time.perf_counter(), time.process_time()
        ours, stats = count_bed(reads, layout)
        t_count, c_count = time.perf_counter() - t0, time.process_time() - c0
        (work / "s.csv").write_text(f"cell,mark,format,path\nE003,H3K4me3,,{reads}\n")
        t0 = time.perf_counter()
        run_ingest(work / "b.zarr", GENES, work / "s.csv")
        t_ingest = time.perf_counter() - t0
        print(
            f"chromestore count_bed : {t_count:8.2f} s wall {c_count:8.2f} s CPU  "
            f"{n / c_count / 1e6:6.2f} M reads per CPU-second (incl. gzip), "
            f"{n / t_count / 1e6:.2f} M/s wall  {stats.in_windows:,} reads in windows"
        )
        print(
            f"chromestore ingest    : {t_ingest:8.2f} s  (in this process: new store + count + "
            "write + completion)"
        )
        loads = [os.getloadavg()[0]]
        t_cli = cli_ingest(reads, work)
        loads.append(os.getloadavg()[0])
        print(
            f"chromestore ingest CLI: {t_cli:8.2f} s  (a new process, as a user runs it; "
            f"load {loads[0]:.2f} → {loads[1]:.2f})"
        )
        make_reads(genes, 1000, work / "small.tagAlign.gz")
        t_small = cli_ingest(work / "small.tagAlign.gz", work, "small")
        print(
            f"  the same, 1,000 reads: {t_small:8.2f} s  (its fixed cost: Python, imports, a "
            f"new store, the writes; load {os.getloadavg()[0]:.2f})"
        )
        if args.peak_rss:
            base, peak, secs = peak_rss(reads, work)
            print(
                f"peak RSS (child)      : {peak:8.0f} MiB for the whole ingest of {n:,} reads "
                f"({base:.0f} MiB after imports; ingest {secs:.1f} s)"
            )
        skip = (
            "--skip-bedtools"
            if args.skip_bedtools
            else "--repeat"
            if args.repeat > 1
            else None
            if shutil.which("bedtools") and shutil.which("samtools")
            else "bedtools/samtools not installed"
        )
        if skip:
            print(f"bedtools              : not run ({skip})")
            return
        theirs, t_bt, c_bt = bedtools_counts(genes, reads, work)
        loads.append(os.getloadavg()[0])
        same = np.array_equal(ours, theirs)
        stored = stored_counts(work / "cli.zarr")
        same_cli = np.array_equal(stored, theirs)
        print(
            f"bedtools recipe       : {t_bt:8.2f} s wall {c_bt:8.2f} s CPU  "
            f"(bedtobam + sort + index + multicov; load → {loads[-1]:.2f})"
        )
        cores = os.cpu_count() or 1
        print(
            f"ratio bedtools / ours : {c_bt / c_count:.1f}x CPU (count); wall: "
            f"{_ratio(t_bt / t_count, loads, cores)} (count), "
            f"{_ratio(t_bt / t_ingest, loads, cores)} (whole ingest in process), "
            f"{_ratio(t_bt / t_cli, loads, cores)} (chromestore ingest CLI, end to end)"
        )
        print(f"identical counts      : count_bed {same}, CLI store {same_cli}")
        if not (same and same_cli):
            sys.exit(1)


if __name__ == "__main__":
    main()
