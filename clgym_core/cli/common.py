"""Shared pieces of the CLI: consoles, one-line user errors with exit code 2, tables."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from clgym_core.errors import ClgymError

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

F = TypeVar("F", bound=Callable[..., Any])
USER_ERROR = 2


def fail(message: str, code: int = USER_ERROR) -> typer.Exit:
    """Print ``error: message`` on one line to stderr and return the Exit to raise."""
    err_console.print(f"error: {message}", markup=False)
    return typer.Exit(code)


def user_errors(fn: F) -> F:
    """Turn :class:`ClgymError` into a one-line message and exit code 2 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ClgymError as exc:
            raise fail(" ".join(str(exc).split())) from None

    return wrapper  # type: ignore[return-value]


def fmt(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def matrix_table(matrix: list[list[float]], title: str, digits: int = 2) -> Table:
    """Rows ``untrained``, ``after 1``..; a column per task."""
    table = Table(title=title, title_justify="left")
    table.add_column("after", justify="left")
    num_tasks = len(matrix[0]) if matrix else 0
    for j in range(1, num_tasks + 1):
        table.add_column(f"T{j}", justify="right")
    for i, row in enumerate(matrix):
        table.add_row("untrained" if i == 0 else f"task {i}", *[fmt(v, digits) for v in row])
    return table
