"""Peer models of DeepChrome run on the same store, labels and splits.

=====================  ==================================================  =======================
name                   model                                               module
=====================  ==================================================  =======================
``shallowchrome``      max peak signal per mark → logistic regression      :mod:`.shallowchrome`
=====================  ==================================================  =======================

Each module holds kernels on numpy arrays / torch tensors, independent of the store.
"""
