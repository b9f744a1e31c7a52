"""PAMAP2 (Reiss & Stricker 2012) as a continual-learning benchmark, and the CL-Gym 1D CNN."""

from __future__ import annotations

import importlib
from typing import Any

# Imported on first use: the entry point (clgym_pamap2.plugin) imports this package on every clgym command.
_EXPORTS = {"PAMAP2": "benchmark", "CNN1D": "cnn1d"}
__all__ = ["CNN1D", "PAMAP2"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"clgym_pamap2.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'clgym_pamap2' has no attribute {name!r}")
