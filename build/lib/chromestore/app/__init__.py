"""The app layer: the command line, the ``run`` pipeline and the text commands print.

The only layer that imports upward (``chromestore`` core → ``chromestore.training`` →
``chromestore.analysis`` → ``chromestore.app``); it chooses the Dask cluster and parses
``--cells`` once (:mod:`chromestore.app.session`) and passes a ``Client | None`` and a
list of cells to the library.
"""
