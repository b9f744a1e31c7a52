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

# Each module adds its commands to ``app``.
from clgym_core.cli import components as _components  # noqa: E402,F401
from clgym_core.cli import run as _run  # noqa: E402,F401
from clgym_core.cli import results as _results  # noqa: E402,F401
from clgym_core.cli import plot as _plot  # noqa: E402,F401
from clgym_core.cli import plugin as _plugin  # noqa: E402,F401
from clgym_core.cli import sweep as _sweep  # noqa: E402,F401
from clgym_core.cli import tune as _tune  # noqa: E402,F401


def main() -> None:
    """Console-script entry point."""
    app(prog_name="clgym")
