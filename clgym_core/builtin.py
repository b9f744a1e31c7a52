"""Components that ship with clgym-core, registered through the same hooks as any plugin."""

from __future__ import annotations

from clgym_core.backbone import MLP
from clgym_core.progress import ProgressBar
from clgym_core.hookspecs import hookimpl
from clgym_core.loggers import LOGGERS


@hookimpl
def clgym_register_backbones() -> list[type]:
    return [MLP]


@hookimpl
def clgym_register_callbacks() -> list[type]:
    return [ProgressBar, *LOGGERS]
