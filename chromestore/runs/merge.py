"""Runs joined along ``model``: the one merge, for writing a model into a stored run and for
analysing several runs together (part of :mod:`chromestore.runs`, which re-exports it).

Variables with a ``model`` dim are stacked; a model of a later run replaces the model of
the same name in earlier ones, with its extras (``<model>_*``). Variables without one
(``target``, ``split``, model extras) are laid over each other: a later run's values
where it has the cell, gene or repeat, the earlier ones' elsewhere. ``excluded`` is the
union: a gene left out for one model is left out for all, so every model is scored on
the same genes. Genes follow the first run; cells are the union, in order of
appearance; histories are padded with NaN to the longest run's epochs.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
import xarray as xr

from chromestore import variables as V

#: attrs that are per-model (or per-epigenome) dicts, merged when models are joined
MODEL_DICT_ATTRS = (
    "models",
    "wall_seconds",
    "input_normalisation",
    "signal_units",
    "signal_quantiles",
)
#: variables that must agree where runs overlap when they are analysed together
LABELS = ("target", "split")


def model_prefix(model: str) -> str:
    """Prefix of a model's extra variables in a run: ``svm-bin`` → ``svm_bin_``."""
    return model.replace("-", "_") + "_"


def model_of(var: Hashable, models: Sequence[str]) -> str | None:
    """The model an extra variable belongs to (``svm_bin_best_bin`` → ``svm-bin``), or None."""
    owners = [m for m in models if str(var).startswith(model_prefix(m))]
    return max(owners, key=len) if owners else None


def _fill(dtype: np.dtype):
    if dtype.kind in "iu":
        return -1
    if dtype.kind == "b":
        return False
    if dtype.kind in "fc":
        return np.nan
    return None


def _models(run: xr.Dataset) -> list[str]:
    return [str(m) for m in run[V.MODEL].values] if V.MODEL in run.coords else []


def _drop_replaced(runs: list[xr.Dataset]) -> list[xr.Dataset]:
    """Each run without the models (and their extras) that a later run brings again."""
    out = []
    for i, run in enumerate(runs):
        later = {m for r in runs[i + 1 :] for m in _models(r)}
        gone = [m for m in _models(run) if m in later]
        if gone:
            extras = [
                v
                for v in run.data_vars
                if V.MODEL not in run[v].dims and model_of(v, _models(run)) in gone
            ]
            run = run.drop_vars(extras).drop_sel({V.MODEL: gone})
        out.append(run)
    return out


def _normalise(run: xr.Dataset, n_epochs: int) -> xr.Dataset:
    """Number ``repeat``; pad every ``epoch`` variable with NaN to ``n_epochs``."""
    if V.REPEAT in run.dims and V.REPEAT not in run.indexes:
        run = run.assign_coords({V.REPEAT: np.arange(run.sizes[V.REPEAT])})
    if V.EPOCH in run.dims:
        run = run.drop_vars(V.EPOCH, errors="ignore")
        if run.sizes[V.EPOCH] < n_epochs:
            run = run.pad({V.EPOCH: (0, n_epochs - run.sizes[V.EPOCH])})
    return run


def _spread(da: xr.DataArray, index: dict) -> tuple[xr.DataArray, xr.DataArray]:
    """``da`` on the merged coordinates, and where it has values of its own."""
    idx = {d: v for d, v in index.items() if d in da.dims and d in da.indexes}
    full = da.reindex(idx, fill_value=_fill(da.dtype))
    has = xr.ones_like(da, dtype=bool).reindex(idx, fill_value=False)
    return full, has


def _overlay(
    name: Hashable, parts: list[tuple[str, xr.DataArray]], index: dict, check: bool
) -> xr.DataArray:
    out = covered = first = None
    for run_name, da in parts:
        full, has = _spread(da, index)
        if out is None:
            out, covered, first = full, has, run_name
            continue
        both = covered & has
        if check and not np.array_equal(
            out.where(both).values, full.where(both).values, equal_nan=True
        ):
            raise ValueError(
                f"run {run_name!r} has a different {name!r} from run {first!r}; "
                "runs analysed together need the same labels and splits"
            )
        out = full.where(has, out).astype(da.dtype)
        covered = covered | has
    return out


def _union_excluded(parts: list[tuple[str, xr.DataArray]], index: dict) -> xr.DataArray:
    """Excluded anywhere; a run's missing genes are excluded, its missing cells are not."""
    out = None
    for _, da in parts:
        full = da.reindex({V.GENE: index[V.GENE]}, fill_value=True)
        full = full.reindex({V.CELL: index[V.CELL]}, fill_value=False)
        out = full if out is None else out | full
    return out


def _check_tasks(runs: Sequence[xr.Dataset], names: Sequence[str]) -> None:
    tasks = {n: r.attrs.get("task") for n, r in zip(names, runs, strict=True)}
    if len(set(tasks.values())) > 1:
        detail = ", ".join(f"{n}: task={t!r}" for n, t in tasks.items())
        raise ValueError(f"cannot join runs of different tasks ({detail})")


def _merged_attrs(runs: Sequence[xr.Dataset], keep: str) -> dict:
    attrs: dict = {}
    for run in runs if keep == "last" else runs[::-1]:
        attrs.update({k: v for k, v in run.attrs.items() if k not in MODEL_DICT_ATTRS})
    for key in MODEL_DICT_ATTRS:
        if any(key in r.attrs for r in runs):
            attrs[key] = {k: v for r in runs for k, v in (r.attrs.get(key) or {}).items()}
    return attrs


def merge_runs(
    runs: Sequence[xr.Dataset],
    *,
    names: Sequence[str] | None = None,
    check_labels: bool = False,
    attrs: str = "first",
) -> xr.Dataset:
    """Join ``runs`` along ``model`` (see the module docstring for the rules).

    Parameters
    ----------
    runs
        Run Datasets, earliest first; all of one ``task``.
    names
        Their names, for error messages.
    check_labels
        Raise ``ValueError`` where two runs hold different ``target`` or ``split``
        values for the same cell and gene (runs analysed together must agree).
    attrs
        Which run's attributes win: ``"first"`` or ``"last"``; the per-model dicts
        ``models`` and ``wall_seconds`` are always merged.
    """
    runs = list(runs)
    if len(runs) == 1:
        return runs[0]
    names = [str(n) for n in names] if names else [str(i) for i in range(len(runs))]
    _check_tasks(runs, names)
    n_epochs = max(r.sizes.get(V.EPOCH, 1) for r in runs)
    runs = [_normalise(r, n_epochs) for r in _drop_replaced(runs)]
    cells = list(dict.fromkeys(c for r in runs for c in r[V.CELL].values.tolist()))
    n_repeats = max(r.sizes.get(V.REPEAT, 1) for r in runs)
    index = {
        V.GENE: runs[0].indexes[V.GENE],
        V.CELL: np.array(cells, dtype=object),
        V.REPEAT: np.arange(n_repeats),
    }
    per_model = []
    for run in runs:
        part = run[[v for v in run.data_vars if V.MODEL in run[v].dims]]
        if part.sizes.get(V.MODEL, 0):
            idx = {d: v for d, v in index.items() if d in part.dims}
            per_model.append(
                part.reindex(idx, fill_value={v: _fill(part[v].dtype) for v in part.data_vars})
            )
    out = xr.concat(
        per_model, dim=V.MODEL, data_vars="all", coords="minimal", compat="override", join="outer"
    )
    shared: dict[Hashable, list] = {}
    for name, run in zip(names, runs, strict=True):
        for v in run.data_vars:
            if V.MODEL not in run[v].dims:
                shared.setdefault(v, []).append((name, run[v]))
    for v, parts in shared.items():
        if v == "excluded":
            out[v] = _union_excluded(parts, index)
        else:
            out[v] = _overlay(v, parts, index, check_labels and v in LABELS)
    for v in out.data_vars:  # restore dtypes an outer join may have widened
        ref = next(r[v] for r in runs if v in r)
        if out[v].dtype != ref.dtype:
            out[v] = out[v].fillna(_fill(ref.dtype)).astype(ref.dtype)
    if V.EPOCH in out.dims:
        out = out.assign_coords({V.EPOCH: np.arange(out.sizes[V.EPOCH])})
    out.attrs = _merged_attrs(runs, attrs)
    return out
