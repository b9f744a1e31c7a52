"""Entry point of clgym-vision: the image benchmarks and backbones it registers."""

from __future__ import annotations

from clgym_core.hookspecs import hookimpl


@hookimpl
def clgym_register_benchmarks() -> list[type]:
    from clgym_vision.instances import PermutedFashionMNIST, PermutedMNIST, RotatedFashionMNIST, RotatedMNIST
    from clgym_vision.split import SplitCIFAR10, SplitCIFAR100, SplitFashionMNIST, SplitMNIST

    return [
        RotatedMNIST, PermutedMNIST, SplitMNIST,
        RotatedFashionMNIST, PermutedFashionMNIST, SplitFashionMNIST,
        SplitCIFAR10, SplitCIFAR100,
    ]


@hookimpl
def clgym_register_backbones() -> list[type]:
    from clgym_vision.backbones import MLP2Layers, ResNet18Reduced

    return [MLP2Layers, ResNet18Reduced]
