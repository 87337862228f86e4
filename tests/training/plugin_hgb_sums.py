"""A chromestore model plugin: gradient boosting on each mark's read sums near and around the TSS.

Written from the README's "Adding a model" alone; the tests install it as the module
``chromestore_hgb_sums`` of a distribution ``chromestore-hgb-sums`` with the entry point
``hgb-sums = chromestore_hgb_sums:ENTRY``. It keeps no ``export`` codec: its fitted trees are
refused export (the reason the README gives), and it predicts from its runs.
"""

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier

from chromestore.training.entry import ArraysModel, Estimator, ModelOption


def bin_sums(signal, layout):
    """(gene, mark, bin) → (gene, 2 × mark): log1p of each mark's reads within 1 kb of the TSS,
    then of its reads in the rest of the window."""
    near = np.zeros(layout.n_bins, bool)
    near[layout.within(1000)] = True
    reads = np.clip(signal, 0, None)
    return np.log1p(np.concatenate([reads[:, :, near].sum(2), reads[:, :, ~near].sum(2)], 1))


def boosting(C=1.0, max_iter=100, random_state=None):
    """Gradient-boosted trees whose L2 penalty on leaf values is 1 / C (C as in scikit-learn's
    linear models: smaller is stronger)."""
    return HistGradientBoostingClassifier(
        max_iter=max_iter, l2_regularization=1.0 / C, random_state=random_state
    )


ENTRY = ArraysModel(
    "hgb-sums",
    Estimator(boosting, features=bin_sums),
    defaults={"C": 1.0, "max_iter": 100},
    paper="gradient boosting on each mark's reads within 1 kb of the TSS and around it",
    options=(
        ModelOption("--max-iter", "Boosting iterations (trees).", type="int"),
        ModelOption("--C", "Inverse strength of the L2 penalty on leaf values.", type="float"),
    ),
)
