"""Training runs, stored inside the store as Zarr groups ``runs/NAME``: the one owner of runs.

- :mod:`~chromestore.runs.paths`: where a run's parts live (the run, its metrics and
  predictions in the store; weights and checkpoints beside it);
- :mod:`~chromestore.runs.dataset`: a run built from the specs (its attrs by
  :func:`~chromestore.runs.dataset.run_attrs`), listed, opened, checked;
- :mod:`~chromestore.runs.write`: written whole, swapped in under the run's lock;
- :mod:`~chromestore.runs.merge`: runs joined along ``model``;
- :mod:`~chromestore.runs.predictions`: a model's scores for epigenomes.
"""

from chromestore._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "RUNS": ".paths",
        "RunError": ".paths",
        "run_store": ".paths",
        "run_path": ".paths",
        "run_files_store": ".paths",
        "weights_store": ".paths",
        "checkpoint_store": ".paths",
        "metrics_group": ".paths",
        "metrics_store": ".paths",
        "predictions_store": ".paths",
        "ensure_runs_group": ".paths",
        "create_run_dataset": ".dataset",
        "versions": ".dataset",
        "run_attrs": ".dataset",
        "list_runs": ".dataset",
        "open_run": ".dataset",
        "validate_run": ".dataset",
        "write_run": ".write",
        "MODEL_DICT_ATTRS": ".merge",
        "merge_runs": ".merge",
        "model_prefix": ".merge",
        "write_predictions": ".predictions",
        "open_predictions": ".predictions",
        "jsonable": "chromestore.store.attrs",
    },
)
