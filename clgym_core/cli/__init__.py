"""The ``clgym`` command line: list and inspect components, validate and run specs.

Built-in commands are registered explicitly by :func:`build_app`; plugins add theirs
through the ``clgym_register_commands`` hook. Every user-facing error
(:class:`~clgym_core.errors.ClgymError`, a bad option) becomes one line on stderr and
exit code 2 in one place, :class:`ClgymGroup`.
"""

from __future__ import annotations

import sys
from typing import Any

import typer
import typer.core

from clgym_core import interrupts
from clgym_core.cli.common import INTERRUPTED, USER_ERROR, err_console, one_line
from clgym_core.errors import ClgymError

try:  # recent Typer vendors click
    from typer._click import exceptions as _click_exceptions
except ImportError:  # pragma: no cover - Typer on top of click
    import click.exceptions as _click_exceptions  # type: ignore[no-redef]


class _Interrupted(Exception):
    """Ctrl-C inside a command, carried past Typer, which would turn it into a silent exit 130.

    Presses are counted by :mod:`clgym_core.interrupts` when the console script runs: a
    command that fails after a press some library swallowed (a lazy import that then
    fails) ends as interrupted, not with that library's error.
    """


class ClgymGroup(typer.core.TyperGroup):
    """The root command: turns user errors into one line and an exit code, never a traceback."""

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().make_context(*args, **kwargs)
        except KeyboardInterrupt:
            raise _Interrupted from None

    def invoke(self, ctx: Any) -> Any:
        before = interrupts.presses()
        try:
            # A press swallowed on the way to a normal return changes nothing: the work is done.
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise _Interrupted from None
        except typer.Exit:  # the command's own exit code (e.g. 130 after its own message)
            raise
        except Exception:
            if interrupts.presses() != before:  # a press some library swallowed, then failed on
                raise _Interrupted from None
            raise

    def main(self, args: Any = None, prog_name: Any = None, complete_var: Any = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        try:
            code = super().main(args=args, prog_name=prog_name, complete_var=complete_var,
                                standalone_mode=False, **extra)
        except ClgymError as exc:
            code = _say(one_line(exc), USER_ERROR)
        except _click_exceptions.UsageError as exc:
            hint = f" (see {exc.ctx.command_path} --help)" if exc.ctx is not None else ""
            code = _say(f"{one_line(exc.format_message())}{hint}", exc.exit_code)
        except _click_exceptions.ClickException as exc:
            code = _say(one_line(exc.format_message()), exc.exit_code)
        except (typer.Abort, _Interrupted, KeyboardInterrupt):
            code = _say("interrupted", INTERRUPTED, prefix="")
        code = code if isinstance(code, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            installed = version("clgym-core")
        except PackageNotFoundError:  # run from a source tree that was never installed
            from clgym_core import __version__ as installed
        typer.echo(f"clgym-core {installed}")
        raise typer.Exit()


def _global_options(
    version: bool = typer.Option(
        False, "--version", is_eager=True, callback=_print_version, help="Print clgym-core's version and exit."
    ),
) -> None:
    """Continual learning experiments from specs; components come from installed plugins."""


def _say(message: str, code: int, prefix: str = "error: ") -> int:
    err_console.print(f"{prefix}{message}", markup=False)
    return code


def build_app(plugins: bool = False) -> typer.Typer:
    """The CLI with the built-in commands, and with every plugin's commands when ``plugins`` is true."""
    from clgym_core.cli import components, leaderboard, plot, plugin, results, run, sweep, tune

    new = typer.Typer(
        name="clgym",
        help="Continual learning experiments from specs; components come from installed plugins.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        cls=ClgymGroup,
    )
    new.callback()(_global_options)
    for module in (components, run, results, plot, plugin, sweep, tune, leaderboard):
        module.register(new)
    if plugins:
        from clgym_core.registry import get_registry

        get_registry().register_commands(new)
    return new


app = build_app()


def main() -> None:
    """Run the CLI with every plugin's commands (the console script goes through :mod:`clgym_core.entry`)."""
    try:
        build_app(plugins=True)(prog_name="clgym")
    except KeyboardInterrupt:  # pressed while the plugins' commands were being added
        sys.exit(_say("interrupted", INTERRUPTED, prefix=""))
