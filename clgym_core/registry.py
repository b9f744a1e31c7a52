"""The component registry: plugins found through the ``clgym`` entry-point group, loaded once.

Every plugin, the built-in one included, contributes classes through the hooks
in :mod:`clgym_core.hookspecs`; the registry keys each class by its ``name``.
A plugin that fails to import, implements a hook no spec declares, or whose
hook raises is recorded as a one-line problem and left out; everything else
keeps working. Two plugins that claim one name are an error naming both, raised
when that name is used (and reported by ``clgym plugins``).

Environment switches:

- ``CLGYM_DISABLE_PLUGIN_AUTOLOAD=1``: load no entry points (built-ins only).
- ``CLGYM_BLOCK_PLUGINS=a,b``: skip the entry points named ``a`` and ``b``.
- ``CLGYM_TRACE_PLUGINS=1``: print every hook call and its results to stderr.
"""

from __future__ import annotations

import difflib
import importlib.metadata as importlib_metadata
import os
import sys
import threading
from dataclasses import dataclass, field
from typing import Any

import pluggy

from clgym_core import hookspecs
from clgym_core.component import normalize_name
from clgym_core.errors import RegistryError

ENTRY_POINT_GROUP = "clgym"
ENV_DISABLE = "CLGYM_DISABLE_PLUGIN_AUTOLOAD"
ENV_BLOCK = "CLGYM_BLOCK_PLUGINS"
ENV_TRACE = "CLGYM_TRACE_PLUGINS"
IN_PROCESS = "(in-process)"

#: kind -> (hook name, base class import path)
KINDS: dict[str, str] = {
    "benchmark": "clgym_register_benchmarks",
    "backbone": "clgym_register_backbones",
    "algorithm": "clgym_register_algorithms",
    "callback": "clgym_register_callbacks",
}
PLURALS = {"benchmarks": "benchmark", "backbones": "backbone", "algorithms": "algorithm", "callbacks": "callback"}


def _base_class(kind: str) -> type:
    from clgym_core.algorithm import Algorithm
    from clgym_core.backbone import Backbone
    from clgym_core.benchmark import Benchmark
    from clgym_core.callback import Callback

    return {"benchmark": Benchmark, "backbone": Backbone, "algorithm": Algorithm, "callback": Callback}[kind]


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


@dataclass
class PluginInfo:
    """One loaded (or attempted) plugin."""

    name: str
    distribution: str
    version: str
    hooks: list[str] = field(default_factory=list)
    load_problems: list[str] = field(default_factory=list)
    collect_problems: list[str] = field(default_factory=list)  # found again on every collect
    blocked: bool = False

    @property
    def problems(self) -> list[str]:
        return self.load_problems + self.collect_problems

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class ComponentInfo:
    kind: str
    name: str
    cls: type
    plugin: PluginInfo

    @property
    def provider(self) -> str:
        return f"{self.plugin.name} ({self.plugin.distribution} {self.plugin.version})"


class Registry:
    """Plugins and the components they register, by kind and name."""

    def __init__(self, autoload: bool | None = None, blocked: set[str] | None = None) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        if _truthy(os.environ.get(ENV_TRACE)):
            self.pm.trace.root.setwriter(lambda text: sys.stderr.write(text))
            self.pm.enable_tracing()
        self.plugins: dict[str, PluginInfo] = {}
        self.autoload = (not _truthy(os.environ.get(ENV_DISABLE))) if autoload is None else autoload
        env_blocked = {b.strip() for b in os.environ.get(ENV_BLOCK, "").split(",") if b.strip()}
        self.blocked = env_blocked if blocked is None else set(blocked)
        self._components: dict[str, dict[str, ComponentInfo]] | None = None
        self._duplicates: dict[tuple[str, str], list[ComponentInfo]] = {}
        self._lock = threading.Lock()
        from clgym_core import builtin

        self.register(builtin, name="clgym_core", distribution="clgym-core", version=_version("clgym-core"))
        if self.autoload:
            self._load_entry_points()

    # ---- loading ---------------------------------------------------------------------------------
    def _load_entry_points(self) -> None:
        for ep in sorted(importlib_metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            dist = getattr(ep, "dist", None)
            dist_name = dist.metadata["Name"] if dist is not None else "?"
            version = dist.version if dist is not None else "?"
            if ep.name in self.plugins:
                continue
            if ep.name in self.blocked:
                self.plugins[ep.name] = PluginInfo(ep.name, dist_name, version, blocked=True)
                continue
            try:
                module = ep.load()
            except Exception as exc:  # any import failure of a plugin must not break the rest
                self.plugins[ep.name] = PluginInfo(
                    ep.name, dist_name, version, load_problems=[f"failed to import {ep.value}: {_one_line(exc)}"]
                )
                continue
            self.register(module, name=ep.name, distribution=dist_name, version=version)

    def register(self, plugin: Any, name: str, distribution: str = IN_PROCESS, version: str = "") -> PluginInfo:
        """Register a plugin object (a module or any object with hook implementations)."""
        info = PluginInfo(name, distribution, version)
        self.plugins[name] = info
        unknown = [
            attr for attr in dir(plugin)
            if getattr(getattr(plugin, attr, None), f"{hookspecs.PROJECT}_impl", None) is not None
            and not hasattr(self.pm.hook, attr)
        ]
        if unknown:
            for attr in unknown:
                close = difflib.get_close_matches(attr, list(KINDS.values()), n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                info.load_problems.append(f"hook {attr} matches no clgym hook{hint}")
            return info
        try:
            self.pm.register(plugin, name=name)
        except Exception as exc:  # pluggy rejects bad hook signatures here
            info.load_problems.append(f"cannot register: {_one_line(exc)}")
            return info
        info.hooks = sorted(impl_name for impl_name in KINDS.values() if self._impl_of(impl_name, name) is not None)
        self._components = None
        return info

    def unregister(self, name: str) -> None:
        plugin = self.pm.get_plugin(name)
        if plugin is not None:
            self.pm.unregister(plugin, name=name)
        self.plugins.pop(name, None)
        self._components = None

    def _impl_of(self, hook: str, plugin_name: str) -> Any:
        for impl in getattr(self.pm.hook, hook).get_hookimpls():
            if impl.plugin_name == plugin_name:
                return impl
        return None

    def _collect(self) -> dict[str, dict[str, ComponentInfo]]:
        with self._lock:
            if self._components is not None:
                return self._components
            for plugin in self.plugins.values():
                plugin.collect_problems.clear()
            components: dict[str, dict[str, ComponentInfo]] = {kind: {} for kind in KINDS}
            duplicates: dict[tuple[str, str], list[ComponentInfo]] = {}
            for kind, hook in KINDS.items():
                base = _base_class(kind)
                # Call each implementation on its own so that one raising hook spoils only its plugin.
                for impl in reversed(getattr(self.pm.hook, hook).get_hookimpls()):
                    info = self.plugins.get(impl.plugin_name)
                    if info is None:
                        continue
                    try:
                        classes = impl.function() or []
                        if _truthy(os.environ.get(ENV_TRACE)):
                            sys.stderr.write(f"clgym: {impl.plugin_name}.{hook}() -> {classes!r}\n")
                    except Exception as exc:
                        info.collect_problems.append(f"hook {hook} raised {_one_line(exc)}")
                        continue
                    if not isinstance(classes, (list, tuple)):
                        info.collect_problems.append(
                            f"hook {hook} returned {type(classes).__name__}, expected a list of classes"
                        )
                        continue
                    for cls in classes:
                        problem = _check_class(cls, base, kind)
                        if problem:
                            info.collect_problems.append(problem)
                            continue
                        entry = ComponentInfo(kind, normalize_name(cls.name), cls, info)
                        previous = components[kind].get(entry.name)
                        if previous is not None and previous.cls is not cls:
                            duplicates.setdefault((kind, entry.name), [previous]).append(entry)
                            continue
                        components[kind][entry.name] = entry
            for (kind, name), entries in duplicates.items():
                providers = " and ".join(e.provider for e in entries)
                for entry in entries:
                    message = f"{kind} name {name!r} is registered by more than one plugin: {providers}"
                    if message not in entry.plugin.collect_problems:
                        entry.plugin.collect_problems.append(message)
            self._duplicates = duplicates
            self._components = components
            return components

    # ---- queries ---------------------------------------------------------------------------------
    def components(self, kind: str) -> dict[str, ComponentInfo]:
        return dict(self._collect()[_kind(kind)])

    def names(self, kind: str) -> list[str]:
        return sorted(self.components(kind))

    def info(self, kind: str, name: str) -> ComponentInfo:
        kind = _kind(kind)
        key = normalize_name(name)
        components = self._collect()[kind]
        if (kind, key) in self._duplicates:
            providers = " and ".join(e.provider for e in self._duplicates[(kind, key)])
            raise RegistryError(
                f"{kind} {key!r} is registered by more than one plugin: {providers}; "
                f"uninstall one or block it with {ENV_BLOCK}"
            )
        if key in components:
            return components[key]
        by_class = [c for c in components.values() if c.cls.__name__ == name]
        if by_class:
            return by_class[0]
        raise RegistryError(self._unknown_message(kind, name))

    def get(self, kind: str, name: str) -> type:
        """The class registered as ``name`` (or with that class name) for ``kind``."""
        return self.info(kind, name).cls

    def find(self, name: str) -> list[ComponentInfo]:
        """Components of any kind called ``name``."""
        found = []
        for kind in KINDS:
            try:
                found.append(self.info(kind, name))
            except RegistryError:
                continue
        return found

    def _unknown_message(self, kind: str, name: str) -> str:
        known = sorted(self._collect()[kind])
        close = difflib.get_close_matches(normalize_name(name), known, n=3, cutoff=0.5)
        parts = [f"unknown {kind} {name!r}"]
        if close:
            parts.append(f"did you mean {', '.join(close)}?")
        parts.append(f"installed {kind}s: {', '.join(known) if known else 'none'}")
        broken = [p.name for p in self.plugins.values() if p.problems]
        if broken:
            parts.append(f"plugins that failed to load: {', '.join(broken)} (see `clgym plugins`)")
        elif not self.autoload:
            parts.append(f"plugin autoloading is off ({ENV_DISABLE})")
        return "; ".join(parts)

    def problems(self) -> list[str]:
        """One line per problem of every plugin: which plugin, which distribution, what error."""
        self._collect()
        return [
            f"plugin {p.name} ({p.distribution} {p.version}): {problem}"
            for p in self.plugins.values()
            for problem in p.problems
        ]

    def versions(self) -> dict[str, str]:
        """Distribution name -> version of every plugin that loaded."""
        return {
            p.distribution: p.version
            for p in self.plugins.values()
            if not p.blocked and p.ok and p.distribution != IN_PROCESS
        }


def _kind(kind: str) -> str:
    kind = PLURALS.get(kind, kind)
    if kind not in KINDS:
        raise RegistryError(f"unknown component kind {kind!r}; use one of {', '.join(KINDS)}")
    return kind


def _check_class(cls: Any, base: type, kind: str) -> str | None:
    if not isinstance(cls, type) or not issubclass(cls, base):
        return f"registered {cls!r} as a {kind}, but it is not a subclass of {base.__name__}"
    try:
        cls.check_component()
    except TypeError as exc:
        return str(exc)
    return None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _version(distribution: str) -> str:
    try:
        return importlib_metadata.version(distribution)
    except importlib_metadata.PackageNotFoundError:
        return "0+unknown"


_REGISTRY: Registry | None = None
_REGISTRY_LOCK = threading.Lock()


def get_registry() -> Registry:
    """The process-wide registry, created (and plugins loaded) on first use."""
    global _REGISTRY
    with _REGISTRY_LOCK:
        if _REGISTRY is None:
            _REGISTRY = Registry()
        return _REGISTRY


def set_registry(registry: Registry | None) -> Registry | None:
    """Replace the process-wide registry (tests); returns the previous one. ``None`` reloads lazily."""
    global _REGISTRY
    with _REGISTRY_LOCK:
        previous, _REGISTRY = _REGISTRY, registry
        return previous
