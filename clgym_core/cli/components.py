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

from clgym_core.cli import app
from clgym_core.cli.common import console, err_console, fail, user_errors
from clgym_core.component import summary_line
from clgym_core.official_plugins import empty_kind_hint
from clgym_core.registry import KINDS, ComponentInfo, get_registry


class ListKind(str, Enum):
    benchmarks = "benchmarks"
    backbones = "backbones"
    algorithms = "algorithms"
    callbacks = "callbacks"
    plugins = "plugins"


@app.command("list")
@user_errors
def list_components(
    kind: Optional[ListKind] = typer.Argument(None, help="Only this kind; all kinds when omitted."),
) -> None:
    """List installed components: name, providing plugin and version, and a one-line summary."""
    if kind is ListKind.plugins:
        _plugins_table()
        return
    registry = get_registry()
    kinds = [kind.value.rstrip("s")] if kind is not None else list(KINDS)
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


@app.command("show")
@user_errors
def show(
    name: str = typer.Argument(..., help="Registry name (or class name) of a component."),
    kind: Optional[ListKind] = typer.Option(None, "--kind", "-k", help="Disambiguate when several kinds share NAME."),
) -> None:
    """Show a component's description and parameters (name, type, default, description)."""
    registry = get_registry()
    if kind is not None and kind is not ListKind.plugins:
        found = [registry.info(kind.value, name)]
    else:
        found = registry.find(name)
    if not found:
        names = sorted({n for k in KINDS for n in registry.names(k)})
        import difflib

        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise fail(f"no component named {name!r}{hint} (see `clgym list`)")
    for info in found:
        _show_one(info)


def _show_one(info: ComponentInfo) -> None:
    doc = inspect.cleandoc(info.cls.__doc__ or "")
    console.print(f"{info.kind} {info.name}  ({info.cls.__module__}.{info.cls.__qualname__}, "
                  f"plugin {info.plugin.name}, {info.plugin.distribution} {info.plugin.version})", markup=False)
    if doc:
        console.print(doc, markup=False)
    table = Table(title="parameters", title_justify="left")
    for column in ("name", "type", "default", "description"):
        table.add_column(column)
    for field_name, field in info.cls.Params.model_fields.items():
        table.add_row(
            field.alias or field_name,
            escape(_type_name(field.annotation)),
            escape(_default(field)),
            escape(field.description or ""),
        )
    console.print(table)


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


@app.command("plugins")
@user_errors
def plugins() -> None:
    """Installed plugins with versions, hooks and problems; exits 1 if any plugin is broken."""
    if _plugins_table():
        raise typer.Exit(1)


def _plugins_table() -> bool:
    registry = get_registry()
    problems = registry.problems()
    table = Table(title="plugins", title_justify="left")
    for column in ("plugin", "distribution", "version", "hooks", "status"):
        table.add_column(column)
    for info in registry.plugins.values():
        status = "blocked" if info.blocked else ("ok" if info.ok else "; ".join(info.problems))
        table.add_row(info.name, info.distribution, info.version, ", ".join(info.hooks), escape(status))
    console.print(table)
    if not registry.autoload:
        console.print("plugin autoloading is disabled (CLGYM_DISABLE_PLUGIN_AUTOLOAD)")
    return bool(problems)


def _warn_problems() -> None:
    for line in get_registry().problems():
        err_console.print(f"warning: {line}", markup=False)
