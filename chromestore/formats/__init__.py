"""Samplesheet formats: the registry, and the readers for the files REMC, ENCODE and the
published datasets ship.

:mod:`chromestore.formats.entry` says what a format is (:class:`FormatEntry`),
:mod:`chromestore.formats.registry` which there are;
:mod:`chromestore.formats.builtin` declares chromestore's own; other packages add theirs
through the ``chromestore.formats`` entry-point group. Each reader parses and validates
its input completely and returns plain arrays (nothing is written to a store here), so a
bad file can never leave a store half written. Errors are
:class:`chromestore.errors.InputError` naming file and line.

Every name below loads on first use, and the registry loads nothing heavy
(``chromestore ingest --help`` lists the formats quickly).
"""

from chromestore._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "TARGETS": ".entry",
        "FormatEntry": ".entry",
        "ReadRequest": ".entry",
        "ENTRY_POINT_GROUP": ".registry",
        "FormatPluginWarning": ".registry",
        "builtin_entries": ".registry",
        "entries": ".registry",
        "get": ".registry",
        "infer_format": ".registry",
        "markdown_table": ".registry",
        "names": ".registry",
        "register": ".registry",
        "unregister": ".registry",
        "DEEPCHROME_MARKS": ".csv",
        "DEEPDIFF_MARKS": ".csv",
        "centre_crop": ".csv",
        "deepchrome_gene_id": ".csv",
        "read_deepchrome_csv": ".csv",
        "read_deepdiff_csv": ".csv",
        "QUANTITIES": ".rsem",
        "read_rsem_genes": ".rsem",
    },
)
