"""Shared pieces of the CLI: consoles, one-line user errors with exit code 2, tables."""

from __future__ import annotations

import math
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

USER_ERROR = 2
INTERRUPTED = 130  # the shell's code for a process ended by SIGINT


def one_line(message: Any) -> str:
    """``message`` with all whitespace runs (newlines too) collapsed to single spaces."""
    return " ".join(str(message).split())


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
