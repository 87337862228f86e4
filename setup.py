"""Package discovery for the one installed package, ``chromestore``, from four source folders.

``chromestore/`` installs as itself; the design's top-level ``training/`` and ``analysis/``
install inside it as ``chromestore.training`` and ``chromestore.analysis``, and the
embedded data (``data/``) as ``chromestore._data``. setuptools finds every subpackage of
each folder (no hand-kept list); everything else is in ``pyproject.toml``.
"""

from setuptools import find_namespace_packages, find_packages, setup

#: installed package → its source folder
FOLDERS = {"chromestore.training": "training", "chromestore.analysis": "analysis"}

packages = find_packages(include=["chromestore", "chromestore.*"])
for name, folder in FOLDERS.items():
    packages += [name, *(f"{name}.{sub}" for sub in find_packages(folder))]
# the data folders hold no code: namespace packages, so their files install as package data
packages += [
    "chromestore._data",
    *(f"chromestore._data.{sub}" for sub in find_namespace_packages("data")),
]

setup(
    packages=packages,
    package_dir={"chromestore": "chromestore", **FOLDERS, "chromestore._data": "data"},
)
