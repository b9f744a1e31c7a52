"""clgym-vision: the image benchmarks of the continual-learning literature, on a uint8 fast path.

Rotated / Permuted / Split MNIST and Fashion-MNIST, Split CIFAR-10 and CIFAR-100,
and the paper's backbones (``mlp2layers``, ``resnet18_reduced``). Registered
through the ``clgym`` entry-point group; use them by name in a run spec or as
``clgym_core.benchmarks.RotatedMNIST`` and friends.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Imported on first use, not here: the entry point (clgym_vision.plugin) imports this package on
# every clgym command, and the lazy imports in its hooks only help if this file stays light.
_EXPORTS = {
    "MLP2Layers": "backbones", "ResNet18Reduced": "backbones",
    "PermutedFashionMNIST": "instances", "PermutedMNIST": "instances",
    "RotatedFashionMNIST": "instances", "RotatedMNIST": "instances",
    "SplitCIFAR10": "split", "SplitCIFAR100": "split", "SplitFashionMNIST": "split", "SplitMNIST": "split",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"clgym_vision.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'clgym_vision' has no attribute {name!r}")

__all__ = [
    "MLP2Layers",
    "PermutedFashionMNIST",
    "PermutedMNIST",
    "ResNet18Reduced",
    "RotatedFashionMNIST",
    "RotatedMNIST",
    "SplitCIFAR10",
    "SplitCIFAR100",
    "SplitFashionMNIST",
    "SplitMNIST",
]
