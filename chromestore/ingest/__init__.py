"""``chromestore ingest`` as a library: every input checked first, then read, then written.

- :mod:`~chromestore.ingest.plan`: parse and check every input, write nothing;
  :mod:`~chromestore.ingest.samplesheet`: ``cell,mark,format,path`` sheets;
- :mod:`~chromestore.ingest.run`: :func:`run_ingest` (plan, then run the plan);
- :mod:`~chromestore.ingest.engine`: one read task per file and one writer per epigenome,
  on any executor; :mod:`~chromestore.ingest.reads`: the read side (light to import);
  :mod:`~chromestore.ingest.align`: values aligned on the store's genes;
  :mod:`~chromestore.ingest.writes`: a cell's region written with its records;
  :mod:`~chromestore.ingest.tables`: the gene table and RPKM;
- :mod:`~chromestore.ingest.placement`: where the files are counted (the small-job rule);
  :mod:`~chromestore.ingest.progress`, :mod:`~chromestore.ingest.report`: reads counted so
  far; the printed summary; :mod:`~chromestore.ingest.callpeaks`: MACS3 peaks from reads.
"""

from chromestore._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "run_ingest": ".run",
        "run_plan": ".run",
        "IngestPlan": ".plan",
        "plan_ingest": ".plan",
        "pending_samples": ".plan",
        "SAMPLE_COLUMNS": ".samplesheet",
        "Sample": ".samplesheet",
        "read_samplesheet": ".samplesheet",
        "write_samplesheet": ".samplesheet",
        "Bins": ".engine",
        "SampleReads": ".engine",
        "count_sample": ".engine",
        "ingest_samples": ".engine",
        "align_genes": ".writes",
        "ingest_signal_array": ".writes",
        "write_cell": ".writes",
        "ingest_expression": ".tables",
        "open_or_create": ".tables",
        "SMALL_INPUT_BYTES": ".placement",
        "place": ".placement",
        "early_reader": ".placement",
        "PROGRESS_TOPIC": ".progress",
        "ReadsProgress": ".progress",
        "Done": ".report",
        "IngestReport": ".report",
        "infer_format": "chromestore.formats",
    },
)
