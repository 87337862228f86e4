"""Embedded data files, read through :mod:`chromestore.datasets`."""
