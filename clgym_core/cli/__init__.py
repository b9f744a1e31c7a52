"""The ``clgym`` command line: list and inspect components, validate and run specs."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="clgym",
    help="Continual learning experiments from specs; components come from installed plugins.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            installed = version("clgym-core")
        except PackageNotFoundError:  # run from a source tree that was never installed
            from clgym_core import __version__ as installed
        typer.echo(f"clgym-core {installed}")
        raise typer.Exit()


@app.callback()
def _global_options(
    version: bool = typer.Option(
        False, "--version", is_eager=True, callback=_print_version, help="Print clgym-core's version and exit."
    ),
) -> None:
    pass


# Each module adds its commands to ``app``.
from clgym_core.cli import components as _components  # noqa: E402,F401
from clgym_core.cli import run as _run  # noqa: E402,F401
from clgym_core.cli import results as _results  # noqa: E402,F401
from clgym_core.cli import plot as _plot  # noqa: E402,F401
from clgym_core.cli import plugin as _plugin  # noqa: E402,F401


def main() -> None:
    """Console-script entry point."""
    app(prog_name="clgym")
