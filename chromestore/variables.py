"""The store's schema: every dimension and variable named once, with dims, dtype and meaning.

Every function in chromestore refers to variables through these specs, and
:func:`validate` checks a Dataset against them. Add a variable here first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the schema itself loads no xarray: counting workers import it
    import xarray as xr

# --- dimensions ------------------------------------------------------------
CELL = "cell"
GENE = "gene"
MARK = "mark"
BIN = "bin"
REPEAT = "repeat"

#: The five core histone marks of REMC, in DeepChrome's CSV order.
DEFAULT_MARKS = ("H3K27me3", "H3K36me3", "H3K4me1", "H3K4me3", "H3K9me3")

#: On-disk format name and version written into every store's attrs.
#: v2: bins 5'→3' along every gene of known strand (attrs ``orientation: "5to3"``);
#: v3: per-(cell, mark) completion variables and provenance groups (``records/CELL/MARK``);
#: v1 stores hold the shipped genes as ``+`` in genome order (convert: ``chromestore upgrade``).
FORMAT_NAME = "chromestore"
FORMAT_VERSION = 3
#: Versions this code can read (2: completion and provenance in group attrs, converted on the
#: first write by :func:`chromestore.store.records.upgrade_records`; 3: per-(cell, mark) records).
READABLE_VERSIONS = (2, 3)
#: Versions :func:`chromestore.store.upgrade.upgrade_store` converts to the current one.
UPGRADABLE_VERSIONS = (1,)
#: The first version whose completion is variables and provenance groups (``RECORDS``).
RECORDS_VERSION = 3
#: The version that introduced 5'→3' bins; :func:`chromestore.store.upgrade.upgrade_store` converts a
#: v1 store's orientation to it, then its records to ``RECORDS_VERSION``.
ORIENTATION_VERSION = 2
#: The ``orientation`` attribute of a current store: bins 5'→3' (``-`` genes reversed
#: against the genome; genes of unknown strand ``.`` in genome order).
ORIENTATION = "5to3"

#: Split codes used by ``split``.
TRAIN, VALID, TEST = 0, 1, 2
SPLIT_NAMES = ("train", "valid", "test")


@dataclass(frozen=True)
class Spec:
    """A variable of the store: its name, dims, dtype kind and meaning."""

    name: str
    dims: tuple[str, ...]
    kind: str  # numpy dtype kind(s) accepted: "f", "b", "i", "U", "O", ...
    dtype: str | None  # the dtype written at creation (None: derived from input)
    doc: str
    required: bool = True
    units: str | None = None  # CF-style ``units`` attr written with the variable

    def check(self, ds: xr.Dataset) -> None:
        if self.name not in ds.variables:
            if self.required:
                raise SchemaError(f"store is missing variable {self.name!r} ({self.doc})")
            return
        var = ds.variables[self.name]
        if tuple(var.dims) != self.dims:
            raise SchemaError(
                f"variable {self.name!r} has dims {tuple(var.dims)}, expected {self.dims}"
            )
        if var.dtype.kind not in self.kind:
            raise SchemaError(
                f"variable {self.name!r} has dtype {var.dtype}, expected kind {self.kind!r}"
                + (f" ({self.dtype})" if self.dtype else "")
            )


from chromestore.errors import SchemaError  # noqa: E402  (defined with the other errors)

# --- coordinates -----------------------------------------------------------
cell = Spec("cell", (CELL,), "UOT", None, "Epigenome id, e.g. E003 (REMC).")
gene = Spec(
    "gene",
    (GENE,),
    "UOT",
    None,
    "Unique gene key ENSGID_SYMBOL (an Ensembl id alone is not unique in the REMC gene list).",
)
gene_id = Spec("gene_id", (GENE,), "UOT", None, "Ensembl gene id, e.g. ENSG00000000003.")
gene_name = Spec("gene_name", (GENE,), "UOT", None, "Gene symbol, e.g. TSPAN6.")
gene_chrom = Spec("gene_chrom", (GENE,), "UOT", None, "Chromosome of the TSS, e.g. chrX.")
gene_tss = Spec(
    "gene_tss", (GENE,), "i", "int64", "TSS position, 0-based genome coordinate.", units="bp"
)
gene_strand = Spec(
    "gene_strand",
    (GENE,),
    "UOT",
    None,
    "Strand of the gene: '+', '-' (bins reversed against the genome: 5'->3'), or '.' "
    "(unknown: bins in genome order).",
)
mark = Spec("mark", (MARK,), "UOT", None, "Histone mark name, e.g. H3K4me3.")
bin_ = Spec("bin", (BIN,), "i", "int64", "Bin index 0..n-1, ordered 5'->3' along the gene.")
bin_offset = Spec(
    "bin_offset",
    (BIN,),
    "i",
    "int64",
    "Start of each bin relative to the TSS in bp, 5'->3' (negative = upstream).",
    units="bp",
)

# --- data variables --------------------------------------------------------
signal = Spec(
    "signal",
    (CELL, GENE, MARK, BIN),
    "f",
    "float32",
    "Binned signal of each mark around each TSS: read counts (tagAlign/BAM/CSV) or mean "
    "signal (bigWig). NaN where no source covered that cell and mark. What each (cell, "
    "mark) holds: signal_units.",
    units="reads per bin (bigWig sources: mean signal per bin)",
)
expression = Spec(
    "expression",
    (CELL, GENE),
    "f",
    "float32",
    "Expression in RPKM; NaN where not measured.",
    units="RPKM",
)
peak_max = Spec(
    "peak_max",
    (CELL, GENE, MARK),
    "f",
    "float32",
    "Max peak signalValue overlapping the gene's window (ShallowChrome feature); 0 where no "
    "peak, NaN where no peak file was ingested.",
    units="peak signalValue (MACS fold enrichment)",
)

# --- per (cell, mark) records: completion flags, written after the data --------------
signal_completed = Spec(
    "signal_completed",
    (CELL, MARK),
    "b",
    "bool",
    "True once that cell's signal of that mark was written (set only after the data; its "
    "provenance is the attrs of the group records/CELL/MARK).",
)
peak_max_completed = Spec(
    "peak_max_completed",
    (CELL, MARK),
    "b",
    "bool",
    "True once that cell's peak_max of that mark was written (set only after the data; its "
    "provenance is the attrs of the group records/CELL/MARK).",
)
RECORDS = (signal_completed, peak_max_completed)
#: What a (cell, mark)'s ``signal`` values are (``signal_units``): read counts, reads per
#: million, fold change over control, -log10 p-values, or a bigWig's mean value of unknown
#: meaning. A model trained on one kind refuses another unless it normalises per epigenome.
SIGNAL_UNITS = ("reads", "reads per million", "fold change", "-log10 p", "mean value")
#: the units of a format that counts reads (tagAlign, BED, BAM, the CSV datasets)
READS = SIGNAL_UNITS[0]
#: the per-epigenome input normalisations a model may be trained with (``train --normalise``;
#: :mod:`chromestore.runs.inputs`): ``none``, the signal as is, or ``quantile``
NORMALISE = ("none", "quantile")
signal_units = Spec(
    "signal_units",
    (CELL, MARK),
    "UOT",
    None,  # the store's strings (numpy StringDType: Zarr's variable-length UTF-8)
    "What that cell's signal of that mark is: one of " + ", ".join(SIGNAL_UNITS) + " ('' "
    "where nothing was written); written with the data and its completion flag. Stores "
    "created before it have none: chromestore.store.signal_units reads their provenance.",
    required=False,
)
#: the completion variable of each data variable written per mark
RECORDS_OF = {"signal": signal_completed.name, "peak_max": peak_max_completed.name}
#: the Zarr group whose subgroups ``CELL/MARK`` hold each (cell, mark)'s provenance as attrs
#: (``{"signal": {...}, "peak_max": {...}}``): metadata, not data variables, so plain xarray
#: (``where(drop=True)``, ``to_netcdf``) sees only numbers, and no two (cell, mark) share one
RECORDS_GROUP = "records"

# --- derived variables (computed lazily, never required in a store) ---------
label = Spec(
    "label",
    (CELL, GENE),
    "b",
    "bool",
    "Gene is highly expressed: expression above the cell's threshold (see label_threshold).",
    required=False,
)
label_threshold = Spec(
    "label_threshold", (CELL,), "f", "float32", "Expression threshold per cell.", required=False
)
label_valid = Spec(
    "label_valid",
    (CELL, GENE),
    "b",
    "bool",
    "The gene has an expression value in that cell, so its label is defined.",
    required=False,
)
split = Spec(
    "split",
    (REPEAT, GENE),
    "i",
    "int8",
    "Split of each gene per repeat: 0 train, 1 valid, 2 test.",
    required=False,
)

COORDS = (cell, gene, gene_id, gene_name, gene_chrom, gene_tss, gene_strand, mark, bin_, bin_offset)
DATA = (signal, expression, peak_max)
DERIVED = (label, label_threshold, label_valid, split)
ALL = {s.name: s for s in COORDS + DATA + RECORDS + DERIVED + (signal_units,)}

# --- analysis: reductions written to runs/NAME/metrics (analysis/) ----------
# (what a model adds of its own is specified in that model's module: its entry's ``metrics``,
# :class:`chromestore.training.entry.ModelMetric`)
MODEL = "model"
STAT = "stat"
SUMMARY = "summary"
CLASS = "class"
MARK2 = "mark2"
#: Summary rows over epigenomes (ShallowChrome's Table 2 layout).
SUMMARY_ROWS = ("mean", "median", "min", "max")
#: Class order of the interpretation maps: 0 low expression, 1 high expression.
CLASS_NAMES = ("low", "high")


def _stat(name: str, doc: str) -> Spec:
    return Spec(name, (MODEL, CELL, REPEAT), "f", "float64", doc, required=False)


stat_auroc = _stat("stat_auroc", "Test-split area under the ROC curve (sklearn roc_auc_score).")
stat_auprc = _stat(
    "stat_auprc", "Test-split area under the precision-recall curve (average_precision_score)."
)
stat_f1 = _stat("stat_f1", "Test-split F1 of class 1 at probability 0.5 (sklearn f1_score).")
stat_mse = _stat("stat_mse", "Test-split mean squared error (regression).")
stat_pearson = _stat("stat_pearson", "Test-split Pearson r (regression, scipy.stats.pearsonr).")
stat_spearman = _stat(
    "stat_spearman", "Test-split Spearman rho (regression, scipy.stats.spearmanr)."
)
stat_n_test = Spec(
    "stat_n_test",
    (MODEL, CELL, REPEAT),
    "i",
    "int64",
    "Genes scored: test split, prediction and target defined, not excluded.",
    required=False,
)
stat_summary = Spec(
    "stat_summary",
    (MODEL, STAT, SUMMARY),
    "f",
    "float64",
    "Mean/median/min/max over epigenomes of each statistic's mean over repeats.",
    required=False,
)
published_auc = Spec(
    "published_auc",
    (CELL,),
    "f",
    "float64",
    "DeepChrome's published test AUC per epigenome (data/epigenomes.tsv); NaN if absent.",
    required=False,
)
auroc_vs_published = Spec(
    "auroc_vs_published",
    (MODEL, CELL),
    "f",
    "float64",
    "Mean AUROC over repeats minus DeepChrome's published AUC.",
    required=False,
)
n_beats_published = Spec(
    "n_beats_published",
    (MODEL,),
    "i",
    "int64",
    "Epigenomes where the model's mean AUROC exceeds DeepChrome's published AUC.",
    required=False,
)
classopt_map = Spec(
    "classopt_map",
    (CELL, CLASS, MARK, BIN),
    "f",
    "float32",
    "DeepChrome class-optimisation input (§3.3): negatives clamped to 0, divided by its max.",
    required=False,
)
classopt_active_bins = Spec(
    "classopt_active_bins",
    (CELL, CLASS, MARK),
    "i",
    "int64",
    "Bins of the class-optimisation map above the activity threshold (0.25), per mark.",
    required=False,
)
classopt_flagged = Spec(
    "classopt_flagged",
    (CELL, CLASS, MARK),
    "b",
    "bool",
    "Mark's active-bin count is above the mean count over marks.",
    required=False,
)
classopt_pair_count = Spec(
    "classopt_pair_count",
    (CLASS, MARK, MARK2),
    "i",
    "int64",
    "Epigenomes in which both marks are flagged (DeepChrome's combinatorial counts).",
    required=False,
)
saliency = Spec(
    "saliency",
    (CELL, CLASS, MARK, BIN),
    "f",
    "float32",
    "Mean |gradient| of the logit margin (high - low) w.r.t. the input over test genes per class.",
    required=False,
)
integrated_gradients = Spec(
    "integrated_gradients",
    (CELL, CLASS, MARK, BIN),
    "f",
    "float32",
    "Mean integrated gradients (zero baseline) of the logit margin over test genes per class.",
    required=False,
)
feature_map_bin = Spec(
    "feature_map_bin",
    (CELL, BIN),
    "f",
    "float32",
    "Mean first-layer activation over filters and test genes, at each conv window's centre bin"
    " (Fig. 4b); NaN where no window is centred.",
    required=False,
)
ANALYSIS = (
    stat_auroc,
    stat_auprc,
    stat_f1,
    stat_mse,
    stat_pearson,
    stat_spearman,
    stat_n_test,
    stat_summary,
    published_auc,
    auroc_vs_published,
    n_beats_published,
    classopt_map,
    classopt_active_bins,
    classopt_flagged,
    classopt_pair_count,
    saliency,
    integrated_gradients,
    feature_map_bin,
)
ALL.update({s.name: s for s in ANALYSIS})

# --- runs: training results written to runs/NAME (training/, chromestore.runs) -
EPOCH = "epoch"
#: attrs of a run: task, models (model → hyper-parameters incl. input transform),
#: split_scheme, seed, label_rule, versions, wall_seconds (model → s), mode, device.
RUN_ATTRS = (
    "task",
    "models",
    "split_scheme",
    "seed",
    "label_rule",
    "versions",
    "wall_seconds",
    "mode",
    "device",
)
prediction = Spec(
    "prediction",
    (MODEL, CELL, REPEAT, GENE),
    "f",
    "float32",
    "Predicted probability of class 1 (classification) or predicted value (regression); "
    "NaN where the gene was not in valid/test for that repeat or was excluded.",
)
target = Spec(
    "target",
    (CELL, GENE),
    "f",
    "float32",
    "Label 0/1 (classification) or log(RPKM+1) (regression); NaN where undefined.",
)
history_loss = Spec(
    "history_loss",
    (MODEL, CELL, REPEAT, EPOCH),
    "f",
    "float32",
    "Mean training loss of each epoch; NaN past the last epoch run.",
)
history_valid_auc = Spec(
    "history_valid_auc",
    (MODEL, CELL, REPEAT, EPOCH),
    "f",
    "float32",
    "Validation AUC after each epoch; NaN past the last epoch run.",
)
best_epoch = Spec(
    "best_epoch",
    (MODEL, CELL, REPEAT),
    "i",
    "int16",
    "Epoch (0-based) with the best validation AUC, whose weights were kept.",
)
excluded = Spec(
    "excluded", (CELL, GENE), "b", "bool", "Gene dropped for that cell: missing (NaN) signal."
)
model_split = Spec(
    "model_split",
    (MODEL, CELL, REPEAT, GENE),
    "i",
    "int8",
    "The genes each model was fitted with, per epigenome and repeat: 0 trained on, "
    "1 validated on, 2 tested on, -1 not used (no signal or no label there).",
    required=False,
)
RUN_VARS = (prediction, target, split, history_loss, history_valid_auc, best_epoch, excluded)
ALL.update({s.name: s for s in (*RUN_VARS, model_split) if s.name not in ALL})
#: The layout version of a run (attr ``run_format``): 2 records each model's genes
#: (``model_split``) and its weights files with their checksums.
RUN_FORMAT = 2

# --- predictions: scores of a run's model for any epigenome (runs/NAME/predictions) -
score = Spec(
    "score",
    (CELL, GENE),
    "f",
    "float32",
    "Predicted P(high expression) (classifiers) or log(RPKM+1) (regression) of a trained "
    "model for each epigenome's genes; NaN where the gene has no signal in that epigenome.",
)
ALL[score.name] = score


def validate(ds: xr.Dataset, *, check_version: bool = True) -> xr.Dataset:
    """Check that ``ds`` follows the chromestore schema and return it unchanged.

    Raises :class:`SchemaError` naming the first problem found.
    """
    if check_version:
        fmt = ds.attrs.get("format")
        if fmt != FORMAT_NAME:
            raise SchemaError(
                f"not a chromestore store (format attribute is {fmt!r}, expected {FORMAT_NAME!r})"
            )
        version = ds.attrs.get("format_version")
        if version in UPGRADABLE_VERSIONS:
            raise SchemaError(
                f"store format version {version} holds every gene's bins in genome order "
                f"(an older chromestore stored all genes as '+'); this chromestore reads "
                f"version {FORMAT_VERSION}, bins 5'->3': convert the store in place with "
                "`chromestore upgrade STORE` (or re-ingest it)"
            )
        if version not in READABLE_VERSIONS:
            raise SchemaError(
                f"store format version {version!r} is not supported by this chromestore "
                f"(reads {', '.join(map(str, READABLE_VERSIONS))}); "
                "upgrade chromestore or re-ingest the store with this version"
            )
        orientation = ds.attrs.get("orientation")
        if orientation != ORIENTATION:
            raise SchemaError(
                f"store orientation attribute is {orientation!r}, expected {ORIENTATION!r} "
                "(bins 5'->3')"
            )
    for spec in COORDS + DATA:
        spec.check(ds)
    if check_version and ds.attrs.get("format_version", 0) >= RECORDS_VERSION:
        for spec in RECORDS:
            spec.check(ds)
    for spec in (*DERIVED, signal_units):
        if spec.name in ds.variables:
            spec.check(ds)
    return ds


def dtype_of(spec: Spec) -> np.dtype:
    return np.dtype(spec.dtype)
