"""The experiments, one module each; importing a module registers it (see ``framework.experiment``)."""

from __future__ import annotations

import importlib
import pkgutil


def load() -> None:
    """Import every experiment module of this package."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
