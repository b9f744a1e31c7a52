"""Entry point of clgym-pamap2: the PAMAP2 benchmark and the 1D CNN backbone."""

from __future__ import annotations

from clgym_core.hookspecs import hookimpl


@hookimpl
def clgym_register_benchmarks() -> list[type]:
    from clgym_pamap2.benchmark import PAMAP2

    return [PAMAP2]


@hookimpl
def clgym_register_backbones() -> list[type]:
    from clgym_pamap2.cnn1d import CNN1D

    return [CNN1D]
