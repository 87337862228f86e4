"""Gene-wise explanations: ShallowChrome's regulative pattern and the CNN's integrated gradients.

For one gene and some epigenomes, :func:`explain_gene` takes, per model, a split
repeat in which the gene was a *test* gene (so the explanation is of a prediction
the model did not fit), and returns ShallowChrome's pattern (coefficient × feature
per mark, the bias, the coefficients' Wald p-values) and DeepChrome's integrated
gradients over mark × bin (zero-signal baseline, logit margin high − low).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import xarray as xr

from chromestore import variables as V
from chromestore.store import open_store
from chromestore.training import weights as W

SC = "shallowchrome"


def _test_repeat(run: xr.Dataset, model: str, cell: str, gene: str) -> int | None:
    if model not in [str(m) for m in run[V.MODEL].values]:
        return None
    split = run["split"].sel({V.GENE: gene}).values
    pred = run["prediction"].sel({V.MODEL: model, V.CELL: cell, V.GENE: gene}).values
    ok = np.flatnonzero((split == V.TEST) & np.isfinite(pred))
    return int(ok[0]) if len(ok) else None


def explain_gene(
    store: str | os.PathLike,
    run: xr.Dataset,
    gene: str,
    cells: Sequence[str],
    *,
    names: Sequence[str] = (),
    cnn_model: str = "deepchrome",
    ig_steps: int = 64,
    storage_options: dict | None = None,
) -> dict:
    """Explanation of ``gene`` (key, Ensembl id or symbol) in each of ``cells``, as a dict."""
    from chromestore.query import find_gene

    ds = open_store(store, storage_options)
    key = find_gene(ds, gene)
    if key not in set(run[V.GENE].values.astype(str)):
        raise KeyError(f"gene {key!r} is not in the run")
    marks = [str(m) for m in ds[V.MARK].values]
    known = set(run[V.CELL].values.astype(str))
    missing = [c for c in cells if c not in known]
    if missing:
        raise KeyError(
            f"cell(s) {', '.join(missing)} not in the run (run has {', '.join(sorted(known))})"
        )
    models = [str(m) for m in run[V.MODEL].values]
    out: dict = {
        "gene": key,
        "marks": marks,
        "models": models,
        "cnn_model": cnn_model,
        "bin_offset": [int(b) for b in ds["bin_offset"].values],
        "cells": [],
    }
    for cell in cells:
        target = float(run["target"].sel({V.CELL: cell, V.GENE: key}))
        expr = float(ds[V.expression.name].sel({V.CELL: cell, V.GENE: key}))
        rec: dict = {
            "cell": cell,
            "label": None if np.isnan(target) else int(target),
            "expression_rpkm": None if np.isnan(expr) else expr,
            "shallowchrome": None,
            "integrated_gradients": None,
        }
        r = _test_repeat(run, SC, cell, key)
        if r is not None and f"{SC}_pattern" in run:
            sel = {V.CELL: cell, V.REPEAT: r}
            pattern = run[f"{SC}_pattern"].sel({**sel, V.GENE: key}).values
            rec["shallowchrome"] = {
                "repeat": r,
                "pattern": dict(zip(marks, map(float, pattern), strict=True)),
                "coef": dict(
                    zip(marks, map(float, run[f"{SC}_coef"].sel(sel).values), strict=True)
                ),
                "pvalue": dict(
                    zip(marks, map(float, run[f"{SC}_pvalue"].sel(sel).values), strict=True)
                ),
                "bias": float(run[f"{SC}_intercept"].sel(sel)),
                "probability": float(
                    run["prediction"].sel({V.MODEL: SC, V.CELL: cell, V.REPEAT: r, V.GENE: key})
                ),
            }
        r = _test_repeat(run, cnn_model, cell, key)
        if r is not None:
            rec.update(
                _cnn_explanation(
                    store, run, names, cnn_model, cell, r, key, ds, ig_steps, storage_options
                )
            )
        out["cells"].append(rec)
    return out


def _cnn_explanation(store, run, names, model, cell, repeat, key, ds, ig_steps, so) -> dict:
    from chromestore.analysis import cnn, interpret

    name = next((n for n in names if W.has_weights(store, n, model, so)), None)
    if name is None:
        return {}
    signal = ds[V.signal.name].sel({V.CELL: cell, V.GENE: [key]}).values
    net, transform = cnn.load_cnn(store, name, model, cell, repeat, so)
    x = cnn.prepare_input(signal, transform)
    ig = interpret.integrated_gradients(net, x, n_steps=ig_steps)[0]
    m = float(interpret.margin(net, x)[0])
    return {
        "deepchrome_repeat": repeat,
        "deepchrome_probability": float(
            run["prediction"].sel({V.MODEL: model, V.CELL: cell, V.REPEAT: repeat, V.GENE: key})
        ),
        "deepchrome_margin": m,
        "integrated_gradients": ig.tolist(),
        "ig_per_mark": dict(
            zip([str(v) for v in ds[V.MARK].values], map(float, ig.sum(1)), strict=True)
        ),
    }


def format_explanation(exp: dict) -> str:
    """The explanation as text: one block per epigenome."""
    lines = [f"{exp['gene']}"]
    marks = exp["marks"]
    models = exp.get("models")  # None: an explanation written before models were recorded
    has_sc = models is None or SC in models
    has_cnn = models is None or exp.get("cnn_model", "deepchrome") in models
    if not has_sc and not has_cnn:
        lines.append(
            f"  nothing to explain: the run has no ShallowChrome or "
            f"{exp.get('cnn_model', 'deepchrome')} model (models: {', '.join(models)})"
        )
    for c in exp["cells"]:
        label = {None: "unlabelled", 0: "low", 1: "high"}[c["label"]]
        rpkm = c.get("expression_rpkm")
        lines.append(
            f"[{c['cell']}] label {label}" + (f" ({rpkm:g} RPKM)" if rpkm is not None else "")
        )
        sc = c["shallowchrome"]
        if sc:
            lines.append(
                f"  ShallowChrome (repeat {sc['repeat']}, test gene): "
                f"P(high) {sc['probability']:.3f}, bias {sc['bias']:+.3f}"
            )
            lines.append(f"    {'mark':<9} {'coef×feat':>10} {'coef':>9} {'p-value':>9}")
            for m in marks:
                star = " *" if sc["pvalue"][m] < 0.05 else ""
                lines.append(
                    f"    {m:<9} {sc['pattern'][m]:>+10.3f} {sc['coef'][m]:>+9.3f} "
                    f"{sc['pvalue'][m]:>9.2g}{star}"
                )
        elif has_sc:
            lines.append("  ShallowChrome: gene not in a test split of this run")
        if c.get("integrated_gradients") is not None:
            lines.append(
                f"  DeepChrome (repeat {c['deepchrome_repeat']}, test gene): "
                f"P(high) {c['deepchrome_probability']:.3f}, "
                f"margin {c['deepchrome_margin']:+.3f}"
            )
            ig = np.asarray(c["integrated_gradients"])
            off = np.asarray(exp["bin_offset"])
            for i, m in enumerate(marks):
                top = int(np.argmax(np.abs(ig[i])))
                lines.append(
                    f"    {m:<9} IG sum {ig[i].sum():>+8.3f}  strongest bin "
                    f"{off[top]:+d} bp ({ig[i, top]:+.3f})"
                )
        elif has_cnn:
            lines.append("  DeepChrome: no model with this gene in its test split")
    return "\n".join(lines)
