"""``clgym plugin new``: start a plugin package that passes the conformance kit as generated."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from clgym_core.cli.common import console, err_console
from clgym_core.kinds import KINDS

plugin_app = typer.Typer(
    name="plugin",
    help="Write your own components: `clgym plugin new NAME` starts a plugin package.",
    no_args_is_help=True,
)


Kind = Enum("Kind", {k.name: k.name for k in KINDS}, type=str)  # type: ignore[misc]


@plugin_app.command("new")
def new(
    name: str = typer.Argument(
        ..., metavar="NAME", help="Registry name of the component, snake_case, e.g. my_method."
    ),
    kind: Kind = typer.Option(Kind["algorithm"], "--kind", "-k", help="What the plugin provides."),
    directory: Path = typer.Option(Path("."), "--dir", "-d", help="Folder to create the package in."),
) -> None:
    """Write a ready-to-publish plugin: pyproject with the clgym entry point, component, README, tests.

    The component is a working example of its kind (with a Params model and a
    docstring) to replace with yours; its test module runs the conformance kit
    and passes as generated.
    """
    from clgym_core.scaffold import new_plugin, plugin_names

    names = plugin_names(name, kind.value)
    clash = _installed_clash(names.kind, names.name)
    if clash:
        err_console.print(f"warning: {clash}", markup=False)
    root, files = new_plugin(name, kind.value, directory)
    console.print(f"created {root}", markup=False)
    for path in files:
        console.print(f"  {path.relative_to(root)}", markup=False)
    console.print("next:", markup=False)
    console.print(f"  cd {root}", markup=False)
    console.print('  pip install -e ".[test]"', markup=False)
    console.print(f"  clgym list {kind.value}s    # lists {names.name} from {names.distribution}", markup=False)
    console.print("  pytest", markup=False)


def _installed_clash(kind: str, name: str) -> str | None:
    """One line when an installed plugin already registers a ``kind`` called ``name`` (None otherwise)."""
    from clgym_core.errors import RegistryError
    from clgym_core.registry import get_registry

    try:
        info = get_registry().components(kind).get(name)
    except RegistryError:
        return None
    if info is None:
        return None
    return (f"an installed {kind} is already called {name!r} (plugin {info.provider}); once both are installed "
            f"the name is ambiguous and runs refuse it: choose another NAME or uninstall {info.plugin.distribution}")


def register(app: typer.Typer) -> None:
    """Add ``clgym plugin ...`` to ``app``."""
    app.add_typer(plugin_app, name="plugin")
