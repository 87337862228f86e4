"""Lazy public names for a package's ``__init__``: a name's module loads on its first use.

Each package of chromestore names its public pieces in one dict, ``name → module``, and
hands it to :func:`attach`; ``import chromestore`` (and ``chromestore --help``) then loads
nothing it does not use. The import-cycle test (``tests/test_layers.py``) reads these dicts
to follow a package's names to the modules that define them.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping


def attach(
    package: str, exports: Mapping[str, str], modules: Iterable[str] = ()
) -> tuple[Callable[[str], object], Callable[[], list[str]], list[str]]:
    """``(__getattr__, __dir__, __all__)`` for ``package``.

    ``exports`` maps each public name to the module defining it, absolute or relative to
    the package (``".handle"``); the names in ``modules`` are modules exported as
    themselves (``chromestore.datasets``).
    """
    modules = frozenset(modules)

    def __getattr__(name: str) -> object:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = importlib.import_module(exports[name], package)
        value = module if name in modules else getattr(module, name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__, sorted(exports)
