"""Attributes that any netCDF or Zarr reader accepts: nested values are kept as JSON strings.

netCDF attributes may only be strings, numbers or flat lists of one type, so a store or
run whose attrs hold dicts cannot be written with ``ds.to_netcdf``. chromestore writes
nested values (dicts, lists other than of numbers) as JSON text and its own readers
(:func:`chromestore.open_store`, :func:`chromestore.open_run`, ``Store.attrs``) turn them
back into Python values, so code inside chromestore sees dicts while plain xarray sees
strings.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np

#: Store attrs that stay dicts for now: completion records, which are moving into
#: variables (they are never written to a netCDF slice once they do).
LEGACY_DICT_ATTRS = frozenset(
    {"completed", "provenance", "peak_max_completed", "peak_max_provenance"}
)


def _flat(value: list | tuple) -> bool:
    """A list every netCDF writer takes: numbers only (netCDF3 has no string arrays)."""
    return bool(value) and {type(v) for v in value} <= {int, float}


def encode_value(value: Any) -> Any:
    """``value`` as netCDF accepts it: dicts and lists other than numbers become JSON strings."""
    if isinstance(value, Mapping) or (isinstance(value, list | tuple) and not _flat(value)):
        return json.dumps(value, sort_keys=False)
    return value


def decode_value(value: Any) -> Any:
    """The Python value of an attribute written by :func:`encode_value`."""
    if isinstance(value, str) and value[:1] in "{[" and value[-1:] in "}]":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def encode_attrs(attrs: Mapping[str, Any], keep: frozenset[str] = LEGACY_DICT_ATTRS) -> dict:
    """Attrs safe for netCDF (keys in ``keep`` are left as they are)."""
    return {k: (v if k in keep else encode_value(v)) for k, v in attrs.items()}


def decode_attrs(attrs: Mapping[str, Any]) -> dict:
    """Attrs as chromestore's code reads them (JSON strings back to dicts and lists)."""
    return {k: decode_value(v) for k, v in attrs.items()}


def jsonable(value: Any, nonfinite_as_str: bool = False) -> Any:
    """``value`` with numpy scalars/arrays and tuples turned into JSON types (for attrs)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v, nonfinite_as_str) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v, nonfinite_as_str) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if nonfinite_as_str and isinstance(value, float) and not np.isfinite(value):
        return str(value)
    return value
