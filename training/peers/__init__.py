"""Peer models of DeepChrome run on the same store, labels and splits.

=========================  ==================================================  ========================
name                       model                                               module
=========================  ==================================================  ========================
``shallowchrome``          max peak signal per mark → logistic regression      :mod:`.shallowchrome`
``attentivechrome``        bin- and mark-level attention LSTMs                 :mod:`.attentivechrome`
``svm-bin``                one RBF SVM per bin (Cheng et al. 2011)             :mod:`.baselines`
``rf-bestbin``             random forest on each mark's best bin (Dong 2012)   :mod:`.baselines`
``deepchrome-regression``  DeepChrome's network on log(RPKM + 1)               :mod:`.regression`
=========================  ==================================================  ========================

Each module holds kernels on numpy arrays / torch tensors, independent of the store, its
scorer, export codec and metrics, and its entry (:mod:`chromestore.training.entry`, listed
in :mod:`chromestore.training.registry`). :mod:`.execute` runs the ``arrays`` entries on a store as Dask tasks (:mod:`.cells`: one epigenome's inputs and
outputs); :mod:`.regression_run` runs ``deepchrome-regression``.
"""
