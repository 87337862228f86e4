"""Peer models of DeepChrome run on the same store, labels and splits.

=====================  ==================================================  =======================
name                   model                                               module
=====================  ==================================================  =======================
``shallowchrome``      max peak signal per mark → logistic regression      :mod:`.shallowchrome`
``attentivechrome``    bin- and mark-level attention LSTMs                 :mod:`.attentivechrome`
``svm-bin``            one RBF SVM per bin (Cheng et al. 2011)             :mod:`.baselines`
``rf-bestbin``         random forest on each mark's best bin (Dong 2012)   :mod:`.baselines`
=====================  ==================================================  =======================

Each module holds kernels on numpy arrays / torch tensors, independent of the store;
:mod:`.execute` runs them on a store as Dask tasks and writes the shared run layout.
"""

PAPERS = {
    "shallowchrome": "Frasca et al. 2022, ShallowChrome (Comput. Struct. Biotechnol. J.)",
    "svm-bin": "Cheng et al. 2011 (Genome Biology), as DeepChrome ran it",
    "rf-bestbin": "Dong et al. 2012 (Genome Biology), as DeepChrome ran it",
    "attentivechrome": "Singh et al. 2017, AttentiveChrome (NeurIPS)",
    "deepchrome-regression": "Singh et al. 2016 network, regression on log(RPKM + 1)",
}


def register_peers(register) -> None:
    """Add the peer models to :mod:`chromestore.training.registry` (kind ``arrays``: run by :mod:`.execute`).

    ``shallowchrome`` is a scikit-learn-style estimator on :func:`max_signal_features`;
    the others tune on the validation genes, so their factories are the per-epigenome
    kernels that :func:`chromestore.training.peers.execute.run_peers` calls.
    """
    from chromestore.training.peers import attentivechrome as AC
    from chromestore.training.peers import baselines as BL
    from chromestore.training.peers import shallowchrome as SC

    register("shallowchrome", SC.ShallowChrome, kind="arrays", features=SC.max_signal_features,
             defaults=dict(SC.DEFAULTS), paper=PAPERS["shallowchrome"], replace=True)
    register("svm-bin", BL.svm_bin, kind="arrays",
             defaults={"grid": {k: list(v) for k, v in BL.SVM_GRID.items()}},
             paper=PAPERS["svm-bin"], replace=True)
    register("rf-bestbin", BL.rf_bestbin, kind="arrays", defaults={"trees": list(BL.RF_TREES)},
             paper=PAPERS["rf-bestbin"], replace=True)
    register("attentivechrome", AC.fit_attentivechrome, kind="arrays",
             defaults=dict(AC.DEFAULTS), paper=PAPERS["attentivechrome"], replace=True)
    from chromestore.training.peers import regression as RG

    register("deepchrome-regression", RG.DeepChromeRegressor, kind="arrays", task="regression",
             defaults=dict(RG.DEFAULTS), paper=PAPERS["deepchrome-regression"], replace=True)
