"""clgym-core: interfaces, plugin registry, run specs, trainer and metrics for continual learning.

The paper's Python API::

    import clgym_core as cl
    benchmark = cl.benchmarks.RotatedMNIST(num_tasks=5, per_task_rotation_degrees=10)
    backbone = cl.backbones.MLP2Layers()
    algorithm = cl.algorithms.EWC(backbone, benchmark)
    trainer = cl.trainer.ContinualTrainer(algorithm)
    trainer.fit()

``cl.benchmarks.X`` (and backbones, algorithms, callbacks) resolves ``X`` lazily
in the plugin registry, by class name or registry name.
"""

from __future__ import annotations

import importlib
from typing import Any

from clgym_core.kinds import KINDS

__version__ = "0.1.0"

_LAZY_MODULES = {
    "trainer", "metrics", "data", "registry", "spec", "runner", "errors", "kinds", "optim", "settings",
    "benchmark", "backbone", "algorithm", "callback", "component", "hookspecs", "testing", "build", "rundir", "sweeps",
}
_LAZY_NAMES = {
    "Benchmark": "clgym_core.benchmark",
    "BenchmarkParams": "clgym_core.benchmark",
    "Backbone": "clgym_core.backbone",
    "MultiHead": "clgym_core.backbone",
    "Algorithm": "clgym_core.algorithm",
    "OptimizerConfig": "clgym_core.optim",
    "TrainerSettings": "clgym_core.settings",
    "Callback": "clgym_core.callback",
    "ContinualTrainer": "clgym_core.trainer",
    "Params": "clgym_core.component",
    "TaskData": "clgym_core.data",
    "Batch": "clgym_core.data",
    "hookimpl": "clgym_core.hookspecs",
    "ClgymError": "clgym_core.errors",
    "RunSpec": "clgym_core.spec",
    "sweep": "clgym_core.sweeps",
    "tune": "clgym_core.sweeps",
}


class _Namespace:
    """``cl.<kind>s.Name``: a registered class looked up when first used."""

    def __init__(self, kind: str) -> None:
        self._kind = kind

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        from clgym_core.errors import RegistryError
        from clgym_core.registry import get_registry

        try:
            return get_registry().get(self._kind, name)
        except RegistryError as exc:
            raise AttributeError(str(exc)) from None

    def __dir__(self) -> list[str]:
        from clgym_core.registry import get_registry

        comps = get_registry().components(self._kind).values()
        return sorted({c.cls.__name__ for c in comps} | {c.name for c in comps})

    def __repr__(self) -> str:
        return f"<clgym {self._kind}s: {', '.join(self.__dir__())}>"


for _kind in KINDS:
    globals()[_kind.plural] = _Namespace(_kind.name)


def __getattr__(name: str) -> Any:
    if name in _LAZY_MODULES:
        return importlib.import_module(f"clgym_core.{name}")
    if name in _LAZY_NAMES:
        return getattr(importlib.import_module(_LAZY_NAMES[name]), name)
    raise AttributeError(f"module 'clgym_core' has no attribute {name!r}")


__all__ = [*(k.plural for k in KINDS), *sorted(_LAZY_NAMES), "__version__"]
