"""The store: a versioned, checksummed Zarr hierarchy opened as an ``xr.Dataset``.

- :mod:`~chromestore.store.handle`: where a store lives (:class:`Store`) and the files
  beside it; :mod:`~chromestore.store.layout`: its default shape, variables and chunks;
- :mod:`~chromestore.store.creation`: create a store whole or not at all;
  :mod:`~chromestore.store.dataset`: open, write regions and attrs;
  :mod:`~chromestore.store.cells`: grow along ``cell``;
- :mod:`~chromestore.store.records`: per (cell, mark) completion and provenance;
  :mod:`~chromestore.store.locks`: the write lock;
- :mod:`~chromestore.store.integrity`: chunk checksums; :mod:`~chromestore.store.presence`:
  which chunks must exist; :mod:`~chromestore.store.verify`: read every chunk back, name
  each missing one; :mod:`~chromestore.store.upgrade`: convert older stores;
- :mod:`~chromestore.store.safety`: what may be replaced or deleted;
  :mod:`~chromestore.store.names`: epigenome names and the one ``--cells`` selector; :mod:`~chromestore.store.attrs`:
  netCDF-safe attrs; :mod:`~chromestore.store.accessor`: ``ds.chromestore``.
"""

from chromestore._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "Store": ".handle",
        "StoreLike": ".handle",
        "STR": ".handle",
        "WRITE_LOCK": ".handle",
        "strs": ".handle",
        "exists": ".handle",
        "read_attrs": ".handle",
        "now_utc": ".handle",
        "ensure_group": ".handle",
        "run_files_root": ".handle",
        "drop_run_files": ".handle",
        "size_on_disk": ".handle",
        "DEFAULT_WINDOW": ".layout",
        "DEFAULT_BIN_SIZE": ".layout",
        "DEFAULT_GENOME": ".layout",
        "DEFAULT_GENE_CHUNK": ".layout",
        "CELL_VARS": ".layout",
        "bin_offsets": ".layout",
        "template": ".layout",
        "STORE_ENCODING": ".dataset",
        "create_store": ".creation",
        "StoreExists": ".creation",
        "missing_chunks": ".presence",
        "Missing": ".presence",
        "open_store": ".dataset",
        "consolidate": ".dataset",
        "eager_coords": ".dataset",
        "repair_cells": ".dataset",
        "cell_index": ".dataset",
        "write_region": ".dataset",
        "update_attrs": ".dataset",
        "add_cells": ".cells",
        "completed": ".records",
        "provenance": ".records",
        "signal_units": ".records",
        "verify_store": ".verify",
        "select_cells": ".names",
        "means_all": ".names",
        "upgrade_store": ".upgrade",
        "StoreError": "chromestore.errors",
        "ChunkError": "chromestore.errors",
    },
)
