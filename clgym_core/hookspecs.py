"""The hooks a clgym plugin may implement.

A plugin is a module (or object) with ``@hookimpl`` functions, found through the
``clgym`` entry-point group. There is one registration hook per component kind
(:mod:`clgym_core.kinds`), each returning a list of classes, one that publishes named
run specs (presets), and one hook that adds commands to the ``clgym`` CLI. An implementation may take fewer arguments than its
spec, so specs can grow keyword arguments without breaking old plugins.
"""

from __future__ import annotations

from typing import Any

import pluggy

from clgym_core.kinds import KINDS

PROJECT = "clgym"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


def _registration_spec(hook: str, base: str) -> Any:
    def spec() -> list[type]: ...

    spec.__name__ = spec.__qualname__ = hook
    spec.__doc__ = f"Return the {base} subclasses this plugin provides."
    return hookspec(spec)


for _kind in KINDS:
    globals()[_kind.hook] = _registration_spec(_kind.hook, _kind.base.partition(":")[2])


@hookspec
def clgym_register_commands(app: Any) -> None:
    """Add commands to the ``clgym`` CLI: ``app`` is its ``typer.Typer``; use ``app.command()`` or ``app.add_typer()``."""


@hookspec
def clgym_register_presets() -> dict[str, Any]:
    """Return named run specs, ``{"rotated_mnist/ewc": spec file path or mapping}``, for ``clgym run --preset``."""
