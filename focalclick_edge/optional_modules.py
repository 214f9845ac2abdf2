"""Imports that must not break `import focalclick_edge.runtime` when a dependency is missing.

A trimmed environment (a system Python with NumPy only, a minimal container) should still be able to
import the package and learn, on first use, exactly which distribution to install.
"""
from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from .errors import UserError


class MissingModule:
    """Stands in for a module that is not installed; any attribute access says what to install."""

    def __init__(self, name: str, distribution: str) -> None:
        self._name, self._distribution = name, distribution

    def __getattr__(self, attr: str) -> Any:
        raise UserError(
            f"{self._name} is not installed ({self._name}.{attr} was needed); pip install {self._distribution} "
            "(or reinstall focalclick-edge, which depends on it)"
        )


def optional_import(name: str, distribution: str) -> ModuleType | MissingModule:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        return MissingModule(name, distribution)
