"""``clgym list``, ``clgym show`` and ``clgym plugins``: what is installed, without loading any data."""

from __future__ import annotations

import inspect
import typing
from enum import Enum
from typing import Any, Optional

import typer
from pydantic_core import PydanticUndefined
from rich.markup import escape
from rich.table import Table

from clgym_core.cli.common import console, err_console
from clgym_core.component import summary_line
from clgym_core.errors import ClgymError, RegistryError
from clgym_core.kinds import KIND_NAMES, KINDS
from clgym_core.optim import OptimizerConfig
from clgym_core.registry import ComponentInfo, get_registry
from clgym_core.settings import TrainerSettings
from clgym_core.official_plugins import empty_kind_hint


_LISTED = {**{k.plural: k.plural for k in KINDS}, "plugins": "plugins", "presets": "presets"}
ListKind = Enum("ListKind", _LISTED, type=str)  # type: ignore[misc]
#: ``clgym show trainer`` / ``optimizer``: the spec sections that are not registered components.
SECTIONS: dict[str, tuple[type, str]] = {
    "trainer": (TrainerSettings, "spec section trainer:  (clgym_core.settings.TrainerSettings)"),
    "optimizer": (OptimizerConfig, "spec section optimizer:  (clgym_core.optim.OptimizerConfig)"),
}
ShowKind = Enum("ShowKind", {k.name: k.name for k in KINDS}, type=str)  # type: ignore[misc]


def list_components(
    kind: Optional[ListKind] = typer.Argument(None, help="Only this kind; all kinds when omitted."),
) -> None:
    """List installed components: name, providing plugin and version, and a one-line summary."""
    if kind is not None and kind.value == "plugins":
        _plugins_table()
        return
    if kind is not None and kind.value == "presets":
        _presets_table()
        return
    registry = get_registry()
    kinds = [k.name for k in KINDS if kind is None or k.plural == kind.value]
    for k in kinds:
        table = Table(title=f"{k}s", title_justify="left")
        for column in ("name", "plugin", "version", "summary"):
            table.add_column(column)
        infos = sorted(registry.components(k).values(), key=lambda c: c.name)
        for info in infos:
            table.add_row(info.name, info.plugin.distribution, info.plugin.version, escape(summary_line(info.cls)))
        console.print(table)
        if not infos:
            console.print(empty_kind_hint(k), markup=False)
    _warn_problems()


def show(
    name: str = typer.Argument(
        ..., help="Registry name (or class name) of a component, or `trainer` / `optimizer` for those spec sections."
    ),
    kind: Optional[ShowKind] = typer.Option(None, "--kind", "-k", help="Disambiguate when several kinds share NAME."),
) -> None:
    """Show a component's description and parameters (name, type, default, description).

    `clgym show trainer` and `clgym show optimizer` show the fields of the spec's
    `trainer:` and `optimizer:` sections.
    """
    section = SECTIONS.get(name.strip().lower()) if kind is None else None
    if section is not None:
        model, heading = section
        console.print(heading, markup=False)
        console.print(inspect.cleandoc(model.__doc__ or ""), markup=False)
        console.print(params_table(model, title="fields"))
        return
    registry = get_registry()
    if kind is not None:
        found = [registry.info(kind.value, name)]
    else:
        found = registry.find(name)
    if not found:
        names = sorted({n for k in KIND_NAMES for n in registry.names(k)})
        import difflib

        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise RegistryError(f"no component named {name!r}{hint} (see `clgym list`)")
    for info in found:
        _show_one(info)


def _show_one(info: ComponentInfo) -> None:
    doc = inspect.cleandoc(info.cls.__doc__ or "")
    console.print(f"{info.kind} {info.name}  ({info.cls.__module__}.{info.cls.__qualname__}, "
                  f"plugin {info.plugin.name}, {info.plugin.distribution} {info.plugin.version})", markup=False)
    if doc:
        console.print(doc, markup=False)
    console.print(params_table(info.cls.Params))


def params_table(model: Any, title: str = "parameters") -> Table:
    """Name, type, default and description of every field of a pydantic model.

    Names never wrap or shorten (they are what a spec must spell); long types and
    descriptions wrap within the terminal's width.
    """
    fields = model.model_fields
    width = max((len(f.alias or n) for n, f in fields.items()), default=4)
    table = Table(title=title, title_justify="left")
    table.add_column("name", no_wrap=True, min_width=width)
    table.add_column("type", overflow="fold")
    table.add_column("default", overflow="fold")
    table.add_column("description", overflow="fold", ratio=1)
    for field_name, field in fields.items():
        table.add_row(
            field.alias or field_name,
            escape(_type_name(field.annotation)),
            escape(_default(field)),
            escape(field.description or ""),
        )
    return table


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return annotation.__name__
    text = repr(annotation).replace("typing.", "")
    return text.replace("NoneType", "None")


def _default(field: Any) -> str:
    if field.default is PydanticUndefined:
        if field.default_factory is not None:
            return repr(field.default_factory())
        return "(required)"
    return repr(field.default)


def plugins() -> None:
    """Installed plugins with versions, hooks and problems; exits 1 if any plugin is broken."""
    if _plugins_table():
        raise typer.Exit(1)


def _plugins_table() -> bool:
    registry = get_registry()
    problems = registry.problems()
    table = Table(title="plugins", title_justify="left")
    for column in ("plugin", "distribution", "version", "hooks"):
        table.add_column(column, overflow="fold")
    table.add_column("status", overflow="fold", ratio=1)  # a problem is read whole: wrapped, never cut
    for info in registry.plugins.values():
        status = "blocked" if info.blocked else ("ok" if info.ok else "; ".join(info.problems))
        table.add_row(info.name, info.distribution, info.version, ", ".join(info.hooks), escape(status))
    console.print(table)
    if not registry.autoload:
        console.print("plugin autoloading is disabled (CLGYM_DISABLE_PLUGIN_AUTOLOAD)")
    return bool(problems)


def _presets_table() -> None:
    """Presets by name: what each runs, who publishes it, and whether its components are installed."""
    from clgym_core.presets import preset_data

    registry = get_registry()
    table = Table(title="presets (clgym run --preset NAME)", title_justify="left")
    for column in ("name", "benchmark", "algorithm"):
        table.add_column(column, no_wrap=True)  # what a command must spell
    table.add_column("plugin", overflow="fold", min_width=12)
    table.add_column("status", overflow="fold", min_width=6)
    presets = registry.presets()
    for name in sorted(presets):
        info = presets[name]
        try:
            data, _ = preset_data(name, registry)
        except ClgymError as exc:
            table.add_row(name, "-", "-", f"{info.plugin.distribution} {info.plugin.version}", escape(str(exc)))
            continue
        names = {k: _component_name(data.get(k)) for k in ("benchmark", "algorithm")}
        missing = [f"{k} {n}" for k, n in names.items() if n and n not in registry.names(k)]
        status = f"needs {', '.join(missing)}" if missing else "ready"
        table.add_row(name, names["benchmark"], names["algorithm"], f"{info.plugin.distribution} {info.plugin.version}",
                      escape(status))
    console.print(table)
    if not presets:
        console.print("no presets installed: clgym-algos publishes the leaderboard's (pip install clgym-algos)",
                      markup=False)
    _warn_problems()


def _component_name(value: Any) -> str:
    if isinstance(value, str):
        return value
    return str(value.get("name", "")) if isinstance(value, dict) else ""


def _warn_problems() -> None:
    for line in get_registry().problems():
        err_console.print(f"warning: {line}", markup=False)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("list")(list_components)
    app.command("show")(show)
    app.command("plugins")(plugins)
