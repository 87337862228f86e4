"""A REMC-scale simulator calibrated on real data: real genes and RPKM, simulated signal.

- :mod:`~chromestore.simulation.model`: the real inputs and the model fitted on them;
- :mod:`~chromestore.simulation.kernels`: the compiled per-gene draw on counter-based streams;
- :mod:`~chromestore.simulation.draw`: the seeded, chunk-independent draw of one epigenome;
- :mod:`~chromestore.simulation.dataset`: :func:`simulate`, a lazy Dataset or a store;
- :mod:`~chromestore.simulation.report`: real vs simulated E003, with tolerances;
- :mod:`~chromestore.simulation.emit`: the same draw written as the files REMC publishes.
"""

from chromestore._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "simulate": ".dataset",
        "BIN_SIZE": ".model",
        "CALIBRATION_CELL": ".model",
        "CORE_BINS": ".model",
        "REGIONS": ".model",
        "SNR_CURVE": ".model",
        "STATES": ".model",
        "TSS_BINS": ".model",
        "WINDOW": ".model",
        "Calibration": ".model",
        "calibration": ".model",
        "cell_depth": ".model",
        "expression_percentiles": ".model",
        "expression_scores": ".model",
        "promoter_states": ".model",
        "published_auc": ".model",
        "real_e003_sample": ".model",
        "real_genes": ".model",
        "real_rpkm": ".model",
        "sample_scores": ".model",
        "snr_weight": ".model",
        "window_owner": ".model",
        "CellModel": ".draw",
        "cell_model": ".draw",
        "draw_cell": ".draw",
        "calibration_report": ".report",
        "format_report": ".report",
    },
)
