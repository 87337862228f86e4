"""Training runs, stored inside the store as Zarr groups ``runs/NAME``: the one owner of runs.

- :mod:`~chromestore.runs.paths`: where a run's parts live (the run, its metrics and
  predictions in the store; weights and checkpoints beside it);
- :mod:`~chromestore.runs.dataset`: a run built from the specs (its attrs by
  :func:`~chromestore.runs.dataset.run_attrs`), listed, opened, checked;
- :mod:`~chromestore.runs.write`: written once, whole, with its weights, swapped in under
  the run's lock (:class:`~chromestore.runs.write.RunWriter`);
- :mod:`~chromestore.runs.files`: the weights files beside the store, named and checked by
  the run's records;
- :mod:`~chromestore.runs.merge`: runs joined along ``model``;
- :mod:`~chromestore.runs.predictions`: a model's scores for epigenomes;
- :mod:`~chromestore.runs.inputs`: what a model's input was (the units of its training
  signal; per-epigenome quantile normalisation).
"""

from chromestore._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "RUNS": ".paths",
        "METRICS": ".paths",
        "PREDICTIONS": ".paths",
        "RECORD": ".files",
        "RunError": ".paths",
        "run_store": ".paths",
        "run_path": ".paths",
        "run_files_store": ".paths",
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
        "run_kind": ".dataset",
        "check_test_genes": ".dataset",
        "check_addable": ".dataset",
        "derive_model_split": ".dataset",
        "write_run": ".write",
        "RunWriter": ".write",
        "RunExists": ".write",
        "EXISTING": ".write",
        "replace_child": ".write",
        "free_name": ".write",
        "taken_message": ".write",
        "WeightsError": ".files",
        "weights_key": ".files",
        "weights_file": ".files",
        "read_checked": ".files",
        "record_of": ".files",
        "has_weights": ".files",
        "verify_runs": ".verify",
        "MODEL_DICT_ATTRS": ".merge",
        "merge_runs": ".merge",
        "model_prefix": ".merge",
        "write_predictions": ".predictions",
        "open_predictions": ".predictions",
        "predictions_summary": ".predictions",
        "check_predictions_target": ".predictions",
        "jsonable": "chromestore.store.attrs",
        "NORMALISE": ".inputs",
        "QUANTILE_LEVELS": ".inputs",
        "signal_quantiles": ".inputs",
        "quantile_map": ".inputs",
        "reference_of": ".inputs",
        "model_units": ".inputs",
        "store_units": ".inputs",
        "dataset_units": ".inputs",
    },
)
