"""Helpers for testing clgym components and plugins.

- :class:`SyntheticBlobs`: a tiny benchmark that trains in well under a second.
- :func:`make_plugin`: an in-process plugin object registering the given classes.
- :func:`isolated_registry`: a fresh registry (optionally with extra plugins) installed
  as the process-wide one for the duration of a ``with`` block.
- The conformance kit (needs pytest, imported on first use): :class:`AlgorithmConformance`,
  :class:`BenchmarkConformance`, :class:`BackboneConformance`, :class:`CallbackConformance`.
  A plugin's test module subclasses them, naming the class under test and its params.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from clgym_core.hookspecs import hookimpl
from clgym_core.kinds import KINDS, kind_named
from clgym_core.registry import Registry, set_registry
from clgym_core.testing.synthetic import SyntheticBlobs

_CONFORMANCE = (
    "AlgorithmConformance",
    "BackboneConformance",
    "BenchmarkConformance",
    "CallbackConformance",
    "ComponentConformance",
)

__all__ = ["SyntheticBlobs", "isolated_registry", "make_plugin", *_CONFORMANCE]


def __getattr__(name: str) -> Any:
    # The kit imports pytest, which clgym-core does not require: load it only when asked for.
    if name in _CONFORMANCE:
        from clgym_core.testing import conformance

        return getattr(conformance, name)
    raise AttributeError(f"module 'clgym_core.testing' has no attribute {name!r}")


def make_plugin(**classes_by_kind: Sequence[type]) -> Any:
    """A plugin object whose hooks return the given classes, by plural kind: ``make_plugin(algorithms=[A])``.

    Only the non-empty kinds get a hook.
    """
    namespace: dict[str, Any] = {}
    for plural, classes in classes_by_kind.items():
        kind = kind_named(plural)
        if kind is None or kind.plural != plural:
            raise TypeError(f"make_plugin: unknown kind {plural!r}; use {', '.join(k.plural for k in KINDS)}")
        if classes:
            namespace[kind.hook] = staticmethod(hookimpl(lambda classes=list(classes): list(classes)))
    return type("InProcessPlugin", (), namespace)()


@contextlib.contextmanager
def isolated_registry(
    plugins: dict[str, Any] | None = None, autoload: bool = False
) -> Iterator[Registry]:
    """A fresh registry with the built-ins, ``plugins`` (name -> plugin object) and, if ``autoload``,
    the installed entry points; installed process-wide until the block ends."""
    registry = Registry(autoload=autoload)
    for name, plugin in (plugins or {}).items():
        registry.register(plugin, name=name)
    previous = set_registry(registry)
    try:
        yield registry
    finally:
        set_registry(previous)
