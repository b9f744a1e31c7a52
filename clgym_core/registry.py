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

import contextlib
import difflib
import importlib.metadata as importlib_metadata
import os
import re
import signal
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy

from clgym_core import hookspecs, interrupts
from clgym_core.component import normalize_name
from clgym_core.errors import RegistryError
from clgym_core.kinds import KIND_NAMES, KINDS, kind_named

ENTRY_POINT_GROUP = "clgym"
ENV_DISABLE = "CLGYM_DISABLE_PLUGIN_AUTOLOAD"
ENV_BLOCK = "CLGYM_BLOCK_PLUGINS"
ENV_TRACE = "CLGYM_TRACE_PLUGINS"
IN_PROCESS = "(in-process)"
PRESET_HOOK = "clgym_register_presets"
#: A preset name: snake_case words joined by slashes, e.g. ``rotated_mnist/ewc``.
PRESET_NAME = re.compile(r"[a-z0-9_]+(/[a-z0-9_]+)*")
PRESET_SUFFIXES = (".yaml", ".yml", ".toml", ".json")


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


@dataclass(frozen=True)
class PresetInfo:
    """A named run spec a plugin publishes: a spec file (``path``) or a mapping (``data``)."""

    name: str
    plugin: PluginInfo
    path: Path | None = None
    data: dict[str, Any] | None = None

    @property
    def provider(self) -> str:
        return f"{self.plugin.name} ({self.plugin.distribution} {self.plugin.version})"


class Registry:
    """Plugins and the components they register, by kind and name."""

    def __init__(self, autoload: bool | None = None, blocked: set[str] | None = None) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        if _truthy(os.environ.get(ENV_TRACE)):
            self.pm.add_hookcall_monitoring(lambda *args: None, _trace_after)
        self.plugins: dict[str, PluginInfo] = {}
        self.autoload = (not _truthy(os.environ.get(ENV_DISABLE))) if autoload is None else autoload
        env_blocked = {b.strip() for b in os.environ.get(ENV_BLOCK, "").split(",") if b.strip()}
        self.blocked = env_blocked if blocked is None else set(blocked)
        self._components: dict[str, dict[str, ComponentInfo]] | None = None
        self._presets: dict[str, PresetInfo] = {}
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
            presses = _Presses()
            try:
                with _user_interrupts(presses):
                    module = ep.load()
            except BaseException as exc:  # noqa: B036 - a plugin's sys.exit() or stray KeyboardInterrupt too
                _raise_if_the_users(exc, presses)
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
                close = difflib.get_close_matches(attr, self._hook_names(), n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                info.load_problems.append(f"hook {attr} matches no clgym hook{hint}")
            return info
        try:
            self.pm.register(plugin, name=name)
        except Exception as exc:  # pluggy rejects bad hook signatures here
            info.load_problems.append(f"cannot register: {_one_line(exc)}")
            return info
        info.hooks = sorted(hook for hook in self._hook_names() if self._impl_of(hook, name) is not None)
        self._components = None
        return info

    def _hook_names(self) -> list[str]:
        return [name for name in dir(self.pm.hook) if name.startswith(f"{hookspecs.PROJECT}_")]

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
            components: dict[str, dict[str, ComponentInfo]] = {kind: {} for kind in KIND_NAMES}
            duplicates: dict[tuple[str, str], list[ComponentInfo]] = {}
            for kind in KINDS:
                base = kind.base_class()
                for info, classes in self._call_each(kind.hook):
                    classes = [] if classes is None else classes
                    if not isinstance(classes, (list, tuple)):
                        info.collect_problems.append(
                            f"hook {kind.hook} returned {type(classes).__name__}, expected a list of classes"
                        )
                        continue
                    for cls in classes:
                        problem = _check_class(cls, base, kind.name)
                        if problem:
                            info.collect_problems.append(problem)
                            continue
                        entry = ComponentInfo(kind.name, normalize_name(cls.name), cls, info)
                        previous = components[kind.name].get(entry.name)
                        if previous is not None and previous.cls is not cls:
                            duplicates.setdefault((kind.name, entry.name), [previous]).append(entry)
                            continue
                        components[kind.name][entry.name] = entry
            for (kind, name), entries in duplicates.items():
                providers = " and ".join(e.provider for e in entries)
                for entry in entries:
                    message = f"{kind} name {name!r} is registered by more than one plugin: {providers}"
                    if message not in entry.plugin.collect_problems:
                        entry.plugin.collect_problems.append(message)
            self._presets = self._collect_presets(duplicates)
            self._duplicates = duplicates
            self._components = components
            return components

    def _collect_presets(self, duplicates: dict[tuple[str, str], list[Any]]) -> dict[str, PresetInfo]:
        presets: dict[str, PresetInfo] = {}
        for info, table in self._call_each(PRESET_HOOK):
            if table is None:
                continue
            if not isinstance(table, dict):
                info.collect_problems.append(f"hook {PRESET_HOOK} returned {type(table).__name__}, expected a "
                                             "mapping of preset name to spec file or spec mapping")
                continue
            for raw, value in table.items():
                name = str(raw).strip().lower()
                if not PRESET_NAME.fullmatch(name):
                    info.collect_problems.append(f"preset name {raw!r} is not snake_case words joined by '/'")
                    continue
                if isinstance(value, dict):
                    entry = PresetInfo(name, info, data=value)
                elif isinstance(value, (str, os.PathLike)) and Path(value).suffix.lower() in PRESET_SUFFIXES:
                    entry = PresetInfo(name, info, path=Path(value))
                else:
                    info.collect_problems.append(f"preset {name!r}: expected a spec file path "
                                                 f"({', '.join(PRESET_SUFFIXES)}) or a mapping, got {value!r}")
                    continue
                previous = presets.get(name)
                if previous is not None and previous.plugin is not info:
                    claimed = duplicates.setdefault(("preset", name), [previous])
                    claimed.append(entry)
                    message = f"preset {name!r} is registered by more than one plugin: " + " and ".join(
                        e.provider for e in claimed)
                    for e in claimed:
                        e.plugin.collect_problems.append(message)
                    continue
                presets[name] = entry
        return presets

    def _call_each(self, hook: str, problems: str = "collect_problems", **kwargs: Any) -> list[tuple[PluginInfo, Any]]:
        """Call ``hook`` through pluggy once per implementing plugin, so that a raising one spoils only itself.

        Going through the plugin manager keeps pluggy's promises: tracing
        (``CLGYM_TRACE_PLUGINS``) and implementations taking fewer arguments than the spec.
        """
        caller = getattr(self.pm.hook, hook)
        results = []
        for impl in reversed(caller.get_hookimpls()):
            info = self.plugins.get(impl.plugin_name)
            if info is None:
                continue
            others = [p for p in self.pm.get_plugins() if p is not impl.plugin]
            presses = _Presses()
            try:
                with _user_interrupts(presses):
                    (value,) = self.pm.subset_hook_caller(hook, others)(**kwargs) or [None]
            except BaseException as exc:  # noqa: B036 - SystemExit and stray KeyboardInterrupts of a plugin too
                _raise_if_the_users(exc, presses)
                getattr(info, problems).append(f"hook {hook} raised {_one_line(exc)}")
                continue
            results.append((info, value))
        return results

    def register_commands(self, app: Any) -> None:
        """Let every plugin add its commands to the CLI ``app`` (a failing plugin becomes a load problem)."""
        self._call_each("clgym_register_commands", problems="load_problems", app=app)

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
        """Components of any kind called ``name``; a name two plugins claim is an error naming both."""
        found = []
        claimed_twice: RegistryError | None = None
        for kind in KIND_NAMES:
            try:
                found.append(self.info(kind, name))
            except RegistryError as exc:
                if (kind, normalize_name(name)) in self._duplicates:
                    claimed_twice = exc
        if claimed_twice is not None:
            raise claimed_twice
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

    def presets(self) -> dict[str, PresetInfo]:
        """Every preset the plugins publish, by name."""
        self._collect()
        return dict(self._presets)

    def preset(self, name: str) -> PresetInfo:
        """The preset called ``name``; unknown or claimed twice: one line with the close matches."""
        key = name.strip().lower()
        presets = self.presets()
        if ("preset", key) in self._duplicates:
            providers = " and ".join(e.provider for e in self._duplicates[("preset", key)])
            raise RegistryError(f"preset {key!r} is registered by more than one plugin: {providers}; "
                                f"uninstall one or block it with {ENV_BLOCK}")
        if key in presets:
            return presets[key]
        close = difflib.get_close_matches(key, sorted(presets), n=3, cutoff=0.5)
        if not close:  # same algorithm or benchmark under another name
            close = [p for p in sorted(presets) if key.rpartition("/")[2] == p.rpartition("/")[2]][:3]
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        known = f"{len(presets)} installed, see `clgym list presets`" if presets else "none installed (clgym-algos publishes the leaderboard's)"
        raise RegistryError(f"unknown preset {name!r}{hint} ({known})")

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
    found = kind_named(kind)
    if found is None:
        raise RegistryError(f"unknown component kind {kind!r}; use one of {', '.join(KIND_NAMES)}")
    return found.name


def _check_class(cls: Any, base: type, kind: str) -> str | None:
    if not isinstance(cls, type) or not issubclass(cls, base):
        return f"registered {cls!r} as a {kind}, but it is not a subclass of {base.__name__}"
    try:
        cls.check_component()
    except TypeError as exc:
        return str(exc)
    return None


def _trace_after(outcome: Any, hook: str, impls: list[Any], kwargs: dict[str, Any]) -> None:
    """``CLGYM_TRACE_PLUGINS``: one line per hook call, naming the plugins that answered and what they returned."""
    who = ",".join(impl.plugin_name for impl in impls) or "(no plugin)"
    args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    if outcome.exception is not None:
        result = f"raised {_one_line(outcome.exception)}"
    else:
        values = outcome.get_result()
        result = repr(values[0] if len(impls) == 1 and len(values) == 1 else values)
    sys.stderr.write(f"clgym: {who}.{hook}({args}) -> {result}\n")


class _Presses:
    """Ctrl-C during a stretch of plugin code: ``pressed`` once :mod:`clgym_core.interrupts`
    has counted a SIGINT since ``before``; ``unknowable`` off the main thread, where no
    handler can be installed and every ``KeyboardInterrupt`` counts as the user's."""

    def __init__(self) -> None:
        self.before = interrupts.presses()
        self.unknowable = threading.current_thread() is not threading.main_thread()

    @property
    def pressed(self) -> bool:
        return interrupts.presses() != self.before


@contextlib.contextmanager
def _user_interrupts(presses: _Presses) -> Any:
    """Count the user's Ctrl-C presses while plugin code runs (``presses``, made before the block).

    A plugin that raises ``KeyboardInterrupt`` itself is a broken plugin; a real SIGINT
    must still stop the tool, even when the plugin's code swallowed it (an extension's
    import that catches every error): the block then raises ``KeyboardInterrupt``
    (:func:`_raise_if_the_users` does the same for a press turned into another error).
    """
    previous = None
    if not presses.unknowable:
        try:
            previous = signal.signal(signal.SIGINT, interrupts.note_press)
        except ValueError:  # not the main interpreter's main thread
            presses.unknowable = True
    try:
        yield presses
    finally:
        if previous is not None:
            interrupts.set_sigint(previous)  # a press pending here is counted, so it still interrupts
    if presses.pressed:  # the plugin's code went on as if nothing had been pressed
        raise KeyboardInterrupt


def _raise_if_the_users(exc: BaseException, presses: _Presses) -> None:
    """Re-raise ``exc``, raised by plugin code, when it ends the tool instead of marking the plugin broken.

    A press counted during the call makes any exception the user's (an import that turned
    the ``KeyboardInterrupt`` into another error): it leaves as ``KeyboardInterrupt``.
    """
    if isinstance(exc, GeneratorExit) or isinstance(exc, KeyboardInterrupt) and (presses.pressed or presses.unknowable):
        raise exc
    if presses.pressed:
        raise KeyboardInterrupt from exc


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
