"""clgym-vision: the image benchmarks of the continual-learning literature, on a uint8 fast path.

Rotated / Permuted / Split MNIST and Fashion-MNIST, Split CIFAR-10 and CIFAR-100,
and the paper's backbones (``mlp2layers``, ``resnet18_reduced``). Registered
through the ``clgym`` entry-point group; use them by name in a run spec or as
``clgym_core.benchmarks.RotatedMNIST`` and friends.
"""

from __future__ import annotations

from clgym_vision.backbones import MLP2Layers, ResNet18Reduced
from clgym_vision.instances import PermutedFashionMNIST, PermutedMNIST, RotatedFashionMNIST, RotatedMNIST
from clgym_vision.split import SplitCIFAR10, SplitCIFAR100, SplitFashionMNIST, SplitMNIST

__version__ = "0.1.0"
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
