"""The app layer: the command line, a thin layer over the library.

The top layer (``chromestore`` core → ``chromestore.training`` → ``chromestore.analysis``
→ ``chromestore.app``): each command parses its options, calls library functions (the
``run`` workflow is :mod:`chromestore.analysis.workflow`) and prints what they return. It
chooses the Dask cluster and reads ``--cells`` once (:mod:`chromestore.app.session`, with
the library's :func:`chromestore.store.select_cells`) and passes a ``Client | None`` and a
list of cells to the library.
"""
