"""The hooks a clgym plugin may implement. Each returns a list of component classes.

A plugin is a module (or object) with ``@hookimpl`` functions, found through the
``clgym`` entry-point group. An implementation may take fewer arguments than its
spec, so specs can grow keyword arguments without breaking old plugins.
"""

from __future__ import annotations

import pluggy

PROJECT = "clgym"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def clgym_register_benchmarks() -> list[type]:
    """Return the Benchmark subclasses this plugin provides."""


@hookspec
def clgym_register_backbones() -> list[type]:
    """Return the Backbone subclasses this plugin provides."""


@hookspec
def clgym_register_algorithms() -> list[type]:
    """Return the Algorithm subclasses this plugin provides."""


@hookspec
def clgym_register_callbacks() -> list[type]:
    """Return the Callback subclasses this plugin provides."""
