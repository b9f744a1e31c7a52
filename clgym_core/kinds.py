"""The one table of component kinds; every list of kinds in clgym derives from it.

A kind is a sort of registrable component: its singular name (``benchmark``), its plural
(``benchmarks``, used by the CLI and the ``cl.benchmarks`` namespace), the hook through which
plugins register it (``clgym_register_benchmarks``) and its base class, named by import path so
that this module imports nothing. A new kind is one entry here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Kind:
    name: str
    plural: str
    base: str  # "module:ClassName"
    description: str

    @property
    def hook(self) -> str:
        return f"clgym_register_{self.plural}"

    def base_class(self) -> type:
        module, _, attr = self.base.partition(":")
        return getattr(importlib.import_module(module), attr)


KINDS: tuple[Kind, ...] = (
    Kind("benchmark", "benchmarks", "clgym_core.benchmark:Benchmark", "a sequence of tasks"),
    Kind("backbone", "backbones", "clgym_core.backbone:Backbone", "a network"),
    Kind("algorithm", "algorithms", "clgym_core.algorithm:Algorithm", "a continual-learning method"),
    Kind("callback", "callbacks", "clgym_core.callback:Callback", "code reacting to the training timeline"),
)
KIND_NAMES: tuple[str, ...] = tuple(k.name for k in KINDS)
BY_NAME: dict[str, Kind] = {k.name: k for k in KINDS} | {k.plural: k for k in KINDS}


def kind_named(name: str) -> Kind | None:
    """The kind called ``name`` (singular or plural), or None."""
    return BY_NAME.get(name.strip().lower())
